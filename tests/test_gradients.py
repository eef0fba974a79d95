"""Hand-written backward passes vs central differences vs the tape (float64), and dtype preservation.

Tolerances: central differences with h = 1e-6 on O(1) float64 quantities err by
~1e-10 relative, so hand vs numerical is held to 1e-6 (the project's gradient
tolerance); hand vs tape are two exact formulas and agree to rounding, held to
1e-10 relative (the foundation issue's bar).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import autodiff as ad
from locograd import losses, nn, transfer
from locograd._fast.passes import backprop_loss_and_grads
from locograd.testing import check_vjp, numerical_grad, relative_error

from .strategies import HIDDEN, architectures, arrays, seeds

NUMERIC_RTOL = 1e-6
TAPE_RTOL = 1e-10
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
H = 1e-6  # numerical_grad's step


def quotient_floor(terms: float, count: int) -> float:
    """relative_error floor covering the rounding of central differences of a sum of ``count`` terms.

    The value sums ``count`` terms of total size ``terms`` (their rounding sources included), so each
    evaluation errs by <= (count + 16) u terms and the quotient by that over h; the truncation
    h^2 |third derivative| / 6 is ~1e-12 for these O(1) functions.  Never below the old 1e-3.
    """
    return max(1e-3, 2 * (count + 16) * UNIT_ROUNDOFF * terms / H / NUMERIC_RTOL)


def tape_transfer(name: str, a: Any) -> ad.Tensor:
    return getattr(ad, name)(a)


def tape_loss(name: str, a: Any, y: Any) -> ad.Tensor:
    """Per-example losses written with tape primitives, batch mean."""
    if name == "squared_error":
        per = ((a - y) ** 2).sum(axis=1) * 0.5
    elif name == "sigmoid_cross_entropy":
        per = (ad.softplus(a) - y * a).sum(axis=1)
    else:
        per = ad.logsumexp(a, axis=-1) - (y * a).sum(axis=1)
    return per.mean()


def random_targets(loss: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if loss == "squared_error":
        return rng.standard_normal(shape)
    if loss == "sigmoid_cross_entropy":
        return rng.random(shape)
    p = rng.random(shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", HIDDEN)
@given(B=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), seed=seeds())
def test_dense_layer_backward(bk, name: str, B: int, d_in: int, d_out: int, seed: int) -> None:
    """Dense.forward, pre_activation_grad and backward_from_pre vs numerical vs tape, on sum(u * Y)."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((d_in, d_out)), "b": rng.standard_normal(d_out)}
    x = rng.standard_normal((B, d_in))
    if name in ("relu", "leaky_relu"):  # keep pre-activations off the kink
        params["b"] = params["b"] + np.sign(params["b"]) * 0.1
        x = x * 0.01
    u = rng.standard_normal((B, d_out))
    t = transfer.get(name)
    P = {k: bk.asarray(v) for k, v in params.items()}
    X, U = bk.asarray(x), bk.asarray(u)

    layer = nn.Dense(d_in, d_out, t)
    _, cache = layer.forward(P, X)
    g_pre = layer.pre_activation_grad(cache, U)
    g_x, grads = layer.backward_from_pre(P, cache, g_pre)
    assert grads is not None
    hand = {"W": grads["W"], "b": grads["b"], "x": g_x}
    g_x_y, grads_y = layer.backward(P, cache, U)  # from dL/dY: the same operations, bit for bit
    assert bool((g_x_y == g_x).all()) and all(bool((grads_y[k] == grads[k]).all()) for k in grads)

    def objective(p: dict[str, np.ndarray]) -> float:
        _, c = layer.forward({"W": p["W"], "b": p["b"]}, p["x"])
        return float((c.post * U).sum())

    point = {"W": P["W"], "b": P["b"], "x": X}
    numeric = numerical_grad(objective, point)
    tape = ad.grad(lambda p: (tape_transfer(name, p["x"] @ p["W"] + p["b"]) * U).sum())(point)
    # sum(U * f(A)) rounds by its terms |U f(A)|, and A = xW + b by d_in ulps of |x||W| + |b| (f' <= 1);
    # a saturated unit (f' ~ 0, f ~ 1) makes that large next to a tiny gradient: a floor from the terms
    pre = np.abs(x) @ np.abs(params["W"]) + np.abs(params["b"])
    terms = float((np.abs(u) * (np.abs(bk.numpy(cache.post)) + (d_in + 1) * pre)).sum())
    assert relative_error(hand, numeric, floor=quotient_floor(terms, B * d_out)) <= NUMERIC_RTOL
    assert relative_error(hand, tape) <= TAPE_RTOL


