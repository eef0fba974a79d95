"""The gradient checkers themselves: they pass correct backward passes and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given

import locograd as lg
from locograd.errors import NonFiniteError
from locograd.testing import check_vjp, numerical_grad, relative_error

from .strategies import architectures, seeds


def test_numerical_grad_of_a_known_function() -> None:
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    g = numerical_grad(lambda z: float((z**3).sum()), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
    assert g.dtype == x.dtype


def test_numerical_grad_over_a_tree() -> None:
    tree = [{"W": np.array([1.0, 2.0]), "b": np.array([3.0])}]
    g = numerical_grad(lambda t: float((t[0]["W"] ** 2).sum() + 5 * t[0]["b"].sum()), tree)
    np.testing.assert_allclose(g[0]["W"], [2.0, 4.0], rtol=1e-8)
    np.testing.assert_allclose(g[0]["b"], [5.0], rtol=1e-8)


@given(arch=architectures(max_depth=3, max_width=8), seed=seeds())
def test_check_vjp_rejects_a_backward_wrong_by_a_tenth_of_a_percent(arch, seed: int) -> None:
    """The negative control of every gradient test: a 0.1% error is caught, the right one passes."""
    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=seed % 100, bias="glorot")
    x = rng.standard_normal((4, sizes[0]))
    y = rng.random((4, sizes[-1]))
    if loss == "softmax_cross_entropy":
        y = y / y.sum(axis=1, keepdims=True)
    grads = net.backward(params, net.forward(params, x), y)
    right = grads.as_params()
    # 0.1% of a gradient below ~1e-3 is under the central difference's rounding noise (~1e-9)
    assume(sum(float((g["W"] ** 2).sum() + (g["b"] ** 2).sum()) for g in right) > 1e-6)
    wrong = [{"W": 1.001 * g["W"], "b": 1.001 * g["b"]} for g in right]

    def fn(p):
        return np.asarray(net.loss(p, x, y))

    check_vjp(fn, lambda p, u: [{"W": u * g["W"], "b": u * g["b"]} for g in right], params, seed=seed)
    with pytest.raises(AssertionError, match="relative error"):
        check_vjp(fn, lambda p, u: [{"W": u * g["W"], "b": u * g["b"]} for g in wrong], params, seed=seed)


def test_check_vjp_rejects_a_wrong_elementwise_derivative() -> None:
    x = np.linspace(-2.0, 2.0, 7)
    with pytest.raises(AssertionError):
        check_vjp(np.tanh, lambda x, u: u * (1 - np.tanh(x) ** 2) * 1.001, x)


def test_relative_error_floor() -> None:
    assert relative_error(np.array([1e-12]), np.array([0.0])) == 1.0
    assert relative_error(np.array([1e-12]), np.array([0.0]), floor=1e-3) == pytest.approx(1e-9)


# ---- non-finite values and malformed comparisons never pass -------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["a", "b"])
def test_relative_error_refuses_non_finite_values(side: str, bad: float) -> None:
    """Old code: relative_error([nan, 1], [1, 1]) returned 0.0 (max skips NaN), so NaN "matched" anything."""
    good, broken = np.ones(2), np.array([bad, 1.0])
    args = (broken, good) if side == "a" else (good, broken)
    with pytest.raises(
        NonFiniteError, match=rf"{side}: expected finite values, got \d NaN and \d infinities"
    ):
        relative_error(*args)


def test_relative_error_refuses_different_shapes_and_trees() -> None:
    """Old code broadcast (3,) against (1,) and returned 0.0; a shorter tree raised zip's own message."""
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\) like a at leaf 0, got \(1,\)"):
        relative_error(np.ones(3), np.ones(1))
    with pytest.raises(ValueError, match=r"b: expected 2 arrays like a, got 1"):
        relative_error([np.ones(2), np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match=r"floor: expected a finite number > 0, got 0.0"):
        relative_error(np.ones(2), np.ones(2), floor=0.0)


def tanh_vjp(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    return u * (1 - np.tanh(x) ** 2)


def test_check_vjp_fails_on_a_nan_vjp() -> None:
    """Old code: a VJP returning NaN gave relative error NaN, and NaN > rtol is False: it returned 0.0."""
    x = np.linspace(-1.0, 1.0, 5)
    assert check_vjp(np.tanh, tanh_vjp, x) < 1e-8  # the right VJP passes
    with pytest.raises(AssertionError, match=r"vjp\(x, u\) holds 5 NaN and 0 infinities among 5 values"):
        check_vjp(np.tanh, lambda x, u: tanh_vjp(x, u) * np.nan, x)
    with pytest.raises(AssertionError, match=r"vjp\(x, u\) holds 0 NaN and 1 infinities"):
        check_vjp(np.tanh, lambda x, u: np.where(x > 0.9, np.inf, tanh_vjp(x, u)), x)


def test_check_vjp_fails_on_a_non_finite_function() -> None:
    """Old code: fn = NaN everywhere (or beyond x) returned 0.0; now the check fails, naming the value."""
    x = np.linspace(-1.0, 1.0, 5)
    with pytest.raises(AssertionError, match=r"check_vjp: fn\(x\) holds 5 NaN"):
        check_vjp(lambda z: z * np.nan, lambda z, u: u, x)
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(AssertionError, match=r"check_vjp: fn\(x [+-] eps v\) holds"),
    ):
        check_vjp(
            lambda z: np.log(1.0 - z), lambda z, u: -u / (1.0 - z), np.array([1.0 - 1e-9, 0.0]), eps=1e-3
        )


def test_check_vjp_refuses_a_non_finite_point_and_bad_settings() -> None:
    """Old code: x = [nan, 1] returned 0.0; num_directions=0 checked nothing and returned 0.0."""
    with pytest.raises(
        NonFiniteError, match=r"x: expected finite values, got 1 NaN and 0 infinities among 2"
    ):
        check_vjp(np.tanh, tanh_vjp, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"num_directions: expected an integer >= 1, got 0"):
        check_vjp(np.tanh, tanh_vjp, np.ones(2), num_directions=0)
    with pytest.raises(ValueError, match=r"eps: expected a finite number > 0, got 0.0"):
        check_vjp(np.tanh, tanh_vjp, np.ones(2), eps=0.0)


def test_check_vjp_fails_on_a_vjp_of_another_shape() -> None:
    """Old code: a (1,) VJP of sum over (5,) broadcast into the inner product and passed (error 1.9e-10)."""
    with pytest.raises(AssertionError, match=r"vjp\(x, u\) leaf 0 has shape \(1,\), expected \(5,\) like x"):
        check_vjp(np.sum, lambda x, u: np.ones(1) * u, np.linspace(-1.0, 1.0, 5))


def test_numerical_grad_refuses_non_finite_points_and_values() -> None:
    """Old code returned [nan, nan] for a NaN point and for log at a negative entry."""
    with pytest.raises(NonFiniteError, match=r"x: expected finite values, got 1 NaN"):
        numerical_grad(lambda z: float((z**2).sum()), np.array([np.nan, 1.0]))
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(
            NonFiniteError,
            match=r"fn: expected a finite value at x \+ eps e_i \(leaf 0, flat index 0\), got nan",
        ),
    ):
        numerical_grad(lambda z: float(np.log(z).sum()), np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match=r"eps: expected a finite number > 0, got -1e-06"):
        numerical_grad(lambda z: float(z.sum()), np.ones(2), eps=-1e-6)
