r"""First-order optimizers as pure ``(init, update)`` pairs (the optax idea).

``state = opt.init(params)`` and ``new_params, state = opt.update(grads, state, params, lr=None)``
act on any tree of arrays: an :class:`~locograd.MLP`'s params (a list of
``{"W", "b"}`` dicts) or a single layer's ``{"W", "b"}``.  Nothing is
modified in place; the state is a plain dict of arrays (and a step count), so
it can be inspected, tested one step at a time, and checkpointed.  ``lr``
overrides the optimizer's learning rate for one call (schedules, the
within-batch factor of LocoProp's inner loop).

Semantics (``g`` the gradient, ``w`` a parameter):

* ``sgd``: :math:`w \leftarrow w - \eta g`.
* ``momentum`` (PyTorch): :math:`m \leftarrow \mu m + g`, :math:`w \leftarrow w - \eta m`.
* ``nesterov`` (PyTorch): :math:`m \leftarrow \mu m + g`, :math:`w \leftarrow w - \eta (g + \mu m)`.
* ``adam`` (PyTorch): :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`,
  :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
  :math:`w \leftarrow w - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)` with bias corrections.
* ``adagrad`` (PyTorch): :math:`s \leftarrow s + g^2`, :math:`w \leftarrow w - \eta g / (\sqrt{s} + \epsilon)`.
* ``rmsprop`` (PyTorch, no momentum): :math:`v \leftarrow \alpha v + (1-\alpha) g^2`,
  :math:`w \leftarrow w - \eta g / (\sqrt{v} + \epsilon)`.
* ``rmsprop_tf1`` (the released LocoProp code, TensorFlow 1 semantics):
  :math:`s \leftarrow \rho s + (1-\rho) g^2` with :math:`s` starting at ONES,
  :math:`m \leftarrow \mu m + \eta\, g / \sqrt{s + \epsilon}` (epsilon inside the
  root, the learning rate inside the momentum), :math:`w \leftarrow w - m`.

Every state is tagged with its optimizer's name (``state["name"]``), and every
``update`` checks, before any work, that ``grads`` has the structure, shapes
and dtypes of ``params`` (float32 parameters with float64 gradients are
refused, as PyTorch refuses them: never upcast, never broadcast) and that
``state`` is exactly what this optimizer's ``init(params)`` builds (its name,
keys, the step count, and every slot's shapes and dtypes).  Anything else is one
:class:`~locograd.errors.StateMismatchError` naming the path, e.g.
``"state: expected an sgd state, got an adam state (state['name'] is 'adam')"`` or
``"state['m']['W']: expected shape (3, 4), got (3, 1)"``.  The check compares
keys, shapes and dtypes only (no array is read), so it is cheap enough for
every inner step; :func:`check_state` runs it alone.

Each ``update`` also carries ``update.inplace(grads, state, params, lr=None)``:
the same step written into ``params`` and the state's arrays (``grads`` is
used as scratch), bit for bit the pure result.  It is for callers that own all
three, e.g. :func:`locograd.locoprop.solve_gd` after its first inner step;
everyone else uses the pure ``update``.

>>> import numpy as np
>>> from locograd import optim
>>> opt = optim.sgd(lr=0.5)
>>> params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
>>> state = opt.init(params)
>>> new, state = opt.update({"W": np.ones((2, 2)), "b": np.ones(2)}, state, params)
>>> new["W"][0, 0], new["b"][0]
(np.float64(0.5), np.float64(-0.5))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..backend import Array, array_namespace, is_cupy_array, tree_leaves, tree_map
from ..errors import StateMismatchError
from ..validators import canonical_choice, float_tree, real, same_layout, same_tree

Tree = Any
State = dict[str, Any]


class Optimizer(NamedTuple):
    """A pure first-order optimizer.

    Attributes:
        name: e.g. ``"adam"``.
        lr: default learning rate.
        init: ``init(params) -> state``.
        update: ``update(grads, state, params, lr=None) -> (new_params, new_state)``.
        hyperparams: the other settings, for display and checkpoints.
    """

    name: str
    lr: float
    init: Callable[[Tree], State]
    update: Callable[..., tuple[Tree, State]]
    hyperparams: dict[str, float]


def _positive(value: float, name: str, allow_zero: bool = False) -> float:
    v = real(name, value, f"a finite number {'>= 0' if allow_zero else '> 0'}")
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")
    return v


def _unit(value: float, name: str) -> float:
    v = real(name, value, "a number in [0, 1)")
    if not (0 <= v < 1):
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return v


def _lr(lr: float | None, default: float) -> float:
    return default if lr is None else _positive(lr, "lr", allow_zero=True)


def _zeros(params: Tree) -> Tree:
    return tree_map(lambda p: array_namespace(p).zeros_like(p), params)


def _fresh(x: Array, other: Array) -> bool:
    """Whether the temporary ``x`` can take ``x (op) other`` in place: same shape, no change of dtype."""
    return (
        getattr(x, "ndim", 0) > 0
        and getattr(x, "shape", None) == getattr(other, "shape", None)
        and array_namespace(x).result_type(x, other) == x.dtype
    )


def _minus(p: Array, t: Array) -> Array:
    """``p - t`` written into the temporary ``t`` when it can be (bit for bit the same)."""
    return array_namespace(t).subtract(p, t, out=t) if _fresh(t, p) else p - t


def _plus(t: Array, u: Array) -> Array:
    """``t + u`` written into the temporary ``t`` when it can be."""
    if _fresh(t, u):
        t += u
        return t
    return t + u


def _times(t: Array, u: Array) -> Array:
    """``t * u`` written into the temporary ``t`` when it can be."""
    if _fresh(t, u):
        t *= u
        return t
    return t * u


def _divide(t: Array, u: Array) -> Array:
    """``t / u`` written into the temporary ``t`` when it can be."""
    if _fresh(t, u):
        t /= u
        return t
    return t / u


def _sqrt(t: Array) -> Array:
    """``sqrt(t)`` written into the temporary ``t`` when it can be."""
    xp = array_namespace(t)
    return xp.sqrt(t, out=t) if getattr(t, "ndim", 0) > 0 else xp.sqrt(t)


InplaceUpdate = Callable[..., None]
Check = Callable[..., None]

_MISSING = object()
_LAYOUTS: set[tuple[str, frozenset[str]]] = set()  # (name, keys without "name") of every known state
_SPELLED = {"sgd", "rmsprop", "rmsprop_tf1"}  # read letter by letter: "an sgd state"


def register_layout(name: str, keys: set[str] | frozenset[str]) -> frozenset[str]:
    """Record the keys of a ``name`` state (``"name"`` included), to recognise an untagged one; returns them."""
    keys = frozenset(keys) | {"name"}
    _LAYOUTS.add((name, keys - {"name"}))
    return keys


def _a(name: str) -> str:
    """``"an adam"``, ``"a kfac"``: the optimizer's name with its article."""
    return f"{'an' if name in _SPELLED or name[:1] in 'aeiou' else 'a'} {name}"


