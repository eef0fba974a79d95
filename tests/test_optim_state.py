"""Optimizer states are checked against the parameters (issue 11, kind 2).

Every optimizer's ``update`` (a first-order one's ``update_inplace`` too) and every network
optimizer's ``step`` refuses, before any work and with one
:class:`~locograd.errors.StateMismatchError` naming the path, a state from another network,
another optimizer or another dtype (states are NamedTuples: ``state.m[0]['W']``), a dict state of
a dict, and gradients that do not have the structure, shapes and dtypes of the
parameters.  Before these checks such states were broadcast, dropped or failed deep inside NumPy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import locograd as lg
from locograd import nn, optim
from locograd.errors import StateMismatchError
from locograd.experiments import checkpoint
from locograd.locoprop import GD, M
from locograd.optim.first_order import SLOTS, STATES
from locograd.validators import float_tree, same_layout, same_tree, template_array

FIRST_ORDER = sorted(optim.FIRST_ORDER)
WITH_SLOTS = [name for name in FIRST_ORDER if SLOTS[name]]  # sgd's state has no arrays
SIZES = [3, 4, 2]
NARROW = [3, 1, 2]  # a width-1 hidden layer: its states broadcast against SIZES' before the checks
DEEP = [3, 4, 4, 2]


def make_net(sizes: list[int]) -> lg.MLP:
    return lg.MLP(sizes, ["tanh"] * (len(sizes) - 2) + ["identity"], "squared_error")


def make_params(
    sizes: list[int] = SIZES, dtype: Any = np.float64, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    return make_net(sizes).init(seed=seed, dtype=dtype, bias="glorot")


def batch(n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """float64 inputs ``(n, 3)`` and squared-error targets ``(n, 2)`` for a SIZES network."""
    rng = np.random.default_rng(0)
    return rng.random((n, SIZES[0])), rng.standard_normal((n, SIZES[-1]))


def ones_like(tree: Any) -> Any:
    return lg.backend.tree_map(np.ones_like, tree)


def state_name(name: str) -> str:
    """``"an AdamState"``: how a message names ``name``'s state type."""
    cls = STATES[name].__name__
    return f"{'an' if cls[0] in 'AEIOU' or cls.startswith(('Sgd', 'RMS')) else 'a'} {cls}"


