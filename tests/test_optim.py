"""First-order optimizers: semantics against element-by-element reference formulas (and PyTorch when
installed), updates and NamedTuple states, purity, chain/scale/apply_updates, schedules, the released
presets, bad hyper-parameters."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import optim
from locograd.errors import StateMismatchError
from locograd.locoprop import GD, M
from locograd.optim import schedules

from .rounding import same_bits
from .strategies import arrays, seeds


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
        updates, state = opt.update({"W": np.array([[g]]), "b": np.array([g])}, state, params)
        params = optim.apply_updates(params, updates)
    want = scalar_reference(name, w0, grads, lr)
    assert params["W"][0, 0] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert type(state) is optim.STATES[name] and state.step == len(grads)


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
        updates, state = opt.update({"W": g}, state, params)
        params = optim.apply_updates(params, updates)
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
    grads_before = copy.deepcopy(grads)
    updates, new_state = opt.update(grads, state, params)
    assert same_bits(params, before) and same_bits(state, state_before) and same_bits(grads, grads_before)
    assert state.step == 0 and new_state.step == 1 and type(new_state) is type(state)
    assert [set(u) for u in updates] == [{"W", "b"}] * 2
    assert all(
        u[k].dtype == dtype and u[k].shape == p[k].shape
        for u, p in zip(updates, params, strict=True)
        for k in u
    )
    new = optim.apply_updates(params, updates)
    assert same_bits(params, before)  # apply_updates is pure too
    assert all(new[m][k].dtype == dtype for m in range(2) for k in ("W", "b"))
    assert not same_bits(new, params)  # negative control: the step moved something


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_states_are_named_tuples_of_their_own_type(name: str) -> None:
    """Every optimizer's state is its own NamedTuple (``optim.STATES``): ``step`` first, then slots shaped
    like the params; another optimizer's state is refused by type, in one line."""
    params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    opt = optim.get(name)
    state = opt.init(params)
    assert type(state) is optim.STATES[name] and state._fields[0] == "step" and state.step == 0
    for slot in state._fields[1:]:  # each slot has the params' layout (apply_updates checks it)
        optim.apply_updates(params, getattr(state, slot))
    other = "adam" if name != "adam" else "sgd"
    with pytest.raises(StateMismatchError) as err:
        opt.update(params, optim.get(other).init(params), params)
    assert str(err.value).startswith("state: expected a") and optim.STATES[other].__name__ in str(err.value)
    with pytest.raises(StateMismatchError, match=r"got a dict state tagged '\w+'$"):
        opt.update(params, {"step": 0, "name": name}, params)


def test_lr_override_and_zero_lr() -> None:
    opt = optim.sgd(0.1)
    p = {"W": np.ones((1, 1)), "b": np.ones(1)}
    g = {"W": np.ones((1, 1)), "b": np.ones(1)}
    updates, _ = opt.update(g, opt.init(p), p, lr=0.5)
    assert optim.apply_updates(p, updates)["W"][0, 0] == 0.5
    updates, state = opt.update(g, opt.init(p), p, lr=0.0)
    assert optim.apply_updates(p, updates)["W"][0, 0] == 1.0 and state.step == 1
    updates, _ = opt.update(g, opt.init(p), p)  # negative control: the default lr 0.1
    assert optim.apply_updates(p, updates)["W"][0, 0] == 0.9


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
    """``official(net)``: LocoProp-M, gamma 10, no eta, K = 10 TF1-RMSProp steps (lr 1e-5) with the factor
    max(1 - k/K, 0.25); its schedule is ``official_schedule()`` (no longer an attribute), and the BackProp
    baseline is ``official_backprop(net)`` (no longer ``mode="backprop"``)."""
    net = lg.MLP(
        [784, 1000, 500, 250, 30, 250, 500, 1000, 784],
        ["tanh"] * 3 + ["identity"] + ["tanh"] * 3 + ["sigmoid"],
        "sigmoid_cross_entropy",
    )
    opt = optim.official(net)
    assert isinstance(opt, optim.LocoProp) and isinstance(opt, optim.NetOptimizer)
    assert opt.variant == M(gamma=10.0, eta=None)
    assert isinstance(opt.solver, GD) and opt.solver.steps == 10 and opt.solver.lr is None
    inner = opt.solver.inner
    assert opt.inner is inner and inner.name == "rmsprop_tf1" and inner.lr == 1e-5 and opt.lr == 1e-5
    assert inner.hyperparams == {"decay": 0.9, "momentum": 0.999, "eps": 1e-5}
    assert opt.solver.lr_factor(3, 10) == pytest.approx(0.7) and opt.solver.lr_factor(9, 10) == 0.25
    assert not hasattr(opt, "schedule") and not hasattr(opt, "mode")
    schedule = optim.official_schedule()
    assert schedule(0) == 0.0 and schedule(1) == pytest.approx(2e-6) and schedule.epochs == 99
    state = opt.init(net.init())
    assert isinstance(state, optim.LocoPropState) and len(state.inner) == net.num_layers
    assert np.all(state.inner[0].ms["W"] == 1.0) and np.all(state.inner[0].mom["W"] == 0.0)
    with pytest.raises(TypeError, match="mode"):
        optim.official(net, mode="backprop")  # type: ignore[call-arg]
    bp = optim.official_backprop(net)
    assert isinstance(bp, optim.BackProp) and bp.inner.name == "rmsprop_tf1" and bp.lr == 1e-5
    assert bp.inner.hyperparams == inner.hyperparams
    bp_state = bp.init(net.init())
    assert isinstance(bp_state, optim.BackPropState) and type(bp_state.inner) is optim.RMSPropTF1State


