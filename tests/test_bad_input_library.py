"""Bad input to the library API (issue 11, kinds 1, 2 and 6): a second sweep, each fix by mechanism.

Every test states what the code did before.  Identity checks are in float64 and have a
negative control; the tolerances are stated where used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import locograd as lg
from locograd import bregman, losses, nn, optim, transfer
from locograd._fast.local import solve_gd_inplace
from locograd.backend import tree_map
from locograd.errors import NonFiniteError
from locograd.locoprop import GD, LocalProblem, M, S, solve_gd
from locograd.testing import check_vjp, numerical_grad, relative_error


def _tanh_vjp(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    return u * (1 - np.tanh(x) ** 2)


# ---- kind 1: checkers pair trees by key and refuse what they cannot check ------------------------


def test_relative_error_pairs_dict_leaves_by_key() -> None:
    """Old code paired leaves by insertion order: equal dicts written in another order gave 1.0,
    dicts with other keys gave 0.0, and a list against a dict gave 0.0."""
    a = {"W": np.ones(2), "b": np.zeros(2)}
    assert relative_error(a, {"b": np.zeros(2), "W": np.ones(2)}) == 0.0
    # negative control: a real difference, in either order, is still seen (|1 - 0| / 1)
    assert relative_error(a, {"b": np.zeros(2), "W": np.zeros(2)}) == 1.0
    with pytest.raises(ValueError, match=r"b: expected the keys \['W', 'b'\], got \['W', 'c'\]"):
        relative_error(a, {"W": np.ones(2), "c": np.zeros(2)})
    with pytest.raises(ValueError, match=r"b: expected a dict, got list"):
        relative_error(a, [np.ones(2), np.zeros(2)])


def test_check_vjp_fails_on_a_vjp_of_another_structure() -> None:
    """Old code: a VJP returning x's gradients under swapped dict keys passed (error 5.6e-10), and a
    list returned for a dict x passed too: leaves were paired by position."""
    x = {"a": np.linspace(-1.0, 1.0, 5), "b": np.linspace(0.0, 2.0, 5)}

    def fn(t: dict[str, np.ndarray]) -> np.ndarray:
        return np.tanh(t["a"]) + 2 * t["b"]

    def right(t: dict[str, np.ndarray], u: np.ndarray) -> dict[str, np.ndarray]:
        return {"a": _tanh_vjp(t["a"], u), "b": 2 * u}

    assert check_vjp(fn, right, x) < 1e-8  # negative control (float64 central differences, ~1e-10)
    with pytest.raises(AssertionError, match=r"<u, Jv> = .* but <J\^T u, v>"):
        check_vjp(fn, lambda t, u: {"b": _tanh_vjp(t["a"], u), "a": 2 * u}, x)
    with pytest.raises(AssertionError, match=r"vjp\(x, u\): expected a dict, got list"):
        check_vjp(fn, lambda t, u: [_tanh_vjp(t["a"], u), 2 * u], x)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # old: AttributeError 'float' object has no attribute 'shape'
        (lambda: check_vjp(np.tanh, _tanh_vjp, 1.0), TypeError, r"x: expected a floating numpy.ndarray"),
        (lambda: check_vjp(np.tanh, _tanh_vjp, [1.0]), TypeError, r"x\[0\]: expected a floating numpy"),
        # old: integer x accepted, with the random directions cast to integers
        (lambda: check_vjp(np.tanh, _tanh_vjp, np.arange(5)), TypeError, r"x: expected a floating dtype"),
        # old: returned 0.0, a pass, with nothing checked
        (lambda: check_vjp(np.tanh, _tanh_vjp, np.zeros(0)), ValueError, r"x: expected at least one value"),
        (
            lambda: check_vjp(lambda x: x[:0], lambda x, u: 0 * x, np.ones(3)),
            AssertionError,
            r"fn\(x\) has no values, so nothing was checked",
        ),
        # old: AttributeError 'float' object has no attribute 'dtype'
        (
            lambda: check_vjp(lambda x: float(np.sum(x)), lambda x, u: u + 0 * x, np.ones(3)),
            TypeError,
            r"check_vjp: fn\(x\) must be a floating numpy.ndarray or cupy.ndarray, got float",
        ),
        # old: NumPy's "data type <class 'numpy.int64'> not inexact"
        (
            lambda: check_vjp(lambda x: (x > 0).astype(int), lambda x, u: 0 * x, np.ones(3)),
            TypeError,
            r"check_vjp: fn\(x\) must be floating, got dtype int64",
        ),
        # old: "SeedSequence expects int or sequence of ints for entropy not a"
        (
            lambda: check_vjp(np.tanh, _tanh_vjp, np.ones(3), seed="a"),
            ValueError,
            r"seed: expected an integer",
        ),
        # old: AttributeError 'float' object has no attribute 'copy'
        (lambda: numerical_grad(lambda x: x * x, 1.0), TypeError, r"x: expected a floating numpy.ndarray"),
        # old: NumPy's "only 0-dimensional arrays can be converted to Python scalars"
        (
            lambda: numerical_grad(lambda x: x * x, np.ones(3)),
            TypeError,
            r"fn: expected a real scalar \(float or 0-d array\) at x \+ eps e_i, got ndarray shape \(3,\)",
        ),
        # old: "unsupported operand type(s) for -: 'NoneType' and 'NoneType'"
        (
            lambda: relative_error(None, None),
            TypeError,
            r"a: expected numbers or numeric arrays, got NoneType",
        ),
        # old: NumPy's "numpy boolean subtract ... is not supported"
        (
            lambda: relative_error(np.array([True]), np.array([False])),
            TypeError,
            r"a: expected numbers or numeric arrays, got dtype bool",
        ),
    ],
)
def test_checkers_refuse_what_they_cannot_check(call: Any, error: type, message: str) -> None:
    """See each case's comment for the old behaviour."""
    with pytest.raises(error, match=message):
        call()


