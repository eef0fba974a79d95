r"""The two optimizer protocols, optax-like, and what they share.

**Gradient transformations** (optax's design). A :class:`GradientTransformation` is a pair
of pure functions on any tree of arrays (a layer's ``{"W", "b"}``, an :class:`~locograd.MLP`'s
list of them, a list of augmented ``[W; b]`` matrices):

* ``state = t.init(params)``: a NamedTuple of arrays shaped like ``params`` and a step count;
* ``updates, state = t.update(grads, state, params, lr=None)``: ``updates`` has the structure,
  shapes and dtypes of ``params``, and :func:`apply_updates` adds them:
  :math:`w \leftarrow w + u`.  ``lr`` replaces the transformation's learning rate for one call
  (the training loop's per-epoch schedule, LocoProp's within-batch factor).

Every first-order optimizer of :mod:`locograd.optim` (``sgd``, ``momentum``, ``adam``, ...) is
one; :func:`chain` composes them (``updates`` of one are the ``grads`` of the next).  Nothing is
modified in place.  A transformation may also carry ``update_inplace``, an explicit hook to a
fused kernel of the private fast path (:mod:`locograd._fast.updates`) that writes the step into
``params`` and the state's arrays for callers that own both (LocoProp's inner loop); it gives
bit for bit the pure result.

**Network optimizers.** A :class:`NetOptimizer` owns a network and steps on a batch:
``state = opt.init(params)``, ``params, state, info = opt.step(params, x, y, state, lr=None)``,
with ``info`` one :class:`StepInfo` for all (the loss at the parameters before the step, and
LocoProp's per-layer reports).  :class:`~locograd.optim.BackProp`, :class:`~locograd.optim.LocoProp`,
:class:`~locograd.optim.KFAC`, :class:`~locograd.optim.Shampoo` and :class:`~locograd.optim.FOOF`
implement it.  The learning-rate schedule is the training loop's: it passes each epoch's rate as
``lr``.

>>> import numpy as np
>>> from locograd import optim
>>> opt = optim.chain(optim.scale(0.5), optim.sgd(lr=1.0))
>>> params = {"W": np.ones((1, 2)), "b": np.zeros(2)}
>>> grads = {"W": np.ones((1, 2)), "b": np.ones(2)}
>>> updates, state = opt.update(grads, opt.init(params), params)
>>> optim.apply_updates(params, updates)["W"].tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .._fast import kernels as fused
from ..backend import Array, tree_leaves, tree_map
from ..errors import StateMismatchError
from ..locoprop.step import LayerReport
from ..nn import Params
from ..validators import float_tree, number, same_layout

Tree = Any


class StepInfo(NamedTuple):
    """What one step of a network optimizer saw: the one record every :class:`NetOptimizer` returns.

    Prints in one line: ``StepInfo(loss=0.693147, layers=[])``.

    Attributes:
        loss: the loss :math:`L(W_t)` at the parameters before the step, a 0-d array on the
            data's device (no host transfer until it is printed or converted).
        layers: LocoProp's per-layer :class:`~locograd.locoprop.LayerReport` s when it runs with
            ``diagnostics=True``, else empty.
    """

    loss: Array
    layers: tuple[LayerReport, ...] = ()

    def __repr__(self) -> str:
        return f"StepInfo(loss={float(self.loss):.6g}, layers={list(self.layers)})"


__all__ = [
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "NetOptimizer",
    "StepInfo",
    "all_finite",
    "apply_updates",
    "chain",
    "check_state_type",
    "check_step",
    "scale",
]


class GradientTransformation(NamedTuple):
    """A pure first-order optimizer or gradient transformation (see the module docstring).

    Attributes:
        name: e.g. ``"adam"``; states and messages name it.
        init: ``init(params) -> state`` (a NamedTuple).
        update: ``update(grads, state, params=None, lr=None) -> (updates, state)``.
        lr: the default learning rate, ``None`` for a transformation without one (:func:`scale`).
        hyperparams: the other settings, for display and records.
        update_inplace: the fast path's hook, or ``None``:
            ``update_inplace(grads, state, params, lr=None) -> state`` writes
            :math:`w + u` into ``params`` and the new slots into the state's arrays (``grads``
            is scratch), and returns the state (a new NamedTuple holding the same arrays);
            bit for bit :func:`apply_updates` of ``update``.
        check: ``check(grads, state, params)``: refuses a state or gradients that do not fit
            ``params`` (one :class:`~locograd.errors.StateMismatchError` naming the path), or ``None``.
    """

    name: str
    init: Callable[[Tree], Any]
    update: Callable[..., tuple[Tree, Any]]
    lr: float | None = None
    hyperparams: Mapping[str, float] = {}
    update_inplace: Callable[..., Any] | None = None
    check: Callable[..., None] | None = None


def apply_updates(params: Tree, updates: Tree) -> Tree:
    r""":math:`w + u` leaf by leaf: the new parameters (``params`` is not modified).

    Raises:
        StateMismatchError: ``updates`` of another structure, shape or dtype than ``params``.
    """
    float_tree("params", params)  # before, strings were concatenated: {"W": "ab"} + {"W": "cd"}
    same_layout("updates", updates, params)
    return tree_map(lambda p, u: p + u, params, updates)


class EmptyState(NamedTuple):
    """The state of a stateless transformation (:func:`scale`)."""


class ChainState(NamedTuple):
    """The states of a :func:`chain`'s members, in order."""

    states: tuple[Any, ...]


