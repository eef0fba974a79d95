r"""The training loop behind ``locograd train`` and ``locograd compare``.

One run writes, in its output folder:

* ``metrics.jsonl``: one JSON object per epoch: ``epoch`` (the number of
  finished epochs; a row ``epoch: 0`` records the starting point), ``train_loss`` and ``test_loss`` (the batch-mean loss over
  the whole set, per example summed over pixels), ``seconds`` (cumulative wall
  time spent in training steps, evaluation excluded), ``wall_seconds``
  (cumulative, everything included), ``steps`` (batches so far), ``lr``, and
  ``update_ratio``: per weight layer (``net.weight_layers`` order), the mean over
  the epoch's steps of :math:`\|\Delta W_m\|_F / \|W_m\|_F` (:mod:`.records`;
  measured outside ``seconds``); the epoch-0 row, before any step, has no
  ``update_ratio`` key;
* ``loss.png``: loss against epoch and against seconds;
* ``checkpoint.npz``: params, optimizer state, shuffling RNG state and epoch,
  written atomically after every epoch and read without pickle;
* ``config.json``: the resolved settings of the run.

``--resume`` continues from the checkpoint to ``epochs`` in total; on the CPU
2 epochs, then resume to 4, give bit-identical params, losses and update ratios
to 4 epochs straight (the timing fields differ, of course).
"""

from __future__ import annotations

import contextlib
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
from ..errors import NonFiniteError, NotPositiveDefiniteError, RunFolderError, StateMismatchError
from ..nn import MLP, Params, Sequential
from ..optim import NetOptimizer, official, official_backprop
from ..optim.base import all_finite
from ..validators import same_tree
from . import checkpoint, runfolder
from .config import RunConfig, TrainConfig, TrainingError, check_machine, check_validation, resolve
from .optimizers import build
from .plots import plot_losses
from .records import UpdateRatios
from .tasks import TASKS, Task


class TrainingDiverged(TrainingError):
    """The loss or the parameters became non-finite, or a damped curvature factor lost its Cholesky
    factor (:class:`~locograd.errors.NotPositiveDefiniteError`); the last good checkpoint and metrics
    are kept (exit status 3)."""

    exit_code = 3


def describe(net: Sequential) -> dict[str, Any]:
    """The network as ``config.json`` records it: an MLP by its ``sizes`` and ``activations``; any other
    :class:`~locograd.nn.Sequential` by its input shape, its layers (as they print) and its weight
    layers' transfers."""
    activations = [t.name for t in net.transfers]
    if isinstance(net, MLP):
        return {"sizes": net.sizes, "activations": activations}
    return {
        "in_shape": list(net.shapes[0]),
        "layers": [repr(layer) for layer in net.layers],
        "activations": activations,
    }


def _text(architecture: dict[str, Any]) -> str:
    """An MLP's sizes (``[784, 400, ...]``), another network's layers joined by arrows."""
    if "sizes" in architecture:
        return str(architecture["sizes"])
    return " -> ".join(map(str, architecture.get("layers") or []))


def initial_params(net: Sequential, seed: int, dtype: Any, device: str) -> Params:
    """A run's starting point: an MLP's with the released Glorot biases; another network's as its layers draw them."""
    if isinstance(net, MLP):
        return net.init(seed=seed, dtype=dtype, bias="glorot", device=device)
    return net.init(seed=seed, dtype=dtype, device=device)


def architecture(meta: Any) -> dict[str, Any]:
    """The parts of a run's meta (``config.json`` less its settings) that describe the network."""
    if not isinstance(meta, dict):
        return {}
    return {k: meta.get(k) for k in ("sizes", "in_shape", "layers", "activations") if k in meta}


