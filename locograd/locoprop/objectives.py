r"""Local objectives of one layer, with the bias and an optional proximal term.

For a layer with frozen input :math:`X` ``(B, d_in)``, parameters
:math:`\tilde W = [W; b]` and anchor :math:`\tilde W_t` (the parameters at
which the targets were built):

.. math::
    J_S(\tilde W) &= \sum_n \tfrac12 \|\tilde x_n \tilde W - a^*_n\|^2
                   + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2, \\
    J_M(\tilde W) &= \sum_n \big[F(\tilde x_n \tilde W) - y^*_n\cdot \tilde x_n \tilde W\big]
                   + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2,

the second equal to :math:`\sum_n D_F(\tilde x_n\tilde W, f^{-1}(y^*_n))` up to a
constant, so :math:`f^{-1}` is never needed.  Both sum over the batch (not
mean).  Their gradients share one form,

.. math:: \nabla J = \tilde X^\top R + (\tilde W - \tilde W_t)/\eta, \qquad
          R = A - A^* \ (S), \quad R = f(A) - Y^* \ (M),

with :math:`A = X W + b`; the bias row of :math:`\tilde X^\top R` is
:math:`\sum_n R_n`.  ``eta=None`` drops the proximal term.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import Array, array_namespace
from ..bregman import matching_loss
from ..layers import affine
from ..transfer import Transfer
from ..transfer import get as get_transfer
from .targets import check_variant


def check_eta(eta: float | None) -> float | None:
    """Validate the proximal weight (``None``: no proximal term)."""
    if eta is None:
        return None
    e = float(eta)
    if not (math.isfinite(e) and e > 0):
        raise ValueError(f"eta: expected None or a positive finite number, got {eta!r}")
    return e


class LocalProblem(NamedTuple):
    r"""One layer's local problem.

    Attributes:
        inputs: frozen layer input :math:`X` ``(B, d_in)``.
        target: :math:`A^*` (S) or :math:`Y^*` (M), ``(B, d_out)``.
        transfer: the layer's transfer :math:`f` (used by M; S ignores it).
        variant: ``"S"`` or ``"M"``.
        anchor: :math:`\tilde W_t` as ``{"W": (d_in, d_out), "b": (d_out,)}``.
        eta: proximal weight, or ``None``.
    """

    inputs: Array
    target: Array
    transfer: Transfer
    variant: str
    anchor: dict[str, Array]
    eta: float | None = None

    @classmethod
    def build(
        cls,
        inputs: Array,
        target: Array,
        transfer: str | Transfer,
        variant: str,
        anchor: dict[str, Array],
        eta: float | None = None,
    ) -> LocalProblem:
        """Validated constructor."""
        return cls(inputs, target, get_transfer(transfer), check_variant(variant), anchor, check_eta(eta))


def residual(problem: LocalProblem, params: dict[str, Array]) -> tuple[Array, Array]:
    r"""``(A, R)``: the pre-activation :math:`A = XW + b` and :math:`R = \partial J_{data}/\partial A`."""
    a = affine(params, problem.inputs)
    if problem.variant == "S":
        return a, a - problem.target
    return a, problem.transfer.f(a) - problem.target


def same_dtype(problem: LocalProblem, params: dict[str, Array]) -> bool:
    """Whether inputs, target, anchor and ``params`` share one floating dtype.

    The condition of the in-place paths (:func:`residual_into`, :func:`gradient_into`):
    with mixed dtypes NumPy promotes, and writing into a buffer would round differently.
    """
    dt = problem.inputs.dtype
    arrays = (problem.target, problem.anchor["W"], problem.anchor["b"], params["W"], params["b"])
    return dt.kind == "f" and all(getattr(a, "dtype", None) == dt for a in arrays)


def residual_into(
    problem: LocalProblem, params: dict[str, Array], out: Array, base: Array | None = None
) -> Array:
    r""":math:`R` of :func:`residual`, written into ``out`` ``(B, d_out)`` (the inner loop's buffer).

    Args:
        problem: the layer's problem (one dtype throughout, see :func:`same_dtype`).
        params: the current :math:`\tilde W`.
        out: scratch ``(B, d_out)`` of that dtype; it receives :math:`A`, then :math:`R`.
        base: when ``params`` is the anchor, the forward pass's value there that the
            target was built from, :math:`A` (S) or :math:`f(A)` (M): then
            :math:`R = \text{base} - \text{target}` and the product is skipped.  Not modified.

    Returns:
        ``out``, holding :math:`R` (bit for bit what :func:`residual` returns).
    """
    xp = array_namespace(problem.inputs)
    if base is not None:
        return xp.subtract(base, problem.target, out=out)
    xp.matmul(problem.inputs, params["W"], out=out)
    out += params["b"]
    fa = out if problem.variant == "S" else problem.transfer.f(out)
    return xp.subtract(fa, problem.target, out=out)


def gradient_into(
    problem: LocalProblem, params: dict[str, Array], r: Array, out: Array, scratch: Array | None = None
) -> dict[str, Array]:
    r""":func:`gradient` from the residual ``r``, with :math:`X^\top R` written into ``out`` ``(d_in, d_out)``.

    ``scratch`` (shaped like ``W``) holds the proximal term's difference when ``eta`` is set.
    Bit for bit :func:`gradient`; ``out`` is the returned ``"W"`` entry.
    """
    xp = array_namespace(problem.inputs)
    g = {"W": xp.matmul(problem.inputs.T, r, out=out), "b": r.sum(axis=0)}
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        d = xp.subtract(params["W"], problem.anchor["W"], out=scratch)
        d *= inv_eta
        g["W"] += d
        g["b"] = g["b"] + inv_eta * (params["b"] - problem.anchor["b"])
    return g


def gradient(problem: LocalProblem, params: dict[str, Array], r: Array | None = None) -> dict[str, Array]:
    r""":math:`\nabla J` as ``{"W": X^T R + (W - W_t)/eta, "b": sum_n R_n + (b - b_t)/eta}``."""
    if r is None:
        _, r = residual(problem, params)
    g = {"W": problem.inputs.T @ r, "b": r.sum(axis=0)}
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        g = {k: g[k] + inv_eta * (params[k] - problem.anchor[k]) for k in g}
    return g


def objective(problem: LocalProblem, params: dict[str, Array]) -> Array:
    """The local objective :math:`J` (0-d array): squared loss (S) or matching loss (M), plus prox."""
    xp = array_namespace(problem.inputs)
    a, r = residual(problem, params)
    if problem.variant == "S":
        value = 0.5 * xp.sum(r * r)
    else:
        value = xp.sum(matching_loss(problem.transfer, a, problem.target))
    if problem.eta is not None:
        sq = sum(xp.sum((params[k] - problem.anchor[k]) ** 2) for k in ("W", "b"))
        value = value + sq / (2 * problem.eta)
    return value


def norm(tree: dict[str, Array]) -> Array:
    """Frobenius norm over ``W`` and ``b`` together (0-d array)."""
    xp = array_namespace(tree["W"])
    return xp.sqrt(xp.sum(tree["W"] ** 2) + xp.sum(tree["b"] ** 2))
