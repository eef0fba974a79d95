r"""The study spec: a TOML file, read with ``tomllib`` and validated key by key before any trial runs.

A spec (see ``studies/smoke.toml`` for a commented one)::

    name = "smoke"            # optional; default the file's stem; the default --out is runs/study-NAME
    device = "cpu"            # cpu | gpu
    dtype = "float32"         # float32 | float64
    extend_limit = 3          # edge extensions per hyperparameter and direction
    protocol = "halving"      # halving (default): successive halving at the final budget;
                              # grid: every point for the [tuning] budget, then the best one's final runs

    [final]                   # the final budget, on the study's training set
    epochs = 9                # halving: rungs end at 1/9, 1/3 and 1 of it (1/3 and 1 below 9 points)
    seeds = 3                 # default 3

    [tuning]                  # grid protocol only: every point of every search space, for this budget
    epochs = 1
    subset = 200              # the first N training images (default: the study's training set)
    seeds = 1                 # tuning seeds per point (default 1)

    [datasets.curves]         # one table per data set
    limit_train = 1000        # the study's training set: the first N images (default all)
    limit_test = 1000         # the first N test images (default all)
    batch_size = 100          # default 200 on curves, 1000 on MNIST-format sets
    targets = ["auto", "second-order", 150]   # time-to-target losses; auto: the best first-order
                              # baseline's final loss (also spelled "first-order"); "second-order": the
                              # best of kfac, shampoo and foof (default ["auto"]; none without a
                              # baseline; a named target without its baseline is an error)
    data_dir = "/data"        # MNIST-format sets: where the files are
    data_seed = 0             # CURVES: the generation seed (the same data for every trial)
    hidden = "sigmoid"        # model override: the hidden transfer
    widths = [400, 200, 100, 50, 25, 6]   # model override: encoder widths, the code layer last
    model = "autoencoder"     # autoencoder (default) | classifier | cnn (the labels' classes, accuracy reported)
    validation = 5000         # the last N images of the study's training set, held out (default none)
    metric = "validation_loss"   # what tuning ranks by: train_loss (the default of an autoencoder),
                              # validation_loss or validation_accuracy (a classifier's default; it
                              # needs validation); test metrics are reported, never ranked on

    [datasets.mine]           # your own data: any table name, and the file
    file = "data/mine.npz"    # x_train, x_test (and y_train, y_test for a classifier)

    [optimizers.adam]
    lr = {min = 1e-4, max = 1e-2, n = 5}  # a log range ...
    [optimizers.locoprop-m]
    lr = [1e-5, 3e-5, 1e-4]   # ... or a list of values: a search axis
    steps = 10                # a single value: a fixed setting
    schedule = "released"     # constant (default) | released | {warmup = W, total = T}
    seeds = 5                 # final seeds of this optimizer (default: final.seeds)
    [optimizers.locoprop-m-k5]
    base = "locoprop-m"       # a named variant: another optimizer's settings with changes
    steps = 5

Every error is ONE line naming the key path, e.g.
``optimizers.adam.lr: expected a list of numbers or {min, max, n}, got "fast"``.

>>> spec = parse({"final": {"epochs": 3, "seeds": 2},
...               "datasets": {"curves": {"limit_train": 200}},
...               "optimizers": {"adam": {"lr": {"min": 1e-3, "max": 1e-2, "n": 3}}}}, name="doc")
>>> spec.optimizers[0].axes[0].values
(0.001, 0.00316228, 0.01)
>>> parse({"final": {"epochs": 3}, "datasets": {"curves": {}},
...        "optimizers": {"adam": {"lr": "fast"}}}, name="doc")
Traceback (most recent call last):
...
locograd.study.spec.SpecError: optimizers.adam.lr: expected a list of numbers or {min, max, n}, got "fast"
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import sys
from fractions import Fraction
from typing import Any

from ..data import DATASETS
from ..data.registry import is_file_name
from ..experiments.config import check_validation
from ..experiments.models import HIDDEN_TRANSFERS
from ..experiments.optimizers import INNER, OPTIMIZERS, SECOND_ORDER, SOLVERS, settings
from ..experiments.tasks import TASKS
from ..optim.presets import RELEASED_TOTAL, RELEASED_WARMUP

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10)
    import tomli as tomllib


class SpecError(ValueError):
    """A study spec that cannot be used; the message is one line naming the key path."""


FIRST_ORDER_BASELINES = ("sgd", "momentum", "adam", "rmsprop-tf1")
"""The first-order baselines whose best final loss is the ``auto`` target."""

BASELINE_TARGETS = {"auto": FIRST_ORDER_BASELINES, "second-order": SECOND_ORDER}
"""The named targets: the best final mean train loss of these bases, variants included (the
second-order ones are :data:`locograd.experiments.optimizers.SECOND_ORDER`)."""

_TARGET_NAMES = {"auto": "auto", "first-order": "auto", "second-order": "second-order"}

NUMERIC = {
    # name: (integer?, low, low_open, high, high_open)
    "lr": (False, 0.0, True, None, False),
    "gamma": (False, 0.0, True, None, False),
    "eta": (False, 0.0, True, None, False),
    "damping": (False, 0.0, True, None, False),
    "steps": (True, 1, False, None, False),
}
"""The searchable hyperparameters and their bounds (edge extension never passes them)."""

CHOICES = {"solver": SOLVERS, "inner": INNER}
"""Hyperparameters that take a name (fixed settings only)."""

TRAIN_SIZES = {"curves": 20000, "mnist": 60000, "fashion-mnist": 60000}
"""Training images of each data set when ``limit_train`` is not given (CURVES: the generated default)."""

FILE_SETS = ("mnist", "fashion-mnist")
"""Sets read from files: ``limit_train`` cannot exceed their size (CURVES generates as many as asked)."""

MAX_RANGE_POINTS = 100
"""The most points a log range ``{min, max, n}`` may ask for."""

RELEASED_SCHEDULE = {"warmup": RELEASED_WARMUP, "total": RELEASED_TOTAL}
PROTOCOLS = ("halving", "grid")
"""``halving``: successive halving at the final budget (:mod:`locograd.study.protocol`); ``grid``: the
protocol of the studies before it (every point for the [tuning] budget), kept so they plan the same trials."""

METRICS = {"train_loss": "min", "validation_loss": "min", "validation_accuracy": "max"}
"""What tuning may rank by, and which way is better (the final row of a run, or of a rung)."""

HALVING_RATE = 3
"""Successive halving's eta: a rung keeps the best third of its points (rounded up), at least
:data:`HALVING_KEEP`, and the next rung's budget is 3 times longer."""
HALVING_KEEP = 3
"""The fewest points a rung passes on (all of them where it has fewer): the choice is made among at
least 3 points trained for the whole final budget."""
HALVING_THREE_RUNGS = 9
"""Grids of this many points or more get three rungs (1/9, 1/3, 1 of the budget); smaller ones two."""


