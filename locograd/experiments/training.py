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
from ..network import MLP, Params
from ..optim import official
from . import checkpoint
from .models import autoencoder
from .optimizers import build, check_name, settings
from .plots import plot_losses

PRESETS = ("official",)
DTYPES = ("float32", "float64")


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message is one line for the command line."""


class TrainingDiverged(TrainingError):
    """The loss became non-finite; the last good checkpoint and metrics are kept (exit status 3)."""

    exit_code = 3


@dataclasses.dataclass
class TrainConfig:
    """Settings of one run (``None`` means the documented default for the optimizer and data set)."""

    dataset: str = "curves"
    optimizer: str = "rmsprop"
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


DEFAULT_EPOCHS = {"curves": 5, "mnist": 10}
DEFAULT_BATCH = {"curves": 200, "mnist": 1000}


def _family(dataset: str) -> str:
    return "curves" if dataset == "curves" else "mnist"


def resolve(config: TrainConfig) -> dict[str, Any]:
    """Validate ``config`` and fill in the defaults; returns the settings recorded in ``config.json``."""
    check_name(config.optimizer)
    if config.preset is not None and config.preset not in PRESETS:
        raise TrainingError(f"preset: unknown name {config.preset!r}; valid presets are {', '.join(PRESETS)}")
    if config.dtype not in DTYPES:
        raise TrainingError(f"dtype: expected one of {DTYPES}, got {config.dtype!r}")
    if isinstance(config.workers, bool) or not isinstance(config.workers, int) or config.workers < 1:
        raise TrainingError(f"workers: expected an integer >= 1, got {config.workers!r}")
    if config.device not in backend.DEVICES:
        raise TrainingError(f"device: expected one of {backend.DEVICES}, got {config.device!r}")
    family = _family(config.dataset)
    if config.preset == "official":
        if config.optimizer not in ("locoprop-m", "rmsprop"):
            raise TrainingError(
                "preset official: the released configuration is locoprop-m (or its BackProp baseline, rmsprop), "
                f"got optimizer {config.optimizer!r}"
            )
        given = {k: getattr(config, k) for k in ("lr", "gamma", "eta", "steps", "solver", "inner", "damping")}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise TrainingError(f"{extra[0]}: the official preset fixes every optimizer setting")
        resolved: dict[str, Any] = {"optimizer": config.optimizer, "preset": "official"}
        epochs, batch = 99, 1000
    else:
        try:
            resolved = settings(
                config.optimizer,
                config.dataset,
                lr=config.lr,
                gamma=config.gamma,
                eta=config.eta,
                steps=config.steps,
                solver=config.solver,
                inner=config.inner,
                damping=config.damping,
            )
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        epochs, batch = DEFAULT_EPOCHS[family], DEFAULT_BATCH[family]
    epochs = epochs if config.epochs is None else config.epochs
    batch = batch if config.batch_size is None else config.batch_size
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainingError(f"epochs: expected an integer >= 1, got {epochs!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise TrainingError(f"batch-size: expected an integer >= 1, got {batch!r}")
    resolved.update(
        dataset=config.dataset,
        epochs=epochs,
        batch_size=batch,
        seed=config.seed,
        dtype=config.dtype,
        device=config.device,
        limit_train=config.limit_train,
    )
    return resolved


def make_optimizer(net: MLP, resolved: dict[str, Any], workers: int = 1) -> Any:
    """The optimizer of a resolved run (the official preset or :func:`~.optimizers.build`).

    ``workers``: LocoProp solves this many layers at once on threads (the same results).
    """
    if resolved.get("preset") == "official":
        mode = "locoprop" if resolved["optimizer"] == "locoprop-m" else "backprop"
        return official(net, mode=mode, workers=workers)
    return build(net, resolved, workers)


def mean_loss(net: MLP, params: Params, x: Any, chunk: int = 2000) -> float:
    """The autoencoder's batch-mean loss over all rows of ``x``, in chunks."""
    total = 0.0
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk]
        total += net.loss(params, xb, xb) * xb.shape[0]
    return total / x.shape[0]


def _check_out(out: str, resume: bool) -> str:
    if os.path.exists(out) and not os.path.isdir(out):
        raise TrainingError(f"out: {out} is a file, expected a folder (new or holding a run to --resume)")
    ckpt = os.path.join(out, "checkpoint.npz")
    if resume and not os.path.isfile(ckpt):
        raise TrainingError(f"resume: no checkpoint at {ckpt}; start without --resume")
    if not resume and os.path.exists(os.path.join(out, "metrics.jsonl")):
        raise TrainingError(
            f"out: {out} already holds a run; pass --resume to continue it, or choose another --out"
        )
    return ckpt


def _write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def _read_metrics(path: str, upto_epoch: int) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [r for r in rows if r["epoch"] <= upto_epoch]


def _evaluate(
    net: MLP,
    params: Params,
    x_train: Any,
    x_test: Any,
    epoch: int,
    seconds: float,
    wall: float,
    steps: int,
    lr: float | None,
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": mean_loss(net, params, x_train),
        "test_loss": mean_loss(net, params, x_test),
        "seconds": seconds,
        "wall_seconds": wall,
        "steps": steps,
        "lr": lr,
    }


