"""Bregman divergences: non-negativity, zero on the diagonal, gradient, closed forms, duality, stability."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given

from locograd import bregman, transfer
from locograd.testing import relative_error

from .strategies import matrices

H = 1e-5  # truncation ~H^2 = 1e-10; rounding ~1e-16 * |F| / H <= 1e-9 absolute


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a, np.resize(b, a.shape)


def _scale(t: transfer.Transfer, p, q) -> float:
    """Size of the terms D_F is the difference of; rounding error is ~1e-16 of it."""
    return (
        float(np.max(np.abs(t.potential(p)) + np.abs(t.potential(q)) + np.abs((t.f(q) * (p - q)).sum(-1))))
        + 1.0
    )


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=6.0), b=matrices(bound=6.0))
def test_nonnegative_and_zero_on_diagonal(bk, name: str, a: np.ndarray, b: np.ndarray) -> None:
    t = transfer.get(name)
    p, q = (bk.asarray(v) for v in _pair(a, b))
    d = bk.numpy(bregman.divergence(t, p, q))
    assert d.shape == (a.shape[0],)
    assert d.min() >= 0  # a sum of non-negative terms (module docstring), so no rounding allowance
    assert np.all(bk.numpy(bregman.divergence(t, p, p)) == 0.0)


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=6.0), b=matrices(bound=6.0))
def test_divergence_agrees_with_the_defining_difference(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """The stable forms equal F(p) - F(q) - f(q).(p - q) to within the rounding of the latter.

    The defining difference (the old implementation) rounds each of its three terms by ~eps of
    the scale _scale (plus sums over <= 6 units): <= ~10 eps scale = 2.2e-15 scale; the stable
    forms err by <= ~1e-14 relative to D <= scale.  1e-13 scale covers both with margin 5.
    """
    t = transfer.get(name)
    p, q = _pair(a, b)
    defining = t.potential(p) - t.potential(q) - (t.f(q) * (p - q)).sum(-1)
    assert np.abs(bregman.divergence(t, p, q) - defining).max() <= 1e-13 * _scale(t, p, q)


EXTREMES = {np.float32: [1.0, 80.0, 1e4, 1e15], np.float64: [1.0, 80.0, 700.0, 1e3, 1e100, 1e150]}


def _near_pairs(dt, big: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """p at +-big, +-1, 0.5, 0 in mixed rows, and q = p (1 + 1e-7) or one ulp away, both orders."""
    p = np.array(
        [[big, big, big], [-big, -big, -big], [big, -big, 1.0], [-big, big, 0.5], [1.0, 2.0, 3.0]], dt
    )
    pairs = []
    for q in (p * dt(1 + 1e-7), np.nextafter(p, dt(np.inf)), np.nextafter(p, dt(-np.inf))):
        q = q.astype(dt)
        pairs += [(p, q), (q, p)]
    return pairs


@pytest.mark.parametrize("name", transfer.NAMES)
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_divergence_near_the_diagonal_is_nonnegative_and_small_at_extremes(bk, name: str, dt) -> None:
    """D_F(p, p(1 + 1e-7)) >= 0, in both orders, float32 and float64, up to |a| = 1e15 / 1e150.

    Old code (F(p) - F(q) - f(q).(p - q)): negative in float32 at |a| = 80 for every transfer, e.g.
    identity -1.2e-4 and relu -2.4e-4 over 3 units, tanh and sigmoid -7.6e-6 (sigmoid at +80, and
    with the arguments swapped at -80), softmax -1.5e-7 at (1, 2, 3) swapped.
    Small: f' <= 1 for every transfer of the table (the softmax Jacobian's eigenvalues <= 1/2), so
    D <= |p - q|^2 / 2; the result is within a few ulps of the truth, hence the factor 1 + 1e-5.
    """
    for p_np, q_np in _near_pairs(dt, EXTREMES[dt][-1]) + [
        pair for big in EXTREMES[dt][:-1] for pair in _near_pairs(dt, big)
    ]:
        p, q = bk.asarray(p_np), bk.asarray(q_np)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d = bk.numpy(bregman.divergence(name, p, q))
            zero = bk.numpy(bregman.divergence(name, p, p))
        assert d.dtype == dt and np.all(np.isfinite(d))
        assert d.min() >= 0
        half_square = 0.5 * ((p_np.astype(np.float64) - q_np.astype(np.float64)) ** 2).sum(-1)
        assert np.all(d <= half_square * (1 + 1e-5))
        assert np.all(zero == 0)


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "leaky_relu", "softmax"])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_dual_divergence_near_the_diagonal_is_nonnegative(name: str, dt) -> None:
    """D_F*(f(q), f(p)) >= 0 for p near q, both orders, wherever f(p) is inside the open range in dt.

    Old code (F*(u) - F*(v) - f^-1(v).(u - v)): negative in float32, e.g. sigmoid at a = (1, 2, 3).
    """
    t = transfer.get(name)
    for big in EXTREMES[dt]:
        for p, q in _near_pairs(dt, big):
            u, v = t.f(q), t.f(p)
            low, high = t.range
            inside = (v > 0).all() if name == "softmax" else ((v > low) & (v < high)).all()
            if not inside:  # f rounds to the boundary (e.g. sigmoid(80) == 1 in float32): no inverse
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                d = bregman.dual_divergence(t, u, v)
            assert d.dtype == dt and np.all(np.isfinite(d)) and d.min() >= 0
            assert np.all(bregman.dual_divergence(t, v, v) == 0)


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "leaky_relu"])
@given(a=matrices(bound=6.0), b=matrices(bound=6.0))
def test_zero_only_on_diagonal_when_strictly_convex(name: str, a: np.ndarray, b: np.ndarray) -> None:
    p, q = _pair(a, b)
    d = bregman.divergence(name, p, q)
    distinct = np.abs(p - q).max(axis=1) > 1e-2
    assert np.all(d[distinct] > 0)


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=4.0), b=matrices(bound=4.0))
def test_gradient_is_f_p_minus_f_q(bk, name: str, a: np.ndarray, b: np.ndarray) -> None:
    p, q = _pair(a, b)
    p = np.where(np.abs(p) < 1e-3, 1e-3, p)  # away from relu's kink
    numeric = np.zeros_like(p)
    for j in range(p.shape[1]):
        e = np.zeros_like(p)
        e[:, j] = H
        plus = bregman.divergence(name, bk.asarray(p + e), bk.asarray(q))
        minus = bregman.divergence(name, bk.asarray(p - e), bk.asarray(q))
        numeric[:, j] = bk.numpy(plus - minus) / (2 * H)
    grad = bregman.divergence_grad(name, bk.asarray(p), bk.asarray(q))
    assert relative_error(grad, numeric, floor=1e-2) <= 1e-6


@given(a=matrices(bound=8.0), b=matrices(bound=8.0))
def test_identity_is_half_squared_distance(a: np.ndarray, b: np.ndarray) -> None:
    p, q = _pair(a, b)
    np.testing.assert_allclose(
        bregman.divergence("identity", p, q), 0.5 * ((p - q) ** 2).sum(-1), rtol=1e-12, atol=1e-12
    )


@given(a=matrices(bound=8.0), b=matrices(bound=8.0))
def test_sigmoid_is_binary_kl(a: np.ndarray, b: np.ndarray) -> None:
    """D_F(p, q) = KL(f(q) || f(p)): the divergence of pre-activations is the reversed KL of outputs."""
    p, q = _pair(a, b)
    y, yh = 1 / (1 + np.exp(-q)), 1 / (1 + np.exp(-p))
    kl = (y * np.log(y / yh) + (1 - y) * np.log((1 - y) / (1 - yh))).sum(-1)
    np.testing.assert_allclose(bregman.divergence("sigmoid", p, q), kl, rtol=1e-8, atol=1e-10)


@given(a=matrices(bound=4.0), b=matrices(bound=4.0))
def test_tanh_matches_table_row(a: np.ndarray, b: np.ndarray) -> None:
    p, q = _pair(a, b)
    y, yh = np.tanh(q), np.tanh(p)
    row = 0.5 * ((1 + y) * np.log((1 + y) / (1 + yh)) + (1 - y) * np.log((1 - y) / (1 - yh)))
    np.testing.assert_allclose(bregman.divergence("tanh", p, q), row.sum(-1), rtol=1e-7, atol=1e-10)


@given(a=matrices(bound=8.0), b=matrices(bound=8.0))
def test_softmax_is_kl_of_softmaxes(a: np.ndarray, b: np.ndarray) -> None:
    p, q = _pair(a, b)
    y, yh = transfer.softmax_rows(q), transfer.softmax_rows(p)
    kl = (y * (np.log(y) - np.log(yh))).sum(-1)
    np.testing.assert_allclose(bregman.divergence("softmax", p, q), kl, rtol=1e-8, atol=1e-10)


@given(a=matrices(bound=3.0))
def test_leaky_relu_is_piecewise_quadratic(a: np.ndarray) -> None:
    """Same-sign arguments: (p - q)^2 / 2, scaled by the slope on the negative side."""
    s = 0.3
    p = np.abs(a) + 0.1
    both_neg = bregman.divergence(transfer.leaky_relu(s), -p, -p - 1.0)
    both_pos = bregman.divergence(transfer.leaky_relu(s), p, p + 1.0)
    np.testing.assert_allclose(both_neg, s * 0.5 * p.shape[1], rtol=1e-12)
    np.testing.assert_allclose(both_pos, 0.5 * p.shape[1], rtol=1e-12)


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "leaky_relu", "softmax"])
@given(a=matrices(bound=4.0), b=matrices(bound=4.0))
def test_duality_with_conjugate(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """D_F(p, q) = D_F*(f(q), f(p))."""
    t = transfer.get(name)
    p, q = _pair(a, b)
    lhs = bregman.divergence(t, p, q)
    rhs = bregman.dual_divergence(t, t.f(q), t.f(p))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-7, atol=1e-9)


@given(a=matrices(bound=4.0), b=matrices(bound=4.0))
def test_duality_relu_on_positive_arguments(a: np.ndarray, b: np.ndarray) -> None:
    """relu is not invertible at 0; on positive arguments the duality holds as for identity."""
    p, q = _pair(np.abs(a) + 0.1, np.abs(b) + 0.1)
    rhs = transfer.relu.conjugate(p) - transfer.relu.conjugate(q) - (q * (p - q)).sum(-1)
    np.testing.assert_allclose(bregman.divergence("relu", q, p), rhs, rtol=1e-12, atol=1e-12)


@given(a=matrices(bound=5.0), b=matrices(bound=5.0))
def test_relu_zero_region(a: np.ndarray, b: np.ndarray) -> None:
    """D = 0 for any two non-positive arguments (F is flat there)."""
    p, q = _pair(-np.abs(a), -np.abs(b))
    assert np.all(bregman.divergence("relu", p, q) == 0.0)


@pytest.mark.parametrize("name", transfer.NAMES)
@given(a=matrices(bound=3.0), b=matrices(bound=3.0))
def test_matching_loss_differs_from_divergence_by_a_constant(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """F(a) - y*.a = D_F(a, a*) - F*(y*), with y* = f(a*): the same minimisers and gradient."""
    t = transfer.get(name)
    a, a_star = _pair(a, b)
    y_star = t.f(a_star)
    lhs = bregman.matching_loss(t, a, y_star) + t.conjugate(y_star)
    np.testing.assert_allclose(lhs, bregman.divergence(t, a, a_star), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bregman.matching_loss_grad(t, a, y_star), t.f(a) - t.f(a_star), atol=0)


def test_a_transfer_off_the_table_falls_back_to_the_defining_difference() -> None:
    """A copy of a row uses the row's stable form; an Elementwise with its own f, even named like a row, does not."""
    p = np.array([[0.3, -1.2, 2.5]], np.float32) * np.float32(80)
    q = p * np.float32(1 + 1e-6)
    copy = dataclasses.replace(transfer.identity)
    impostor = dataclasses.replace(transfer.identity, f_unit=lambda a: a)
    d = p - q
    np.testing.assert_array_equal(bregman.divergence(copy, p, q), (d * d).sum(-1) / 2)
    defining = impostor.potential(p) - impostor.potential(q) - (impostor.f(q) * (p - q)).sum(-1)
    np.testing.assert_array_equal(bregman.divergence(impostor, p, q), defining)
    assert not np.array_equal(defining, (d * d).sum(-1) / 2)  # float32 cancellation: the two differ


