r"""The training loop behind ``locograd train`` and ``locograd compare``.

One run writes, in its output folder:

* ``metrics.jsonl``: one JSON object per epoch: ``epoch`` (the number of
  finished epochs; a row ``epoch: 0`` records the starting point), ``train_loss`` and ``test_loss`` (the batch-mean loss over
  the whole set, per example summed over pixels), ``seconds`` (cumulative wall
  time spent in training steps, evaluation excluded), ``wall_seconds``
  (cumulative, everything included), ``steps`` (batches so far), ``lr``;
* ``loss.png``: loss against epoch and against seconds;
* ``checkpoint.npz``: params, optimizer state, shuffling RNG state and epoch,
  written atomically after every epoch and read without pickle;
* ``config.json``: the resolved settings of the run.

``--resume`` continues from the checkpoint to ``epochs`` in total; on the CPU
2 epochs, then resume to 4, give bit-identical params and losses to 4 epochs
straight (the timing fields differ, of course).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import backend
from ..data import Dataset
from ..data import load as load_dataset
from ..data.registry import dataset_key, is_file_name
from ..errors import NonFiniteError, NotPositiveDefiniteError, RunFolderError, StateMismatchError
from ..nn import MLP, Params
from ..optim import NetOptimizer, official, official_backprop, official_schedule, schedules
from ..validators import canonical_choice, existing_path, integer, output_folder, same_tree
from . import checkpoint, runfolder
from .models import HIDDEN_TRANSFERS, classifier, overridden_autoencoder
from .optimizers import INNER, SOLVERS, build, check_name, settings
from .plots import plot_losses
from .tasks import TASKS, Task

PRESETS = ("official",)
DTYPES = ("float32", "float64")


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message is one line for the command line."""


class ConfigError(TrainingError, ValueError):
    """A setting that is not valid, refused before any work starts (both a TrainingError and a ValueError)."""


class TrainingDiverged(TrainingError):
    """The loss or the parameters became non-finite, or a damped curvature factor lost its Cholesky
    factor (:class:`~locograd.errors.NotPositiveDefiniteError`); the last good checkpoint and metrics
    are kept (exit status 3)."""

    exit_code = 3


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
PRESET_DEFAULTS: dict[str, dict[str, str]] = {"official": {"dataset": "mnist", "optimizer": "locoprop-m"}}
"""What a preset brings when ``dataset`` / ``optimizer`` are not given."""
OFFICIAL_OPTIMIZERS = ("locoprop-m", "rmsprop-tf1")
OFFICIAL_DATASETS = ("mnist", "fashion-mnist")
"""The official preset is the released MNIST-autoencoder configuration: MNIST-format sets only."""


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


def resolve(config: TrainConfig) -> dict[str, Any]:
    """Validate ``config`` and fill in the defaults; returns the settings recorded in ``config.json``.

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

    Raises:
        ConfigError: one line naming the argument (``batch-size: expected an integer >= 1, got 0``).
    """
    names = canonical_names(config)
    dataset, optimizer, preset = names["dataset"], names["optimizer"], names["preset"]
    try:
        integer("workers", config.workers, minimum=1)
        seed = integer("seed", config.seed, minimum=0)
        limit_train = (
            None if config.limit_train is None else integer("limit-train", config.limit_train, minimum=1)
        )
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
            existing_path("data-dir", config.data_dir)
        output_folder("out", config.out)
        if names["device"] == "gpu" and not backend.has_gpu():
            raise ValueError("device: gpu needs CuPy and a usable CUDA device; none was found")
        family = _family(dataset)
        task = names["model"]
        if preset == "official" and task != "autoencoder":
            raise ValueError(
                "model: the official preset is the released autoencoder configuration; drop --preset "
                f"to train a {task}"
            )
        if preset == "official":
            if optimizer not in OFFICIAL_OPTIMIZERS:
                raise ValueError(
                    "preset official: the released configuration is locoprop-m (or its BackProp baseline, "
                    f"rmsprop-tf1), got optimizer {optimizer!r}"
                )
            if dataset not in OFFICIAL_DATASETS:
                raise ValueError(
                    "dataset: the official preset is the released MNIST-autoencoder configuration; it runs "
                    f"on {' or '.join(OFFICIAL_DATASETS)}, got {dataset!r} (leave --dataset out for mnist)"
                )
            fixed = ("lr", "gamma", "eta", "steps", "solver", "inner", "damping")
            given = {k: getattr(config, k) for k in fixed}
            extra = [k for k, v in given.items() if v is not None]
            if extra:
                raise ValueError(f"{extra[0]}: the official preset fixes every optimizer setting")
            resolved: dict[str, Any] = {"optimizer": optimizer, "preset": "official"}
            epochs, batch = 99, 1000
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
            defaults = "classifier" if task == "classifier" else family
            epochs, batch = DEFAULT_EPOCHS[defaults], DEFAULT_BATCH[defaults]
        epochs = integer("epochs", epochs if config.epochs is None else config.epochs, minimum=1)
        batch = integer("batch-size", batch if config.batch_size is None else config.batch_size, minimum=1)
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
    if task != "autoencoder":  # an autoencoder's settings (and so its trial keys) name no task
        resolved["task"] = task
    resolved.update(_study_settings(config, epochs))
    return resolved


