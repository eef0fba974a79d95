"""The fused fast paths (``locograd._fast``) against their reference twins, bit for bit.

Every kernel computes each element alone, and each reduction keeps its order, so the fused,
blocked and threaded forms must give the reference's exact bits, at one and at several
elementwise threads.  The blocks are made small (``parallel.MIN_ELEMENTS``) so that the small
arrays of these tests are split as the autoencoder's are.  Each comparison has a negative
control that shows it can fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import locograd as lg
from locograd import backend, locoprop, optim, transfer
from locograd._fast import kernels, parallel
from locograd._fast.local import Workspace as LocalWorkspace
from locograd._fast.local import solve_gd_inplace
from locograd._fast.passes import Workspace, backprop_loss_and_grads
from locograd.locoprop import GD, M, S

from .rounding import same_bits

NETS = [
    (["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy"),
    (["sigmoid", "relu", "leaky_relu", "sigmoid"], "sigmoid_cross_entropy"),
    (["tanh", "sigmoid", "identity"], "squared_error"),
    (["relu", "tanh", "softmax"], "softmax_cross_entropy"),
]
THREADS = [1, 2, 3]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split arrays of a few hundred elements, so that these small tests run every block path."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 64)


def make(acts: list[str], loss: str, dtype: Any, batch: int = 37, seed: int = 0) -> tuple[Any, ...]:
    sizes = [13, 17, 11, 9, 12][: len(acts) + 1]
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=seed, dtype=dtype, bias="glorot")
    rng = np.random.default_rng(seed)
    x = rng.random((batch, sizes[0])).astype(dtype)
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, sizes[-1], batch)
    else:
        y = rng.random((batch, sizes[-1])).astype(dtype)
    return net, params, x, y


@pytest.mark.parametrize(("acts", "loss"), NETS)
@pytest.mark.parametrize("threads", THREADS)
def test_the_fused_pass_is_forward_plus_backward_bit_for_bit(acts, loss, threads: int, dtype: Any) -> None:
    """Twice in one workspace (buffers reused), then with another batch size (a new workspace)."""
    net, params, x, y = make(acts, loss, dtype)
    with backend.threads(1, elementwise=threads):
        work = None
        for batch in (37, 37, 20):
            xb, yb = x[:batch], y[:batch]
            ref = net.backward(params, net.forward(params, xb), yb)
            work = Workspace.for_batch(net, xb, params[0]["W"].dtype, work)
            loss_value, grads = backprop_loss_and_grads(net, params, xb, yb, work)
            assert same_bits(np.asarray(loss_value), np.asarray(ref.loss))
            assert same_bits(grads, [{"W": w, "b": b} for w, b in zip(ref.W, ref.b, strict=True)])


def test_the_fused_pass_comparison_can_fail(dtype: Any) -> None:
    """Negative control: one bias entry moved by one ulp changes the bits compared above."""
    net, params, x, y = make(*NETS[0], dtype)
    ref = net.backward(params, net.forward(params, x), y)
    moved = [dict(layer) for layer in params]
    moved[-1]["b"] = moved[-1]["b"].copy()
    moved[-1]["b"][0] = np.nextafter(moved[-1]["b"][0], dtype(np.inf))
    _, grads = backprop_loss_and_grads(net, moved, x, y)
    assert not same_bits([g["b"] for g in grads], ref.b)


@pytest.mark.parametrize("name", ["identity", "tanh", "relu", "sigmoid", "leaky_relu", "softmax"])
@pytest.mark.parametrize("threads", THREADS)
def test_bias_transfer_and_its_vjp_are_the_reference_bit_for_bit(name: str, threads: int, dtype: Any) -> None:
    t = transfer.get(name)
    rng = np.random.default_rng(1)
    xw = (4 * rng.standard_normal((29, 11))).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    g = rng.standard_normal((29, 11)).astype(dtype)
    a_ref = xw + b
    y_ref = t.f(a_ref)
    vjp_ref = t.vjp(a_ref, g, y_ref)
    with backend.threads(1, elementwise=threads):
        a = xw.copy()
        y = kernels.bias_transfer(a, b, t, post=np.empty_like(a) if name in ("relu", "sigmoid") else None)
        if name in ("relu", "sigmoid"):
            assert same_bits(a, a_ref)  # the pre-activation kept beside the output
        assert same_bits(y, y_ref)
        got = kernels.transfer_vjp(g.copy(), t, a_ref if name != "tanh" else None, y_ref)
        assert same_bits(got, vjp_ref)
    assert not same_bits(kernels.transfer_vjp(2 * g, t, a_ref, y_ref), vjp_ref)  # negative control


@pytest.mark.parametrize("loss", ["sigmoid_cross_entropy", "squared_error", "softmax_cross_entropy"])
@pytest.mark.parametrize("threads", THREADS)
def test_the_fused_loss_is_the_reference_bit_for_bit(loss: str, threads: int, dtype: Any) -> None:
    fn = lg.losses.get(loss)
    rng = np.random.default_rng(2)
    a = (6 * rng.standard_normal((41, 9))).astype(dtype)
    y = rng.random((41, 9)).astype(dtype)
    value_ref, grad_ref = fn.mean_value_and_grad(a, y)
    with backend.threads(1, elementwise=threads):
        value, grad = kernels.loss_value_and_grad(fn, a.copy(), y)
        in_place = a.copy()
        value2, grad2 = kernels.loss_value_and_grad(fn, in_place, y, grad=in_place)
    assert same_bits(np.asarray(value), np.asarray(value_ref)) and same_bits(grad, grad_ref)
    assert same_bits(np.asarray(value2), np.asarray(value_ref)) and same_bits(grad2, grad_ref)
    assert not same_bits(kernels.loss_value_and_grad(fn, a, 1 - y)[1], grad_ref)  # negative control


@pytest.mark.parametrize("threads", THREADS)
def test_all_finite_is_exact(threads: int, dtype: Any) -> None:
    """NaN and infinities anywhere are found; finite values whose sum overflows are finite."""
    big = np.full(1000, np.finfo(dtype).max / 2, dtype=dtype)
    with backend.threads(1, elementwise=threads):
        assert kernels.all_finite([np.ones((30, 30), dtype), big, np.empty(0, dtype)])
        for bad in (np.nan, np.inf, -np.inf):
            for where in (0, 517, 999):
                x = np.zeros(1000, dtype)
                x[where] = bad
                assert not kernels.all_finite([np.ones(3, dtype), x])
        assert not kernels.all_finite([np.ones((4, 5), dtype)[:, ::2] * np.nan])  # a strided view


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
@pytest.mark.parametrize("threads", THREADS)
def test_update_inplace_in_chunks_is_the_pure_update(name: str, threads: int, dtype: Any) -> None:
    """The hook, split into flat chunks on threads, gives the pure update's bits (params and state)."""
    opt = optim.get(name, lr=0.05)
    _, params, _, _ = make(*NETS[0], dtype)
    rng = np.random.default_rng(3)
    state = opt.init(params)
    for _ in range(3):
        grads = [
            {k: rng.standard_normal(v.shape).astype(dtype) for k, v in layer.items()} for layer in params
        ]
        updates, want_state = opt.update(grads, state, params)
        want = optim.apply_updates(params, updates)
        mine = [{k: v.copy() for k, v in layer.items()} for layer in params]
        mine_state = lg.backend.tree_map(lambda a: a.copy() if hasattr(a, "copy") else a, state)
        with backend.threads(1, elementwise=threads):
            got_state = opt.update_inplace([dict(g) for g in grads], mine_state, mine)
        assert same_bits(mine, want) and same_bits(got_state, want_state)
        params, state = want, want_state
    assert not same_bits(mine, params[::-1])  # negative control: another tree


