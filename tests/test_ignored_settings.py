"""A setting that the chosen method ignores is refused, naming the setting and the method, before any
work; one that has an effect is accepted (each refusal has its control)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from locograd import MLP, locoprop, optim
from locograd.experiments.config import ConfigError, TrainConfig, resolve
from locograd.experiments.optimizers import settings
from locograd.optim.schedules import released_inner_factor
from locograd.study import SpecError, parse


def _net_and_batch() -> tuple[MLP, list, np.ndarray]:
    net = MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    x = np.random.default_rng(0).random((5, 4))
    return net, net.init(seed=0, dtype=np.float64), x


def test_the_exact_solver_refuses_a_learning_rate() -> None:
    net, params, x = _net_and_batch()
    opt = optim.LocoProp(net, locoprop.S(1.0), locoprop.Exact())
    with pytest.raises(
        ValueError, match=r"^lr: LocoProp with the exact solver has no learning rate .*got 0; pass none$"
    ):
        opt.step(params, x, x, opt.init(params), lr=0)
    new, _, _ = opt.step(params, x, x, opt.init(params))  # control: without one it steps
    assert not np.array_equal(new[0]["W"], params[0]["W"])
    gd = optim.LocoProp(net, locoprop.S(1.0), locoprop.GD(steps=2, lr=0.1))
    kept, _, _ = gd.step(params, x, x, gd.init(params), lr=0)  # a rate has an effect under GD: 0 keeps
    assert np.array_equal(kept[0]["W"], params[0]["W"])


@pytest.mark.parametrize("given", [{"lr": 5.0}, {"steps": 99}, {"inner": "adam"}])
@pytest.mark.parametrize("name", ["locoprop-s", "locoprop-m-normalised"])
def test_exact_settings_refuse_the_inner_loops_settings(name: str, given: dict) -> None:
    key = next(iter(given))
    extra = {"eta": 1.0} if "-m" in name else {}
    with pytest.raises(
        ValueError,
        match=rf"^{key}: the exact solver has no inner loop .* would ignore {key}; drop it or use solver gd$",
    ):
        settings(name, "curves", solver="exact", **given, **extra)
    resolved = settings(name, "curves", solver="exact", **extra)  # control: nothing ignored is recorded
    assert resolved["lr"] is None and resolved["steps"] is None and resolved["inner"] is None
    assert settings(name, "curves", solver="gd", **given)[key] is not None


def test_exact_m_needs_eta_before_any_work() -> None:
    with pytest.raises(
        ValueError, match=r"^eta: locoprop-m with the exact solver needs a proximal weight eta > 0"
    ):
        settings("locoprop-m", "curves", solver="exact")
    spec = {
        "final": {"epochs": 3},
        "datasets": {"curves": {}},
        "optimizers": {"locoprop-m": {"solver": "exact", "gamma": [1.0, 10.0]}},
    }
    with pytest.raises(
        SpecError, match=r"^optimizers.locoprop-m.eta: locoprop-m with the exact solver needs"
    ):
        parse(spec, name="s")
    spec["optimizers"]["locoprop-m"]["eta"] = 1.0
    assert parse(spec, name="s").optimizers[0].fixed["eta"] == 1.0


def test_a_study_axis_that_changes_nothing_is_refused() -> None:
    spec = {
        "final": {"epochs": 3},
        "datasets": {"curves": {}},
        "optimizers": {"locoprop-s": {"solver": "exact", "lr": [1e-3, 1e-1]}},
    }
    with pytest.raises(SpecError, match=r"^optimizers.locoprop-s.lr: the exact solver has no inner loop"):
        parse(spec, name="s")


def test_the_command_line_refuses_exact_with_a_rate_and_k() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "locograd",
            "train",
            "--optimizer",
            "locoprop-s",
            "--solver",
            "exact",
            "--lr",
            "5",
            "--steps",
            "99",
            "--epochs",
            "1",
            "--out",
            "/nonexistent-folder/never",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("locograd: error: lr: the exact solver has no inner loop")
    )
    with pytest.raises(ConfigError, match=r"^schedule: the exact solver has no learning rate"):
        resolve(
            TrainConfig(
                optimizer="locoprop-s",
                solver="exact",
                schedule="warmup-linear-decay",
                warmup=1,
                schedule_total=10,
                epochs=2,
            ),
            machine=False,
        )


def test_an_exact_tolerance_that_stops_before_the_first_step_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^tol: expected None or a number in \[0, 1\), got 1000000000.0$"):
        locoprop.Exact(tol=1e9)
    assert locoprop.Exact(tol=0.5).tol == 0.5


@pytest.mark.parametrize(
    ("inner", "lr", "message"),
    [
        (
            optim.scale(1.0),
            0.1,
            r"^inner: its first update on a gradient g must point downhill \(<u, g> < 0\), got <u, g> = 5 \(scale\)",
        ),
        (optim.scale(1.0), None, r"^inner: scale has no learning rate of its own \(its lr is None"),
        (
            optim.chain(optim.adam(), optim.sgd(lr=0.1)),
            None,
            r"^inner: chain\(adam, sgd\) has no learning rate of its own",
        ),
    ],
)
def test_gd_refuses_an_inner_optimizer_that_does_not_descend(
    inner: object, lr: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        locoprop.GD(steps=2, lr=lr, inner=inner)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop", "rmsprop_tf1"])
def test_every_library_optimizer_descends(name: str) -> None:
    assert locoprop.GD(steps=2, inner=optim.get(name, lr=0.1)).inner is not None
    assert locoprop.GD(steps=2, lr=0.1, inner=optim.chain(optim.scale(-1.0), optim.scale(0.5))).lr == 0.1


def test_an_lr_factor_of_the_wrong_arity_or_value_is_named() -> None:
    with pytest.raises(TypeError, match=r"^lr_factor: calling lr_factor\(0, 2\) failed \(TypeError: "):
        locoprop.GD(steps=2, lr=0.1, lr_factor=lambda k: 1.0)
    with pytest.raises(ValueError, match=r"^lr_factor\(0, 2\): expected a finite number >= 0, got -1"):
        locoprop.GD(steps=2, lr=0.1, lr_factor=lambda k, n: -1.0)
    assert locoprop.GD(steps=3, lr=0.1, lr_factor=released_inner_factor).steps == 3


@pytest.mark.parametrize(
    ("k", "steps", "message"),
    [
        (0, 0, r"^steps: expected an integer >= 1, got 0$"),
        (-1, 10, r"^k: expected an integer in \[0, 10\)"),
        (10, 10, r"^k: expected an integer in \[0, 10\)"),
    ],
)
def test_the_released_factor_refuses_steps_outside_the_batch(k: int, steps: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        released_inner_factor(k, steps)
    assert [released_inner_factor(i, 4) for i in range(4)] == [1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize("name", ["adam", "rmsprop-tf1", "kfac"])
def test_layer_threads_are_refused_where_no_local_problem_is_solved(name: str) -> None:
    """``workers`` (LocoProp's layer threads) was accepted by every optimizer and ignored by BackProp's."""
    with pytest.raises(ConfigError, match=rf"^workers: only applies to LocoProp .*not to '{name}'; drop it$"):
        resolve(TrainConfig(optimizer=name, workers=2))
    assert resolve(TrainConfig(optimizer=name, workers=1)).workers == 1  # control: the default is taken
    assert resolve(TrainConfig(optimizer="locoprop-m", workers=2)).workers == 2  # control: LocoProp's


def test_compare_gives_layer_threads_to_its_locoprop_runs_only(tmp_path) -> None:
    from locograd.experiments import compare

    config = TrainConfig(epochs=1, limit_train=400, workers=2, out=str(tmp_path / "c"), progress=False)
    with pytest.raises(ConfigError, match=r"^workers: only applies to LocoProp, and none of adam,sgd is"):
        compare(config, ["adam", "sgd"])
    assert not (tmp_path / "c").exists()
    compare(config, ["adam", "locoprop-m"])
    import json

    record = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert set(record["runs"]) == {"adam", "locoprop-m"}
