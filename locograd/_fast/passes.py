r"""The lean fused BackProp pass: the loss and the weight gradients, keeping the least memory.

:func:`backprop_loss_and_grads` runs the same operations as
:meth:`locograd.MLP.forward` then :meth:`locograd.MLP.backward` (the reference pass,
which is the one to read) and gives bit-for-bit the same results, but keeps no
:class:`~locograd.Trace` and no :math:`G_m`.  It is private: the optimizers call it.

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
from ..layers import affine, check_batch
from ..losses import Loss
from ..transfer import Transfer

Params = list[dict[str, Array]]
"""``locograd.network.Params``: one ``{"W", "b"}`` dict per layer."""


class Net(Protocol):
    """What the pass uses of :class:`locograd.MLP` (this module never imports the network)."""

    sizes: list[int]
    transfers: list[Transfer]
    loss_fn: Loss

    def check_params(self, params: object) -> Params: ...


def backprop_loss_and_grads(net: Net, params: Params, x: Array, y: Array) -> tuple[Array, Params]:
    r"""BackProp's :math:`L` and :math:`\partial L/\partial W_m, \partial L/\partial b_m`, with the least memory.

    The same operations as ``net.forward`` then ``net.backward`` (bit-for-bit the
    same results), but no trace or :math:`G_m` is kept: a pre-activation is
    dropped right after the forward pass where the transfer's derivative is written
    through its output (tanh), the network's output is never formed (the loss
    works from the last pre-activation), and each layer's output and :math:`G_m`
    are dropped once the backward pass is past them.  What a BackProp step needs,
    no more.

    Args:
        net: the :class:`~locograd.MLP` (its ``check_params``, ``transfers``,
            ``loss_fn`` and ``sizes`` are used).
        params, x, y: as for ``net.forward`` and ``net.backward``.

    Returns:
        ``(loss, grads)``: the loss as a 0-d array on the data's device and the
        gradients in the params structure ``[{"W": dL/dW_m, "b": dL/db_m}, ...]``.
    """
    params = net.check_params(params)
    check_batch(x, net.sizes[0], params[0]["W"].dtype)
    array_namespace(x=x, params=params[0]["W"])
    transfers = net.transfers
    M = len(transfers)
    inputs: list[Any] = []  # Array, or None once the backward pass is past it
    pre: list[Array | None] = []
    h = x
    for m, (layer, t) in enumerate(zip(params, transfers, strict=True)):
        a = affine(layer, h)
        inputs.append(h)
        if m == M - 1:  # the loss works from the last pre-activation; the output is not needed
            pre.append(a)
            break
        h = t.f(a)
        pre.append(None if t.df_output is not None else a)
    loss, g = net.loss_fn.mean_value_and_grad(pre[-1], y)
    grads: list[dict[str, Array]] = [{}] * M
    for m in range(M - 1, -1, -1):
        layer_input = inputs[m]
        grads[m] = {"W": layer_input.T @ g, "b": g.sum(axis=0)}
        if m > 0:
            g_x = g @ params[m]["W"].T
            t = transfers[m - 1]
            a_prev = pre[m - 1]
            g = t.vjp_from_output(layer_input, g_x) if a_prev is None else t.vjp(a_prev, g_x, layer_input)
        inputs[m] = pre[m] = None  # past this layer: its output, pre-activation and G go
    return loss, grads
