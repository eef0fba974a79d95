r"""One run's configuration: what the user gives (:class:`TrainConfig`), resolved and validated
once into what the loop uses (:class:`RunConfig`).

:func:`resolve` is the one place where names are put in their canonical spelling, defaults are
filled in (per optimizer and data set, :mod:`~.optimizers`; the released run,
:mod:`locograd.optim.presets`), every number and path is checked, and the learning-rate schedule
is built.  The command line, ``experiments.train`` and a study's planner all go through it; the
:class:`RunConfig` it returns goes to the training loop and to a study's workers as it is.

>>> run = resolve(TrainConfig(dataset="CURVES", optimizer="Adam"))
>>> run.dataset, run.optimizer, run.epochs, run.batch_size, run.settings["lr"], run.schedule
('curves', 'adam', 5, 200, 0.003, None)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .. import backend
from ..data.registry import dataset_key, is_file_name
from ..optim.presets import OFFICIAL_RUN, official_schedule
from ..optim.schedules import EpochSchedule, warmup_linear_decay
from ..validators import canonical_choice, existing_path, integer, output_folder
from .models import HIDDEN_TRANSFERS, autoencoder_layout, check_cnn_overrides, classifier_layout
from .optimizers import INNER, SOLVERS, check_name, settings
from .tasks import TASKS

PRESETS = ("official",)
DTYPES = ("float32", "float64")


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message is one line for the command line."""


class ConfigError(TrainingError, ValueError):
    """A setting that is not valid, refused before any work starts (both a TrainingError and a ValueError)."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of one run (``None`` means the documented default for the optimizer and data set).

    ``dataset`` and ``optimizer`` left empty (``""``) are the preset's (``official``:
    mnist and locoprop-m), else ``"curves"`` and ``"rmsprop-tf1"``.  Every name (data
    set, optimizer, preset, device, dtype, solver, inner optimizer, and the study's
    schedule and hidden transfer) is put in its canonical spelling when the config
    is made (:func:`canonical_names`: case, surrounding spaces and ``_`` vs ``-`` do
    not matter), so the model, the defaults and the data all see one name; an
    unknown name is a :class:`ConfigError` there.  Before, ``dataset="CURVES"``
    trained the MNIST autoencoder with MNIST settings on CURVES data, and
    ``TrainConfig(preset="official")`` ran the BackProp baseline on CURVES.
    The numbers and paths are checked by :func:`resolve`, before any work.
    """

    dataset: str = ""
    optimizer: str = ""
    model: str = "autoencoder"
    out: str = "runs/train"
    epochs: int | None = None
    batch_size: int | None = None
    seed: int = 0
    data_dir: str | None = None
    limit_train: int | None = None
    validation: int = (
        0  # the last N training images held out: validation_* metrics each epoch, never trained on
    )
    preset: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    lr: float | None = None
    gamma: float | None = None
    eta: float | None = None
    steps: int | None = None
    solver: str | None = None
    inner: str | None = None
    damping: float | None = None
    workers: int = 1
    progress: bool = True
    summary: bool = True
    # Used by ``locograd study`` (defaults leave a run and its config.json as before):
    schedule: str | None = None  # None/"constant", or "warmup-linear-decay" (the released form)
    warmup: int = 5  # warm-up epochs of "warmup-linear-decay"
    schedule_total: int = 100  # epochs over which "warmup-linear-decay" decays to 0
    hidden: str | None = None  # model override: the hidden transfer (see models.overridden_autoencoder)
    widths: list[int] | None = (
        None  # model override: the encoder widths (code layer last), or the classifier's
    )

    def __post_init__(self) -> None:
        for key, value in canonical_names(self).items():
            setattr(self, key, value)