def test_relative_error_of_values_near_the_largest_float_does_not_overflow() -> None:
    """Old code: |x - y| of 1e308 and -1e308 overflowed, a NumPy RuntimeWarning and the value inf."""
    assert relative_error(np.array([1e308]), np.array([-1e308])) == 2.0  # (2e308 / 1e308) exactly
    assert relative_error(np.array([1e308]), np.array([1e308])) == 0.0  # negative control


# ---- kind 1: every number argument of the library refuses flags and strings ---------------------

_rng = np.random.default_rng(0)
_X, _W, _T = _rng.standard_normal((4, 3)), _rng.standard_normal((3, 2)), _rng.random((4, 2))


def _problem(**kw: Any) -> LocalProblem:
    parts: dict[str, Any] = {
        "inputs": _X,
        "pre": _X @ _W,
        "offset": _T,
        "transfer": transfer.get("sigmoid"),
        "variant": "M",
        "anchor": {"W": _W, "b": np.zeros(2)},
        "eta": 1.0,
    }
    parts.update(kw)
    return LocalProblem(**parts)


_NET = lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")


@pytest.mark.parametrize("bad", [True, "0.1"])
@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("lr", lambda v: GD(steps=2, lr=v)),
        ("lr", lambda v: GD(steps=2, lr=v, inner=optim.adam())),
        ("lr", lambda v: optim.sgd(lr=v)),
        ("lr", lambda v: optim.adam().update({"W": _W}, optim.adam().init({"W": _W}), {"W": _W}, lr=v)),
        ("beta1", lambda v: optim.adam(beta1=v)),
        ("eps", lambda v: optim.adam(eps=v)),
        ("gamma", lambda v: lg.locoprop.targets(*_trace_and_grads(), v, "M")),
        ("gamma", lambda v: M(gamma=v)),
        ("eta", lambda v: S(gamma=1.0, eta=v)),
        ("tol", lambda v: lg.locoprop.Exact(tol=v)),
        ("eta", lambda v: solve_gd(_problem(eta=v), GD(steps=2, lr=0.1))),
        ("eta", lambda v: solve_gd_inplace(_problem(eta=v), GD(steps=2, lr=0.1))),
        ("eta", lambda v: LocalProblem.build(_X, _T, "sigmoid", "M", {"W": _W, "b": np.zeros(2)}, v)),
        ("damping", lambda v: optim.KFAC(_NET, damping=v)),
        ("momentum", lambda v: optim.FOOF(_NET, momentum=v)),
        ("lr", lambda v: _locoprop_adam().step(*_batch(), _locoprop_adam().init(_NET.init()), lr=v)),
        ("lr", lambda v: optim.BackProp(_NET, optim.adam()).step(*_batch(), _backprop_state(), lr=v)),
        ("factor", lambda v: optim.scale(v)),
    ],
)
def test_number_arguments_refuse_flags_and_strings(name: str, call: Any, bad: Any) -> None:
    """Old code took ``float(value)``: True was 1.0, '0.1' was 0.1, and eta='1' on a LocalProblem built
    directly failed in the solve with "unsupported operand type(s) for /: 'float' and 'str'"."""
    with pytest.raises(ValueError, match=rf"{name}: expected .*, got {type(bad).__name__} {bad!r}"):
        call(bad)


