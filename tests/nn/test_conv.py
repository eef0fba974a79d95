"""Convolutions as dense layers on patches, and pooling: im2col against explicit loops over output
positions, col2im as its adjoint, every backward pass by the dot-product test and finite
differences, "same" padding as TensorFlow and Flax define it, and the bad inputs refused in one line.

Tolerances: im2col and the pooling forward passes copy or compare values, so they are exact; a
convolution's products are sums of ``kh*kw*c_in + 1`` terms in another order than the loop's, so
they agree to ``(fan_in + 1) eps`` of ``|P||W| + |b|`` elementwise; the dot-product test's own
bound (``check_vjp``, rtol 1e-6) is loose next to float64 rounding, since every map here is
linear in what is perturbed except max pooling, whose inputs are drawn 0.01 apart so that a
perturbation of 1e-6 never changes a window's maximum.  Each check has a negative control.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import nn
from locograd.testing import check_vjp, numerical_grad, relative_error

from ..rounding import same_bits
from ..strategies import seeds

EPS = np.finfo(np.float64).eps


@st.composite
def convolutions(draw: st.DrawFn) -> tuple[nn.Conv2D, np.ndarray, dict[str, np.ndarray]]:
    """A Conv2D (strides 1-2, paddings 0-2 or "same", 1x1 and non-square kernels, c_in 1-3), an
    input batch (B 1-4) it fits, and Glorot parameters with a random bias."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from([0, 1, 2, (1, 0), "same"]))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W, B = draw(st.integers(3, 6)), draw(st.integers(3, 6)), draw(st.integers(1, 4))
    conv = nn.Conv2D(
        c_in,
        c_out,
        (kh, kw),
        stride=stride,
        padding=padding,
        transfer=draw(st.sampled_from(["identity", "tanh", "sigmoid"])),
    )
    rng = np.random.default_rng(draw(seeds()))
    params, _ = conv.init(rng, (H, W, c_in), np.float64, None)
    params["b"] = rng.standard_normal(c_out)
    return conv, rng.standard_normal((B, H, W, c_in)), params


def loop_patches(x: np.ndarray, conv: nn.Conv2D) -> np.ndarray:
    """im2col by explicit loops over examples, output positions and the kernel: the reference."""
    B, H, W, C = x.shape
    top, bottom, left, right = conv.pads(H, W)
    padded = np.zeros((B, H + top + bottom, W + left + right, C))
    padded[:, top : top + H, left : left + W, :] = x
    (kh, kw), (sh, sw) = conv.kernel, conv.stride
    Ho, Wo, _ = conv.output_shape((H, W, C))
    rows = []
    for n in range(B):
        for u in range(Ho):
            for v in range(Wo):
                rows.append(
                    [
                        padded[n, sh * u + i, sw * v + j, c]
                        for i in range(kh)
                        for j in range(kw)
                        for c in range(C)
                    ]
                )
    return np.array(rows).reshape(B * Ho * Wo, kh * kw * C)


@given(case=convolutions())
def test_im2col_gathers_every_patch_in_the_kernels_order(case) -> None:
    conv, x, _ = case
    patches = conv.patches(x)
    assert same_bits(patches, loop_patches(x, conv))  # copies of the same values: exact
    rolled = np.roll(patches, 1, axis=1)  # negative control: the columns in another order
    assert not same_bits(rolled, patches) or (patches == patches[:, :1]).all()


@given(case=convolutions(), seed=seeds())
def test_col2im_is_the_adjoint_of_im2col(case, seed: int) -> None:
    conv, x, _ = case
    rng = np.random.default_rng(seed)
    P = rng.standard_normal(conv.patches(x).shape)
    back = nn.col2im(P, x.shape, conv.kernel, conv.stride, conv.pads(*x.shape[1:3]))
    left, right = float((conv.patches(x) * P).sum()), float((x * back).sum())
    scale = float((np.abs(conv.patches(x)) * np.abs(P)).sum())
    assert abs(left - right) <= 4 * P.size * EPS * scale  # two sums of the same products, reordered
    assert (
        abs(left - float((x * (2 * back)).sum())) > 4 * P.size * EPS * scale or abs(left) < 1e-12
    )  # negative control


