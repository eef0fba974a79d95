"""Resuming checks a checkpoint's values, not only its shapes, before it changes the run's folder:
an optimizer counter below 0, a non-finite parameter or damping, a skeleton nested too deeply are
refused naming ``checkpoint.npz``, and ``config.json`` is left as it was (each with its control)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from locograd.experiments import checkpoint
from locograd.experiments.config import TrainConfig
from locograd.experiments.training import train


def _run(out: Path, optimizer: str, epochs: int, resume: bool = False) -> list[dict[str, Any]]:
    config = TrainConfig(
        dataset="curves",
        optimizer=optimizer,
        epochs=epochs,
        limit_train=200,
        batch_size=100,
        out=str(out),
        progress=False,
        summary=False,
    )
    return train(config, resume=resume)


def _negative_step(s: dict[str, Any]) -> None:
    s["state"] = s["state"]._replace(inner=s["state"].inner._replace(step=-7))


def _nan_weight(s: dict[str, Any]) -> None:
    s["params"][0]["W"][0, 0] = np.nan


def _nan_damping(s: dict[str, Any]) -> None:
    s["state"] = s["state"]._replace(damping=float("nan"))


@pytest.mark.parametrize(
    ("optimizer", "tamper", "message"),
    [
        ("adam", _negative_step, r"checkpoint.npz: state.inner.step: expected an integer >= 0, got -7$"),
        ("adam", _nan_weight, r"checkpoint.npz: params: holds a non-finite number"),
        ("kfac", _nan_damping, r"checkpoint.npz: state.damping: expected a finite number > 0, got nan$"),
    ],
)
def test_a_checkpoint_with_impossible_values_is_refused_before_the_folder_changes(
    tmp_path: Path, optimizer: str, tamper: Callable[[dict[str, Any]], None], message: str
) -> None:
    out = tmp_path / "run"
    _run(out, optimizer, 1)
    path = str(out / "checkpoint.npz")
    good = checkpoint.load(path)
    saved = checkpoint.load(path)
    tamper(saved)
    checkpoint.save(path, saved)
    config = (out / "config.json").read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match=message):
        _run(out, optimizer, 2, resume=True)
    assert (out / "config.json").read_bytes() == config
    checkpoint.save(path, good)  # the control: the checkpoint as written resumes
    assert [r["epoch"] for r in _run(out, optimizer, 2, resume=True)] == [0, 1, 2]


def test_a_skeleton_nested_too_deeply_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "deep.npz")
    nested = "[" * 100_000 + "]" * 100_000
    deep = f'{{"format": {checkpoint.FORMAT_VERSION}, "tree": {nested}}}'
    np.savez(path, **{checkpoint.SKELETON_KEY: np.array(deep)})
    with pytest.raises(checkpoint.CheckpointError, match=r"deep.npz: the .* member is nested too deeply"):
        checkpoint.load(path)
    shallow = f'{{"format": {checkpoint.FORMAT_VERSION}, "tree": {{"dict": {{}}}}}}'
    np.savez(path, **{checkpoint.SKELETON_KEY: np.array(shallow)})
    assert checkpoint.load(path) == {}  # the control: a shallow skeleton of the same form is read