def tree_equal(a: Any, b: Any) -> bool:
    """Exact equality of two trees of arrays and plain values (structure and NamedTuple types included)."""
    if hasattr(a, "_fields"):
        return type(a) is type(b) and all(map(tree_equal, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(tree_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def updater(opt: optim.GradientTransformation, path: str) -> Callable[..., Any]:
    return opt.update if path == "pure" else opt.update_inplace


# ---- the three examples of the issue ------------------------------------------------------------


@pytest.mark.parametrize("name", WITH_SLOTS)
@pytest.mark.parametrize("path", ["pure", "inplace"])
def test_a_state_of_a_network_with_a_width1_layer_is_refused_not_broadcast(name: str, path: str) -> None:
    """Issue example 1. Before the checks, the ``(3, 1)`` slots of a width-1 layer's state were
    broadcast against the ``(3, 4)`` gradients (pure) or failed inside NumPy (in place).  Now: one
    error naming the slot, the layer and both shapes."""
    opt = optim.get(name)
    params = make_params()
    state = opt.init(make_params(NARROW))
    slot = SLOTS[name][0]
    message = rf"^state\.{slot}\[0\]\['W'\]: expected shape \(3, 4\), got \(3, 1\)$"
    with pytest.raises(StateMismatchError, match=message):
        updater(opt, path)(ones_like(params), state, params)


@pytest.mark.parametrize("path", ["pure", "inplace"])
def test_sgd_refuses_an_adam_state_instead_of_dropping_it(path: str) -> None:
    """Issue example 2. Before: ``sgd`` took an adam state, stepped and dropped the moments without a
    word.  Now one line naming both types, and the same the other way round:
    "state: expected an AdamState (what adam's init builds), got SgdState"."""
    params = make_params()
    with pytest.raises(
        StateMismatchError,
        match=rf"^state: expected {state_name('sgd')} \(what sgd's init builds\), got AdamState$",
    ):
        updater(optim.sgd(), path)(ones_like(params), optim.adam().init(params), params)
    with pytest.raises(
        StateMismatchError,
        match="^" + re.escape("state: expected an AdamState (what adam's init builds), got SgdState") + "$",
    ):
        updater(optim.adam(), path)(ones_like(params), optim.sgd().init(params), params)


@pytest.mark.parametrize("name", FIRST_ORDER)
@pytest.mark.parametrize("path", ["pure", "inplace"])
def test_float32_params_with_float64_grads_are_refused(name: str, path: str) -> None:
    """Issue example 3 (refused, as PyTorch refuses a float64 gradient for a float32 parameter).
    Before: a silent upcast (pure) or a rounding of the float64 step into float32 arrays (in place).
    Now: "grads[0]['W']: expected dtype float32, got float64"."""
    opt = optim.get(name)
    params = make_params(dtype=np.float32)
    grads = ones_like(make_params())
    with pytest.raises(StateMismatchError, match=r"^grads\[0\]\['W'\]: expected dtype float32, got float64$"):
        updater(opt, path)(grads, opt.init(params), params)


# ---- every first-order optimizer, every kind of mismatch ----------------------------------------


def dict_state(state: Any, name: str | None) -> dict[str, Any]:
    """``state`` as a dict (tagged with ``name`` unless ``None``), as a hand-made state would be."""
    return {**({"name": name} if name is not None else {}), **state._asdict()}


def _first_order_case(name: str, kind: str) -> tuple[Any, Any, Any, str] | None:
    """``(grads, state, params, message regex)`` of one bad call; ``None`` where ``kind`` does not apply."""
    opt = optim.get(name)
    params = make_params()
    grads = ones_like(params)
    state = opt.init(params)
    slot = SLOTS[name][0] if SLOTS[name] else None
    expected = rf"^state: expected {state_name(name)} \(what {name}'s init builds\), got "
    if kind == "state structure (a network with one layer fewer)":
        if slot is None:
            return None
        return grads, opt.init(params[:1]), params, rf"^state\.{slot}: expected 2 entries, got 1$"
    if kind == "a dict state":
        return (
            grads,
            dict_state(state, name),
            params,
            expected + rf"a dict state tagged '{name}'$",
        )
    if kind == "state shape (a width-1 layer)":
        if slot is None:
            return None
        return (
            grads,
            opt.init(make_params(NARROW)),
            params,
            rf"^state\.{slot}\[0\]\['W'\]: expected shape",
        )
    if kind == "state dtype (float32 state, float64 params)":
        if slot is None:
            return None
        return (
            grads,
            opt.init(make_params(dtype=np.float32)),
            params,
            rf"^state\.{slot}\[0\]\['W'\]: expected dtype float64, got float32$",
        )
    if kind == "foreign optimizer":
        other = FIRST_ORDER[(FIRST_ORDER.index(name) + 1) % len(FIRST_ORDER)]
        return grads, optim.get(other).init(params), params, expected + rf"{STATES[other].__name__}$"
    if kind == "step counter not an integer":
        return grads, state._replace(step=1.5), params, r"^state\.step: expected an integer >= 0, got 1\.5$"
    if kind == "negative step counter":
        return grads, state._replace(step=-1), params, r"^state\.step: expected an integer >= 0, got -1$"
    if kind == "grads structure":
        return grads[:1], state, params, r"^grads: expected 2 entries, got 1$"
    if kind == "grads key":
        bad = [grads[0], {"W": grads[1]["W"]}]
        return bad, state, params, r"^grads\[1\]: expected the keys \['W', 'b'\], got \['W'\]$"
    if kind == "grads shape":
        bad = [grads[0], {"W": grads[1]["W"], "b": np.ones(1)}]
        return bad, state, params, r"^grads\[1\]\['b'\]: expected shape \(2,\), got \(1,\)$"
    raise AssertionError(kind)


FIRST_ORDER_KINDS = [
    "state structure (a network with one layer fewer)",
    "a dict state",
    "state shape (a width-1 layer)",
    "state dtype (float32 state, float64 params)",
    "foreign optimizer",
    "step counter not an integer",
    "negative step counter",
    "grads structure",
    "grads key",
    "grads shape",
]
FIRST_ORDER_CASES = [
    (name, kind) for name in FIRST_ORDER for kind in FIRST_ORDER_KINDS if _first_order_case(name, kind)
]


@pytest.mark.parametrize(("name", "kind"), FIRST_ORDER_CASES)
def test_first_order_update_names_each_mismatch(name: str, kind: str) -> None:
    """Each optimizer, each kind of mismatch: one StateMismatchError whose message names the path.

    Before the checks: zip errors, KeyErrors, silent broadcasts and upcasts, dropped or confused
    states (momentum and nesterov), a fractional or zero bias correction from a bad step count.
    """
    case = _first_order_case(name, kind)
    assert case is not None
    grads, state, params, message = case
    with pytest.raises(StateMismatchError, match=message):
        optim.get(name).update(grads, state, params)


@pytest.mark.parametrize(("name", "kind"), FIRST_ORDER_CASES)
def test_inplace_refuses_the_same_and_writes_nothing(name: str, kind: str) -> None:
    """``update_inplace`` refuses what ``update`` refuses, with the same message, before writing
    (before the checks it could raise inside NumPy after writing part of the step)."""
    case = _first_order_case(name, kind)
    assert case is not None
    grads, state, params, message = case
    before = copy.deepcopy((grads, state, params))
    with pytest.raises(StateMismatchError, match=message) as pure:
        optim.get(name).update(grads, state, params)
    with pytest.raises(StateMismatchError, match=message) as inplace:
        optim.get(name).update_inplace(grads, state, params)
    assert str(inplace.value) == str(pure.value)
    assert tree_equal((grads, state, params), before)  # nothing was written


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_an_untagged_dict_state_is_refused_in_one_line(name: str) -> None:
    """A hand-made dict state without ``"name"``: refused as a dict state, in one line."""
    opt = optim.get(name)
    params = make_params()
    state = dict_state(opt.init(params), None)
    message = (
        rf"^state: expected {state_name(name)} \(what {name}'s init builds\), "
        r"got a dict state$"
    )
    with pytest.raises(StateMismatchError, match=message):
        opt.update(ones_like(params), state, params)


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_params_that_are_not_floating_arrays_are_refused(name: str) -> None:
    """Before the checks: integer parameters gave integer arithmetic or a NumPy casting error deep in the
    step.  ``init`` refuses them (it built a state for them), and so does ``update`` with a good state."""
    opt = optim.get(name)
    params = {"W": np.ones((2, 2), dtype=np.int64), "b": np.zeros(2)}
    message = r"^params\['W'\]: expected a floating dtype \(float32 or float64\), got int64$"
    with pytest.raises(TypeError, match=message):
        opt.init(params)
    state = opt.init({"W": np.ones((2, 2)), "b": np.zeros(2)})
    with pytest.raises(TypeError, match=message):
        opt.update(ones_like(params), state, params)


# ---- positive controls: correct states pass, and the check changes no number -------------------


@pytest.mark.parametrize("name", FIRST_ORDER)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_correct_states_pass_and_survive_a_checkpoint(tmp_path, name: str, dtype: Any) -> None:
    """Positive control: a state from ``init`` and the states ``update`` returns are accepted (pure and
    in place, by :func:`optim.check_state` too), also after a checkpoint's save and load, where the
    next step is bit for bit the step from the state in memory."""
    opt = optim.get(name)
    params = make_params(dtype=dtype)
    rng = np.random.default_rng(1)
    state = opt.init(params)
    for _ in range(3):
        grads = lg.backend.tree_map(lambda p: rng.standard_normal(p.shape).astype(dtype), params)
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        optim.check_state(opt, state, params)
    assert type(state) is STATES[name] and state.step == 3
    path = str(tmp_path / "checkpoint.npz")
    checkpoint.save(path, {"params": params, "state": state})
    loaded = checkpoint.load(path)
    grads = ones_like(params)
    want = opt.update(grads, state, params)
    got = opt.update(grads, loaded["state"], loaded["params"])
    assert tree_equal(got, want)
    work = copy.deepcopy((grads, loaded["state"], loaded["params"]))
    new_state = opt.update_inplace(*work)
    assert tree_equal(work[2], optim.apply_updates(params, want[0]))
    assert tree_equal(new_state, want[1])


# ---- network-level optimizers -------------------------------------------------------------------

NET_OPTIMIZERS: dict[str, Callable[[lg.MLP], Any]] = {
    "locoprop": lambda net: optim.LocoProp(net, M(gamma=1.0), GD(steps=2, inner=optim.adam(1e-3))),
    "backprop": lambda net: optim.BackProp(net, optim.adam(1e-3)),
    "official": lambda net: optim.official(net),
    "official-backprop": lambda net: optim.official_backprop(net),
    "kfac": lambda net: optim.KFAC(net),
    "kfac-adaptive": lambda net: optim.KFAC(net, adaptive=True),
    "shampoo": lambda net: optim.Shampoo(net),
    "shampoo-adam": lambda net: optim.Shampoo(net, grafting="adam"),
    "foof": lambda net: optim.FOOF(net),
}
FOREIGN = {  # another optimizer whose state each is given
    "locoprop": "kfac",
    "backprop": "locoprop",
    "official": "locoprop",  # LocoProp with adam inner states: the inner states' type differs
    "official-backprop": "official",
    "kfac": "foof",
    "kfac-adaptive": "shampoo",
    "shampoo": "kfac",
    "shampoo-adam": "foof",
    "foof": "shampoo",
}
NET_KINDS = ["structure", "dict", "shape", "dtype", "foreign"]


def _net_case(name: str, kind: str) -> tuple[Any, Any, Any, str]:
    """``(optimizer, params, state, message regex)`` of one bad ``step``."""
    net = make_net(SIZES)
    opt = NET_OPTIMIZERS[name](net)
    params = make_params()
    if kind == "structure":
        state = NET_OPTIMIZERS[name](make_net(DEEP)).init(make_params(DEEP))
        message = (
            r"^state\.[^:]*: expected (2 entries, got 3|a tuple of 2 per-layer \w+ states, got 3 entries)$"
        )
    elif kind == "dict":
        state = dict_state(opt.init(params), opt.name)
        message = (
            r"^state: expected an? \w+ \(what \w+'s init builds\), "
            rf"got a dict state tagged '{opt.name}'$"
        )
    elif kind == "shape":
        state = NET_OPTIMIZERS[name](make_net(NARROW)).init(make_params(NARROW))
        message = r"^state\.[^:]*: expected shape \([\d, ]*\), got \([\d, ]*\)$"
    elif kind == "dtype":
        state = opt.init(make_params(dtype=np.float32))
        message = r"^state\.[^:]*: expected dtype float64, got float32$"
    else:
        state = NET_OPTIMIZERS[FOREIGN[name]](net).init(params)
        message = r"^state(\.inner\[0\])?: expected an? \w+ \(what \w+'s init builds\), got \w+$"
    return opt, params, state, message


@pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")  # random targets: M range warnings
@pytest.mark.parametrize("kind", NET_KINDS)
@pytest.mark.parametrize("name", sorted(NET_OPTIMIZERS))
def test_network_optimizer_step_names_each_mismatch(name: str, kind: str) -> None:
    """Each network optimizer, each kind of mismatch: one StateMismatchError naming the path, and
    neither the params nor the state modified.

    Before the checks: broadcast inner states, NumPy broadcast errors inside K-FAC, Shampoo and FOOF,
    float64 parameters out of a float32 state, KeyErrors or a silent step with another optimizer's
    state, zip errors for a deeper network's state.
    """
    opt, params, state, message = _net_case(name, kind)
    x, y = batch()
    before = copy.deepcopy((params, state))
    with pytest.raises(StateMismatchError, match=message):
        opt.step(params, x, y, state)
    assert tree_equal((params, state), before)


@pytest.mark.parametrize("name", ["kfac", "kfac-adaptive", "shampoo", "foof"])
@pytest.mark.parametrize(("step", "shown"), [(1.5, "1.5"), (-1, "-1"), (True, "True")])
def test_second_order_step_counter_is_an_integer(name: str, step: Any, shown: str) -> None:
    """Before the checks: step 1.5 -> K-FAC "TypeError: seed must be integer", Shampoo and FOOF
    stepped; step -1 or True -> taken as a count."""
    opt = NET_OPTIMIZERS[name](make_net(SIZES))
    params = make_params()
    state = opt.init(params)._replace(step=step)
    x, y = batch()
    with pytest.raises(StateMismatchError, match=rf"^state\.step: expected an integer >= 0, got {shown}$"):
        opt.step(params, x, y, state)


@pytest.mark.parametrize("damping", [0.0, -1.0, float("nan"), "1e-2"])
def test_kfac_damping_in_the_state_is_a_positive_number(damping: Any) -> None:
    """Before the checks: a zero or negative damping reached the Cholesky factorisation (a str its arithmetic)."""
    opt = optim.KFAC(make_net(SIZES))
    params = make_params()
    state = opt.init(params)._replace(damping=damping)
    x, y = batch()
    with pytest.raises(StateMismatchError, match=r"^state\.damping: expected a finite number > 0, got "):
        opt.step(params, x, y, state)


def test_shampoo_checks_its_adam_grafting_state() -> None:
    """Before the checks: the Adam slot of a width-1 network's state was broadcast, no error."""
    opt = optim.Shampoo(make_net(SIZES), grafting="adam")
    params = make_params()
    state = opt.init(params)._replace(adam=optim.adam().init(make_params(NARROW)))
    x, y = batch()
    with pytest.raises(
        StateMismatchError, match=r"^state\.adam\.m\[0\]\['W'\]: expected shape \(3, 4\), got \(3, 1\)$"
    ):
        opt.step(params, x, y, state)
    with pytest.raises(StateMismatchError, match=r"^state\.adam: expected None, got AdamState$"):
        optim.Shampoo(make_net(SIZES)).step(
            params, x, y, optim.Shampoo(make_net(SIZES)).init(params)._replace(adam=state.adam)
        )


@pytest.mark.parametrize("name", ["kfac", "shampoo", "foof"])
def test_second_order_checks_the_momentum_state(name: str) -> None:
    """The momentum buffer is a MomentumState over the augmented ``(d_in + 1, d_out)`` steps, checked
    like the statistics (type, step, shapes)."""
    opt = NET_OPTIMIZERS[name](make_net(SIZES))
    params = make_params()
    state = opt.init(params)
    assert isinstance(state.momentum, optim.MomentumState)
    assert [b.shape for b in state.momentum.momentum] == [(4, 4), (5, 2)]
    narrow = NET_OPTIMIZERS[name](make_net(NARROW)).init(make_params(NARROW)).momentum
    x, y = batch()
    with pytest.raises(
        StateMismatchError, match=r"^state\.momentum\.momentum\[0\]: expected shape \(4, 4\), got \(4, 1\)$"
    ):
        opt.step(params, x, y, state._replace(momentum=narrow))
    with pytest.raises(
        StateMismatchError,
        match=r"^state\.momentum: expected a MomentumState \(what momentum's init builds\), got SgdState$",
    ):
        opt.step(params, x, y, state._replace(momentum=optim.SgdState(0)))


def test_adaptive_kfac_keeps_its_previous_update_not_a_momentum_buffer() -> None:
    """``adaptive=True``: ``state.previous`` (delta_0, augmented) and ``state.momentum`` None; each
    refuses the other's layout."""
    params = make_params()
    x, y = batch()
    adaptive, plain = optim.KFAC(make_net(SIZES), adaptive=True), optim.KFAC(make_net(SIZES))
    state = adaptive.init(params)
    assert state.momentum is None and [p.shape for p in state.previous] == [(4, 4), (5, 2)]
    new, state, _ = adaptive.step(params, x, y, state)
    for m in range(2):
        step = nn.stack(new[m]) - nn.stack(params[m])
        np.testing.assert_allclose(state.previous[m], step, rtol=1e-12, atol=1e-15)
    with pytest.raises(StateMismatchError, match=r"^state\.momentum: expected None, got MomentumState$"):
        adaptive.step(params, x, y, state._replace(momentum=plain.init(params).momentum))
    with pytest.raises(StateMismatchError, match=r"^state\.previous: expected None, got list$"):
        plain.step(params, x, y, plain.init(params)._replace(previous=state.previous))


def test_locoprop_names_the_layer_of_a_foreign_inner_state() -> None:
    """Before the checks: LocoProp(adam) given LocoProp(sgd)'s state: KeyError: 'm'."""
    net = make_net(SIZES)
    params = make_params()
    state = optim.LocoProp(net, M(gamma=1.0), GD(steps=2, inner=optim.sgd())).init(params)
    x, y = batch()
    with pytest.raises(
        StateMismatchError,
        match="^"
        + re.escape("state.inner[0]: expected an AdamState (what adam's init builds), got SgdState")
        + "$",
    ):
        optim.LocoProp(net, M(gamma=1.0), GD(steps=2, inner=optim.adam())).step(params, x, y, state)


@pytest.mark.parametrize("name", sorted(NET_OPTIMIZERS))
def test_network_optimizer_refuses_a_negative_learning_rate(name: str) -> None:
    """Before: K-FAC, Shampoo and FOOF stepped uphill with lr < 0 and LocoProp refused it only inside
    its local solver."""
    opt = NET_OPTIMIZERS[name](make_net(SIZES))
    params = make_params()
    x, y = batch()
    with pytest.raises(ValueError, match=r"^lr: expected (None or )?a finite number >= 0, got -1\.0$"):
        opt.step(params, x, y, opt.init(params), lr=-1.0)


@pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")
@pytest.mark.parametrize("name", sorted(NET_OPTIMIZERS))
def test_network_optimizer_input_dtypes_are_never_upcast(name: str) -> None:
    """float32 params: float64 ``x`` is refused (it would upcast every product), a float64 ``y`` is
    cast to float32 (documented by the losses; no upcast), and the result stays float32 (a regression
    test: the state checks, which run first, leave these messages as they were)."""
    opt = NET_OPTIMIZERS[name](make_net(SIZES))
    params = make_params(dtype=np.float32)
    x, y = batch()
    with pytest.raises(
        TypeError,
        match=r"^x: expected dtype float32 like the parameters for layer 0 \(Dense\(3, \d+, '\w+'\)\), got float64$",
    ):
        opt.step(params, x, y, opt.init(params))
    new, state, _ = opt.step(params, x.astype(np.float32), y, opt.init(params))
    assert all(layer[k].dtype == np.float32 for layer in new for k in layer)
    assert all(leaf.dtype == np.float32 for leaf in lg.backend.tree_leaves(state) if hasattr(leaf, "dtype"))


@pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")
@pytest.mark.parametrize("name", sorted(NET_OPTIMIZERS))
def test_network_optimizer_states_pass_and_survive_a_checkpoint(tmp_path, name: str) -> None:
    """Positive control: the state of ``init`` and those ``step`` returns pass the check (two
    batches), also after a checkpoint's save and load, where the next batch is bit for bit the same."""
    opt = NET_OPTIMIZERS[name](make_net(SIZES))
    params = make_params()
    x, y = batch()
    state = opt.init(params)
    for _ in range(2):
        params, state, _ = opt.step(params, x, y, state)
    assert opt.check(params, state) == params
    path = str(tmp_path / "checkpoint.npz")
    checkpoint.save(path, {"params": params, "state": state})
    loaded = checkpoint.load(path)
    want_params, want_state, _ = opt.step(params, x, y, state)
    got_params, got_state, _ = opt.step(loaded["params"], x, y, loaded["state"])
    assert tree_equal(got_params, want_params)
    assert tree_equal(got_state, want_state)


# ---- the validators behind the checks -----------------------------------------------------------

PAIRS = [
    ({"W": np.zeros((2, 3))}, {"W": np.ones((2, 3))}),
    ({"W": np.zeros((2, 3))}, {"W": np.ones((2, 1))}),
    ({"W": np.zeros((2, 3), np.float32)}, {"W": np.ones((2, 3))}),
    ([np.zeros(2)], (np.ones(2),)),
    ([np.zeros(2)], [np.ones(2), np.ones(2)]),
    ({"a": 1, "b": None}, {"a": 3, "b": None}),
    ({"a": True}, {"a": 3}),
    ({"a": 1.5}, {"a": 3}),
    ({"a": 2}, {"a": 0.5}),
    ({"a": np.zeros(2)}, {"b": np.zeros(2)}),
    (np.zeros((2, 2)), template_array((2, 2), np.float64)),
    (np.zeros((2, 2)), template_array((2, 2), np.float32)),
]


@pytest.mark.parametrize(("value", "template"), PAIRS)
def test_same_layout_accepts_and_refuses_exactly_what_same_tree_does(value: Any, template: Any) -> None:
    """The fast path never accepts what :func:`same_tree` refuses, and raises its message."""
    try:
        same_tree("x", value, template)
    except StateMismatchError as exc:
        with pytest.raises(StateMismatchError, match=re.escape(str(exc))):
            same_layout("x", value, template)
    else:
        assert same_layout("x", value, template) is value


def test_template_array_takes_no_memory_and_float_tree_names_the_leaf() -> None:
    t = template_array((1000, 1000), np.float32)
    assert t.strides == (0, 0) and t.shape == (1000, 1000) and t.dtype == np.float32
    assert not t.flags.writeable
    tree = [{"W": np.zeros(2)}, {"W": [np.zeros(1), 1.0]}]
    with pytest.raises(
        TypeError, match=r"^p\[1\]\['W'\]\[1\]: expected a floating numpy.ndarray or cupy.ndarray, got float$"
    ):
        float_tree("p", tree)
    assert float_tree("p", tree[:1]) is not None