def _locoprop_adam() -> optim.LocoProp:
    return optim.LocoProp(_NET, M(gamma=1.0), GD(steps=2, inner=optim.adam()))


def _batch() -> tuple[Any, Any, Any]:
    return _NET.init(), _rng.random((5, 3)), _rng.random((5, 2))


def _backprop_state() -> optim.BackPropState:
    return optim.BackProp(_NET, optim.adam()).init(_NET.init())


def _trace_and_grads() -> tuple[Any, Any]:
    params = _NET.init()
    x, y = _rng.random((5, 3)), _rng.random((5, 2))
    trace = _NET.forward(params, x)
    return trace, _NET.backward(params, trace, y, weight_grads=False)


@pytest.mark.parametrize(
    ("factor", "shown"), [(lambda k, K: float("nan"), "nan"), (lambda k, K: -1.0, "-1.0")]
)
def test_solve_gd_refuses_a_nan_or_negative_lr_factor(factor: Any, shown: str) -> None:
    """Old code: a NaN lr_factor made every parameter NaN in silence; a negative one stepped uphill."""
    for solve in (solve_gd, solve_gd_inplace):
        with pytest.raises(
            ValueError, match=rf"lr_factor\(0, 2\): expected a finite number >= 0, got {shown}"
        ):
            solve(_problem(), GD(steps=2, lr=0.1, lr_factor=factor))
        new, _ = solve(_problem(), GD(steps=2, lr=0.1, lr_factor=lambda k, K: 0.5))  # negative control
        assert np.all(np.isfinite(new["W"]))


def test_an_inner_optimizer_that_is_not_one_is_refused_up_front() -> None:
    """Old code: AttributeError "'object' object has no attribute 'init'" (solve_gd) or "... 'lr'" (LocoProp);
    now the GD settings refuse it when built (so neither solve_gd nor LocoProp ever sees it), and BackProp
    refuses it too.  Negative control: a first-order optimizer is taken."""
    with pytest.raises(TypeError, match=r"inner: expected a first-order optimizer .* got object"):
        GD(steps=2, inner=object())
    with pytest.raises(TypeError, match=r"inner: expected a first-order optimizer .* got object"):
        optim.BackProp(_NET, object())  # type: ignore[arg-type]
    assert GD(steps=2, inner=optim.adam()).inner.name == "adam"
    assert optim.BackProp(_NET, optim.adam()).inner.name == "adam"


@pytest.mark.parametrize("rows", [1, 2])
def test_targets_refuse_grads_of_another_batch(rows: int) -> None:
    """Old code: grads of 2 rows against a trace of 5 raised NumPy's "operands could not be broadcast",
    and grads of 1 row broadcast into targets for all 5 rows in silence."""
    trace, grads = _trace_and_grads()
    other = grads._replace(pre=[g[:rows] for g in grads.pre])
    with pytest.raises(ValueError, match=rf"grads.pre\[0\]: expected shape \(5, 4\) .*, got \({rows}, 4\)"):
        lg.locoprop.targets(trace, other, 1.0, "M")
    assert len(lg.locoprop.targets(trace, grads, 1.0, "M")) == 2  # negative control


# ---- kind 1/2: non-finite steps are a NonFiniteError, from every network-level optimizer -------


def test_locoprop_step_that_overflows_is_one_nonfinite_error() -> None:
    """Old code: NumPy's "overflow encountered in multiply" (an error where warnings are errors), else a
    plain ValueError; now the step's own NonFiniteError, naming the layer."""
    params, x, y = _NET.init(), _rng.random((5, 3)), _rng.random((5, 2))
    with pytest.raises(NonFiniteError, match=r"step: layer \d [Wb] became non-finite"):
        lg.locoprop.step(_NET, params, x, y, variant=S(gamma=1e300), solver=GD(steps=3, lr=1e300))
    with pytest.raises(NonFiniteError, match=r"x: expected finite values"):
        lg.locoprop.step(_NET, params, x * np.nan, y, variant=M(gamma=1.0), solver=GD(steps=1, lr=0.1))
    new, _ = lg.locoprop.step(_NET, params, x, y, variant=S(gamma=1.0), solver=GD(steps=3, lr=0.1))
    assert all(np.all(np.isfinite(layer[k])) for layer in new for k in ("W", "b"))  # negative control


def _huge_velocity(state: Any) -> Any:
    """The state with every velocity (momentum buffer) array at 1e300: finite, of the right shapes and dtype.

    BackProp's is its inner MomentumState, LocoProp's one per layer; KFAC's, FOOF's and Shampoo's is the MomentumState in ``momentum``.
    """

    def huge(momentum: optim.MomentumState) -> optim.MomentumState:
        return momentum._replace(momentum=tree_map(lambda v: np.full_like(v, 1e300), momentum.momentum))

    if isinstance(state, optim.BackPropState):
        return state._replace(inner=huge(state.inner))
    if isinstance(state, optim.LocoPropState):
        return state._replace(inner=tuple(huge(layer) for layer in state.inner))
    return state._replace(momentum=huge(state.momentum))


