"""LocoProp on every backend and dtype, and bad input: clear errors, input params never modified."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import locograd as lg
from locograd import locoprop, optim


@pytest.fixture
def setup():
    net = lg.MLP([4, 5, 3, 4], ["tanh", "leaky_relu", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0, bias="glorot")
    x = np.random.default_rng(0).random((6, 4))
    return net, params, x


CASES = [
    ({"gamma": 0.0}, ValueError, r"gamma: expected a positive finite number, got 0.0"),
    ({"gamma": -1.0}, ValueError, r"gamma: expected a positive finite number"),
    ({"gamma": float("nan")}, ValueError, r"gamma: expected a positive finite number"),
    ({"eta": 0.0}, ValueError, r"eta: expected None or a positive finite number, got 0.0"),
    ({"eta": -2.0}, ValueError, r"eta: expected None or a positive"),
    ({"steps": 0}, ValueError, r"steps: expected an integer >= 1, got 0"),
    ({"steps": 2.5}, ValueError, r"steps: expected an integer >= 1, got 2.5"),
    ({"lr": 0.0}, ValueError, r"lr: expected a positive finite number, got 0.0"),
    (
        {"lr": None},
        ValueError,
        r"lr: expected a positive inner step size for solver='gd' without an inner optimizer",
    ),
    ({"variant": "Q"}, ValueError, r"variant: expected one of \('S', 'M'\), got 'Q'"),
    ({"solver": "lbfgs"}, ValueError, r"solver: expected one of \('gd', 'exact'\), got 'lbfgs'"),
    (
        {"solver": "exact", "eta": None},
        ValueError,
        r"eta: solver='exact' with variant 'M' needs a proximal weight",
    ),
    ({"inner_states": [None]}, ValueError, r"inner_states: expected 3 per-layer states, got 1"),
]


@pytest.mark.parametrize(("override", "error", "message"), CASES)
def test_bad_arguments_raise_and_leave_params_alone(setup, override: dict, error: type, message: str) -> None:
    net, params, x = setup
    before = copy.deepcopy(params)
    kwargs = {"variant": "M", "gamma": 1.0, "steps": 2, "lr": 0.1, **override}
    with pytest.raises(error, match=message):
        locoprop.step(net, params, x, x, **kwargs)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])


def test_params_that_do_not_fit_the_net(setup) -> None:
    net, params, x = setup
    with pytest.raises(ValueError, match=r"params\[1\]\['W'\]: expected shape \(5, 3\), got \(5, 2\)"):
        bad = copy.deepcopy(params)
        bad[1] = {"W": np.zeros((5, 2)), "b": np.zeros(2)}
        locoprop.step(net, bad, x, x, variant="S", gamma=1.0, lr=0.1)


@pytest.mark.parametrize("where", ["x", "y"])
def test_nan_or_inf_in_the_data(setup, where: str) -> None:
    net, params, x = setup
    bad = x.copy()
    bad[2, 1] = np.nan if where == "x" else np.inf
    args = (bad, x) if where == "x" else (x, bad)
    with pytest.raises(ValueError, match=rf"{where}: expected finite values, found NaN or Inf"):
        locoprop.step(net, params, *args, variant="M", gamma=1.0, lr=0.1)


def test_non_finite_result_of_a_step_is_an_error(setup) -> None:
    net, params, x = setup
    before = copy.deepcopy(params)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"step: layer \d [Wb] became non-finite"):
        locoprop.step(net, params, x, x, variant="S", gamma=1e200, steps=3, lr=1e200)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])


@pytest.mark.parametrize("solver", ["gd", "exact"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_solvers_never_modify_inputs(setup, solver: str, variant: str) -> None:
    net, params, x = setup
    before = copy.deepcopy(params)
    x_before = x.copy()
    opt = optim.rmsprop_tf1(1e-3)
    states = [opt.init(p) for p in params]
    states_before = copy.deepcopy(states)
    locoprop.step(
        net,
        params,
        x,
        x,
        variant=variant,
        gamma=2.0,
        eta=0.5,
        solver=solver,
        steps=3,
        inner=opt,
        inner_states=states,
    )
    np.testing.assert_array_equal(x, x_before)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
        np.testing.assert_array_equal(a["b"], b["b"])
    np.testing.assert_array_equal(states[0]["ms"]["W"], states_before[0]["ms"]["W"])


def test_locoprop_optimizer_bad_arguments(setup) -> None:
    net, _, _ = setup
    with pytest.raises(ValueError, match=r"mode: expected one of \('locoprop', 'backprop'\), got 'adam'"):
        optim.LocoProp(net, mode="adam")
    with pytest.raises(ValueError, match="gamma: expected a positive"):
        optim.LocoProp(net, gamma=0)
    with pytest.raises(ValueError, match="solver: expected one of"):
        optim.LocoProp(net, solver="newton")


def test_exact_m_solver_alone_needs_eta() -> None:
    problem = locoprop.LocalProblem.build(
        np.ones((2, 2)), np.zeros((2, 1)), "tanh", "M", {"W": np.zeros((2, 1)), "b": np.zeros(1)}
    )
    with pytest.raises(ValueError, match="eta: the exact M solve needs a proximal weight"):
        locoprop.solve_exact_m(problem)
    with pytest.raises(ValueError, match="eta: a Newton step of J_M needs"):
        locoprop.newton_step(problem)


@pytest.mark.parametrize(
    ("variant", "solver", "eta"),
    [("S", "gd", None), ("M", "gd", None), ("S", "exact", None), ("S", "exact", 0.5), ("M", "exact", 0.5)],
)
def test_every_solver_on_every_backend_and_dtype(bk, dtype, variant: str, solver: str, eta) -> None:
    """Same code on NumPy/CuPy and float32/float64: dtype and backend kept, values match float64 NumPy."""
    net = lg.MLP([5, 4, 3, 5], ["tanh", "relu", "sigmoid"], "sigmoid_cross_entropy")
    ref_params = net.init(seed=3, bias="glorot")
    x_np = np.random.default_rng(3).random((8, 5))
    kw = {"variant": variant, "gamma": 1.0, "eta": eta, "solver": solver, "steps": 3, "lr": 0.05}
    reference = locoprop.step(net, ref_params, x_np, x_np, **kw)
    params = [{k: bk.asarray(v, dtype=dtype) for k, v in p.items()} for p in ref_params]
    x = bk.asarray(x_np, dtype=dtype)
    new = locoprop.step(net, params, x, x, **kw)
    tol = 1e-10 if dtype == np.float64 else 2e-3
    for got, want in zip(new, reference, strict=True):
        for k in ("W", "b"):
            assert got[k].dtype == dtype and lg.backend.array_namespace(got[k]) is bk.xp
            np.testing.assert_allclose(bk.numpy(got[k]), want[k], rtol=tol, atol=tol)


def test_locoprop_optimizer_on_every_backend(bk) -> None:
    net = lg.MLP([5, 4, 5], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    with lg.backend.default_device("gpu" if bk.name == "cupy" else "cpu"):
        params = net.init(seed=1, dtype=np.float32)
    x = bk.asarray(
        np.random.default_rng(1).random((200, 5)), dtype=np.float32
    )  # G ~ 1/B keeps targets in range
    opt = optim.official(net)
    state = opt.init(params)
    new, state, info = opt.update(params, x, x, state, lr=1e-3)
    assert new[0]["W"].dtype == np.float32 and lg.backend.array_namespace(new[0]["W"]) is bk.xp
    assert state["inner"][1]["step"] == 10 and info is not None
