r"""First-order optimizers as :class:`~locograd.optim.base.GradientTransformation` s (the optax design).

``state = opt.init(params)`` and ``updates, state = opt.update(grads, state, params, lr=None)``
act on any tree of arrays: an :class:`~locograd.MLP`'s params (a list of ``{"W", "b"}`` dicts)
or a single layer's ``{"W", "b"}``; :func:`~locograd.optim.apply_updates` adds the updates.
Nothing is modified in place; the state is a NamedTuple of arrays and a step count, so it can be
inspected, tested one step at a time, and checkpointed.  ``lr`` overrides the optimizer's
learning rate for one call (schedules, the within-batch factor of LocoProp's inner loop).

Semantics (``g`` the gradient, ``w`` a parameter; the update :math:`u` is what is added to ``w``):

* ``sgd``: :math:`u = -\eta g`.
* ``momentum`` (PyTorch): :math:`m \leftarrow \mu m + g`, :math:`u = -\eta m`.
* ``nesterov`` (PyTorch): :math:`m \leftarrow \mu m + g`, :math:`u = -\eta (g + \mu m)`.
* ``adam`` (PyTorch): :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`,
  :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
  :math:`u = -\eta\, \hat m / (\sqrt{\hat v} + \epsilon)` with bias corrections.
* ``adagrad`` (PyTorch): :math:`s \leftarrow s + g^2`, :math:`u = -\eta g / (\sqrt{s} + \epsilon)`.
* ``rmsprop`` (PyTorch, no momentum): :math:`v \leftarrow \alpha v + (1-\alpha) g^2`,
  :math:`u = -\eta g / (\sqrt{v} + \epsilon)`.
* ``rmsprop_tf1`` (the released LocoProp code, TensorFlow 1 semantics):
  :math:`s \leftarrow \rho s + (1-\rho) g^2` with :math:`s` starting at ONES,
  :math:`m \leftarrow \mu m + \eta\, g / \sqrt{s + \epsilon}` (epsilon inside the
  root, the learning rate inside the momentum), :math:`u = -m`.

Each optimizer's state has its own NamedTuple type (:class:`AdamState` ``(step, m, v)``, ...),
and every ``update`` checks, before any work, that ``grads`` has the structure, shapes and
dtypes of ``params`` (float32 parameters with float64 gradients are refused, as PyTorch refuses
them: never upcast, never broadcast) and that ``state`` is exactly what this optimizer's
``init(params)`` builds (its type, the step count, and every slot's shapes and dtypes).
Anything else is one :class:`~locograd.errors.StateMismatchError` naming the path, e.g.
``"state: expected an SgdState (what sgd's init builds), got AdamState"`` or
``"state.m[0]['W']: expected shape (3, 4), got (3, 1)"``.  The check compares types, shapes
and dtypes only (no array is read), so it is cheap enough for every inner step;
:func:`check_state` runs it alone.

The fused in-place forms live apart, in the private :mod:`locograd._fast.updates`, reached
through each optimizer's one explicit hook ``opt.update_inplace(grads, state, params, lr=None)
-> state`` (same checks; bit for bit the pure result), which spreads the work over the
threads of :func:`locograd.backend.threads` in flat chunks.

>>> import numpy as np
>>> from locograd import optim
>>> opt = optim.sgd(lr=0.5)
>>> params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
>>> updates, state = opt.update({"W": np.ones((2, 2)), "b": np.ones(2)}, opt.init(params), params)
>>> new = optim.apply_updates(params, updates)
>>> new["W"][0, 0], new["b"][0], state.step
(np.float64(0.5), np.float64(-0.5), 1)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .._fast import kernels as fused
from .._fast import updates as fast
from ..backend import Array, array_namespace, is_cupy_array, tree_leaves, tree_map
from ..validators import canonical_choice, float_tree, number, same_layout, same_tree
from .base import GradientTransformation, check_state_type, check_step

Tree = Any


class SgdState(NamedTuple):
    """:func:`sgd`'s state: the step count."""

    step: int


class MomentumState(NamedTuple):
    """:func:`momentum`'s state: the step count and the buffer :math:`m` shaped like the params."""

    step: int
    momentum: Tree


class NesterovState(NamedTuple):
    """:func:`nesterov`'s state (the layout of :class:`MomentumState`, another type: never mixed up)."""

    step: int
    momentum: Tree


class AdamState(NamedTuple):
    """:func:`adam`'s state: the step count, the first and second moments."""

    step: int
    m: Tree
    v: Tree


