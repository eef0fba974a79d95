"""K-FAC for convolutions (KFC), FOOF and Shampoo on a conv layer's augmented kernel
:math:`\\tilde W` ``(kh*kw*c_in + 1, c_out)``, checked against sums written out here.

* K-FAC's factors are KFC's (Grosse & Martens 2016): the input factor
  :math:`\\Omega = \\frac1B\\sum_n\\sum_t \\tilde x_{nt}\\tilde x_{nt}^\\top` from patches gathered by explicit
  loops over positions, and the output factor
  :math:`\\Gamma = \\frac1{B|T|}\\sum_n\\sum_t E_y[g_{nt} g_{nt}^\\top]` of the expected Fisher, summed by loops
  over examples and positions (decay 0; ``state.A``/``state.G`` hold them undamped, ``to_dense`` damps
  both as K-FAC's factored Tikhonov does); the step is the dense solve.  The sums agree to a few
  hundred ulps of their largest entry (the same products added in another order); negative
  controls: a wrong patch order, and :math:`\\Gamma` summed over positions without :math:`1/|T|`.
* One position per layer, squared error, a deep linear CNN: :math:`\\Omega\\otimes\\Gamma` is the exact
  Gauss-Newton block, computed by central differences (exact up to rounding, the network being
  linear in each layer's weights); negative control: the empirical Fisher's factors.  With several
  positions they differ: ``scripts/kfc_gap.py`` reports the gap as a figure; here only that it is one.
* FOOF with decay 0 is LocoProp-S's closed form on a conv layer: with :math:`\\Omega` a mean over the
  B·P design rows, damping :math:`1/(\\eta BP)` and rate :math:`\\gamma/(BP)`.
* Shampoo on a conv layer: :math:`(L\\otimes R)^{-1/4}` of the kernel matrix's statistics.
"""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from locograd import locoprop, nn, optim
from locograd.testing import gauss_newton_block, relative_error

from .locoprop.test_conv_locoprop import IN_SHAPE, cases, cnn, loop_covariance
from .nn.test_conv import loop_patches
from .rounding import EPS
from .strategies import seeds
from .test_second_order import assert_step_is_the_dense_solve, kfac_dense, shampoo_root


def design_rows(trace, net, m: int) -> np.ndarray:
    """Layer ``m``'s input rows, one per example and position: patches by loops for a convolution."""
    layer = net.layers[m]
    x = trace.inputs[m]
    return loop_patches(x, layer) if isinstance(layer, nn.Conv2D) else x


def loop_input_factor(rows: np.ndarray, B: int) -> np.ndarray:
    """sum over rows of x~ x~^T, divided by the number of examples B."""
    total = np.zeros((rows.shape[1] + 1,) * 2)
    for row in rows:
        augmented = np.append(row, 1.0)
        total += np.outer(augmented, augmented)
    return total / B


def loop_output_factor(cotangents: list[np.ndarray], per_position: bool = True) -> np.ndarray:
    """sum over columns j, examples n and positions t of g g^T, g = cotangents[j][n, t, :], divided by
    B |T| (``per_position=False``: by B only, the input factor's normalisation, a wrong Gamma)."""
    first = cotangents[0]
    B, positions = first.shape[0], list(np.ndindex(first.shape[1:-1]))  # [()] for a dense layer
    total = np.zeros((first.shape[-1],) * 2)
    for g in cotangents:
        for n in range(B):
            for t in positions:
                total += np.outer(g[(n, *t)], g[(n, *t)])
    return total / (B * (len(positions) if per_position else 1))


