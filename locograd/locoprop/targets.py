r"""LocoProp targets: one forward and one backward pass at :math:`W_t`, all layers at once.

With :math:`G_m = \partial L/\partial A_m` (``grads.pre[m]``, carrying :math:`1/B`):

* LocoProp-S (squared loss on the pre-activation): :math:`A^*_m = A_m - \gamma G_m`;
* LocoProp-M (matching loss, post-activation target from the PRE-activation
  gradient): :math:`Y^*_m = f_m(A_m) - \gamma G_m`.

Using :math:`\partial L/\partial Y` instead of :math:`\partial L/\partial A`,
or :math:`f(A - \gamma G)`, breaks the exact first-step identity.

The per-layer-normalised variant (``normalised=True``; locograd's, NOT in the paper) uses
:math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)` in place of :math:`\gamma` in layer
:math:`m` (:func:`normalised_gamma`, :func:`normalised_offset`): every layer's target step then has
RMS :math:`\gamma`, whatever the scale of its gradient.

These are the targets of the paper, for teaching.  The solvers never subtract them: each
:class:`~locograd.locoprop.LocalProblem` holds :math:`A_m` and the offset :math:`\gamma G_m`, and
forms its residual as :math:`\gamma G_m` plus the change of :math:`A_m` (S) or of :math:`f(A_m)`
(M).  In float32 a stored target rounds :math:`\gamma G_m` away where it is below the rounding of
:math:`f(A_m)`, as in the first layers of a deep logistic network (1e-9 to 1e-6 against 0.5).

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([2, 3, 2], ["tanh", "identity"], "squared_error")
>>> params, x = net.init(), np.ones((4, 2))
>>> trace = net.forward(params, x)
>>> grads = net.backward(params, trace, np.zeros((4, 2)), weight_grads=False)
>>> t = lg.locoprop.targets(trace, grads, gamma=1.0, variant="M")
>>> np.allclose(t[0], trace.post[0] - grads.pre[0])
True
"""

from __future__ import annotations

from ..backend import Array, array_namespace
from ..nn import Grads, Trace
from ..validators import canonical_choice, number

VARIANTS = ("S", "M")

TAU = 1e-30
r"""The floor :math:`\tau` of :math:`\mathrm{RMS}(G_m)` in :math:`\gamma_m = \gamma/\max(\mathrm{RMS}(G_m), \tau)`:
a float32 normal number, far below the RMS of any gradient a network produces (which it then never
touches), so that a layer whose gradient vanishes gets a bounded offset instead of a division by 0."""


def rms(g: Array) -> Array:
    r"""The root mean square of all entries of ``g`` (any shape), as a 0-d array of ``g``'s dtype.

    Computed as :math:`s \sqrt{\mathrm{mean}((g/s)^2)}` with :math:`s = \max|g|` (and 0 for
    :math:`s = 0`), so that it is accurate in float32 where :math:`g^2` underflows (squares of
    entries below 1e-19 are subnormal, of entries below 4e-23 zero) or overflows.  No host transfer.

    >>> import numpy as np
    >>> g = np.full((2, 3), 1e-25, dtype=np.float32)
    >>> float(np.sqrt(np.mean(g**2))), bool(np.isclose(float(rms(g)), 1e-25, rtol=1e-6, atol=0))
    (0.0, True)
    >>> float(rms(np.zeros((2, 3))))
    0.0
    """
    xp = array_namespace(g)
    if g.size == 0:
        return xp.zeros((), dtype=g.dtype)
    s = xp.max(xp.abs(g))
    safe = xp.where(s > 0, s, xp.ones_like(s))  # s = 0 only for g = 0: then g/1 = 0 and the RMS 0
    return s * xp.sqrt(xp.mean(xp.square(g / safe)))


def normalised_gamma(g: Array, gamma: float, tau: float = TAU) -> Array:
    r""":math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)`, a 0-d array of ``g``'s dtype.

    Args:
        g: the layer's :math:`G_m = \partial L/\partial A_m`, ``(B, d_out)`` (or the ``(B*P, c_out)``
            rows of a convolution; the RMS runs over all entries, so any shape gives the same value).
        gamma: the dimensionless target step :math:`\gamma > 0`.
        tau: the floor of the RMS (:data:`TAU`).

    A teaching view: the solvers take :func:`normalised_offset`, which never forms this number
    (it overflows float32 for a large ``gamma`` over a tiny RMS).
    """
    xp = array_namespace(g)
    return check_gamma(gamma) / xp.maximum(rms(g), tau)


