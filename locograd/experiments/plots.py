"""Loss curves with matplotlib, drawn on an Agg canvas (no display needed, and the global
pyplot backend of a notebook is left alone).  Runs whose rows carry ``test_accuracy`` (classifiers)
get a third panel: the train and test accuracy against epoch.  :func:`plot_update_ratios` draws the
per-layer update records (``update_ratio``) against epoch, one panel per weight layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _panels(runs: Mapping[str, Sequence[dict[str, Any]]], title: str, path: str) -> None:
    accuracy = any("test_accuracy" in r for rows in runs.values() for r in rows)
    fig = Figure(figsize=(16 if accuracy else 11, 4.2), constrained_layout=True)
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, 3 if accuracy else 2)
    by_epoch, by_time = panels[0], panels[1]
    for i, (name, rows) in enumerate(runs.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in rows]
        secs = [r["seconds"] for r in rows]
        for ax, xs in ((by_epoch, epochs), (by_time, secs)):
            ax.plot(xs, [r["train_loss"] for r in rows], "-o", color=color, ms=3, label=f"{name} train")
            ax.plot(xs, [r["test_loss"] for r in rows], "--", color=color, label=f"{name} test")
        if accuracy:
            scored = [r for r in rows if "test_accuracy" in r]
            panels[2].plot(
                [r["epoch"] for r in scored], [r["train_accuracy"] for r in scored], "-o", color=color, ms=3
            )
            panels[2].plot(
                [r["epoch"] for r in scored], [r["test_accuracy"] for r in scored], "--", color=color
            )
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("training seconds")
    later = [
        v
        for rows in runs.values()
        for r in rows
        if r["epoch"] >= 1
        for v in (r["train_loss"], r["test_loss"])
    ]
    start = max((r["train_loss"] for rows in runs.values() for r in rows if r["epoch"] == 0), default=None)
    limits, notes = None, []
    if later and start is not None:
        above = [name for name, rows in runs.items() if any(r["train_loss"] > 1.5 * start for r in rows)]
        if above:  # a diverging run would flatten every other curve
            kept = [v for v in later if v <= 1.5 * start]
            limits = (0.95 * min(kept, default=start), 1.05 * start)
            notes.append(f"{', '.join(above)} above the plot")
        elif start > 1.5 * max(later):  # keep the detail near the end visible
            low, high = min(later), max(later)
            limits = (low - 0.05 * (high - low + 1), high + 0.15 * (high - low + 1))
            notes.append(f"epoch 0 loss {start:.1f} is above the plot")
    if accuracy:
        panels[2].set_xlabel("epoch")
        panels[2].set_ylabel("accuracy (train solid, test dashed)")
        panels[2].grid(alpha=0.3)
    for ax in (by_epoch, by_time):
        ax.set_ylabel(
            "loss (mean over examples)" if accuracy else "loss (sum over pixels, mean over examples)"
        )
        ax.grid(alpha=0.3)
        if limits is not None:
            ax.set_ylim(*limits)
    if notes:
        title = f"{title}  ({'; '.join(notes)})"
    by_time.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)


def plot_losses(rows: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """One run's train/test loss against epoch and against training seconds."""
    _panels({"": rows}, title, path)


def plot_compare(runs: Mapping[str, Sequence[dict[str, Any]]], path: str, title: str = "") -> None:
    """Several runs (name -> metrics rows) on one figure, per epoch and per second."""
    _panels(runs, title, path)


NO_UPDATE_RATIOS = (
    "no run has per-layer update records (update_ratio: its rows were written before locograd "
    "recorded them); no update-ratio figure written"
)
"""The one line said when per-layer figures are asked for and no metrics row has ``update_ratio``."""


def _ratio_curves(runs: Sequence[Sequence[dict[str, Any]]]) -> tuple[list[int], np.ndarray] | None:
    """The epochs every run recorded ``update_ratio`` at, and the ratios ``(runs, epochs, layers)``
    (``nan`` where a run has fewer layers than another); ``None`` when no epoch is common to all."""
    recorded = [{r["epoch"]: r["update_ratio"] for r in rows if r.get("update_ratio")} for rows in runs]
    epochs = sorted(set.intersection(*(set(by) for by in recorded))) if recorded else []
    if not epochs:
        return None
    width = max(len(by[e]) for by in recorded for e in epochs)
    values = np.full((len(runs), len(epochs), width), np.nan)
    for i, by in enumerate(recorded):
        for j, e in enumerate(epochs):
            values[i, j, : len(by[e])] = by[e]
    return epochs, values


def plot_update_ratios(
    runs: Mapping[str, Sequence[Sequence[dict[str, Any]]]], path: str, title: str = ""
) -> bool:
    r"""Per weight layer, ``update_ratio`` (:math:`\|\Delta W_m\|_F/\|W_m\|_F`, the epoch's mean) against epoch.

    One panel per weight layer, one line per name (the mean over its runs, e.g. seeds, with their
    min-max band when there are several), log scale.  Rows without ``update_ratio`` (the epoch-0
    row, runs written before it was recorded) are left out; a name whose runs share no recorded
    epoch is left out.

    Args:
        runs: name (an optimizer) -> its runs, each a list of metrics rows.
        path: the PNG to write.
        title: the figure's title.

    Returns:
        Whether a figure was written: ``False`` (nothing written) when no run has a row with
        ``update_ratio`` (:data:`NO_UPDATE_RATIOS` says so in one line).
    """
    curves = {name: c for name, group in runs.items() if group and (c := _ratio_curves(group)) is not None}
    if not curves:
        return False
    width = max(values.shape[2] for _, values in curves.values())
    cols = min(4, width)
    rows_n = -(-width // cols)
    fig = Figure(figsize=(3.6 * cols, 2.9 * rows_n), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows_n, cols, squeeze=False).ravel()
    for i, (name, (epochs, values)) in enumerate(curves.items()):
        for k in range(values.shape[2]):
            layer = values[:, :, k]
            shown = np.all(np.isfinite(layer) & (layer > 0), axis=0)  # log scale: finite positive means
            if not shown.any():
                continue
            xs = np.asarray(epochs)[shown]
            ys = layer[:, shown]
            axes[k].plot(xs, ys.mean(axis=0), "-o", ms=3, color=f"C{i}", label=name)
            if ys.shape[0] > 1:
                axes[k].fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
    for k, ax in enumerate(axes):
        if k >= width:
            ax.set_visible(False)
            continue
        ax.set_yscale("log")
        ax.set_title(f"weight layer {k + 1}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("||ΔW|| / ||W|| (epoch mean)")
    drawn = [ax for ax in axes if ax.lines]
    if drawn:
        drawn[0].legend(fontsize=7)
    fig.suptitle(title or "per-layer update ratio")
    fig.savefig(path, dpi=100)
    return True