def test_zero_learning_rate_epoch_keeps_params_and_advances_state() -> None:
    """Released epoch 0 trains with lr 0: weights stay, the RMSProp mean-square slot still accumulates."""
    net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    opt = optim.official(net)
    params = net.init(seed=0, bias="glorot")
    x = np.random.default_rng(0).random((50, 4))
    new, state, _ = opt.step(params, x, x, opt.init(params), lr=optim.official_schedule()(0))
    assert all(np.array_equal(a["W"], b["W"]) for a, b in zip(new, params, strict=True))
    assert state.inner[0].step == 10 and np.all(state.inner[0].ms["W"] != 1.0)
    assert np.all(state.inner[0].mom["W"] == 0.0)
    moved, _, _ = opt.step(params, x, x, opt.init(params), lr=optim.official_schedule()(1))
    assert not all(np.array_equal(a["W"], b["W"]) for a, b in zip(moved, params, strict=True))  # control


def test_backprop_is_one_optimizer_step_on_the_global_gradient() -> None:
    """``BackProp(net, inner)`` (the old ``LocoProp(mode="backprop")``): one step of ``inner`` on dL/dW.

    Its lean pass is documented bit for bit ``MLP.forward`` + ``MLP.backward``, so the step is compared
    bit for bit (the old test's rtol 1e-14 is no longer needed); negative control: another lr fails it."""
    net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0)
    x = np.random.default_rng(0).random((5, 4))
    bp = optim.BackProp(net, optim.adam(1e-2))
    new, state, info = bp.step(params, x, x, bp.init(params))
    _, g = net.value_and_grad(params, x, x)
    updates, ref_state = optim.adam(1e-2).update(g, optim.adam(1e-2).init(params), params)
    ref = optim.apply_updates(params, updates)
    assert list(info.layers) == [] and float(info.loss) == pytest.approx(net.loss(params, x, x))
    assert same_bits(new, ref) and same_bits(state.inner, ref_state)
    other, _, _ = bp.step(params, x, x, bp.init(params), lr=1.25e-2)
    assert not same_bits(other, ref)


# ---- chain, scale, apply_updates --------------------------------------------------------------------


def layer_tree(g: np.ndarray) -> dict[str, np.ndarray]:
    return {"W": g, "b": g[0].copy()}


