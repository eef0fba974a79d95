"""The gradient checkers themselves: they pass correct backward passes and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given

import locograd as lg
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