@pytest.mark.parametrize(
    "make",
    [
        lambda net: optim.KFAC(net, lr=1e10, momentum=0.9),
        lambda net: optim.FOOF(net, lr=1e10, momentum=0.9),
        lambda net: optim.Shampoo(net, lr=1e10, momentum=0.9),
        lambda net: optim.BackProp(net, optim.momentum(1e10)),
        lambda net: optim.LocoProp(net, M(gamma=1.0), GD(steps=2, inner=optim.momentum(1e10))),
    ],
    ids=["kfac", "foof", "shampoo", "backprop", "locoprop"],
)
def test_network_optimizers_raise_nonfinite_error_on_a_nonfinite_step(make: Any) -> None:
    """Old code: KFAC/FOOF/Shampoo and backprop mode (now optim.BackProp) returned parameters holding inf in
    silence (here lr 1e10 times a velocity of 1e300), and non-finite statistics were a plain ValueError."""
    params, x, y = _NET.init(), _rng.random((5, 3)), _rng.random((5, 2))
    opt = make(_NET)
    state = _huge_velocity(opt.init(params))
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(NonFiniteError, match=r"became non-finite"),
    ):
        opt.step(params, x, y, state)
    with pytest.raises(NonFiniteError, match=r"non-finite|x: expected finite values"):
        opt.step(params, x * np.nan, y, opt.init(params))


def test_network_optimizer_with_a_sane_step_passes() -> None:
    """Negative control of the test above: the same optimizers with small learning rates step finitely."""
    params, x, y = _NET.init(), _rng.random((5, 3)), _rng.random((5, 2))
    for opt in (
        optim.KFAC(_NET),
        optim.FOOF(_NET),
        optim.Shampoo(_NET),
        optim.official_backprop(_NET),
        optim.BackProp(_NET, optim.momentum(0.01)),
        optim.LocoProp(_NET, M(gamma=1.0), GD(steps=3, inner=optim.momentum(0.01))),
    ):
        new, _, _ = opt.step(params, x, y, opt.init(params))
        assert all(np.all(np.isfinite(layer[k])) for layer in new for k in ("W", "b"))


# ---- kind 6: divergences at the extremes of float32 and float64 ---------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["tanh", "softmax"])
def test_divergence_at_the_largest_values_is_zero_at_p_equal_q(name: str, dtype: Any) -> None:
    """Old code: at |a| = max/1.5, tanh's 2a and softmax's q - max(q) overflowed: D_F(p, p) was NaN (tanh)
    or came with NumPy's overflow warning (softmax), an error where warnings are errors."""
    big = float(np.finfo(dtype).max) / 1.5
    p = np.array([[big, -big, big / 3]], dtype)
    assert bregman.divergence(name, p, p).tolist() == [0.0]
    # negative control: q != p gives a finite D > 0 (tanh 2 big/3, softmax 2 big/3, both below the max)
    third = -big / 3 if name == "tanh" else big / 3
    q = np.array([[big if name == "tanh" else -big / 3, -big, third]], dtype)
    d = bregman.divergence(name, p, q)
    assert np.all(np.isfinite(d)) and float(d[0]) > 0


