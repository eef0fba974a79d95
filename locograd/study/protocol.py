r"""The tuning protocols, the same for every optimizer, and :func:`run_study`.

**Successive halving** (``protocol = "halving"``, the default) decides at the final budget:

* **Budget.** Every point's run is a prefix of its final-budget run (``final.epochs`` on the
  study's training set, seed 0, the schedule defined on the final budget): a point trained to a
  rung is that run stopped there, and continues from its checkpoint.
* **Rungs.** Rungs end at 1/9, 1/3 and 1 of the final budget for grids of 9 points or more, at 1/3
  and 1 for smaller ones (:func:`~.spec.rung_epochs`).  After each rung, the best third of its
  points (rounded up, never fewer than 3, or all where there are fewer; :func:`~.spec.survivors`)
  continues; so at least 3 points train the whole budget and the choice is made among them.
  A 5 x 5 grid goes 25 -> 9 -> 3 and trains about 6.8 full-budget runs (25/9 + 9 x 2/9 +
  3 x 2/3), 8.8 with the two further final seeds.
* **Edges** are judged at rung 0 (below), and extension points join rung 0.
* **The winner's** full-budget run is its final seed 0 (the same trial); seeds 1, 2, ... follow.
  The eliminated points' checkpoints are deleted; the survivors' stay in the study folder (never
  committed), and a survivor whose checkpoint was lost restarts from scratch.

**Grid** (``protocol = "grid"``, the studies before successive halving):

* **Tuning.** Every point of the optimizer's search space (the product of its
  axes) trains for the tuning budget (``tuning.epochs`` on the first
  ``tuning.subset`` images, ``tuning.seeds`` seeds); points rank by the mean
  of the data set's metric over the tuning seeds, diverged (or failed) points last.
* **Final runs.** The best point trains with ``final.seeds`` seeds (or the
  optimizer's ``seeds``) for ``final.epochs`` on the whole training set.

Both rank by the data set's ``metric`` (``train_loss``, ``validation_loss`` or
``validation_accuracy``, at the last epoch of the budget judged), never by a test metric.

**Edge extension** (both).  Where the best value of an axis is its smallest or
largest, one new point one step beyond trains, the other axes at their best
values.  The step repeats the axis' outermost ratio (``v[-1] / v[-2]`` up,
``v[0] / v[1]`` down; the difference where a value is not positive), rounded
for integers and never past a bound (``steps >= 1``, ``lr > 0``, ...).  This
repeats while the best point sits on an edge, up to ``extend_limit`` times
per axis and direction.

>>> beyond((1e-3, 3e-3, 1e-2), "up", integer=False, name="lr")
0.0333333
>>> beyond((1, 2, 5), "down", integer=True, name="steps") is None
True
>>> beyond((2, 5, 10), "down", integer=True, name="steps")
1
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import RunFolderError
from ..experiments.config import TrainConfig, check_validation, resolve
from ..experiments.models import autoencoder_layout
from ..experiments.optimizers import settings
from ..experiments.runfolder import (
    FolderLock,
    append_jsonl,
    read_jsonl,
    remove_stale_temporaries,
    write_text_atomic,
)
from ..experiments.tasks import TASKS
from .execute import TOKEN_NAME, DaskRunner, LocalRunner, StudyError, cores, gpu_count, parse_cluster
from .numerics import numerics_version
from .spec import (
    METRICS,
    NUMERIC,
    DatasetSpec,
    OptimizerSpec,
    SpecError,
    StudySpec,
    load,
    round_sig,
    survivors,
)
from .trials import Store, Trial, trial_key

Echo = Callable[[str], None]

SCHEDULER_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?[^\s:/]+(?::\d{1,5})?")
"""A Dask scheduler address: ``tcp://HOST:8786``, ``HOST:8786`` or ``tls://HOST``."""

MAX_PER_CORE = 4
"""``--jobs`` and ``--threads`` are refused above this many times the machine's cores."""