@given(g=arrays((3, 2), bound=10.0), lr=st.floats(1e-4, 1.0), seed=seeds())
def test_chain_of_scale_by_a_power_of_two_and_sgd_is_sgd_at_the_scaled_rate(g, lr: float, seed: int) -> None:
    """``chain(scale(0.5), sgd(lr))`` = ``sgd(lr / 2)`` bit for bit: halving is exact away from the underflow
    threshold (entries below 1e-100 are set to 0), so -lr * (g / 2) and -(lr / 2) * g are both the one
    rounding of -lr g / 2.

    For a factor that is not a power of two (0.3) the two orders round differently: each side has two
    roundings, so they agree to 2 eps relative per entry (stated tolerance 4 eps), not bit for bit.
    Negative control: the chain is not ``sgd(lr)``.
    """
    params = layer_tree(np.random.default_rng(seed).standard_normal((3, 2)))
    grads = layer_tree(np.where(np.abs(g) < 1e-100, 0.0, g))  # no product near the underflow threshold
    chain = optim.chain(optim.scale(0.5), optim.sgd(lr))
    u_chain, s_chain = chain.update(grads, chain.init(params), params)
    u_sgd, _ = optim.sgd(lr / 2).update(grads, optim.sgd(lr / 2).init(params), params)
    assert same_bits(u_chain, u_sgd)
    assert s_chain == optim.ChainState((optim.EmptyState(), optim.SgdState(1)))
    c = 0.3
    u_c, _ = optim.chain(optim.scale(c), optim.sgd(lr)).update(grads, chain.init(params), params)
    u_s, _ = optim.sgd(lr * c).update(grads, optim.sgd(lr * c).init(params), params)
    eps = np.finfo(np.float64).eps
    for k in ("W", "b"):
        assert np.all(np.abs(u_c[k] - u_s[k]) <= 4 * eps * np.abs(u_s[k]))
    u_full, _ = optim.sgd(lr).update(grads, optim.sgd(lr).init(params), params)
    if np.any(grads["W"] != 0):
        assert not same_bits(u_chain, u_full)


def test_chain_state_learning_rate_and_a_stateful_member() -> None:
    """A chain's state is a ChainState of its members' states; ``lr`` goes to the member with a learning
    rate (scale has none), and the chain's own ``lr`` is that member's.  ``chain(scale(2), adam)`` over three
    steps is adam on 2 g, bit for bit (the same operations)."""
    params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    rng = np.random.default_rng(0)
    chain = optim.chain(optim.scale(2.0), optim.adam(1e-3))
    assert chain.lr == 1e-3 and chain.name == "chain(scale, adam)" and chain.update_inplace is None
    assert optim.chain(optim.sgd(0.1), optim.adam(0.2)).lr is None  # two rates: none is the chain's
    adam = optim.adam(1e-3)
    s_chain, s_adam = chain.init(params), adam.init(params)
    assert isinstance(s_chain, optim.ChainState) and s_chain.states[0] == optim.EmptyState()
    p_chain = p_adam = params
    for lr in (None, 5e-4, 0.0):
        g = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        u, s_chain = chain.update(g, s_chain, p_chain, lr=lr)
        p_chain = optim.apply_updates(p_chain, u)
        u, s_adam = adam.update({k: 2.0 * v for k, v in g.items()}, s_adam, p_adam, lr=lr)
        p_adam = optim.apply_updates(p_adam, u)
        assert same_bits(p_chain, p_adam) and same_bits(s_chain.states[1], s_adam)
    assert s_chain.states[1].step == 3
    g = {k: np.ones_like(v) for k, v in params.items()}
    u_half, _ = chain.update(g, chain.init(params), params, lr=5e-4)
    u_full, _ = chain.update(g, chain.init(params), params)
    assert not same_bits(u_half, u_full)  # negative control: the lr did reach adam
    with pytest.raises(
        StateMismatchError, match=r"state: expected a ChainState \(what chain\(scale, adam\)'s"
    ):
        chain.update(g, adam.init(params), params)
    with pytest.raises(StateMismatchError, match=r"state.states: expected 2 member states, got 1"):
        chain.update(g, optim.ChainState((optim.EmptyState(),)), params)


def test_chain_refuses_no_member_or_a_member_that_is_not_a_transformation() -> None:
    with pytest.raises(
        ValueError, match=r"transforms: expected at least one GradientTransformation, got none"
    ):
        optim.chain()
    with pytest.raises(TypeError, match=r"transforms\[1\]: expected a GradientTransformation, got object"):
        optim.chain(optim.sgd(), object())  # type: ignore[arg-type]
    assert optim.chain(optim.sgd()).lr == 0.01  # negative control