def _article(name: str) -> str:
    """``"an"`` before a vowel sound: AdamState, EmptyState, and the initialisms SgdState, RMSProp...State."""
    return "an" if name[:1] in "AEIOU" or name.startswith(("Sgd", "RMS")) else "a"


def check_state_type(name: str, state: Any, cls: type, owner: str) -> None:
    """Check that ``state`` is a ``cls`` (what ``owner``'s ``init`` builds).

    Raises:
        StateMismatchError: ``"state: expected an AdamState (what adam's init builds), got SgdState"``;
            a dict is named as a dict state (with its ``"name"`` entry if it has one).
    """
    if type(state) is cls:
        return
    article = _article(cls.__name__)
    if isinstance(state, dict):
        tag = state.get("name")
        what = f"a dict state{f' tagged {tag!r}' if isinstance(tag, str) else ''}"
    else:
        what = type(state).__name__
    raise StateMismatchError(
        f"{name}: expected {article} {cls.__name__} (what {owner}'s init builds), got {what}"
    )


def check_step(name: str, value: Any) -> int:
    """A step counter: an ``int`` (or NumPy integer, never a bool) ``>= 0``.

    Raises:
        StateMismatchError: ``"state.step: expected an integer >= 0, got 1.5"``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        shown = repr(value) if isinstance(value, int | float | str | np.generic) else type(value).__name__
        raise StateMismatchError(f"{name}: expected an integer >= 0, got {shown}")
    return int(value)


def scale(factor: float) -> GradientTransformation:
    r"""Multiply the updates by a constant: :math:`u \leftarrow c\,u` (stateless).

    >>> import numpy as np
    >>> t = scale(-2.0)
    >>> t.update({"w": np.ones(2)}, t.init({"w": np.ones(2)}))[0]["w"].tolist()
    [-2.0, -2.0]
    """
    c = number("factor", factor)

    def init(params: Tree) -> EmptyState:
        return EmptyState()

    def update(grads: Tree, state: Any, params: Tree = None, lr: float | None = None) -> tuple[Tree, Any]:
        number(
            "lr", lr, low=0, allow_none=True
        )  # scale has no rate of its own: a given one is still a number
        check_state_type("state", state, EmptyState, "scale")
        return tree_map(lambda g: c * g, grads), state

    return GradientTransformation("scale", init, update, None, {"factor": c})


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    r"""Compose transformations: each one's updates are the next one's gradients (optax's ``chain``).

    The state is a :class:`ChainState` of the members' states.  ``lr`` goes to the members that
    have a learning rate (``t.lr is not None``).  A chain has no fused hook
    (``update_inplace=None``): callers take the pure path.

    Raises:
        TypeError: a member that is not a :class:`GradientTransformation`.
        ValueError: no member.
    """
    if not transforms:
        raise ValueError("transforms: expected at least one GradientTransformation, got none")
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"transforms[{i}]: expected a GradientTransformation, got {type(t).__name__}")
    name = "chain(" + ", ".join(t.name for t in transforms) + ")"
    rates = [t.lr for t in transforms if t.lr is not None]

    def init(params: Tree) -> ChainState:
        return ChainState(tuple(t.init(params) for t in transforms))

    def update(grads: Tree, state: Any, params: Tree = None, lr: float | None = None) -> tuple[Tree, Any]:
        number("lr", lr, low=0, allow_none=True)
        check_state_type("state", state, ChainState, name)
        if len(state.states) != len(transforms):
            raise StateMismatchError(
                f"state.states: expected {len(transforms)} member states, got {len(state.states)}"
            )
        new_states = []
        for t, s in zip(transforms, state.states, strict=True):
            grads, s = t.update(grads, s, params, lr=lr if t.lr is not None else None)
            new_states.append(s)
        return grads, ChainState(tuple(new_states))

    return GradientTransformation(name, init, update, rates[0] if len(rates) == 1 else None, {})


@runtime_checkable
class NetOptimizer(Protocol):
    """The network-level protocol: what the training loop, the study and the benchmarks drive.

    ``name`` names the state type and the messages; ``lr`` is the default learning rate that
    ``step`` uses when the caller passes none.
    """

    @property
    def name(self) -> str:
        """The optimizer's name (``"kfac"``, ``"locoprop"``, ...)."""
        ...

    @property
    def lr(self) -> float:
        """The learning rate ``step`` uses when the caller passes none."""
        ...

    def init(self, params: Params) -> Any:
        """The state for ``params`` (a NamedTuple)."""
        ...

    def step(
        self, params: Params, x: Array, y: Array, state: Any, *, lr: float | None = None
    ) -> tuple[Params, Any, StepInfo]:
        """One batch: ``(new_params, new_state, info)``; ``params`` and ``state`` are not modified."""
        ...


def all_finite(tree: Tree) -> bool:
    """Whether every array leaf of ``tree`` is finite (:func:`locograd._fast.kernels.all_finite`:
    one sum per array on the threads in force, the exact test only where a sum is not finite)."""
    return fused.all_finite([a for a in tree_leaves(tree) if hasattr(a, "dtype")])
