r"""Bregman divergences and matching losses, built generically from the transfer table.

For a transfer :math:`f = \nabla F` (see :mod:`locograd.transfer`), the Bregman
divergence between pre-activations ``p`` and ``q`` (shape ``(B, d)``) is

.. math:: D_F(p, q) = F(p) - F(q) - f(q)\cdot(p - q) \;\ge 0,

summed over the ``d`` units, one value per example (shape ``(B,)``).  It is
convex in ``p``, zero at ``p == q``, and :math:`\nabla_p D_F(p, q) = f(p) - f(q)`.

The *matching loss* of a pre-activation ``a`` against a post-activation
target :math:`y^*` is :math:`D_F(a, f^{-1}(y^*))` up to a term that does not
depend on ``a``.  Since :math:`F(f^{-1}(y^*)) - y^* \cdot f^{-1}(y^*) = -F^*(y^*)`,

.. math:: D_F(a, f^{-1}(y^*)) = F(a) - y^*\cdot a + F^*(y^*),

so :func:`matching_loss` returns :math:`F(a) - y^*\cdot a` and never needs
:math:`f^{-1}`: its gradient is :math:`f(a) - y^*`.  The network losses of
:mod:`locograd.losses` are matching losses of their output transfer.

**Numerically**, the defining difference :math:`F(p) - F(q) - f(q)\cdot(p - q)`
cancels: near :math:`p = q` it is a second-order quantity computed from first-order
terms, so in float32 at :math:`|a| = 80` it comes out negative (by ~1e-4 for the
identity).  :func:`divergence` therefore evaluates every transfer of the table
through the difference :math:`\delta = p - q`, as a sum of terms that are each
:math:`\ge 0`, so the result is :math:`\ge 0` in every dtype, is exactly 0 at
:math:`p = q`, and is accurate to a few units of rounding relative to itself
(docs/math.md section 5):

* identity: :math:`\tfrac12\|\delta\|^2`;
* relu: :math:`\tfrac12(\mathrm{relu}(p) - \mathrm{relu}(q))^2 + \mathrm{relu}(q)\,\mathrm{relu}(-p)`
  per unit; leaky relu (slope :math:`s`): the relu form at :math:`(p, q)` plus
  :math:`s` times it at :math:`(-p, -q)`;
* softmax (rows): with :math:`s = \mathrm{softmax}(q)` and :math:`c = \delta - s\cdot\delta`,
  :math:`D = \log\sum_j s_j e^{c_j} = \log\bigl(1 + \sum_j s_j\,\varphi(c_j)\bigr)`,
  :math:`\varphi(c) = e^c - 1 - c \ge 0` (the KL divergence of the two softmaxes,
  since :math:`\sum_j s_j c_j = 0`); a log-sum-exp where a term would overflow;
* sigmoid: the softmax form on the two classes :math:`(a, 0)`; tanh: the sigmoid
  form at :math:`(2p, 2q)` (:math:`\log\cosh a = \mathrm{softplus}(2a) - a - \log 2`).

A transfer outside the table (a custom :class:`~locograd.transfer.Transfer` subclass,
or an :class:`~locograd.transfer.Elementwise` whose name or per-unit ``f`` is not a
table row's) falls back to the defining difference.  :func:`dual_divergence` likewise
uses sums of generalised KL terms :math:`u\log(u/v) - u + v \ge 0`.

>>> import numpy as np
>>> from locograd import bregman
>>> p, q = np.array([[0.5, -1.0]]), np.array([[0.0, 2.0]])
>>> d = bregman.divergence("identity", p, q)
>>> np.allclose(d, 0.5 * ((p - q) ** 2).sum(-1))
True
>>> p32 = np.full((1, 3), 80.0, np.float32)
>>> float(bregman.divergence("identity", p32, p32 * np.float32(1 + 1e-7))[0]) >= 0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Array, array_namespace, check_float_array
from .transfer import Elementwise, Softmax, Transfer, get, identity, logistic, relu, sigmoid, softplus, tanh

# phi(c) = e^c - 1 - c = sum_{k>=2} c^k / k!, by its Taylor series for |c| < _SERIES_BOUND: the first
# omitted term, c^16/16!, is below 6e-18 of the sum c^2/2 + ... there, and every partial sum is > 0.
# Outside, expm1(c) - c loses at most ~8 ulps (its terms are at most ~8 times the result).
_SERIES_BOUND = 0.5
_PHI_COEFFICIENTS = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(2, 16))


def _phi_upto_one(c: Array) -> Array:
    r""":math:`\varphi(c) = e^c - 1 - c \ge 0` for :math:`c \le 1` (larger ``c`` is clipped to 1)."""
    xp = array_namespace(c)
    c = xp.minimum(c, 1)
    small = xp.abs(c) < _SERIES_BOUND
    cs = xp.where(small, c, xp.zeros_like(c))
    poly = xp.full_like(c, _PHI_COEFFICIENTS[-1])
    for coefficient in reversed(_PHI_COEFFICIENTS[:-1]):
        poly = poly * cs + coefficient
    direct = xp.expm1(c) - c
    return xp.where(small, cs * cs * poly, direct)


def _log_mean_exp_centered(log_s: Array, s: Array, c: Array) -> Array:
    r""":math:`\log\sum_j s_j e^{c_j}` over the last axis, for weights ``s`` and ``sum_j s_j c_j = 0``.

    Equals :math:`\log(1 + \sum_j s_j\varphi(c_j))`, a log1p of a sum of non-negative terms
    (for :math:`c_j > 1` the term is :math:`e^{\log s_j + c_j} - s_j(1 + c_j)`, which has no
    cancellation and no overflow however small ``s_j`` is).  Where some
    :math:`\log s_j + c_j` exceeds half the log of the dtype's largest value, the log-sum-exp
    itself is taken instead (it is then larger than that bound, so its rounding is relative).

    Args:
        log_s: :math:`\log s` ``(..., k)``, computed directly (not as the log of ``s``).
        s: the weights :math:`e^{\log s}`, same shape.
        c: the centred differences, same shape.

    Returns:
        ``(...)``, every value :math:`\ge 0`.
    """
    xp = array_namespace(c)
    cap = 0.5 * float(np.log(np.finfo(c.dtype).max))
    v = log_s + c
    big = xp.any(v > cap, axis=-1)
    high = c > 1
    tail = xp.exp(xp.minimum(v, cap)) - s * (1 + c)
    terms = xp.where(high, xp.maximum(tail, 0), s * _phi_upto_one(c))
    small_form = xp.log1p(xp.sum(terms, axis=-1))
    m = xp.max(v, axis=-1, keepdims=True)
    with np.errstate(over="ignore"):  # v - m below -max is -inf, whose exp is the 0 it would underflow to
        shifted = v - m
    big_form = xp.squeeze(m, axis=-1) + xp.log(xp.sum(xp.exp(shifted), axis=-1))
    return xp.where(big, big_form, small_form)


def _softmax_divergence(q: Array, delta: Array) -> Array:
    """:math:`D_F(q + \\delta, q)` of logsumexp over the last axis, through :func:`_log_mean_exp_centered`.

    ``q - max(q)`` below ``-max`` of the dtype (``|q|`` near the largest value) overflows to
    ``-inf``, the exact limit there: that weight is 0 (it would underflow anyway).
    """
    xp = array_namespace(q)
    mq = xp.max(q, axis=-1, keepdims=True)
    with np.errstate(over="ignore"):
        shifted = q - mq
    log_s = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    s = xp.exp(log_s)
    c = delta - xp.sum(s * delta, axis=-1, keepdims=True)
    return _log_mean_exp_centered(log_s, s, c)


def _sigmoid_divergence_units(q: Array, delta: Array, scale: float = 1.0) -> Array:
    r"""Per-unit :math:`D_F` of softplus at ``(scale (q + delta), scale q)``: the two-class softmax form, weights :math:`\sigma(\pm q)`.

    ``scale`` 2 gives tanh's (:math:`\log\cosh a = \mathrm{softplus}(2a) - a - \log 2`).  The
    difference enters scaled, ``scale delta``, so ``delta == 0`` gives exactly 0 even where
    ``scale q`` overflows to infinity (the weights' exact limits 0 and 1 there).
    """
    xp = array_namespace(q)
    if scale != 1.0:
        delta = scale * delta
        with np.errstate(over="ignore"):
            q = scale * q
    w, w_bar = logistic(q), logistic(-q)
    log_s = xp.stack([-softplus(-q), -softplus(q)], axis=-1)
    s = xp.stack([w, w_bar], axis=-1)
    c = xp.stack([w_bar * delta, -w * delta], axis=-1)  # delta - s . delta, without the cancellation
    return _log_mean_exp_centered(log_s, s, c)


def _relu_divergence_units(q: Array, delta: Array) -> Array:
    """Per-unit :math:`D_F` of relu^2/2 at ``(q + delta, q)``: (relu(p) - relu(q))^2 / 2 + relu(q) relu(-p), each term >= 0.

    The first difference is the transfer's exact increment (``delta`` where both sides are positive).
    """
    xp = array_namespace(q)
    d = relu.increment(q, delta)
    return d * d / 2 + xp.maximum(q, 0) * xp.maximum(-(q + delta), 0)


def _is_row(t: Transfer, row: Elementwise) -> bool:
    """Whether ``t`` is the table's elementwise ``row``: same class, name and per-unit ``f`` (a copy counts)."""
    return isinstance(t, Elementwise) and t.name == row.name and t.f_unit is row.f_unit


def _stable_divergence(t: Transfer, q: Array, delta: Array) -> Array | None:
    """The table's closed forms of :math:`D_F(q + \\delta, q)` through ``delta`` (see the module docstring); ``None`` off the table."""
    xp = array_namespace(q)
    if _is_row(t, identity):
        return xp.sum(delta * delta, axis=-1) / 2
    if _is_row(t, relu):
        return xp.sum(_relu_divergence_units(q, delta), axis=-1)
    if isinstance(t, Elementwise) and t.name == "leaky_relu" and t.slope is not None:
        units = _relu_divergence_units(q, delta) + t.slope * _relu_divergence_units(-q, -delta)
        return xp.sum(units, axis=-1)
    if _is_row(t, sigmoid):
        return xp.sum(_sigmoid_divergence_units(q, delta), axis=-1)
    if _is_row(t, tanh):
        return _in_wider(lambda q_, d_: xp.sum(_sigmoid_divergence_units(q_, d_, 2.0), axis=-1), q, delta)
    if isinstance(t, Softmax):
        return _in_wider(_softmax_divergence, q, delta)
    return None


def _in_wider(form: Any, q: Array, delta: Array) -> Array:
    """``form(q, delta)``, evaluated in float64 for narrower inputs and rounded back to their dtype.

    For tanh (``2 q``) and softmax (``q - max q``), whose intermediates overflow float32 near its
    largest value although the divergence is finite (0 at ``delta == 0``); float64 has room for them.
    """
    if q.dtype.itemsize >= 8:
        return form(q, delta)
    return form(q.astype(np.float64), delta.astype(np.float64)).astype(q.dtype)


def _generalized_kl(a: Array, b: Array) -> Array:
    r""":math:`a\log(a/b) - a + b \ge 0` elementwise, for :math:`a \ge 0`, :math:`b > 0` (``b`` at ``a = 0``).

    Written as :math:`a\,\varphi(r)` with :math:`r = \log(b/a)` (by ``log1p`` of the
    relative difference when :math:`a/2 \le b \le 2a`, where it is accurate; farther apart,
    ``log b - log a``, since ``(b - a)/a`` rounds to ``-1`` for :math:`b \ll a` and
    ``log1p(-1)`` is ``-inf``), or :math:`b - a(1 + r)` for :math:`r > 1`.
    """
    xp = array_namespace(a)
    pos = a > 0
    safe_a = xp.where(pos, a, xp.ones_like(a))
    safe_b = xp.where(b > 0, b, xp.ones_like(b))
    near = (safe_b <= 2 * safe_a) & (2 * safe_b >= safe_a)
    r_near = xp.log1p(xp.where(near, (safe_b - safe_a) / safe_a, xp.zeros_like(a)))
    r = xp.where(near, r_near, xp.log(safe_b) - xp.log(safe_a))
    value = xp.where(r > 1, xp.maximum(safe_b - safe_a * (1 + r), 0), safe_a * _phi_upto_one(r))
    return xp.where(pos, value, b)


def _stable_dual_divergence(t: Transfer, u: Array, v: Array) -> Array | None:
    """:math:`D_{F^*}` of the table's transfers as sums of non-negative terms; ``None`` off the table."""
    xp = array_namespace(u)
    if _is_row(t, identity):
        d = u - v
        return xp.sum(d * d, axis=-1) / 2
    if isinstance(t, Elementwise) and t.name == "leaky_relu" and t.slope is not None:
        # F* is the leaky relu potential of slope 1/s
        units = _relu_divergence_units(v, u - v) + _relu_divergence_units(-v, v - u) / t.slope
        return xp.sum(units, axis=-1)
    inf = xp.asarray(np.inf, dtype=u.dtype)
    if _is_row(t, sigmoid):
        units = _generalized_kl(u, v) + _generalized_kl(1 - u, 1 - v)
        return xp.where(xp.all(t.in_range(u), axis=-1), xp.sum(units, axis=-1), inf)
    if _is_row(t, tanh):
        units = _generalized_kl((1 + u) / 2, (1 + v) / 2) + _generalized_kl((1 - u) / 2, (1 - v) / 2)
        return xp.where(xp.all(t.in_range(u), axis=-1), xp.sum(units, axis=-1), inf)
    if isinstance(t, Softmax):
        inside = t.in_range(u)[..., 0]
        return xp.where(inside, xp.sum(_generalized_kl(u, v), axis=-1), inf)
    return None


def _check_pair(p: Array, q: Array, names: tuple[str, str], t: Transfer | None = None) -> None:
    """Two floating arrays ``(..., d)`` of one shape, dtype and backend; softmax needs ``d >= 1``.

    A 0-d array has no unit axis to sum over (the divergences are sums over the last axis),
    and a softmax over no units is undefined (log-sum-exp of nothing).
    """
    check_float_array(p, names[0])
    check_float_array(q, names[1])
    array_namespace(**{names[0]: p, names[1]: q})
    if p.ndim == 0:
        raise ValueError(f"{names[0]}: expected an array (..., d) with a unit axis, got a 0-d array")
    if p.shape != q.shape:
        raise ValueError(
            f"{names[1]}: expected the shape of {names[0]} {tuple(p.shape)}, got {tuple(q.shape)}"
        )
    if p.dtype != q.dtype:
        raise TypeError(f"{names[1]}: expected dtype {p.dtype} like {names[0]}, got {q.dtype}")
    if t is not None and not t.elementwise and p.shape[-1] == 0:
        raise ValueError(
            f"{names[0]}: expected at least one unit for {t.name} (a softmax over none is undefined), "
            f"got shape {tuple(p.shape)}"
        )


def divergence(transfer: str | Transfer, p: Array, q: Array) -> Array:
    r"""Bregman divergence :math:`D_F(p, q)` summed over units.

    Args:
        transfer: name or row of the transfer table.
        p: pre-activations, ``(..., d)``.
        q: pre-activations, same shape and dtype as ``p``.

    Returns:
        ``(...)``: one value per example (``p.shape[:-1]``), dtype of ``p``.
    """
    t = get(transfer)
    _check_pair(p, q, ("p", "q"), t)
    return _divergence(t, p, q)


def _divergence(t: Transfer, p: Array, q: Array) -> Array:
    """:func:`divergence` on arguments already checked (``_check_pair``): the stable form, or the definition."""
    stable = _stable_divergence(t, q, p - q)
    if stable is not None:
        return stable
    xp = array_namespace(p)
    return t.potential(p) - t.potential(q) - xp.sum(t.f(q) * (p - q), axis=-1)


def divergence_step(transfer: str | Transfer, q: Array, delta: Array) -> Array:
    r""":math:`D_F(q + \delta, q)` summed over units, from the step :math:`\delta` itself.

    The divergence of a point moved by :math:`\delta` from ``q``, without forming
    :math:`q + \delta` where it would round :math:`\delta` away: the table's forms take
    :math:`\delta` as it is (:func:`divergence` takes ``p - q``, which is already rounded when
    ``p`` was formed as ``q + delta``).  LocoProp's local solvers measure the change of their
    objective with it.  A transfer outside the table falls back to the definition at
    ``q + delta``.

    Args:
        transfer: name or row of the transfer table.
        q: pre-activations, ``(..., d)``.
        delta: the step, same shape and dtype as ``q``.

    Returns:
        ``(...)``: one value per example, dtype of ``q``, every value :math:`\ge 0` on the table.

    >>> import numpy as np
    >>> q, delta = np.full((1, 1), 0.3, np.float32), np.full((1, 1), 4e-9, np.float32)
    >>> float(divergence("sigmoid", q + delta, q)[0])  # q + delta rounds to q
    0.0
    >>> round(float(divergence_step("sigmoid", q, delta)[0]) / 1.96e-18, 2)  # f'(q) delta^2 / 2 = 1.96e-18
    1.0
    """
    t = get(transfer)
    _check_pair(q, delta, ("q", "delta"), t)
    return _divergence_step(t, q, delta)


def _divergence_step(t: Transfer, q: Array, delta: Array) -> Array:
    """:func:`divergence_step` on arguments already checked."""
    stable = _stable_divergence(t, q, delta)
    if stable is not None:
        return stable
    return _divergence(t, q + delta, q)


def divergence_grad(transfer: str | Transfer, p: Array, q: Array) -> Array:
    r""":math:`\nabla_p D_F(p, q) = f(p) - f(q)`, shape of ``p``."""
    t = get(transfer)
    _check_pair(p, q, ("p", "q"), t)
    return t.f(p) - t.f(q)


def dual_divergence(transfer: str | Transfer, u: Array, v: Array) -> Array:
    r"""Bregman divergence of the conjugate, :math:`D_{F^*}(u, v)` for post-activations.

    Uses :math:`\nabla F^* = f^{-1}`, so it needs ``v`` inside the open range
    of ``f`` (see :meth:`Transfer.inverse`); ``u`` may lie on its boundary.
    The duality :math:`D_F(p, q) = D_{F^*}(f(q), f(p))` holds for every
    strictly convex :math:`F` (and for softmax, whose inverse is defined up to
    a shift that cancels).  ``+inf`` where ``u`` lies outside the closed range.

    The table's transfers are computed as sums of terms :math:`\ge 0` (generalised KL
    terms :math:`u\log(u/v) - u + v` for sigmoid, tanh and softmax, squares for the
    piecewise quadratics), so the result is :math:`\ge 0` near :math:`u = v` in every dtype.

    Raises:
        ValueError: ``v`` outside the open range of ``f``, or ``f`` not invertible (relu).
    """
    t = get(transfer)
    _check_pair(u, v, ("u", "v"), t)
    inverse_v = t.inverse(v)  # refuses v outside the open range (and a transfer without inverse)
    stable = _stable_dual_divergence(t, u, v)
    if stable is not None:
        return stable
    xp = array_namespace(u)
    return t.conjugate(u) - t.conjugate(v) - xp.sum(inverse_v * (u - v), axis=-1)


def matching_loss(transfer: str | Transfer, a: Array, target: Array) -> Array:
    r"""Matching loss :math:`F(a) - y^*\cdot a`, per example (shape ``a.shape[:-1]``).

    Equal to :math:`D_F(a, f^{-1}(y^*)) - F^*(y^*)`, so it has the minimisers
    and the gradient of the divergence, is convex in ``a``, and needs no
    inverse.  A target outside the range of ``f`` makes it unbounded below.

    Args:
        transfer: name or row of the transfer table.
        a: pre-activations, ``(..., d)``.
        target: post-activation targets :math:`y^*`, same shape and dtype.
    """
    t = get(transfer)
    _check_pair(a, target, ("a", "target"), t)
    return _matching_loss(t, a, target)


def _matching_loss(t: Transfer, a: Array, target: Array) -> Array:
    r""":func:`matching_loss` on arguments already checked (``_check_pair``): :math:`F(a) - y^*\cdot a`, ``(...)``.

    For an elementwise transfer the difference is taken unit by unit, then summed,
    :math:`\sum_j (F(a_j) - y^*_j a_j)`: each unit's terms cancel against each other before
    the sum (two large sums of the whole row would cancel after it, several ulps less accurate).
    """
    xp = array_namespace(a)
    if isinstance(t, Elementwise):
        return xp.sum(t.potential_unit(a) - target * a, axis=-1)
    return t.potential(a) - xp.sum(target * a, axis=-1)


def matching_loss_grad(transfer: str | Transfer, a: Array, target: Array) -> Array:
    r""":math:`\nabla_a` of :func:`matching_loss`: :math:`f(a) - y^*`, shape of ``a``."""
    t = get(transfer)
    _check_pair(a, target, ("a", "target"), t)
    return t.f(a) - target
