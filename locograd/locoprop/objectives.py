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

**In the displacement.**  A problem is stored as the anchor's pre-activation :math:`A_t`
(``pre``) and the offset :math:`\gamma G` (``offset``), not as the target, and the solvers
work on the displacement :math:`D = \tilde W - \tilde W_t`, starting from :math:`D = 0`.  With
:math:`\delta = \tilde X D`,

.. math::
    R = \delta + \gamma G \ (S), \qquad R = [f(A_t + \delta) - f(A_t)] + \gamma G \ (M),

    J(D) - J(0) = \sum_n D_F(A_{t,n} + \delta_n, A_{t,n}) + \langle\gamma G, \delta\rangle
                  + \tfrac{1}{2\eta}\|D\|^2,

with :math:`D_F(a + \delta, a) = \frac12\|\delta\|^2` for S.  The bracket is
:meth:`~locograd.transfer.Transfer.increment` and the divergence
:func:`~locograd.bregman.divergence_step`, both accurate however small :math:`\delta` is.  The
residual is exactly :math:`\gamma G` at the anchor.  Forming it from a stored target,
:math:`f(X\tilde W) - Y^*`, would cancel: in the first layers of a deep logistic network
:math:`\gamma G` is 1e-9 to 1e-6 against :math:`f(A) \approx 0.5`, below the rounding of
:math:`Y^*` in float32 (exactly 0 in layer 0 of the CURVES autoencoder at initialisation).
The targets stay available for teaching (:attr:`LocalProblem.target`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..backend import Array, array_namespace, check_float_array
from ..bregman import _divergence_step, matching_loss
from ..nn import Dense, WeightLayer
from ..transfer import Transfer
from ..transfer import get as get_transfer
from ..validators import finite, number
from .targets import VARIANTS, check_variant


def check_eta(eta: float | None) -> float | None:
    """Validate the proximal weight (``None``: no proximal term)."""
    return number("eta", eta, low=0, low_open=True, allow_none=True)


class LocalProblem(NamedTuple):
    r"""One layer's local problem, stated in the displacement from its anchor.

    Built by :meth:`build` from a target, or by :meth:`from_offset` from the anchor's
    pre-activation and :math:`\gamma G` (as :func:`~locograd.locoprop.step` does); both check
    every part and that its arrays are finite.  A problem constructed directly is checked
    structurally by every public objective and solver (:func:`check_problem`), so a wrong
    shape, dtype or variant is refused before any work.

    Attributes:
        inputs: frozen layer input :math:`X` ``(B, d_in)``.
        pre: the pre-activation at the anchor, :math:`A_t = X W_t + b_t` ``(B, d_out)``.
        offset: :math:`\gamma G` ``(B, d_out)``, the residual at the anchor: :math:`A_t - A^*`
            (S) or :math:`f(A_t) - Y^*` (M).
        transfer: the layer's transfer :math:`f` (M); ``None`` for S, which does not use it.
        variant: ``"S"`` or ``"M"``.
        anchor: :math:`\tilde W_t` as ``{"W": (d_in, d_out), "b": (d_out,)}``.
        eta: proximal weight, or ``None``.
        layer: the weight layer whose linear view (:class:`~locograd.nn.WeightLayer`:
            :math:`\tilde X D`, :math:`\tilde X^\top R`, :math:`\tilde X^\top\tilde X`) the solvers use;
            ``None``: a :class:`~locograd.nn.Dense` of the anchor's shape.
    """

    inputs: Array
    pre: Array
    offset: Array
    transfer: Transfer | None
    variant: str
    anchor: dict[str, Array]
    eta: float | None = None
    layer: WeightLayer | None = None

    @property
    def view(self) -> WeightLayer:
        """The layer whose linear view the solvers use (:attr:`layer`, or a Dense of the anchor's shape)."""
        if self.layer is not None:
            return self.layer
        d_in, d_out = self.anchor["W"].shape
        return Dense(d_in, d_out)

    @property
    def weight_rows(self) -> int:
        r"""The rows of :math:`\tilde W`: ``d_in + 1`` (``kh*kw*c_in + 1`` for a convolution)."""
        return int(math.prod(self.anchor["W"].shape[:-1])) + 1

    @property
    def matching_transfer(self) -> Transfer:
        """The transfer :math:`f` of an M problem (whose matching loss it defines).

        Raises:
            TypeError: the problem has no transfer (an S problem built with ``transfer=None``).
        """
        if self.transfer is None:
            raise TypeError("transfer: this LocalProblem has none (variant 'S'); its matching loss needs one")
        return self.transfer

    @property
    def target(self) -> Array:
        r"""The target, for teaching: :math:`A^* = A_t - \gamma G` (S) or :math:`Y^* = f(A_t) - \gamma G` (M), ``(B, d_out)``.

        The solvers never use it: they work with the offset :math:`\gamma G` itself, since in
        float32 the rounding of a stored target can wipe :math:`\gamma G` out (module docstring).
        """
        if self.variant == "S":
            return self.pre - self.offset
        return self.matching_transfer.f(self.pre) - self.offset

    @classmethod
    def build(
        cls,
        inputs: Array,
        target: Array,
        transfer: str | Transfer | None,
        variant: str,
        anchor: dict[str, Array],
        eta: float | None = None,
        layer: WeightLayer | None = None,
    ) -> LocalProblem:
        """Validated constructor from a target :math:`A^*` (S) or :math:`Y^*` (M) ``(B, d_out)``.

        The anchor's pre-activation is computed, and the offset taken as ``A_t - target`` (S) or
        ``f(A_t) - target`` (M): a target given as an array carries its own rounding, which no
        later step can undo.  Build from the gradient with :meth:`from_offset` where it is at hand.

        Raises:
            TypeError: a part that is not a floating array, arrays of different dtypes or
                backends, an unknown kind of transfer.
            ValueError: a shape that does not fit ``inputs`` ``(B, d_in)`` and ``anchor["W"]``
                ``(d_in, d_out)``, anchor keys other than ``W`` and ``b``, a bad variant or eta.
            NonFiniteError: NaN or infinity in the inputs, the target or the anchor.
        """
        variant = check_variant(variant)
        resolved = None if transfer is None else get_transfer(transfer)
        shape = cls(inputs, target, target, resolved, variant, anchor, check_eta(eta), layer)
        check_problem(shape, target=True)  # the target stands where pre and offset go: their shape and dtype
        finite("inputs", inputs)
        finite("target", target)
        finite("anchor", anchor)
        pre = shape.view.linear(inputs, anchor)
        base = pre if variant == "S" else shape.matching_transfer.f(pre)
        return cls(inputs, pre, base - target, resolved, variant, anchor, shape.eta, layer)

    @classmethod
    def from_offset(
        cls,
        inputs: Array,
        pre: Array,
        offset: Array,
        transfer: str | Transfer | None,
        variant: str,
        anchor: dict[str, Array],
        eta: float | None = None,
        layer: WeightLayer | None = None,
    ) -> LocalProblem:
        r"""Validated constructor from the anchor's pre-activation :math:`A_t` and the offset :math:`\gamma G`.

        Raises:
            TypeError, ValueError: as :meth:`build`.
            NonFiniteError: NaN or infinity in any array.
        """
        variant = check_variant(variant)
        resolved = None if transfer is None else get_transfer(transfer)
        problem = cls(inputs, pre, offset, resolved, variant, anchor, check_eta(eta), layer)
        check_problem(problem)
        for name in ("inputs", "pre", "offset", "anchor"):
            finite(name, getattr(problem, name))
        return problem


def check_problem(problem: Any, name: str = "problem", *, target: bool = False) -> LocalProblem:
    r"""``problem`` unchanged if it is a well-formed :class:`LocalProblem`, before any work starts.

    Every public objective and solver calls it, so that a problem built directly (not by
    :meth:`LocalProblem.build`) is checked too.  Structure only, no pass over the data
    (:meth:`LocalProblem.build` also checks the values are finite): ``inputs`` a 2-D floating
    array ``(B, d_in)``; ``anchor`` a dict with exactly the keys ``W`` ``(d_in, d_out)`` and
    ``b`` ``(d_out,)``; ``pre`` and ``offset`` ``(B, d_out)``; one dtype and one backend throughout; a
    :class:`~locograd.transfer.Transfer` for variant M (``None`` or a Transfer for S, which does not use it);
    variant ``"S"`` or ``"M"``; ``eta`` ``None`` or > 0.

    Raises:
        TypeError: not a LocalProblem, a part that is not a floating array, mixed dtypes or
            backends, a transfer that is not a Transfer.
        ValueError: a shape that does not fit, anchor keys other than ``W`` and ``b``, a bad
            variant or eta.

    ``target=True`` (for :meth:`LocalProblem.build`): ``pre`` holds a target, checked and named as one.
    """
    if not isinstance(problem, LocalProblem):
        raise TypeError(f"{name}: expected a LocalProblem, got {type(problem).__name__}")
    # a problem being built from a target holds the target in the place of pre and offset
    rows = {"target": problem.pre} if target else {"pre": problem.pre, "offset": problem.offset}
    if problem.layer is not None and not isinstance(problem.layer, Dense):
        return _check_layer_problem(problem, rows)
    inputs = check_float_array(problem.inputs, "inputs", ndim=2)
    anchor = problem.anchor
    if not isinstance(anchor, dict):
        raise TypeError(f"anchor: expected a dict with the keys ['W', 'b'], got {type(anchor).__name__}")
    if set(anchor) != {"W", "b"}:
        raise ValueError(f"anchor: expected the keys ['W', 'b'], got {sorted(map(str, anchor))}")
    W = check_float_array(anchor["W"], "anchor['W']", ndim=2)
    b = check_float_array(anchor["b"], "anchor['b']", ndim=1)
    for part, a in rows.items():
        check_float_array(a, part, ndim=2)
    array_namespace(inputs=inputs, **rows, **{"anchor['W']": W, "anchor['b']": b})
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
    for part, a in rows.items():
        if tuple(a.shape) != (B, d_out):
            raise ValueError(
                f"{part}: expected shape ({B}, {d_out}) (the batch of inputs, the columns of anchor['W']), "
                f"got {tuple(a.shape)}"
            )
    for part, a in (*rows.items(), ("anchor['W']", W), ("anchor['b']", b)):
        if a.dtype != inputs.dtype:
            raise TypeError(f"{part}: expected dtype {inputs.dtype} like inputs, got {a.dtype}")
    _check_settings(problem)
    layer = problem.layer
    if layer is not None and not isinstance(layer, WeightLayer):
        raise TypeError(f"layer: expected a locograd.nn weight layer or None, got {type(layer).__name__}")
    if isinstance(layer, Dense) and (layer.d_in, layer.d_out) != (d_in, d_out):
        raise ValueError(f"layer: {layer!r} does not fit the anchor's shape {(d_in, d_out)}")
    return problem


def _check_settings(problem: LocalProblem) -> None:
    """The variant, the transfer it needs, and ``eta``."""
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


def _check_layer_problem(problem: LocalProblem, rows: dict[str, Array]) -> LocalProblem:
    """:func:`check_problem` for a weight layer other than a dense one: its own checks of the inputs and
    the anchor, and ``pre`` and ``offset`` as rows ``(rows, d_out)`` of its linear view."""
    layer = problem.layer
    if not isinstance(layer, WeightLayer):
        raise TypeError(f"layer: expected a locograd.nn weight layer or None, got {type(layer).__name__}")
    anchor = layer.check_params(problem.anchor, "anchor")
    dtype = anchor["W"].dtype
    inputs = layer.check_input(problem.inputs, dtype, "inputs")
    out = layer.output_shape(tuple(inputs.shape[1:]))
    expected = (inputs.shape[0] * math.prod(out[:-1]), out[-1])
    for part, a in rows.items():
        check_float_array(a, part, ndim=2)
        if tuple(a.shape) != expected:
            raise ValueError(
                f"{part}: expected rows {expected} of {layer!r}'s linear view for these inputs, got {tuple(a.shape)}"
            )
        if a.dtype != dtype:
            raise TypeError(f"{part}: expected dtype {dtype} like the anchor, got {a.dtype}")
    array_namespace(inputs=inputs, **rows, anchor=anchor["W"])
    _check_settings(problem)
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


def displacement(problem: LocalProblem, params: dict[str, Array]) -> dict[str, Array]:
    r"""The displacement :math:`D = \tilde W - \tilde W_t` of ``params`` from the anchor.

    The solvers keep :math:`D` itself and form :math:`\tilde W_t + D` once, at the end; for a
    point given as parameters this difference is the best that is left (it is exact for
    nearby floats, but :math:`\tilde W_t + D` was rounded when it was formed).
    """
    check_params(check_problem(problem), params)
    return {k: params[k] - problem.anchor[k] for k in ("W", "b")}


def residual(problem: LocalProblem, params: dict[str, Array]) -> tuple[Array, Array]:
    r"""``(A, R)``: the pre-activation :math:`A = XW + b` and :math:`R = \partial J_{data}/\partial A`.

    :math:`R` is formed in the displacement (module docstring): :math:`\delta + \gamma G` (S) or
    :math:`f(A_t + \delta) - f(A_t) + \gamma G` (M), with :math:`\delta = \tilde X(\tilde W - \tilde W_t)`.

    Raises:
        TypeError, ValueError: a malformed ``problem`` (:func:`check_problem`) or ``params``
            that do not fit its anchor (:func:`check_params`).
    """
    D = displacement(problem, params)
    _, r = _residual(problem, D)
    return problem.view.linear(problem.inputs, params), r


def _step_of(problem: LocalProblem, D: dict[str, Array]) -> Array:
    r""":math:`\delta = \tilde X D = X D_W + D_b` ``(B, d_out)``."""
    return problem.view.linear(problem.inputs, D)


def _residual(problem: LocalProblem, D: dict[str, Array]) -> tuple[Array, Array]:
    r"""``(delta, R)`` at the displacement ``D``, without the checks (the solvers check once, then loop)."""
    delta = _step_of(problem, D)
    if problem.variant == "S":
        return delta, delta + problem.offset
    return delta, problem.matching_transfer.increment(problem.pre, delta) + problem.offset


def gradient(problem: LocalProblem, params: dict[str, Array], r: Array | None = None) -> dict[str, Array]:
    r""":math:`\nabla J` as ``{"W": X^T R + (W - W_t)/eta, "b": sum_n R_n + (b - b_t)/eta}``.

    Args:
        problem: the layer's problem (checked by :func:`check_problem`).
        params: the point :math:`\tilde W`, shaped like the anchor.
        r: the residual :math:`R` ``(B, d_out)`` at ``params`` if at hand.
    """
    D = displacement(problem, params)
    if r is not None:
        check_float_array(r, "r", ndim=2)
        if tuple(r.shape) != tuple(problem.offset.shape) or r.dtype != problem.offset.dtype:
            raise ValueError(
                f"r: expected shape {tuple(problem.offset.shape)} and dtype {problem.offset.dtype} "
                f"like the offset, got {tuple(r.shape)} {r.dtype}"
            )
    return _gradient(problem, D, r)


def _gradient(problem: LocalProblem, D: dict[str, Array], r: Array | None = None) -> dict[str, Array]:
    r""":math:`\nabla J` at the displacement ``D`` (residual ``r`` if at hand), without the checks."""
    if r is None:
        _, r = _residual(problem, D)
    g = problem.view.linear_transpose(problem.inputs, r)
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        g = {k: g[k] + inv_eta * D[k] for k in g}
    return g


def objective(problem: LocalProblem, params: dict[str, Array]) -> Array:
    """The local objective :math:`J` (0-d array): squared loss (S) or matching loss (M), plus prox.

    Its value is that of the defining formula, through the target: for teaching and plots.
    Between two nearby points its change is far below its own rounding in float32; compare
    points with :func:`objective_change`, as the solvers do.
    """
    check_params(check_problem(problem), params)
    xp = array_namespace(problem.inputs)
    a, target = problem.view.linear(problem.inputs, params), problem.target
    if problem.variant == "S":
        value = 0.5 * xp.sum((a - target) ** 2)
    else:
        value = xp.sum(matching_loss(problem.matching_transfer, a, target))
    if problem.eta is not None:
        sq = sum(xp.sum((params[k] - problem.anchor[k]) ** 2) for k in ("W", "b"))
        value = value + sq / (2 * problem.eta)
    return value


def objective_change(problem: LocalProblem, params: dict[str, Array]) -> Array:
    r""":math:`J(\tilde W) - J(\tilde W_t)` (0-d array), from the displacement, without cancellation.

    .. math:: \sum_n D_F(A_{t,n} + \delta_n, A_{t,n}) + \langle\gamma G, \delta\rangle + \tfrac{1}{2\eta}\|D\|^2

    (module docstring): accurate to its own rounding however small the move, where the
    difference of two :func:`objective` values would be rounding alone.
    """
    return _objective_change(problem, displacement(problem, params))


def _objective_change(problem: LocalProblem, D: dict[str, Array]) -> Array:
    """:func:`objective_change` at the displacement ``D``, without the checks."""
    xp = array_namespace(problem.inputs)
    delta = _step_of(problem, D)
    if problem.variant == "S":
        bregman = 0.5 * xp.sum(delta * delta)
    else:
        bregman = xp.sum(_divergence_step(problem.matching_transfer, problem.pre, delta))
    value = bregman + xp.sum(problem.offset * delta)
    if problem.eta is not None:
        value = value + sum(xp.sum(D[k] ** 2) for k in ("W", "b")) / (2 * problem.eta)
    return value


def norm(tree: dict[str, Array]) -> Array:
    """Frobenius norm over ``W`` and ``b`` together (0-d array)."""
    xp = array_namespace(tree["W"])
    return xp.sqrt(xp.sum(tree["W"] ** 2) + xp.sum(tree["b"] ** 2))