@given(case=convolutions())
def test_conv_forward_is_the_dense_product_on_patches(case) -> None:
    conv, x, params = case
    y, cache = conv.forward(params, x)
    P = loop_patches(x, conv)
    Wm = params["W"].reshape(-1, conv.c_out)
    reference = (P @ Wm + params["b"]).reshape(cache.pre.shape)
    bound = (conv.fan_in + 1) * EPS * (np.abs(P) @ np.abs(Wm) + np.abs(params["b"])).reshape(cache.pre.shape)
    assert (np.abs(cache.pre - reference) <= bound).all()
    assert same_bits(y, conv.transfer.f(cache.pre))
    flipped = (P @ Wm[::-1] + params["b"]).reshape(cache.pre.shape)  # negative control: a wrong patch order
    assert conv.fan_in == 1 or not (np.abs(cache.pre - flipped) <= bound).all() or np.allclose(Wm, Wm[::-1])
    assert conv.linear(x, params).shape == (math.prod(cache.pre.shape[:3]), conv.c_out)
    assert same_bits(conv.unrows(conv.rows(cache.pre), x), cache.pre)
    assert same_bits(conv.unstack(conv.stack(params)), params)


@given(case=convolutions())
def test_conv_backward_by_the_dot_product_test_and_finite_differences(case) -> None:
    conv, x, params = case
    linear = nn.Conv2D(conv.c_in, conv.c_out, conv.kernel, conv.stride, conv.padding)  # f = identity: Y = A
    check_vjp(
        lambda z: linear.forward(params, z)[0],
        lambda z, u: linear.backward(params, linear.forward(params, z)[1], u)[0],
        x,
    )
    check_vjp(
        lambda p: linear.forward(p, x)[0],
        lambda p, u: linear.backward(p, linear.forward(p, x)[1], u)[1],
        params,
    )
    u = np.random.default_rng(1).standard_normal(conv.forward(params, x)[0].shape)

    def objective(tree: dict[str, np.ndarray]) -> float:
        return float((conv.forward({"W": tree["W"], "b": tree["b"]}, tree["x"])[0] * u).sum())

    point = {"W": params["W"], "b": params["b"], "x": x}
    g_x, grads = conv.backward(params, conv.forward(params, x)[1], u)
    hand = {"W": grads["W"], "b": grads["b"], "x": g_x}
    assert relative_error(hand, numerical_grad(objective, point), floor=1e-6) <= 1e-6
    wrong = {**hand, "W": grads["W"][::-1]}  # negative control: the kernel's rows in another order
    assert (
        conv.kernel[0] == 1 or relative_error(wrong, hand) > 1e-6 or np.allclose(grads["W"], grads["W"][::-1])
    )