DEFAULT_EPOCHS = {"curves": 5, "mnist": 10, "classifier": 10}
DEFAULT_BATCH = {"curves": 200, "mnist": 1000, "classifier": 100}
"""Per data-set family for an autoencoder; a classifier's for every data set."""
PRESET_DEFAULTS: dict[str, dict[str, str]] = {
    "official": {"dataset": OFFICIAL_RUN.default_dataset, "optimizer": OFFICIAL_RUN.default_optimizer}
}
"""What a preset brings when ``dataset`` / ``optimizer`` are not given."""


def _check_machine(data_dir: str | None, out: str, device: str) -> None:
    if data_dir is not None:
        existing_path("data-dir", data_dir)
    output_folder("out", out)
    if device == "gpu" and not backend.has_gpu():
        raise ValueError("device: gpu needs CuPy and a usable CUDA device; none was found")


def check_machine(run: RunConfig) -> None:
    """What :func:`resolve` leaves out with ``machine=False``: ``data_dir`` present, ``out`` writable, a usable GPU.

    Raises:
        ConfigError: one line naming the argument.
    """
    try:
        _check_machine(run.data_dir, run.out, run.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _family(dataset: str) -> str:
    return "curves" if dataset_key(dataset) == "curves" else "mnist"


def _name_fields(config: TrainConfig) -> dict[str, tuple[str, ...]]:
    """The name fields of ``config`` other than dataset/optimizer/preset, with their valid names."""
    fields: dict[str, tuple[str, ...]] = {
        "device": backend.DEVICES,
        "dtype": DTYPES,
        "solver": SOLVERS,
        "inner": INNER,
    }
    if hasattr(config, "schedule"):  # the study's fields
        fields["schedule"] = SCHEDULES
    if hasattr(config, "hidden"):
        fields["hidden"] = HIDDEN_TRANSFERS
    fields["model"] = tuple(TASKS)
    return fields


def canonical_names(config: TrainConfig) -> dict[str, Any]:
    """Every name field of ``config`` in its canonical spelling; the ONE normaliser of a run's names.

    ``dataset`` and ``optimizer`` empty (or ``None``) become the preset's, else
    ``"curves"`` and ``"rmsprop-tf1"``.  Names are matched by
    :func:`locograd.validators.canonical_choice` (``" CURVES"`` is ``"curves"``,
    ``"LocoProp_M"`` is ``"locoprop-m"``, ``"GPU"`` is ``"gpu"``).

    Raises:
        ConfigError: an unknown name, e.g. ``"dataset: unknown name 'cifar'; valid names are ..."``.
    """
    try:
        preset = None if config.preset is None else canonical_choice("preset", config.preset, PRESETS)
        brought = PRESET_DEFAULTS.get(preset or "", {})
        dataset = config.dataset if config.dataset not in ("", None) else brought.get("dataset", "curves")
        optimizer = (
            config.optimizer
            if config.optimizer not in ("", None)
            else brought.get("optimizer", "rmsprop-tf1")
        )
        names: dict[str, Any] = {
            "preset": preset,
            "dataset": dataset_key(dataset),
            "optimizer": check_name(optimizer),
        }
        for key, choices in _name_fields(config).items():
            value = getattr(config, key)
            names[key] = None if value is None else canonical_choice(key, value, choices)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return names


def official_epochs() -> int:
    """The most epochs of the official preset: its schedule's length (the released run's 99)."""
    length = official_schedule().epochs
    assert isinstance(length, int)
    return length


def resolve(config: TrainConfig | RunConfig, *, machine: bool = True) -> RunConfig:
    """Validate ``config`` and fill in the defaults, once: the :class:`RunConfig` the loop and a study's worker use.

    A :class:`RunConfig` is returned as it is (it was resolved when it was made).  Its
    :attr:`RunConfig.settings` are what ``config.json`` records.

    Everything is checked here, before any data is read or any folder touched
    (the command line, the API and every trial of a study go through it): the
    names (:func:`canonical_names`), ``epochs``, ``batch_size`` and ``workers``
    integers >= 1, ``seed`` >= 0, ``limit_train`` ``None`` or >= 1, the optimizer's
    numbers (:func:`~.optimizers.settings`), ``data_dir`` an existing path and only
    for a file set, ``out`` a folder or a place one can be made, ``device="gpu"``
    usable, and the official preset's rules: locoprop-m or rmsprop-tf1, an MNIST-format
    set (its model and settings are the MNIST autoencoder's, so curves is refused),
    no optimizer setting, and at most :func:`official_epochs` epochs (its schedule
    reaches 0 there; before, epoch 101 trained with a negative learning rate).

    ``machine=False`` (a study's planner, whose trials may run on other machines) leaves out what
    this machine has: ``out`` writable, ``data_dir`` present, a usable GPU; :func:`check_machine`
    checks them where the run starts.

    Raises:
        ConfigError: one line naming the argument (``batch-size: expected an integer >= 1, got 0``).
    """
    if isinstance(config, RunConfig):
        return config
    names = canonical_names(config)
    dataset, optimizer, preset = names["dataset"], names["optimizer"], names["preset"]
    try:
        if integer("workers", config.workers, minimum=1) > 1 and not optimizer.startswith("locoprop"):
            raise ValueError(
                f"workers: only applies to LocoProp (its layers' local problems solved at once on threads), "
                f"not to {optimizer!r}; drop it"
            )
        seed = integer("seed", config.seed, minimum=0)
        limit_train = (
            None if config.limit_train is None else integer("limit-train", config.limit_train, minimum=1)
        )
        validation = integer("validation", config.validation, minimum=0)
        for flag in ("progress", "summary"):
            if not isinstance(getattr(config, flag), bool):
                raise ValueError(f"{flag}: expected True or False, got {getattr(config, flag)!r}")
        if config.data_dir is not None:
            if is_file_name(dataset):
                raise ValueError(f"data-dir: {dataset} is read from its own path; drop --data-dir")
            if dataset == "curves":
                raise ValueError(
                    "data-dir: curves is generated, not read from files; drop --data-dir or choose "
                    "--dataset mnist or fashion-mnist"
                )
        if machine:
            _check_machine(config.data_dir, config.out, names["device"])
        family = _family(dataset)
        task = names["model"]
        if preset == "official" and task != "autoencoder":
            raise ValueError(
                "model: the official preset is the released autoencoder configuration; drop --preset "
                f"to train a {task}"
            )
        if preset == "official":
            if optimizer not in OFFICIAL_RUN.optimizers:
                raise ValueError(
                    "preset official: the released configuration is locoprop-m (or its BackProp baseline, "
                    f"rmsprop-tf1), got optimizer {optimizer!r}"
                )
            if dataset not in OFFICIAL_RUN.datasets:
                raise ValueError(
                    "dataset: the official preset is the released MNIST-autoencoder configuration; it runs "
                    f"on {' or '.join(OFFICIAL_RUN.datasets)}, got {dataset!r} (leave --dataset out for mnist)"
                )
            fixed = ("lr", "gamma", "eta", "steps", "solver", "inner", "damping")
            given = {k: getattr(config, k) for k in fixed}
            extra = [k for k, v in given.items() if v is not None]
            if extra:
                raise ValueError(f"{extra[0]}: the official preset fixes every optimizer setting")
            resolved: dict[str, Any] = {"optimizer": optimizer, "preset": "official"}
            epochs, batch = OFFICIAL_RUN.epochs, OFFICIAL_RUN.batch_size
        else:
            resolved = settings(
                optimizer,
                dataset,
                lr=config.lr,
                gamma=config.gamma,
                eta=config.eta,
                steps=config.steps,
                solver=names["solver"],
                inner=names["inner"],
                damping=config.damping,
            )
            defaults = "classifier" if task != "autoencoder" else family
            epochs, batch = DEFAULT_EPOCHS[defaults], DEFAULT_BATCH[defaults]
        epochs = integer("epochs", epochs if config.epochs is None else config.epochs, minimum=1)
        batch = integer("batch-size", batch if config.batch_size is None else config.batch_size, minimum=1)
        if validation and preset == "official":
            raise ValueError(
                "validation: the official preset trains on the whole training set; drop --validation"
            )
        if validation and limit_train is not None:
            check_validation(validation, limit_train, batch, "limit-train")
        if preset == "official" and epochs > (most := official_epochs()):
            raise ValueError(
                "epochs: the official preset's learning-rate schedule (warmup 5, then linear decay) "
                f"reaches 0 after {most} epochs; expected at most {most}, got {epochs}"
            )
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    resolved.update(
        dataset=dataset,
        epochs=epochs,
        batch_size=batch,
        seed=seed,
        dtype=names["dtype"],
        device=names["device"],
        limit_train=limit_train,
    )
    if resolved.get("solver") == "exact" and config.schedule not in (None, "constant"):
        raise ConfigError(
            "schedule: the exact solver has no learning rate, so it would ignore the schedule; drop it or use solver gd"
        )
    if validation:  # recorded only when asked for: a run without one keeps its config.json (and trial key)
        resolved["validation"] = validation
    if task != "autoencoder":  # an autoencoder's settings (and so its trial keys) name no task
        resolved["task"] = task
    resolved.update(_study_settings(config, epochs))
    return RunConfig(
        dataset=dataset,
        model=task,
        optimizer=optimizer,
        preset=preset,
        settings=resolved,
        epochs=epochs,
        batch_size=batch,
        seed=seed,
        limit_train=limit_train,
        validation=validation,
        data_dir=config.data_dir,
        device=names["device"],
        dtype=names["dtype"],
        hidden=config.hidden,
        widths=None if config.widths is None else tuple(int(w) for w in config.widths),
        workers=config.workers,
        out=config.out,
        progress=config.progress,
        summary=config.summary,
        schedule=make_schedule(resolved),  # built once, here
    )


SCHEDULES = ("constant", "warmup-linear-decay")


def check_validation(validation: int, n_train: int, batch_size: int, what: str = "the training set") -> int:
    """The training examples left once the last ``validation`` of ``n_train`` are held out.

    Raises:
        ValueError: a split as large as the data (``"validation: 6000 is not smaller than limit-train
            (6000)"``) or one that leaves fewer examples than one batch.
    """
    if validation >= n_train:
        raise ValueError(f"validation: {validation} held-out images is not smaller than {what} ({n_train})")
    if n_train - validation < batch_size:
        raise ValueError(
            f"validation: holding out {validation} of {what}'s {n_train} images leaves {n_train - validation} "
            f"to train on, fewer than one batch ({batch_size}); hold out fewer or use a smaller batch"
        )
    return n_train - validation


def _study_settings(config: TrainConfig, epochs: int) -> dict[str, Any]:
    """The settings of :class:`TrainConfig`'s study fields, recorded only where not the default."""
    extra: dict[str, Any] = {}
    if config.schedule not in (None, "constant"):
        if config.schedule not in SCHEDULES:
            raise TrainingError(f"schedule: expected one of {SCHEDULES}, got {config.schedule!r}")
        if config.preset is not None:
            raise TrainingError("schedule: the official preset brings its own schedule")
        warmup, total = config.warmup, config.schedule_total
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise TrainingError(f"schedule_total: expected an integer >= 1, got {total!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < total:
            raise TrainingError(f"warmup: expected an integer in [0, {total}), got {warmup!r}")
        if epochs > total - 1:
            raise TrainingError(
                f"epochs: the warm-up and linear decay schedule reaches 0 at epoch {total - 1}; "
                f"expected at most {total - 1} epochs, got {epochs}"
            )
        extra["schedule"] = {"kind": config.schedule, "warmup": warmup, "total": total}
    if config.hidden is not None or config.widths is not None:
        try:
            if config.model != "autoencoder" or is_file_name(config.dataset):  # sizes from the data
                if config.model == "cnn":
                    check_cnn_overrides(config.hidden, config.widths)
                elif config.model == "classifier":
                    classifier_layout(1, 2, config.hidden, config.widths)
                else:
                    autoencoder_layout(None, config.hidden, config.widths)
                extra["model_overrides"] = {"hidden": config.hidden, "widths": config.widths}
            else:
                layout = autoencoder_layout(config.dataset, config.hidden, config.widths)
                extra["model"] = {"sizes": layout.sizes, "activations": layout.activations}
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
    return extra


class Settings(Mapping[str, Any]):
    """A run's resolved settings, read-only (a copy of what it was made from), as ``config.json`` records them.

    A plain class, so that it pickles to a study's workers.
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._data: dict[str, Any] = json.loads(json.dumps(dict(settings)))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Settings({self._data!r})"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run, resolved and validated once by :func:`resolve`; frozen.

    Every field is explicit (no ``None`` standing for a default).  :attr:`settings` is the
    record ``config.json`` and a comparison's ``compare.json`` hold, read-only; :attr:`schedule`
    is the learning-rate schedule, built once (``None``: the optimizer's constant rate).

    Raises:
        ConfigError: made by hand with ``epochs`` past its schedule's end.
    """

    dataset: str
    model: str
    optimizer: str
    preset: str | None
    settings: Mapping[str, Any]
    epochs: int
    batch_size: int
    seed: int
    limit_train: int | None
    validation: int
    data_dir: str | None
    device: str
    dtype: str
    hidden: str | None
    widths: tuple[int, ...] | None
    workers: int
    out: str
    progress: bool
    summary: bool
    schedule: EpochSchedule | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        frozen = Settings(self.settings)
        object.__setattr__(self, "settings", frozen)
        if frozen.get("epochs") != self.epochs:
            raise ConfigError(
                f"epochs: expected {frozen.get('epochs')} like settings['epochs'], got {self.epochs}"
            )
        scheduled = self.preset == "official" or frozen.get("schedule") is not None
        if scheduled != (self.schedule is not None):
            expected = "the schedule its settings name" if scheduled else "None (a constant rate)"
            raise ConfigError(f"schedule: expected {expected}, got {self.schedule!r}")
        _check_length(self.schedule, self.epochs)

    def with_epochs(self, epochs: int) -> RunConfig:
        """This run trained to another number of epochs (``settings["epochs"]`` follows), checked
        against its schedule's end again."""
        return dataclasses.replace(self, epochs=epochs, settings={**self.settings, "epochs": epochs})

    def record(self) -> dict[str, Any]:
        """:attr:`settings` as a new plain dict (what ``config.json`` and ``compare.json`` hold)."""
        return json.loads(json.dumps(dict(self.settings)))


def make_schedule(resolved: Mapping[str, Any]) -> EpochSchedule | None:
    """The run's per-epoch learning-rate schedule, ``None`` for a constant rate.

    The schedule belongs to the training configuration, not to the optimizer: the loop passes
    each epoch's rate to ``opt.step(..., lr=schedule(epoch))``.  The official preset's is the
    released :func:`~locograd.optim.official_schedule`; a study's ``warmup-linear-decay`` is
    recorded in ``resolved["schedule"]``.

    Raises:
        ConfigError: ``resolved["epochs"]`` is longer than the schedule
            (:attr:`~locograd.optim.schedules.EpochSchedule.epochs`).
    """
    spec = resolved.get("schedule")
    schedule = None
    if resolved.get("preset") == "official":
        schedule = official_schedule()
    elif spec is not None:
        schedule = warmup_linear_decay(resolved["lr"], spec["warmup"], spec["total"])
    _check_length(schedule, resolved.get("epochs"))
    return schedule


def _check_length(schedule: EpochSchedule | None, epochs: Any) -> None:
    length = None if schedule is None else schedule.epochs
    if schedule is not None and isinstance(length, int) and isinstance(epochs, int) and epochs > length:
        raise ConfigError(
            f"epochs: the learning-rate schedule ({schedule.text}) ends after {length} epochs; "
            f"expected at most {length}, got {epochs}"
        )