SCHEDULES = ("constant", "warmup-linear-decay")


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
            if config.model == "classifier" or is_file_name(
                config.dataset
            ):  # sizes from the data: the overrides recorded
                if config.model == "classifier":
                    classifier(1, 2, config.hidden, config.widths)
                else:
                    overridden_autoencoder(None, config.hidden, config.widths)
                extra["model_overrides"] = {"hidden": config.hidden, "widths": config.widths}
            else:
                net = overridden_autoencoder(config.dataset, config.hidden, config.widths)
                extra["model"] = {"sizes": net.sizes, "activations": [t.name for t in net.transfers]}
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
    return extra


def make_optimizer(net: MLP, resolved: dict[str, Any], workers: int = 1) -> NetOptimizer:
    """The network optimizer of a resolved run (the official preset or :func:`~.optimizers.build`).

    ``workers``: LocoProp solves this many layers at once on threads (the same results).
    """
    if resolved.get("preset") == "official":
        if resolved["optimizer"] == "locoprop-m":
            return official(net, workers=workers)
        return official_backprop(net, donate=True)
    return build(net, resolved, workers, donate=True)  # the loop keeps only the latest parameters


def make_schedule(resolved: dict[str, Any]) -> schedules.EpochSchedule | None:
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
        schedule = schedules.warmup_linear_decay(resolved["lr"], spec["warmup"], spec["total"])
    length = None if schedule is None else schedule.epochs
    epochs = resolved.get("epochs")
    if schedule is not None and isinstance(length, int) and isinstance(epochs, int) and epochs > length:
        raise ConfigError(
            f"epochs: the learning-rate schedule ({schedule.text}) ends after {length} epochs; "
            f"expected at most {length}, got {epochs}"
        )
    return schedule


CHECKPOINT_KEYS = ("params", "state", "rng", "epoch", "steps", "seconds", "wall_seconds", "meta", "row")
"""What a run's checkpoint holds (``row``: the metrics row of its epoch, as in ``metrics.jsonl``)."""


def _comparable(meta: Any) -> Any:
    """``meta`` without ``settings.epochs`` (the one setting a resumed run may change)."""
    if not (isinstance(meta, dict) and isinstance(meta.get("settings"), dict)):
        return meta
    return {**meta, "settings": {k: v for k, v in meta["settings"].items() if k != "epochs"}}


