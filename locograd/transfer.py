r"""The transfer-function table: every activation and its convex potential, in one place.

Each :class:`Transfer` row gives, for a transfer function :math:`f` acting on a
pre-activation :math:`a` (shape ``(..., d)``, units on the last axis):

* ``f(a)`` and its derivative ``df(a)`` (elementwise transfers) or the
  vector-Jacobian product ``vjp(a, g)`` (every transfer, softmax included);
* the convex potential :math:`F` with :math:`\nabla F = f`, summed over units:
  ``potential(a)`` has shape ``a.shape[:-1]``;
* its convex conjugate :math:`F^*(y) = \sup_a\, y\cdot a - F(a)` (summed over
  units; ``+inf`` outside the closure of the range of ``f``);
* the inverse :math:`f^{-1}` where it is defined, and the range of ``f``.

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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import Array, array_namespace, check_float_array
from .validators import canonical_choice

ElementwiseFn = Callable[[Array], Array]


def _xlogx(y: Array) -> Array:
    """:math:`y \\log y` with the limit 0 at y = 0 (y >= 0)."""
    xp = array_namespace(y)
    safe = xp.where(y > 0, y, xp.ones_like(y))
    return xp.where(y > 0, y * xp.log(safe), xp.zeros_like(y))


def _is_array(x: Any) -> bool:
    """Whether ``x`` is a floating array ufuncs can write into (0-d NumPy results are scalars)."""
    return getattr(x, "ndim", 0) > 0 and x.dtype.kind == "f"


def softplus(a: Array) -> Array:
    r"""Stable :math:`\log(1 + e^a) = \max(a, 0) + \log(1 + e^{-|a|})`."""
    xp = array_namespace(a)
    t = xp.abs(a)  # one temporary, reused in place: -|a|, e^{-|a|}, log1p(.)
    if not _is_array(t):  # a 0-d NumPy input gives scalars, which cannot be written into
        return xp.maximum(a, 0) + xp.log1p(xp.exp(-t))
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    xp.log1p(t, out=t)
    t += xp.maximum(a, 0)
    return t


def sigmoid(a: Array) -> Array:
    r"""Stable logistic :math:`1/(1+e^{-a})`, with no overflow for any finite ``a``.

    Written as :math:`e^{\min(a, 0)} / (1 + e^{-|a|})`: the numerator is exactly 1 for
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
    r"""Stable :math:`\log\sum_j e^{a_j}` over ``axis`` (the axis is removed)."""
    xp = array_namespace(a)
    m = xp.max(a, axis=axis, keepdims=True)
    return xp.squeeze(m, axis=axis) + xp.log(xp.sum(xp.exp(a - m), axis=axis))


def softmax(a: Array, axis: int = -1) -> Array:
    r"""Row-wise :math:`e^{a_j} / \sum_k e^{a_k}`, stable for large ``|a|``."""
    xp = array_namespace(a)
    e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _log_cosh(a: Array) -> Array:
    xp = array_namespace(a)
    abs_a = xp.abs(a)
    return abs_a + xp.log1p(xp.exp(-2 * abs_a)) - xp.asarray(np.log(2.0), dtype=a.dtype)