def check_kind(name: str, state: Any, expected: str, keys: frozenset[str]) -> None:
    """Check that ``state`` is a dict tagged ``state["name"] == expected`` with exactly ``keys``.

    Raises:
        StateMismatchError: ``"state: expected an sgd state, got an adam state (state['name'] is 'adam')"``;
            for a state without its tag, the keys expected and got, and whose layout they are.
    """
    if not isinstance(state, dict):
        raise StateMismatchError(
            f"{name}: expected {_a(expected)} state (the dict its init builds), got {type(state).__name__}"
        )
    tag = state.get("name", _MISSING)
    if not (isinstance(tag, str) and tag == expected):
        if isinstance(tag, str):
            raise StateMismatchError(
                f"{name}: expected {_a(expected)} state, got {_a(tag)} state ({name}['name'] is {tag!r})"
            )
        if tag is not _MISSING:
            raise StateMismatchError(f"{name}['name']: expected {expected!r}, got {type(tag).__name__}")
        got = sorted(map(str, state))
        like = sorted({n for n, k in _LAYOUTS if k == set(state)})
        hint = f", the layout of {' or '.join(map(_a, like))} state without its 'name'" if like else ""
        raise StateMismatchError(
            f"{name}: expected {_a(expected)} state with the keys {sorted(keys)}, got the keys {got}{hint}"
        )
    if state.keys() != keys:
        raise StateMismatchError(
            f"{name}: expected the keys {sorted(keys)} of {_a(expected)} state, got {sorted(map(str, state))}"
        )