@pytest.mark.parametrize("loss", losses.NAMES)
@given(B=st.integers(1, 8), d=st.integers(2, 6), seed=seeds(), a=arrays((8, 6), bound=5.0))
def test_loss_gradient(bk, loss: str, B: int, d: int, seed: int, a: np.ndarray) -> None:
    rng = np.random.default_rng(seed)
    a = a[:B, :d]
    y = random_targets(loss, (B, d), rng)
    fn = losses.get(loss)
    A, Y = bk.asarray(a), bk.asarray(y)
    value, g = fn.mean_value_and_grad(A, Y)
    numeric = numerical_grad(lambda z: float(fn.per_example(z, Y).mean()), A)
    tape_value, tape = ad.value_and_grad(lambda z: tape_loss(loss, z, Y))(A)
    # the mean of F(a) - y.a (+ y^2/2) rounds by its terms' size, which may be far above its value
    terms = float((np.abs(fn.transfer.potential(a)).sum() + (np.abs(y) * (np.abs(a) + np.abs(y))).sum()) / B)
    assert relative_error(g, numeric, floor=quotient_floor(terms, B * d)) <= NUMERIC_RTOL
    assert relative_error(g, tape) <= TAPE_RTOL
    assert abs(float(value) - float(tape_value)) <= 1e-12 * (1 + abs(float(value)))


@pytest.mark.parametrize("loss", losses.NAMES)
@given(a=arrays((4, 3), bound=5.0), seed=seeds())
def test_loss_is_matching_loss_of_output_transfer(loss: str, a: np.ndarray, seed: int) -> None:
    """loss(a, y) = F(a) - y.a + [F*(y) for the squared error]: LocoProp's matching loss at the output."""
    y = random_targets(loss, a.shape, np.random.default_rng(seed))
    fn = losses.get(loss)
    expected = lg.bregman.matching_loss(fn.transfer, a, y)
    if loss == "squared_error":
        expected = expected + fn.transfer.conjugate(y)
    np.testing.assert_allclose(fn.per_example(a, y), expected, rtol=1e-12, atol=1e-12)


def test_softmax_cross_entropy_accepts_integer_labels() -> None:
    a = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    fn = losses.get("softmax_cross_entropy")
    np.testing.assert_array_equal(fn.per_example(a, np.array([2, 0])), fn.per_example(a, np.eye(3)[[2, 0]]))


