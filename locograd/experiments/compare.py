"""``locograd compare``: several optimizers on the same data and initialisation.

A comparison's folder holds ``compare.json`` (what it is: the optimizers and each
run's resolved settings, written before the first run starts), one run folder per
optimizer, ``summary.json`` and ``compare.png``.  The comparison holds the folder's
:class:`~.runfolder.FolderLock` while it works (each run also locks its own
subfolder), so a second command on the same ``--out`` fails at once.  A folder
that holds anything else (another comparison, a run, a study, the runs of other
optimizers) is never trained into; the same comparison continues with ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..data import Dataset
from ..data import load as load_dataset
from ..errors import RunFolderError
from . import runfolder
from .config import TrainConfig, TrainingError, resolve
from .optimizers import check_name
from .plots import plot_compare
from .training import train

RECORD = "compare.json"
"""The file that says what comparison a folder holds."""


def _without_epochs(settings: Any) -> Any:
    return {k: v for k, v in settings.items() if k != "epochs"} if isinstance(settings, dict) else settings


def _record_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How two comparison records differ (``optimizers``, ``rmsprop-tf1.lr``), ``epochs`` aside."""
    if old["optimizers"] != new["optimizers"]:
        return ["optimizers"]
    diff: list[str] = []
    for name in new["optimizers"]:
        a, b = _without_epochs(old["runs"].get(name)), _without_epochs(new["runs"][name])
        if not (isinstance(a, dict) and isinstance(b, dict)):
            diff.append(name)
            continue
        diff += [f"{name}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diff


def _check_folder(out: str, record: dict[str, Any], resume: bool) -> bool:
    """Whether ``out`` can take this comparison; returns whether to (re)write ``compare.json``.

    Called once before the folder is locked (creating nothing) and again under the lock.
    Before, a comparison trained into any folder: a folder of another comparison got its
    ``summary.json`` and ``compare.png`` overwritten (its runs stayed beside the new ones).

    Raises:
        TrainingError: the folder holds something else, naming the folder and what it holds;
            ``--resume`` without a comparison; a new comparison where the same one is.
        RunFolderError: ``compare.json`` cannot be read as a comparison record.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise TrainingError(f"out: {out} is a file, expected a folder")
    if not os.path.isdir(out):
        if resume:
            raise TrainingError(f"resume: no comparison in {out} (no {RECORD}); start without --resume")
        return True
    other = runfolder.held_by(out, ("run", "study"))
    if other:
        raise TrainingError(
            f"out: {out} holds {other[0]} ({other[1]}), not a comparison; choose another --out"
        )
    path = os.path.join(out, RECORD)
    if not os.path.exists(path):
        summary = os.path.join(out, "summary.json")
        if os.path.exists(summary):
            held = runfolder.read_json(summary, "comparison summary")
            names = ", ".join(map(str, held)) if isinstance(held, dict) else "unknown optimizers"
            raise TrainingError(
                f"out: {out} holds another comparison (summary.json of {names}, no {RECORD}); choose another --out"
            )
        runs = runfolder.runs_in(out)
        if runs:
            raise TrainingError(
                f"out: {out} holds other runs ({', '.join(runs)}) and no {RECORD}; choose another --out"
            )
        if resume:
            raise TrainingError(f"resume: no comparison in {out} (no {RECORD}); start without --resume")
        return True
    recorded = runfolder.read_json(path, "comparison record")
    if not (
        isinstance(recorded, dict)
        and isinstance(recorded.get("optimizers"), list)
        and isinstance(recorded.get("runs"), dict)
    ):
        raise RunFolderError(f"{path}: not a comparison record (expected 'optimizers' and 'runs')")
    diff = _record_differences(recorded, record)
    if diff:
        raise TrainingError(
            f"out: {out} holds another comparison ({', '.join(map(str, recorded['optimizers']))}; "
            f"{', '.join(diff)} differ); choose another --out"
        )
    others = [name for name in runfolder.runs_in(out) if name not in record["optimizers"]]
    if others:
        raise TrainingError(f"out: {out} also holds runs not in this comparison ({', '.join(others)})")
    if not resume:
        raise TrainingError(
            f"out: {out} already holds this comparison; pass --resume to continue it, or choose another --out"
        )
    return bool(recorded != record)


def compare(
    config: TrainConfig, optimizers: Sequence[str], resume: bool = False, data: Dataset | None = None
) -> dict[str, dict[str, Any]]:
    """Train each optimizer into ``config.out/<name>/``; write ``summary.json`` and ``compare.png``.

    Every run's settings are resolved, and the folder checked (:func:`_check_folder`),
    before anything is read or written; ``compare.json`` is written before the first
    run.  With ``resume``, each run that has a checkpoint continues, one that has not
    (the comparison stopped before it) starts.

    Returns:
        The summary: optimizer name -> ``{"train_loss", "test_loss", "epochs", "seconds", "seconds_per_epoch", "steps"}``,
        and for a classifier ``"train_accuracy"`` and ``"test_accuracy"`` after ``"test_loss"``.

    Raises:
        TrainingError, RunFolderError: bad settings, or a folder that holds something else or is in use.
    """
    names = [check_name(n) for n in optimizers]
    if not names:
        raise TrainingError("optimizers: expected at least one name")
    if len(set(names)) != len(names):
        raise TrainingError(f"optimizers: a name is repeated in {','.join(names)}")
    out = config.out
    runs = {
        name: resolve(dataclasses.replace(config, optimizer=name, out=os.path.join(out, name)))
        for name in names
    }  # each once, every one before the first trains
    record = {"optimizers": names, "runs": {name: run.record() for name, run in runs.items()}}
    record = json.loads(json.dumps(record))  # as it reads back from compare.json
    with contextlib.ExitStack() as stack:
        locked = os.path.isdir(out)
        if locked:  # a second command on this folder fails here, before anything is read
            stack.enter_context(runfolder.FolderLock(out))
        _check_folder(out, record, resume)  # creates nothing
        if data is None:
            first = next(iter(runs.values()))
            data = load_dataset(
                first.dataset, data_dir=first.data_dir, limit_train=first.limit_train, seed=first.seed
            )
        n_train = data.x_train.shape[0]
        for name in names:
            batch = record["runs"][name]["batch_size"]
            if batch > n_train:
                raise TrainingError(
                    f"batch-size: {batch} is larger than the training set ({n_train} examples)"
                )
        if not locked:
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.remove_stale_temporaries(out)
        if _check_folder(out, record, resume):  # again, under the lock
            runfolder.write_json_atomic(os.path.join(out, RECORD), record)
        histories: dict[str, list[dict[str, Any]]] = {}
        for name, run in runs.items():
            started = os.path.isfile(os.path.join(run.out, "checkpoint.npz"))
            histories[name] = train(run, resume=resume and started, data=data)
        summary = {
            name: {
                "train_loss": rows[-1]["train_loss"],
                "test_loss": rows[-1]["test_loss"],
                **{k: rows[-1][k] for k in ("train_accuracy", "test_accuracy") if k in rows[-1]},
                "epochs": rows[-1]["epoch"],
                "seconds": rows[-1]["seconds"],
                "seconds_per_epoch": rows[-1]["seconds"] / rows[-1]["epoch"],
                "steps": rows[-1]["steps"],
            }
            for name, rows in histories.items()
        }
        runfolder.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
        plot_compare(
            histories,
            os.path.join(out, "compare.png"),
            title=f"{next(iter(runs.values())).dataset}: {', '.join(names)}",
        )
        return summary
    raise AssertionError("unreachable")  # pragma: no cover (for mypy: the with block returns)


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table (with the test accuracy for classifiers)."""
    accuracy = any("test_accuracy" in s for s in summary.values())
    lines = [
        "| optimizer | train loss | test loss |"
        + (" test accuracy |" if accuracy else "")
        + " epochs | seconds | s/epoch |",
        "|---|---:|---:|" + ("---:|" if accuracy else "") + "---:|---:|---:|",
    ]
    for name, s in summary.items():
        shown = f" {s['test_accuracy']:.4f} |" if accuracy else ""
        lines.append(
            f"| {name} | {s['train_loss']:.3f} | {s['test_loss']:.3f} |{shown} {s['epochs']} | "
            f"{s['seconds']:.1f} | {s['seconds_per_epoch']:.2f} |"
        )
    return "\n".join(lines)


def histories(out: str, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's ``metrics.jsonl`` in the comparison folder ``out`` (optimizer name -> rows)."""
    required = ("epoch", "train_loss", "seconds")
    return {name: runfolder.read_jsonl(os.path.join(out, name, "metrics.jsonl"), required) for name in names}


def _loss_by(rows: Sequence[dict[str, Any]], seconds: float) -> tuple[float, int]:
    """``(train loss, epoch)`` of the last epoch finished within ``seconds`` of training (epoch 0: the start)."""
    done = [row for row in rows if row["seconds"] <= seconds]
    last = done[-1] if done else rows[0]
    return float(last["train_loss"]), int(last["epoch"])


def reading(runs: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """One line saying what a comparison shows, from its numbers: the order by train loss after the
    last epoch, and the order at the training seconds of the shortest run (per second of training),
    each run at the last epoch it had finished by then (measured losses, never interpolated).

    >>> rows = lambda *p: [{"epoch": e, "train_loss": l, "seconds": s} for e, (l, s) in enumerate(p)]
    >>> reading({"a": rows((9, 0), (5, 1), (1, 4)), "b": rows((9, 0), (6, 0.5), (3, 1))})
    'Per epoch, after 2 epochs: a 1.000 < b 3.000; per second, within 1.0 s of training (the shortest run): b 3.000 (epoch 2) < a 5.000 (epoch 1).'
    """
    finals = sorted(runs, key=lambda n: (runs[n][-1]["train_loss"], n))
    epochs = max(rows[-1]["epoch"] for rows in runs.values())
    line = f"Per epoch, after {epochs} epochs: " + " < ".join(
        f"{n} {runs[n][-1]['train_loss']:.3f}" for n in finals
    )
    if len(runs) > 1:
        shortest = min(rows[-1]["seconds"] for rows in runs.values())
        by = {n: _loss_by(rows, shortest) for n, rows in runs.items()}
        line += f"; per second, within {shortest:.1f} s of training (the shortest run): " + " < ".join(
            f"{n} {by[n][0]:.3f} (epoch {by[n][1]})" for n in sorted(by, key=lambda n: (by[n][0], n))
        )
    return line + "."