def expected_cotangents(net, params, trace) -> list[list[np.ndarray]]:
    """Per column j of the output's Fisher root S_n: the pullbacks J^T S_n e_j to every layer."""
    roots = net.loss_fn.fisher_root(trace.output)
    return [net.vjp(params, trace, np.ascontiguousarray(roots[:, :, j])).pre for j in range(roots.shape[2])]


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Entries to 1e-10 relative and 1e-12 of the largest: sums of the same products in another order."""
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


@given(case=cases(), damping=st.floats(1e-3, 10.0), lr=st.floats(1e-3, 1.0))
def test_kfac_factors_are_kfc_s_patch_and_position_covariances(case, damping: float, lr: float) -> None:
    net, params, x, y = case
    opt = optim.KFAC(net, lr=lr, damping=damping, momentum=0.0, decay=0.0, update_every=1, fisher="expected")
    new, state, _ = opt.step(params, x, y, opt.init(params))
    trace = net.forward(params, x)
    pulled = expected_cotangents(net, params, trace)
    _, grads = net.value_and_grad(params, x, y)
    B = x.shape[0]
    for k, m in enumerate(net.weight_layers):
        layer = net.layers[m]
        Omega = loop_input_factor(design_rows(trace, net, m), B)
        Gamma = loop_output_factor([p[m] for p in pulled])
        assert_close(state.A[k], Omega)
        assert_close(state.G[k], Gamma)
        dense = opt.to_dense(state, m)
        assert_close(dense, kfac_dense(Omega, Gamma, damping))
        step = layer.stack(new[m]) - layer.stack(params[m])
        scale = np.abs(layer.stack(params[m])).max()
        assert_step_is_the_dense_solve(step, dense, layer.stack(grads[m]), lr, scale)
        # negative controls: Gamma without 1/|T|, and Omega from patches in reversed kernel order
        positions = pulled[0][m][0, ..., 0].size
        summed = loop_output_factor([p[m] for p in pulled], per_position=False)
        assert positions == 1 or relative_error(state.G[k], summed) > 1e-6
        if isinstance(layer, nn.Conv2D) and layer.kernel != (1, 1):
            reversed_rows = loop_covariance(trace.inputs[m], layer, reverse=True) / B
            assert relative_error(state.A[k], reversed_rows) > 1e-6


@st.composite
def deep_linear_cnns(
    draw: st.DrawFn, positions: int = 1
) -> tuple[nn.Sequential, list, np.ndarray, np.ndarray]:
    """conv (kh x kw, on kh x kw images: one position; or ``positions`` rows of them) -> avg pool 1 ->
    conv 1x1 -> flatten -> dense, every transfer the identity, squared error; B 1-4."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    c_in, c1, c2, d = (draw(st.integers(1, 3)) for _ in range(4))
    in_shape = (kh + positions - 1, kw, c_in)
    layers = [
        nn.Conv2D(c_in, c1, (kh, kw)),
        nn.AvgPool2D(1),
        nn.Conv2D(c1, c2, 1),
        nn.Flatten(),
        nn.Dense(positions * c2, d),
    ]
    net = nn.Sequential(layers, "squared_error", in_shape=in_shape)
    rng = np.random.default_rng(draw(seeds()))
    params = net.init(seed=int(rng.integers(1000)))
    for m in net.weight_layers:
        params[m]["b"] = rng.standard_normal(params[m]["b"].shape)
    B = draw(st.integers(1, 4))
    return net, params, rng.standard_normal((B, *in_shape)), rng.standard_normal((B, d))


def kfc_block(net, params, x, y, m: int, fisher: str) -> np.ndarray:
    """Omega kron Gamma of layer m after one K-FAC step with decay 0 (the state's undamped factors)."""
    opt = optim.KFAC(net, lr=0.1, momentum=0.0, decay=0.0, fisher=fisher)
    _, state, _ = opt.step(params, x, y, opt.init(params))
    k = net.weight_layers.index(m)
    return np.kron(state.A[k], state.G[k])


@given(case=deep_linear_cnns())
def test_kfc_with_one_position_per_layer_is_the_exact_gauss_newton_block(case) -> None:
    """Tolerance 1e-9 relative, 1e-11 of the largest entry: the central differences round by a few
    ulps of the outputs, the factors by a few hundred ulps of their sums."""
    net, params, x, y = case
    for m in net.weight_layers:
        ggn = gauss_newton_block(net, params, x, m)
        np.testing.assert_allclose(
            kfc_block(net, params, x, y, m, "expected"), ggn, rtol=1e-9, atol=1e-11 * np.abs(ggn).max()
        )
        # negative control: the empirical Fisher's output factor is not the Gauss-Newton one
        assert relative_error(kfc_block(net, params, x, y, m, "empirical"), ggn) > 1e-6


