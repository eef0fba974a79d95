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
from typing import Any, NamedTuple

from ..backend import Array, array_namespace, check_float_array
from ..bregman import matching_loss
from ..layers import affine
from ..transfer import Transfer
from ..transfer import get as get_transfer
from ..validators import finite, real
from .targets import VARIANTS, check_variant


def check_eta(eta: float | None) -> float | None:
    """Validate the proximal weight (``None``: no proximal term)."""
    if eta is None:
        return None
    e = real("eta", eta, "None or a positive finite number")
    if not (math.isfinite(e) and e > 0):
        raise ValueError(f"eta: expected None or a positive finite number, got {eta!r}")
    return e


class LocalProblem(NamedTuple):
    r"""One layer's local problem.

    Built by :meth:`build` (which checks every part and that its arrays are finite); a problem
    constructed directly is checked structurally by every public objective and solver
    (:func:`check_problem`), so a wrong shape, dtype or variant is refused before any work.

    Attributes:
        inputs: frozen layer input :math:`X` ``(B, d_in)``.
        target: :math:`A^*` (S) or :math:`Y^*` (M), ``(B, d_out)``, the dtype of ``inputs``.
        transfer: the layer's transfer :math:`f` (used by M; S ignores it, but it must be a
            :class:`~locograd.transfer.Transfer`).
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
        """Validated constructor: every part is checked (see :func:`check_problem`), and its arrays are finite.

        Raises:
            TypeError: a part that is not a floating array, arrays of different dtypes or
                backends, an unknown kind of transfer.
            ValueError: a shape that does not fit ``inputs`` ``(B, d_in)`` and ``anchor["W"]``
                ``(d_in, d_out)``, anchor keys other than ``W`` and ``b``, a bad variant or eta.
            NonFiniteError: NaN or infinity in the inputs, the target or the anchor.
        """
        problem = cls(inputs, target, get_transfer(transfer), check_variant(variant), anchor, check_eta(eta))
        check_problem(problem)
        finite("inputs", inputs)
        finite("target", target)
        finite("anchor", anchor)
        return problem


def check_problem(problem: Any, name: str = "problem") -> LocalProblem:
    r"""``problem`` unchanged if it is a well-formed :class:`LocalProblem`, before any work starts.

    Every public objective and solver calls it, so that a problem built directly (not by
    :meth:`LocalProblem.build`) is checked too.  Structure only, no pass over the data
    (:meth:`LocalProblem.build` also checks the values are finite): ``inputs`` a 2-D floating
    array ``(B, d_in)``; ``anchor`` a dict with exactly the keys ``W`` ``(d_in, d_out)`` and
    ``b`` ``(d_out,)``; ``target`` ``(B, d_out)``; one dtype and one backend throughout; a
    :class:`~locograd.transfer.Transfer` (variant S does not use it, it must still be one);
    variant ``"S"`` or ``"M"``; ``eta`` ``None`` or > 0.

    Raises:
        TypeError: not a LocalProblem, a part that is not a floating array, mixed dtypes or
            backends, a transfer that is not a Transfer.
        ValueError: a shape that does not fit, anchor keys other than ``W`` and ``b``, a bad
            variant or eta.
    """
    if not isinstance(problem, LocalProblem):
        raise TypeError(f"{name}: expected a LocalProblem, got {type(problem).__name__}")
    inputs = check_float_array(problem.inputs, "inputs", ndim=2)
    anchor = problem.anchor
    if not isinstance(anchor, dict):
        raise TypeError(f"anchor: expected a dict with the keys ['W', 'b'], got {type(anchor).__name__}")
    if set(anchor) != {"W", "b"}:
        raise ValueError(f"anchor: expected the keys ['W', 'b'], got {sorted(map(str, anchor))}")
    W = check_float_array(anchor["W"], "anchor['W']", ndim=2)
    b = check_float_array(anchor["b"], "anchor['b']", ndim=1)
    target = check_float_array(problem.target, "target", ndim=2)
    array_namespace(inputs=inputs, target=target, **{"anchor['W']": W, "anchor['b']": b})
    B, d_in = inputs.shape
    if W.shape[0] != d_in:
        raise ValueError(
            f"anchor['W']: expected shape ({d_in}, d_out) to fit inputs of width {d_in}, got {tuple(W.shape)}"
        )
    d_out = W.shape[1]
    if tuple(b.shape) != (d_out,):
        raise ValueError(
            f"anchor['b']: expected shape ({d_out},) like the columns of anchor['W'], got {tuple(b.shape)}"
        )
    if tuple(target.shape) != (B, d_out):
        raise ValueError(
            f"target: expected shape ({B}, {d_out}) (the batch of inputs, the columns of anchor['W']), "
            f"got {tuple(target.shape)}"
        )
    for part, a in (("target", target), ("anchor['W']", W), ("anchor['b']", b)):
        if a.dtype != inputs.dtype:
            raise TypeError(f"{part}: expected dtype {inputs.dtype} like inputs, got {a.dtype}")
    if not isinstance(problem.transfer, Transfer):
        raise TypeError(f"transfer: expected a Transfer, got {type(problem.transfer).__name__}")
    if problem.variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {problem.variant!r}")
    if problem.eta is not None:
        check_eta(problem.eta)
    return problem


def check_params(problem: LocalProblem, params: Any, name: str = "params") -> dict[str, Array]:
    """``params`` unchanged if it has the keys, shapes, dtype and backend of ``problem.anchor``.

    Raises:
        TypeError: not a dict of floating arrays of the anchor's dtype and backend.
        ValueError: other keys or shapes.
    """
    if not isinstance(params, dict):
        raise TypeError(f"{name}: expected a dict with the keys ['W', 'b'], got {type(params).__name__}")
    if set(params) != {"W", "b"}:
        raise ValueError(f"{name}: expected the keys ['W', 'b'], got {sorted(map(str, params))}")
    for key in ("W", "b"):
        a, ref = params[key], problem.anchor[key]
        check_float_array(a, f"{name}[{key!r}]")
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(
                f"{name}[{key!r}]: expected shape {tuple(ref.shape)} like the anchor, got {tuple(a.shape)}"
            )
        if a.dtype != ref.dtype:
            raise TypeError(f"{name}[{key!r}]: expected dtype {ref.dtype} like the anchor, got {a.dtype}")
        array_namespace(**{f"{name}[{key!r}]": a, "inputs": problem.inputs})
    return params


def residual(problem: LocalProblem, params: dict[str, Array]) -> tuple[Array, Array]:
    r"""``(A, R)``: the pre-activation :math:`A = XW + b` and :math:`R = \partial J_{data}/\partial A`.

    Raises:
        TypeError, ValueError: a malformed ``problem`` (:func:`check_problem`) or ``params``
            that do not fit its anchor (:func:`check_params`).
    """
    check_params(check_problem(problem), params)
    return _residual(problem, params)


def _residual(problem: LocalProblem, params: dict[str, Array]) -> tuple[Array, Array]:
    """:func:`residual` without the checks (the solvers check once, then loop)."""
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
    r""":math:`\nabla J` as ``{"W": X^T R + (W - W_t)/eta, "b": sum_n R_n + (b - b_t)/eta}``.

    Args:
        problem: the layer's problem (checked by :func:`check_problem`).
        params: the point :math:`\tilde W`, shaped like the anchor.
        r: the residual :math:`R` ``(B, d_out)`` at ``params`` if at hand.
    """
    check_params(check_problem(problem), params)
    if r is not None:
        check_float_array(r, "r", ndim=2)
        if tuple(r.shape) != tuple(problem.target.shape) or r.dtype != problem.target.dtype:
            raise ValueError(
                f"r: expected shape {tuple(problem.target.shape)} and dtype {problem.target.dtype} "
                f"like the target, got {tuple(r.shape)} {r.dtype}"
            )
    return _gradient(problem, params, r)


def _gradient(problem: LocalProblem, params: dict[str, Array], r: Array | None = None) -> dict[str, Array]:
    """:func:`gradient` without the checks."""
    if r is None:
        _, r = _residual(problem, params)
    g = {"W": problem.inputs.T @ r, "b": r.sum(axis=0)}
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        g = {k: g[k] + inv_eta * (params[k] - problem.anchor[k]) for k in g}
    return g


def objective(problem: LocalProblem, params: dict[str, Array]) -> Array:
    """The local objective :math:`J` (0-d array): squared loss (S) or matching loss (M), plus prox."""
    check_params(check_problem(problem), params)
    return _objective(problem, params)


def _objective(problem: LocalProblem, params: dict[str, Array]) -> Array:
    """:func:`objective` without the checks."""
    xp = array_namespace(problem.inputs)
    a, r = _residual(problem, params)
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