@pytest.mark.parametrize(
    "pool", [nn.MaxPool2D(2), nn.MaxPool2D((2, 3), stride=1), nn.AvgPool2D(2), nn.AvgPool2D(3, stride=2)]
)
@given(seed=seeds(), B=st.integers(1, 3), C=st.integers(1, 3))
def test_pooling_backward_by_the_dot_product_test(pool, seed: int, B: int, C: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.permutation(B * 6 * 7 * C).reshape(B, 6, 7, C) * 0.01  # distinct values 0.01 apart: no ties
    check_vjp(
        lambda z: pool.forward({}, z)[0], lambda z, u: pool.backward({}, pool.forward({}, z)[1], u)[0], x
    )
    y, cache = pool.forward({}, x)
    windows = nn.im2col(x, pool.size, pool.stride, (0, 0, 0, 0)).reshape(*y.shape[:3], -1, C)
    expected = windows.max(axis=3) if isinstance(pool, nn.MaxPool2D) else windows.mean(axis=3)
    assert same_bits(y, expected)
    g, _ = pool.backward({}, cache, np.ones_like(y))
    assert g.sum() == pytest.approx(y.size)  # every output's gradient lands somewhere, once
    with pytest.raises(AssertionError):  # negative control: the dot-product test catches a wrong VJP
        check_vjp(
            lambda z: pool.forward({}, z)[0],
            lambda z, u: 2 * pool.backward({}, pool.forward({}, z)[1], u)[0],
            x,
        )


@given(case=convolutions(), seed=seeds())
def test_the_input_gradient_per_kernel_offset_is_col2im_of_the_patch_gradients(case, seed: int) -> None:
    """``Conv2D._input_grad`` adds each kernel offset's G W[i, j]^T onto the pixels it read: the same sums
    as col2im(G W_mat^T) in another grouping, so equal to (kh kw + c_out) eps of |G||W| summed likewise.
    Negative control: the kernel's offsets reversed."""
    conv, x, params = case
    Ho, Wo, _ = conv.output_shape(x.shape[1:])
    G = np.random.default_rng(seed).standard_normal((x.shape[0] * Ho * Wo, conv.c_out))
    pads = conv.pads(*x.shape[1:3])
    got = conv._input_grad(params, G, x.shape)
    want = nn.col2im(G @ conv.weight_matrix(params).T, x.shape, conv.kernel, conv.stride, pads)
    scale = nn.col2im(
        np.abs(G) @ np.abs(conv.weight_matrix(params)).T, x.shape, conv.kernel, conv.stride, pads
    )
    n = conv.kernel[0] * conv.kernel[1] + conv.c_out
    assert (np.abs(got - want) <= n * EPS * scale).all()
    wrong = {"W": np.ascontiguousarray(params["W"][::-1, ::-1]), "b": params["b"]}
    moved = conv._input_grad(wrong, G, x.shape)
    assert conv.kernel == (1, 1) or np.abs(moved - want).max() > 1e-6 * max(np.abs(want).max(), 1e-300)


@given(
    seed=seeds(),
    size=st.sampled_from([2, 3, (2, 3), (1, 2)]),
    H=st.integers(3, 8),
    W=st.integers(3, 8),
    B=st.integers(1, 3),
    C=st.integers(1, 3),
)
def test_max_pooling_fast_path_equals_the_windows_bit_for_bit(
    seed: int, size, H: int, W: int, B: int, C: int
) -> None:
    """Non-overlapping windows (stride = size, rows and columns left over when the size does not divide
    the image) take the fast path, a maximum over a view and a gradient written in place: the same bits as
    the reference through im2col, argmax and col2im, ties included (integers from -2 to 2, and relu's zeros).
    Negative control: the last largest entry of a tied window instead of the first is another gradient."""
    from locograd.nn.conv import _Pool2D

    pool = nn.MaxPool2D(size)
    if pool.size[0] > H or pool.size[1] > W:
        return
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.integers(-2, 3, (B, H, W, C)).astype(np.float64), 0.0)
    y, cache = pool.forward({}, x)
    y_ref, cache_ref = _Pool2D._forward(pool, {}, x)
    assert same_bits(y, y_ref)
    g = rng.standard_normal(y.shape)
    g_x, _ = pool.backward({}, cache, g)
    g_ref, _ = _Pool2D._backward(pool, {}, cache_ref, g)
    assert same_bits(g_x, g_ref)
    flipped = x[:, ::-1, ::-1, :]  # the reversed image: a tie's first entry is the original's last
    g_last = _Pool2D._backward(pool, {}, _Pool2D._forward(pool, {}, flipped)[1], g[:, ::-1, ::-1, :])[0][
        :, ::-1, ::-1, :
    ]
    tied = (pool._tiles(x) == y[:, :, None, :, None, :]).sum(axis=(2, 4)) > 1
    Ho, Wo = y.shape[1:3]
    full = (Ho * pool.size[0], Wo * pool.size[1]) == (H, W)
    assert not (tied.any() and full) or not same_bits(g_x, g_last)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [(5, 3, 1, (1, 1)), (6, 2, 2, (0, 0)), (5, 2, 2, (0, 1)), (7, 4, 3, (1, 2)), (4, 1, 2, (0, 0))],
)
def test_same_padding_follows_tensorflow(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    """``ceil(H/s)`` output rows; an odd extra row of zeros at the bottom (and column at the right)."""
    conv = nn.Conv2D(1, 1, kernel, stride=stride, padding="same")
    assert conv.output_shape((size, size, 1))[:2] == (math.ceil(size / stride),) * 2
    assert conv.pads(size, size) == (*pads, *pads)


def test_a_cnn_learns_through_sequential_by_finite_differences() -> None:
    net = nn.Sequential(
        [
            nn.Conv2D(1, 2, 3, padding="same", transfer="tanh"),
            nn.MaxPool2D(2),
            nn.Conv2D(2, 3, (2, 1), stride=2, transfer="relu"),
            nn.AvgPool2D((1, 2)),
            nn.Flatten(),
            nn.Dense(6, 3, "softmax"),
        ],
        "softmax_cross_entropy",
        in_shape=(8, 8, 1),
    )
    assert net.shapes == [(8, 8, 1), (8, 8, 2), (4, 4, 2), (2, 2, 3), (2, 1, 3), (6,), (3,)]
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 8, 8, 1)), np.array([0, 2, 1])
    params = net.init(seed=1)
    params[2]["b"] = params[2]["b"] + 0.5  # relu units away from their kink
    loss, grads = net.value_and_grad(params, x, y)
    assert loss == pytest.approx(net.loss(params, x, y))
    numeric = numerical_grad(lambda p: net.loss(p, x, y), params)
    assert relative_error(grads, numeric, floor=1e-7) <= 1e-5
    assert [set(g) for g in grads] == [{"W", "b"}, set(), {"W", "b"}, set(), set(), {"W", "b"}]