def test_scale_multiplies_the_updates_and_has_an_empty_state() -> None:
    """``scale(c)``: u = c g exactly (one rounding), stateless; bad factors are refused in one line."""
    t = optim.scale(-3.0)
    g = {"W": np.array([[1.0, -2.5]]), "b": np.array([0.1, 0.0])}
    u, state = t.update(g, t.init(g), g, lr=7.0)  # lr is ignored: scale has none
    assert same_bits(u, {k: -3.0 * v for k, v in g.items()}) and state == optim.EmptyState()
    assert t.lr is None and t.hyperparams == {"factor": -3.0}
    for bad, shown in (("a", "str 'a'"), (True, "bool True"), (float("nan"), "nan")):
        with pytest.raises(ValueError) as err:
            optim.scale(bad)  # type: ignore[arg-type]
        assert str(err.value) == f"factor: expected a finite number, got {shown}"
    with pytest.raises(
        StateMismatchError, match=r"state: expected an EmptyState \(what scale's init builds\)"
    ):
        t.update(g, optim.SgdState(0), g)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"W": np.ones((2, 2))}, r"updates: expected the keys \['W', 'b'\], got \['W'\]"),
        ({"W": np.ones((2, 3)), "b": np.zeros(2)}, r"updates\['W'\]: expected shape \(2, 2\), got \(2, 3\)"),
        (
            {"W": np.ones((2, 2), np.float32), "b": np.zeros(2)},
            r"updates\['W'\]: expected dtype float64, got float32",
        ),
        ([np.ones((2, 2)), np.zeros(2)], r"updates: expected a dict, got list"),
        (
            {"W": np.ones((2, 2)), "b": np.zeros(2), "c": np.zeros(2)},
            r"updates: expected the keys \['W', 'b'\], got \['W', 'b', 'c'\]",
        ),
        ({"W": np.ones((2, 2)), "b": np.zeros(1)}, r"updates\['b'\]: expected shape \(2,\), got \(1,\)"),
    ],
    ids=["missing key", "shape", "dtype", "list", "extra key", "broadcastable"],
)
def test_apply_updates_refuses_updates_of_another_layout(updates, message: str) -> None:
    """Never broadcast, upcast or pair by position: one StateMismatchError naming the path; params untouched.
    Negative control: updates of the params' layout are added."""
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    before = copy.deepcopy(params)
    with pytest.raises(StateMismatchError, match=message):
        optim.apply_updates(params, updates)
    assert same_bits(params, before)
    new = optim.apply_updates(params, {"W": np.full((2, 2), 0.5), "b": np.ones(2)})
    assert same_bits(new, {"W": np.full((2, 2), 1.5), "b": np.ones(2)}) and same_bits(params, before)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: optim.sgd(0.0), r"lr: expected a finite number > 0, got 0.0"),
        (lambda: optim.sgd(-1.0), r"lr: expected a finite number > 0"),
        (lambda: optim.adam(beta1=1.0), r"beta1: expected a number in \[0, 1\)"),
        (lambda: optim.rmsprop(eps=0.0), r"eps: expected a finite number > 0"),
        (lambda: optim.momentum(beta=-0.1), r"beta: expected a number in \[0, 1\)"),
        (lambda: optim.get("lion"), r"optimizer: unknown name 'lion'; valid names are sgd, momentum"),
        (lambda: schedules.warmup_linear_decay(-1.0), r"lr: expected a finite number > 0"),
        (
            lambda: schedules.warmup_linear_decay(1.0, warmup=10, total=5),
            r"warmup: expected an integer in \[0, 4\], got 10",
        ),
        (
            lambda: optim.sgd(0.1).update({"W": np.ones(1)}, optim.SgdState(0), {"W": np.ones(1)}, lr=-1.0),
            "lr: expected a finite number >= 0",
        ),
        (
            lambda: optim.BackProp(lg.MLP([2, 2], ["identity"], "squared_error"), optim.sgd()).step(
                [{"W": np.ones((2, 2)), "b": np.zeros(2)}],
                np.ones((1, 2)),
                np.ones((1, 2)),
                optim.BackPropState(optim.SgdState(0)),
                lr=-1.0,
            ),
            "lr: expected a finite number >= 0",
        ),
    ],
)
def test_bad_hyperparameters(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_step_info_prints_in_one_short_line_and_carries_no_optimizer_state() -> None:
    """``print(info)`` after a LocoProp step wrote the inner states' arrays (about 84 KB on the deep
    autoencoder); now ``StepInfo`` holds the loss and the reports only, and prints them in one line.
    Negative control: the default tuple repr of the same loss as an array is not that line."""
    net = lg.MLP([20, 30, 20], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0)
    x = np.random.default_rng(0).random((50, 20))
    opt = optim.LocoProp(net, M(gamma=1.0), GD(steps=2, inner=optim.adam(1e-3)))
    _, state, info = opt.step(params, x, x, opt.init(params))
    assert isinstance(info, optim.StepInfo) and info._fields == ("loss", "layers")
    text = repr(info)
    assert (
        "\n" not in text and len(text) < 100 and text == f"StepInfo(loss={float(info.loss):.6g}, layers=[])"
    )
    assert len(repr(state)) > 10_000  # the state the step returned separately: arrays
    assert tuple.__repr__(info) != text
