"""One run configuration, resolved once: :class:`RunConfig` is frozen, pickles to a study's
workers as it is, and a run builds its model and its schedule once (a study's planner builds no
model at all)."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

import locograd.experiments.config as config_module
from locograd import data, nn
from locograd.experiments import ConfigError, RunConfig, TrainConfig, resolve, train
from locograd.study.protocol import Planner
from locograd.study.spec import parse


def test_a_run_config_is_frozen_and_pickles_as_it_is() -> None:
    run = resolve(TrainConfig(optimizer="adam", schedule="warmup-linear-decay", warmup=1, schedule_total=10))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.epochs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        run.settings["lr"] = 1.0  # type: ignore[index]
    back = pickle.loads(pickle.dumps(run))
    assert back == run and back.record() == run.record() and back.schedule is not None
    assert [back.schedule(e) for e in range(9)] == [run.schedule(e) for e in range(9)]  # type: ignore[misc]
    assert resolve(run) is run  # resolved already: returned as it is
    with pytest.raises(ConfigError, match=r"^schedule: expected the schedule its settings name, got None$"):
        dataclasses.replace(run, schedule=None)  # negative control: a hand-made inconsistent one is refused


def test_a_run_builds_its_model_and_its_schedule_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = {"models": 0, "schedules": 0}
    real_init, real_schedule = nn.Sequential.__init__, config_module.make_schedule

    def counting_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        built["models"] += 1
        real_init(self, *args, **kwargs)

    def counting_schedule(*args, **kwargs):  # type: ignore[no-untyped-def]
        built["schedules"] += 1
        return real_schedule(*args, **kwargs)

    monkeypatch.setattr(nn.Sequential, "__init__", counting_init)
    monkeypatch.setattr(config_module, "make_schedule", counting_schedule)
    tiny = data.curves(n_train=60, n_test=20, seed=1)
    cfg = TrainConfig(
        optimizer="adam",
        out=str(tmp_path / "r"),
        epochs=2,
        batch_size=30,
        widths=[8, 2],
        schedule="warmup-linear-decay",
        warmup=1,
        schedule_total=5,
        progress=False,
        summary=False,
    )
    train(cfg, data=tiny)
    assert built == {"models": 1, "schedules": 1}
    resolve(cfg)
    assert built == {"models": 1, "schedules": 2}  # negative control: the counters count

    spec = parse(
        {
            "protocol": "grid",
            "tuning": {"epochs": 2},
            "final": {"epochs": 2},
            "datasets": {"curves": {"widths": [8, 2]}},
            "optimizers": {"adam": {"lr": [1e-3], "schedule": {"warmup": 1, "total": 5}}},
        },
        name="once",
    )
    trial = Planner(spec).trial(spec.datasets[0], spec.optimizers[0], {"lr": 1e-3}, 0, "tuning")
    assert isinstance(trial.run, RunConfig) and trial.run.settings["model"]["sizes"] == [784, 8, 2, 8, 784]
    assert built == {"models": 1, "schedules": 3}  # the planner resolved the trial: no model built
    assert np.isclose(trial.run.settings["lr"], 1e-3)
