"""``locograd sweep``: short trainings over a grid of settings, and the best one.

>>> parse_grid(["lr=1e-4,1e-3", "damping=1"])
{'lr': [0.0001, 0.001], 'damping': [1.0]}
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from ..data import load as load_dataset
from .training import TrainConfig, TrainingDiverged, TrainingError, train

GRID_KEYS = {"lr": float, "gamma": float, "eta": float, "steps": int, "damping": float, "batch_size": int}


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=1e-4,1e-3", ...]`` -> ``{"lr": [1e-4, 1e-3]}``; unknown keys or bad values raise ValueError."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in GRID_KEYS:
            raise ValueError(
                f"grid: expected NAME=V1,V2,... with NAME one of {', '.join(GRID_KEYS)}, got {item!r}"
            )
        try:
            grid[key] = [GRID_KEYS[key](v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"grid: {key} takes {GRID_KEYS[key].__name__} values, got {values!r}") from None
        if not grid[key]:
            raise ValueError(f"grid: no values for {key}")
    if not grid:
        raise ValueError("grid: expected at least one --grid NAME=V1,V2,...")
    return grid


def sweep(config: TrainConfig, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Train every combination of ``grid`` into ``config.out/<key=value,...>/``; write ``sweep.json``.

    Returns:
        One row per setting, best (lowest final train loss; diverged runs last) first.
    """
    if os.path.exists(config.out) and not os.path.isdir(config.out):
        raise TrainingError(f"out: {config.out} is a file, expected a folder")
    data = load_dataset(
        config.dataset, data_dir=config.data_dir, limit_train=config.limit_train, seed=config.seed
    )
    rows = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, values, strict=True))
        name = ",".join(f"{k}={v:g}" for k, v in setting.items())
        run = dataclasses.replace(config, out=os.path.join(config.out, name), **setting)
        try:
            history = train(run, data=data)
            last = history[-1]
            rows.append(
                {
                    **setting,
                    "train_loss": last["train_loss"],
                    "test_loss": last["test_loss"],
                    "seconds": last["seconds"],
                    "diverged": False,
                }
            )
        except TrainingDiverged:
            rows.append(
                {
                    **setting,
                    "train_loss": math.inf,
                    "test_loss": math.inf,
                    "seconds": math.nan,
                    "diverged": True,
                }
            )
    rows.sort(key=lambda r: r["train_loss"])
    with open(os.path.join(config.out, "sweep.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {
                "dataset": config.dataset,
                "optimizer": config.optimizer,
                "epochs": config.epochs,
                "limit_train": config.limit_train,
                "rows": rows,
            },
            handle,
            indent=2,
        )
        handle.write("\n")
    return rows


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, best first."""
    keys = [k for k in rows[0] if k in GRID_KEYS]
    lines = [
        "| " + " | ".join([*keys, "train loss", "test loss", "seconds"]) + " |",
        "|" + "---|" * (len(keys) + 3),
    ]
    for r in rows:
        numbers = f"{r['train_loss']:.3f} | {r['test_loss']:.3f} | {r['seconds']:.1f}"
        loss = "diverged | | " if r["diverged"] else numbers
        lines.append("| " + " | ".join(f"{r[k]:g}" for k in keys) + f" | {loss} |")
    return "\n".join(lines)