@pytest.mark.parametrize("name", transfer.NAMES)
@pytest.mark.parametrize(("dt", "big"), [(np.float64, 1e3), (np.float32, 80.0)])
def test_stable_at_large_pre_activations(bk, name: str, dt, big: float) -> None:
    p = bk.asarray(np.array([[big, -big, 1.0], [-big, big, 0.0]]), dtype=dt)
    q = bk.asarray(np.array([[-big, big, 0.0], [big, -big, 1.0]]), dtype=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [
            bregman.divergence(name, p, q),
            bregman.divergence_grad(name, p, q),
            bregman.matching_loss(name, p, transfer.get(name).f(q)),
        ]
    for out in outs:
        assert out.dtype == dt and bool(bk.xp.isfinite(out).all())
    assert bk.numpy(outs[0]).min() >= 0


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", transfer.NAMES)
def test_dtype_preserved(bk, name: str, dt) -> None:
    p = bk.asarray(np.ones((2, 3)), dtype=dt)
    assert bregman.divergence(name, p, 2 * p).dtype == dt
    assert bregman.matching_loss(name, p, 0.5 * p / 3).dtype == dt


def test_bad_input() -> None:
    p = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"q: expected the shape of p \(2, 3\), got \(2, 2\)"):
        bregman.divergence("tanh", p, np.zeros((2, 2)))
    with pytest.raises(TypeError, match="q: expected dtype float64 like p, got float32"):
        bregman.divergence("tanh", p, np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="p: expected a floating dtype"):
        bregman.divergence("tanh", np.zeros((2, 3), int), p)
    with pytest.raises(ValueError, match="unknown name"):
        bregman.divergence("swish", p, p)