class AdagradState(NamedTuple):
    """:func:`adagrad`'s state: the step count and the sum of squared gradients."""

    step: int
    sum: Tree


class RMSPropState(NamedTuple):
    """:func:`rmsprop`'s state: the step count and the mean square (from zeros)."""

    step: int
    square_avg: Tree


class RMSPropTF1State(NamedTuple):
    """:func:`rmsprop_tf1`'s state: the step count, the mean square ``ms`` (from ONES) and the momentum ``mom``."""

    step: int
    ms: Tree
    mom: Tree


STATES: dict[str, Any] = {
    "sgd": SgdState,
    "momentum": MomentumState,
    "nesterov": NesterovState,
    "adam": AdamState,
    "adagrad": AdagradState,
    "rmsprop": RMSPropState,
    "rmsprop_tf1": RMSPropTF1State,
}
"""Each first-order optimizer's state type."""

SLOTS: dict[str, tuple[str, ...]] = {name: cls._fields[1:] for name, cls in STATES.items()}
"""Each state's slots: arrays shaped like the parameters (besides ``step``)."""

Check = Callable[..., None]


def _lr(lr: float | None, default: float) -> float:
    return default if lr is None else number("lr", lr, low=0)


def _positive(name: str, value: float) -> float:
    return number(name, value, low=0, low_open=True)


def _unit(name: str, value: float) -> float:
    return number(name, value, low=0, high=1, high_open=True)


def _zeros(params: Tree) -> Tree:
    return tree_map(lambda p: array_namespace(p).zeros_like(p), params)


def _layout_ok(params: Tree, others: list[Tree]) -> bool:
    """Whether every tree of ``others`` has the structure of ``params``, whose leaves are floating
    arrays, with each leaf's shape, dtype and array type: one pass, no message formatted.

    ``False`` does not imply a mismatch (e.g. a tuple for a list); :func:`~locograd.validators.same_layout`
    then decides.
    """
    if isinstance(params, np.ndarray) or is_cupy_array(params):
        kind, shape, dtype = type(params), params.shape, params.dtype
        if dtype.kind != "f":
            return False
        for other in others:
            if (
                type(other) is not kind
                or other.shape != shape
                or not (other.dtype is dtype or other.dtype == dtype)
            ):
                return False
        return True
    if isinstance(params, dict):
        keys = params.keys()
        for other in others:
            if not isinstance(other, dict) or other.keys() != keys:
                return False
        for key, leaf in params.items():
            if not _layout_ok(leaf, [other[key] for other in others]):
                return False
        return True
    if isinstance(params, list | tuple) and not hasattr(params, "_fields"):
        n = len(params)
        for other in others:
            if type(other) is not type(params) or len(other) != n:
                return False
        for i, leaf in enumerate(params):
            if not _layout_ok(leaf, [other[i] for other in others]):
                return False
        return True
    return False


def _checker(name: str) -> Check:
    """The check of ``name``'s state (:data:`STATES`), each slot shaped like the params."""
    cls, slots = STATES[name], SLOTS[name]

    def check(
        grads: Tree | None,
        state: Any,
        params: Tree,
        *,
        state_name: str = "state",
        grads_name: str = "grads",
        params_name: str = "params",
    ) -> None:
        """Check ``state`` (and ``grads`` unless ``None``) against ``params``; see the module docstring."""
        check_state_type(state_name, state, cls, name)
        step = state.step
        if type(step) is not int or step < 0:  # the common case without a call; check_step decides
            check_step(f"{state_name}.step", step)
        others = [getattr(state, s) for s in slots]
        if grads is not None:
            others.insert(0, grads)
        if _layout_ok(params, others):
            return
        float_tree(params_name, params)  # something differs: find it and name its path
        if grads is not None:
            same_layout(grads_name, grads, params)
        for slot in slots:
            same_layout(f"{state_name}.{slot}", getattr(state, slot), params)

    return check


def check_state(
    opt: GradientTransformation, state: Any, params: Tree, name: str = "state", params_name: str = "params"
) -> None:
    """Check that ``state`` is what ``opt.init(params)`` builds: type, step, shapes and dtypes.

    Uses ``opt.check`` (every optimizer here has one; cheap, no array copied); for another
    transformation, compares with a fresh ``opt.init(params)``.

    Raises:
        StateMismatchError: naming the first path that differs.
    """
    if opt.check is not None:
        opt.check(None, state, params, state_name=name, params_name=params_name)
    else:
        same_tree(name, state, opt.init(params))