def _differences(old: Any, new: Any) -> list[str]:
    """The keys (``settings.lr``) in which two metas differ."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return ["the whole file"]
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "settings" and isinstance(a, dict) and isinstance(b, dict):
            keys += [f"settings.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            keys.append(key)
    return keys


def _load_checkpoint(
    ckpt_path: str, net: MLP, opt: Any, meta: dict[str, Any], config: TrainConfig, rng: np.random.Generator
) -> dict[str, Any]:
    """Read the checkpoint a resumed run continues from, and check that it is this run's.

    Every defect is a one-line error naming the file, raised before the folder is touched:
    an unreadable file, another format version, a malformed skeleton or missing array
    (:func:`~.checkpoint.load`), a missing entry, another network or settings, params or
    an optimizer state of another shape, structure or dtype (checked by
    :func:`~locograd.validators.same_tree` against ``net.init`` and ``opt.init``), an RNG
    state that cannot be restored (``rng`` is given it).  Before, params of the wrong shape
    or another optimizer's state were taken and failed (or broadcast) inside the first step.

    Raises:
        CheckpointError: naming ``ckpt_path``.
        TrainingError: another network or other settings (the messages kept from before).
    """
    saved = checkpoint.load(ckpt_path, required=CHECKPOINT_KEYS)
    saved_meta = saved["meta"]
    if not (
        isinstance(saved_meta, dict)
        and {"sizes", "activations", "settings"} <= set(saved_meta)
        and isinstance(saved_meta["settings"], dict)
    ):
        raise checkpoint.CheckpointError(
            f"{ckpt_path}: the checkpoint's meta is not a run's (expected sizes, activations and settings)"
        )
    for key in ("epoch", "steps"):
        value = saved[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise checkpoint.CheckpointError(f"{ckpt_path}: {key}: expected an integer >= 0, got {value!r}")
    for key in ("seconds", "wall_seconds"):
        value = saved[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise checkpoint.CheckpointError(f"{ckpt_path}: {key}: expected a finite number, got {value!r}")
    if not isinstance(saved["row"], dict) or saved["row"].get("epoch") != saved["epoch"]:
        raise checkpoint.CheckpointError(
            f"{ckpt_path}: row: expected the metrics row of epoch {saved['epoch']}, got {saved['row']!r}"
        )
    if saved_meta["sizes"] != net.sizes or saved_meta["activations"] != meta["activations"]:
        raise TrainingError(
            f"resume: {ckpt_path} holds a {saved_meta['sizes']} network, this run builds {net.sizes}"
        )
    diff = [k.removeprefix("settings.") for k in _differences(_comparable(saved_meta), _comparable(meta))]
    if diff:
        raise TrainingError(f"resume: the checkpoint was made with other settings ({', '.join(diff)} differ)")
    dtype = np.dtype(meta["settings"]["dtype"])
    template = net.init(seed=config.seed, dtype=dtype, bias="glorot", device="cpu")  # saved arrays are NumPy
    try:
        same_tree("params", saved["params"], template)
        same_tree("state", saved["state"], opt.init(template))
    except StateMismatchError as exc:
        raise checkpoint.CheckpointError(f"{ckpt_path}: {exc}") from None
    try:
        rng.bit_generator.state = json.loads(saved["rng"])
    except (TypeError, ValueError, KeyError) as exc:
        raise checkpoint.CheckpointError(
            f"{ckpt_path}: rng: the shuffling RNG's state cannot be restored ({exc})"
        ) from None
    return saved


def _check_config(path: str, saved_meta: dict[str, Any], meta: dict[str, Any], ckpt_path: str) -> bool:
    """Whether a resumed run writes ``config.json``: absent, or only ``settings.epochs`` changes.

    Before, ``--resume`` rewrote ``config.json`` with the new settings whatever it held.

    Raises:
        RunFolderError: ``config.json`` cannot be read, or describes another run than the checkpoint's.
    """
    if not os.path.exists(path):  # the run stopped between its first checkpoint and config.json
        return True
    recorded = runfolder.read_json(path, "run config")
    diff = _differences(_comparable(recorded), _comparable(saved_meta))
    if diff:
        raise RunFolderError(
            f"{path}: does not describe the run in {ckpt_path} ({', '.join(diff)} differ); "
            "it is not this run's, so --resume refuses to go on"
        )
    return bool(recorded != json.loads(json.dumps(meta)))


def _read_metrics(
    path: str, saved: dict[str, Any], ckpt_path: str
) -> tuple[list[dict[str, Any]], int, dict[str, Any] | None]:
    """The history a resumed run continues: the rows of epochs ``0..E`` of ``metrics.jsonl``.

    ``E`` is the checkpoint's epoch.  Rows must count the epochs ``0, 1, 2, ...`` in
    order; the row of epoch ``E`` must be the checkpoint's own ``row`` (so the file is
    this run's history).  What follows it (rows of later epochs, or a torn last line)
    was written by this run after its checkpoint, before it was stopped: it is dropped
    (the file is truncated there, earlier bytes unchanged), as resuming redoes those
    epochs.  A torn line or a gap in the rows up to ``E`` is refused.  A missing row ``E``
    (the run was stopped between its checkpoint and the row) is restored from the checkpoint.
    Before, the reader gave a JSONDecodeError or KeyError traceback for a torn line or a
    row without ``epoch``, and rewrote the file keeping any row with ``epoch <= E``,
    whatever run or order it came from.

    Returns:
        The rows of epochs ``0..E``, the byte length to truncate the file to, and the
        row to append (the checkpoint's, when row ``E`` is missing) or ``None``.

    Raises:
        RunFolderError: naming the file and the line.
    """
    epoch = saved["epoch"]
    scan = runfolder.scan_jsonl(path, required=("epoch",), missing_ok=True)
    for i, (row, line) in enumerate(zip(scan.rows, scan.lines, strict=True)):
        value = row["epoch"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RunFolderError(f"{path}: line {line}: epoch: expected an integer, got {value!r}")
        if value != i:
            raise RunFolderError(
                f"{path}: line {line} holds epoch {value}, expected {i} (one row per epoch from 0, in order)"
            )
    kept = len(scan.rows)
    if kept < epoch:
        if scan.torn is not None:
            raise RunFolderError(f"{scan.torn}; the run's rows up to epoch {epoch} ({ckpt_path}) are needed")
        have = f"rows for epochs 0 to {kept - 1} only" if kept else "no rows"
        raise RunFolderError(f"{path}: has {have}, but the checkpoint {ckpt_path} is at epoch {epoch}")
    if kept == epoch:
        return [*scan.rows, saved["row"]], (scan.ends[-1] if kept else 0), saved["row"]
    if scan.rows[epoch] != saved["row"]:
        raise RunFolderError(
            f"{path}: line {scan.lines[epoch]} (epoch {epoch}) is not the row of the run in {ckpt_path}; "
            "the file holds another run's history"
        )
    return scan.rows[: epoch + 1], scan.ends[epoch], None


def _end_line(path: str) -> None:
    """End ``path`` with a newline if its last row lacks one (so that the next append starts a line)."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def _evaluate(
    task: Task,
    net: MLP,
    params: Params,
    train_split: tuple[Any, Any],
    test_split: tuple[Any, Any],
    epoch: int,
    seconds: float,
    wall: float,
    steps: int,
    lr: float | None,
) -> dict[str, Any]:
    """One metrics row: the losses, then the task's metrics (``train_accuracy``, ``test_accuracy``), then the clock."""
    train, test = task.evaluate(net, params, *train_split), task.evaluate(net, params, *test_split)
    row: dict[str, Any] = {"epoch": epoch, "train_loss": train["loss"], "test_loss": test["loss"]}
    for metric in task.metrics:
        row[f"train_{metric}"], row[f"test_{metric}"] = train[metric], test[metric]
    row.update(seconds=seconds, wall_seconds=wall, steps=steps, lr=lr)
    return row