def check_step(name: str, value: Any) -> int:
    """A step counter: an ``int`` (or NumPy integer, never a bool) ``>= 0``.

    Raises:
        StateMismatchError: ``"state['step']: expected an integer >= 0, got 1.5"``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        shown = repr(value) if isinstance(value, int | float | str | np.generic) else type(value).__name__
        raise StateMismatchError(f"{name}: expected an integer >= 0, got {shown}")
    return int(value)


SLOTS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum",),
    "nesterov": ("momentum",),
    "adam": ("m", "v"),
    "adagrad": ("sum",),
    "rmsprop": ("square_avg",),
    "rmsprop_tf1": ("ms", "mom"),
}
"""Each first-order optimizer's state slots: arrays shaped like the parameters (besides ``name`` and ``step``)."""

for _name, _slots in SLOTS.items():
    register_layout(_name, {"step", *_slots})


def _layout_ok(params: Tree, others: list[Tree]) -> bool:
    """Whether every tree of ``others`` has the structure of ``params``, whose leaves are floating
    arrays, with each leaf's shape, dtype and array type: one pass, no message formatted.

    ``False`` does not imply a mismatch (e.g. a tuple for a list); :func:`~locograd.validators.same_tree`
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
    """The check of ``name``'s state ``{"name", "step", *SLOTS[name]}``, each slot shaped like params."""
    slots = SLOTS[name]
    keys = register_layout(name, {"step", *slots})

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
        check_kind(state_name, state, name, keys)
        step = state["step"]
        if type(step) is not int or step < 0:  # the common case without a call; check_step decides
            check_step(f"{state_name}['step']", step)
        others = [state[slot] for slot in slots] if grads is None else [grads, *(state[s] for s in slots)]
        if _layout_ok(params, others):
            return
        float_tree(params_name, params)  # something differs: find it and name its path
        if grads is not None:
            same_layout(grads_name, grads, params)
        for slot in slots:
            same_layout(f"{state_name}[{slot!r}]", state[slot], params)

    return check


def _with_inplace(
    update: Callable[..., tuple[Tree, State]], inplace: InplaceUpdate, check: Check
) -> Callable[..., tuple[Tree, State]]:
    """Attach ``inplace`` and ``check`` to ``update`` as ``update.inplace``, ``update.check``."""
    update.inplace = inplace  # type: ignore[attr-defined]
    update.check = check  # type: ignore[attr-defined]
    return update


def check_state(
    opt: Optimizer, state: Any, params: Tree, name: str = "state", params_name: str = "params"
) -> None:
    """Check that ``state`` is what ``opt.init(params)`` builds: name, keys, step, shapes and dtypes.

    Uses ``opt.update.check`` (every optimizer here has one; cheap, no array
    copied); for another optimizer, compares with a fresh ``opt.init(params)``.

    Raises:
        StateMismatchError: naming the first path that differs.
    """
    check = getattr(opt.update, "check", None)
    if check is not None:
        check(None, state, params, state_name=name, params_name=params_name)
    else:
        same_tree(name, state, opt.init(params))


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


def sgd(lr: float = 0.01) -> Optimizer:
    r"""Plain gradient descent :math:`w \leftarrow w - \eta g` (state: the step count)."""
    lr0 = _positive(lr, "lr")

    check = _checker("sgd")

    def init(params: Tree) -> State:
        return {"name": "sgd", "step": 0}

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        new = tree_map(lambda p, g: _minus(p, eta * g), params, grads)
        return new, {"name": "sgd", "step": state["step"] + 1}

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for g, p in _leaves(grads, params):
            g *= eta
            p -= g
        state["step"] += 1

    return Optimizer("sgd", lr0, init, _with_inplace(update, inplace, check), {})