def beyond(values: Sequence[Any], direction: str, *, integer: bool, name: str) -> Any:
    """The value one step beyond ``values`` (ascending) in ``direction`` (``"up"``/``"down"``), or ``None``.

    ``None`` where the step would pass the hyperparameter's bound (:data:`~.spec.NUMERIC`)
    or where ``values`` has fewer than two entries (no step to repeat).
    """
    if len(values) < 2:
        return None
    if direction == "up":
        a, b = float(values[-2]), float(values[-1])
        new = b * (b / a) if a > 0 and b > 0 else b + (b - a)
    else:
        a, b = float(values[0]), float(values[1])
        new = a * (a / b) if a > 0 and b > 0 else a - (b - a)
    if integer:
        new = round(new)
        if direction == "up" and new <= values[-1]:
            new = int(values[-1]) + 1
        if direction == "down" and new >= values[0]:
            new = int(values[0]) - 1
        new = int(new)
    else:
        new = round_sig(new)
    _, low, low_open, high, high_open = NUMERIC[name]
    if low is not None and (new <= low if low_open else new < low):
        return None
    if high is not None and (new >= high if high_open else new > high):
        return None
    return new


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _point_text(point: dict[str, Any]) -> str:
    return ",".join(f"{k}={_value(v)}" for k, v in sorted(point.items())) or "defaults"


def _frozen(point: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(point.items()))


def _file_digest(path: str) -> str:
    """The SHA-256 of a file's bytes (a data set of your own: the trials' identity follows its content).

    Raises:
        SpecError-like ValueError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ValueError(f"file: cannot read {path} ({exc.strerror or exc}); check the path") from None
    return digest.hexdigest()


class Planner:
    """Builds the trials of a study (their keys, configs and data descriptions)."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self._digests: dict[str, str] = {}

    @staticmethod
    def _model(d: DatasetSpec, hidden: str | None, widths: tuple[int, ...] | None) -> dict[str, Any]:
        """The model in a trial's identity: a named set's autoencoder by its sizes (as every recorded
        trial has it); a classifier, or a file's autoencoder, by its task and overrides (its widths
        at the ends are the data's)."""
        if d.model == "autoencoder" and d.file is None:
            layout = autoencoder_layout(d.name, hidden, None if widths is None else list(widths))
            return {"sizes": layout.sizes, "activations": layout.activations}
        return {"task": d.model, "hidden": hidden, "widths": None if widths is None else list(widths)}

    def _data_identity(self, d: DatasetSpec, data: dict[str, Any]) -> dict[str, Any]:
        """The data in a trial's identity: what the data is, not where it is (no ``data_dir``; a
        file by its table name and the SHA-256 of its bytes, never its path)."""
        identity = {k: v for k, v in data.items() if k != "data_dir"}
        if d.file is not None:
            if d.file not in self._digests:
                self._digests[d.file] = _file_digest(d.file)
            identity.update(name=d.name, sha256=self._digests[d.file])
        return identity

    def trial(self, d: DatasetSpec, o: OptimizerSpec, point: dict[str, Any], seed: int, phase: str) -> Trial:
        """The trial of ``o`` at ``point`` on ``d`` with ``seed`` in ``phase`` (``"tuning"``/``"final"``)."""
        spec = self.spec
        hp = {**o.fixed, **point}
        resolved = settings(o.base, d.source, **hp)
        if phase == "tuning" and spec.protocol == "grid":
            epochs = spec.tuning_epochs
            limit = spec.tuning_subset if spec.tuning_subset is not None else d.limit_train
        else:
            epochs, limit = spec.final_epochs, d.limit_train
        hidden = o.hidden if o.hidden is not None else d.hidden
        widths = o.widths if o.widths is not None else d.widths
        data = {
            "name": d.source,
            "data_dir": d.data_dir,
            "limit_train": limit,
            "limit_test": d.limit_test,
            "data_seed": d.data_seed,
        }
        identity = {
            "numerics": numerics_version(o.base),
            "settings": resolved,
            "schedule": o.schedule,
            "model": self._model(d, hidden, widths),
            "data": self._data_identity(d, data),
            "batch_size": d.batch_size,
            "dtype": spec.dtype,
            "device": spec.device,
            "seed": seed,
            "epochs": epochs,
        }
        if d.validation:  # only where held out: the trials of a study without one keep their keys
            identity["validation"] = d.validation
        config: dict[str, Any] = {
            "dataset": d.source,
            "optimizer": o.base,
            "epochs": epochs,
            "batch_size": d.batch_size,
            "seed": seed,
            "limit_train": limit,
            "device": spec.device,
            "dtype": spec.dtype,
            "validation": d.validation,
            **hp,
        }
        if o.schedule is not None:
            config.update(
                schedule="warmup-linear-decay",
                warmup=o.schedule["warmup"],
                schedule_total=o.schedule["total"],
            )
        if hidden is not None:
            config["hidden"] = hidden
        if widths is not None:
            config["widths"] = list(widths)
        if d.model != "autoencoder":
            config["model"] = d.model
        key = trial_key(identity)
        # resolved once, here; the worker trains it as it is (this machine's checks are the worker's)
        run = resolve(TrainConfig(**config, out=os.path.join("trials", key)), machine=False)
        name = f"{d.name}/{o.name} {phase} {_point_text(hp)} seed {seed}"
        return Trial(key, name, d.name, o.name, phase, dict(point), seed, identity, run, data)


