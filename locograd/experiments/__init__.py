"""Experiments: tasks and models, optimizers by name, one resolved run configuration, the training
loop, comparisons, plots, run folders and checkpoints."""

from . import checkpoint
from .compare import compare, format_summary, histories, reading
from .config import ConfigError, RunConfig, TrainConfig, TrainingError, resolve
from .models import autoencoder, classifier, curves_autoencoder, mnist_autoencoder
from .optimizers import DEFAULTS, OPTIMIZERS, build, settings
from .tasks import TASKS, Autoencoder, Classifier
from .training import TrainingDiverged, train

__all__ = [
    "DEFAULTS",
    "OPTIMIZERS",
    "TASKS",
    "Autoencoder",
    "Classifier",
    "ConfigError",
    "RunConfig",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingError",
    "autoencoder",
    "build",
    "checkpoint",
    "classifier",
    "compare",
    "curves_autoencoder",
    "format_summary",
    "histories",
    "mnist_autoencoder",
    "reading",
    "resolve",
    "settings",
    "train",
]