def _optimizer(
    name: str,
    lr0: float,
    init: Callable[[Tree], Any],
    reference: Callable[[Tree, Any, float], tuple[Tree, Any]],
    kernel: Callable[..., Any],
    hyperparams: dict[str, float],
) -> GradientTransformation:
    """The transformation of ``reference(grads, state, eta) -> (updates, state)`` and its fused ``kernel``.

    Both are reached through checked entry points: ``update`` (pure) and the fast path's hook
    ``update_inplace``.
    """
    check = _checker(name)

    def update(grads: Tree, state: Any, params: Tree = None, lr: float | None = None) -> tuple[Tree, Any]:
        eta = _lr(lr, lr0)
        check(grads, state, grads if params is None else params)
        return reference(grads, state, eta)

    slots = SLOTS[name]

    def update_inplace(grads: Tree, state: Any, params: Tree, lr: float | None = None) -> Any:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for what, tree in (("params", params), *((f"state.{slot}", getattr(state, slot)) for slot in slots)):
            if any(isinstance(a, np.ndarray) and not a.flags.writeable for a in tree_leaves(tree)):
                raise ValueError(
                    f"{what}: holds a read-only array; update_inplace writes the step into these arrays "
                    "(copy them, or use update)"
                )
        leaves = state._replace(**{slot: tree_leaves(getattr(state, slot)) for slot in slots})
        done = fused.chunked_update(kernel, tree_leaves(grads), leaves, tree_leaves(params), eta)
        return state._replace(step=done.step)

    def checked_init(params: Tree) -> Any:
        float_tree("params", params)  # before, init(None) built a state of object arrays
        if not tree_leaves(params):
            raise TypeError(f"params: expected a tree of floating arrays for {name}'s state, got {params!r}")
        return init(params)

    return GradientTransformation(name, checked_init, update, lr0, hyperparams, update_inplace, check)


def sgd(lr: float = 0.01) -> GradientTransformation:
    r"""Plain gradient descent :math:`u = -\eta g` (state: the step count)."""
    lr0 = _positive("lr", lr)

    def init(params: Tree) -> SgdState:
        return SgdState(0)

    def reference(grads: Tree, state: SgdState, eta: float) -> tuple[Tree, SgdState]:
        return tree_map(lambda g: -eta * g, grads), SgdState(state.step + 1)

    return _optimizer("sgd", lr0, init, reference, fast.sgd, {})


def _heavy_ball(name: str, lr: float, beta: float, nesterov: bool) -> GradientTransformation:
    lr0, mu = _positive("lr", lr), _unit("beta", beta)
    cls = NesterovState if nesterov else MomentumState

    def init(params: Tree) -> Any:
        return cls(0, _zeros(params))

    def reference(grads: Tree, state: Any, eta: float) -> tuple[Tree, Any]:
        buf = tree_map(lambda m, g: mu * m + g, state.momentum, grads)
        if nesterov:
            updates = tree_map(lambda g, m: -eta * (g + mu * m), grads, buf)
        else:
            updates = tree_map(lambda m: -eta * m, buf)
        return updates, cls(state.step + 1, buf)

    kernel = functools.partial(fast.heavy_ball, mu=mu, nesterov=nesterov)
    return _optimizer(name, lr0, init, reference, kernel, {"beta": mu})


def momentum(lr: float = 0.01, beta: float = 0.9) -> GradientTransformation:
    r"""Heavy-ball momentum, PyTorch semantics: :math:`m \leftarrow \beta m + g`, :math:`u = -\eta m`."""
    return _heavy_ball("momentum", lr, beta, nesterov=False)


def nesterov(lr: float = 0.01, beta: float = 0.9) -> GradientTransformation:
    r"""Nesterov momentum, PyTorch semantics: :math:`u = -\eta (g + \beta m)`."""
    return _heavy_ball("nesterov", lr, beta, nesterov=True)


def adam(
    lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    r"""Adam with bias correction (PyTorch semantics, epsilon outside the root)."""
    lr0, b1, b2, eps = (
        _positive("lr", lr),
        _unit("beta1", beta1),
        _unit("beta2", beta2),
        _positive("eps", eps),
    )

    def init(params: Tree) -> AdamState:
        return AdamState(0, _zeros(params), _zeros(params))

    def reference(grads: Tree, state: AdamState, eta: float) -> tuple[Tree, AdamState]:
        t = state.step + 1
        m = tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, state.m, grads)
        v = tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, state.v, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t

        def step(m_: Array, v_: Array) -> Array:
            return -((eta / c1) * m_ / (array_namespace(v_).sqrt(v_ / c2) + eps))

        return tree_map(step, m, v), AdamState(t, m, v)

    kernel = functools.partial(fast.adam, b1=b1, b2=b2, eps=eps)
    return _optimizer("adam", lr0, init, reference, kernel, {"beta1": b1, "beta2": b2, "eps": eps})


