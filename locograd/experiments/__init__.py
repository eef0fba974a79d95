"""Experiments: the deep autoencoders, optimizers by name, the training loop, comparisons, plots, checkpoints."""

from . import checkpoint
from .compare import compare, format_summary, histories, reading
from .models import autoencoder, curves_autoencoder, mnist_autoencoder
from .optimizers import DEFAULTS, OPTIMIZERS, build, settings
from .training import TrainConfig, TrainingDiverged, TrainingError, train

__all__ = [
    "DEFAULTS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingError",
    "autoencoder",
    "build",
    "checkpoint",
    "compare",
    "curves_autoencoder",
    "format_summary",
    "histories",
    "mnist_autoencoder",
    "reading",
    "settings",
    "train",
]
