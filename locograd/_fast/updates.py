r"""Fused in-place kernels of the first-order updates: the fast path of :mod:`locograd.optim.first_order`.

Each kernel ``kernel(grads, state, params, eta, ...) -> state`` writes one step of its
optimizer into ``params`` and into the arrays of ``state`` (a NamedTuple; the returned state
holds the same arrays and the advanced step count), using ``grads`` as scratch.  The
operations are those of the reference update in the same order, so the result is bit for bit
``apply_updates(params, update(grads, state, params)[0])`` (tested in ``tests/test_optim_state.py``).
The reference module reaches them through one explicit hook per optimizer,
``GradientTransformation.update_inplace``, which checks the arguments first; nothing here checks.
"""

from __future__ import annotations

from typing import Any

from ..backend import Array, array_namespace, tree_leaves

Tree = Any


def _leaves(*trees: Tree) -> Any:
    """The leaves of trees of one structure, zipped: ``(g, p, s1, ...)`` per array."""
    return zip(*(tree_leaves(t) for t in trees), strict=True)


def _decay_into(avg: Array, beta: float, g: Array, scratch: Array) -> None:
    """``avg <- beta * avg + (1 - beta) * g * g`` in place, bit for bit the pure expression."""
    xp = array_namespace(avg)
    xp.multiply(g, 1 - beta, out=scratch)
    scratch *= g
    avg *= beta
    avg += scratch


def _scaled_step(p: Array, g: Array, avg: Array, eta: float, eps: float) -> None:
    """``p <- p - eta * g / (sqrt(avg) + eps)`` in place (``g`` is overwritten)."""
    xp = array_namespace(p)
    root = xp.sqrt(avg)
    root += eps
    g *= eta
    g /= root
    p -= g


def sgd(grads: Tree, state: Any, params: Tree, eta: float) -> Any:
    r""":math:`w \leftarrow w - \eta g`."""
    for g, p in _leaves(grads, params):
        g *= eta
        p -= g
    return state._replace(step=state.step + 1)


def heavy_ball(grads: Tree, state: Any, params: Tree, eta: float, mu: float, nesterov: bool) -> Any:
    r""":math:`m \leftarrow \mu m + g`, then :math:`w \leftarrow w - \eta m` (or :math:`- \eta(g + \mu m)`)."""
    for g, p, m in _leaves(grads, params, state.momentum):
        m *= mu
        m += g
        if nesterov:
            g += mu * m
            g *= eta
        else:
            array_namespace(m).multiply(m, eta, out=g)
        p -= g
    return state._replace(step=state.step + 1)


def adam(grads: Tree, state: Any, params: Tree, eta: float, b1: float, b2: float, eps: float) -> Any:
    """Adam with bias corrections (PyTorch semantics)."""
    t = state.step + 1
    c1, c2 = 1 - b1**t, 1 - b2**t
    for g, p, m, v in _leaves(grads, params, state.m, state.v):
        xp = array_namespace(g)
        scratch = xp.empty_like(g)
        xp.multiply(g, 1 - b1, out=scratch)
        m *= b1
        m += scratch
        _decay_into(v, b2, g, scratch)
        xp.divide(v, c2, out=scratch)
        xp.sqrt(scratch, out=scratch)
        scratch += eps
        xp.multiply(m, eta / c1, out=g)
        g /= scratch
        p -= g
    return state._replace(step=t)


def adagrad(grads: Tree, state: Any, params: Tree, eta: float, eps: float) -> Any:
    r""":math:`s \leftarrow s + g^2`, :math:`w \leftarrow w - \eta g/(\sqrt s + \epsilon)`."""
    for g, p, s in _leaves(grads, params, state.sum):
        s += g * g
        _scaled_step(p, g, s, eta, eps)
    return state._replace(step=state.step + 1)


def rmsprop(grads: Tree, state: Any, params: Tree, eta: float, alpha: float, eps: float) -> Any:
    r""":math:`v \leftarrow \alpha v + (1-\alpha) g^2`, :math:`w \leftarrow w - \eta g/(\sqrt v + \epsilon)`."""
    for g, p, v in _leaves(grads, params, state.square_avg):
        _decay_into(v, alpha, g, array_namespace(g).empty_like(g))
        _scaled_step(p, g, v, eta, eps)
    return state._replace(step=state.step + 1)


def rmsprop_tf1(grads: Tree, state: Any, params: Tree, eta: float, rho: float, mu: float, eps: float) -> Any:
    r"""TF1 RMSProp: :math:`s \leftarrow \rho s + (1-\rho) g^2`, :math:`m \leftarrow \mu m + \eta g/\sqrt{s+\epsilon}`, :math:`w \leftarrow w - m`."""
    for g, p, s, m in _leaves(grads, params, state.ms, state.mom):
        xp = array_namespace(g)
        scratch = xp.empty_like(g)
        _decay_into(s, rho, g, scratch)
        xp.add(s, eps, out=scratch)
        xp.sqrt(scratch, out=scratch)
        g *= eta
        g /= scratch
        m *= mu
        m += g
        p -= m
    return state._replace(step=state.step + 1)