def kfc_gap(net, params, x, y, m: int) -> float:
    """||Omega kron Gamma - F||_F / ||F||_F for layer m of a deep linear network (F its Gauss-Newton block)."""
    ggn = gauss_newton_block(net, params, x, m)
    return float(np.linalg.norm(kfc_block(net, params, x, y, m, "expected") - ggn) / np.linalg.norm(ggn))


@given(case=deep_linear_cnns(positions=2))
def test_kfc_with_several_positions_is_an_approximation(case) -> None:
    """Two positions feed the dense layer through different weights, so the first conv layer's
    Kronecker factorisation leaves a gap (``scripts/kfc_gap.py`` reports its size): the
    one-position identity above is not vacuous."""
    net, params, x, y = case
    assert kfc_gap(net, params, x, y, 0) > 1e-6


@given(case=cases(), eta=st.floats(0.1, 10.0), gamma=st.floats(0.1, 5.0))
def test_foof_with_decay_zero_is_the_s_closed_form_on_a_conv_layer(case, eta: float, gamma: float) -> None:
    """FOOF(decay 0, damping 1/(eta B P), lr gamma/(B P)) steps the first conv layer to LocoProp-S's exact
    solution: Omega is a mean over the B P design rows, so (X~^T X~ + I/eta)^-1 = (Omega + I/(eta B P))^-1/(B P).

    cond(C + I/eta) <= 1 + eta lambda_max(C) stays below ~1e4 here: the two solves agree to ~1e-12
    relative, under 1e-8; absolutely, forming the steps rounds by 4 eps |W~|.
    """
    net, params, x, y = case
    conv = net.layers[0]
    rows = x.shape[0] * int(np.prod(conv.output_shape(IN_SHAPE)[:2]))
    opt = optim.FOOF(net, lr=gamma / rows, damping=1 / (eta * rows), momentum=0.0, decay=0.0)
    new, state, _ = opt.step(params, x, y, opt.init(params))
    problems, _ = locoprop.local_problems(net, params, x, y, locoprop.S(gamma=gamma, eta=eta))
    exact = conv.stack(locoprop.solve_exact_s(problems[0])) - conv.stack(params[0])
    step = conv.stack(new[0]) - conv.stack(params[0])
    floor = 4 * EPS * np.abs(conv.stack(params[0])).max() / 1e-8
    assert relative_error(step, exact, floor=max(floor, 1e-300)) <= 1e-8
    C = loop_covariance(x, conv)
    want = np.kron(C / rows + np.eye(C.shape[0]) / (eta * rows), np.eye(conv.c_out))
    assert_close(opt.to_dense(state, 0), want)
    # negative control: the rate gamma/B of a dense layer (one row per example) is another step
    assert rows == x.shape[0] or relative_error(step * rows / x.shape[0], exact) > 1e-6


@given(case=cases(), eps=st.floats(1e-3, 1.0), lr=st.floats(1e-3, 1.0))
def test_shampoo_on_a_conv_layer_is_the_dense_inverse_fourth_root(case, eps: float, lr: float) -> None:
    """vec(dW_mat) = -lr (L kron R)^(-1/4) vec(G_mat), with G_mat the kernel gradient as the
    (kh*kw*c_in, c_out) matrix of the patch order and L = eps I + G G^T, R = eps I + G^T G; tolerances
    as in the dense test (:func:`~tests.test_second_order.shampoo_root`)."""
    net, params, x, y = case
    opt = optim.Shampoo(net, lr=lr, eps=eps, momentum=0.0, update_every=1)
    new, state, _ = opt.step(params, x, y, opt.init(params))
    _, grads = net.value_and_grad(params, x, y)
    for k, m in enumerate(net.weight_layers):
        g = grads[m]["W"].reshape(-1, grads[m]["W"].shape[-1])
        L, R = eps * np.eye(g.shape[0]) + g @ g.T, eps * np.eye(g.shape[1]) + g.T @ g
        assert_close(state.L[k], L)
        assert_close(state.R[k], R)
        dense_root, spread = shampoo_root(L, R)
        dense = opt.to_dense(state, m)
        np.testing.assert_allclose(
            dense, dense_root, rtol=1e-9, atol=1e-12 + spread * np.abs(dense_root).max()
        )
        want = -lr * (dense @ g.reshape(-1)).reshape(g.shape)
        rtol = 1e-7 + spread
        floor = 4 * EPS * np.abs(params[m]["W"]).max() / rtol
        got = (new[m]["W"] - params[m]["W"]).reshape(g.shape)
        assert relative_error(got, want, floor=max(floor, 1e-300)) <= rtol