@dataclasses.dataclass(frozen=True)
class Transfer:
    r"""One row of the transfer table (see the module docstring).

    Attributes:
        name: table key, e.g. ``"tanh"``.
        f_elementwise: :math:`f` applied elementwise (``None`` for softmax).
        df_elementwise: :math:`f'` elementwise (``None`` for softmax).
        potential_elementwise: :math:`F` per unit (``None`` for softmax).
        conjugate_elementwise: :math:`F^*` per unit (``None`` for softmax).
        inverse_elementwise: :math:`f^{-1}` per unit, ``None`` if ``f`` is
            not invertible (relu).
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
    f_elementwise: ElementwiseFn | None
    df_elementwise: ElementwiseFn | None
    potential_elementwise: ElementwiseFn | None
    conjugate_elementwise: ElementwiseFn | None
    inverse_elementwise: ElementwiseFn | None
    range: tuple[float, float]
    strictly_convex: bool
    slope: float | None = None
    df_output: ElementwiseFn | None = None

    @property
    def elementwise(self) -> bool:
        """True for transfers acting unit by unit (all but softmax)."""
        return self.f_elementwise is not None

    def f(self, a: Array) -> Array:
        """Post-activation :math:`y = f(a)`, same shape and dtype as ``a``."""
        if self.f_elementwise is None:
            return softmax(a)
        return self.f_elementwise(a)

    def df(self, a: Array) -> Array:
        """Elementwise derivative :math:`f'(a)`; softmax has a Jacobian, use :meth:`vjp`."""
        if self.df_elementwise is None:
            raise ValueError(f"transfer {self.name!r} is not elementwise; use vjp(a, g)")
        return self.df_elementwise(a)

    def vjp(self, a: Array, g: Array, y: Array | None = None) -> Array:
        r"""Vector-Jacobian product :math:`g\,\partial f/\partial a`, shape of ``a``.

        Args:
            a: pre-activation, ``(..., d)``.
            g: upstream gradient :math:`\partial L/\partial y`, ``(..., d)``.
            y: ``f(a)`` if already computed (saves a pass of ``f`` for softmax and tanh).
        """
        if self.df_elementwise is not None:
            if y is not None and self.df_output is not None:
                return self.vjp_from_output(y, g)
            return g * self.df_elementwise(a)
        xp = array_namespace(a=a, g=g)
        y = softmax(a) if y is None else y
        return y * (g - xp.sum(g * y, axis=-1, keepdims=True))

    def vjp_from_output(self, y: Array, g: Array) -> Array:
        r"""The VJP :math:`g\,f'(a)` from the output :math:`y = f(a)` alone (needs ``df_output``).

        Lets a caller drop the pre-activation after the forward pass (tanh: :math:`g(1 - y^2)`).
        """
        if self.df_output is None:
            raise ValueError(f"transfer {self.name!r}: f' is not written through the output; use vjp(a, g)")
        d = self.df_output(y)  # a fresh array: the product goes into it when the dtypes allow
        same_shape = d.shape == getattr(g, "shape", None)
        if _is_array(d) and same_shape and array_namespace(d).result_type(d, g) == d.dtype:
            d *= g
            return d
        return g * d

    def potential(self, a: Array) -> Array:
        r""":math:`F(a)` summed over the last (unit) axis; shape ``a.shape[:-1]``."""
        if self.potential_elementwise is None:
            return logsumexp(a)
        xp = array_namespace(a)
        return xp.sum(self.potential_elementwise(a), axis=-1)

    def conjugate(self, y: Array) -> Array:
        r""":math:`F^*(y)` summed over units; ``+inf`` where ``y`` is outside the range."""
        xp = array_namespace(y)
        if self.conjugate_elementwise is None:
            inside = self.in_range(y)[..., 0]
            neg_entropy = xp.sum(_xlogx(xp.maximum(y, 0)), axis=-1)
            return xp.where(inside, neg_entropy, xp.asarray(np.inf, dtype=y.dtype))
        return xp.sum(self.conjugate_elementwise(y), axis=-1)

    def in_range(self, y: Array) -> Array:
        """Boolean mask: where ``y`` lies in the closure of the range of ``f``."""
        xp = array_namespace(y)
        low, high = self.range
        if self.elementwise:
            return (y >= low) & (y <= high)
        # rows on the probability simplex, up to rounding of their sum
        tol = 1e3 * xp.finfo(y.dtype).eps * y.shape[-1]
        inside = xp.all(y >= 0, axis=-1) & (xp.abs(xp.sum(y, axis=-1) - 1) <= tol)
        return xp.broadcast_to(inside[..., None], y.shape)

    def inverse(self, y: Array) -> Array:
        r""":math:`f^{-1}(y)`, defined on the interior of the range.

        For softmax the pre-image is defined up to a shift per row; the
        representative :math:`\log y` (with logsumexp 0) is returned.

        Raises:
            ValueError: ``f`` is not invertible (relu), or some ``y`` lies
                outside the open range where the inverse is defined.
        """
        xp = array_namespace(y)
        if self.inverse_elementwise is None and self.elementwise:
            raise ValueError(f"transfer {self.name!r} is not invertible (it is constant for a < 0)")
        check_float_array(y, "y")
        if not self.elementwise and (y.ndim == 0 or y.shape[-1] == 0):
            raise ValueError(
                f"y: the inverse of {self.name} needs rows (..., d) with d >= 1, got shape {tuple(y.shape)}"
            )
        low, high = self.range
        if self.elementwise:
            ok = bool(xp.all((y > low) & (y < high))) if (low, high) != (-np.inf, np.inf) else True
        else:
            ok = bool(xp.all(self.in_range(y)) and xp.all(y > 0))
        if not ok:
            bounds = (
                "the open simplex (positive rows summing to 1)"
                if not self.elementwise
                else f"({low}, {high})"
            )
            raise ValueError(
                f"y: the inverse of {self.name} is defined on {bounds}; got values in "
                f"[{float(xp.min(y))}, {float(xp.max(y))}]"
            )
        if self.inverse_elementwise is None:
            return xp.log(y)
        return self.inverse_elementwise(y)


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


def _logit(y: Array) -> Array:
    xp = _xp(y)
    return xp.log(y) - xp.log1p(-y)


def _atanh(y: Array) -> Array:
    return _xp(y).arctanh(y)


identity = Transfer(
    name="identity",
    f_elementwise=lambda a: a,
    df_elementwise=lambda a: _xp(a).ones_like(a),
    potential_elementwise=lambda a: a * a / 2,
    conjugate_elementwise=lambda y: y * y / 2,
    inverse_elementwise=lambda y: y,
    range=(-np.inf, np.inf),
    strictly_convex=True,
)

sigmoid_transfer = Transfer(
    name="sigmoid",
    f_elementwise=sigmoid,
    df_elementwise=lambda a: sigmoid(a) * sigmoid(-a),
    potential_elementwise=softplus,
    conjugate_elementwise=_sigmoid_conjugate,
    inverse_elementwise=_logit,
    range=(0.0, 1.0),
    strictly_convex=True,
)

tanh = Transfer(
    name="tanh",
    f_elementwise=lambda a: _xp(a).tanh(a),
    df_elementwise=lambda a: 1 - _xp(a).tanh(a) ** 2,
    potential_elementwise=_log_cosh,
    conjugate_elementwise=_tanh_conjugate,
    inverse_elementwise=_atanh,
    range=(-1.0, 1.0),
    strictly_convex=True,
    df_output=_tanh_df_output,
)

relu = Transfer(
    name="relu",
    f_elementwise=lambda a: _xp(a).maximum(a, 0),
    df_elementwise=lambda a: (a > 0).astype(a.dtype),
    potential_elementwise=lambda a: _xp(a).maximum(a, 0) ** 2 / 2,
    conjugate_elementwise=_relu_conjugate,
    inverse_elementwise=None,
    range=(0.0, np.inf),
    strictly_convex=False,
)


def leaky_relu(slope: float = 0.01) -> Transfer:
    r"""Leaky ReLU :math:`f(a) = a` for :math:`a \ge 0`, ``slope * a`` below.

    Args:
        slope: the negative-side slope, > 0 so that :math:`F` is strictly convex.

    Raises:
        ValueError: ``slope`` is not a positive finite number.
    """
    s = float(slope)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"slope: expected a positive finite number, got {slope!r}")

    def f(a: Array) -> Array:
        return _xp(a).where(a >= 0, a, s * a)

    def df(a: Array) -> Array:
        xp = _xp(a)
        return xp.where(a >= 0, xp.ones_like(a), xp.full_like(a, s))

    def potential(a: Array) -> Array:
        return _xp(a).where(a >= 0, a * a / 2, s * a * a / 2)

    def conjugate(y: Array) -> Array:
        return _xp(y).where(y >= 0, y * y / 2, y * y / (2 * s))

    def inverse(y: Array) -> Array:
        xp = _xp(y)  # y / s only where y < 0: a large positive y over s would overflow for nothing
        return xp.where(y >= 0, y, xp.minimum(y, 0) / s)

    return Transfer(
        name="leaky_relu",
        f_elementwise=f,
        df_elementwise=df,
        potential_elementwise=potential,
        conjugate_elementwise=conjugate,
        inverse_elementwise=inverse,
        range=(-np.inf, np.inf),
        strictly_convex=True,
        slope=s,
    )


softmax_transfer = Transfer(
    name="softmax",
    f_elementwise=None,
    df_elementwise=None,
    potential_elementwise=None,
    conjugate_elementwise=None,
    inverse_elementwise=None,
    range=(0.0, 1.0),
    strictly_convex=False,
)

TABLE: dict[str, Transfer] = {
    "identity": identity,
    "sigmoid": sigmoid_transfer,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu(),
    "softmax": softmax_transfer,
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