def normalised_offset(g: Array, gamma: float, tau: float = TAU) -> Array:
    r"""The offset :math:`\gamma_m G_m` of the per-layer-normalised variant, ``g``'s shape and dtype.

    Formed as :math:`\gamma \cdot (G_m / \max(\mathrm{RMS}(G_m), \tau))`: the quotient has RMS 1
    (at most :math:`\sqrt{n}` per entry for :math:`n` entries), so nothing overflows whatever the
    scale of :math:`G_m`; :math:`G_m = 0` gives the offset 0 (no update).  Its RMS is
    :math:`\gamma` (to rounding) wherever :math:`\mathrm{RMS}(G_m) \ge \tau`, and it is homogeneous
    of degree 0 in :math:`G_m`: scaling the loss by :math:`c > 0` leaves it unchanged.

    Args:
        g: the layer's :math:`G_m`, any shape (see :func:`normalised_gamma`).
        gamma: the dimensionless target step :math:`\gamma > 0`.
        tau: the floor of the RMS (:data:`TAU`).

    >>> import numpy as np
    >>> g = np.array([[3e-9, -4e-9]], dtype=np.float32)
    >>> off = normalised_offset(g, 0.01)
    >>> off.dtype, bool(np.isclose(float(rms(off)), 0.01, rtol=1e-6, atol=0))
    (dtype('float32'), True)
    """
    xp = array_namespace(g)
    return check_gamma(gamma) * (g / xp.maximum(rms(g), tau))


def check_variant(variant: str) -> str:
    """Validate the variant name (``"S"`` or ``"M"``; case and surrounding spaces do not matter)."""
    if not isinstance(variant, str):
        raise ValueError(
            f"variant: expected one of {', '.join(VARIANTS)}, got {type(variant).__name__} {variant!r}"
        )
    return canonical_choice("variant", variant.upper(), VARIANTS)


def check_gamma(gamma: float) -> float:
    """Validate the target step :math:`\\gamma > 0`."""
    return number("gamma", gamma, low=0, low_open=True)


def targets(
    trace: Trace, grads: Grads, gamma: float, variant: str, *, normalised: bool = False
) -> list[Array]:
    r"""Per-layer targets: :math:`A^*_m` (``"S"``) or :math:`Y^*_m` (``"M"``), each ``(B, d_{m+1})``.

    Args:
        trace: the forward trace at :math:`W_t`.
        grads: its backward pass (only ``grads.pre`` is used).
        gamma: target step :math:`\gamma > 0`.
        variant: ``"S"`` or ``"M"``.
        normalised: use the per-layer :math:`\gamma_m = \gamma/\max(\mathrm{RMS}(G_m), \tau)`
            (the normalised variant, not in the paper; :func:`normalised_offset`).
    """
    variant, gamma = check_variant(variant), check_gamma(gamma)
    if not isinstance(trace, Trace):
        raise TypeError(f"trace: expected a Trace from MLP.forward, got {type(trace).__name__}")
    if not isinstance(grads, Grads):
        raise TypeError(f"grads: expected Grads from MLP.backward, got {type(grads).__name__}")
    base = trace.pre if variant == "S" else trace.post
    if len(grads.pre) != len(base):
        raise ValueError(
            f"grads: expected {len(base)} layers like the trace, got {len(grads.pre)} (another network's?)"
        )
    for m, (a, g) in enumerate(zip(base, grads.pre, strict=True)):
        if getattr(g, "shape", None) != a.shape or getattr(g, "dtype", None) != a.dtype:
            got = f"{tuple(g.shape)} {g.dtype}" if hasattr(g, "shape") else type(g).__name__
            raise ValueError(
                f"grads.pre[{m}]: expected shape {tuple(a.shape)} and dtype {a.dtype} like the trace, got {got}"
            )
    if not isinstance(normalised, bool):
        raise ValueError(f"normalised: expected True or False, got {normalised!r}")
    if normalised:
        return [a - normalised_offset(g, gamma) for a, g in zip(base, grads.pre, strict=True)]
    return [a - gamma * g for a, g in zip(base, grads.pre, strict=True)]