def _append_row(path: str, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


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

    Raises:
        TrainingError: bad settings, an unusable output folder, a checkpoint
            that does not fit; nothing in the output folder is overwritten.
        TrainingDiverged: the loss became non-finite (the last good
            checkpoint and metrics are kept).
    """
    resolved = resolve(config)
    out = config.out
    ckpt_path = _check_out(out, resume)
    if data is None:
        data = load_dataset(
            config.dataset, data_dir=config.data_dir, limit_train=config.limit_train, seed=config.seed
        )
    n_train = data.x_train.shape[0]
    if resolved["batch_size"] > n_train:
        raise TrainingError(
            f"batch-size: {resolved['batch_size']} is larger than the training set ({n_train} examples)"
        )
    net = autoencoder(config.dataset)
    dtype = np.dtype(resolved["dtype"])
    opt = make_optimizer(net, resolved, config.workers)
    rng = np.random.default_rng(config.seed)
    meta = {"sizes": net.sizes, "activations": [t.name for t in net.transfers], "settings": resolved}

    if resume:
        try:
            saved = checkpoint.load(ckpt_path)
        except checkpoint.CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        if (
            saved.get("meta", {}).get("sizes") != net.sizes
            or saved["meta"].get("activations") != meta["activations"]
        ):
            raise TrainingError(
                f"resume: {ckpt_path} holds a {saved.get('meta', {}).get('sizes')} network, this run builds {net.sizes}"
            )
        old = {k: v for k, v in saved["meta"]["settings"].items() if k != "epochs"}
        new = {k: v for k, v in resolved.items() if k != "epochs"}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise TrainingError(
                f"resume: the checkpoint was made with other settings ({', '.join(diff)} differ)"
            )
        params = _to_device_tree(saved["params"], config.device)
        state = _to_device_tree(saved["state"], config.device)
        rng.bit_generator.state = json.loads(saved["rng"])
        start_epoch, steps, seconds, wall = (
            saved["epoch"],
            saved["steps"],
            saved["seconds"],
            saved["wall_seconds"],
        )
        history = _read_metrics(os.path.join(out, "metrics.jsonl"), start_epoch)
    else:
        params = net.init(seed=config.seed, dtype=dtype, bias="glorot", device=config.device)
        state = opt.init(params)
        start_epoch, steps, seconds, wall = 0, 0, 0.0, 0.0
        history = []

    os.makedirs(out, exist_ok=True)
    _write_json_atomic(os.path.join(out, "config.json"), meta)
    metrics_path = os.path.join(out, "metrics.jsonl")
    tmp = f"{metrics_path}.tmp"  # rewritten atomically: drops rows written after the last checkpoint
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in history)
    os.replace(tmp, metrics_path)

    x_train = backend.to_device(data.x_train, config.device, dtype)
    x_test = backend.to_device(data.x_test, config.device, dtype)
    if not history:  # the starting point, epoch 0
        history.append(_evaluate(net, params, x_train, x_test, 0, 0.0, 0.0, 0, None))
        _append_row(metrics_path, history[-1])
    batch = resolved["batch_size"]
    n_batches = math.ceil(n_train / batch)
    name = resolved["optimizer"]
    for epoch in range(start_epoch, resolved["epochs"]):
        epoch_start = time.perf_counter()
        lr = opt.schedule(epoch) if opt.schedule is not None else opt.lr
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
                xb = x_train[order[b * batch : (b + 1) * batch]]
                t0 = time.perf_counter()
                try:
                    params, state, info = opt.update(params, xb, xb, state, lr=lr)
                except ValueError as exc:
                    if "non-finite" not in str(exc):
                        raise
                    raise TrainingDiverged(
                        f"non-finite parameters in epoch {epoch + 1}, batch {b + 1} ({exc}); the last good "
                        f"checkpoint (epoch {epoch}) and metrics are kept in {out}"
                    ) from None
                loss = float(info.loss)
                train_time += time.perf_counter() - t0
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss in epoch {epoch + 1}, batch {b + 1}; the last good checkpoint "
                        f"(epoch {epoch}) and metrics are kept in {out}"
                    )
                steps += 1
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                bar.update()
        finally:
            bar.close()
        seconds += train_time
        row = _evaluate(net, params, x_train, x_test, epoch + 1, seconds, 0.0, steps, lr)
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])):
            raise TrainingDiverged(
                f"non-finite loss after epoch {epoch + 1}; the last good checkpoint (epoch {epoch}) is kept in {out}"
            )
        wall += time.perf_counter() - epoch_start
        row["wall_seconds"] = wall
        history.append(row)
        _append_row(metrics_path, row)
        checkpoint.save(
            ckpt_path,
            {
                "params": params,
                "state": state,
                "rng": json.dumps(rng.bit_generator.state),
                "epoch": epoch + 1,
                "steps": steps,
                "seconds": seconds,
                "wall_seconds": wall,
                "meta": meta,
            },
        )
        if config.summary:
            tqdm.write(
                f"{name:>11} epoch {epoch + 1:>3}/{resolved['epochs']}  train {row['train_loss']:9.4f}  "
                f"test {row['test_loss']:9.4f}  {seconds:7.1f} s training ({train_time:.1f} s this epoch)"
            )
    plot_losses(history, os.path.join(out, "loss.png"), title=f"{name} on {config.dataset}")
    return history
