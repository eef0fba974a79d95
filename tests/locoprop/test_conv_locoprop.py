"""LocoProp on convolutions, with no convolution-specific solver code: a conv layer's local
problem is least squares (S) or its matching loss (M) on image patches, through its linear view.

* The first inner step of S and of M on a CNN is rho gamma dL/dW for every conv and dense layer
  (float64; the two sides are the same products summed in another order; tolerance 1e-10
  relative, far below the O(1) error of targets built from dL/dY, the negative control).
* The S exact solution on a conv layer is the closed form, computed here from a patch covariance
  summed with explicit loops over examples and output positions (not with the library's im2col);
  negative control: the same sums with the kernel offsets reversed are another matrix.
* The M exact solve is stationary (its gradient below 1e-9 of where it started).
* Layer independence: solving the layers on two threads, largest first, gives the same numbers
  bit for bit as one by one.
* Every network optimizer, LocoProp's and the Kronecker-factored ones, lowers a CNN's loss.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from locograd import locoprop, nn
from locograd.locoprop import GD, Exact, M, S
from locograd.locoprop.objectives import norm
from locograd.testing import relative_error

from ..nn.test_conv import loop_patches
from ..rounding import same_bits
from ..strategies import seeds

IN_SHAPE = (5, 4, 2)


def cnn(stride: int, padding: int | str, hidden: str) -> nn.Sequential:
    """conv (3x2, stride, padding) -> avg pool 1 -> conv 1x1 -> flatten -> dense softmax."""
    first = nn.Conv2D(2, 3, (3, 2), stride=stride, padding=padding, transfer=hidden)
    Ho, Wo, _ = first.output_shape(IN_SHAPE)
    layers = [
        first,
        nn.AvgPool2D(1),
        nn.Conv2D(3, 2, 1, transfer=hidden),
        nn.Flatten(),
        nn.Dense(Ho * Wo * 2, 3, "softmax"),
    ]
    return nn.Sequential(layers, "softmax_cross_entropy", in_shape=IN_SHAPE)


@st.composite
def cases(draw: st.DrawFn) -> tuple[nn.Sequential, list, np.ndarray, np.ndarray]:
    net = cnn(
        draw(st.integers(1, 2)),
        draw(st.sampled_from([0, 1, "same"])),
        draw(st.sampled_from(["tanh", "sigmoid"])),
    )
    rng = np.random.default_rng(draw(seeds()))
    B = draw(st.integers(1, 4))
    params = net.init(seed=int(rng.integers(1000)))
    return net, params, rng.random((B, *IN_SHAPE)), rng.integers(0, 3, B)


@given(case=cases(), variant=st.sampled_from(["S", "M"]))
def test_the_first_inner_step_is_backprop_for_every_conv_and_dense_layer(case, variant: str) -> None:
    net, params, x, y = case
    rho, gamma = 0.05, 2.0
    settings = S(gamma=gamma) if variant == "S" else M(gamma=gamma)
    new, _ = locoprop.step(net, params, x, y, variant=settings, solver=GD(steps=1, lr=rho))
    _, grads = net.value_and_grad(params, x, y)
    for m in net.weight_layers:
        expected = {k: params[m][k] - rho * gamma * grads[m][k] for k in ("W", "b")}
        assert relative_error(new[m], expected) <= 1e-10, m
    for m in set(range(net.num_layers)) - set(net.weight_layers):
        assert new[m] == {}
    # negative control: targets from dL/dY (the post-activation gradient) are not BackProp's step
    trace = net.forward(params, x)
    full = net.backward(params, trace, y)
    m = net.weight_layers[0]
    g_y = full.pre[m] / np.maximum(net.layers[m].transfer.df(trace.pre[m]), 1e-12)  # undo f'(A)
    layer = net.layers[m]
    wrong = layer.linear_transpose(trace.inputs[m], layer.rows(g_y))
    wrong_step = {k: params[m][k] - rho * gamma * wrong[k] for k in ("W", "b")}
    assert relative_error(new[m], wrong_step) > 1e-6


def loop_covariance(x: np.ndarray, conv: nn.Conv2D, reverse: bool = False) -> np.ndarray:
    """sum over examples and output positions of x~_t x~_t^T, from the patches gathered by loops
    (``reverse``: the kernel offsets of every patch in reverse order, a wrong patch order)."""
    patches = loop_patches(x, conv)
    if reverse:
        patches = patches.reshape(len(patches), -1, conv.c_in)[:, ::-1, :].reshape(patches.shape)
    total = np.zeros((patches.shape[1] + 1,) * 2)
    for row in patches:
        augmented = np.append(row, 1.0)
        total += np.outer(augmented, augmented)
    return total


@given(case=cases(), eta=st.floats(0.1, 10.0))
def test_the_s_exact_solution_on_a_conv_layer_is_the_closed_form_on_patches(case, eta: float) -> None:
    net, params, x, y = case
    gamma = 1.5
    problems, _ = locoprop.local_problems(net, params, x, y, S(gamma=gamma, eta=eta))
    conv = net.layers[0]
    problem = problems[0]
    assert repr(problem.layer) == repr(conv) and problem.pre.shape[0] == x.shape[0] * np.prod(
        conv.output_shape(IN_SHAPE)[:2]
    )
    C = loop_covariance(x, conv)
    rhs = conv.stack(conv.linear_transpose(x, problem.offset))
    D = -np.linalg.solve(C + np.eye(C.shape[0]) / eta, rhs)
    exact = conv.stack(locoprop.solve_exact_s(problem))
    assert relative_error(exact - conv.stack(params[0]), D) <= 1e-9
    C_swapped = loop_covariance(x, conv, reverse=True)  # negative control: a wrong patch order
    D_swapped = -np.linalg.solve(C_swapped + np.eye(C.shape[0]) / eta, rhs)
    assert conv.kernel == (1, 1) or relative_error(exact - conv.stack(params[0]), D_swapped) > 1e-6


@given(case=cases())
def test_the_m_exact_solve_on_a_conv_layer_is_stationary(case) -> None:
    net, params, x, y = case
    problems, _ = locoprop.local_problems(net, params, x, y, M(gamma=1.0, eta=1.0))
    for problem in problems:
        solved, _ = locoprop.solve_exact_m(problem)
        start = float(norm(locoprop.gradient(problem, problem.anchor)))
        assert float(norm(locoprop.gradient(problem, solved))) <= 1e-9 * start or start == 0


@given(case=cases(), variant=st.sampled_from(["S", "M"]))
def test_the_layers_are_solved_independently(case, variant: str) -> None:
    net, params, x, y = case
    settings = S(gamma=3.0, eta=1.0) if variant == "S" else M(gamma=3.0, eta=1.0)
    one, _ = locoprop.step(net, params, x, y, variant=settings, solver=GD(steps=3, lr=0.01))
    two, _ = locoprop.step(net, params, x, y, variant=settings, solver=GD(steps=3, lr=0.01), workers=2)
    assert same_bits(one, two)
    exact, _ = locoprop.step(net, params, x, y, variant=settings, solver=Exact())
    assert not same_bits(exact, one)  # negative control: another solve is another result


def test_every_network_optimizer_steps_a_cnn() -> None:
    """BackProp (reference pass), LocoProp-S/M (GD with an inner optimizer, and the exact solves),
    K-FAC (fixed and adaptive step, every Fisher), FOOF and Shampoo lower a CNN's loss on a fixed batch."""
    from locograd import optim

    net = cnn(1, "same", "tanh")
    rng = np.random.default_rng(0)
    x, y = rng.random((8, *IN_SHAPE)), rng.integers(0, 3, 8)
    params = net.init(seed=0)
    start = net.loss(params, x, y)
    for opt in (
        optim.BackProp(net, optim.adam(1e-2)),
        optim.LocoProp(net, M(gamma=1.0), GD(steps=5, inner=optim.adam(1e-3))),
        optim.LocoProp(net, S(gamma=1.0, eta=1.0), Exact()),
        optim.LocoProp(net, M(gamma=1.0, eta=1.0), Exact()),
        optim.KFAC(net, lr=0.1, fisher="sampled"),
        optim.KFAC(net, lr=0.1, fisher="expected"),
        optim.KFAC(net, lr=1.0, adaptive=True),
        optim.FOOF(net, lr=0.1),
        optim.Shampoo(net, lr=0.05, grafting="adam"),
    ):
        p, state = params, opt.init(params)
        for _ in range(5):
            p, state, _ = opt.step(p, x, y, state)
        assert net.loss(p, x, y) < start, opt
        assert p[1] == {} and p[3] == {}  # the pooling and flattening layers have no parameters


