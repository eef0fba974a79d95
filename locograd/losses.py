r"""Output losses, computed from the last pre-activation ``A`` ``(B, d)``.

Per-example losses (one value per row):

* ``squared_error``: :math:`\tfrac12\sum_j (a_j - y_j)^2`, identity output;
* ``sigmoid_cross_entropy``: :math:`\sum_j \mathrm{softplus}(a_j) - y_j a_j`,
  sigmoid output, targets in ``[0, 1]``;
* ``softmax_cross_entropy``: :math:`\mathrm{logsumexp}(a) - \sum_j y_j a_j`,
  softmax output, targets one-hot, probabilities, or integer labels ``(B,)``.

Each is the matching loss :math:`F(a) - y\cdot a` of its output transfer,
computed by :mod:`locograd.bregman` (:func:`~locograd.bregman.matching_loss`
of :data:`~locograd.transfer.sigmoid` and :data:`~locograd.transfer.softmax`);
the squared error adds :math:`F^*(y) = \tfrac12\|y\|^2`, which makes it the
identity's divergence :math:`D_F(a, f^{-1}(y)) = \tfrac12\|a - y\|^2`, taken
from :func:`~locograd.bregman.divergence` through the difference :math:`a - y`
(the sum :math:`F(a) - y\cdot a + F^*(y)` would cancel where :math:`a \approx y`).
So every gradient is simply :math:`f(a) - y`.  The network loss is the
batch MEAN of the per-example losses, so :math:`\partial L/\partial A =
(f(A) - Y)/B` carries the factor :math:`1/B`.

>>> import numpy as np
>>> from locograd import losses
>>> loss = losses.get("squared_error")
>>> value, g = loss.mean_value_and_grad(np.array([[1.0], [3.0]]), np.zeros((2, 1)))
>>> float(value), g.ravel().tolist()
(2.5, [0.5, 1.5])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .backend import Array, array_namespace, check_float_array
from .bregman import _divergence, _matching_loss
from .transfer import Transfer, identity, sigmoid, softmax
from .transfer import get as get_transfer
from .validators import canonical_choice

# The per-example losses ``(a, y) -> (B,)`` on arrays already checked by Loss (one shape
# (B, d), one dtype and backend), so they call bregman's unchecked forms.


def _squared_error(a: Array, y: Array) -> Array:
    r""":math:`\tfrac12\|a - y\|^2 = D_F(a, y)` of the identity, summed over the last axis."""
    return _divergence(identity, a, y)


def _sigmoid_ce(a: Array, y: Array) -> Array:
    r""":math:`\sum_j \mathrm{softplus}(a_j) - y\cdot a`, the sigmoid's matching loss."""
    return _matching_loss(sigmoid, a, y)


def _softmax_ce(a: Array, y: Array) -> Array:
    r""":math:`\mathrm{logsumexp}(a) - y\cdot a`, the softmax's matching loss."""
    return _matching_loss(softmax, a, y)


@dataclasses.dataclass(frozen=True)
class Loss:
    """An output loss and the transfer it matches.

    Attributes:
        name: ``"squared_error"``, ``"sigmoid_cross_entropy"`` or ``"softmax_cross_entropy"``.
        transfer_name: the output activation it requires.
        per_example_fn: ``(a, y) -> (B,)``.
    """

    name: str
    transfer_name: str
    per_example_fn: Callable[[Array, Array], Array]

    @property
    def transfer(self) -> Transfer:
        """The output transfer :math:`f` whose matching loss this is."""
        return get_transfer(self.transfer_name)

    def prepare_targets(self, a: Array, y: Array, name: str = "y") -> Array:
        """Validate ``y`` against ``a`` ``(B, d)``; integer labels become one-hot (softmax only).

        Floating targets are cast to the dtype of ``a``.
        """
        xp = array_namespace(a=a, **{name: y})
        labels: Array = y
        if self.name == "softmax_cross_entropy" and labels.dtype.kind in "iu":
            if labels.shape != a.shape[:1]:
                raise ValueError(
                    f"{name}: integer labels must have shape ({a.shape[0]},), got {tuple(labels.shape)}"
                )
            d = a.shape[1]
            if bool(xp.any((labels < 0) | (labels >= d))):
                raise ValueError(f"{name}: integer labels must lie in [0, {d})")
            return (labels[:, None] == xp.arange(d)[None, :]).astype(a.dtype)
        y = check_float_array(y, name, ndim=2)
        if y.shape != a.shape:
            raise ValueError(f"{name}: expected shape {tuple(a.shape)}, got {tuple(y.shape)}")
        return y.astype(a.dtype, copy=False)

    def per_example(self, a: Array, y: Array) -> Array:
        """Per-example loss, shape ``(B,)``."""
        a = check_float_array(a, "a", ndim=2)
        return self.per_example_fn(a, self.prepare_targets(a, y))

    def mean_value_and_grad(self, a: Array, y: Array) -> tuple[Array, Array]:
        r"""Batch-mean loss :math:`L` and :math:`\partial L/\partial A = (f(A) - Y)/B`.

        The loss is a 0-d array on the device of ``a`` (no host transfer).
        """
        a = check_float_array(a, "a", ndim=2)
        if a.shape[0] == 0:  # the mean of no rows: NaN, with NumPy's "Mean of empty slice" warning
            raise ValueError(f"a: expected a batch of at least one row (B >= 1), got shape {tuple(a.shape)}")
        y = self.prepare_targets(a, y)
        return self.per_example_fn(a, y).mean(), (self.transfer.f(a) - y) / a.shape[0]


LOSSES: dict[str, Loss] = {
    "squared_error": Loss("squared_error", "identity", _squared_error),
    "sigmoid_cross_entropy": Loss("sigmoid_cross_entropy", "sigmoid", _sigmoid_ce),
    "softmax_cross_entropy": Loss("softmax_cross_entropy", "softmax", _softmax_ce),
}
NAMES: tuple[str, ...] = tuple(LOSSES)


def get(name: str | Loss) -> Loss:
    """Look a loss up by name (case, spaces and ``_``/``-`` do not matter); unknown names list the valid ones."""
    if isinstance(name, Loss):
        return name
    return LOSSES[canonical_choice("loss", name, NAMES)]
