"""Loss curves with matplotlib, drawn on an Agg canvas (no display needed, and the global
pyplot backend of a notebook is left alone)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _panels(runs: Mapping[str, Sequence[dict[str, Any]]], title: str, path: str) -> None:
    fig = Figure(figsize=(11, 4.2), constrained_layout=True)
    FigureCanvasAgg(fig)
    by_epoch, by_time = fig.subplots(1, 2)
    for i, (name, rows) in enumerate(runs.items()):
        color = f"C{i}"
        epochs = [r["epoch"] for r in rows]
        secs = [r["seconds"] for r in rows]
        for ax, xs in ((by_epoch, epochs), (by_time, secs)):
            ax.plot(xs, [r["train_loss"] for r in rows], "-o", color=color, ms=3, label=f"{name} train")
            ax.plot(xs, [r["test_loss"] for r in rows], "--", color=color, label=f"{name} test")
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
    for ax in (by_epoch, by_time):
        ax.set_ylabel("loss (sum over pixels, mean over examples)")
        ax.grid(alpha=0.3)
        if later and start is not None and start > 1.5 * max(later):  # keep the detail visible
            low, high = min(later), max(later)
            ax.set_ylim(low - 0.05 * (high - low + 1), high + 0.15 * (high - low + 1))
    if later and start is not None and start > 1.5 * max(later):
        title = f"{title}  (epoch 0 loss {start:.1f} is above the plot)"
    by_time.legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)


def plot_losses(rows: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """One run's train/test loss against epoch and against training seconds."""
    _panels({"": rows}, title, path)


def plot_compare(runs: Mapping[str, Sequence[dict[str, Any]]], path: str, title: str = "") -> None:
    """Several runs (name -> metrics rows) on one figure, per epoch and per second."""
    _panels(runs, title, path)