def test_dual_divergence_with_u_on_the_boundary_and_v_one_unit_inside() -> None:
    """Old code: u = 1 (allowed, the closed range) and v one float32 unit below gave inf with NumPy's
    "divide by zero encountered in log1p": (b - a)/a rounded to -1 for b << a."""
    u = np.array([[1.0]], np.float32)
    v = np.array([[np.nextafter(np.float32(1), np.float32(0))]], np.float32)
    d32 = float(bregman.dual_divergence("sigmoid", u, v)[0])
    d64 = float(bregman.dual_divergence("sigmoid", u.astype(np.float64), v.astype(np.float64))[0])
    # the same inputs exactly; float32's rounding of log terms of size ~17 is below 1e-5 relative
    assert d64 > 0 and abs(d32 - d64) <= 1e-5 * d64
    # leaky relu: u >> 0 used to overflow in v / slope (a NumPy warning) though D is 0 at u == v
    big = np.array([[3e38]], np.float32)
    assert bregman.dual_divergence("leaky_relu", big, big).tolist() == [0.0]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # old: IndexError "tuple index out of range"
        (
            lambda: bregman.dual_divergence("softmax", np.array(0.5), np.array(0.5)),
            ValueError,
            r"u: expected an array \(\.\.\., d\) with a unit axis, got a 0-d array",
        ),
        (
            lambda: transfer.get("softmax").inverse(np.array(0.5)),
            ValueError,
            r"y: the inverse of softmax needs rows \(\.\.\., d\) with d >= 1, got shape \(\)",
        ),
        # old: IndexError "index 0 is out of bounds for axis 1 with size 0"
        (
            lambda: bregman.dual_divergence("softmax", np.zeros((1, 0)), np.zeros((1, 0))),
            ValueError,
            r"u: expected at least one unit for softmax",
        ),
        # old: NumPy's "zero-size array to reduction operation maximum which has no identity"
        (
            lambda: bregman.divergence("softmax", np.zeros((2, 0)), np.zeros((2, 0))),
            ValueError,
            r"p: expected at least one unit for softmax",
        ),
        # old: NumPy's "data type <class 'numpy.int64'> not inexact" (softmax); tanh returned atanh(0) for ints
        (
            lambda: transfer.get("softmax").inverse(np.array([[1]])),
            TypeError,
            r"y: expected a floating dtype",
        ),
        (lambda: transfer.get("tanh").inverse(np.array([[0]])), TypeError, r"y: expected a floating dtype"),
    ],
)
def test_divergences_refuse_arrays_without_units(call: Any, error: type, message: str) -> None:
    """See each case's comment for the old behaviour."""
    with pytest.raises(error, match=message):
        call()


# ---- kind 2: the network and its layers never upcast or broadcast what they are given ----------


def test_network_refuses_tangents_traces_and_settings_that_do_not_fit() -> None:
    """Old code: float32 tangents were upcast in silence by jvp; a trace of another batch raised NumPy's
    "operands could not be broadcast"; weight_grads='no' computed weight gradients; init took float16,
    seed='a' failed in SeedSequence, and MLP([True, 2]) built a width-1 input."""
    params = _NET.init()
    x = _rng.random((5, 3))
    trace = _NET.forward(params, x)
    assert _NET.jvp(params, trace, params).shape == (5, 2)  # negative control
    with pytest.raises(TypeError, match=r"tangents: expected dtype float64 like the parameters, got float32"):
        _NET.jvp(params, trace, _NET.init(dtype=np.float32))
    mixed = trace._replace(inputs=[x[:2], *trace.inputs[1:]])
    with pytest.raises(
        ValueError, match=r"trace.inputs\[0\]: expected shape \(2, 3\)|trace.pre\[0\]: expected"
    ):
        _NET.jvp(params, mixed, params)
    with pytest.raises(ValueError, match=r"weight_grads: expected True or False, got 'no'"):
        _NET.backward(params, trace, _rng.random((5, 2)), weight_grads="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dtype: expected float32 or float64, got float16"):
        _NET.init(dtype=np.float16)
    with pytest.raises(ValueError, match=r"seed: expected an integer >= 0, got str 'a'"):
        _NET.init(seed="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"sizes: expected at least two positive integers"):
        lg.MLP([True, 2], ["sigmoid"], "sigmoid_cross_entropy")


def test_layers_and_losses_refuse_gradients_of_another_shape_or_dtype_and_empty_batches() -> None:
    """Old code: dense_backward upcast a float32 or integer G in silence; pre_activation_grad broadcast a
    (5, 1) gradient over 4 units; a loss's mean over 0 rows was NaN with "Mean of empty slice"."""
    params = _NET.init()
    x = _rng.random((5, 3))
    layer = nn.Dense(3, 4, "tanh")
    _, cache = layer.forward(params[0], x)
    _, grads = layer.backward_from_pre(params[0], cache, np.ones((5, 4)))  # negative control
    assert grads is not None and grads["W"].shape == (3, 4)
    with pytest.raises(TypeError, match=r"g_pre: expected dtype float64 like the cache, got float32"):
        layer.backward_from_pre(params[0], cache, np.ones((5, 4), np.float32))
    with pytest.raises(TypeError, match=r"g_pre: expected a floating dtype"):
        layer.backward_from_pre(params[0], cache, np.ones((5, 4), int))
    with pytest.raises(ValueError, match=r"g_y: expected shape \(5, 4\) like cache.post, got \(5, 1\)"):
        layer.pre_activation_grad(cache, np.ones((5, 1)))
    with pytest.raises(ValueError, match=r"a: expected a batch of at least one row \(B >= 1\)"):
        losses.get("squared_error").mean_value_and_grad(np.ones((0, 2)), np.ones((0, 2)))
