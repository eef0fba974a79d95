"""A validation split (``--validation N``, ``TrainConfig(validation=N)``): the last N training images
are held out, scored every epoch (``validation_loss``, and ``validation_accuracy`` for a classifier),
never trained on; bad splits are refused in one line before any training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from locograd.data import load as load_dataset
from locograd.experiments import checkpoint as ckpt
from locograd.experiments.config import ConfigError, TrainConfig, TrainingError
from locograd.experiments.tasks import AUTOENCODER, CLASSIFIER
from locograd.experiments.training import train


def _run(tmp_path: Path, name: str, **kw: object) -> list[dict]:
    settings = dict(
        dataset="curves", optimizer="adam", epochs=2, batch_size=100, progress=False, summary=False
    )
    settings.update(kw)
    return train(TrainConfig(out=str(tmp_path / name), **settings))  # type: ignore[arg-type]


def test_held_out_images_are_scored_and_never_trained_on(tmp_path: Path) -> None:
    held = _run(tmp_path, "held", limit_train=500, validation=100)
    assert all("validation_loss" in r for r in held) and [r["steps"] for r in held] == [0, 4, 8]
    # training on the first 400 images alone gives the same training run, bit for bit ...
    first = _run(tmp_path, "first", limit_train=400)
    assert [r["train_loss"] for r in held] == [r["train_loss"] for r in first]
    # ... and the control: 500 images without a split train on the 100 others too
    whole = _run(tmp_path, "whole", limit_train=500)
    assert [r["train_loss"] for r in whole][1:] != [r["train_loss"] for r in held][1:]
    assert "validation_loss" not in whole[-1]
    # the validation loss is the loss of the last 100 of the 500 images at the run's parameters
    params = ckpt.load(str(tmp_path / "held" / "checkpoint.npz"))["params"]
    data = load_dataset("curves", limit_train=500, seed=0)
    net = AUTOENCODER.model(data)
    x = data.x_train.astype(np.float32)
    last = AUTOENCODER.evaluate(net, params, x[400:], None)["loss"]
    assert math.isclose(held[-1]["validation_loss"], last, rel_tol=1e-12)
    assert not math.isclose(AUTOENCODER.evaluate(net, params, x[:100], None)["loss"], last, rel_tol=1e-6)


def test_a_classifier_reports_validation_accuracy_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3))
    x, xt = rng.random((300, 6)), rng.random((60, 6))
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=x, y_train=(x @ w).argmax(1), x_test=xt, y_test=(xt @ w).argmax(1))
    common = dict(
        dataset=str(path), optimizer="adam", model="classifier", widths=[8], validation=60, batch_size=60
    )
    straight = _run(tmp_path, "straight", epochs=3, **common)
    assert all(0 <= r["validation_accuracy"] <= 1 for r in straight)
    _run(tmp_path, "resumed", epochs=1, **common)
    resumed = train(
        TrainConfig(out=str(tmp_path / "resumed"), epochs=3, progress=False, summary=False, **common),  # type: ignore[arg-type]
        resume=True,
    )
    for key in ("train_loss", "validation_loss", "validation_accuracy", "test_accuracy"):
        assert [r[key] for r in resumed] == [r[key] for r in straight]
    assert CLASSIFIER.metrics == ("accuracy",)


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        (
            {"limit_train": 500, "validation": 500},
            ConfigError,
            r"^validation: 500 held-out images is not smaller than limit-train \(500\)$",
        ),
        (
            {"limit_train": 500, "validation": 450},
            ConfigError,
            r"^validation: holding out 450 of limit-train's 500 images leaves 50 to train on, fewer than one batch \(100\)",
        ),
        ({"validation": -1}, ConfigError, r"^validation: expected an integer >= 0, got -1$"),
        (
            {"validation": 19950},
            TrainingError,
            r"^validation: holding out 19950 of the training set's 20000 images leaves 50",
        ),
        (
            {"validation": 10, "preset": "official", "dataset": "mnist", "optimizer": "", "batch_size": None},
            ConfigError,
            r"^validation: the official preset trains on the whole training set",
        ),
    ],
)
def test_bad_splits_are_refused_in_one_line_before_training(
    tmp_path: Path, kw: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        _run(tmp_path, "bad", **kw)
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()


def test_compare_refuses_a_split_larger_than_the_data_before_making_its_folder(tmp_path: Path) -> None:
    from locograd.experiments.compare import compare

    config = TrainConfig(
        dataset="curves", epochs=1, validation=30000, out=str(tmp_path / "cmp"), progress=False
    )
    with pytest.raises(
        TrainingError,
        match=r"^validation: 30000 held-out images is not smaller than the training set \(20000\)$",
    ):
        compare(config, ["adam"])
    assert not (tmp_path / "cmp").exists()
