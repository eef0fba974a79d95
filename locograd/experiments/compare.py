"""``locograd compare``: several optimizers on the same data and initialisation.

A comparison's folder holds ``compare.json`` (what it is: the optimizers and each
run's resolved settings, written before the first run starts), one run folder per
optimizer, ``summary.json`` and ``compare.png``.  The comparison holds the folder's
:class:`~.runfolder.FolderLock` while it works (each run also locks its own
subfolder), so a second command on the same ``--out`` fails at once.  A folder
that holds anything else (another comparison, a run, a study, the runs of other
optimizers) is never trained into; the same comparison continues with ``--resume``.

With ``seeds=N > 1`` (``--seeds N``) each optimizer trains with the seeds ``seed, seed + 1, ...,
seed + N - 1`` (each seed's run is what ``locograd train --seed S`` gives: its own data draw,
initialisation and shuffling, shared by the optimizers), one run folder per optimizer and seed,
``OUT/<name>/seed-<S>/``; ``compare.json`` adds ``seeds``, and ``summary.json`` gives per optimizer
the mean over the seeds of each final number, its sample standard deviation (``<key>_std``, n - 1)
and the finals of every seed (``per_seed``).  ``seeds=1`` is the single-seed layout and files,
unchanged.  ``layers=True`` (``--layers``) also draws each weight layer's ``update_ratio`` against
epoch into ``update-ratio.png``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import multiprocessing
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from ..data import Dataset
from ..data import load as load_dataset
from ..errors import RunFolderError
from ..validators import integer
from . import runfolder
from .config import ConfigError, RunConfig, TrainConfig, TrainingError, check_validation, resolve
from .optimizers import check_name
from .plots import NO_UPDATE_RATIOS, plot_compare, plot_update_ratios
from .training import train

RECORD = "compare.json"
"""The file that says what comparison a folder holds."""

UPDATE_FIGURE = "update-ratio.png"
"""The per-layer update-ratio figure of ``compare(..., layers=True)`` (``--layers``)."""


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
    held, asked = recorded.get("seeds"), record.get("seeds")
    if held != asked:
        n_held = len(held) if isinstance(held, list) else 1
        raise TrainingError(
            f"seeds: {out} holds this comparison with --seeds {n_held}, not --seeds {len(asked or [0])}; "
            f"pass --seeds {n_held} to continue it, or choose another --out"
        )
    others = [name for name in runfolder.runs_in(out) if name not in record["optimizers"]]
    if others:
        raise TrainingError(f"out: {out} also holds runs not in this comparison ({', '.join(others)})")
    if not resume:
        raise TrainingError(
            f"out: {out} already holds this comparison; pass --resume to continue it, or choose another --out"
        )
    return bool(recorded != record)


def _init_worker(threads: int) -> None:
    """A process of ``compare(..., jobs > 1)``: its BLAS threads, for its life."""
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(limits=threads, user_api="blas")


_LIMITS: Any = None


def run_folder(out: str, name: str, seed: int, seeds: int) -> str:
    """The run folder of optimizer ``name`` with ``seed`` in a comparison of ``seeds`` seeds per optimizer.

    >>> run_folder("cmp", "adam", 0, 1), run_folder("cmp", "adam", 3, 2)
    ('cmp/adam', 'cmp/adam/seed-3')
    """
    return os.path.join(out, name) if seeds == 1 else os.path.join(out, name, f"seed-{seed}")


SPREAD_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "seconds", "seconds_per_epoch")
"""The final numbers of a run that a comparison of several seeds gives as mean and ``<key>_std``."""


def _finals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A run's final numbers (its last metrics row)."""
    last = rows[-1]
    return {
        "train_loss": last["train_loss"],
        "test_loss": last["test_loss"],
        **{k: last[k] for k in ("train_accuracy", "test_accuracy") if k in last},
        "epochs": last["epoch"],
        "seconds": last["seconds"],
        "seconds_per_epoch": last["seconds"] / last["epoch"],
        "steps": last["steps"],
    }


