r"""LocoProp's settings as small frozen objects: the variant and the local solver.

A step reads as its maths does::

    locoprop.step(net, params, x, y, variant=M(gamma=10), solver=GD(steps=10, lr=1e-5))

* :class:`S` and :class:`M` are the variants: the target step :math:`\gamma` and the optional
  proximal weight :math:`\eta` of the local objective
  (:math:`J_S`: squared loss to :math:`A^* = A - \gamma G`; :math:`J_M`: the matching loss to
  :math:`Y^* = f(A) - \gamma G`; both plus :math:`\|\tilde W - \tilde W_t\|^2/(2\eta)`).
  ``normalised=True`` (not in the paper) replaces :math:`\gamma` by the per-layer
  :math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)`.
* :class:`GD` runs ``steps`` inner steps of plain gradient descent with step size ``lr``, or of a
  first-order optimizer ``inner`` (its learning rate replaced by ``lr`` when given), the step size
  of inner step ``k`` scaled by ``lr_factor(k, K)``.
* :class:`Exact` solves the local problem: in closed form for S, by Newton-CG for M (which needs
  ``eta``), to the relative gradient tolerance ``tol``.

Every field is checked when the object is built (one-line ``ValueError``/``TypeError`` naming the
field), so a step never starts with a bad setting.

>>> M(gamma=10).gamma, GD(steps=3, lr=0.1).steps
(10.0, 3)
>>> S(gamma=-1)
Traceback (most recent call last):
...
ValueError: gamma: expected a finite number > 0, got -1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..validators import integer, number

LrFactor = Callable[[int, int], float]
"""``lr_factor(k, K) -> float``: the factor of inner step ``k`` of ``K`` (e.g. the released ``max(1 - k/K, 0.25)``)."""


def check_descent(inner: Any) -> None:
    r"""Refuse an inner optimizer whose first update does not point downhill.

    GD minimises the local problem, so the first update :math:`u` that ``inner`` makes from a fresh
    state on a gradient :math:`g` must satisfy :math:`\langle u, g\rangle < 0`; every optimizer of
    :mod:`locograd.optim` does (its first step is :math:`-\rho` times a positive scaling of
    :math:`g`).  Checked on the gradient ``[1, -2]`` at a rate of 1.

    Raises:
        ValueError: ``"inner: its first update on a gradient g must point downhill (<u, g> < 0), got
            <u, g> = 5 (scale): ..."``, or naming ``inner`` where its update fails.
    """
    g = {"W": np.array([1.0, -2.0])}
    zeros = {"W": np.zeros(2)}
    name = getattr(inner, "name", type(inner).__name__)
    try:
        updates, _ = inner.update(g, inner.init(zeros), zeros, lr=1.0)
        along = float(np.vdot(np.asarray(updates["W"], dtype=float), g["W"]))
    except Exception as exc:  # an optimizer of the user's: its own failure, named once here
        raise ValueError(
            f"inner: {name} cannot update a test gradient ({type(exc).__name__}: {exc}); expected a "
            "first-order optimizer such as locograd.optim.adam()"
        ) from None
    if not along < 0:
        raise ValueError(
            f"inner: its first update on a gradient g must point downhill (<u, g> < 0), got <u, g> = "
            f"{along:g} ({name}); GD would climb the local problem (e.g. optim.scale(1.0) ascends: use sgd)"
        )


def check_lr_factor(lr_factor: Any, steps: int) -> None:
    """Refuse an ``lr_factor`` that is not a callable ``lr_factor(k, K)`` giving a finite number >= 0
    for every inner step ``k < K`` (tried on each, before any work).

    Raises:
        TypeError / ValueError: naming ``lr_factor``.
    """
    if not callable(lr_factor):
        raise TypeError(f"lr_factor: expected a callable lr_factor(k, K), got {type(lr_factor).__name__}")
    for k in range(steps):
        try:
            value = lr_factor(k, steps)
        except Exception as exc:
            raise TypeError(
                f"lr_factor: calling lr_factor({k}, {steps}) failed ({type(exc).__name__}: {exc}); "
                "expected a callable lr_factor(k, K) -> a number >= 0"
            ) from None
        number(f"lr_factor({k}, {steps})", value, low=0)


def check_inner(inner: Any) -> Any:
    """``inner`` unchanged if it is ``None`` or a first-order optimizer (callable ``init`` and ``update``, an ``lr``).

    Raises:
        TypeError: ``"inner: expected a first-order optimizer (with init, update and lr), got object"``.
    """
    if inner is None:
        return None
    if not (
        callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))
    ) or not hasattr(inner, "lr"):
        raise TypeError(
            f"inner: expected a first-order optimizer (with init, update and lr, e.g. locograd.optim.adam()), "
            f"got {type(inner).__name__}"
        )
    return inner


@dataclasses.dataclass(frozen=True, repr=False)
class _Variant:
    r"""What S and M share: the target step, the proximal weight and the normalisation flag.

    ``normalised=True`` (keyword only; NOT in the paper, a locograd variant) makes ``gamma``
    dimensionless: each weight layer :math:`m` gets its own step
    :math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)`, the RMS over all ``B*d_out`` entries
    (a convolution's ``B*P`` rows) of the batch's :math:`G_m = \partial L/\partial A_m`,
    :math:`\tau` = :data:`~locograd.locoprop.targets.TAU`; the offset :math:`\gamma_m G_m` then has
    RMS :math:`\gamma` in every layer whatever the scale of its gradient
    (:func:`~locograd.locoprop.targets.normalised_offset`).  The repr shows the flag only when set,
    so the plain variants print as before.
    """

    name: ClassVar[str]
    gamma: float = 1.0
    eta: float | None = None
    normalised: bool = dataclasses.field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", number("gamma", self.gamma, low=0, low_open=True))
        object.__setattr__(self, "eta", number("eta", self.eta, low=0, low_open=True, allow_none=True))
        if not isinstance(self.normalised, bool):
            raise ValueError(f"normalised: expected True or False, got {self.normalised!r}")

    def __repr__(self) -> str:
        flag = ", normalised=True" if self.normalised else ""
        return f"{type(self).__qualname__}(gamma={self.gamma!r}, eta={self.eta!r}{flag})"


@dataclasses.dataclass(frozen=True, repr=False)
class S(_Variant):
    r"""LocoProp-S: the squared loss to the pre-activation target :math:`A^* = A - \gamma G`.

    Attributes:
        gamma: the target step :math:`\gamma > 0` (with ``normalised``: the RMS of every layer's
            target step, dimensionless, typically 1e-3 to 1e-1).
        eta: the proximal weight :math:`\eta > 0`, or ``None`` for no proximal term.
        normalised: keyword only, default ``False``.  ``True``: locograd's per-layer-normalised
            variant (not in the paper), :math:`A^*_m = A_m - \gamma_m G_m` with
            :math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)`.

    >>> S(gamma=0.01, normalised=True)
    S(gamma=0.01, eta=None, normalised=True)
    """

    name: ClassVar[str] = "S"


@dataclasses.dataclass(frozen=True, repr=False)
class M(_Variant):
    r"""LocoProp-M: the matching loss to the post-activation target :math:`Y^* = f(A) - \gamma G`.

    Attributes:
        gamma: the target step :math:`\gamma > 0` (with ``normalised``: the RMS of every layer's
            target step, dimensionless, typically 1e-3 to 1e-1).
        eta: the proximal weight :math:`\eta > 0`, or ``None`` (then the exact solve is refused:
            :math:`J_M` may be unbounded below).
        normalised: keyword only, default ``False``.  ``True``: locograd's per-layer-normalised
            variant (not in the paper), :math:`Y^*_m = f(A_m) - \gamma_m G_m` with
            :math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)`; targets outside the range of
            ``f`` are handled as for the plain variant (a warning without ``eta``).

    >>> M(gamma=10), M(gamma=0.01, eta=1.0, normalised=True)
    (M(gamma=10.0, eta=None), M(gamma=0.01, eta=1.0, normalised=True))
    """

    name: ClassVar[str] = "M"


Variant = S | M


@dataclasses.dataclass(frozen=True, repr=False)
class GD:
    r"""``steps`` inner steps from the anchor :math:`\tilde W_t`.

    Attributes:
        steps: ``K >= 1``.
        lr: the step size :math:`\rho` of plain GD (required, > 0, without ``inner``); with
            ``inner``, replaces its learning rate (``None``: ``inner.lr``; 0 keeps the
            parameters while the inner state advances, as in the released warm-up epoch 0).
        inner: a first-order optimizer from :mod:`locograd.optim`, or ``None`` for plain GD.
        lr_factor: ``lr_factor(k, K)`` multiplies the step size of inner step ``k``, or ``None``.
    """

    steps: int = 1
    lr: float | None = None
    inner: Any = None
    lr_factor: LrFactor | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", integer("steps", self.steps, minimum=1))
        inner = check_inner(self.inner)
        if inner is None and self.lr is None:
            raise ValueError("lr: expected a step size > 0 for GD without an inner optimizer, got None")
        if inner is None:
            lr = number("lr", self.lr, low=0, low_open=True)
        else:
            lr = number("lr", self.lr, low=0, allow_none=True)
            if lr is None and inner.lr is None:
                raise ValueError(
                    f"inner: {getattr(inner, 'name', type(inner).__name__)} has no learning rate of its own "
                    "(its lr is None, as for scale or a chain of optimizers), so GD would have no step size; "
                    "give GD(lr=...) or one optimizer with a rate"
                )
            check_descent(inner)
        object.__setattr__(self, "lr", lr)
        if self.lr_factor is not None:
            check_lr_factor(self.lr_factor, self.steps)

    def __repr__(self) -> str:
        """One short line, without the inner optimizer's functions and addresses (it goes into messages).

        >>> from locograd import optim
        >>> from locograd.optim.schedules import released_inner_factor
        >>> GD(steps=10, inner=optim.rmsprop_tf1(1e-5), lr_factor=released_inner_factor)
        GD(steps=10, lr=None, inner=rmsprop_tf1(lr=1e-05), lr_factor=released_inner_factor)
        """
        inner = (
            "None"
            if self.inner is None
            else f"{getattr(self.inner, 'name', type(self.inner).__name__)}(lr={self.inner.lr!r})"
        )
        factor = (
            "None"
            if self.lr_factor is None
            else getattr(self.lr_factor, "__name__", type(self.lr_factor).__name__)
        )
        return f"GD(steps={self.steps}, lr={self.lr!r}, inner={inner}, lr_factor={factor})"

    @property
    def base_lr(self) -> float:
        """The step size before ``lr_factor``: ``lr``, or the inner optimizer's own."""
        return self.inner.lr if self.lr is None else self.lr

    def with_lr(self, lr: float) -> GD:
        """The same solver with the step size ``lr`` (the training loop's per-epoch rate)."""
        return dataclasses.replace(self, lr=lr)


@dataclasses.dataclass(frozen=True)
class Exact:
    r"""The exact local minimiser: closed form (S) or Newton-CG with a line search (M, needs ``eta``).

    Attributes:
        tol: relative gradient tolerance of the M solve, ``None`` for the dtype's default
            (1e-10 in float64, 1e-4 in float32).
    """

    tol: float | None = None

    def __post_init__(self) -> None:
        # a relative tolerance of 1 or more stops before the first Newton step: the parameters unchanged
        object.__setattr__(
            self, "tol", number("tol", self.tol, low=0, high=1, high_open=True, allow_none=True)
        )


Solver = GD | Exact


def check_variant(variant: Any) -> S | M:
    """``variant`` unchanged if it is an :class:`S` or :class:`M`.

    Raises:
        TypeError: ``"variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got str 'M'"``.
    """
    if not isinstance(variant, S | M):
        shown = f" {variant!r}" if isinstance(variant, str | int | float) else ""
        raise TypeError(
            f"variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got {type(variant).__name__}{shown}"
        )
    return variant


def check_solver(solver: Any) -> GD | Exact:
    """``solver`` unchanged if it is a :class:`GD` or :class:`Exact`.

    Raises:
        TypeError: ``"solver: expected locoprop.GD(steps, lr, inner, lr_factor) or locoprop.Exact(tol), got str 'gd'"``.
    """
    if not isinstance(solver, GD | Exact):
        shown = f" {solver!r}" if isinstance(solver, str | int | float) else ""
        raise TypeError(
            "solver: expected locoprop.GD(steps, lr, inner, lr_factor) or locoprop.Exact(tol), "
            f"got {type(solver).__name__}{shown}"
        )
    return solver