def _append_row(path: str, row: dict[str, Any]) -> None:
    """One metrics row, appended in one write and flushed (:func:`~.runfolder.append_jsonl`)."""
    runfolder.append_jsonl(path, row)


def _to_device_tree(tree: Any, device: str) -> Any:
    return backend.tree_map(lambda a: backend.to_device(a, device) if isinstance(a, np.ndarray) else a, tree)


def train(config: TrainConfig, resume: bool = False, data: Dataset | None = None) -> list[dict[str, Any]]:
    """Run (or continue) one training run; see :func:`_train`.

    NumPy's overflow/invalid warnings are silenced during the run: a non-finite
    loss or parameter is detected and reported as :class:`TrainingDiverged`.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(config, resume, data)


def _train(config: TrainConfig, resume: bool, data: Dataset | None) -> list[dict[str, Any]]:
    """Run (or continue) one training run; returns the metrics of every epoch so far.

    The run holds its folder's :class:`~.runfolder.FolderLock` from before it reads
    anything there until it returns: a second run on the same folder (``--resume``
    included) fails at once with :class:`~locograd.errors.RunFolderError` naming it
    (before, a concurrent ``--resume`` interleaved ``metrics.jsonl`` row by row).  Under
    the lock, temporaries a killed run left are removed.  A new run writes an epoch-0
    checkpoint (params, optimizer state, RNG state), then ``config.json``, then the
    epoch-0 row, before its first step: a run stopped in epoch 1 (Ctrl-C, divergence,
    an error in a step) resumes from it (before, the first checkpoint came after epoch
    1, and such a folder could be neither resumed nor restarted).  ``--resume`` checks
    everything (:func:`_load_checkpoint`, :func:`_check_config`, :func:`_read_metrics`)
    before it changes the folder.

    Raises:
        TrainingError: bad settings, an unusable output folder, a checkpoint
            of another network or settings; nothing in the output folder is overwritten.
        RunFolderError: the folder is in use, or one of its files cannot be read as
            this run's (:class:`~.checkpoint.CheckpointError` for the checkpoint).
        TrainingDiverged: the loss became non-finite (the last good
            checkpoint and metrics are kept).
    """
    resolved = resolve(config)
    out = config.out
    with contextlib.ExitStack() as stack:
        locked = os.path.isdir(out)
        if locked:  # a second run on this folder fails here, before anything is read
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.check_run_folder(
            out, resume
        )  # creates nothing: a new folder is made only once all is checked
        if data is None:
            data = load_dataset(
                config.dataset, data_dir=config.data_dir, limit_train=config.limit_train, seed=config.seed
            )
        n_train = data.x_train.shape[0]
        if resolved["batch_size"] > n_train:
            raise TrainingError(
                f"batch-size: {resolved['batch_size']} is larger than the training set ({n_train} examples)"
            )
        task = TASKS[config.model]
        net = task.model(data, config.hidden, config.widths)
        task.check(data, net)
        opt = make_optimizer(net, resolved, config.workers)
        schedule = make_schedule(resolved)
        rng = np.random.default_rng(config.seed)
        meta = {"sizes": net.sizes, "activations": [t.name for t in net.transfers], "settings": resolved}
        if not locked:  # a new folder: made (and locked) only now that the settings and data are good
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.remove_stale_temporaries(out)
        ckpt_path = runfolder.check_run_folder(out, resume)  # again, under the lock: this answer holds
        return _run(config, resume, data, resolved, task, net, opt, schedule, rng, meta, ckpt_path)
    raise AssertionError("unreachable")  # pragma: no cover (for mypy: the with block returns)


def _save_checkpoint(
    path: str,
    params: Params,
    state: Any,
    rng: np.random.Generator,
    row: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    checkpoint.save(
        path,
        {
            "params": params,
            "state": state,
            "rng": json.dumps(rng.bit_generator.state),
            "epoch": row["epoch"],
            "steps": row["steps"],
            "seconds": row["seconds"],
            "wall_seconds": row["wall_seconds"],
            "meta": meta,
            "row": row,
        },
    )


def _run(
    config: TrainConfig,
    resume: bool,
    data: Dataset,
    resolved: dict[str, Any],
    task: Task,
    net: MLP,
    opt: NetOptimizer,
    schedule: schedules.EpochSchedule | None,
    rng: np.random.Generator,
    meta: dict[str, Any],
    ckpt_path: str,
) -> list[dict[str, Any]]:
    """The run itself, under the folder's lock (see :func:`_train`)."""
    out = config.out
    dtype = np.dtype(resolved["dtype"])
    metrics_path = os.path.join(out, "metrics.jsonl")
    config_path = os.path.join(out, "config.json")
    x_train = backend.to_device(data.x_train, config.device, dtype)
    x_test = backend.to_device(data.x_test, config.device, dtype)
    labelled = task.metrics and data.y_train is not None and data.y_test is not None
    y_train = backend.to_device(data.y_train, config.device) if labelled else None
    y_test = backend.to_device(data.y_test, config.device) if labelled else None
    splits = (x_train, y_train), (x_test, y_test)
    if resume:
        saved = _load_checkpoint(ckpt_path, net, opt, meta, config, rng)
        if resolved["epochs"] < saved["epoch"]:
            raise TrainingError(
                f"epochs: the checkpoint {ckpt_path} is at epoch {saved['epoch']}; expected --epochs >= "
                f"{saved['epoch']} to continue it, got {resolved['epochs']}"
            )
        history, keep, restore = _read_metrics(metrics_path, saved, ckpt_path)
        write_config = _check_config(config_path, saved["meta"], meta, ckpt_path)
        # every check passed: only now is the folder changed
        if os.path.exists(metrics_path) and os.path.getsize(metrics_path) > keep:
            os.truncate(metrics_path, keep)  # this run's rows (or torn line) after its checkpoint
        _end_line(metrics_path)
        if restore is not None:
            _append_row(metrics_path, restore)
        if write_config:
            runfolder.write_json_atomic(config_path, meta)
        params = _to_device_tree(saved["params"], config.device)
        state = _to_device_tree(saved["state"], config.device)
        start_epoch, steps = saved["epoch"], saved["steps"]
        seconds, wall = saved["seconds"], saved["wall_seconds"]
    else:
        params = net.init(seed=config.seed, dtype=dtype, bias="glorot", device=config.device)
        state = opt.init(params)
        start_epoch, steps, seconds, wall = 0, 0, 0.0, 0.0
        history = [_evaluate(task, net, params, *splits, 0, 0.0, 0.0, 0, None)]  # the starting point
        _save_checkpoint(ckpt_path, params, state, rng, history[0], meta)  # first: the folder can resume
        runfolder.write_json_atomic(config_path, meta)
        _append_row(metrics_path, history[0])
    saved_epoch = start_epoch  # the epoch of the checkpoint on disk, for the messages
    batch = resolved["batch_size"]
    n_train = data.x_train.shape[0]
    n_batches = math.ceil(n_train / batch)
    name = resolved["optimizer"]
    for epoch in range(start_epoch, resolved["epochs"]):
        epoch_start = time.perf_counter()
        lr = schedule(epoch) if schedule is not None else opt.lr
        order = backend.to_device(rng.permutation(n_train), config.device)
        bar = tqdm(
            total=n_batches,
            desc=f"{name} {epoch + 1}/{resolved['epochs']}",
            unit="batch",
            leave=False,
            disable=not config.progress,
            dynamic_ncols=True,
        )
        train_time = 0.0
        try:
            for b in range(n_batches):
                rows = order[b * batch : (b + 1) * batch]
                xb = x_train[rows]
                yb = task.targets(xb, None if y_train is None else y_train[rows])
                t0 = time.perf_counter()
                try:
                    params, state, info = opt.step(params, xb, yb, state, lr=lr)
                except (NonFiniteError, NotPositiveDefiniteError) as exc:
                    what = (
                        "non-finite parameters"
                        if isinstance(exc, NonFiniteError)
                        else "a damped factor without a Cholesky factor"
                    )
                    raise TrainingDiverged(
                        f"{what} in epoch {epoch + 1}, batch {b + 1} ({exc}); the last good "
                        f"checkpoint (epoch {saved_epoch}) and metrics are kept in {out}"
                    ) from None
                loss = float(info.loss)
                train_time += time.perf_counter() - t0
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss in epoch {epoch + 1}, batch {b + 1}; the last good checkpoint "
                        f"(epoch {saved_epoch}) and metrics are kept in {out}"
                    )
                steps += 1
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                bar.update()
        finally:
            bar.close()
        seconds += train_time
        row = _evaluate(task, net, params, *splits, epoch + 1, seconds, 0.0, steps, lr)
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])):
            raise TrainingDiverged(
                f"non-finite loss after epoch {epoch + 1}; the last good checkpoint (epoch {saved_epoch}) "
                f"is kept in {out}"
            )
        wall += time.perf_counter() - epoch_start
        row["wall_seconds"] = wall
        history.append(row)
        _append_row(metrics_path, row)
        _save_checkpoint(ckpt_path, params, state, rng, row, meta)
        saved_epoch = epoch + 1
        if config.summary:
            accuracy = (
                f"  accuracy {row['train_accuracy']:.4f} / {row['test_accuracy']:.4f}"
                if "test_accuracy" in row
                else ""
            )
            tqdm.write(
                f"{name:>11} epoch {epoch + 1:>3}/{resolved['epochs']}  train {row['train_loss']:9.4f}  "
                f"test {row['test_loss']:9.4f}{accuracy}  {seconds:7.1f} s training ({train_time:.1f} s this epoch)"
            )
    plot_losses(history, os.path.join(out, "loss.png"), title=f"{name} on {config.dataset}")
    return history
