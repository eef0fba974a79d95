r"""A small reverse-mode tape: the independent reference path for gradients.

Every operation on a :class:`Tensor` records its parents together with a
vector-Jacobian product (VJP) closure; :meth:`Tensor.backward` walks the tape
in reverse topological order and accumulates
:math:`\bar{x} = \sum_{y \in \mathrm{children}(x)} J_{y,x}^\top \bar{y}`.

This module deliberately does not import the hand-written derivative rules of
``locograd.transfer``, ``locograd.layers`` or ``locograd.losses``: the
transfer functions here are composed from elementary tape primitives, so they
give an independent check of those rules.

Arrays stay in the namespace (NumPy or CuPy) of the data, and dtypes are
preserved: a non-:class:`Tensor` operand (a Python scalar or an array) is cast
to the dtype of the :class:`Tensor` it meets.

>>> import numpy as np
>>> from locograd import autodiff as ad
>>> x = ad.Tensor(np.array([1.0, 2.0]))
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4.])
>>> ad.grad(lambda w: ad.tanh(w).sum())(np.zeros(3, dtype=np.float32))
array([1., 1., 1.], dtype=float32)
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, cast

from locograd.backend import Array, array_namespace, check_float_array, tree_leaves, tree_map

VJP = Callable[[Array], Array]
"""Maps the cotangent of an output (output shape) to that of one parent (parent shape)."""

Operand = Any
"""A :class:`Tensor`, an array or a Python scalar."""


class Tensor:
    r"""An array on the tape.

    Args:
        value: the array (NumPy or CuPy; a Python scalar becomes a 0-d NumPy array).
        parents: pairs ``(parent, vjp)``; ``vjp`` maps the cotangent
            :math:`\bar{y}` of this tensor (shape of ``value``) to
            :math:`J^\top \bar{y}` (shape of ``parent``).  Empty for a leaf.
        requires_grad: whether :meth:`backward` computes ``grad`` for this
            tensor.  Default: ``True`` for a leaf, and for an op node whether
            any parent requires a gradient.

    Attributes:
        value: the wrapped array.
        grad: the gradient (same shape and dtype as ``value``) written by the
            last :meth:`backward` through this tensor, else ``None``.
        requires_grad: see above.
        parents: the recorded ``(parent, vjp)`` pairs (only parents that
            require a gradient are kept).
        xp: the array module of ``value``.
    """

    __array_ufunc__ = None  # make ``ndarray <op> Tensor`` defer to Tensor.__r<op>__
    __array_priority__ = 1000.0
    value: Array
    grad: Array | None
    requires_grad: bool
    parents: tuple[tuple[Tensor, VJP], ...]
    xp: types.ModuleType

    def __init__(
        self,
        value: Array | float,
        parents: Sequence[tuple[Tensor, VJP]] = (),
        requires_grad: bool | None = None,
    ) -> None:
        self.xp = array_namespace(value=value)
        self.value = self.xp.asarray(value)
        self.parents = tuple((p, f) for p, f in parents if p.requires_grad)
        if requires_grad is None:
            requires_grad = bool(self.parents) or not parents
        self.requires_grad = requires_grad
        self.grad = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``value``."""
        return tuple(self.value.shape)

    @property
    def dtype(self) -> Any:
        """Dtype of ``value``."""
        return self.value.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions of ``value``."""
        return int(self.value.ndim)

    def __repr__(self) -> str:
        return f"Tensor({self.value!r}, requires_grad={self.requires_grad})"

    def backward(self, seed: Array | None = None) -> None:
        r"""Reverse accumulation from this tensor.

        Sets ``grad`` of every tensor on the tape that requires a gradient
        (previous values are overwritten, not accumulated across calls).

        Args:
            seed: cotangent :math:`\bar{y}`, shape ``self.shape``; defaults to
                1 for a 0-d tensor.

        Raises:
            ValueError: no seed for a non-scalar tensor, or a VJP returned the
                wrong shape.
        """
        if seed is None:
            if self.ndim != 0:
                raise ValueError(f"backward: a seed is needed for a tensor of shape {self.shape}")
            seed = self.xp.ones((), dtype=self.dtype)
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative post-order DFS: parents land before children
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p, _ in node.parents if id(p) not in seen)
        for node in order:
            node.grad = None
        self.grad = _cast(array_namespace(tensor=self.value, seed=seed).asarray(seed), self)
        for node in reversed(order):
            if node.grad is None:
                continue
            for parent, vjp in node.parents:
                g = _cast(vjp(node.grad), parent)
                parent.grad = g if parent.grad is None else parent.grad + g

    # ---- arithmetic -------------------------------------------------------
    def __add__(self, other: Operand) -> Tensor:
        a, b, _ = _pair(self, other)
        return Tensor(
            a.value + b.value,
            [(a, lambda g: _unbroadcast(g, a.shape)), (b, lambda g: _unbroadcast(g, b.shape))],
        )

    def __radd__(self, other: Operand) -> Tensor:
        return _pair(other, self)[0] + self

    def __sub__(self, other: Operand) -> Tensor:
        a, b, _ = _pair(self, other)
        return Tensor(
            a.value - b.value,
            [(a, lambda g: _unbroadcast(g, a.shape)), (b, lambda g: _unbroadcast(-g, b.shape))],
        )

    def __rsub__(self, other: Operand) -> Tensor:
        return _pair(other, self)[0] - self

    def __mul__(self, other: Operand) -> Tensor:
        a, b, _ = _pair(self, other)
        return Tensor(
            a.value * b.value,
            [
                (a, lambda g: _unbroadcast(g * b.value, a.shape)),
                (b, lambda g: _unbroadcast(g * a.value, b.shape)),
            ],
        )

    def __rmul__(self, other: Operand) -> Tensor:
        return _pair(other, self)[0] * self

    def __truediv__(self, other: Operand) -> Tensor:
        a, b, _ = _pair(self, other)
        y = a.value / b.value
        return Tensor(
            y,
            [
                (a, lambda g: _unbroadcast(g / b.value, a.shape)),
                (b, lambda g: _unbroadcast(-g * y / b.value, b.shape)),
            ],
        )

    def __rtruediv__(self, other: Operand) -> Tensor:
        return _pair(other, self)[0] / self

    def __neg__(self) -> Tensor:
        return Tensor(-self.value, [(self, lambda g: -g)])

    def __pow__(self, exponent: float) -> Tensor:
        r"""Power :math:`x^p` with a scalar exponent; :math:`\bar{x} = p x^{p-1} \bar{y}`."""
        if not isinstance(exponent, int | float):
            raise TypeError(f"**: exponent must be a Python scalar, got {type(exponent).__name__}")
        p = self.xp.asarray(exponent, dtype=self.dtype)
        return Tensor(self.value**p, [(self, lambda g: g * p * self.value ** (p - 1))])

    def __matmul__(self, other: Operand) -> Tensor:
        r"""Matrix product of 1-D or 2-D operands.

        :math:`\bar{A} = \bar{Y} B^\top`, :math:`\bar{B} = A^\top \bar{Y}`.

        Shapes: ``(m, k) @ (k, n) -> (m, n)``; a 1-D left operand is a row
        ``(1, k)`` and a 1-D right operand a column ``(k, 1)``, whose unit
        dimension is dropped from the result.
        """
        a, b, _ = _pair(self, other)
        if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2):
            raise ValueError(f"@: operands must be 1-D or 2-D, got shapes {a.shape} and {b.shape}")
        a2 = a.value.reshape(-1, a.shape[-1])
        b2 = b.value.reshape(b.shape[0], -1)
        shape2 = (a2.shape[0], b2.shape[1])
        return Tensor(
            a.value @ b.value,
            [
                (a, lambda g: (g.reshape(shape2) @ b2.T).reshape(a.shape)),
                (b, lambda g: (a2.T @ g.reshape(shape2)).reshape(b.shape)),
            ],
        )

    def __rmatmul__(self, other: Operand) -> Tensor:
        return _pair(other, self)[0] @ self

    # ---- shape ------------------------------------------------------------
    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute axes (given as ints or one tuple; reversed when none), like ``ndarray.transpose``."""
        perm = _ints(axes) or tuple(reversed(range(self.ndim)))
        inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
        return Tensor(self.value.transpose(perm), [(self, lambda g: g.transpose(inverse))])

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed)."""
        return self.transpose()

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """Reshape to ``shape`` (given as ints or one tuple; ``-1`` allowed)."""
        return Tensor(self.value.reshape(_ints(shape)), [(self, lambda g: g.reshape(self.shape))])

    # ---- reductions ---------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        r"""Sum over ``axis`` (``None``: all axes); the VJP broadcasts :math:`\bar{y}` back."""
        axes = _axes(axis, self.ndim)
        kept = tuple(1 if i in axes else n for i, n in enumerate(self.shape))
        return Tensor(
            self.value.sum(axis=axis, keepdims=keepdims),
            [(self, lambda g: self.xp.broadcast_to(g.reshape(kept), self.shape).copy())],
        )

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes when ``None``)."""
        count = 1
        for i in _axes(axis, self.ndim):
            count *= self.shape[i]
        return self.sum(axis, keepdims) / count


