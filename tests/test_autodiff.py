"""Tests of the reverse-mode tape ``locograd.autodiff`` against central differences."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from locograd import autodiff as ad
from locograd.backend import tree_leaves, tree_map
from locograd.testing import numerical_grad, relative_error

EPS = 1e-6
TOL = 1e-6
FAST = settings(max_examples=max(8, settings().max_examples // 3))  # ~50 parametrized tests


# ---- helpers ---------------------------------------------------------------------
def tape_numerical_grad(fn: Callable[[Any], ad.Tensor], tree: Any) -> Any:
    """Central differences of ``fn`` (a tree of Tensors in, a scalar Tensor out) at ``tree``."""
    return numerical_grad(lambda t: float(fn(tree_map(ad.Tensor, t)).value), tree, EPS)


def rel_err(a: Any, b: Any, floor: float = 1e-4) -> float:
    """Max-norm relative error with a ``1e-4`` floor on the denominator (or a larger one given).

    The floor makes the test absolute (``1e-10`` for ``TOL = 1e-6``) for gradients that
    are (almost) zero, where central differences are only accurate to about ``EPS**2``.
    """
    return relative_error(a, b, floor=floor)


def quotient_floor(terms: float, count: int) -> float:
    """The floor that covers the rounding of a central difference of a sum of ``count`` terms.

    A value summed from ``count`` terms of total size ``terms`` rounds by <= (count + 16) u terms
    (each term by a few ulps), so the quotient errs by that over EPS; this is compared at TOL.
    Truncation, EPS^2/6 times the third derivative, stays below 1e-6 of the gradient on the ops'
    domains (its extremes: x^-1.5 at 0.1, 1/b at 0.05), which the floor 1e-4 * TOL covers.
    """
    return max(1e-4, 2 * (count + 16) * float(np.finfo(np.float64).eps) / 2 * terms / EPS / TOL)


def check_grad(fn: Callable[[Any], ad.Tensor], tree: Any, tol: float = TOL) -> None:
    """Assert that the tape gradient of ``fn`` at ``tree`` matches central differences.

    A ``projected`` function reports the size of its terms (``fn.terms``), whose rounding sets the
    absolute floor (quotient_floor); other functions use the fixed floor 1e-4 (O(1) terms).
    """
    tape = ad.grad(fn)(tree)
    numeric = tape_numerical_grad(fn, tree)
    terms = getattr(fn, "terms", None)
    floor = quotient_floor(*terms(tree)) if terms is not None else 1e-4
    err = rel_err(tape, numeric, floor)
    assert err <= tol, f"relative error {err:.3e} > {tol:.0e}"


def projected(op: Callable[..., ad.Tensor]) -> Callable[..., ad.Tensor]:
    """``sum(op(*args) * w)`` with fixed random ``w``: a scalar that sees every output entry."""

    def fn(*args: Any) -> ad.Tensor:
        out = op(*args)
        w = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
        return (out * w).sum()

    def terms(*args: Any) -> tuple[float, int]:
        """(sum |w op(args)|, number of terms): what the value's rounding scales with."""
        out = op(*tree_map(ad.Tensor, args)).value
        w = np.random.default_rng(1).standard_normal(np.shape(out))
        return float(np.abs(np.asarray(out) * w).sum()), int(np.size(out))

    fn.terms = terms  # type: ignore[attr-defined]
    return fn


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def arrays(shape: tuple[int, ...], lo: float = -3.0, hi: float = 3.0) -> st.SearchStrategy:
    return hnp.arrays(np.float64, shape, elements=floats(lo, hi))