def make_optimizer(net: Sequential, run: RunConfig) -> NetOptimizer:
    """The network optimizer of a run (the official preset or :func:`~.optimizers.build`).

    ``run.workers``: LocoProp solves this many layers at once on threads (the same results).
    """
    if run.preset == "official":
        if run.optimizer == "locoprop-m":
            return official(net, workers=run.workers)
        return official_backprop(net, donate=True)
    return build(
        net, dict(run.settings), run.workers, donate=True
    )  # the loop keeps only the latest parameters


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
    ckpt_path: str, net: Sequential, opt: Any, meta: dict[str, Any], run: RunConfig, rng: np.random.Generator
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
        and "activations" in saved_meta
        and ("sizes" in saved_meta or {"in_shape", "layers"} <= set(saved_meta))
        and isinstance(saved_meta.get("settings"), dict)
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
    held, built = architecture(saved_meta), architecture(meta)
    if held != built:
        raise TrainingError(
            f"resume: {ckpt_path} holds a {_text(held)} network, this run builds {_text(built)}"
        )
    diff = [k.removeprefix("settings.") for k in _differences(_comparable(saved_meta), _comparable(meta))]
    if diff:
        raise TrainingError(f"resume: the checkpoint was made with other settings ({', '.join(diff)} differ)")
    dtype = np.dtype(meta["settings"]["dtype"])
    template = initial_params(net, run.seed, dtype, "cpu")  # saved arrays are NumPy
    try:
        same_tree("params", saved["params"], template)
        same_tree("state", saved["state"], opt.init(template))
        check = getattr(opt, "check", None)  # the values an optimizer checks at each step: counters, ...
        if callable(check):
            check(saved["params"], saved["state"])
    except (StateMismatchError, ValueError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"{ckpt_path}: {exc}") from None
    for part in ("params", "state"):  # before, NaN parameters resumed and were reported as a divergence
        numbers = [
            v for v in backend.tree_leaves(saved[part]) if isinstance(v, float)
        ]  # e.g. K-FAC's damping
        if not all_finite(saved[part]) or not all(math.isfinite(v) for v in numbers):
            raise checkpoint.CheckpointError(
                f"{ckpt_path}: {part}: holds a non-finite number; a checkpoint is written only after a "
                "finite epoch, so this file was changed: delete it to start again"
            )
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
    net: Sequential,
    params: Params,
    splits: dict[str, tuple[Any, Any]],
    epoch: int,
    seconds: float,
    wall: float,
    steps: int,
    lr: float | None,
) -> dict[str, Any]:
    """One metrics row: each split's loss (``train_loss``, ``test_loss``, then ``validation_loss`` where
    the run holds images out), then the task's metrics in the same order (``train_accuracy``, ...),
    then the clock."""
    scores = {name: task.evaluate(net, params, *split) for name, split in splits.items()}
    row: dict[str, Any] = {"epoch": epoch}
    row.update({f"{name}_loss": score["loss"] for name, score in scores.items()})
    for metric in task.metrics:
        row.update({f"{name}_{metric}": score[metric] for name, score in scores.items()})
    row.update(seconds=seconds, wall_seconds=wall, steps=steps, lr=lr)
    return row


def _append_row(path: str, row: dict[str, Any]) -> None:
    """One metrics row, appended in one write and flushed (:func:`~.runfolder.append_jsonl`)."""
    runfolder.append_jsonl(path, row)


def _to_device_tree(tree: Any, device: str) -> Any:
    return backend.tree_map(lambda a: backend.to_device(a, device) if isinstance(a, np.ndarray) else a, tree)


