r"""LocoProp targets: one forward and one backward pass at :math:`W_t`, all layers at once.

With :math:`G_m = \partial L/\partial A_m` (``grads.pre[m]``, carrying :math:`1/B`):

* LocoProp-S (squared loss on the pre-activation): :math:`A^*_m = A_m - \gamma G_m`;
* LocoProp-M (matching loss, post-activation target from the PRE-activation
  gradient): :math:`Y^*_m = f_m(A_m) - \gamma G_m`.

Using :math:`\partial L/\partial Y` instead of :math:`\partial L/\partial A`,
or :math:`f(A - \gamma G)`, breaks the exact first-step identity.

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

from ..backend import Array
from ..nn import Grads, Trace
from ..validators import canonical_choice, number

VARIANTS = ("S", "M")


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


def targets(trace: Trace, grads: Grads, gamma: float, variant: str) -> list[Array]:
    r"""Per-layer targets: :math:`A^*_m` (``"S"``) or :math:`Y^*_m` (``"M"``), each ``(B, d_{m+1})``.

    Args:
        trace: the forward trace at :math:`W_t`.
        grads: its backward pass (only ``grads.pre`` is used).
        gamma: target step :math:`\gamma > 0`.
        variant: ``"S"`` or ``"M"``.
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
    return [a - gamma * g for a, g in zip(base, grads.pre, strict=True)]
