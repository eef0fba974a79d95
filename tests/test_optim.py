"""First-order optimizers: semantics against element-by-element reference formulas (and PyTorch when
installed), purity, schedules, the released preset, bad hyper-parameters."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import optim
from locograd.optim import schedules

from .strategies import seeds


def scalar_reference(name: str, w: float, grads: list[float], lr: float) -> float:
    """Each optimizer written out for one scalar parameter, from its definition."""
    m = v = s = 0.0
    ms, mom = 1.0, 0.0
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            w -= lr * g
        elif name == "momentum":
            m = 0.9 * m + g
            w -= lr * m
        elif name == "nesterov":
            m = 0.9 * m + g
            w -= lr * (g + 0.9 * m)
        elif name == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            w -= lr * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        elif name == "adagrad":
            s += g * g
            w -= lr * g / (math.sqrt(s) + 1e-10)
        elif name == "rmsprop":
            v = 0.99 * v + 0.01 * g * g
            w -= lr * g / (math.sqrt(v) + 1e-8)
        elif name == "rmsprop_tf1":
            ms = 0.9 * ms + 0.1 * g * g
            mom = 0.999 * mom + lr * g / math.sqrt(ms + 1e-5)
            w -= mom
    return w


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
@given(
    w0=st.floats(-2, 2),
    grads=st.lists(st.floats(-3, 3, allow_subnormal=False), min_size=1, max_size=6),
    lr=st.floats(1e-4, 0.5),
)
def test_matches_the_reference_formula(name: str, w0: float, grads: list[float], lr: float) -> None:
    opt = optim.get(name, lr=lr)
    params = {"W": np.array([[w0]]), "b": np.array([w0])}
    state = opt.init(params)
    for g in grads:
        params, state = opt.update({"W": np.array([[g]]), "b": np.array([g])}, state, params)
    want = scalar_reference(name, w0, grads, lr)
    assert params["W"][0, 0] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert state["step"] == len(grads)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop"])
@given(seed=seeds())
def test_matches_pytorch_when_installed(name: str, seed: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(4)]
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
        "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=0.1),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.1),
    }[name]
    tw = torch.tensor(w0, requires_grad=True)
    topt = make([tw])
    opt = optim.get(name, lr=0.1)
    params = {"W": w0}
    state = opt.init(params)
    for g in grads:
        tw.grad = torch.tensor(g)
        topt.step()
        params, state = opt.update({"W": g}, state, params)
    np.testing.assert_allclose(params["W"], tw.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_update_is_pure_and_preserves_structure_and_dtype(name: str, dtype) -> None:
    net = lg.MLP([3, 4, 2], ["tanh", "identity"], "squared_error")
    params = net.init(dtype=dtype)
    before = copy.deepcopy(params)
    grads = [{"W": np.ones_like(p["W"]), "b": np.ones_like(p["b"])} for p in params]
    opt = optim.get(name)
    state = opt.init(params)
    state_before = copy.deepcopy(state)
    new, new_state = opt.update(grads, state, params)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
    assert state["step"] == state_before["step"] == 0 and new_state["step"] == 1
    assert [set(p) for p in new] == [{"W", "b"}] * 2
    assert all(p[k].dtype == dtype for p in new for k in p)


def test_lr_override_and_zero_lr() -> None:
    opt = optim.sgd(0.1)
    p = {"W": np.ones((1, 1)), "b": np.ones(1)}
    g = {"W": np.ones((1, 1)), "b": np.ones(1)}
    new, _ = opt.update(g, opt.init(p), p, lr=0.5)
    assert new["W"][0, 0] == 0.5
    same, _ = opt.update(g, opt.init(p), p, lr=0.0)
    assert same["W"][0, 0] == 1.0


def test_released_schedule_and_inner_factor() -> None:
    s = schedules.warmup_linear_decay(1e-5, warmup=5, total=100)
    assert s(0) == 0.0 and s(1) == pytest.approx(2e-6) and s(4) == pytest.approx(8e-6)
    assert s(5) == pytest.approx(1e-5 * (1 - 1 / 95)) and s(98) == pytest.approx(1e-5 * (1 - 94 / 95))
    assert [schedules.released_inner_factor(k, 10) for k in (0, 1, 5, 7, 9)] == [
        1.0,
        0.9,
        0.5,
        0.30000000000000004,
        0.25,
    ]
    c = schedules.cosine(1.0, total=10)
    assert c(0) == 1.0 and c(10) == pytest.approx(0.0) and c(5) == pytest.approx(0.5)
    assert schedules.constant(0.3)(17) == 0.3


def test_official_preset_is_the_released_configuration() -> None:
    net = lg.MLP(
        [784, 1000, 500, 250, 30, 250, 500, 1000, 784],
        ["tanh"] * 3 + ["identity"] + ["tanh"] * 3 + ["sigmoid"],
        "sigmoid_cross_entropy",
    )
    opt = optim.official(net)
    assert (opt.variant, opt.gamma, opt.eta, opt.steps, opt.solver, opt.mode) == (
        "M",
        10.0,
        None,
        10,
        "gd",
        "locoprop",
    )
    assert opt.inner.name == "rmsprop_tf1" and opt.inner.lr == 1e-5
    assert opt.inner.hyperparams == {"decay": 0.9, "momentum": 0.999, "eps": 1e-5}
    assert opt.lr_factor(3, 10) == pytest.approx(0.7) and opt.lr_factor(9, 10) == 0.25
    assert opt.schedule is not None and opt.schedule(0) == 0.0
    state = opt.init(net.init())
    assert np.all(state["inner"][0]["ms"]["W"] == 1.0) and np.all(state["inner"][0]["mom"]["W"] == 0.0)
    assert optim.official(net, mode="backprop").mode == "backprop"


def test_zero_learning_rate_epoch_keeps_params_and_advances_state() -> None:
    """Released epoch 0 trains with lr 0: weights stay, the RMSProp mean-square slot still accumulates."""
    net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    opt = optim.official(net)
    params = net.init(seed=0, bias="glorot")
    x = np.random.default_rng(0).random((50, 4))
    new, state, _ = opt.update(params, x, x, opt.init(params), lr=opt.schedule(0))
    assert all(np.array_equal(a["W"], b["W"]) for a, b in zip(new, params, strict=True))
    assert state["inner"][0]["step"] == 10 and np.all(state["inner"][0]["ms"]["W"] != 1.0)
    assert np.all(state["inner"][0]["mom"]["W"] == 0.0)


def test_backprop_mode_is_one_optimizer_step_on_the_global_gradient() -> None:
    net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0)
    x = np.random.default_rng(0).random((5, 4))
    bp = optim.LocoProp(net, inner=optim.adam(1e-2), mode="backprop")
    new, _, info = bp.update(params, x, x, bp.init(params))
    _, grads = net.value_and_grad(params, x, x)
    g = grads.as_params()
    ref, _ = optim.adam(1e-2).update(g, optim.adam(1e-2).init(params), params)
    assert info.layers == [] and float(info.loss) == pytest.approx(net.loss(params, x, x))
    assert all(np.allclose(a["W"], b["W"], rtol=1e-14) for a, b in zip(new, ref, strict=True))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: optim.sgd(0.0), r"lr: expected a finite number > 0, got 0.0"),
        (lambda: optim.sgd(-1.0), r"lr: expected a finite number > 0"),
        (lambda: optim.adam(beta1=1.0), r"beta1: expected a number in \[0, 1\)"),
        (lambda: optim.rmsprop(eps=0.0), r"eps: expected a finite number > 0"),
        (lambda: optim.momentum(beta=-0.1), r"beta: expected a number in \[0, 1\)"),
        (lambda: optim.get("lion"), r"optimizer: unknown name 'lion'; valid names are sgd, momentum"),
        (lambda: schedules.warmup_linear_decay(-1.0), r"lr: expected a positive finite number"),
        (
            lambda: schedules.warmup_linear_decay(1.0, warmup=10, total=5),
            r"warmup: expected an integer in \[0, total\)",
        ),
        (
            lambda: optim.sgd(0.1).update({"W": np.ones(1)}, {"step": 0}, {"W": np.ones(1)}, lr=-1.0),
            "lr: expected a finite number >= 0",
        ),
    ],
)
def test_bad_hyperparameters(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