# ---- helpers -----------------------------------------------------------------
def _cast(g: Array, like: Tensor) -> Array:
    if tuple(g.shape) != like.shape:
        raise ValueError(
            f"backward: a VJP returned shape {tuple(g.shape)} for a tensor of shape {like.shape}"
        )
    return g if g.dtype == like.dtype else g.astype(like.dtype)


def _ints(args: tuple[int | Sequence[int], ...]) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(args) == 1 and isinstance(args[0], Sequence):
        return tuple(args[0])
    return cast(tuple[int, ...], args)


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


def _unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` over the dimensions that broadcasting added, or stretched from 1, to ``shape``."""
    if tuple(g.shape) == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def _as_tensor(x: Operand) -> Tensor:
    """``x`` itself if a Tensor, else a constant Tensor (no gradient)."""
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)


def _value(x: Operand) -> Any:
    return x.value if isinstance(x, Tensor) else x


def _pair(a: Operand, b: Operand) -> tuple[Tensor, Tensor, types.ModuleType]:
    """Both operands as Tensors; a non-Tensor takes the dtype of the other operand."""
    xp = array_namespace(left=_value(a), right=_value(b))
    if not isinstance(a, Tensor):
        dtype = b.dtype if isinstance(b, Tensor) else None
        a = Tensor(xp.asarray(a, dtype=dtype), requires_grad=False)
    if not isinstance(b, Tensor):
        b = Tensor(xp.asarray(b, dtype=a.dtype), requires_grad=False)
    return a, b, xp


# ---- elementary functions ------------------------------------------------------
def exp(x: Operand) -> Tensor:
    r""":math:`e^x` elementwise; :math:`\bar{x} = e^x \bar{y}`."""
    x = _as_tensor(x)
    y = x.xp.exp(x.value)
    return Tensor(y, [(x, lambda g: g * y)])


def log(x: Operand) -> Tensor:
    r""":math:`\log x` elementwise; :math:`\bar{x} = \bar{y} / x`."""
    x = _as_tensor(x)
    return Tensor(x.xp.log(x.value), [(x, lambda g: g / x.value)])


def log1p(x: Operand) -> Tensor:
    r""":math:`\log(1 + x)` elementwise; :math:`\bar{x} = \bar{y} / (1 + x)`."""
    x = _as_tensor(x)
    return Tensor(x.xp.log1p(x.value), [(x, lambda g: g / (1 + x.value))])


def sqrt(x: Operand) -> Tensor:
    r""":math:`\sqrt{x}` elementwise; :math:`\bar{x} = \bar{y} / (2\sqrt{x})`."""
    x = _as_tensor(x)
    y = x.xp.sqrt(x.value)
    return Tensor(y, [(x, lambda g: g / (2 * y))])


def abs_(x: Operand) -> Tensor:
    r""":math:`|x|` elementwise; :math:`\bar{x} = \operatorname{sign}(x) \bar{y}` (0 at 0)."""
    x = _as_tensor(x)
    return Tensor(x.xp.abs(x.value), [(x, lambda g: g * x.xp.sign(x.value))])


def tanh(x: Operand) -> Tensor:
    r""":math:`\tanh x` elementwise (a primitive); :math:`\bar{x} = (1 - \tanh^2 x) \bar{y}`."""
    x = _as_tensor(x)
    y = x.xp.tanh(x.value)
    return Tensor(y, [(x, lambda g: g * (1 - y * y))])


def maximum(x: Operand, other: Operand) -> Tensor:
    r"""Elementwise :math:`\max(x, o)` with broadcasting.

    The gradient goes to ``x`` where :math:`x > o` and to ``other`` elsewhere,
    so ``maximum(x, 0)`` has derivative 0 at exactly 0.
    """
    a, b, _ = _pair(x, other)
    wins = a.value > b.value
    return Tensor(
        a.xp.maximum(a.value, b.value),
        [
            (a, lambda g: _unbroadcast(g * wins, a.shape)),
            (b, lambda g: _unbroadcast(g * ~wins, b.shape)),
        ],
    )


def where(cond: Operand, x: Operand, y: Operand) -> Tensor:
    r"""Elementwise ``x if cond else y`` with broadcasting; ``cond`` is a constant (bool array).

    :math:`\bar{x} = [c]\,\bar{z}` and :math:`\bar{y} = [\lnot c]\,\bar{z}`, each summed back
    to its operand's shape.
    """
    c = _value(cond)
    a, b, xp = _pair(x, y)
    zero = xp.zeros((), dtype=a.dtype)
    return Tensor(
        xp.where(c, a.value, b.value),
        [
            (a, lambda g: _unbroadcast(xp.where(c, g, zero), a.shape)),
            (b, lambda g: _unbroadcast(xp.where(c, zero, g), b.shape)),
        ],
    )


def logsumexp(x: Operand, axis: int | None = -1, keepdims: bool = False) -> Tensor:
    r""":math:`\log \sum_i e^{x_i}` over ``axis`` (all axes when ``None``), computed stably.

    The maximum :math:`m` is subtracted as a constant (no gradient flows
    through it): :math:`m + \log \sum_i e^{x_i - m}`.  Shape: ``x.shape``
    with ``axis`` removed (kept as 1 when ``keepdims``).
    """
    x = _as_tensor(x)
    xp = x.xp
    m = xp.max(x.value, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros((), dtype=m.dtype))  # rows of -inf
    out = log(exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else out.sum(axis=axis)  # summing size-1 axes squeezes them


# ---- transfer functions --------------------------------------------------------
def identity(x: Operand) -> Tensor:
    """:math:`f(a) = a`."""
    return _as_tensor(x)


def softplus(x: Operand) -> Tensor:
    r"""Stable :math:`\log(1 + e^a) = \max(a, 0) + \log(1 + e^{-|a|})`.

    :math:`\max(a,0)` and :math:`|a|` are written with :func:`where` on
    :math:`a \ge 0`, which gives the exact derivative :math:`1/2` at 0.
    """
    x = _as_tensor(x)
    pos = x.value >= 0
    return where(pos, x, 0) + log1p(exp(-where(pos, x, -x)))


def sigmoid(x: Operand) -> Tensor:
    r"""Stable :math:`\sigma(a) = 1 / (1 + e^{-a}) = \exp(-\operatorname{softplus}(-a))`."""
    return exp(-softplus(-_as_tensor(x)))


def relu(x: Operand) -> Tensor:
    r""":math:`\max(a, 0)`, derivative 0 at 0."""
    return maximum(x, 0)


def leaky_relu(x: Operand, slope: float = 0.01) -> Tensor:
    r""":math:`a` if :math:`a \ge 0` else :math:`s a`."""
    x = _as_tensor(x)
    return where(x.value >= 0, x, x * slope)


def softmax(x: Operand, axis: int = -1) -> Tensor:
    r"""Stable softmax over ``axis``.

    :math:`e^{a_i} / \sum_j e^{a_j} = \exp(a_i - \operatorname{logsumexp}(a))`.
    """
    x = _as_tensor(x)
    return exp(x - logsumexp(x, axis=axis, keepdims=True))


# ---- function transforms ----------------------------------------------------------
def value_and_grad(fn: Callable[..., Tensor], argnum: int = 0) -> Callable[..., tuple[Array, Any]]:
    r"""Turn ``fn`` into a function returning ``(value, gradient)``.

    Args:
        fn: maps its arguments to a 0-d :class:`Tensor`.  Argument ``argnum``
            is an array or a pytree (nested lists, tuples, dicts) of floating
            arrays, given to ``fn`` as the same tree of leaf Tensors; the other
            arguments are passed through unchanged (constants).
        argnum: position of the argument to differentiate.

    Returns:
        A function of the same arguments returning the value (0-d array) and
        :math:`\partial\, \mathrm{fn} / \partial\, \mathrm{args[argnum]}` as
        plain arrays with the structure, shapes and dtypes of that argument.

    Raises:
        TypeError: a leaf is not a floating array (message names it and its
            dtype), or ``fn`` does not return a 0-d Tensor.
    """

    def wrapped(*args: Any, **kwargs: Any) -> tuple[Array, Any]:
        tree = args[argnum]
        for i, leaf in enumerate(tree_leaves(tree)):
            check_float_array(leaf, f"argument {argnum} (leaf {i})")
        tensors = tree_map(Tensor, tree)
        out = fn(*args[:argnum], tensors, *args[argnum + 1 :], **kwargs)
        if not isinstance(out, Tensor) or out.ndim != 0:
            raise TypeError(f"fn must return a 0-d Tensor, got {out!r:.80}")
        out.backward()
        grads = tree_map(lambda t: t.xp.zeros_like(t.value) if t.grad is None else t.grad, tensors)
        return out.value, grads

    return wrapped


def grad(fn: Callable[..., Tensor], argnum: int = 0) -> Callable[..., Any]:
    """Like :func:`value_and_grad`, returning only the gradient."""
    vg = value_and_grad(fn, argnum)
    return lambda *args, **kwargs: vg(*args, **kwargs)[1]