def off_zero(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Entries with ``0.05 <= |x| <= 3``: away from the kinks of abs/relu/maximum."""
    signs = hnp.arrays(np.bool_, shape)
    return st.tuples(arrays(shape, 0.05, 3.0), signs).map(lambda t: np.where(t[1], t[0], -t[0]))


DOMAINS: dict[str, Callable[[tuple[int, ...]], st.SearchStrategy]] = {
    "any": arrays,
    "pos": lambda s: arrays(s, 0.1, 3.0),
    "gt-1": lambda s: arrays(s, -0.9, 3.0),
    "off0": off_zero,
}
SHAPE_2D = st.tuples(st.integers(1, 4), st.integers(1, 4))

UNARY: dict[str, tuple[Callable[[ad.Tensor], ad.Tensor], str]] = {
    "neg": (lambda x: -x, "any"),
    "exp": (ad.exp, "any"),
    "log": (ad.log, "pos"),
    "log1p": (ad.log1p, "gt-1"),
    "sqrt": (ad.sqrt, "pos"),
    "abs_": (ad.abs_, "off0"),
    "tanh": (ad.tanh, "any"),
    "sigmoid": (ad.sigmoid, "any"),
    "softplus": (ad.softplus, "any"),
    "identity": (ad.identity, "any"),
    "relu": (ad.relu, "off0"),
    "leaky_relu": (lambda x: ad.leaky_relu(x, slope=0.1), "off0"),
    "pow2": (lambda x: x**2, "any"),
    "pow3": (lambda x: x**3, "any"),
    "pow0.5": (lambda x: x**0.5, "pos"),
    "pow-1.5": (lambda x: x**-1.5, "pos"),
    "sum": (lambda x: x.sum(), "any"),
    "sum0": (lambda x: x.sum(axis=0), "any"),
    "sum-1keep": (lambda x: x.sum(axis=-1, keepdims=True), "any"),
    "sum01": (lambda x: x.sum(axis=(0, 1)), "any"),
    "mean": (lambda x: x.mean(), "any"),
    "mean1": (lambda x: x.mean(axis=1), "any"),
    "mean0keep": (lambda x: x.mean(axis=0, keepdims=True), "any"),
    "T": (lambda x: x.T, "any"),
    "transpose": (lambda x: x.transpose(1, 0), "any"),
    "reshape": (lambda x: x.reshape(-1), "any"),
    "reshape_tuple": (lambda x: x.reshape((1, -1, 1)), "any"),
    "softmax": (ad.softmax, "any"),
    "softmax0": (lambda x: ad.softmax(x, axis=0), "any"),
    "logsumexp": (ad.logsumexp, "any"),
    "logsumexp0keep": (lambda x: ad.logsumexp(x, axis=0, keepdims=True), "any"),
    "logsumexp_all": (lambda x: ad.logsumexp(x, axis=None), "any"),
    "maximum_scalar": (lambda x: ad.maximum(x, 0.0), "off0"),
    "where_self": (lambda x: ad.where(x.value > 0, x, x * x), "off0"),
}


@st.composite
def binary_operands(draw: st.DrawFn, shapes: tuple[str, str], domain_b: str = "any") -> tuple:
    """Two arrays with shapes given as strings over the dims m, n, k, e.g. ``("mk", "k")``."""
    dims = dict(zip("mnk1", (*draw(st.tuples(*[st.integers(1, 4)] * 3)), 1), strict=True))
    sa, sb = (tuple(dims[c] for c in s) for s in shapes)
    return draw(arrays(sa)), draw(DOMAINS[domain_b](sb))


COND = np.array([[True, False, True, True], [False, False, True, False]] * 2)


def _where(a: ad.Tensor, b: ad.Tensor) -> ad.Tensor:
    c = COND[: a.shape[0], : a.shape[1]]
    return ad.where(c, a, b)


BINARY: dict[str, tuple[Callable[[ad.Tensor, ad.Tensor], ad.Tensor], tuple[str, str], str]] = {
    "add_bias": (lambda a, b: a + b, ("mn", "n"), "any"),
    "add_outer": (lambda a, b: a + b, ("m1", "1n"), "any"),
    "sub_col": (lambda a, b: a - b, ("mn", "m1"), "any"),
    "sub_rev": (lambda a, b: b - a, ("mn", "n"), "any"),
    "mul_col": (lambda a, b: b * a, ("mn", "m1"), "any"),
    "mul_same": (lambda a, b: a * b, ("mn", "mn"), "any"),
    "div": (lambda a, b: a / b, ("mn", "n"), "off0"),
    "div_rev": (lambda a, b: a / b, ("1n", "mn"), "off0"),
    "matmul22": (lambda a, b: a @ b, ("mk", "kn"), "any"),
    "matmul12": (lambda a, b: a @ b, ("k", "kn"), "any"),
    "matmul21": (lambda a, b: a @ b, ("mk", "k"), "any"),
    "matmul11": (lambda a, b: a @ b, ("k", "k"), "any"),
    "maximum": (lambda a, d: ad.maximum(a, a + d), ("mn", "n"), "off0"),
    "maximum_rev": (lambda a, d: ad.maximum(a + d, a), ("mn", "mn"), "off0"),
    "where": (lambda a, b: _where(a, b), ("mn", "n"), "any"),
    "chain": (lambda a, b: ad.tanh(a @ b.T) * ad.sigmoid(a).sum(), ("mk", "nk"), "any"),
}


# ---- gradients vs central differences --------------------------------------------------
@pytest.mark.parametrize("name", list(UNARY))
@FAST
@given(data=st.data())
def test_unary_op_gradient_matches_finite_differences(name: str, data: st.DataObject) -> None:
    op, domain = UNARY[name]
    x = data.draw(DOMAINS[domain](data.draw(SHAPE_2D)))
    check_grad(projected(op), x)


@pytest.mark.parametrize("name", list(BINARY))
@FAST
@given(data=st.data())
def test_binary_op_gradient_matches_finite_differences(name: str, data: st.DataObject) -> None:
    op, shapes, domain_b = BINARY[name]
    a, b = data.draw(binary_operands(shapes, domain_b))
    check_grad(projected(lambda ab: op(*ab)), (a, b))


@FAST
@given(x=arrays((3, 2), 0.5, 2.0))
def test_constants_on_either_side_of_every_operator(x: np.ndarray) -> None:
    c = np.array([0.5, -1.5])
    m = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])

    def fn(t: ad.Tensor) -> ad.Tensor:
        terms = [2.0 + t, t + c, 1 - t, c - t, 3 * t, t * c, 2.0 / t, c / t, t / 4, m @ t, t @ c]
        return sum((term * term).sum() for term in terms[1:]) + terms[0].mean()

    assert isinstance(c + ad.Tensor(x), ad.Tensor)  # ndarray defers to Tensor.__radd__
    check_grad(fn, x)


def test_broadcast_gradients_are_reduced_to_operand_shapes() -> None:
    rng = np.random.default_rng(0)
    x, w, bias, scale = (rng.standard_normal(s) for s in [(4, 3), (4, 3), (3,), (4, 1)])
    g_x, g_b = ad.grad(lambda p: ((p[0] + p[1]) * w).sum())((x, bias))
    np.testing.assert_allclose(g_x, w, rtol=1e-15)
    np.testing.assert_allclose(g_b, w.sum(axis=0), rtol=1e-14)
    g_s, g_x = ad.grad(lambda p: (p[0] * p[1] * w).sum())((scale, x))
    assert g_s.shape == (4, 1)
    np.testing.assert_allclose(g_s, (x * w).sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(g_x, scale * w, rtol=1e-15)


# ---- a 2-layer network over a pytree ----------------------------------------------------
def _net_loss(params: list[dict[str, ad.Tensor]], x: np.ndarray, y: np.ndarray) -> ad.Tensor:
    """Sigmoid cross-entropy :math:`\\mathrm{softplus}(z) - y z` of a tanh 2-layer net."""
    h = ad.tanh(x @ params[0]["W"] + params[0]["b"])
    z = h @ params[1]["W"] + params[1]["b"]
    return (ad.softplus(z) - y * z).mean()


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_grad_over_pytree_two_layer_net(seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = [
        {"W": rng.standard_normal((3, 5)), "b": rng.standard_normal(5)},
        {"W": rng.standard_normal((5, 1)), "b": rng.standard_normal(1)},
    ]
    x, y = rng.standard_normal((6, 3)), (rng.random((6, 1)) < 0.5).astype(np.float64)
    value, grads = ad.value_and_grad(_net_loss)(params, x, y)
    assert isinstance(grads, list) and [sorted(g) for g in grads] == [["W", "b"]] * 2
    for g, p in zip(tree_leaves(grads), tree_leaves(params), strict=True):
        assert type(g) is np.ndarray and g.shape == p.shape and g.dtype == p.dtype
    assert float(value) == float(_net_loss(tree_map(ad.Tensor, params), x, y).value)
    numeric = tape_numerical_grad(lambda p: _net_loss(p, x, y), params)
    assert rel_err(grads, numeric) <= TOL
    g_x = ad.grad(lambda xx, p: _net_loss(p, xx, y), argnum=0)(x, params)
    g_p = ad.grad(lambda xx, p: _net_loss(p, xx, y), argnum=1)(x, params)
    assert g_x.shape == x.shape and rel_err(g_p, grads) == 0.0


# ---- values, kinks and stability ----------------------------------------------------------
def test_forward_values_match_numpy_references() -> None:
    a = np.random.default_rng(2).uniform(-20, 20, (5, 7))
    refs = {
        ad.sigmoid: 1 / (1 + np.exp(-a)),
        ad.softplus: np.logaddexp(0, a),
        ad.tanh: np.tanh(a),
        ad.relu: np.maximum(a, 0),
        lambda t: ad.leaky_relu(t, 0.2): np.where(a >= 0, a, 0.2 * a),
        ad.softmax: np.exp(a) / np.exp(a).sum(-1, keepdims=True),
        ad.logsumexp: np.log(np.exp(a).sum(-1)),
        lambda t: ad.logsumexp(t, axis=None): np.log(np.exp(a).sum()),
        ad.identity: a,
        lambda t: t.mean(): a.mean(),
        lambda t: t.mean(axis=0, keepdims=True): a.mean(axis=0, keepdims=True),
        lambda t: t.sum(axis=(0, 1)): a.sum(),
        lambda t: t.T @ t / (1 + t**2).sum(axis=0): a.T @ a / (1 + a**2).sum(axis=0),
        lambda t: t.reshape(7, 5).transpose(1, 0) - 2: a.reshape(7, 5).T - 2,
        lambda t: ad.log(ad.sqrt(ad.abs_(t))) + ad.log1p(ad.exp(t)): np.log(np.abs(a)) / 2
        + np.log1p(np.exp(a)),
        lambda t: ad.where(a > 1, t, 0.5 * -t): np.where(a > 1, a, -0.5 * a),
    }
    for fn, ref in refs.items():
        np.testing.assert_allclose(fn(ad.Tensor(a)).value, ref, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [(ad.relu, 0.0), (ad.abs_, 0.0), (ad.leaky_relu, 1.0), (ad.softplus, 0.5), (ad.sigmoid, 0.25)],
)
def test_derivatives_at_zero(fn: Callable[[ad.Tensor], ad.Tensor], expected: float) -> None:
    assert ad.grad(lambda t: fn(t).sum())(np.zeros(2)).tolist() == [expected] * 2


def test_maximum_tie_sends_gradient_to_other() -> None:
    ga, gb = ad.grad(lambda ab: ad.maximum(ab[0], ab[1]).sum())((np.ones(2), np.ones(2)))
    assert ga.tolist() == [0.0, 0.0] and gb.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "logsumexp", "softmax", "tanh"])
def test_stable_at_large_magnitudes(name: str) -> None:
    fn = getattr(ad, name)
    a = np.array([[-1e3, -1.0, 0.0, 1.0, 1e3], [1e3, 1e3, 1e3 - 1, -1e3, -1e3]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        value, g = ad.value_and_grad(projected(fn))(a)
        out = fn(a).value
    assert np.isfinite(value) and np.all(np.isfinite(g)) and np.all(np.isfinite(out))
    if name == "sigmoid":
        np.testing.assert_allclose(out[0], [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + 1 / np.e), 1.0])
    if name == "softplus":
        np.testing.assert_allclose(out[0], np.logaddexp(0, a[0]), rtol=1e-15)
    if name == "logsumexp":
        np.testing.assert_allclose(out[1], 1e3 + np.log(2 + np.exp(-1)), rtol=1e-15)


# ---- dtypes ---------------------------------------------------------------------------------
_DTYPE_CASES = [(lambda x, op=op: op(x[0]), (3, 4)) for op, _ in UNARY.values()] + [
    (lambda x, op=op: op(x[0], x[1].T), (4, 4)) for op, _, _ in BINARY.values()
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(_DTYPE_CASES)))
def test_dtype_preserved_by_every_op(case: int, dtype: type) -> None:
    op, shape = _DTYPE_CASES[case]
    x: list[np.ndarray] = [
        np.random.default_rng(3).uniform(0.5, 2.0, shape).astype(dtype),
        np.ones((4, 4), dtype),
    ]
    value, grads = ad.value_and_grad(projected(op))(x)
    assert op(tree_map(ad.Tensor, x)).dtype == dtype and value.dtype == dtype
    assert all(g.dtype == dtype for g in grads)


def test_scalars_and_arrays_do_not_promote_float32() -> None:
    t = ad.Tensor(np.ones(3, np.float32))
    f64 = np.ones(3)
    for out in [t * 0.5, 0.5 * t, t / 3, 3.0 / t, t - 1.5, 1.5 - t, t**2.5, t + f64, f64 @ t]:
        assert out.dtype == np.float32
    # a float32 leaf mixed with a float64 leaf: each gradient keeps its leaf's dtype
    g32, g64 = ad.grad(lambda p: (p[0].sum() * p[1]).sum())((np.ones(3, np.float32), np.ones(2)))
    assert g32.dtype == np.float32 and g64.dtype == np.float64


# ---- tape mechanics and errors ----------------------------------------------------------------
def test_backward_seed_reuse_and_constants() -> None:
    x = ad.Tensor(np.array([1.0, -2.0, 3.0]))
    c = ad.Tensor(np.array([2.0, 2.0, 2.0]), requires_grad=False)
    y = x * x * c
    with pytest.raises(ValueError, match="seed"):
        y.backward()
    y.backward(np.array([1.0, 10.0, 100.0]))
    assert x.grad is not None and x.grad.tolist() == [4.0, -80.0, 1200.0] and c.grad is None
    h = ad.exp(x)
    (h * h + h + x).sum().backward()  # h and x reach the output along several paths
    assert x.grad is not None
    np.testing.assert_allclose(x.grad, 2 * np.exp(2 * x.value) + np.exp(x.value) + 1, rtol=1e-15)


def test_negative_control_wrong_vjp_is_detected() -> None:
    def exp_wrong(x: ad.Tensor) -> ad.Tensor:
        y = np.exp(x.value)
        return ad.Tensor(y, [(x, lambda g: 1.001 * g * y)])

    def exp_right(x: ad.Tensor) -> ad.Tensor:
        y = np.exp(x.value)
        return ad.Tensor(y, [(x, lambda g: g * y)])

    x = np.random.default_rng(4).standard_normal((3, 2))
    check_grad(projected(exp_right), x)
    with pytest.raises(AssertionError, match="relative error"):
        check_grad(projected(exp_wrong), x)


def test_vjp_of_wrong_shape_raises() -> None:
    x = ad.Tensor(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        ad.Tensor(np.ones(()), [(x, lambda g: g)]).backward()


@pytest.mark.parametrize(
    ("args", "argnum", "match"),
    [
        ((np.arange(3),), 0, r"argument 0 \(leaf 0\).*int64"),
        ((np.ones(2), [{"W": np.ones(2), "b": np.zeros(2, np.int32)}]), 1, r"argument 1 \(leaf 1\).*int32"),
        ((np.array([1.0, None]),), 0, "object"),
    ],
)
def test_grad_rejects_non_float_leaves(args: tuple, argnum: int, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ad.grad(lambda *a: ad.Tensor(np.zeros(())), argnum=argnum)(*args)


def test_grad_requires_scalar_tensor_output() -> None:
    with pytest.raises(TypeError, match="0-d Tensor"):
        ad.grad(lambda x: x * 2)(np.ones(3))


def test_grad_of_unused_argument_is_zero() -> None:
    g = ad.grad(lambda p: p["a"].sum())({"a": np.ones(2), "b": np.ones(3, np.float32)})
    assert g["b"].tolist() == [0.0] * 3 and g["b"].dtype == np.float32


def test_grad_follows_the_array_backend(bk: Any) -> None:
    rng = np.random.default_rng(5)
    params = [
        {"W": rng.standard_normal((3, 5)), "b": rng.standard_normal(5)},
        {"W": rng.standard_normal((5, 1)), "b": rng.standard_normal(1)},
    ]
    x, y = rng.standard_normal((6, 3)), np.ones((6, 1))
    expected = ad.grad(_net_loss)(params, x, y)
    got = ad.grad(_net_loss)(tree_map(bk.asarray, params), bk.asarray(x), bk.asarray(y))
    assert all(isinstance(g, bk.xp.ndarray) for g in tree_leaves(got))
    assert rel_err(expected, got) <= 1e-12