def _heavy_ball(name: str, lr: float, beta: float, nesterov: bool) -> Optimizer:
    lr0, mu = _positive(lr, "lr"), _unit(beta, "beta")
    check = _checker(name)

    def init(params: Tree) -> State:
        return {"name": name, "step": 0, "momentum": _zeros(params)}

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        buf = tree_map(lambda m, g: mu * m + g, state["momentum"], grads)
        if nesterov:
            new = tree_map(lambda p, g, m: p - eta * (g + mu * m), params, grads, buf)
        else:
            new = tree_map(lambda p, m: p - eta * m, params, buf)
        return new, {"name": name, "step": state["step"] + 1, "momentum": buf}

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for g, p, m in _leaves(grads, params, state["momentum"]):
            m *= mu
            m += g
            if nesterov:
                g += mu * m
                g *= eta
            else:
                array_namespace(m).multiply(m, eta, out=g)
            p -= g
        state["step"] += 1

    return Optimizer(name, lr0, init, _with_inplace(update, inplace, check), {"beta": mu})


def momentum(lr: float = 0.01, beta: float = 0.9) -> Optimizer:
    r"""Heavy-ball momentum, PyTorch semantics: :math:`m \leftarrow \beta m + g`, :math:`w \leftarrow w - \eta m`."""
    return _heavy_ball("momentum", lr, beta, nesterov=False)


def nesterov(lr: float = 0.01, beta: float = 0.9) -> Optimizer:
    r"""Nesterov momentum, PyTorch semantics: :math:`w \leftarrow w - \eta (g + \beta m)`."""
    return _heavy_ball("nesterov", lr, beta, nesterov=True)