def _over_seeds(per_seed: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    r"""One optimizer's entry over its seeds: the mean :math:`\bar v` of each of :data:`SPREAD_KEYS`, its
    sample standard deviation :math:`\sqrt{\sum_i (v_i - \bar v)^2 / (n - 1)}` as ``<key>_std``, the
    counts (epochs, steps: the same for every seed), the ``seeds`` and the finals of each (``per_seed``).

    >>> e = _over_seeds([{"train_loss": 1.0, "epochs": 2}, {"train_loss": 3.0, "epochs": 2}], [0, 1])
    >>> e["train_loss"], round(e["train_loss_std"], 6), e["epochs"], sorted(e["per_seed"])
    (2.0, 1.414214, 2, ['0', '1'])
    """
    entry: dict[str, Any] = {"seeds": list(seeds)}
    for key in per_seed[0]:
        values = [finals[key] for finals in per_seed]
        if key in SPREAD_KEYS:
            entry[key] = statistics.fmean(values)
            entry[f"{key}_std"] = statistics.stdev(values)
        else:
            entry[key] = values[0]
    entry["per_seed"] = {str(seed): finals for seed, finals in zip(seeds, per_seed, strict=True)}
    return entry


ENTRY_SETTINGS = ("hidden", "widths", "lr", "gamma", "eta", "steps", "solver", "inner", "damping")
"""The settings a labelled entry of :func:`compare` may give its own runs (the rest they share)."""

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _entries(optimizers: Sequence[str] | Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """label -> ``{"optimizer": name, **its own settings}``, checked: a name is its own label."""
    if isinstance(optimizers, str):
        raise TrainingError(
            f"optimizers: expected a list of names or a mapping of labels, got {optimizers!r}"
        )
    if not isinstance(optimizers, Mapping):
        names = [check_name(n) for n in optimizers]
        if len(set(names)) != len(names):
            raise TrainingError(f"optimizers: a name is repeated in {','.join(names)}")
        return {name: {"optimizer": name} for name in names}
    entries: dict[str, dict[str, Any]] = {}
    for label, entry in optimizers.items():
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise TrainingError(
                f"optimizers: label {label!r}: expected 1-64 letters, digits, '.', '_' or '-' (a folder name)"
            )
        if not isinstance(entry, Mapping) or "optimizer" not in entry:
            raise TrainingError(f"optimizers.{label}: expected a mapping with 'optimizer', got {entry!r}")
        unknown = sorted(set(entry) - {"optimizer", *ENTRY_SETTINGS})
        if unknown:
            raise TrainingError(
                f"optimizers.{label}.{unknown[0]}: not a setting of one entry; valid ones are "
                f"optimizer, {', '.join(ENTRY_SETTINGS)}"
            )
        entries[label] = {**entry, "optimizer": check_name(entry["optimizer"])}
    return entries


def compare(
    config: TrainConfig,
    optimizers: Sequence[str] | Mapping[str, Mapping[str, Any]],
    resume: bool = False,
    data: Dataset | None = None,
    *,
    seeds: int = 1,
    layers: bool = False,
    figure: bool = True,
    jobs: int = 1,
    threads: int = 1,
) -> dict[str, dict[str, Any]]:
    """Train each optimizer into ``config.out/<name>/``; write ``summary.json`` and ``compare.png``.

    Every run's settings are resolved, and the folder checked (:func:`_check_folder`),
    before anything is read or written; ``compare.json`` is written before the first
    run.  With ``resume``, each run that has a checkpoint continues, one that has not
    (the comparison stopped before it) starts.

    Args:
        config: the settings every run shares (``optimizer`` and ``out`` are each run's own;
            ``workers``, LocoProp's layer threads, goes to the LocoProp runs only).
        optimizers: the optimizer names (each run's label and folder), or labelled entries: label ->
            ``{"optimizer": name, **settings}`` with settings from :data:`ENTRY_SETTINGS` (e.g.
            ``{"adam-tanh": {"optimizer": "adam", "hidden": "tanh", "lr": 3e-3}}``), for runs of one
            optimizer with other settings side by side; the label names the run's folder.
        resume: continue the comparison in ``config.out``.
        data: the data of every run (every seed's too); ``None``: each seed's, loaded as
            ``locograd train --seed S`` loads it.
        seeds: runs per optimizer (>= 1), with the seeds ``config.seed`` to ``config.seed + seeds - 1``,
            into ``config.out/<name>/seed-<S>/`` when more than one (:func:`run_folder`).
        layers: also write ``update-ratio.png``, each weight layer's ``update_ratio`` against epoch
            (:func:`~.plots.plot_update_ratios`), or say in one line that no run has the records.
        figure: write ``compare.png`` (every run's loss per epoch and per second); ``False`` leaves it
            to the caller (the main job draws its own, :func:`~.main_job.plot`).
        jobs: runs trained at once, each in its own process (``--jobs``); 1 trains them one after
            the other in this process.  The runs are independent, so their numbers are the same
            either way (each keeps its seed's data, initialisation and shuffling); only the
            seconds differ.  Ctrl-C stops every run at its last checkpoint, as with one job.
        threads: BLAS threads of each process of ``jobs > 1`` (this process keeps its own).

    Returns:
        The summary: optimizer name -> ``{"train_loss", "test_loss", "epochs", "seconds", "seconds_per_epoch", "steps"}``,
        and for a classifier ``"train_accuracy"`` and ``"test_accuracy"`` after ``"test_loss"``; with
        several seeds, the means over the seeds, with ``<key>_std``, ``seeds`` and ``per_seed``
        (:func:`_over_seeds`).

    Raises:
        TrainingError, RunFolderError: bad settings, or a folder that holds something else or is in use.
    """
    try:
        n_seeds = integer("seeds", seeds, minimum=1)
        first_seed = integer("seed", config.seed, minimum=0)
        n_jobs = integer("jobs", jobs, minimum=1)
        n_threads = integer("threads", threads, minimum=1)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for flag, value in (("layers", layers), ("figure", figure)):
        if not isinstance(value, bool):
            raise ConfigError(f"{flag}: expected True or False, got {value!r}")
    entries = _entries(optimizers)
    names = list(entries)
    if not names:
        raise TrainingError("optimizers: expected at least one name")
    locoprop = {name for name, e in entries.items() if e["optimizer"].startswith("locoprop")}
    if config.workers != 1 and not locoprop:
        raise ConfigError(f"workers: only applies to LocoProp, and none of {','.join(names)} is; drop it")
    out = config.out
    seed_list = [first_seed + i for i in range(n_seeds)]
    runs = {
        (name, seed): resolve(
            dataclasses.replace(
                config,
                **entries[name],
                seed=seed,
                out=run_folder(out, name, seed, n_seeds),
                workers=config.workers if name in locoprop else 1,  # LocoProp's layer threads
                progress=config.progress and n_jobs == 1,  # runs side by side print epoch lines only
            )
        )
        for seed in seed_list
        for name in names
    }  # each once, every one before the first trains
    record: dict[str, Any] = {
        "optimizers": names,
        "runs": {name: runs[name, first_seed].record() for name in names},
    }
    if n_seeds > 1:  # a single-seed comparison's record is as before, so its folders still resume
        record["seeds"] = seed_list
    record = json.loads(json.dumps(record))  # as it reads back from compare.json
    with contextlib.ExitStack() as stack:
        locked = os.path.isdir(out)
        if locked:  # a second command on this folder fails here, before anything is read
            stack.enter_context(runfolder.FolderLock(out))
        _check_folder(out, record, resume)  # creates nothing
        first = next(iter(runs.values()))

        def seed_data(seed: int) -> Dataset:
            return load_dataset(
                first.dataset, data_dir=first.data_dir, limit_train=first.limit_train, seed=seed
            )

        shared = data is not None
        if data is None:
            data = seed_data(first_seed)
        n_train = data.x_train.shape[0]
        for name in names:
            batch = record["runs"][name]["batch_size"]
            if batch > n_train:
                raise TrainingError(
                    f"batch-size: {batch} is larger than the training set ({n_train} examples)"
                )
            if runs[name, first_seed].validation:  # refused here, before the folder is made
                try:
                    check_validation(runs[name, first_seed].validation, n_train, batch)
                except ValueError as exc:
                    raise TrainingError(str(exc)) from None
        if not locked:
            stack.enter_context(runfolder.FolderLock(out))
        runfolder.remove_stale_temporaries(out)
        if _check_folder(out, record, resume):  # again, under the lock
            runfolder.write_json_atomic(os.path.join(out, RECORD), record)
        histories: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in names}

        def resumes(run: RunConfig) -> bool:
            return resume and os.path.isfile(os.path.join(run.out, "checkpoint.npz"))

        if n_jobs == 1:
            for seed in seed_list:  # seed by seed: one data set in memory at a time
                if seed != first_seed and not shared:
                    data = seed_data(seed)
                for name in names:
                    run = runs[name, seed]
                    histories[name].append(train(run, resume=resumes(run), data=data))
        else:  # each run in a process of its own; a seed's data goes with it, or is loaded there
            with cf.ProcessPoolExecutor(
                max_workers=n_jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(n_threads,),
            ) as pool:
                futures = {
                    key: pool.submit(
                        train, run, resumes(run), data if shared or key[1] == first_seed else None
                    )
                    for key, run in runs.items()
                }
                for seed in seed_list:
                    for name in names:
                        histories[name].append(futures[name, seed].result())
        summary = {
            name: _finals(group[0]) if n_seeds == 1 else _over_seeds([_finals(r) for r in group], seed_list)
            for name, group in histories.items()
        }
        runfolder.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
        title = f"{first.dataset}: {', '.join(names)}"
        curves = {
            name if n_seeds == 1 else f"{name} seed {seed}": rows
            for name, group in histories.items()
            for seed, rows in zip(seed_list, group, strict=True)
        }
        if figure:
            plot_compare(curves, os.path.join(out, "compare.png"), title=title)
        if layers and not plot_update_ratios(histories, os.path.join(out, UPDATE_FIGURE), title=title):
            tqdm.write(f"compare: {NO_UPDATE_RATIOS}")
        return summary
    raise AssertionError("unreachable")  # pragma: no cover (for mypy: the with block returns)


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table (with the test accuracy for classifiers).

    A summary of several seeds per optimizer (:func:`_over_seeds`) shows ``mean ± sd`` (the sample
    standard deviation over the seeds) for the losses, the accuracy and the seconds, under a line
    that says so.

    >>> print(format_summary({"a": {"train_loss": 1.0, "test_loss": 2.0, "epochs": 3, "seconds": 6.0,
    ...                             "seconds_per_epoch": 2.0}}))
    | optimizer | train loss | test loss | epochs | seconds | s/epoch |
    |---|---:|---:|---:|---:|---:|
    | a | 1.000 | 2.000 | 3 | 6.0 | 2.00 |
    """
    accuracy = any("test_accuracy" in s for s in summary.values())
    seeds = next((s["seeds"] for s in summary.values() if "seeds" in s), None)

    def shown(s: dict[str, Any], key: str, spec: str) -> str:
        value = format(s[key], spec)
        return f"{value} ± {format(s[f'{key}_std'], spec)}" if f"{key}_std" in s else value

    lines = (
        [] if seeds is None else [f"mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))}):", ""]
    )
    lines += [
        "| optimizer | train loss | test loss |"
        + (" test accuracy |" if accuracy else "")
        + " epochs | seconds | s/epoch |",
        "|---|---:|---:|" + ("---:|" if accuracy else "") + "---:|---:|---:|",
    ]
    for name, s in summary.items():
        scored = f" {shown(s, 'test_accuracy', '.4f')} |" if accuracy else ""
        lines.append(
            f"| {name} | {shown(s, 'train_loss', '.3f')} | {shown(s, 'test_loss', '.3f')} |{scored} "
            f"{s['epochs']} | {shown(s, 'seconds', '.1f')} | {s['seconds_per_epoch']:.2f} |"
        )
    return "\n".join(lines)


def histories(
    out: str, names: Sequence[str], seeds: Sequence[int] | None = None
) -> dict[str, list[dict[str, Any]]] | dict[str, list[list[dict[str, Any]]]]:
    """Each run's ``metrics.jsonl`` in the comparison folder ``out``.

    Args:
        out: the comparison's folder.
        names: the optimizers.
        seeds: the comparison's seeds (``compare.json``'s ``seeds``); ``None`` or one seed: one run
            per optimizer.

    Returns:
        Optimizer name -> rows; with several seeds, name -> one list of rows per seed, in order.
    """
    required = ("epoch", "train_loss", "seconds")

    def rows(name: str, seed: int, n: int) -> list[dict[str, Any]]:
        return runfolder.read_jsonl(os.path.join(run_folder(out, name, seed, n), "metrics.jsonl"), required)

    if seeds is None or len(seeds) == 1:
        return {name: rows(name, 0, 1) for name in names}
    return {name: [rows(name, seed, len(seeds)) for seed in seeds] for name in names}


def _loss_by(rows: Sequence[dict[str, Any]], seconds: float) -> tuple[float, int]:
    """``(train loss, epoch)`` of the last epoch finished within ``seconds`` of training (epoch 0: the start)."""
    done = [row for row in rows if row["seconds"] <= seconds]
    last = done[-1] if done else rows[0]
    return float(last["train_loss"]), int(last["epoch"])


def when(epoch: int) -> str:
    """How a reading names the epoch a loss was measured at: epoch 0 is the untrained start.

    >>> when(3), when(0)
    ('epoch 3', 'untrained start')
    """
    return "untrained start" if epoch == 0 else f"epoch {epoch}"


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1) of the values (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def ranked_finals(
    runs: Mapping[str, Sequence[Sequence[dict[str, Any]]]],
) -> tuple[dict[str, tuple[float, float]], list[str], str, str]:
    """Each run's final train loss over its seeds (mean, sd); the names from the lowest mean (ties by
    name); ``"after E epochs (mean ± sd over S seeds)"``; and the ranking ``"a m ± s < b m ± s"``."""
    finals = {n: _mean_sd([rows[-1]["train_loss"] for rows in group]) for n, group in runs.items()}
    order = sorted(finals, key=lambda n: (finals[n][0], n))
    epochs = max(rows[-1]["epoch"] for group in runs.values() for rows in group)
    seeds = max(len(group) for group in runs.values())
    ranking = " < ".join(f"{n} {finals[n][0]:.3f} ± {finals[n][1]:.3f}" for n in order)
    return finals, order, f"after {epochs} epochs (mean ± sd over {seeds} seeds)", ranking


def reading(
    runs: Mapping[str, Sequence[dict[str, Any]]] | Mapping[str, Sequence[Sequence[dict[str, Any]]]],
) -> str:
    """One line saying what a comparison shows, from its numbers: the order by train loss after the
    last epoch, and the order at the training seconds of the shortest run (per second of training),
    each run at the last epoch it had finished by then (measured losses, never interpolated).

    ``runs``: optimizer name -> its metrics rows, or (several seeds, :func:`histories`) name -> one
    list of rows per seed; then see :func:`_reading_over_seeds`.

    >>> rows = lambda *p: [{"epoch": e, "train_loss": l, "seconds": s} for e, (l, s) in enumerate(p)]
    >>> reading({"a": rows((9, 0), (5, 1), (1, 4)), "b": rows((9, 0), (6, 0.5), (3, 1))})
    'Per epoch, after 2 epochs: a 1.000 < b 3.000; per second, within 1.0 s of training (the shortest run): b 3.000 (epoch 2) < a 5.000 (epoch 1).'
    """
    groups: dict[str, list[Any]] = {  # name -> its runs (each a list of rows)
        n: [v] if v and isinstance(v[0], dict) else list(v) for n, v in runs.items()
    }
    if any(len(group) > 1 for group in groups.values()):
        return _reading_over_seeds(groups)
    return _reading_one({n: group[0] for n, group in groups.items()})


def leader_gap(
    finals: Mapping[str, tuple[float, float]], order: Sequence[str]
) -> tuple[str, str, float, float, str]:
    """The leader, the runner-up, the gap between their mean losses, the sum of their sds and whether
    the gap is beyond it: ``finals`` name -> (mean, sd), ``order`` the names by mean (two or more)."""
    best, second = order[0], order[1]
    gap, spread = finals[second][0] - finals[best][0], finals[best][1] + finals[second][1]
    return best, second, gap, spread, "beyond the seed spread" if gap > spread else "within the seed spread"


def _reading_over_seeds(runs: Mapping[str, Sequence[Sequence[dict[str, Any]]]]) -> str:
    r"""The reading of a comparison of several seeds per optimizer: mean ± sample sd over the seeds of
    the final train loss, in order; whether the best mean beats the runner-up's by more than the sum of
    their sds (:math:`\bar L_2 - \bar L_1 > s_1 + s_2`: "beyond the seed spread", else "within the seed
    spread"); and, per second, each mean ± sd at the training seconds of the shortest run.

    >>> rows = lambda *p: [{"epoch": e, "train_loss": l, "seconds": s} for e, (l, s) in enumerate(p)]
    >>> reading({"a": [rows((9, 0), (1.0, 1)), rows((9, 0), (1.2, 1))],
    ...          "b": [rows((9, 0), (2.0, 1)), rows((9, 0), (2.2, 1))]})  # doctest: +NORMALIZE_WHITESPACE
    'Per epoch, after 1 epochs (mean ± sd over 2 seeds): a 1.100 ± 0.141 < b 2.100 ± 0.141; a beats b by
    1.000, beyond the seed spread (0.283); per second, within 1.0 s of training (the shortest run): a
    1.100 ± 0.141 < b 2.100 ± 0.141.'
    """
    finals, order, head, ranking = ranked_finals(runs)
    line = f"Per epoch, {head}: {ranking}"
    if len(order) > 1:
        best, second, gap, spread, verdict = leader_gap(finals, order)
        line += f"; {best} beats {second} by {gap:.3f}, {verdict} ({spread:.3f})"
        shortest = min(rows[-1]["seconds"] for group in runs.values() for rows in group)
        by = {n: _mean_sd([_loss_by(rows, shortest)[0] for rows in group]) for n, group in runs.items()}
        untrained = {
            n for n, group in runs.items() if all(_loss_by(rows, shortest)[1] == 0 for rows in group)
        }
        line += f"; per second, within {shortest:.1f} s of training (the shortest run): " + " < ".join(
            f"{n} {by[n][0]:.3f} ± {by[n][1]:.3f}" + (" (untrained start)" if n in untrained else "")
            for n in sorted(by, key=lambda n: (by[n][0], n))
        )
    return line + "."


def _reading_one(runs: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """:func:`reading` of one run per optimizer."""
    finals = sorted(runs, key=lambda n: (runs[n][-1]["train_loss"], n))
    epochs = max(rows[-1]["epoch"] for rows in runs.values())
    line = f"Per epoch, after {epochs} epochs: " + " < ".join(
        f"{n} {runs[n][-1]['train_loss']:.3f}" for n in finals
    )
    if len(runs) > 1:
        shortest = min(rows[-1]["seconds"] for rows in runs.values())
        by = {n: _loss_by(rows, shortest) for n, rows in runs.items()}
        line += f"; per second, within {shortest:.1f} s of training (the shortest run): " + " < ".join(
            f"{n} {by[n][0]:.3f} ({when(by[n][1])})" for n in sorted(by, key=lambda n: (by[n][0], n))
        )
    return line + "."