Round = tuple[list[Trial], list[str]]
"""One round of a protocol: the trials to run (those already done are skipped), and the keys of
trials whose checkpoints are no longer needed (points successive halving eliminated)."""


class Tuning:
    """The grid protocol for one optimizer on one data set: its points, their scores, the edge
    extensions, the chosen point and its final trials (see the module docstring)."""

    def __init__(self, planner: Planner, d: DatasetSpec, o: OptimizerSpec) -> None:
        self.planner, self.d, self.o = planner, d, o
        self.spec = planner.spec
        names = [a.name for a in o.axes]
        self.points: list[dict[str, Any]] = [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*(a.values for a in o.axes))
        ]
        self.values = {a.name: set(a.values) for a in o.axes}
        self.integer = {a.name: a.integer for a in o.axes}
        self.extensions: list[dict[str, Any]] = []
        self.count: collections.Counter[tuple[str, str]] = collections.Counter()
        self.final: list[Trial] = []
        self.chosen: dict[str, Any] | None = None
        self.metric = d.metric
        self.sign = -1.0 if METRICS[d.metric] == "max" else 1.0  # rank by sign * value, lowest first

    def trials(self, point: dict[str, Any]) -> list[Trial]:
        """The tuning trials of one point (one per tuning seed)."""
        return [self.planner.trial(self.d, self.o, point, s, "tuning") for s in range(self.spec.tuning_seeds)]

    def all_trials(self) -> list[Trial]:
        """The tuning trials of every point so far."""
        return [t for p in self.points for t in self.trials(p)]

    def value(self, point: dict[str, Any], records: dict[str, dict[str, Any]]) -> float | None:
        """The mean of the metric over the tuning seeds (at their last epoch); ``None`` if one diverged,
        failed or is missing."""
        values = []
        for t in self.trials(point):
            r = records.get(t.key)
            v = None if r is None or r["status"] != "finished" else r.get(f"final_{self.metric}")
            if v is None or not math.isfinite(v):
                return None
            values.append(float(v))
        return sum(values) / len(values)

    def score(self, point: dict[str, Any], records: dict[str, dict[str, Any]]) -> float:
        """The value to rank by, lowest best (the metric, negated where higher is better); ``inf``
        where :meth:`value` is ``None``."""
        v = self.value(point, records)
        return math.inf if v is None else self.sign * v

    def best(self, records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The best point (ties: the first in order), ``None`` if every point diverged."""
        scored = [(self.score(p, records), i) for i, p in enumerate(self.points)]
        loss, i = min(scored)
        return None if math.isinf(loss) else self.points[i]

    def extend(self, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """New points one step beyond the edges the best point sits on (see the module docstring)."""
        best = self.best(records)
        if best is None:
            return []
        known = {_frozen(p) for p in self.points}
        new: list[dict[str, Any]] = []
        for axis, vals in self.values.items():
            ordered = sorted(vals)
            for direction, edge in (("down", ordered[0]), ("up", ordered[-1])):
                if best[axis] != edge or self.count[(axis, direction)] >= self.spec.extend_limit:
                    continue
                value = beyond(ordered, direction, integer=self.integer[axis], name=axis)
                if value is None:
                    continue
                point = {**best, axis: value}
                if _frozen(point) in known:
                    continue
                self.count[(axis, direction)] += 1
                self.values[axis].add(value)
                self.points.append(point)
                known.add(_frozen(point))
                self.extensions.append(
                    {
                        "axis": axis,
                        "direction": direction,
                        "from": edge,
                        "value": value,
                        "round": self.count[(axis, direction)],
                        "point": point,
                    }
                )
                new.append(point)
        return new

    def _extensions(self, records: dict[str, dict[str, Any]], say: Echo) -> list[dict[str, Any]]:
        new = self.extend(records)
        for ext in self.extensions[len(self.extensions) - len(new) :]:
            say(
                f"study: {self.d.name}/{self.o.name}: best {ext['axis']} on the {ext['direction']} edge; "
                f"trying {_point_text(ext['point'])}"
            )
        return new

    def _finals(self, records: dict[str, dict[str, Any]], say: Echo) -> list[Trial]:
        if self.chosen is None:
            say(f"study: {self.d.name}/{self.o.name}: every tuning point diverged or failed; no final runs")
            return []
        self.final = [
            self.planner.trial(self.d, self.o, self.chosen, s, "final")
            for s in range(self.spec.seeds_of(self.o))
        ]
        return self.final

    def training(self) -> list[str]:
        """The keys of the trials this protocol may still continue (none: grid trials run once)."""
        return []

    def rounds(self, store: Store, say: Echo) -> Iterator[Round]:
        """The protocol as rounds of trials; each round is planned from the records of the ones before."""
        yield self.all_trials(), []
        while new := self._extensions(store.records, say):
            yield [t for p in new for t in self.trials(p)], []
        self.chosen = self.best(store.records)
        yield self._finals(store.records, say), []


class Halving(Tuning):
    """Successive halving at the final budget for one optimizer on one data set (see the module docstring).

    Attributes:
        rungs: the epoch at which each rung ends (:meth:`~.spec.StudySpec.rungs_of`).
        ladder: per rung, its epochs and the points that trained to it (filled as the rounds run).
    """

    def __init__(self, planner: Planner, d: DatasetSpec, o: OptimizerSpec) -> None:
        super().__init__(planner, d, o)
        self.rungs = self.spec.rungs_of(o)
        self.ladder: list[dict[str, Any]] = []
        self.store: Store | None = None

    def trials(self, point: dict[str, Any]) -> list[Trial]:
        """The point's full-budget run (seed 0): the one trial every rung trains a prefix of."""
        return [self.planner.trial(self.d, self.o, point, 0, "tuning")]

    def at(self, point: dict[str, Any], epochs: int) -> Trial:
        """The point's run trained to ``epochs`` (a prefix of its full-budget trial, the same key)."""
        full = self.trials(point)[0]
        if epochs == full.run.epochs:
            return full
        return dataclasses.replace(
            full, run=full.run.with_epochs(epochs), name=f"{full.name} (rung to epoch {epochs})"
        )

    def value_at(self, point: dict[str, Any], epochs: int) -> float | None:
        """The metric of the point's run at ``epochs`` (its metrics row there); ``None`` where the run
        diverged before it, failed, or is missing."""
        assert self.store is not None, "value_at reads the store that rounds() runs on"
        key = self.trials(point)[0].key
        if key not in self.store.records:
            return None
        try:
            rows = self.store.metrics(key)
        except RunFolderError:
            return None
        v = next((r.get(self.metric) for r in rows if r.get("epoch") == epochs), None)
        return float(v) if v is not None and math.isfinite(v) else None

    def value(self, point: dict[str, Any], records: dict[str, dict[str, Any]]) -> float | None:
        """The metric at the last rung the point reached (``records``: the store's)."""
        reached = [rung["epochs"] for rung in self.ladder if point in rung["points"]]
        return self.value_at(point, reached[-1]) if reached else None

    def _rank(self, points: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
        """``points`` that reached ``epochs`` with a finite metric, best first (ties: the first in order)."""
        scored = [
            (self.sign * v, i) for i, p in enumerate(points) if (v := self.value_at(p, epochs)) is not None
        ]
        return [points[i] for _, i in sorted(scored)]

    def best(self, records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The best point of the last rung run so far, ``None`` if none has a finite metric."""
        if not self.ladder:
            return None
        ranked = self._rank(self.ladder[-1]["points"], self.ladder[-1]["epochs"])
        return ranked[0] if ranked else None

    def training(self) -> list[str]:
        """The keys of the points in the last rung planned so far (they continue from their checkpoints)."""
        return [self.trials(p)[0].key for p in self.ladder[-1]["points"]] if self.ladder else []

    def rounds(self, store: Store, say: Echo) -> Iterator[Round]:
        """Rung 0 (with its edge extensions), then each rung's survivors, then the final seeds."""
        self.store = store
        first = {"rung": 0, "epochs": self.rungs[0], "points": list(self.points)}
        self.ladder = [first]
        yield [self.at(p, self.rungs[0]) for p in self.points], []
        while new := self._extensions(store.records, say):
            first["points"] = list(self.points)
            yield [self.at(p, self.rungs[0]) for p in new], []
        for r, epochs in enumerate(self.rungs[1:], start=1):
            previous = self.ladder[-1]
            ranked = self._rank(previous["points"], previous["epochs"])
            going = ranked[: survivors(len(previous["points"]))]
            previous["survivors"] = list(going)
            dropped = [self.trials(p)[0].key for p in previous["points"] if p not in going]
            self.ladder.append({"rung": r, "epochs": epochs, "points": list(going)})
            say(
                f"study: {self.d.name}/{self.o.name}: rung {r - 1} (epoch {previous['epochs']}) keeps "
                f"{len(going)} of {len(previous['points'])} points; rung {r} trains them to epoch {epochs}"
            )
            yield [self.at(p, epochs) for p in going], dropped
        last = self.ladder[-1]
        ranked = self._rank(last["points"], last["epochs"])
        last["survivors"] = ranked[:1]
        self.chosen = ranked[0] if ranked else None
        yield self._finals(store.records, say), []


def tunings_of(planner: Planner) -> list[Tuning]:
    """One protocol object per data set and optimizer: :class:`Halving` or :class:`Tuning` (grid)."""
    kind = Halving if planner.spec.protocol == "halving" else Tuning
    return [kind(planner, d, o) for d in planner.spec.datasets for o in planner.spec.optimizers]


def drive(
    tunings: Sequence[Tuning],
    store: Store,
    say: Echo,
    execute: Callable[[list[Trial]], None],
    *,
    drop: bool = True,
) -> None:
    """Run every protocol's rounds in lockstep: each round's trials of every optimizer at once
    (``drop``: delete the checkpoints of eliminated points before the next round)."""
    pending = [tu.rounds(store, say) for tu in tunings]
    while pending:
        batch: list[Trial] = []
        dropped: list[str] = []
        still = []
        for rounds in pending:
            step = next(rounds, None)
            if step is not None:
                batch += step[0]
                dropped += step[1]
                still.append(rounds)
        pending = still
        alive = {key for tu in tunings for key in tu.training()}
        for key in dropped if drop else []:
            if key not in alive:  # another optimizer may share the trial (the same settings) and go on
                store.drop_checkpoint(key)
        execute(batch)


def planned_keys(spec: StudySpec, out: str) -> list[str]:
    """The trial keys the protocol plans for ``spec`` given the records in the study folder ``out``,
    in order, without running or changing anything (a replay: how the committed studies are checked
    to plan the trials they ran)."""
    store = Store(out, echo=lambda line: None)
    store.load(repair=False)
    keys: list[str] = []

    def note(trials: list[Trial]) -> None:
        keys.extend(t.key for t in trials if t.key not in keys)

    drive(tunings_of(Planner(spec)), store, lambda line: None, note, drop=False)
    return keys


def _machine_jobs(device: str, jobs: int | None, threads: int | None) -> tuple[int, int]:
    n = cores()
    if device == "gpu":
        gpus = gpu_count()
        if gpus == 0:
            raise StudyError("device: gpu asked for, but no usable GPU was found (locograd info says why)")
        if jobs is not None and jobs > gpus:
            raise StudyError(f"jobs: expected at most {gpus} (one trial per GPU), got {jobs}")
        return (jobs or gpus), (threads or 1)
    if jobs is None and threads is None:
        return n, 1
    if jobs is None:
        assert threads is not None
        return max(1, n // threads), threads
    if threads is None:
        return jobs, max(1, n // jobs)
    return jobs, threads


@contextlib.contextmanager
def _held(lock: FolderLock) -> Any:
    """Release an acquired ``lock`` at the end of the block."""
    try:
        yield lock
    finally:
        lock.release()


def _check_data(spec: StudySpec) -> None:
    """A data set missing on the machine, a file that is not a data set, or data its task cannot
    train on (a classifier without labels) is reported before any trial runs."""
    from ..data import find_mnist_files
    from ..data import load as load_dataset

    for d in spec.datasets:
        if d.file is None and d.name != "curves":
            find_mnist_files(d.name, data_dir=d.data_dir)
        if d.file is not None or d.model != "autoencoder" or d.validation:
            data = load_dataset(d.source, data_dir=d.data_dir, limit_train=d.limit_train, seed=d.data_seed)
            task = TASKS[d.model]
            task.check(data, task.model(data, d.hidden, None if d.widths is None else list(d.widths)))
            if d.validation:  # the data's own size: a file's, or fewer images than limit_train asked for
                try:
                    check_validation(
                        d.validation, data.x_train.shape[0], d.batch_size, f"{d.name}'s training set"
                    )
                except ValueError as exc:
                    raise SpecError(f"datasets.{d.name}.{exc}") from None


def _check_out(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"out: {out} is a file, expected a study folder")
    existing = out
    while not os.path.exists(existing):  # the folder, or the nearest folder above it that exists
        existing = os.path.dirname(existing) or "."
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the study folder" if existing == out else f"{existing}, where the study folder would be made,"
        raise RunFolderError(f"out: {what} is not writable ({out}); choose another --out")
    if os.path.isdir(out):
        entries = [e for e in os.listdir(out) if not e.startswith(".")]
        ours = {"trials", "trials.jsonl", "study.jsonl", "spec.toml", "report.md", "summary.json", "figures"}
        other = [e for e in entries if e not in ours]
        if other and not os.path.exists(os.path.join(out, "study.jsonl")):
            raise RunFolderError(
                f"out: {out} holds something other than a study ({sorted(other)[0]}, ...); choose another --out"
            )


def run_study(
    spec_path: str,
    out: str | None = None,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    device: str | None = None,
    progress: bool = True,
    echo: Echo | None = None,
    command: str | None = None,
    layers: bool = False,
) -> dict[str, Any]:
    """Run (or continue) the study of ``spec_path`` in ``out``; returns the summary (also ``OUT/summary.json``).

    Args:
        spec_path: the TOML spec.
        out: the study folder (default ``runs/study-NAME``).
        jobs: trials at once on the local pool (default: cores / threads; on GPUs one per GPU).
        threads: BLAS threads per trial (default: cores / jobs, at least 1).
        scheduler: ``tcp://HOST:PORT`` of a Dask scheduler.
        cluster: ``local:N``: a Dask LocalCluster of N single-threaded workers.
        device: ``cpu``/``gpu``; overrides the spec's.
        progress: show the tqdm bar.
        echo: where lines go (default: ``tqdm.write``).
        command: the command line, for the report (default ``sys.argv``).
        layers: the report also plots each final run's update ratio per weight layer.

    Raises:
        SpecError, StudyError, RunFolderError, DataError: before any trial runs, with one line.
    """
    import dataclasses

    from tqdm.auto import tqdm

    from .report import write_report

    say: Echo = echo if echo is not None else tqdm.write
    spec = load(spec_path)
    if device is not None:
        if device not in ("cpu", "gpu"):
            raise StudyError(f"device: expected one of cpu, gpu, got {device!r}")
        spec = dataclasses.replace(spec, device=device)
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise StudyError(f"{name}: expected an integer >= 1, got {value!r}")
    if scheduler is not None and cluster is not None:
        raise StudyError("scheduler: give --scheduler or --cluster, not both")
    if scheduler is not None and not SCHEDULER_ADDRESS.fullmatch(scheduler.strip()):
        raise StudyError(f"scheduler: expected an address such as tcp://HOST:8786, got {scheduler!r}")
    limit = MAX_PER_CORE * cores()
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and value > limit:
            raise StudyError(
                f"{name}: expected at most {limit} ({MAX_PER_CORE} x the {cores()} cores of this machine), "
                f"got {value}"
            )
    n_local = parse_cluster(cluster) if cluster is not None else None
    if (scheduler is not None or n_local is not None) and jobs is not None:
        raise StudyError(
            "jobs: a Dask cluster runs as many trials at once as it has worker threads; drop --jobs"
        )
    _check_data(spec)
    out = os.path.abspath(out if out is not None else os.path.join("runs", f"study-{spec.name}"))
    _check_out(out)
    tunings = tunings_of(Planner(spec))

    runner: LocalRunner | DaskRunner
    if scheduler is not None or n_local is not None:
        if spec.device == "gpu" and n_local is not None and gpu_count() == 0:
            raise StudyError("device: gpu asked for, but no usable GPU was found (locograd info says why)")
        runner = DaskRunner(out, scheduler, n_local, threads or 1, spec.device)
    else:
        j, t = _machine_jobs(spec.device, jobs, threads)
        runner = LocalRunner(out, j, t, spec.device)
    try:
        with open(spec_path, encoding="utf-8") as handle:
            spec_text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"spec: cannot read {spec_path} ({exc})") from None

    started = time.time()
    token = secrets.token_hex(16)
    # Everything that can fail without a trial (a cluster that cannot be reached, a lock held by another
    # study) fails before the study folder is created or changed.
    runner.start(token)
    lock = FolderLock(out, "study folder")
    try:
        lock.acquire()
    except BaseException:
        runner.close()
        raise
    with _held(lock):
        remove_stale_temporaries(out)
        write_text_atomic(os.path.join(out, TOKEN_NAME), token + "\n")
        write_text_atomic(os.path.join(out, "spec.toml"), spec_text)
        store = Store(out, echo=say)
        store.load()
        cmd = (
            command if command is not None else " ".join(shlex.quote(a) for a in ["locograd", *sys.argv[1:]])
        )
        session = secrets.token_hex(4)
        append_jsonl(
            os.path.join(out, "study.jsonl"),
            {
                "event": "start",
                "session": session,
                "command": cmd,
                "started": started,
                "runner": runner.describe(),
            },
        )
        say(f"study {spec.name}: {len(store.records)} trials already done in {out}; {runner.describe()}")
        bar = tqdm(total=0, desc=f"study {spec.name}", unit="trial", disable=not progress, dynamic_ncols=True)
        failed: dict[str, str] = {}
        warned: list[str] = []

        def on_done(trial: Trial, result: dict[str, Any]) -> None:
            record = dict(result["record"])
            record.update(
                dataset=trial.dataset,
                optimizer=trial.optimizer,
                phase=trial.phase,
                point=trial.point,
                seed=trial.seed,
                jobs=runner.jobs,
                runner=runner.kind,
            )
            before = store.records.get(trial.key)
            if record.get("resumed") and before is not None and before["status"] == "finished":
                # a rung's continuation from the checkpoint: the trial's time is its rungs' together
                record["task_seconds"] = record.get("task_seconds", 0.0) + before.get("task_seconds", 0.0)
            for note in result["notes"]:
                say(f"study: {note}")
            if record.get("malloc_trim_threshold") and not warned:
                warned.append(record["host"])
                say(
                    f"study: a worker on {record['host']} has MALLOC_TRIM_THRESHOLD_ set (Dask's nannies set it): "
                    "large NumPy temporaries then cost page faults and trials train up to 2.5x slower; start the "
                    "workers without it (see the README's Studies section)"
                )
            store.add(record, result["metrics"], result["config"])
            loss = record["final_train_loss"]
            what = (
                f"train loss {loss:.4f}"
                if record["status"] == "finished"
                else f"DIVERGED ({record['message']})"
            )
            caught = record.get("warnings") or {}
            if caught:
                what += (
                    " (warnings: " + ", ".join(f"{v['count']} {k}" for k, v in sorted(caught.items())) + ")"
                )
            say(f"{trial.name}: {what}, {record['seconds']:.1f} s training")
            bar.update()

        def on_failed(trial: Trial, why: str) -> None:
            failed[trial.key] = why
            say(f"{trial.name}: FAILED ({why}); it runs again when the study is re-run")
            bar.update()

        def execute(trials: list[Trial]) -> None:
            longest: dict[str, Trial] = {}
            for t in trials:  # one request per trial: two optimizers may plan the same one at other rungs
                if t.key not in longest or t.run.epochs > longest[t.key].run.epochs:
                    longest[t.key] = t
            trials = list(longest.values())
            todo, seen = [], set()
            for t in trials:
                if t.key in store.records:
                    why = store.matches(t.key, t.run.settings)
                    if why is not None:
                        store.forget(t.key, why)
                if not store.done(t.key, t.run.epochs) and t.key not in seen and t.key not in failed:
                    todo.append(t)
                    seen.add(t.key)
            bar.total += len(todo)
            bar.refresh()
            if todo:
                runner.run(todo, on_done, on_failed)

        try:
            drive(tunings, store, say, execute)
        except BaseException:  # Ctrl-C or an error: stop the workers now, their checkpoints stay
            bar.close()
            with contextlib.suppress(Exception):
                runner.close(abort=True)
            raise
        bar.close()
        runner.close()
        elapsed = time.time() - started
        append_jsonl(
            os.path.join(out, "study.jsonl"),
            {
                "event": "end",
                "session": session,
                "command": cmd,
                "started": started,
                "seconds": elapsed,
                "runner": runner.describe(),
                "jobs": runner.jobs,
                "threads": runner.threads,
                "appended": len(store.appended),
                "failed": len(failed),
            },
        )
        history = read_jsonl(os.path.join(out, "study.jsonl"), required=("command",))
        summary = write_report(spec, out, tunings, store, failed, history, runner, layers=layers)
    say(f"study {spec.name}: report in {os.path.join(out, 'report.md')} ({elapsed:.1f} s)")
    return summary


__all__ = ["Halving", "Planner", "Tuning", "beyond", "drive", "planned_keys", "run_study", "tunings_of"]