def train(
    config: TrainConfig | RunConfig, resume: bool = False, data: Dataset | None = None
) -> list[dict[str, Any]]:
    """Run (or continue) one training run; see :func:`_train`.

    ``config``: a :class:`~.config.TrainConfig`, resolved here once, or a :class:`~.config.RunConfig`
    already resolved (a study's worker passes its trial's).

    NumPy's overflow/invalid warnings are silenced during the run: a non-finite
    loss or parameter is detected and reported as :class:`TrainingDiverged`.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(resolve(config), resume, data)


def _train(run: RunConfig, resume: bool, data: Dataset | None) -> list[dict[str, Any]]:
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
    check_machine(run)  # where it runs: a study's planner resolved it without this machine
    out = run.out
    with contextlib.ExitStack() as stack:
        locked = os.path.isdir(out)
        if locked:  # a second run on this folder fails here, before anything is read
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.check_run_folder(
            out, resume
        )  # creates nothing: a new folder is made only once all is checked
        if data is None:
            data = load_dataset(
                run.dataset, data_dir=run.data_dir, limit_train=run.limit_train, seed=run.seed
            )
        n_train = data.x_train.shape[0]
        if run.batch_size > n_train:
            raise TrainingError(
                f"batch-size: {run.batch_size} is larger than the training set ({n_train} examples)"
            )
        if run.validation:
            try:
                check_validation(run.validation, n_train, run.batch_size)
            except ValueError as exc:
                raise TrainingError(str(exc)) from None
        task = TASKS[run.model]
        net = task.model(data, run.hidden, None if run.widths is None else list(run.widths))  # once per run
        task.check(data, net)
        opt = make_optimizer(net, run)
        rng = np.random.default_rng(run.seed)
        meta = {**describe(net), "settings": run.record()}
        if not locked:  # a new folder: made (and locked) only now that the settings and data are good
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.remove_stale_temporaries(out)
        ckpt_path = runfolder.check_run_folder(out, resume)  # again, under the lock: this answer holds
        return _run(run, resume, data, task, net, opt, rng, meta, ckpt_path)
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
    run: RunConfig,
    resume: bool,
    data: Dataset,
    task: Task,
    net: Sequential,
    opt: NetOptimizer,
    rng: np.random.Generator,
    meta: dict[str, Any],
    ckpt_path: str,
) -> list[dict[str, Any]]:
    """The run itself, under the folder's lock (see :func:`_train`)."""
    out = run.out
    dtype = np.dtype(run.dtype)
    metrics_path = os.path.join(out, "metrics.jsonl")
    config_path = os.path.join(out, "config.json")
    shape = net.shapes[0]  # flat rows for an MLP, (H, W, C) images for a CNN
    n_train = data.x_train.shape[0] - run.validation  # the last run.validation images are held out
    labelled = task.metrics and data.y_train is not None and data.y_test is not None

    def split(x: Any, y: Any, rows: slice) -> tuple[Any, Any]:
        inputs = backend.to_device(x[rows].reshape(-1, *shape), run.device, dtype)
        return inputs, (backend.to_device(y[rows], run.device) if labelled else None)

    x_train, y_train = split(data.x_train, data.y_train, slice(0, n_train))
    splits = {"train": (x_train, y_train), "test": split(data.x_test, data.y_test, slice(None))}
    if run.validation:
        splits["validation"] = split(data.x_train, data.y_train, slice(n_train, None))
    if resume:
        saved = _load_checkpoint(ckpt_path, net, opt, meta, run, rng)
        if run.epochs < saved["epoch"]:
            raise TrainingError(
                f"epochs: the checkpoint {ckpt_path} is at epoch {saved['epoch']}; expected --epochs >= "
                f"{saved['epoch']} to continue it, got {run.epochs}"
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
        params = _to_device_tree(saved["params"], run.device)
        state = _to_device_tree(saved["state"], run.device)
        start_epoch, steps = saved["epoch"], saved["steps"]
        seconds, wall = saved["seconds"], saved["wall_seconds"]
    else:
        params = initial_params(net, run.seed, dtype, run.device)
        state = opt.init(params)
        start_epoch, steps, seconds, wall = 0, 0, 0.0, 0.0
        history = [_evaluate(task, net, params, splits, 0, 0.0, 0.0, 0, None)]  # the starting point
        _save_checkpoint(ckpt_path, params, state, rng, history[0], meta)  # first: the folder can resume
        runfolder.write_json_atomic(config_path, meta)
        _append_row(metrics_path, history[0])
    saved_epoch = start_epoch  # the epoch of the checkpoint on disk, for the messages
    batch = run.batch_size
    n_batches = math.ceil(n_train / batch)
    name = run.optimizer
    record = UpdateRatios(net)  # update_ratio, measured outside the timed steps
    for epoch in range(start_epoch, run.epochs):
        epoch_start = time.perf_counter()
        record.start(params)
        # the schedule's rate, or none (the optimizer's own; the row records the run's setting, None
        # for a method without a rate such as LocoProp's exact solver)
        lr = run.schedule(epoch) if run.schedule is not None else None
        order = backend.to_device(rng.permutation(n_train), run.device)
        bar = tqdm(
            total=n_batches,
            desc=f"{name} {epoch + 1}/{run.epochs}",
            unit="batch",
            leave=False,
            disable=not run.progress,
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
                record.after(params)
                steps += 1
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                bar.update()
        finally:
            bar.close()
        seconds += train_time
        rate = lr if run.schedule is not None else run.settings.get("lr")
        row = _evaluate(task, net, params, splits, epoch + 1, seconds, 0.0, steps, rate)
        row["update_ratio"] = record.means()
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
        if run.summary:
            accuracy = (
                f"  accuracy {row['train_accuracy']:.4f} / {row['test_accuracy']:.4f}"
                if "test_accuracy" in row
                else ""
            )
            tqdm.write(
                f"{name:>11} epoch {epoch + 1:>3}/{run.epochs}  train {row['train_loss']:9.4f}  "
                f"test {row['test_loss']:9.4f}{accuracy}  {seconds:7.1f} s training ({train_time:.1f} s this epoch)"
            )
    plot_losses(history, os.path.join(out, "loss.png"), title=f"{name} on {run.dataset}")
    return history
