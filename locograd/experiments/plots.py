"""Loss curves with matplotlib, drawn on an Agg canvas (no display needed, and the global
pyplot backend of a notebook is left alone).  Runs whose rows carry ``test_accuracy`` (classifiers)
get a third panel: the train and test accuracy against epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


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