def test_the_patches_are_formed_once_per_outer_step(monkeypatch) -> None:
    """LocoProp's inner steps on a conv layer are products on one patch matrix, the forward pass's: a
    step gathers as many patches with K = 10 inner steps as with K = 1."""
    from locograd import optim
    from locograd.nn import conv as conv_module

    calls = [0]
    gather = conv_module.im2col

    def counting(*args, **kwargs):
        calls[0] += 1
        return gather(*args, **kwargs)

    monkeypatch.setattr(conv_module, "im2col", counting)
    net = cnn(1, 1, "tanh")
    rng = np.random.default_rng(0)
    x, y = rng.random((4, *IN_SHAPE)), rng.integers(0, 3, 4)

    def gathered(steps: int) -> int:
        opt = optim.LocoProp(net, M(gamma=1.0), GD(steps=steps, inner=optim.sgd(1e-3)))
        params = net.init(seed=0)
        calls[0] = 0
        opt.step(params, x, y, opt.init(params))
        return calls[0]

    # only the forward pass gathers: two conv layers' patches (kept for the problems) and the pooling's windows
    assert gathered(1) == gathered(10) == 3
    # negative control: a convolution that does not keep its patches gathers them at every inner step
    monkeypatch.setattr(nn.Conv2D, "for_inputs", lambda self, inputs, saved=None: self)
    assert gathered(10) > gathered(1)