@given(arch=architectures(), B=st.integers(1, 32), seed=seeds(), glorot_bias=st.booleans())
def test_mlp_gradients_hand_vs_tape_vs_check_vjp(bk, arch, B: int, seed: int, glorot_bias: bool) -> None:
    """Random architectures (depth 1-5, widths 1-16, every hidden transfer and loss, batch 1-32)."""
    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    with lg.backend.default_device("gpu" if bk.name == "cupy" else "cpu"):
        params = net.init(seed=seed % 1000, bias="glorot" if glorot_bias else "zeros")
    x = bk.asarray(rng.standard_normal((B, sizes[0])))
    y = bk.asarray(random_targets(loss, (B, sizes[-1]), rng))

    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    hand = grads.as_params()

    def tape_objective(p: list[dict[str, Any]]) -> ad.Tensor:
        h: Any = x
        for layer, t in zip(p, net.transfers, strict=True):
            a = h @ layer["W"] + layer["b"]
            h = tape_transfer(t.name, a)
        return tape_loss(loss, a, y)

    value, tape = ad.value_and_grad(tape_objective)(params)
    assert relative_error(hand, tape) <= TAPE_RTOL
    assert abs(float(grads.loss) - float(value)) <= 1e-12 * (1 + abs(float(value)))
    # relu/leaky_relu are not differentiable at 0, and zero biases put pre-activations exactly
    # there (relu(0) feeds 0 forward): differences along a direction are meaningless at a kink.
    kink_gap = min(
        (
            float(abs(bk.numpy(a)).min())
            for a, t in zip(trace.pre, net.transfers, strict=True)
            if t.name in ("relu", "leaky_relu")
        ),
        default=np.inf,
    )
    if kink_gap < 1e-4:
        return
    check_vjp(
        lambda p: bk.xp.asarray(net.loss(p, x, y)),
        lambda p, u: [{"W": u * g["W"], "b": u * g["b"]} for g in hand],
        params,
        rtol=NUMERIC_RTOL,
        seed=seed,
    )


@given(arch=architectures(max_depth=3, max_width=6), seed=seeds())
def test_mlp_pre_activation_gradients_match_tape(arch, seed: int) -> None:
    """grads.pre[m] = dL/dA_m, checked by differentiating the tape w.r.t. an additive shift of A_m."""
    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=1)
    x = rng.standard_normal((5, sizes[0]))
    y = random_targets(loss, (5, sizes[-1]), rng)
    grads = net.backward(params, net.forward(params, x), y)
    shifts = [np.zeros((5, d)) for d in sizes[1:]]

    def shifted(s: list[Any]) -> ad.Tensor:
        h: Any = x
        for layer, t, shift in zip(params, net.transfers, s, strict=True):
            a = h @ layer["W"] + layer["b"] + shift
            h = tape_transfer(t.name, a)
        return tape_loss(loss, a, y)

    tape = ad.grad(shifted)(shifts)
    assert relative_error(grads.pre, tape) <= TAPE_RTOL


def test_backward_without_weight_grads_returns_same_pre() -> None:
    net = lg.MLP([3, 4, 2], ["tanh", "identity"], "squared_error")
    params = net.init()
    x, y = np.ones((2, 3)), np.zeros((2, 2))
    trace = net.forward(params, x)
    full, lean = net.backward(params, trace, y), net.backward(params, trace, y, weight_grads=False)
    assert lean.W == [None, None] and lean.b == [None, None]
    for g1, g2 in zip(full.pre, lean.pre, strict=True):
        np.testing.assert_array_equal(g1, g2)


def _equal_bit_for_bit(value: Any, lean: list[dict[str, Any]], full: lg.Grads) -> bool:
    return bool(value == full.loss) and all(
        bool((mine["W"] == want["W"]).all()) and bool((mine["b"] == want["b"]).all())
        for mine, want in zip(lean, full.as_params(), strict=True)
    )


@given(arch=architectures(max_depth=4, max_width=8), seed=seeds(), B=st.integers(1, 9))
def test_lean_weight_grads_equal_forward_then_backward_bit_for_bit(
    bk, dtype, arch, seed: int, B: int
) -> None:
    """The private fused pass drops what BackProp does not need, computing the rest by the same operations.

    Negative control: the same comparison against the reference pass with one parameter moved
    fails, so the equality is not vacuous.
    """
    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    params = net.init(
        seed=seed % 89, dtype=dtype, bias="glorot", device="gpu" if bk.name == "cupy" else "cpu"
    )
    x = bk.asarray(rng.standard_normal((B, sizes[0])).astype(dtype))
    y = bk.asarray(random_targets(loss, (B, sizes[-1]), rng).astype(dtype))
    value, lean = backprop_loss_and_grads(net, params, x, y)
    assert _equal_bit_for_bit(value, lean, net.backward(params, net.forward(params, x), y))
    # dL/db_M[0] = mean_n (f(A_n)_0 - y_n0) moves by -0.5/B when y_00 moves by 0.5, for every
    # output transfer and saturation (before, the control moved b_M[0], and a float32 sigmoid
    # saturated at 1 did not move with it: the control could fail on a sound pass)
    moved = y.copy()
    moved[0, 0] += 0.5
    assert not _equal_bit_for_bit(value, lean, net.backward(params, net.forward(params, x), moved))


