"""Forward-mode derivatives and the exact Fisher form of :class:`locograd.MLP` (float64).

Tolerances: the JVP/VJP dot-product identity compares two exact formulas, so it
holds to rounding, 1e-10 relative.  The Fisher form is compared with the loss
Hessian by central differences of the gradient (h = 1e-5): truncation ~h^2 and
rounding ~1e-16/h, so 1e-6 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd.testing import relative_error

from .strategies import LOSS_OUTPUT, architectures, seeds

EXACT_RTOL = 1e-10
HESSIAN_RTOL = 1e-6


def random_like(params, rng: np.random.Generator):
    return [{k: rng.standard_normal(v.shape) for k, v in layer.items()} for layer in params]


def dot(u, v) -> float:
    return sum(float((a[k] * b[k]).sum()) for a, b in zip(u, v, strict=True) for k in ("W", "b"))


def setup(arch, seed: int, B: int = 4):
    sizes, acts, loss = arch
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=seed % 97, bias="glorot")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, sizes[0]))
    return net, params, x, rng


def vjp_of_output(net: lg.MLP, params, x: np.ndarray, w: np.ndarray):
    """J^T w through the backward pass of a twin net with a linear output and squared error.

    dL/dA_out = (A - y)/B, so y = A - B w gives J^T w; the hidden layers are the same.
    """
    twin = lg.MLP(net.sizes, [t.name for t in net.transfers[:-1]] + ["identity"], "squared_error")
    trace = twin.forward(params, x)
    grads = twin.backward(params, trace, trace.pre[-1] - x.shape[0] * w)
    return grads.as_params()


@given(arch=architectures(max_depth=4, max_width=6), seed=seeds())
def test_jvp_is_the_adjoint_of_the_backward_pass(arch, seed: int) -> None:
    """<J u, w> = <u, J^T w> for random directions u and output cotangents w."""
    net, params, x, rng = setup(arch, seed)
    u = random_like(params, rng)
    w = rng.standard_normal((x.shape[0], net.sizes[-1]))
    ju = net.jvp(params, net.forward(params, x), u)
    jtw = vjp_of_output(net, params, x, w)
    forward_mode = float((ju * w).sum())
    reverse_mode = dot(u, jtw)
    # Both are sums that may cancel: relative to their terms' sizes each rounds by <= ~(n + depth *
    # width) eps (n summed terms, products through <= 4 layers of width <= 6); 1e-12 of the terms is
    # over 50 times that.  (The old fixed floor 1e-12 was not tied to the terms.)
    terms = float(np.abs(ju * w).sum()) + sum(
        float(np.abs(a[k] * b[k]).sum()) for a, b in zip(u, jtw, strict=True) for k in ("W", "b")
    )
    assert (
        relative_error(forward_mode, reverse_mode, floor=max(1e-12 * terms, 1e-300) / EXACT_RTOL)
        <= EXACT_RTOL
    )


def test_jvp_adjoint_check_fails_when_the_bias_direction_is_dropped() -> None:
    """Negative control: a JVP that ignores the bias tangents breaks the identity."""
    net, params, x, rng = setup(([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy"), 5)
    u = random_like(params, rng)
    w = rng.standard_normal((x.shape[0], 2))
    no_bias = [{"W": layer["W"], "b": np.zeros_like(layer["b"])} for layer in u]
    wrong = float((net.jvp(params, net.forward(params, x), no_bias) * w).sum())
    assert relative_error(wrong, dot(u, vjp_of_output(net, params, x, w)), floor=1e-12) > 1e-3


def hessian_form(net: lg.MLP, params, x, y, u, v, h: float = 1e-5, rounding: list | None = None) -> float:
    """u^T (d^2 L) v by central differences of the gradient along v.

    ``rounding``, if given, receives a bound on the difference quotient's rounding: each gradient
    entry rounds by <= ~(n + 16) eps of |u| |g| summed (n terms), the two dot products likewise, and
    the quotient divides their sum by 2h: 64 (n + 16) eps sum(|u| (|g+| + |g-|)) / 2h.
    """

    def grad_at(t: float):
        shifted = [{k: p[k] + t * d[k] for k in p} for p, d in zip(params, v, strict=True)]
        return net.value_and_grad(shifted, x, y)[1]

    plus, minus = grad_at(h), grad_at(-h)
    if rounding is not None:
        size = sum(float(np.abs(a[k]).sum()) for a in u for k in ("W", "b"))
        n = sum(a[k].size for a in u for k in ("W", "b"))
        spread = sum(
            float((np.abs(a[k]) * (np.abs(p[k]) + np.abs(m[k]))).sum())
            for a, p, m in zip(u, plus, minus, strict=True)
            for k in ("W", "b")
        )
        rounding.append(
            64 * (n + 16) * float(np.finfo(np.float64).eps) * max(spread, 1e-300 * size) / (2 * h)
        )
    return (dot(u, plus) - dot(u, minus)) / (2 * h)


@pytest.mark.parametrize("loss", sorted(LOSS_OUTPUT))
@given(d_in=st.integers(1, 5), d_out=st.integers(2, 5), seed=seeds())
def test_fisher_form_equals_the_hessian_of_a_one_layer_net(
    loss: str, d_in: int, d_out: int, seed: int
) -> None:
    """One layer is linear in its params, so the Gauss-Newton/Fisher matrix is the exact Hessian."""
    net, params, x, rng = setup(([d_in, d_out], [LOSS_OUTPUT[loss]], loss), seed)
    y = rng.random((x.shape[0], d_out))
    u, v = random_like(params, rng), random_like(params, rng)
    trace = net.forward(params, x)
    fisher = net.fisher_quadratic(params, trace, u, v)
    rounding: list[float] = []
    want = hessian_form(net, params, x, y, u, v, rounding=rounding)
    scale = np.sqrt(abs(net.fisher_quadratic(params, trace, u) * net.fisher_quadratic(params, trace, v)))
    # truncation: h^2/6 times the third derivative along v, <= ~1e-10 scale for these O(1) losses;
    # rounding: bounded from the terms (hessian_form), not by the old fixed 1e-8 floor
    assert abs(fisher - want) <= HESSIAN_RTOL * scale + rounding[0]


def test_fisher_form_check_fails_without_the_output_curvature() -> None:
    """Negative control: u^T J^T J u (the output Hessian left out) is not the Hessian for sigmoid CE."""
    net, params, x, rng = setup(([3, 4], ["sigmoid"], "sigmoid_cross_entropy"), 11)
    y = rng.random((x.shape[0], 4))
    u = random_like(params, rng)
    ju = net.jvp(params, net.forward(params, x), u)
    without_curvature = float((ju * ju).sum()) / x.shape[0]
    assert relative_error(without_curvature, hessian_form(net, params, x, y, u, u)) > 0.1


@given(arch=architectures(max_depth=3, max_width=5), seed=seeds())
def test_fisher_form_is_symmetric_and_positive(arch, seed: int) -> None:
    net, params, x, rng = setup(arch, seed)
    trace = net.forward(params, x)
    u, v = random_like(params, rng), random_like(params, rng)
    uv, vu = net.fisher_quadratic(params, trace, u, v), net.fisher_quadratic(params, trace, v, u)
    # the two orders sum the same products differently: relative to their size sqrt(uFu vFv) they
    # round by ~(n + depth * width) eps, far below EXACT_RTOL; a fixed floor (old: 1e-12) was not tied to it
    size = np.sqrt(net.fisher_quadratic(params, trace, u) * net.fisher_quadratic(params, trace, v))
    assert relative_error(uv, vu, floor=max(1e-13 * float(size), 1e-300) / EXACT_RTOL) <= EXACT_RTOL
    assert net.fisher_quadratic(params, trace, u) >= 0.0


def test_jvp_bad_input() -> None:
    net, params, x, _ = setup(([3, 2], ["identity"], "squared_error"), 0)
    with pytest.raises(ValueError, match="trace: expected a Trace of 1 layers"):
        net.jvp(params, None, params)
    with pytest.raises(ValueError, match=r"params"):
        net.jvp(params, net.forward(params, x), [{"W": np.ones((2, 2)), "b": np.ones(2)}])