BAD = [
    (
        lambda: nn.Conv2D(1, 1, 5).output_shape((3, 3, 1)),
        ValueError,
        r"kernel \(5, 5\) is larger than the padded input \(3, 3\)",
    ),
    (lambda: nn.Conv2D(1, 1, 3, stride=0), ValueError, r"^stride: expected an integer >= 1, got 0$"),
    (lambda: nn.Conv2D(1, 1, 3, padding=-1), ValueError, r"^padding: expected an integer >= 0, got -1$"),
    (
        lambda: nn.Conv2D(1, 1, 3, padding="valid"),
        ValueError,
        r"^padding: expected an integer >= 0, a pair of them or 'same', got 'valid'$",
    ),
    (
        lambda: nn.Sequential(
            [nn.Conv2D(3, 4, 3), nn.Conv2D(5, 2, 1), nn.Flatten(), nn.Dense(8, 2, "softmax")],
            "softmax_cross_entropy",
            in_shape=(4, 4, 3),
        ),
        ValueError,
        r"^layers\[1\]: Conv2D\(5, 2, .* does not take the output of shape \(2, 2, 4\) of layer 0",
    ),
    (
        lambda: nn.MaxPool2D(4).output_shape((3, 5, 1)),
        ValueError,
        r"window \(4, 4\) does not fit images of \(3, 5\)",
    ),
    (
        lambda: nn.Conv2D(3, 2, 1).forward(
            nn.Conv2D(3, 2, 1).init(np.random.default_rng(0), (4, 4, 3), np.float64, None)[0],
            np.zeros((2, 3, 4, 4)),
        ),
        ValueError,
        r"expected 3 channels in the last axis .* got shape \(2, 3, 4, 4\) \(the layout is NHWC: channels last\)",
    ),
    (
        lambda: nn.Conv2D(1, 2, 3).forward(
            nn.Conv2D(1, 2, 3).init(np.random.default_rng(0), (5, 5, 1), np.float64, None)[0],
            np.zeros((2, 25)),
        ),
        ValueError,
        r"^x: expected images \(B, H, W, C\) \(NHWC\) for Conv2D\(1, 2, .*got shape \(2, 25\)$",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD)
def test_bad_convolutions_are_refused_in_one_line(call, error, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_cnn_refuses_a_flat_batch_naming_its_first_layer() -> None:
    net = nn.Sequential(
        [nn.Conv2D(1, 2, 3), nn.Flatten(), nn.Dense(18, 2, "softmax")],
        "softmax_cross_entropy",
        in_shape=(5, 5, 1),
    )
    params = net.init()
    with pytest.raises(ValueError, match=r"^x: expected images \(B, H, W, C\) \(NHWC\) for layer 0 \(Conv2D"):
        net.forward(params, np.zeros((2, 25)))
    assert net.forward(params, np.zeros((2, 5, 5, 1))).output.shape == (2, 2)  # negative control
    assert isinstance(lg.nn.Conv2D(1, 1, 1), nn.WeightLayer)


def test_the_conv_layers_and_a_cnn_locoprop_step_on_every_backend(bk) -> None:
    """The same code on NumPy and CuPy (im2col on the device): forward, backward and one LocoProp-M
    step of a small CNN agree with NumPy's to 1e-10 relative in float64 (BLAS and cuBLAS sum in
    other orders; a wrong kernel would be off by order one)."""
    from locograd import optim
    from locograd.locoprop import GD, M

    net = nn.Sequential(
        [
            nn.Conv2D(2, 3, 3, stride=2, padding="same", transfer="tanh"),
            nn.MaxPool2D(2),
            nn.AvgPool2D(1),
            nn.Flatten(),
            nn.Dense(12, 3, "softmax"),
        ],
        "softmax_cross_entropy",
        in_shape=(8, 8, 2),
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 8, 8, 2)), np.array([0, 1, 2, 1])
    params = net.init(seed=0)
    on_device = [{k: bk.asarray(v) for k, v in p.items()} for p in params]
    X, Y = bk.asarray(x), bk.asarray(y)
    loss, grads = net.value_and_grad(on_device, X, Y)
    ref_loss, ref_grads = net.value_and_grad(params, x, y)
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert relative_error([{k: bk.numpy(v) for k, v in g.items()} for g in grads], ref_grads) <= 1e-10
    opt = optim.LocoProp(net, M(gamma=1.0), GD(steps=3, inner=optim.adam(1e-3)))
    new, _, _ = opt.step(on_device, X, Y, opt.init(on_device))
    ref, _, _ = opt.step(params, x, y, opt.init(params))
    assert relative_error([{k: bk.numpy(v) for k, v in p.items()} for p in new], ref) <= 1e-10


def test_saved_patches_of_another_shape_are_refused_in_one_line() -> None:
    """A cache, a trace or ``for_inputs`` whose saved patches are not what the forward pass saves for
    those inputs: refused naming the part, before any product (never a silent wrong gradient)."""
    conv = nn.Conv2D(1, 2, 3, padding="same")
    params, _ = conv.init(np.random.default_rng(0), (5, 5, 1), np.float64, None)
    x = np.ones((2, 5, 5, 1))
    y, cache = conv.forward(params, x)
    assert cache.saved.shape == (50, 9)
    wrong = cache._replace(saved=cache.saved[:-1])
    with pytest.raises(
        ValueError,
        match=r"^cache.saved: expected shape \(50, 9\) and dtype float64 .* got \(49, 9\) float64$",
    ):
        conv.backward(params, wrong, np.ones_like(y))
    with pytest.raises(ValueError, match=r"^saved: expected shape \(50, 9\)"):
        conv.for_inputs(x, cache.saved[:, :-1])
    net = nn.Sequential(
        [conv, nn.MaxPool2D(2), nn.Flatten(), nn.Dense(8, 2, "softmax")],
        "softmax_cross_entropy",
        in_shape=(5, 5, 1),
    )
    params = net.init(seed=0)
    trace = net.forward(params, x)
    for m, bad in ((0, trace.saved[0][:, :3]), (1, trace.saved[0])):
        saved = list(trace.saved)
        saved[m] = bad
        with pytest.raises(ValueError, match=rf"^trace.saved\[{m}\]: expected "):
            net.backward(params, trace._replace(saved=saved), np.array([0, 1]))
    conv.backward(params[0], cache, np.ones_like(y))  # negative control: the forward's own cache is taken