def test_value_and_grad_returns_the_gradient_in_the_params_structure() -> None:
    """Like jax.value_and_grad of a loss of params: (float loss, [{"W": dL/dW_m, "b": dL/db_m}, ...])."""
    net = lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=2, bias="glorot")
    x = np.random.default_rng(2).random((5, 3))
    value, grads = net.value_and_grad(params, x, x[:, :2])
    full = net.backward(params, net.forward(params, x), x[:, :2])
    assert type(value) is float and value == float(full.loss)
    assert isinstance(grads, list) and [sorted(g) for g in grads] == [["W", "b"], ["W", "b"]]
    for mine, want, p in zip(grads, full.as_params(), params, strict=True):
        assert mine["W"].shape == p["W"].shape and mine["b"].shape == p["b"].shape
        np.testing.assert_array_equal(mine["W"], want["W"])
        np.testing.assert_array_equal(mine["b"], want["b"])


def test_vjp_from_output_needs_the_derivative_written_through_the_output() -> None:
    a = np.linspace(-3, 3, 7)
    g = np.cos(a)
    tanh = transfer.get("tanh")
    np.testing.assert_array_equal(tanh.vjp_from_output(tanh.f(a), g), tanh.vjp(a, g, tanh.f(a)))
    with pytest.raises(ValueError, match="transfer 'sigmoid': f' is not written through the output"):
        transfer.get("sigmoid").vjp_from_output(a, g)


@pytest.mark.parametrize("loss", losses.NAMES)
def test_dtype_preserved_through_net(bk, dtype, loss: str) -> None:
    out = {
        "squared_error": "identity",
        "sigmoid_cross_entropy": "sigmoid",
        "softmax_cross_entropy": "softmax",
    }[loss]
    net = lg.MLP([3, 4, 5, 2], ["tanh", "leaky_relu", out], loss)
    with lg.backend.default_device("gpu" if bk.name == "cupy" else "cpu"):
        params = net.init(dtype=dtype)
    x = bk.asarray(np.ones((2, 3)), dtype=dtype)
    y = bk.asarray(np.full((2, 2), 0.5), dtype=dtype)
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    arrays_out = [*trace.pre, *trace.post, *grads.W, *grads.b, *grads.pre, grads.loss]
    assert all(a.dtype == dtype for a in arrays_out)
    tape = ad.grad(lambda z: tape_loss(loss, z, y))(trace.pre[-1])
    assert tape.dtype == dtype


def test_init_glorot_ranges_and_determinism() -> None:
    net = lg.MLP([784, 1000, 30], ["tanh", "identity"], "squared_error")
    p = net.init(seed=3, bias="glorot", dtype=np.float32)
    assert p[0]["W"].shape == (784, 1000) and p[0]["b"].shape == (1000,)
    assert np.abs(p[0]["W"]).max() <= np.sqrt(6 / 1784) and np.abs(p[0]["W"]).max() > 0.9 * np.sqrt(6 / 1784)
    assert np.abs(p[1]["b"]).max() <= np.sqrt(3 / 30) and np.abs(p[1]["b"]).max() > 0.5 * np.sqrt(3 / 30)
    assert p[0]["W"].dtype == np.float32
    q = net.init(seed=3, bias="glorot", dtype=np.float32)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(p, q, strict=True) for k in ("W", "b"))
    assert np.all(net.init(seed=3)[0]["b"] == 0)
