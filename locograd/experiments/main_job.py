r"""``locograd compare`` with no ``--optimizers``: the main job, the CURVES finding both ways.

LocoProp-M and Adam train the CURVES autoencoder twice: with its own logistic hidden units, where
LocoProp-M does not leave the plateau that Adam leaves, and with tanh hidden units (the paper's
choice), where LocoProp-M leads per epoch.  Each run has the tuned point of
``studies/curves-transfer.toml`` (its ``summary.json``; ``tests/test_defaults.py`` checks that they
agree), on all 20,000 images for :data:`EPOCHS` epochs with :data:`SEEDS` seeds each, the shortest
budget at which every gap the reading names exceeds the seeds' spread in that study's own runs.

The plateau is the least loss a constant output reaches, :meth:`~locograd.losses.Loss.best_constant`
(:math:`\sum_j H(\bar x_j)`, the entropy of the mean training image: 155.2): a network there has
learned the mean image, which its output bias alone gives, and nothing deeper.  Why LocoProp-M stays
there with logistic units: ``docs/results/curves-transfer/report.md``.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..data import load as load_dataset
from ..losses import get as get_loss
from .compare import _loss_by, compare, histories, leader_gap, ranked_finals, when
from .config import TrainConfig

GROUPS: dict[str, str] = {"logistic": "sigmoid", "tanh": "tanh"}
"""The main job's two autoencoders: label -> their hidden transfer."""

TUNED: dict[str, dict[str, dict[str, Any]]] = {
    "logistic": {
        "adam": {"optimizer": "adam", "lr": 0.00316228},
        "locoprop-m": {"optimizer": "locoprop-m", "gamma": 10.0, "lr": 1e-05},
    },
    "tanh": {
        "adam": {"optimizer": "adam", "lr": 0.00316228},
        "locoprop-m": {"optimizer": "locoprop-m", "gamma": 1.0, "lr": 1e-05},
    },
}
"""Per autoencoder, each method's tuned point in ``studies/curves-transfer.toml`` (its
optimizers ``<method>-<group>``)."""

EPOCHS = 3
"""Epochs of the main job (300 steps of 200 images)."""

SEEDS = 2
"""Seeds per run of the main job."""

PLATEAU_MARGIN = 0.005
"""A method whose final mean train loss is within this fraction of the plateau (above or below) is said
to sit on it: 0.78 on CURVES, against the 5.8 by which Adam leaves it in 3 epochs."""


def entries() -> dict[str, dict[str, Any]]:
    """The comparison's labelled entries (:func:`~.compare.compare`): ``<method>-<group>`` -> settings."""
    return {
        f"{method}-{group}": {**setting, "hidden": GROUPS[group]}
        for group, methods in TUNED.items()
        for method, setting in methods.items()
    }


def _reached(epochs: Sequence[int]) -> str:
    """The epochs the seeds' runs had finished by a time: one (``"epoch 2"``, ``"untrained start"``)
    or a range over the seeds (``"untrained start to epoch 1, by seed"``)."""
    if len(epochs) == 1:
        return when(epochs[0])
    return f"{when(epochs[0])} to epoch {epochs[-1]}, by seed"


def reading(runs: Mapping[str, Sequence[Sequence[dict[str, Any]]]], level: float) -> str:
    """One line: per autoencoder, who leads per epoch (mean ± sd over the seeds, and whether the gap
    exceeds the sum of the two sds), who sits on the plateau ``level``, and who leads per second (the
    losses at the shortest run's training seconds, at the last epoch each run had finished then;
    epoch 0 is named the untrained start).

    ``runs``: ``<method>-<group>`` -> one list of metrics rows per seed.

    >>> rows = lambda *p: [{"epoch": e, "train_loss": l, "seconds": s} for e, (l, s) in enumerate(p)]
    >>> print(reading({"a-logistic": [rows((560, 0), (150, 2)), rows((560, 0), (151, 2))],
    ...                "b-logistic": [rows((560, 0), (155.3, 9)), rows((560, 0), (155.3, 9))]}, 155.2))
    logistic: after 1 epochs (mean ± sd over 2 seeds) a 150.500 ± 0.707 < b 155.300 ± 0.000, a ahead by 4.800, beyond the seed spread (0.707); b sits on the plateau 155.200 (the loss of the best constant output, the mean image: no feature learned); per second, within 2.0 s (the shortest run) a 150.500 (epoch 1) < b 560.000 (untrained start).
    """
    groups: dict[str, dict[str, Sequence[Sequence[dict[str, Any]]]]] = {}
    for label, group in runs.items():
        method, _, name = label.rpartition("-")
        groups.setdefault(name, {})[method] = group
    parts = []
    for name, methods in groups.items():
        finals, order, head, ranking = ranked_finals(methods)
        line = f"{name}: {head} {ranking}"
        if len(order) > 1:
            best, _, gap, spread, verdict = leader_gap(finals, order)
            line += f", {best} ahead by {gap:.3f}, {verdict} ({spread:.3f})"
        stuck = [m for m in order if abs(finals[m][0] - level) <= PLATEAU_MARGIN * level]
        if stuck:
            line += (
                f"; {' and '.join(stuck)} {'sits' if len(stuck) == 1 else 'sit'} on the plateau {level:.3f} "
                "(the loss of the best constant output, the mean image: no feature learned)"
            )
        shortest = min(rows[-1]["seconds"] for g in methods.values() for rows in g)
        by = {m: [_loss_by(rows, shortest) for rows in g] for m, g in methods.items()}
        at = {m: statistics.fmean(loss for loss, _ in v) for m, v in by.items()}
        reached = {m: sorted({epoch for _, epoch in v}) for m, v in by.items()}
        line += f"; per second, within {shortest:.1f} s (the shortest run) " + " < ".join(
            f"{m} {at[m]:.3f} ({_reached(reached[m])})" for m in sorted(at, key=lambda m: (at[m], m))
        )
        parts.append(line)
    return "; ".join(parts) + "."


