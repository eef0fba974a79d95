r"""The fused BackProp pass: the loss and the weight gradients, in reused buffers, on every thread.

:func:`backprop_loss_and_grads` runs the same operations as
:meth:`locograd.MLP.forward` then :meth:`locograd.MLP.backward` (the reference pass,
which is the one to read) and gives bit-for-bit the same results, with fewer passes over
memory, its elementwise work spread over the threads in force, and its arrays in a
:class:`Workspace` reused across steps.  It is private: :class:`locograd.optim.BackProp` calls it.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> params = net.init(seed=0)
>>> x = np.random.default_rng(0).random((5, 3))
>>> loss, grads = backprop_loss_and_grads(net, params, x, x[:, :2])
>>> full = net.backward(params, net.forward(params, x), x[:, :2])
>>> bool(loss == full.loss), [sorted(g) for g in grads]
(True, [['W', 'b'], ['W', 'b']])
>>> all(bool((g["W"] == w).all()) for g, w in zip(grads, full.W))
True
"""

from __future__ import annotations

from typing import Any, Protocol

from ..backend import Array, array_namespace
from ..losses import Loss
from ..transfer import Transfer, identity, tanh
from .kernels import bias_transfer, column_sums, fusable, loss_value_and_grad, transfer_vjp

Params = list[dict[str, Array]]
"""``locograd.network.Params``: one ``{"W", "b"}`` dict per layer."""


class Net(Protocol):
    """What the pass uses of :class:`locograd.MLP` (this module never imports the network)."""

    sizes: list[int]
    loss_fn: Loss

    @property
    def transfers(self) -> list[Transfer]: ...

    def check_params(self, params: object) -> Params: ...

    def check_input(self, x: object, params: Params, name: str = "x") -> Array: ...


class Workspace:
    """The buffers of one BackProp pass for one batch shape, reused from step to step.

    A steady-state step then allocates no large array (no page faults on fresh memory): the
    products are written into ``act`` (the pre-activations, then in place the outputs where the
    derivative is written through the output or the transfer is the identity), ``post`` (the
    outputs kept beside their pre-activations for sigmoid and relu), ``g_x`` (the input
    gradients :math:`G W^\top`) and the gradients ``W``, ``b``.
    """

    def __init__(self, net: Net, batch: int, dtype: Any, xp: Any) -> None:
        sizes, transfers = net.sizes, net.transfers
        M = len(transfers)
        self.key = (batch, dtype, xp, tuple(sizes), tuple(id(t) for t in transfers))
        self.act = [xp.empty((batch, d), dtype=dtype) for d in sizes[1:]]
        self.post = [
            xp.empty((batch, sizes[m + 1]), dtype=dtype) if m < M - 1 and _keeps_pre(transfers[m]) else None
            for m in range(M)
        ]
        self.g_x = [None] + [xp.empty((batch, sizes[m]), dtype=dtype) for m in range(1, M)]
        self.W = [xp.empty((sizes[m], sizes[m + 1]), dtype=dtype) for m in range(M)]
        self.b = [xp.empty(sizes[m + 1], dtype=dtype) for m in range(M)]

    @classmethod
    def for_batch(cls, net: Net, x: Array, dtype: Any, cached: Workspace | None) -> Workspace:
        """``cached`` if it fits this network, batch size, dtype and backend, else a new one."""
        xp = array_namespace(x)
        key = (x.shape[0], dtype, xp, tuple(net.sizes), tuple(id(t) for t in net.transfers))
        return cached if cached is not None and cached.key == key else cls(net, x.shape[0], dtype, xp)


def _keeps_pre(t: Transfer) -> bool:
    """Whether the backward pass needs the pre-activation beside the output (all but tanh and identity)."""
    return not (t is identity or t is tanh)


def backprop_loss_and_grads(
    net: Net, params: Params, x: Array, y: Array, workspace: Workspace | None = None
) -> tuple[Array, Params]:
    r"""BackProp's :math:`L` and :math:`\partial L/\partial W_m, \partial L/\partial b_m`, fused, in reused buffers.

    The same operations as ``net.forward`` then ``net.backward`` (bit for bit the same
    results), with less work: the bias add and the transfer in one pass per row block, the
    transfer's derivative written through the output and multiplied into the input gradient in
    one pass (tanh), the network's output never formed (the loss works from the last
    pre-activation), the elementwise work in row blocks on :func:`locograd.backend.threads`'
    threads (:mod:`locograd._fast.kernels`), and every product written into ``workspace``.

    Args:
        net: the :class:`~locograd.MLP` (its ``check_params``, ``transfers``,
            ``loss_fn`` and ``sizes`` are used).
        params, x, y: as for ``net.forward`` and ``net.backward``.
        workspace: the buffers to write into (:meth:`Workspace.for_batch`); ``None``: fresh ones.

    Returns:
        ``(loss, grads)``: the loss as a 0-d array on the data's device and the gradients in
        the params structure ``[{"W": dL/dW_m, "b": dL/db_m}, ...]``, which are the workspace's
        buffers: valid until the next call with the same workspace.
    """
    params = net.check_params(params)
    dtype = params[0]["W"].dtype
    net.check_input(x, params)
    xp = array_namespace(x)
    work = Workspace.for_batch(net, x, dtype, workspace)
    transfers = net.transfers
    M = len(transfers)
    inputs: list[Array] = [x]
    pre: list[Array | None] = []
    h = x
    for m, (layer, t) in enumerate(zip(params, transfers, strict=True)):
        a = xp.matmul(h, layer["W"], out=work.act[m])
        if m == M - 1:  # the loss works from the last pre-activation; the output is not needed
            a += layer["b"]
            pre.append(a)
            break
        if _keeps_pre(t):
            h = bias_transfer(a, layer["b"], t, post=work.post[m] if fusable(t) else None)
            pre.append(a)
        else:
            h = bias_transfer(a, layer["b"], t)  # tanh, identity: the output over the pre-activation
            pre.append(None)
        inputs.append(h)
    loss, g = loss_value_and_grad(net.loss_fn, pre[-1], y, grad=pre[-1])
    grads: list[dict[str, Array]] = [{}] * M
    for m in range(M - 1, -1, -1):
        gW = xp.matmul(inputs[m].T, g, out=work.W[m])
        grads[m] = {"W": gW, "b": column_sums(g, out=work.b[m])}
        if m > 0:
            g_x = xp.matmul(g, params[m]["W"].T, out=work.g_x[m])
            g = transfer_vjp(g_x, transfers[m - 1], pre[m - 1], inputs[m])
    return loss, grads