def rung_fractions(points: int) -> tuple[Fraction, ...]:
    """The fractions of the final budget at which the rungs of a ``points``-point grid end.

    >>> [str(f) for f in rung_fractions(25)], [str(f) for f in rung_fractions(5)]
    (['1/9', '1/3', '1'], ['1/3', '1'])
    """
    if points >= HALVING_THREE_RUNGS:
        return (Fraction(1, 9), Fraction(1, 3), Fraction(1))
    return (Fraction(1, 3), Fraction(1))


def rung_epochs(points: int, final_epochs: int) -> tuple[int, ...]:
    """The epoch at which each rung ends: ``round(fraction * final_epochs)``, at least 1.

    The epochs are strictly increasing where the budget allows the rungs (see :func:`parse`, which
    refuses the others): ``rung_epochs(25, 10) == (1, 3, 10)``.

    >>> rung_epochs(25, 10), rung_epochs(5, 4), rung_epochs(25, 3)
    ((1, 3, 10), (1, 4), (1, 1, 3))
    """
    return tuple(max(1, round(f * final_epochs)) for f in rung_fractions(points))


def survivors(points: int) -> int:
    """How many of a rung's ``points`` go on to the next: the best third rounded up, at least 3 (all of
    them where there are fewer).

    >>> [survivors(n) for n in (25, 9, 5, 3, 2)]
    [9, 3, 3, 3, 2]
    """
    return min(points, max(HALVING_KEEP, -(-points // HALVING_RATE)))


DEFAULT_BATCH = {"curves": 200}
DEFAULT_BATCH_FILES = 1000
DEFAULT_BATCH_CLASSIFIER = 100


@dataclasses.dataclass(frozen=True)
class Axis:
    """One search axis: a hyperparameter and its values, ascending."""

    name: str
    values: tuple[Any, ...]
    integer: bool


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer (or named variant) of a study.

    Attributes:
        name: its name in the spec (``"adam"``, ``"locoprop-m-k5"``).
        base: the optimizer it builds (one of :data:`~locograd.experiments.optimizers.OPTIMIZERS`).
        axes: the search axes.
        fixed: the fixed settings (hyperparameter name -> value).
        schedule: ``None`` (constant) or ``{"warmup": W, "total": T}``.
        seeds: final seeds, ``None`` for the study's default.
        hidden, widths: model overrides (``None``: the data set's).
    """

    name: str
    base: str
    axes: tuple[Axis, ...]
    fixed: dict[str, Any]
    schedule: dict[str, int] | None
    seeds: int | None
    hidden: str | None
    widths: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One data set of a study (see the module docstring for the keys)."""

    name: str
    data_dir: str | None
    limit_train: int | None
    limit_test: int | None
    batch_size: int
    targets: tuple[Any, ...]
    data_seed: int
    hidden: str | None
    widths: tuple[int, ...] | None
    model: str = "autoencoder"
    file: str | None = None
    validation: int = 0
    metric: str = "train_loss"

    @property
    def source(self) -> str:
        """What the trials load: the ``.npz`` file of a set of your own, else the set's name."""
        return self.file if self.file is not None else self.name


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A validated study spec."""

    name: str
    device: str
    dtype: str
    extend_limit: int
    tuning_epochs: int
    tuning_subset: int | None
    tuning_seeds: int
    final_epochs: int
    final_seeds: int
    datasets: tuple[DatasetSpec, ...]
    optimizers: tuple[OptimizerSpec, ...]
    source: dict[str, Any]
    protocol: str = "halving"

    def seeds_of(self, opt: OptimizerSpec) -> int:
        """The number of final seeds of ``opt``."""
        return self.final_seeds if opt.seeds is None else opt.seeds

    def rungs_of(self, opt: OptimizerSpec) -> tuple[int, ...]:
        """Successive halving: the epoch at which each rung of ``opt``'s grid ends (:func:`rung_epochs`)."""
        return rung_epochs(grid_size(opt), self.final_epochs)


def grid_size(opt: OptimizerSpec) -> int:
    """The points of ``opt``'s search space (the product of its axes' lengths; 1 without axes)."""
    return math.prod(len(a.values) for a in opt.axes)


def _got(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _fail(path: str, what: str, value: Any) -> SpecError:
    return SpecError(f"{path}: expected {what}, got {_got(value)}")


def _table(path: str, value: Any, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "a table", value)
    for key in value:
        if key not in keys:
            raise SpecError(f"{path}.{key}: unknown key; valid keys are {', '.join(keys)}")
    for key in required:
        if key not in value:
            raise SpecError(f"{path}.{key}: missing (expected {_what_required(key)})")
    return value


MAX_NAME = 64
"""The longest study, data set or optimizer name (they name folders, figures and table rows)."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Names: letters, digits, ``.``, ``_`` and ``-`` (no ``/``, ``|`` or line break: they name files
and report tables)."""
MAX_SEEDS = 100
"""The most final seeds of an optimizer."""


def _seeds(path: str, value: Any) -> int:
    seeds = _int(path, value)
    if seeds > MAX_SEEDS:
        raise _fail(path, f"an integer in [1, {MAX_SEEDS}] (seeds of the final runs)", value)
    return seeds


def _check_name(path: str, name: Any, what: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > MAX_NAME:
        if isinstance(name, str) and len(name) > MAX_NAME:  # shortened, in the key path too
            short = name[:20] + f"... ({len(name)} characters)"
            path, name = path.replace(name, short), short
        raise _fail(
            path,
            f"{what} name of at most {MAX_NAME} letters, digits, '.', '_' and '-' (it names files and table rows)",
            name,
        )


def _what_required(key: str) -> str:
    return {
        "epochs": "an integer >= 1",
        "datasets": "a table per data set",
        "optimizers": "a table per optimizer",
    }.get(key, "a value")


def _int(path: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, f"an integer >= {minimum}", value)
    return int(value)


def _number(path: str, value: Any, name: str) -> Any:
    integer, low, low_open, high, high_open = NUMERIC[name]
    if integer:
        return _int(path, value, int(low))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, "a finite number", value)
    v = float(value)
    if low is not None and (v <= low if low_open else v < low):
        raise _fail(path, f"a number {'>' if low_open else '>='} {low:g}", value)
    if high is not None and (v >= high if high_open else v > high):
        raise _fail(path, f"a number {'<' if high_open else '<='} {high:g}", value)
    return v


def _name(path: str, value: Any, choices: tuple[str, ...], dash: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"one of {', '.join(choices)}", value)
    key = value.strip().lower()
    key = key.replace("_", "-") if dash else key.replace("-", "_")
    if key not in choices:
        raise SpecError(f"{path}: unknown name {_got(value)}; valid names are {', '.join(choices)}")
    return key


def canonical_optimizer_name(value: str) -> str:
    """``"LocoProp_M"`` -> ``"locoprop-m"`` (case and ``_``/``-`` do not matter)."""
    return value.strip().lower().replace("_", "-")


def round_sig(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits (the values a log range generates)."""
    return float(f"{value:.{digits}g}")


def _axis(path: str, name: str, value: Any) -> Axis:
    integer = NUMERIC[name][0]
    what = "a list of numbers or {min, max, n}" if not integer else "a list of integers or {min, max, n}"
    if isinstance(value, list):
        if not value:
            raise _fail(path, what, value)
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise _fail(path, what, value)
            _number(f"{path}[{i}]", v, name)
        values = sorted({_number(path, v, name) for v in value})
        return Axis(name, tuple(values), integer)
    if isinstance(value, dict):
        if set(value) != {"min", "max", "n"}:
            raise _fail(path, what, value)
        lo = _number(f"{path}.min", value["min"], name)
        hi = _number(f"{path}.max", value["max"], name)
        n = _int(f"{path}.n", value["n"], 2)
        if n > MAX_RANGE_POINTS:
            raise _fail(f"{path}.n", f"an integer in [2, {MAX_RANGE_POINTS}] (points of one axis)", n)
        if lo <= 0:
            raise _fail(f"{path}.min", "a number > 0 (a log range)", value["min"])
        if hi <= lo:
            raise _fail(f"{path}.max", f"a number > min ({lo:g})", value["max"])
        raw = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
        pts = sorted({round(v) for v in raw}) if integer else sorted({round_sig(v) for v in raw})
        return Axis(name, tuple(pts), integer)
    raise _fail(path, what, value)


OPTIMIZER_KEYS = ("base", "schedule", "seeds", "hidden", "widths", *NUMERIC, *CHOICES)
DATASET_KEYS = (
    "data_dir",
    "limit_train",
    "limit_test",
    "batch_size",
    "targets",
    "data_seed",
    "hidden",
    "widths",
    "model",
    "file",
    "validation",
    "metric",
)
TOP_KEYS = (
    "name",
    "device",
    "dtype",
    "extend_limit",
    "protocol",
    "tuning",
    "final",
    "datasets",
    "optimizers",
)


def _widths(path: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "a non-empty list of integers >= 1", value)
    for i, w in enumerate(value):
        _int(f"{path}[{i}]", w)
    return tuple(int(w) for w in value)


def _schedule(path: str, value: Any) -> dict[str, int] | None:
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "constant":
            return None
        if key == "released":
            return dict(RELEASED_SCHEDULE)
    elif isinstance(value, dict):
        _table(path, value, ("warmup", "total"), ("warmup", "total"))
        total = _int(f"{path}.total", value["total"], 2)
        warmup = _int(f"{path}.warmup", value["warmup"], 0)
        if warmup >= total:
            raise _fail(f"{path}.warmup", f"an integer in [0, {total})", value["warmup"])
        return {"warmup": warmup, "total": total}
    raise _fail(path, '"constant", "released" or {warmup, total}', value)


def _optimizer(path: str, name: str, body: Any, raw: dict[str, Any], depth: int = 0) -> OptimizerSpec:
    body = _table(path, body, OPTIMIZER_KEYS)
    _check_name(path, name, "an optimizer table")
    if "base" in body and canonical_optimizer_name(name) in OPTIMIZERS:
        given = body["base"]
        if not (isinstance(given, str) and canonical_optimizer_name(given) == canonical_optimizer_name(name)):
            raise SpecError(
                f"{path}.base: {_got(given)} would train another optimizer under the name {name!r}; a table "
                f"named after an optimizer is that optimizer: drop base, or give the variant its own name"
            )
    if "base" in body:
        given = body["base"]
        if (
            isinstance(given, str)
            and canonical_optimizer_name(given) not in OPTIMIZERS
            and any(canonical_optimizer_name(k) == canonical_optimizer_name(given) for k in raw)
        ):
            raise SpecError(
                f"{path}.base: {_got(given)} is itself a named variant; a variant's base must be one of "
                f"{', '.join(OPTIMIZERS)} (copy the settings it needs)"
            )
        base = _name(f"{path}.base", given, OPTIMIZERS)
    else:
        base = _name(path, name, OPTIMIZERS) if canonical_optimizer_name(name) in OPTIMIZERS else ""
        if not base:
            raise SpecError(
                f"{path}: unknown optimizer {_got(name)}; valid names are {', '.join(OPTIMIZERS)} "
                "(or give a named variant its base = NAME)"
            )
    axes: list[Axis] = []
    fixed: dict[str, Any] = {}
    for key, value in body.items():
        sub = f"{path}.{key}"
        if key in NUMERIC:
            if isinstance(value, list | dict):
                axis = _axis(sub, key, value)
                if len(axis.values) == 1:
                    fixed[key] = axis.values[0]
                else:
                    axes.append(axis)
            else:
                if isinstance(value, str):
                    raise _fail(sub, "a list of numbers or {min, max, n}", value)
                fixed[key] = _number(sub, value, key)
        elif key in CHOICES:
            fixed[key] = _name(sub, value, CHOICES[key], dash=False)
    trial = {**fixed, **{a.name: a.values[0] for a in axes}}
    try:
        settings(base, "curves", **trial)
    except ValueError as exc:
        raise SpecError(f"{path}.{exc}") from None
    seeds = _seeds(f"{path}.seeds", body["seeds"]) if "seeds" in body else None
    hidden = _name(f"{path}.hidden", body["hidden"], HIDDEN_TRANSFERS) if "hidden" in body else None
    widths = _widths(f"{path}.widths", body["widths"]) if "widths" in body else None
    schedule = _schedule(f"{path}.schedule", body["schedule"]) if "schedule" in body else None
    return OptimizerSpec(name, base, tuple(axes), fixed, schedule, seeds, hidden, widths)


def _targets(path: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise _fail(path, 'a list of "auto", "second-order" and numbers > 0', value)
    out: list[Any] = []
    for i, t in enumerate(value):
        named = _TARGET_NAMES.get(t.strip().lower().replace("_", "-")) if isinstance(t, str) else None
        if named is not None:
            out.append(named)
        elif not isinstance(t, bool) and isinstance(t, int | float) and math.isfinite(t) and t > 0:
            out.append(float(t))
        else:
            raise _fail(f"{path}[{i}]", '"auto", "first-order", "second-order" or a number > 0', t)
    return tuple(out)


def _dataset(path: str, key: str, body: Any) -> DatasetSpec:
    body = _table(path, body, DATASET_KEYS)
    _check_name(path, key, "a data set table")
    file = body.get("file")
    if file is None:
        name = _name(path, key, DATASETS)
    else:
        if not isinstance(file, str) or not is_file_name(file):
            raise _fail(f"{path}.file", "the path of an .npz file", file)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", key):
            raise _fail(path, "a data set name of letters, digits, '.', '_' and '-'", key)
        if "data_dir" in body:
            raise SpecError(f"{path}.data_dir: a file is read from its own path; drop data_dir")
        name = key
    model = _name(f"{path}.model", body["model"], tuple(TASKS)) if "model" in body else "autoencoder"
    data_dir = body.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise _fail(f"{path}.data_dir", "a folder name", data_dir)
    limit_train = _int(f"{path}.limit_train", body["limit_train"]) if "limit_train" in body else None
    limit_test = _int(f"{path}.limit_test", body["limit_test"]) if "limit_test" in body else None
    batch = (
        DEFAULT_BATCH_CLASSIFIER if model == "classifier" else DEFAULT_BATCH.get(name, DEFAULT_BATCH_FILES)
    )
    batch = _int(f"{path}.batch_size", body["batch_size"]) if "batch_size" in body else batch
    if limit_train is not None and batch > limit_train:
        raise SpecError(f"{path}.batch_size: {batch} is larger than limit_train ({limit_train})")
    targets = _targets(f"{path}.targets", body["targets"]) if "targets" in body else ("auto",)
    data_seed = _int(f"{path}.data_seed", body["data_seed"], 0) if "data_seed" in body else 0
    hidden = _name(f"{path}.hidden", body["hidden"], HIDDEN_TRANSFERS) if "hidden" in body else None
    widths = _widths(f"{path}.widths", body["widths"]) if "widths" in body else None
    validation = _int(f"{path}.validation", body["validation"]) if "validation" in body else 0
    measures = TASKS[model].metrics
    if "metric" in body:
        metric = _name(f"{path}.metric", body["metric"], tuple(METRICS), dash=False)
    else:
        metric = "validation_accuracy" if "accuracy" in measures else "train_loss"
    offered = [m for m in METRICS if m.split("_", 1)[1] in ("loss", *measures)]
    if metric not in offered:
        raise SpecError(
            f"{path}.metric: the {model} task has no {metric.split('_', 1)[1]}; expected one of {', '.join(offered)}"
        )
    if metric.startswith("validation_") and not validation:
        default = "" if "metric" in body else f" (a {model} study's default metric)"
        raise SpecError(
            f"{path}.validation: ranking on {metric}{default} needs a validation split: give validation = N "
            f'(the last N training images, held out) or metric = "train_loss"'
        )
    if validation and limit_train is not None:
        try:
            check_validation(validation, limit_train, batch, f"{path}.limit_train")
        except ValueError as exc:
            raise SpecError(f"{path}.{exc}") from None
    return DatasetSpec(
        name,
        data_dir,
        limit_train,
        limit_test,
        batch,
        targets,
        data_seed,
        hidden,
        widths,
        model,
        file,
        validation,
        metric,
    )


def parse(raw: Any, name: str) -> StudySpec:
    """Validate a spec already read from TOML (a dict); ``name`` is the default study name.

    Raises:
        SpecError: one line naming the key path and what was expected.
    """
    raw = _table("spec", raw, TOP_KEYS, ("final", "datasets", "optimizers"))
    study = raw.get("name", name)
    _check_name("name", study, "a study")
    device = _name("device", raw.get("device", "cpu"), ("cpu", "gpu"))
    dtype = _name("dtype", raw.get("dtype", "float32"), ("float32", "float64"), dash=False)
    extend_limit = _int("extend_limit", raw.get("extend_limit", 3), 0)
    protocol = _name("protocol", raw.get("protocol", "halving"), PROTOCOLS)
    if protocol == "grid":
        if "tuning" not in raw:
            raise SpecError(
                "tuning: missing (expected the grid protocol's tuning budget: a table with epochs)"
            )
        tuning = _table("tuning", raw["tuning"], ("epochs", "subset", "seeds"), ("epochs",))
    elif "tuning" in raw:
        raise SpecError(
            "tuning: successive halving (the default protocol) tunes on the final budget, in rungs of "
            'final.epochs on the study\'s training set, so it would ignore [tuning]; drop it or set protocol = "grid"'
        )
    else:
        tuning = {
            "epochs": _int(
                "final.epochs", _table("final", raw["final"], ("epochs", "seeds"), ("epochs",))["epochs"]
            )
        }
    final = _table("final", raw["final"], ("epochs", "seeds"), ("epochs",))
    datasets_raw = _table(
        "datasets", raw["datasets"], tuple(raw["datasets"]) if isinstance(raw["datasets"], dict) else ()
    )
    if not datasets_raw:
        raise _fail("datasets", "at least one data set table, e.g. [datasets.curves]", datasets_raw)
    datasets = [_dataset(f"datasets.{k}", k, v) for k, v in datasets_raw.items()]
    seen = [d.name for d in datasets]
    if len(set(seen)) != len(seen):
        raise SpecError(f"datasets: {sorted(seen)} names one data set twice")
    opts_raw = raw["optimizers"]
    if not isinstance(opts_raw, dict) or not opts_raw:
        raise _fail("optimizers", "at least one optimizer table, e.g. [optimizers.adam]", opts_raw)
    optimizers = [_optimizer(f"optimizers.{k}", k, v, opts_raw) for k, v in opts_raw.items()]
    names = [canonical_optimizer_name(o.name) for o in optimizers]
    if len(set(names)) != len(names):
        raise SpecError(f"optimizers: {names} names one optimizer twice (case and _/- do not matter)")
    optimizers = [dataclasses.replace(o, name=n) for o, n in zip(optimizers, names, strict=True)]
    spec = StudySpec(
        name=study,
        device=device,
        dtype=dtype,
        extend_limit=extend_limit,
        tuning_epochs=_int("tuning.epochs", tuning["epochs"]),
        tuning_subset=_int("tuning.subset", tuning["subset"]) if "subset" in tuning else None,
        tuning_seeds=_seeds("tuning.seeds", tuning.get("seeds", 1)),
        final_epochs=_int("final.epochs", final["epochs"]),
        final_seeds=_seeds("final.seeds", final.get("seeds", 3)),
        datasets=tuple(datasets),
        optimizers=tuple(optimizers),
        source=raw,
        protocol=protocol,
    )
    if protocol == "halving":
        _check_rungs(spec)
    _check_size(spec)
    for d in datasets:
        size = TRAIN_SIZES.get(d.name)
        if d.limit_train is not None and d.file is None and size is not None and d.limit_train > size:
            raise SpecError(
                f"datasets.{d.name}.limit_train: expected an integer in [1, {size}] (the training images "
                f"of {d.name}), got {d.limit_train}"
            )
        if d.limit_train is None and size is not None and d.batch_size > size:
            raise SpecError(
                f"datasets.{d.name}.batch_size: {d.batch_size} is larger than the training set ({size})"
            )
        if spec.tuning_subset is not None:
            if d.limit_train is None and size is not None and spec.tuning_subset > size:
                raise SpecError(
                    f"tuning.subset: {spec.tuning_subset} is larger than the training set of {d.name} ({size})"
                )
            if d.limit_train is not None and spec.tuning_subset > d.limit_train:
                raise SpecError(
                    f"tuning.subset: {spec.tuning_subset} is larger than datasets.{d.name}.limit_train ({d.limit_train})"
                )
            if d.batch_size > spec.tuning_subset:
                raise SpecError(
                    f"datasets.{d.name}.batch_size: {d.batch_size} is larger than tuning.subset ({spec.tuning_subset})"
                )
        held = [(spec.tuning_subset, "tuning.subset")] if spec.tuning_subset is not None else []
        if d.limit_train is None and size is not None:
            held.append((size, f"the training set of {d.name}"))
        for n, what in held if d.validation else []:
            try:
                check_validation(d.validation, n, d.batch_size, what)
            except ValueError as exc:
                raise SpecError(f"datasets.{d.name}.{exc}") from None
    for named, bases in BASELINE_TARGETS.items():
        if any(o.base in bases for o in optimizers):
            continue
        for d, (key, body) in zip(datasets, datasets_raw.items(), strict=True):
            if named == "auto" and "targets" not in body:  # the default needs a baseline: else no default
                spec = dataclasses.replace(
                    spec,
                    datasets=tuple(
                        dataclasses.replace(x, targets=()) if x is d else x for x in spec.datasets
                    ),
                )
            elif named in d.targets:
                i = d.targets.index(named)
                order = "first-order" if named == "auto" else "second-order"
                raise SpecError(
                    f'datasets.{key}.targets[{i}]: "{named}" is the final train loss of the best {order} '
                    f"baseline ({', '.join(bases)}, or a variant of one), and the spec has none; "
                    "give the target as a number or add a baseline"
                )
    for o in optimizers:
        judged = spec.tuning_epochs if protocol == "grid" else spec.rungs_of(o)[0]
        what = "tuning.epochs" if protocol == "grid" else "the first rung of successive halving"
        if o.schedule is not None and judged <= o.schedule["warmup"]:
            # Before: accepted; the released warm-up (5 epochs) tuned on 3 epochs trained at most at
            # 40% of each peak rate, chose a peak too large, and its final runs blew up at full rate.
            fix = (
                f"give tuning.epochs >= {o.schedule['warmup'] + 1}"
                if protocol == "grid"
                else "give a longer final.epochs"
            )
            raise SpecError(
                f"optimizers.{o.name}.schedule: its warm-up lasts {o.schedule['warmup']} epochs, as long as "
                f"or longer than {what} ({judged}{'' if protocol == 'grid' else ' epochs'}), so the tuning would choose a peak rate "
                f"it never trained at; {fix} or a shorter warm-up"
            )
        if o.schedule is not None and settings(o.base, "curves", **o.fixed).get("solver") == "exact":
            raise SpecError(
                f"optimizers.{o.name}.schedule: the exact solver has no learning rate, so it would ignore "
                'the schedule; drop the schedule or use solver = "gd"'
            )
        if o.schedule is not None:
            longest = max(spec.tuning_epochs, spec.final_epochs)
            if longest > o.schedule["total"] - 1:
                raise SpecError(
                    f"optimizers.{o.name}.schedule: the warm-up and linear decay reaches 0 at epoch "
                    f"{o.schedule['total'] - 1}; the study trains {longest} epochs"
                )
    return spec


MAX_TRIALS = 10_000
"""The most trials a spec may plan (before edge extensions)."""


def _check_size(spec: StudySpec) -> None:
    """Refuse a spec that plans more than :data:`MAX_TRIALS` trials, or a model whose parameters and one
    batch's activations (float64, with the gradients and an optimizer's two moments: 4 copies of the
    parameters) would need more than half of this machine's memory.

    Raises:
        SpecError: naming ``final.seeds``/the grids, or the model's ``widths``.
    """
    per_point = spec.tuning_seeds if spec.protocol == "grid" else 1
    trials = sum(grid_size(o) * per_point + spec.seeds_of(o) for o in spec.optimizers) * len(spec.datasets)
    if trials > MAX_TRIALS:
        raise SpecError(
            f"optimizers: the spec plans {trials} trials (grid points x seeds, over {len(spec.datasets)} data "
            f"set(s)), more than {MAX_TRIALS}; use fewer points or seeds"
        )
    memory = _half_memory()
    for d in spec.datasets:
        if d.file is not None or d.model == "cnn":
            continue  # a file's sizes, and a CNN's patches, are known once the data are read
        for o in spec.optimizers:
            widths = o.widths if o.widths is not None else d.widths
            if widths is None:
                continue
            sizes = (
                [784, *widths, 10] if d.model == "classifier" else [784, *widths, *reversed(widths[:-1]), 784]
            )
            params = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
            need = 8 * (4 * params + 2 * d.batch_size * sum(sizes))
            if memory is not None and need > memory:
                where = f"optimizers.{o.name}.widths" if o.widths is not None else f"datasets.{d.name}.widths"
                raise SpecError(
                    f"{where}: a model of {params:,} parameters needs about {need / 2**30:.1f} GiB (parameters, "
                    f"gradients, optimizer state, a batch's activations), more than half of this machine's "
                    f"{2 * memory / 2**30:.1f} GiB"
                )


def _half_memory() -> int | None:
    """Half of this machine's physical memory in bytes, ``None`` where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (ValueError, OSError, AttributeError):
        return None


def _check_rungs(spec: StudySpec) -> None:
    """Refuse a successive-halving spec whose rungs cannot end at distinct epochs: the choice must be
    made among points trained for the whole final budget, after rungs that each train longer.

    Raises:
        SpecError: ``"final.epochs: 2 epochs cannot hold the rungs of successive halving ..."``.
    """
    for o in spec.optimizers:
        epochs = spec.rungs_of(o)
        if len(set(epochs)) < len(epochs):
            points = grid_size(o)
            fractions = ", ".join(str(f) for f in rung_fractions(points))
            least = next(
                e
                for e in range(spec.final_epochs + 1, 1000)
                if len(set(rung_epochs(points, e))) == len(epochs)
            )
            raise SpecError(
                f"final.epochs: {spec.final_epochs} epochs cannot hold the rungs of successive halving for "
                f"optimizers.{o.name} ({points} points: rungs at {fractions} of the budget end at epochs "
                f'{", ".join(map(str, epochs))}); give final.epochs >= {least} or protocol = "grid"'
            )


def load(path: str) -> StudySpec:
    """Read and validate the spec file at ``path`` (see :func:`parse`)."""
    if not os.path.isfile(path):
        raise SpecError(f"spec: no such file {path}")
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc})") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    return parse(raw, name=stem)


__all__ = ["Axis", "DatasetSpec", "OptimizerSpec", "SpecError", "StudySpec", "load", "parse"]
