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

from typing import Any, NamedTuple

from ..backend import Array, array_namespace, check_float_array
from ..bregman import matching_loss
from ..layers import affine
from ..transfer import Transfer
from ..transfer import get as get_transfer
from ..validators import finite, number
from .targets import VARIANTS, check_variant


def check_eta(eta: float | None) -> float | None:
    """Validate the proximal weight (``None``: no proximal term)."""
    return number("eta", eta, low=0, low_open=True, allow_none=True)


class LocalProblem(NamedTuple):
    r"""One layer's local problem.

    Built by :meth:`build` (which checks every part and that its arrays are finite); a problem
    constructed directly is checked structurally by every public objective and solver
    (:func:`check_problem`), so a wrong shape, dtype or variant is refused before any work.

    Attributes:
        inputs: frozen layer input :math:`X` ``(B, d_in)``.
        target: :math:`A^*` (S) or :math:`Y^*` (M), ``(B, d_out)``, the dtype of ``inputs``.
        transfer: the layer's transfer :math:`f` (M); ``None`` for S, which does not use it.
        variant: ``"S"`` or ``"M"``.
        anchor: :math:`\tilde W_t` as ``{"W": (d_in, d_out), "b": (d_out,)}``.
        eta: proximal weight, or ``None``.
    """

    inputs: Array
    target: Array
    transfer: Transfer | None
    variant: str
    anchor: dict[str, Array]
    eta: float | None = None

    @property
    def matching_transfer(self) -> Transfer:
        """The transfer :math:`f` of an M problem (whose matching loss it defines).

        Raises:
            TypeError: the problem has no transfer (an S problem built with ``transfer=None``).
        """
        if self.transfer is None:
            raise TypeError("transfer: this LocalProblem has none (variant 'S'); its matching loss needs one")
        return self.transfer

    @classmethod
    def build(
        cls,
        inputs: Array,
        target: Array,
        transfer: str | Transfer | None,
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
        variant = check_variant(variant)
        resolved = None if transfer is None else get_transfer(transfer)
        problem = cls(inputs, target, resolved, variant, anchor, check_eta(eta))
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
    :class:`~locograd.transfer.Transfer` for variant M (``None`` or a Transfer for S, which does not use it);
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
    if problem.variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {problem.variant!r}")
    if problem.variant == "M" and not isinstance(problem.transfer, Transfer):
        raise TypeError(
            f"transfer: expected a Transfer for variant 'M', got {type(problem.transfer).__name__}"
        )
    if problem.variant == "S" and problem.transfer is not None and not isinstance(problem.transfer, Transfer):
        raise TypeError(
            f"transfer: expected None or a Transfer for variant 'S', got {type(problem.transfer).__name__}"
        )
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
    return a, problem.matching_transfer.f(a) - problem.target


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
        value = xp.sum(matching_loss(problem.matching_transfer, a, problem.target))
    if problem.eta is not None:
        sq = sum(xp.sum((params[k] - problem.anchor[k]) ** 2) for k in ("W", "b"))
        value = value + sq / (2 * problem.eta)
    return value


def norm(tree: dict[str, Array]) -> Array:
    """Frobenius norm over ``W`` and ``b`` together (0-d array)."""
    xp = array_namespace(tree["W"])
    return xp.sqrt(xp.sum(tree["W"] ** 2) + xp.sum(tree["b"] ** 2))
