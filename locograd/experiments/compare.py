"""``locograd compare``: several optimizers on the same data and initialisation."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from ..data import Dataset
from ..data import load as load_dataset
from .optimizers import check_name
from .plots import plot_compare
from .training import TrainConfig, TrainingError, train


def compare(
    config: TrainConfig, optimizers: Sequence[str], resume: bool = False, data: Dataset | None = None
) -> dict[str, dict[str, Any]]:
    """Train each optimizer into ``config.out/<name>/``; write ``summary.json`` and ``compare.png``.

    Returns:
        The summary: optimizer name -> ``{"train_loss", "test_loss", "epochs", "seconds", "seconds_per_epoch", "steps"}``.
    """
    names = [check_name(n) for n in optimizers]
    if not names:
        raise TrainingError("optimizers: expected at least one name")
    if len(set(names)) != len(names):
        raise TrainingError(f"optimizers: a name is repeated in {','.join(names)}")
    if os.path.exists(config.out) and not os.path.isdir(config.out):
        raise TrainingError(f"out: {config.out} is a file, expected a folder")
    if data is None:
        data = load_dataset(
            config.dataset, data_dir=config.data_dir, limit_train=config.limit_train, seed=config.seed
        )
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        run = dataclasses.replace(config, optimizer=name, out=os.path.join(config.out, name))
        runs[name] = train(run, resume=resume, data=data)
    summary = {
        name: {
            "train_loss": rows[-1]["train_loss"],
            "test_loss": rows[-1]["test_loss"],
            "epochs": rows[-1]["epoch"],
            "seconds": rows[-1]["seconds"],
            "seconds_per_epoch": rows[-1]["seconds"] / rows[-1]["epoch"],
            "steps": rows[-1]["steps"],
        }
        for name, rows in runs.items()
    }
    with open(os.path.join(config.out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    plot_compare(runs, os.path.join(config.out, "compare.png"), title=f"{config.dataset}: {', '.join(names)}")
    return summary


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| optimizer | train loss | test loss | epochs | seconds | s/epoch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['train_loss']:.3f} | {s['test_loss']:.3f} | {s['epochs']} | "
            f"{s['seconds']:.1f} | {s['seconds_per_epoch']:.2f} |"
        )
    return "\n".join(lines)
