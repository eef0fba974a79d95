r"""The transfer-function table: every activation and its convex potential, in one place.

A transfer :math:`f` acts on a pre-activation :math:`a` of shape ``(..., d)``, the
``d`` units on the last axis.  Every row of the table is a :class:`Transfer`, which
gives

* ``f(a)`` and, for elementwise transfers, its derivative ``df(a)``; the
  vector-Jacobian product ``vjp(a, g)`` for every transfer, softmax included;
* the convex potential :math:`F` with :math:`\nabla F = f`, summed over units:
  ``potential(a)`` has shape ``a.shape[:-1]``;
* its convex conjugate :math:`F^*(y) = \sup_a\, y\cdot a - F(a)` (summed over
  units; ``+inf`` outside the closure of the range of ``f``);
* the inverse :math:`f^{-1}` where it is defined, and the range of ``f``.

Two implementations share that interface: :class:`Elementwise` (one scalar
function per unit: identity, sigmoid, tanh, relu, leaky relu) and
:class:`Softmax` (whole rows).  The rows are the module attributes
:data:`identity`, :data:`sigmoid`, :data:`tanh`, :data:`relu`, :data:`softmax`
and the factory :func:`leaky_relu`; :func:`get` looks them up by name.  The
stable numerical functions they are built from are plain functions:
:func:`logistic`, :func:`softplus`, :func:`logsumexp`, :func:`softmax_rows`.

The transfers and their potentials::

    | name       | f                 | F (dF = f)              | F*(y)                                    | range        |
    |------------|-------------------|-------------------------|------------------------------------------|--------------|
    | identity   | a                 | a^2/2                   | y^2/2                                    | (-inf, inf)  |
    | sigmoid    | 1/(1+e^-a)        | softplus(a)             | y log y + (1-y) log(1-y)                 | [0, 1]       |
    | tanh       | tanh a            | log cosh a              | ((1+y)log(1+y) + (1-y)log(1-y))/2        | [-1, 1]      |
    | relu       | max(a, 0)         | max(a,0)^2/2            | y^2/2 (y >= 0)                           | [0, inf)     |
    | leaky_relu | a or s a          | a^2/2 or s a^2/2        | y^2/2 or y^2/(2s)                        | (-inf, inf)  |
    | softmax    | e^a / sum e^a     | logsumexp(a)            | sum y log y (y in the simplex)           | simplex      |

Only monotone transfers have a convex potential, so GELU or swish are not in
the table (LocoProp's matching loss needs convexity).

>>> import numpy as np
>>> from locograd import transfer
>>> t = transfer.get("tanh")
>>> a = np.array([[0.0, 1.0]])
>>> np.allclose(t.f(a), np.tanh(a)), t.potential(a).shape
(True, (1,))
>>> transfer.sigmoid.elementwise, transfer.softmax.elementwise
(True, False)
>>> float(transfer.logistic(np.array(0.0)))
0.5
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import Array, array_namespace, check_float_array
from .validators import canonical_choice, number

UnitFn = Callable[[Array], Array]
"""A function applied unit by unit: an array in, an array of the same shape out."""

IncrementFn = Callable[[Array, Array], Array]
"""``(a, delta) -> f(a + delta) - f(a)``, unit by unit, shape of ``a``."""


def _xlogx(y: Array) -> Array:
    """:math:`y \\log y` with the limit 0 at y = 0 (y >= 0)."""
    xp = array_namespace(y)
    safe = xp.where(y > 0, y, xp.ones_like(y))
    return xp.where(y > 0, y * xp.log(safe), xp.zeros_like(y))


def _is_array(x: Any) -> bool:
    """Whether ``x`` is a floating array ufuncs can write into (0-d NumPy results are scalars)."""
    return getattr(x, "ndim", 0) > 0 and x.dtype.kind == "f"


def softplus(a: Array) -> Array:
    r"""Stable :math:`\log(1 + e^a) = \max(a, 0) + \log(1 + e^{-|a|})`, elementwise, shape of ``a``."""
    xp = array_namespace(a)
    t = xp.abs(a)  # one temporary, reused in place: -|a|, e^{-|a|}, log1p(.)
    if not _is_array(t):  # a 0-d NumPy input gives scalars, which cannot be written into
        return xp.maximum(a, 0) + xp.log1p(xp.exp(-t))
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    xp.log1p(t, out=t)
    t += xp.maximum(a, 0)
    return t


def logistic(a: Array) -> Array:
    r"""Stable logistic :math:`1/(1+e^{-a})`, elementwise, with no overflow for any finite ``a``.

    The function behind the :data:`sigmoid` row (shape and dtype of ``a``).  Written as
    :math:`e^{\min(a, 0)} / (1 + e^{-|a|})`: the numerator is exactly 1 for
    :math:`a \ge 0` and :math:`e^{a} = e^{-|a|}` below, so this is bit for bit the
    two-branch form :math:`1/(1+e^{-a})`, :math:`e^{a}/(1+e^{a})` without a
    ``where`` (a data-dependent select, several times slower than two ``exp``).
    """
    xp = array_namespace(a)
    den = xp.abs(a)
    if not _is_array(den):  # a 0-d NumPy input gives scalars, which cannot be written into
        e = xp.exp(-den)
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
    xp.negative(den, out=den)
    xp.exp(den, out=den)
    den += 1
    num = xp.minimum(a, 0)
    xp.exp(num, out=num)
    num /= den
    return num


def logsumexp(a: Array, axis: int = -1) -> Array:
    r"""Stable :math:`\log\sum_j e^{a_j}` over ``axis`` (the axis is removed from the shape)."""
    xp = array_namespace(a)
    m = xp.max(a, axis=axis, keepdims=True)
    return xp.squeeze(m, axis=axis) + xp.log(xp.sum(xp.exp(a - m), axis=axis))


def softmax_rows(a: Array, axis: int = -1) -> Array:
    r""":math:`e^{a_j} / \sum_k e^{a_k}` along ``axis``, stable for large ``|a|``; shape of ``a``.

    The function behind the :data:`softmax` row.
    """
    xp = array_namespace(a)
    e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _log_cosh(a: Array) -> Array:
    xp = array_namespace(a)
    abs_a = xp.abs(a)
    return abs_a + xp.log1p(xp.exp(-2 * abs_a)) - xp.asarray(np.log(2.0), dtype=a.dtype)


class Transfer(abc.ABC):
    r"""A row of the transfer table: :math:`f = \nabla F` with its potential, conjugate and inverse.

    Arrays are ``(..., d)`` with the ``d`` units on the last axis.  The two
    implementations are :class:`Elementwise` and :class:`Softmax`; a custom
    transfer subclasses this class (``bregman`` then falls back to the defining
    difference :math:`F(p) - F(q) - f(q)\cdot(p - q)`).

    Attributes:
        name: table key, e.g. ``"tanh"``.
        range: closure of the range of ``f`` per unit, ``(low, high)``; for
            softmax the rows lie in the probability simplex, ``(0, 1)``.
        strictly_convex: whether :math:`F` is strictly convex (then
            :math:`D_F(p, q) = 0` only at ``p == q``).
        slope: negative-side slope of ``leaky_relu``, else ``None``.
        df_output: :math:`f'` written through the output :math:`y = f(a)` where that
            is the same computation (tanh: :math:`1 - y^2`), returning a fresh array,
            else ``None``; :meth:`vjp` uses it when ``y`` is given, saving a pass of ``f``.
    """

    name: str
    range: tuple[float, float]
    strictly_convex: bool
    slope: float | None
    df_output: UnitFn | None

    @property
    @abc.abstractmethod
    def elementwise(self) -> bool:
        """True for transfers acting unit by unit (all but softmax)."""

    @abc.abstractmethod
    def f(self, a: Array) -> Array:
        """Post-activation :math:`y = f(a)`, same shape and dtype as ``a``."""

    @abc.abstractmethod
    def df(self, a: Array) -> Array:
        """Elementwise derivative :math:`f'(a)`, shape of ``a``.

        Raises:
            ValueError: ``f`` is not elementwise (softmax has a Jacobian; use :meth:`vjp`).
        """

    @abc.abstractmethod
    def vjp(self, a: Array, g: Array, y: Array | None = None) -> Array:
        r"""Vector-Jacobian product :math:`g\,\partial f/\partial a`, shape of ``a``.

        Args:
            a: pre-activation, ``(..., d)``.
            g: upstream gradient :math:`\partial L/\partial y`, ``(..., d)``.
            y: ``f(a)`` if already computed (saves a pass of ``f`` for softmax and tanh).
        """

    @abc.abstractmethod
    def vjp_from_output(self, y: Array, g: Array) -> Array:
        r"""The VJP :math:`g\,f'(a)` from the output :math:`y = f(a)` alone, shape of ``y``.

        Lets a caller drop the pre-activation after the forward pass (tanh: :math:`g(1 - y^2)`).

        Raises:
            ValueError: ``f'`` is not written through the output (``df_output`` is ``None``).
        """

    @abc.abstractmethod
    def potential(self, a: Array) -> Array:
        r""":math:`F(a)` summed over the last (unit) axis; shape ``a.shape[:-1]``."""

    @abc.abstractmethod
    def conjugate(self, y: Array) -> Array:
        r""":math:`F^*(y)` summed over units, shape ``y.shape[:-1]``; ``+inf`` where ``y`` is outside the range."""

    @abc.abstractmethod
    def in_range(self, y: Array) -> Array:
        """Boolean mask, shape of ``y``: where ``y`` lies in the closure of the range of ``f``."""

    @abc.abstractmethod
    def inverse(self, y: Array) -> Array:
        r""":math:`f^{-1}(y)`, shape of ``y``, defined on the interior of the range.

        Raises:
            ValueError: ``f`` is not invertible (relu), or some ``y`` lies
                outside the open range where the inverse is defined.
        """

    def increment(self, a: Array, delta: Array) -> Array:
        r"""The change of the output :math:`f(a + \delta) - f(a)`, shape of ``a``.

        The table's rows compute it in a form that stays accurate to a few units of rounding
        relative to itself however small :math:`\delta` is, even below half an ulp of ``a``
        (where :math:`a + \delta` rounds to ``a`` and the plain difference is exactly 0):
        LocoProp's local solvers move from the anchor by such amounts in the first layers of a
        deep network.  A transfer outside the table falls back to the plain difference.

        Args:
            a: the pre-activation, ``(..., d)``.
            delta: the displacement of ``a``, same shape and dtype.
        """
        return self.f(a + delta) - self.f(a)


@dataclasses.dataclass(frozen=True)
class Elementwise(Transfer):
    r"""A transfer acting unit by unit, from its scalar functions (applied elementwise).

    Attributes:
        name: table key, e.g. ``"tanh"``.
        f_unit: :math:`f` per unit.
        df_unit: :math:`f'` per unit.
        potential_unit: :math:`F` per unit (:meth:`potential` sums it over the last axis).
        conjugate_unit: :math:`F^*` per unit, ``+inf`` outside the range (:meth:`conjugate` sums it).
        inverse_unit: :math:`f^{-1}` per unit, ``None`` if ``f`` is not invertible (relu).
        range: closure of the range of ``f``, ``(low, high)``.
        strictly_convex: whether :math:`F` is strictly convex.
        slope: negative-side slope of ``leaky_relu``, else ``None``.
        df_output: :math:`f'` through the output :math:`y = f(a)` (a fresh array), or ``None``.
        increment_unit: :math:`f(a + \delta) - f(a)` per unit in a form without cancellation
            (:meth:`increment`), or ``None`` for the plain difference.
    """

    name: str
    f_unit: UnitFn
    df_unit: UnitFn
    potential_unit: UnitFn
    conjugate_unit: UnitFn
    inverse_unit: UnitFn | None
    range: tuple[float, float]
    strictly_convex: bool
    slope: float | None = None
    df_output: UnitFn | None = None
    increment_unit: IncrementFn | None = None

    @property
    def elementwise(self) -> bool:
        """Always True."""
        return True

    def increment(self, a: Array, delta: Array) -> Array:
        r""":math:`f(a + \delta) - f(a)` elementwise, through ``increment_unit`` (see :meth:`Transfer.increment`)."""
        if self.increment_unit is None:
            return self.f_unit(a + delta) - self.f_unit(a)
        return self.increment_unit(a, delta)

    def f(self, a: Array) -> Array:
        """Post-activation :math:`y = f(a)`, same shape and dtype as ``a``."""
        return self.f_unit(a)

    def df(self, a: Array) -> Array:
        """Elementwise derivative :math:`f'(a)`, same shape and dtype as ``a``."""
        return self.df_unit(a)

    def vjp(self, a: Array, g: Array, y: Array | None = None) -> Array:
        r""":math:`g \odot f'(a)`, shape of ``a`` (through ``df_output(y)`` when ``y`` is given and it exists)."""
        if y is not None and self.df_output is not None:
            return self.vjp_from_output(y, g)
        return g * self.df_unit(a)

    def vjp_from_output(self, y: Array, g: Array) -> Array:
        r""":math:`g \odot f'(a)` from :math:`y = f(a)` alone, as ``g * df_output(y)``, shape of ``y``."""
        if self.df_output is None:
            raise ValueError(f"transfer {self.name!r}: f' is not written through the output; use vjp(a, g)")
        d = self.df_output(y)  # a fresh array: the product goes into it when the dtypes allow
        same_shape = d.shape == getattr(g, "shape", None)
        if _is_array(d) and same_shape and array_namespace(d).result_type(d, g) == d.dtype:
            d *= g
            return d
        return g * d

    def potential(self, a: Array) -> Array:
        r""":math:`\sum_j F(a_j)` over the last axis; shape ``a.shape[:-1]``."""
        xp = array_namespace(a)
        return xp.sum(self.potential_unit(a), axis=-1)

    def conjugate(self, y: Array) -> Array:
        r""":math:`\sum_j F^*(y_j)` over the last axis; ``+inf`` where some ``y_j`` is outside the range."""
        xp = array_namespace(y)
        return xp.sum(self.conjugate_unit(y), axis=-1)

    def in_range(self, y: Array) -> Array:
        """Boolean mask ``low <= y <= high``, shape of ``y``."""
        array_namespace(y)  # refuses a list or a foreign array type, as every method does
        low, high = self.range
        return (y >= low) & (y <= high)

    def inverse(self, y: Array) -> Array:
        r""":math:`f^{-1}(y)` elementwise, for every ``y`` inside the open range ``(low, high)``.

        Raises:
            ValueError: ``f`` is not invertible (relu), or some ``y`` is outside the open range.
        """
        xp = array_namespace(y)
        if self.inverse_unit is None:
            raise ValueError(f"transfer {self.name!r} is not invertible (it is constant for a < 0)")
        check_float_array(y, "y")
        low, high = self.range
        ok = bool(xp.all((y > low) & (y < high))) if (low, high) != (-np.inf, np.inf) else True
        if not ok:
            raise ValueError(
                f"y: the inverse of {self.name} is defined on ({low}, {high}); got values in "
                f"[{float(xp.min(y))}, {float(xp.max(y))}]"
            )
        return self.inverse_unit(y)


@dataclasses.dataclass(frozen=True)
class Softmax(Transfer):
    r"""Softmax over the last axis: :math:`f(a)_j = e^{a_j} / \sum_k e^{a_k}`, :math:`F = \mathrm{logsumexp}`.

    Not elementwise: each output depends on the whole row, so there is no ``df``
    (use :meth:`vjp`).  :math:`F` is convex but not strictly (it is invariant to
    adding a constant to a row), and :math:`F^*(y) = \sum_j y_j \log y_j` on the
    probability simplex.
    """

    name: str = dataclasses.field(default="softmax", init=False)
    range: tuple[float, float] = dataclasses.field(default=(0.0, 1.0), init=False)
    strictly_convex: bool = dataclasses.field(default=False, init=False)
    slope: float | None = dataclasses.field(default=None, init=False)
    df_output: UnitFn | None = dataclasses.field(default=None, init=False)

    @property
    def elementwise(self) -> bool:
        """Always False."""
        return False

    def f(self, a: Array) -> Array:
        """:func:`softmax_rows` of ``a`` ``(..., d)``, same shape and dtype."""
        return softmax_rows(a)

    def df(self, a: Array) -> Array:
        """Not defined (softmax has a Jacobian, not a derivative per unit).

        Raises:
            ValueError: always; use :meth:`vjp`.
        """
        raise ValueError(f"transfer {self.name!r} is not elementwise; use vjp(a, g)")

    def vjp(self, a: Array, g: Array, y: Array | None = None) -> Array:
        r""":math:`y \odot (g - (g\cdot y)\mathbf 1)` per row, :math:`y = \mathrm{softmax}(a)`; shape of ``a``."""
        xp = array_namespace(a=a, g=g)
        y = softmax_rows(a) if y is None else y
        return y * (g - xp.sum(g * y, axis=-1, keepdims=True))

    def vjp_from_output(self, y: Array, g: Array) -> Array:
        """Not available: softmax's VJP is not written through the output alone here.

        Raises:
            ValueError: always; use :meth:`vjp` with ``a`` (and ``y``).
        """
        raise ValueError(f"transfer {self.name!r}: f' is not written through the output; use vjp(a, g)")

    def increment(self, a: Array, delta: Array) -> Array:
        r""":math:`\mathrm{softmax}(a + \delta) - \mathrm{softmax}(a)` per row, without cancellation.

        With :math:`s = \mathrm{softmax}(a)`, the centred :math:`c = \delta - (s\cdot\delta)\mathbf 1`
        (softmax ignores a shift of the row) and :math:`u = \mathrm{expm1}(c)`,

        .. math:: \mathrm{softmax}(a + \delta)_j - s_j = s_j\,\frac{u_j - s\cdot u}{1 + s\cdot u},

        where :math:`1 + s\cdot u = \sum_k s_k e^{c_k} \ge 1` (Jensen, since :math:`s\cdot c = 0`).
        A row where some :math:`c_j` exceeds half the log of the dtype's largest value (the
        ``expm1`` would overflow) takes the plain difference, which is accurate there.
        """
        xp = array_namespace(a=a, delta=delta)
        s = softmax_rows(a)
        c = delta - xp.sum(s * delta, axis=-1, keepdims=True)
        cap = 0.5 * float(np.log(np.finfo(c.dtype).max))
        big = xp.any(c > cap, axis=-1, keepdims=True)
        u = xp.expm1(xp.minimum(c, cap))
        su = xp.sum(s * u, axis=-1, keepdims=True)
        stable = s * (u - su) / (1 + su)
        if not bool(xp.any(big)):
            return stable
        return xp.where(big, softmax_rows(a + delta) - s, stable)

    def potential(self, a: Array) -> Array:
        r""":math:`\mathrm{logsumexp}(a)` over the last axis; shape ``a.shape[:-1]``."""
        return logsumexp(a)

    def conjugate(self, y: Array) -> Array:
        r""":math:`\sum_j y_j \log y_j` (0 log 0 = 0) for rows in the simplex, ``+inf`` elsewhere; shape ``y.shape[:-1]``."""
        xp = array_namespace(y)
        inside = self.in_range(y)[..., 0]
        neg_entropy = xp.sum(_xlogx(xp.maximum(y, 0)), axis=-1)
        return xp.where(inside, neg_entropy, xp.asarray(np.inf, dtype=y.dtype))

    def in_range(self, y: Array) -> Array:
        """Rows on the probability simplex (``y >= 0``, sum 1 up to rounding), broadcast to the shape of ``y``."""
        xp = array_namespace(y)
        tol = 1e3 * xp.finfo(y.dtype).eps * y.shape[-1]
        inside = xp.all(y >= 0, axis=-1) & (xp.abs(xp.sum(y, axis=-1) - 1) <= tol)
        return xp.broadcast_to(inside[..., None], y.shape)

    def inverse(self, y: Array) -> Array:
        r""":math:`\log y`, for rows ``(..., d)`` in the open simplex (positive, summing to 1).

        The pre-image is defined up to a shift per row; the representative
        :math:`\log y` (with logsumexp 0) is returned.

        Raises:
            ValueError: ``y`` has no unit axis or ``d == 0``, or some row is not in the open simplex.
        """
        xp = array_namespace(y)
        check_float_array(y, "y")
        if y.ndim == 0 or y.shape[-1] == 0:
            raise ValueError(
                f"y: the inverse of {self.name} needs rows (..., d) with d >= 1, got shape {tuple(y.shape)}"
            )
        ok = bool(xp.all(self.in_range(y)) and xp.all(y > 0))
        if not ok:
            raise ValueError(
                f"y: the inverse of {self.name} is defined on the open simplex (positive rows summing to 1); "
                f"got values in [{float(xp.min(y))}, {float(xp.max(y))}]"
            )
        return xp.log(y)


def _xp(a: Array) -> Any:
    return array_namespace(a)


def _sigmoid_conjugate(y: Array) -> Array:
    xp = _xp(y)
    inside = (y >= 0) & (y <= 1)
    yc = xp.clip(y, 0, 1)
    return xp.where(inside, _xlogx(yc) + _xlogx(1 - yc), xp.asarray(np.inf, dtype=y.dtype))


def _tanh_conjugate(y: Array) -> Array:
    xp = _xp(y)
    inside = (y >= -1) & (y <= 1)
    yc = xp.clip(y, -1, 1)
    half = xp.asarray(0.5, dtype=y.dtype)
    return xp.where(inside, half * (_xlogx(1 + yc) + _xlogx(1 - yc)), xp.asarray(np.inf, dtype=y.dtype))


def _relu_conjugate(y: Array) -> Array:
    xp = _xp(y)
    return xp.where(y >= 0, y * y / 2, xp.asarray(np.inf, dtype=y.dtype))


def _tanh_df_output(y: Array) -> Array:
    """:math:`1 - y^2`, the derivative of tanh through its output, in one fresh array."""
    d = y * y
    if not _is_array(d):
        return 1 - d
    return _xp(y).subtract(1, d, out=d)


def _identity_increment(a: Array, delta: Array) -> Array:
    r""":math:`\delta` itself, as a fresh array."""
    return _xp(delta).array(delta, copy=True)


def _logistic_increment(a: Array, delta: Array) -> Array:
    r""":math:`\sigma(a + \delta) - \sigma(a) = \mathrm{sign}(\delta)\,(1 - e^{-|\delta|})\,\sigma(h)\,\sigma(-l)`.

    With :math:`h = \max(a, a + \delta)` and :math:`l = \min(a, a + \delta)` (for
    :math:`\delta > 0`: :math:`-\mathrm{expm1}(-\delta)\,\sigma(a + \delta)(1 - \sigma(a))`): a
    product of positive factors, each accurate to an ulp, with no overflow for any
    :math:`\delta`; the rounding of :math:`a + \delta` only enters the smooth factors.
    """
    xp = _xp(a)
    b = a + delta
    magnitude = -xp.expm1(-xp.abs(delta))
    return xp.copysign(magnitude * logistic(xp.maximum(a, b)) * logistic(-xp.minimum(a, b)), delta)


def _tanh_increment(a: Array, delta: Array) -> Array:
    r""":math:`\tanh(a + \delta) - \tanh(a) = 2\,(\sigma(2a + 2\delta) - \sigma(2a))`, through :func:`_logistic_increment`.

    Doubling is exact; where :math:`2a` overflows to infinity the factors take their exact limits.
    """
    with np.errstate(over="ignore"):
        return 2 * _logistic_increment(2 * a, 2 * delta)


def _relu_increment(a: Array, delta: Array) -> Array:
    """``delta`` where ``a`` and ``a + delta`` are both positive (exact), else ``relu(a + delta) - relu(a)``.

    Where both are <= 0 the difference is exactly 0; where they straddle 0 it is at least as large
    as the nearer of the two, so the subtraction loses nothing.
    """
    xp = _xp(a)
    b = a + delta
    return xp.where((a > 0) & (b > 0), delta, xp.maximum(b, 0) - xp.maximum(a, 0))


def _logit(y: Array) -> Array:
    xp = _xp(y)
    return xp.log(y) - xp.log1p(-y)


def _atanh(y: Array) -> Array:
    return _xp(y).arctanh(y)


identity = Elementwise(
    name="identity",
    f_unit=lambda a: a,
    df_unit=lambda a: _xp(a).ones_like(a),
    potential_unit=lambda a: a * a / 2,
    conjugate_unit=lambda y: y * y / 2,
    inverse_unit=lambda y: y,
    range=(-np.inf, np.inf),
    strictly_convex=True,
    increment_unit=_identity_increment,
)
"""The identity row, :math:`f(a) = a`, :math:`F(a) = a^2/2`."""

sigmoid = Elementwise(
    name="sigmoid",
    f_unit=logistic,
    df_unit=lambda a: logistic(a) * logistic(-a),
    potential_unit=softplus,
    conjugate_unit=_sigmoid_conjugate,
    inverse_unit=_logit,
    range=(0.0, 1.0),
    strictly_convex=True,
    increment_unit=_logistic_increment,
)
"""The sigmoid row, :math:`f = ` :func:`logistic`, :math:`F = ` :func:`softplus`."""

tanh = Elementwise(
    name="tanh",
    f_unit=lambda a: _xp(a).tanh(a),
    df_unit=lambda a: 1 - _xp(a).tanh(a) ** 2,
    potential_unit=_log_cosh,
    conjugate_unit=_tanh_conjugate,
    inverse_unit=_atanh,
    range=(-1.0, 1.0),
    strictly_convex=True,
    df_output=_tanh_df_output,
    increment_unit=_tanh_increment,
)
"""The tanh row, :math:`F(a) = \\log\\cosh a`; its VJP is also written through the output."""

relu = Elementwise(
    name="relu",
    f_unit=lambda a: _xp(a).maximum(a, 0),
    df_unit=lambda a: (a > 0).astype(a.dtype),
    potential_unit=lambda a: _xp(a).maximum(a, 0) ** 2 / 2,
    conjugate_unit=_relu_conjugate,
    inverse_unit=None,
    range=(0.0, np.inf),
    strictly_convex=False,
    increment_unit=_relu_increment,
)
"""The relu row, :math:`F(a) = \\max(a, 0)^2/2` (not strictly convex, no inverse)."""


def leaky_relu(slope: float = 0.01) -> Transfer:
    r"""A leaky ReLU row: :math:`f(a) = a` for :math:`a \ge 0`, ``slope * a`` below.

    Args:
        slope: the negative-side slope, > 0 so that :math:`F` is strictly convex.

    Returns:
        An :class:`Elementwise` transfer named ``"leaky_relu"`` whose ``slope`` is ``float(slope)``.

    Raises:
        ValueError: ``"slope: expected a finite number > 0, got 0"``.
    """
    s = number("slope", slope, low=0, low_open=True)

    def f(a: Array) -> Array:
        return _xp(a).where(a >= 0, a, s * a)

    def df(a: Array) -> Array:
        xp = _xp(a)
        return xp.where(a >= 0, xp.ones_like(a), xp.full_like(a, s))

    def potential(a: Array) -> Array:
        return _xp(a).where(a >= 0, a * a / 2, s * a * a / 2)

    def conjugate(y: Array) -> Array:
        return _xp(y).where(y >= 0, y * y / 2, y * y / (2 * s))

    def increment(a: Array, delta: Array) -> Array:
        # leaky(x) = relu(x) - s relu(-x), each part exact where it does not straddle 0
        return _relu_increment(a, delta) - s * _relu_increment(-a, -delta)

    def inverse(y: Array) -> Array:
        xp = _xp(y)  # y / s only where y < 0: a large positive y over s would overflow for nothing
        return xp.where(y >= 0, y, xp.minimum(y, 0) / s)

    return Elementwise(
        name="leaky_relu",
        f_unit=f,
        df_unit=df,
        potential_unit=potential,
        conjugate_unit=conjugate,
        inverse_unit=inverse,
        range=(-np.inf, np.inf),
        strictly_convex=True,
        slope=s,
        increment_unit=increment,
    )


softmax = Softmax()
"""The softmax row (over the last axis), :math:`F = ` :func:`logsumexp`."""

TABLE: dict[str, Transfer] = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu(),
    "softmax": softmax,
}
"""The table, keyed by name (``leaky_relu`` with the default slope 0.01)."""

NAMES: tuple[str, ...] = tuple(TABLE)


def get(name: str | Transfer) -> Transfer:
    """Look a transfer up by name (case, spaces and ``_``/``-`` do not matter); a :class:`Transfer` is returned unchanged.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        TypeError: neither a string nor a :class:`Transfer`.
    """
    if isinstance(name, Transfer):
        return name
    if not isinstance(name, str):
        raise TypeError(f"transfer: expected a name or a Transfer, got {type(name).__name__}")
    return TABLE[canonical_choice("transfer", name, NAMES)]