def adagrad(lr: float = 0.01, eps: float = 1e-10, initial_accumulator: float = 0.0) -> GradientTransformation:
    r"""AdaGrad (PyTorch semantics): :math:`s \leftarrow s + g^2`, :math:`u = -\eta g/(\sqrt s + \epsilon)`."""
    lr0, eps = _positive("lr", lr), _positive("eps", eps)
    s0 = number("initial_accumulator", initial_accumulator, low=0)

    def init(params: Tree) -> AdagradState:
        return AdagradState(0, tree_map(lambda p: array_namespace(p).full_like(p, s0), params))

    def reference(grads: Tree, state: AdagradState, eta: float) -> tuple[Tree, AdagradState]:
        s = tree_map(lambda s_, g: s_ + g * g, state.sum, grads)
        updates = tree_map(lambda g, s_: -(eta * g / (array_namespace(s_).sqrt(s_) + eps)), grads, s)
        return updates, AdagradState(state.step + 1, s)

    kernel = functools.partial(fast.adagrad, eps=eps)
    return _optimizer("adagrad", lr0, init, reference, kernel, {"eps": eps, "initial_accumulator": s0})


def rmsprop(lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8) -> GradientTransformation:
    r"""RMSProp (PyTorch semantics): :math:`v` starts at zeros, epsilon outside the root."""
    lr0, alpha, eps = _positive("lr", lr), _unit("alpha", alpha), _positive("eps", eps)

    def init(params: Tree) -> RMSPropState:
        return RMSPropState(0, _zeros(params))

    def reference(grads: Tree, state: RMSPropState, eta: float) -> tuple[Tree, RMSPropState]:
        v = tree_map(lambda v_, g: alpha * v_ + (1 - alpha) * g * g, state.square_avg, grads)
        updates = tree_map(lambda g, v_: -(eta * g / (array_namespace(v_).sqrt(v_) + eps)), grads, v)
        return updates, RMSPropState(state.step + 1, v)

    kernel = functools.partial(fast.rmsprop, alpha=alpha, eps=eps)
    return _optimizer("rmsprop", lr0, init, reference, kernel, {"alpha": alpha, "eps": eps})


def rmsprop_tf1(
    lr: float = 1e-5, decay: float = 0.9, momentum: float = 0.999, eps: float = 1e-5
) -> GradientTransformation:
    r"""RMSProp with TensorFlow 1 semantics, as in the released LocoProp code.

    .. math::
        s \leftarrow \rho s + (1-\rho) g^2 \ (s_0 = 1), \quad
        m \leftarrow \mu m + \eta\, g / \sqrt{s + \epsilon}, \quad
        u = -m.

    Defaults are the released configuration: ``lr=1e-5``, ``decay=0.9``,
    ``momentum=0.999``, ``eps=1e-5``.
    """
    lr0, rho, mu, eps = (
        _positive("lr", lr),
        _unit("decay", decay),
        _unit("momentum", momentum),
        _positive("eps", eps),
    )

    def init(params: Tree) -> RMSPropTF1State:
        return RMSPropTF1State(0, tree_map(lambda p: array_namespace(p).ones_like(p), params), _zeros(params))

    def reference(grads: Tree, state: RMSPropTF1State, eta: float) -> tuple[Tree, RMSPropTF1State]:
        ms = tree_map(lambda s, g: rho * s + (1 - rho) * g * g, state.ms, grads)
        mom = tree_map(
            lambda m, g, s: mu * m + eta * g / array_namespace(s).sqrt(s + eps), state.mom, grads, ms
        )
        return tree_map(lambda m: -m, mom), RMSPropTF1State(state.step + 1, ms, mom)

    kernel = functools.partial(fast.rmsprop_tf1, rho=rho, mu=mu, eps=eps)
    return _optimizer("rmsprop_tf1", lr0, init, reference, kernel, {"decay": rho, "momentum": mu, "eps": eps})


FIRST_ORDER: dict[str, Callable[..., GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adam": adam,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "rmsprop_tf1": rmsprop_tf1,
}


def get(name: str, **kwargs: float) -> GradientTransformation:
    """Build a first-order optimizer by name (case, spaces and ``_``/``-`` do not matter); unknown names list the valid ones."""
    return FIRST_ORDER[canonical_choice("optimizer", name, tuple(FIRST_ORDER))](**kwargs)