def test_to_dense_names_a_layer_without_weights() -> None:
    net = cnn(1, "same", "tanh")
    rng = np.random.default_rng(0)
    params, x, y = net.init(seed=0), rng.random((3, *IN_SHAPE)), rng.integers(0, 3, 3)
    opt = optim.KFAC(net, lr=0.1)
    _, state, _ = opt.step(params, x, y, opt.init(params))
    try:
        opt.to_dense(state, 1)
    except ValueError as exc:
        assert str(exc).startswith("layer: layer 1 (AvgPool2D") and "weight layers are [0, 2, 4]" in str(exc)
    else:
        raise AssertionError("to_dense took a pooling layer")


@given(
    seed=seeds(),
    pool=st.sampled_from(["max", "avg"]),
    stride=st.integers(1, 2),
    B=st.integers(1, 4),
)
def test_a_cnn_jvp_is_the_adjoint_of_its_vjp(seed: int, pool: str, stride: int, B: int) -> None:
    """<J t, V> = <t, J^T V> through convolutions, pooling (max: the same first-largest entry both
    ways) and flattening, which adaptive K-FAC's exact quadratic model rests on.  Both sides are sums
    of the same products in another order: 1e-10 relative to the sum of their magnitudes.  Negative
    control: a tangent without its kernel part changes the pairing."""
    window = nn.MaxPool2D(2, stride=1) if pool == "max" else nn.AvgPool2D(2, stride=1)
    first = nn.Conv2D(2, 3, (3, 2), stride=stride, padding="same", transfer="tanh")
    shape = window.output_shape(first.output_shape(IN_SHAPE))
    layers = [first, window, nn.Conv2D(3, 2, 1, transfer="sigmoid"), nn.Flatten()]
    net = nn.Sequential(
        [*layers, nn.Dense(int(np.prod(shape[:2])) * 2, 3, "softmax")],
        "softmax_cross_entropy",
        in_shape=IN_SHAPE,
    )
    rng = np.random.default_rng(seed)
    params = net.init(seed=seed % 1000)
    trace = net.forward(params, rng.standard_normal((B, *IN_SHAPE)))
    tangent = [{k: rng.standard_normal(v.shape) for k, v in p.items()} for p in params]
    V = rng.standard_normal((B, 3))
    forward = net.jvp(params, trace, tangent) * V
    pulled = net.vjp(params, trace, V).as_params()
    products = [pulled[m][k] * tangent[m][k] for m in net.weight_layers for k in ("W", "b")]
    scale = np.abs(forward).sum() + sum(np.abs(p).sum() for p in products)
    assert abs(forward.sum() - sum(p.sum() for p in products)) <= 1e-10 * scale
    without_kernel = [dict(t, W=np.zeros_like(t["W"])) if "W" in t else t for t in tangent]
    without_kernel[-1] = tangent[-1]  # only the conv kernels' part dropped
    moved = (net.jvp(params, trace, without_kernel) * V).sum()
    assert abs(moved - sum(p.sum() for p in products)) > 1e-6 * scale


def test_gauss_newton_block_refuses_a_layer_without_weights_in_one_line() -> None:
    net = cnn(1, "same", "tanh")
    params, x = net.init(seed=0), np.ones((2, *IN_SHAPE))
    for layer, message in ((1, r"^layer: layer 1 \(AvgPool2D.* has no weights$"), (9, r"^layer: expected")):
        try:
            gauss_newton_block(net, params, x, layer)
        except ValueError as exc:
            assert re.match(message, str(exc)) and "\n" not in str(exc), exc
        else:
            raise AssertionError(f"layer {layer} was taken")
    n = net.layers[4].stack(params[4]).size  # negative control: the dense layer is taken
    assert gauss_newton_block(net, params, x, 4).shape == (n, n)
