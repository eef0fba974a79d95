r"""Bregman divergences and matching losses, built generically from the transfer table.

For a transfer :math:`f = \nabla F` (see :mod:`locograd.transfer`), the Bregman
divergence between pre-activations ``p`` and ``q`` (shape ``(B, d)``) is

.. math:: D_F(p, q) = F(p) - F(q) - f(q)\cdot(p - q) \;\ge 0,

summed over the ``d`` units, one value per example (shape ``(B,)``).  It is
convex in ``p``, zero at ``p == q``, and :math:`\nabla_p D_F(p, q) = f(p) - f(q)`.

The *matching loss* of a pre-activation ``a`` against a post-activation
target :math:`y^*` is :math:`D_F(a, f^{-1}(y^*))` up to a term that does not
depend on ``a``.  Since :math:`F(f^{-1}(y^*)) - y^* \cdot f^{-1}(y^*) = -F^*(y^*)`,

.. math:: D_F(a, f^{-1}(y^*)) = F(a) - y^*\cdot a + F^*(y^*),

so :func:`matching_loss` returns :math:`F(a) - y^*\cdot a` and never needs
:math:`f^{-1}`: its gradient is :math:`f(a) - y^*`.  The network losses of
:mod:`locograd.losses` are matching losses of their output transfer.

>>> import numpy as np
>>> from locograd import bregman
>>> p, q = np.array([[0.5, -1.0]]), np.array([[0.0, 2.0]])
>>> d = bregman.divergence("identity", p, q)
>>> np.allclose(d, 0.5 * ((p - q) ** 2).sum(-1))
True
"""

from __future__ import annotations

from .backend import Array, array_namespace, check_float_array
from .transfer import Transfer, get


def _check_pair(p: Array, q: Array, names: tuple[str, str]) -> None:
    check_float_array(p, names[0])
    check_float_array(q, names[1])
    array_namespace(**{names[0]: p, names[1]: q})
    if p.shape != q.shape:
        raise ValueError(
            f"{names[1]}: expected the shape of {names[0]} {tuple(p.shape)}, got {tuple(q.shape)}"
        )
    if p.dtype != q.dtype:
        raise TypeError(f"{names[1]}: expected dtype {p.dtype} like {names[0]}, got {q.dtype}")


def divergence(transfer: str | Transfer, p: Array, q: Array) -> Array:
    r"""Bregman divergence :math:`D_F(p, q)` summed over units.

    Args:
        transfer: name or row of the transfer table.
        p: pre-activations, ``(..., d)``.
        q: pre-activations, same shape and dtype as ``p``.

    Returns:
        ``(...)``: one value per example (``p.shape[:-1]``), dtype of ``p``.
    """
    t = get(transfer)
    _check_pair(p, q, ("p", "q"))
    xp = array_namespace(p)
    return t.potential(p) - t.potential(q) - xp.sum(t.f(q) * (p - q), axis=-1)


def divergence_grad(transfer: str | Transfer, p: Array, q: Array) -> Array:
    r""":math:`\nabla_p D_F(p, q) = f(p) - f(q)`, shape of ``p``."""
    t = get(transfer)
    _check_pair(p, q, ("p", "q"))
    return t.f(p) - t.f(q)


def dual_divergence(transfer: str | Transfer, u: Array, v: Array) -> Array:
    r"""Bregman divergence of the conjugate, :math:`D_{F^*}(u, v)` for post-activations.

    Uses :math:`\nabla F^* = f^{-1}`, so it needs ``v`` inside the open range
    of ``f`` (see :meth:`Transfer.inverse`); ``u`` may lie on its boundary.
    The duality :math:`D_F(p, q) = D_{F^*}(f(q), f(p))` holds for every
    strictly convex :math:`F` (and for softmax, whose inverse is defined up to
    a shift that cancels).
    """
    t = get(transfer)
    _check_pair(u, v, ("u", "v"))
    xp = array_namespace(u)
    return t.conjugate(u) - t.conjugate(v) - xp.sum(t.inverse(v) * (u - v), axis=-1)


def matching_loss(transfer: str | Transfer, a: Array, target: Array) -> Array:
    r"""Matching loss :math:`F(a) - y^*\cdot a`, per example (shape ``a.shape[:-1]``).

    Equal to :math:`D_F(a, f^{-1}(y^*)) - F^*(y^*)`, so it has the minimisers
    and the gradient of the divergence, is convex in ``a``, and needs no
    inverse.  A target outside the range of ``f`` makes it unbounded below.

    Args:
        transfer: name or row of the transfer table.
        a: pre-activations, ``(..., d)``.
        target: post-activation targets :math:`y^*`, same shape and dtype.
    """
    t = get(transfer)
    _check_pair(a, target, ("a", "target"))
    xp = array_namespace(a)
    return t.potential(a) - xp.sum(target * a, axis=-1)


def matching_loss_grad(transfer: str | Transfer, a: Array, target: Array) -> Array:
    r""":math:`\nabla_a` of :func:`matching_loss`: :math:`f(a) - y^*`, shape of ``a``."""
    t = get(transfer)
    _check_pair(a, target, ("a", "target"))
    return t.f(a) - target
