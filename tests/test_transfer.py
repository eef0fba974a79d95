"""The transfer table: f vs f' vs numerical, F' = f, Fenchel equality for F*, inverse, range, stability, dtype."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from locograd import transfer
from locograd.testing import relative_error

from .strategies import ELEMENTWISE, away_from_kink, matrices

# Central differences with h = 1e-6 in float64 on entries |a| <= 3: truncation h^2 |f'''| / 6 <= 4e-13
# (|f'''| <= 2 for every transfer of the table); rounding: f(fl(a +- h)) rounds a +- h by u (|a| + h)
# and f by a few ulps of |f|, so the quotient errs by <= u (|a| |f'| + 4 |f|) / h ~ 1.1e-16 * 15 / 1e-6
# = 1.7e-9 per unit of |f| <= 1 (identity and the relus, the only f with |f| > 1 here, round a +- h
# and subtract exactly: <= 3.3e-10).  Gradients are compared to GRAD_RTOL relative with the absolute
# floor FLOOR * GRAD_RTOL = 1e-9: an entry of f' is read alone, and relative_error divides by the
# largest entry, which carries the largest rounding.  A g-weighted sum of quotients (the VJP of
# softmax) errs by sum |g| times that bound: vjp_floor.
GRAD_RTOL = 1e-6
FLOOR = 1e-3
H = 1e-6
U = float(np.finfo(np.float64).eps) / 2


def vjp_floor(a: np.ndarray, g: np.ndarray) -> float:
    """The floor (for relative_error at GRAD_RTOL) that covers a g-weighted sum of central differences."""
    row = float(np.abs(g).sum(axis=1).max()) * U * (float(np.abs(a).max()) + 8) / H
    return max(FLOOR, 2 * row / GRAD_RTOL)


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(a=matrices())
def test_derivative_matches_central_differences(bk, name: str, a: np.ndarray) -> None:
    t = transfer.get(name)
    a = bk.asarray(away_from_kink(a))
    numeric = (t.f(a + H) - t.f(a - H)) / (2 * H)
    assert relative_error(t.df(a), numeric, FLOOR) <= GRAD_RTOL


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(), g=matrices())
def test_vjp_matches_jacobian_by_central_differences(bk, name: str, a: np.ndarray, g: np.ndarray) -> None:
    t = transfer.get(name)
    a = away_from_kink(a)
    g = np.resize(g, a.shape)
    # column j of the Jacobian along each unit direction, row by row
    jac_t_g = np.zeros_like(a)
    for j in range(a.shape[1]):
        e = np.zeros_like(a)
        e[:, j] = H
        dy = bk.numpy(t.f(bk.asarray(a + e)) - t.f(bk.asarray(a - e))) / (2 * H)
        jac_t_g[:, j] = (dy * g).sum(axis=1)
    # every unit's difference enters a softmax VJP, so where it is ~0 (g constant along a row) the old
    # FLOOR (1e-9 absolute) was below their rounding (up to ~3e-9): the floor grows with sum |g|
    assert relative_error(t.vjp(bk.asarray(a), bk.asarray(g)), jac_t_g, vjp_floor(a, g)) <= GRAD_RTOL


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices())
def test_potential_gradient_is_f(bk, name: str, a: np.ndarray) -> None:
    t = transfer.get(name)
    a = away_from_kink(a)
    grad = np.zeros_like(a)
    for j in range(a.shape[1]):
        e = np.zeros_like(a)
        e[:, j] = H
        grad[:, j] = bk.numpy(t.potential(bk.asarray(a + e)) - t.potential(bk.asarray(a - e))) / (2 * H)
    assert relative_error(t.f(bk.asarray(a)), grad, FLOOR) <= GRAD_RTOL


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=5.0))
def test_conjugate_fenchel_equality(bk, name: str, a: np.ndarray) -> None:
    r"""F*(f(a)) = a . f(a) - F(a): the supremum is attained at a."""
    t = transfer.get(name)
    a = bk.asarray(a)
    y = t.f(a)
    lhs = t.conjugate(y)
    rhs = (a * y).sum(axis=-1) - t.potential(a)
    np.testing.assert_allclose(bk.numpy(lhs), bk.numpy(rhs), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=5.0), b=matrices(bound=5.0))
def test_fenchel_young_inequality(bk, name: str, a: np.ndarray, b: np.ndarray) -> None:
    """F(b) + F*(f(a)) >= b . f(a) for any b: F* really is the conjugate (a sup)."""
    t = transfer.get(name)
    b = np.resize(b, a.shape)
    y = t.f(bk.asarray(a))
    gap = t.potential(bk.asarray(b)) + t.conjugate(y) - (bk.asarray(b) * y).sum(axis=-1)
    assert bk.numpy(gap).min() >= -1e-9


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "leaky_relu", "softmax"])
@given(a=matrices(bound=5.0))
def test_inverse_round_trip(bk, name: str, a: np.ndarray) -> None:
    t = transfer.get(name)
    a = bk.asarray(a)
    back = t.inverse(t.f(a))
    if name == "softmax":  # defined up to a shift per row
        back = back - back.mean(axis=-1, keepdims=True)
        a = a - a.mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(bk.numpy(back), bk.numpy(a), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize(
    ("name", "bad"),
    [("sigmoid", 1.0), ("sigmoid", -0.1), ("tanh", 1.5), ("tanh", -1.0), ("softmax", 0.7)],
)
def test_inverse_outside_range_raises(name: str, bad: float) -> None:
    y = np.array([[0.5, bad]])
    with pytest.raises(ValueError, match=r"y: the inverse of"):
        transfer.get(name).inverse(y)


def test_relu_has_no_inverse() -> None:
    with pytest.raises(ValueError, match="not invertible"):
        transfer.relu.inverse(np.array([[1.0]]))


@pytest.mark.parametrize("name", transfer.NAMES)
def test_f_stays_in_range_and_in_range_mask(name: str) -> None:
    t = transfer.get(name)
    a = np.linspace(-50, 50, 101).reshape(-1, 1) * np.ones((1, 3))
    assert t.in_range(t.f(a)).all()
    low, high = t.range
    if np.isfinite(high):
        assert not t.in_range(np.full((1, 3), high + 0.5)).all()
    if np.isfinite(low):
        assert not t.in_range(np.full((1, 3), low - 0.5)).all()


@pytest.mark.parametrize("name", transfer.NAMES)
@pytest.mark.parametrize(("dt", "big"), [(np.float64, 1e3), (np.float32, 80.0)])
def test_stable_and_dtype_preserving_at_large_pre_activations(bk, name: str, dt, big: float) -> None:
    t = transfer.get(name)
    a = bk.asarray(np.array([[big, -big, 0.5], [-big, big, -0.5]]), dtype=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [t.f(a), t.vjp(a, a), t.potential(a), t.conjugate(t.f(a))]
    for out in outs:
        assert out.dtype == dt
        assert bool(bk.xp.isfinite(out).all())


def test_leaky_relu_slope_is_a_parameter() -> None:
    t = transfer.leaky_relu(0.2)
    assert t.f(np.array([[-1.0, 2.0]])).tolist() == [[-0.2, 2.0]]
    with pytest.raises(ValueError, match="slope: expected a finite number > 0"):
        transfer.leaky_relu(0.0)


def test_get_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown name 'gelu'.*identity, sigmoid, tanh, relu, leaky_relu, softmax"
    ):
        transfer.get("gelu")
    with pytest.raises(TypeError, match="transfer: expected a name"):
        transfer.get(3)  # type: ignore[arg-type]


def test_softmax_df_points_to_vjp() -> None:
    with pytest.raises(ValueError, match="use vjp"):
        transfer.get("softmax").df(np.zeros((1, 2)))


def test_rows_are_the_two_implementations_of_one_interface() -> None:
    """Every row is a Transfer; all but softmax are Elementwise; the functions are not rows."""
    for name, t in transfer.TABLE.items():
        assert isinstance(t, transfer.Transfer) and t.name == name
        assert isinstance(t, transfer.Softmax if name == "softmax" else transfer.Elementwise)
        assert t.elementwise == (name != "softmax")
    assert transfer.sigmoid is transfer.get("sigmoid") and transfer.softmax is transfer.get("softmax")
    assert transfer.Softmax() == transfer.softmax
    for fn in (transfer.logistic, transfer.softplus, transfer.logsumexp, transfer.softmax_rows):
        assert not isinstance(fn, transfer.Transfer)
    with pytest.raises(TypeError):
        transfer.Transfer()  # type: ignore[abstract]


def test_vjp_from_output_only_where_df_is_written_through_the_output() -> None:
    a = np.array([[0.3, -2.0, 4.0]])
    g = np.array([[1.0, -0.5, 2.0]])
    t = transfer.tanh
    assert np.array_equal(t.vjp_from_output(t.f(a), g), t.vjp(a, g, t.f(a)))
    for name in ("sigmoid", "softmax"):
        with pytest.raises(ValueError, match="not written through the output"):
            transfer.get(name).vjp_from_output(transfer.get(name).f(a), g)


def test_custom_elementwise_transfer() -> None:
    """A transfer outside the table, from its per-unit functions: f(a) = 2a, F = a^2, F*(y) = y^2/4."""
    t = transfer.Elementwise(
        "double",
        f_unit=lambda a: 2 * a,
        df_unit=lambda a: np.full_like(a, 2.0),
        potential_unit=lambda a: a * a,
        conjugate_unit=lambda y: y * y / 4,
        inverse_unit=lambda y: y / 2,
        range=(-np.inf, np.inf),
        strictly_convex=True,
    )
    a = np.array([[1.0, -3.0], [0.5, 2.0]])
    assert transfer.get(t) is t
    assert t.f(a).tolist() == [[2.0, -6.0], [1.0, 4.0]]
    assert t.vjp(a, a, t.f(a)).tolist() == (2 * a).tolist()
    assert t.potential(a).tolist() == [10.0, 4.25]
    np.testing.assert_array_equal(t.conjugate(t.f(a)), (a * t.f(a)).sum(-1) - t.potential(a))
    np.testing.assert_array_equal(t.inverse(t.f(a)), a)
    with pytest.raises(ValueError, match="not written through the output"):
        t.vjp_from_output(t.f(a), a)


@given(st.floats(-30, 30, allow_nan=False, allow_subnormal=False))
def test_logistic_is_the_sigmoid_rows_f(a: float) -> None:
    x = np.array([[a, -a]])
    assert np.array_equal(transfer.sigmoid.f(x), transfer.logistic(x))


@given(st.floats(-30, 30, allow_nan=False, allow_subnormal=False))
def test_logistic_stable_form_agrees_with_definition(a: float) -> None:
    assert transfer.logistic(np.array(a)) == pytest.approx(1 / (1 + np.exp(-a)), rel=1e-13)