def adam(lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    r"""Adam with bias correction (PyTorch semantics, epsilon outside the root)."""
    lr0, b1, b2, eps = (
        _positive(lr, "lr"),
        _unit(beta1, "beta1"),
        _unit(beta2, "beta2"),
        _positive(eps, "eps"),
    )

    check = _checker("adam")

    def init(params: Tree) -> State:
        return {"name": "adam", "step": 0, "m": _zeros(params), "v": _zeros(params)}

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        t = state["step"] + 1
        m = tree_map(lambda m_, g: b1 * m_ + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, state["v"], grads)
        c1, c2 = 1 - b1**t, 1 - b2**t

        def apply(p: Array, m_: Array, v_: Array) -> Array:
            return p - (eta / c1) * m_ / (array_namespace(v_).sqrt(v_ / c2) + eps)

        return tree_map(apply, params, m, v), {"name": "adam", "step": t, "m": m, "v": v}

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        t = state["step"] + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        for g, p, m_, v_ in _leaves(grads, params, state["m"], state["v"]):
            xp = array_namespace(g)
            scratch = xp.empty_like(g)
            xp.multiply(g, 1 - b1, out=scratch)
            m_ *= b1
            m_ += scratch
            _decay_into(v_, b2, g, scratch)
            xp.divide(v_, c2, out=scratch)
            xp.sqrt(scratch, out=scratch)
            scratch += eps
            xp.multiply(m_, eta / c1, out=g)
            g /= scratch
            p -= g
        state["step"] = t

    return Optimizer(
        "adam", lr0, init, _with_inplace(update, inplace, check), {"beta1": b1, "beta2": b2, "eps": eps}
    )


def adagrad(lr: float = 0.01, eps: float = 1e-10, initial_accumulator: float = 0.0) -> Optimizer:
    r"""AdaGrad (PyTorch semantics): :math:`s \leftarrow s + g^2`, :math:`w \leftarrow w - \eta g/(\sqrt s + \epsilon)`."""
    lr0, eps, s0 = (
        _positive(lr, "lr"),
        _positive(eps, "eps"),
        _positive(initial_accumulator, "initial_accumulator", True),
    )

    check = _checker("adagrad")

    def init(params: Tree) -> State:
        return {
            "name": "adagrad",
            "step": 0,
            "sum": tree_map(lambda p: array_namespace(p).full_like(p, s0), params),
        }

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        s = tree_map(lambda s_, g: s_ + g * g, state["sum"], grads)
        new = tree_map(lambda p, g, s_: p - eta * g / (array_namespace(s_).sqrt(s_) + eps), params, grads, s)
        return new, {"name": "adagrad", "step": state["step"] + 1, "sum": s}

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for g, p, s_ in _leaves(grads, params, state["sum"]):
            s_ += g * g
            _scaled_step(p, g, s_, eta, eps)
        state["step"] += 1

    return Optimizer(
        "adagrad", lr0, init, _with_inplace(update, inplace, check), {"eps": eps, "initial_accumulator": s0}
    )


def rmsprop(lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8) -> Optimizer:
    r"""RMSProp (PyTorch semantics): :math:`v` starts at zeros, epsilon outside the root."""
    lr0, alpha, eps = _positive(lr, "lr"), _unit(alpha, "alpha"), _positive(eps, "eps")

    check = _checker("rmsprop")

    def init(params: Tree) -> State:
        return {"name": "rmsprop", "step": 0, "square_avg": _zeros(params)}

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        v = tree_map(lambda v_, g: alpha * v_ + (1 - alpha) * g * g, state["square_avg"], grads)
        new = tree_map(lambda p, g, v_: p - eta * g / (array_namespace(v_).sqrt(v_) + eps), params, grads, v)
        return new, {"name": "rmsprop", "step": state["step"] + 1, "square_avg": v}

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for g, p, v_ in _leaves(grads, params, state["square_avg"]):
            _decay_into(v_, alpha, g, array_namespace(g).empty_like(g))
            _scaled_step(p, g, v_, eta, eps)
        state["step"] += 1

    return Optimizer(
        "rmsprop", lr0, init, _with_inplace(update, inplace, check), {"alpha": alpha, "eps": eps}
    )


def rmsprop_tf1(
    lr: float = 1e-5, decay: float = 0.9, momentum: float = 0.999, eps: float = 1e-5
) -> Optimizer:
    r"""RMSProp with TensorFlow 1 semantics, as in the released LocoProp code.

    .. math::
        s \leftarrow \rho s + (1-\rho) g^2 \ (s_0 = 1), \quad
        m \leftarrow \mu m + \eta\, g / \sqrt{s + \epsilon}, \quad
        w \leftarrow w - m.

    Defaults are the released configuration: ``lr=1e-5``, ``decay=0.9``,
    ``momentum=0.999``, ``eps=1e-5``.
    """
    lr0, rho, mu, eps = (
        _positive(lr, "lr"),
        _unit(decay, "decay"),
        _unit(momentum, "momentum"),
        _positive(eps, "eps"),
    )

    check = _checker("rmsprop_tf1")

    def init(params: Tree) -> State:
        return {
            "name": "rmsprop_tf1",
            "step": 0,
            "ms": tree_map(lambda p: array_namespace(p).ones_like(p), params),
            "mom": _zeros(params),
        }

    def update(grads: Tree, state: State, params: Tree, lr: float | None = None) -> tuple[Tree, State]:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        ms = tree_map(lambda s, g: _plus(rho * s, _times((1 - rho) * g, g)), state["ms"], grads)
        mom = tree_map(
            lambda m, g, s: _plus(mu * m, _divide(eta * g, _sqrt(s + eps))), state["mom"], grads, ms
        )
        return tree_map(lambda p, m: p - m, params, mom), {
            "name": "rmsprop_tf1",
            "step": state["step"] + 1,
            "ms": ms,
            "mom": mom,
        }

    def inplace(grads: Tree, state: State, params: Tree, lr: float | None = None) -> None:
        eta = _lr(lr, lr0)
        check(grads, state, params)
        for g, p, s, m in _leaves(grads, params, state["ms"], state["mom"]):
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
        state["step"] += 1

    return Optimizer(
        "rmsprop_tf1",
        lr0,
        init,
        _with_inplace(update, inplace, check),
        {"decay": rho, "momentum": mu, "eps": eps},
    )


FIRST_ORDER: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adam": adam,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "rmsprop_tf1": rmsprop_tf1,
}


def get(name: str, **kwargs: float) -> Optimizer:
    """Build a first-order optimizer by name (case, spaces and ``_``/``-`` do not matter); unknown names list the valid ones."""
    return FIRST_ORDER[canonical_choice("optimizer", name, tuple(FIRST_ORDER))](**kwargs)
