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

from ..data import Dataset
from ..data import load as load_dataset
from ..validators import canonical_choice, output_folder
from . import runfolder
from .training import ConfigError, TrainConfig, TrainingDiverged, resolve, train

GRID_KEYS = {"lr": float, "gamma": float, "eta": float, "steps": int, "damping": float, "batch_size": int}


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=1e-4,1e-3", ...]`` -> ``{"lr": [1e-4, 1e-3]}``; unknown keys or bad values raise ValueError.

    Names are matched like every other name (case and ``_``/``-`` do not matter);
    a name given twice, or a value listed twice, is refused (before, a second
    ``--grid lr=...`` silently replaced the first).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        try:
            key = canonical_choice("grid", key, GRID_KEYS) if sep else ""
        except ValueError:
            key = ""
        if not key:
            raise ValueError(
                f"grid: expected NAME=V1,V2,... with NAME one of {', '.join(GRID_KEYS)}, got {item!r}"
            )
        if key in grid:
            raise ValueError(f"grid: {key} is given twice; give all its values in one --grid {key}=V1,V2,...")
        try:
            grid[key] = [GRID_KEYS[key](v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"grid: {key} takes {GRID_KEYS[key].__name__} values, got {values!r}") from None
        if not grid[key]:
            raise ValueError(f"grid: no values for {key}")
    if not grid:
        raise ValueError("grid: expected at least one --grid NAME=V1,V2,...")
    return grid


def _folder_name(setting: dict[str, Any]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in setting.items())


def check_grid(config: TrainConfig, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], TrainConfig]]:
    """Every setting of ``grid`` as ``(setting, config)``, each resolved, before anything is trained.

    Checks the grid itself (known names, non-empty lists of numbers, no value
    twice, no two settings in one folder, no name that ``config`` also sets) and
    then :func:`~.training.resolve` on every combination, so a bad value anywhere
    in the grid is refused before the first setting trains (before, ``lr=0.1,-1``
    trained ``lr=0.1`` and then failed).

    Raises:
        ConfigError: one line naming the setting and the argument,
            e.g. ``"grid setting lr=-1: lr: expected a finite number > 0, got -1.0"``.
    """
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"grid: expected a dict NAME -> [values] with NAME one of {', '.join(GRID_KEYS)}")
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise ConfigError(f"grid: unknown name {key!r}; valid names are {', '.join(GRID_KEYS)}")
        if not isinstance(values, list | tuple) or not values:
            raise ConfigError(f"grid: {key} needs a non-empty list of values, got {values!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"grid: {key} takes {GRID_KEYS[key].__name__} values, got {v!r}")
        if len(set(values)) != len(values):
            raise ConfigError(f"grid: {key} lists a value twice ({', '.join(f'{v:g}' for v in values)})")
        if getattr(config, key) is not None:
            flag = key.replace("_", "-")
            raise ConfigError(f"grid: {key} is also given as --{flag}; give it in one place")
    try:
        output_folder("out", config.out)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    keys = list(grid)
    runs: list[tuple[dict[str, Any], TrainConfig]] = []
    folders: dict[str, dict[str, Any]] = {}
    for combination in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, combination, strict=True))
        name = _folder_name(setting)
        if name in folders:
            raise ConfigError(
                f"grid: the settings {folders[name]} and {setting} would share the folder {name}"
            )
        folders[name] = setting
        run = dataclasses.replace(config, out=os.path.join(config.out, name), **setting)
        try:
            resolve(run)
        except ValueError as exc:
            raise ConfigError(f"grid setting {name}: {exc}") from None
        runs.append((setting, run))
    return runs


def sweep(config: TrainConfig, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Train every combination of ``grid`` into ``config.out/<key=value,...>/``; write ``sweep.json``.

    Returns:
        One row per setting, best (lowest final train loss; diverged runs last) first.
    """
    runs = check_grid(config, grid)
    data = load_dataset(
        config.dataset, data_dir=config.data_dir, limit_train=config.limit_train, seed=config.seed
    )
    for setting, run in runs:  # the training set's size is known now: every batch must fit, before any trains
        batch = resolve(run)["batch_size"]
        if batch > data.n_train:
            raise ConfigError(
                f"grid setting {_folder_name(setting)}: batch-size: {batch} is larger than the training set "
                f"({data.n_train} examples)"
            )
    # The lock is held for the whole sweep: a second command on this --out fails at once.
    with runfolder.FolderLock(config.out):
        runfolder.remove_stale_temporaries(config.out)
        return _train_grid(config, runs, data)


def _train_grid(
    config: TrainConfig, runs: list[tuple[dict[str, Any], TrainConfig]], data: Dataset
) -> list[dict[str, Any]]:
    """Train the settings of a checked grid in turn, under the sweep folder's lock (see :func:`sweep`)."""
    rows = []
    for setting, run in runs:
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