def plot(runs: Mapping[str, Sequence[Sequence[dict[str, Any]]]], path: str, level: float) -> None:
    """The main job's figure: train loss per epoch (top) and per training second (bottom), one column
    per autoencoder; each method's mean over the seeds with the seeds' min-max band (per second: each
    seed's curve), the plateau as a dashed line; a panel's title gives the untrained start (epoch 0)
    where it lies above the axes (the axes keep the detail near the plateau)."""
    groups = list(dict.fromkeys(label.rpartition("-")[2] for label in runs))
    fig = Figure(figsize=(5.2 * len(groups), 7.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(groups), squeeze=False)
    methods = list(dict.fromkeys(label.rpartition("-")[0] for label in runs))
    for col, name in enumerate(groups):
        by_epoch, by_time = axes[0, col], axes[1, col]
        later = []
        for label, group in runs.items():
            method, _, group_name = label.rpartition("-")
            if group_name != name:
                continue
            color = f"C{methods.index(method)}"
            n = min(len(rows) for rows in group)
            losses = np.array([[r["train_loss"] for r in rows[:n]] for rows in group])
            epochs = [r["epoch"] for r in group[0][:n]]
            by_epoch.plot(epochs, losses.mean(axis=0), "-o", color=color, ms=3, label=method)
            by_epoch.fill_between(epochs, losses.min(axis=0), losses.max(axis=0), color=color, alpha=0.25)
            for i, rows in enumerate(group):
                by_time.plot(
                    [r["seconds"] for r in rows],
                    [r["train_loss"] for r in rows],
                    "-o",
                    color=color,
                    ms=3,
                    alpha=0.8,
                    label=method if i == 0 else None,
                )
            later += [r["train_loss"] for rows in group for r in rows if r["epoch"] >= 1]
        low = min([*later, level])
        high = max(level, *later) if later else level
        for ax in (by_epoch, by_time):
            ax.axhline(level, color="0.3", ls="--", lw=1, label=f"plateau {level:.1f} (best constant output)")
            ax.set_ylim(low - 0.05 * (high - low + 1), high + 0.12 * (high - low + 1))
            ax.grid(alpha=0.3)
            ax.set_ylabel("train loss (sum over pixels)")
        by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
        by_epoch.set_xlabel("epoch")
        by_time.set_xlabel("training seconds")
        top = by_epoch.get_ylim()[1]
        cut = [rows[0]["train_loss"] for label, g in runs.items() if label.endswith(f"-{name}") for rows in g]
        above = f" (untrained start {max(cut):.1f}, above the axes)" if max(cut) > top else ""
        by_epoch.set_title(f"{name} hidden units{above}", fontsize=10)
        by_time.set_title(f"{name}: per second", fontsize=10)
        by_epoch.legend(fontsize=8)
    fig.suptitle(
        "CURVES autoencoder, LocoProp-M against Adam: train loss, the mean over seeds with their min-max band "
        "(top), each seed (bottom)",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)


def run(
    config: TrainConfig, resume: bool = False, seeds: int = SEEDS, jobs: int = 1, threads: int = 1
) -> tuple[dict[str, Any], str]:
    """Train the main job into ``config.out``; write ``compare.png`` (:func:`plot`), and return the
    summary (:func:`~.compare.compare`) and the reading (:func:`reading`).

    ``config``: the shared settings (``dataset`` curves; its ``epochs``, ``seed``, ``limit_train``,
    ``threads`` and ``workers`` are used; the optimizer settings are :data:`TUNED`'s); ``jobs``
    runs at once in processes of ``threads`` BLAS threads (:func:`~.compare.compare`).  Every seed
    trains on the images of ``config.seed`` (as the study's seeds share ``data_seed = 0``): the
    seeds vary the initialisation and the shuffling, and the plateau is one number.
    """
    data = load_dataset("curves", limit_train=config.limit_train, seed=config.seed)  # the study's data_seed
    summary = compare(
        config, entries(), resume=resume, data=data, seeds=seeds, figure=False, jobs=jobs, threads=threads
    )
    runs = histories(config.out, list(entries()), [config.seed + i for i in range(seeds)])
    grouped = cast(
        "dict[str, list[list[dict[str, Any]]]]",
        runs if seeds > 1 else {k: [v] for k, v in runs.items()},  # one seed: one run per label
    )
    level = get_loss("sigmoid_cross_entropy").best_constant(data.x_train)
    plot(grouped, os.path.join(config.out, "compare.png"), level)
    return summary, reading(grouped, level)