@pytest.mark.parametrize("variant", [S(gamma=2.0), M(gamma=2.0), M(gamma=2.0, eta=0.5)])
@pytest.mark.parametrize("inner", [None, "rmsprop_tf1", "adam"])
def test_pooled_workspaces_give_the_reference_solve_on_layer_threads(variant: Any, inner: str | None) -> None:
    """Two layers of one shape solved at once on threads take distinct pooled workspaces, step after step."""
    net = lg.MLP([12, 12, 12, 12], ["tanh", "sigmoid", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=4, bias="glorot")
    x = np.random.default_rng(4).random((33, 12))
    solver = GD(
        steps=4, lr=0.1 if inner is None else None, inner=None if inner is None else optim.get(inner, lr=0.01)
    )
    fast = optim.LocoProp(net, variant, solver, workers=2)
    state = fast.init(params)
    ref_params, ref_states = params, None if inner is None else list(state.inner)
    for _ in range(3):
        with backend.threads(1, elementwise=2):
            params, state, _ = fast.step(params, x, x, state)
        ref_params, info = locoprop.step(
            net, ref_params, x, x, variant=variant, solver=solver, inner_states=ref_states
        )
        ref_states = None if inner is None else list(info.inner_states)
        assert same_bits(params, ref_params)
    assert not same_bits(params, net.init(seed=4, bias="glorot"))  # negative control: it moved


def test_a_released_workspace_keeps_no_layer_data() -> None:
    problem = locoprop.LocalProblem.build(
        np.ones((5, 3)), np.zeros((5, 2)), None, "S", {"W": np.zeros((3, 2)), "b": np.zeros(2)}
    )
    work = LocalWorkspace.acquire(problem)
    work.release()
    assert work.problem is None
    again = LocalWorkspace.acquire(problem)
    assert again is work and again.problem is problem  # the pool gives it back for the same shapes
    again.release()
    out, _ = solve_gd_inplace(problem, GD(steps=2, lr=0.1))
    assert out["W"].shape == (3, 2)


@pytest.mark.parametrize("inner", ["sgd", "adam", "rmsprop_tf1"])
def test_backprop_with_donated_buffers_is_the_pure_step(inner: str, dtype: Any) -> None:
    """``donate=True`` writes the step into the arrays it is given; the numbers are the pure step's."""
    net, params, x, y = make(*NETS[0], dtype)
    pure = optim.BackProp(net, optim.get(inner, lr=0.01))
    donated = optim.BackProp(net, optim.get(inner, lr=0.01), donate=True)
    p1, s1 = params, pure.init(params)
    p2 = [{k: v.copy() for k, v in layer.items()} for layer in params]
    s2 = donated.init(p2)
    before = [{k: v.copy() for k, v in layer.items()} for layer in params]
    for _ in range(3):
        p1, s1, i1 = pure.step(p1, x, y, s1)
        given = p2
        p2, s2, i2 = donated.step(p2, x, y, s2)
        assert all(a["W"] is b["W"] for a, b in zip(p2, given, strict=True))  # the same arrays, written
        assert same_bits(p1, p2) and same_bits(s1, s2) and same_bits(np.asarray(i1.loss), np.asarray(i2.loss))
    assert same_bits(params, before)  # the pure optimizer never wrote into what it was given
    assert not same_bits(p1, before)  # negative control: the steps moved the parameters


def test_backprop_donate_is_a_flag() -> None:
    net = lg.MLP([3, 2, 3], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    with pytest.raises(ValueError, match=r"^donate: expected True or False, got 1$"):
        optim.BackProp(net, optim.sgd(), donate=1)  # type: ignore[arg-type]


def test_thread_settings_are_checked_and_scoped() -> None:
    with pytest.raises(ValueError, match=r"^elementwise: expected an integer >= 1, got 0$"):
        with backend.threads(1, elementwise=0):
            pass
    with pytest.raises(ValueError, match=r"^threads: expected an integer >= 0, got -1$"):
        with backend.threads(-1):
            pass
    assert backend.compute_threads() == 1
    with backend.threads(1, elementwise=3):
        assert backend.compute_threads() == 3
        assert parallel.parts_for(1000, 1000) == 3
    assert backend.compute_threads() == 1 and parallel.parts_for(1000, 1000) == 1


def test_a_failing_block_raises_after_every_block_ended() -> None:
    seen: list[int] = []

    def block(s: slice) -> None:
        seen.append(s.start)
        if s.start == 0:
            raise RuntimeError("block 0 failed")

    with backend.threads(1, elementwise=3), pytest.raises(RuntimeError, match="block 0 failed"):
        parallel.run(block, parallel.blocks(9, 3))
    assert sorted(seen) == [0, 3, 6]
