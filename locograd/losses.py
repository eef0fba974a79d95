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

import numpy as np

from .backend import Array, array_namespace, check_float_array
from .bregman import _divergence, _matching_loss
from .transfer import Transfer, identity, sigmoid, softmax
from .validators import canonical_choice


class Loss:
    """An output loss: the matching loss of its output transfer, computed from the last pre-activation.

    Subclasses set :attr:`name` and :attr:`transfer` and implement :meth:`_per_example` and
    :meth:`_sample`; classification losses also :meth:`metrics`.  Instances hold no state.
    """

    name: str = ""
    """The loss's name, e.g. ``"softmax_cross_entropy"``."""

    transfer: Transfer = identity
    """The output transfer :math:`f` whose matching loss this is (the last layer's activation)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _per_example(self, a: Array, y: Array) -> Array:
        """The per-example loss ``(B,)`` of checked ``a`` and prepared targets ``y`` ``(B, d)``."""
        raise NotImplementedError

    def prepare_targets(self, a: Array, y: Array, name: str = "y") -> Array:
        """Validate ``y`` against ``a`` ``(B, d)``: floating targets of its shape, cast to its dtype."""
        array_namespace(a=a, **{name: y})
        y = check_float_array(y, name, ndim=2)
        if y.shape != a.shape:
            raise ValueError(f"{name}: expected shape {tuple(a.shape)}, got {tuple(y.shape)}")
        return y.astype(a.dtype, copy=False)

    def per_example(self, a: Array, y: Array) -> Array:
        """Per-example loss, shape ``(B,)``."""
        a = check_float_array(a, "a", ndim=2)
        return self._per_example(a, self.prepare_targets(a, y))

    def mean_value_and_grad(self, a: Array, y: Array) -> tuple[Array, Array]:
        r"""Batch-mean loss :math:`L` and :math:`\partial L/\partial A = (f(A) - Y)/B`.

        The loss is a 0-d array on the device of ``a`` (no host transfer).
        """
        a = check_float_array(a, "a", ndim=2)
        if a.shape[0] == 0:  # the mean of no rows: NaN, with NumPy's "Mean of empty slice" warning
            raise ValueError(f"a: expected a batch of at least one row (B >= 1), got shape {tuple(a.shape)}")
        y = self.prepare_targets(a, y)
        return self._per_example(a, y).mean(), (self.transfer.f(a) - y) / a.shape[0]

    def metrics(self, a: Array, y: Array) -> dict[str, Array]:
        """Batch metrics beyond the loss, as 0-d arrays on the device of ``a``: none for a regression loss."""
        return {}

    def best_constant(self, y: Array) -> float:
        r"""The least mean loss that one constant output, the same for every example, reaches on ``y``.

        :math:`\min_c \frac1N\sum_n \ell(c, y_n)`, with ``y`` the targets ``(N, d)`` (or a classifier's
        integer labels ``(N,)``).  The matching loss is :math:`\ell(a, y) = D_F(a, f^{-1}(y)) - F^*(y)`
        (the squared error keeps the :math:`F^*(y)` term), and the mean of Bregman divergences in
        their first argument is least where :math:`f(c) = \bar y`, the mean target (set the gradient
        :math:`f(c) - \bar y` to zero).  So the value is :math:`-F^*(\bar y)` for the two
        cross-entropies, the entropy of the mean target (:math:`\sum_j H(\bar y_j)` for the
        sigmoid's, :math:`H(\bar y)` for the softmax's), and :math:`\frac1N\sum_n F^*(y_n) - F^*(\bar y)`
        for the squared error, half the sum of the target coordinates' variances.  Reaching it needs
        no hidden layer at all: the output bias alone sets :math:`f(c) = \bar y` (approaches it
        where a mean target is 0 or 1).  A network whose training loss sits there has learned the
        mean target and nothing else: the CURVES autoencoder's plateau near 155.2.  Computed in float64.

        >>> import numpy as np
        >>> from locograd import losses
        >>> y = np.array([[1.0, 0.0], [1.0, 1.0]])
        >>> round(losses.get("sigmoid_cross_entropy").best_constant(y), 6)  # H(1) + H(1/2) = log 2
        0.693147
        >>> losses.get("squared_error").best_constant(y)  # half the variance of the second column
        0.125
        """
        xp = array_namespace(y=y)
        if y.ndim == 1 and y.dtype.kind in "iu":
            classes = int(xp.max(y)) + 1 if y.shape[0] else 1
            y = self.prepare_targets(xp.zeros((y.shape[0], classes)), y)
        y = check_float_array(y, "y", ndim=2).astype(xp.float64)
        if y.shape[0] == 0:
            raise ValueError(f"y: expected at least one target row, got shape {tuple(y.shape)}")
        mean = y.mean(axis=0)
        value = -self.transfer.conjugate(mean)
        if self._keeps_conjugate:
            value = value + self.transfer.conjugate(y).mean()
        return float(value)

    _keeps_conjugate: bool = False
    """Whether the per-example loss includes :math:`F^*(y)` (the squared error does, the cross-entropies do not)."""

    def sample(self, rng: np.random.Generator, output: Array) -> Array:
        r"""Targets drawn from the model's predictive distribution at ``output`` :math:`= f(A)` ``(B, d)``.

        What K-FAC's sampled Fisher backpropagates: for a matching loss
        :math:`E_{y \sim p(y|a)}[g g^\top]` is the Fisher.  Draws ``rng.random(output.shape)`` first
        for every loss, then whatever the distribution needs, on the host; the result is on the
        device of ``output``.
        """
        xp = array_namespace(output)
        u = xp.asarray(rng.random(output.shape), dtype=output.dtype)
        return self._sample(rng, output, u)

    def _sample(self, rng: np.random.Generator, output: Array, u: Array) -> Array:
        raise NotImplementedError

    def fisher_root(self, output: Array) -> Array:
        r"""Per example a square root :math:`S_n` ``(B, d, d)`` of the Fisher w.r.t. the pre-activation.

        For a matching loss the Fisher of :math:`p(y|a)` w.r.t. :math:`a` is its Hessian, the output
        transfer's Jacobian :math:`f'(a_n) = S_n S_n^\top`; K-FAC's expected Fisher backpropagates
        the columns of :math:`S_n`.  ``output`` is :math:`f(A)` ``(B, d)``.
        """
        raise NotImplementedError


class SquaredError(Loss):
    r"""``squared_error``: :math:`\tfrac12\|a - y\|^2`, the identity's matching loss; targets ``(B, d)``."""

    name = "squared_error"
    transfer = identity
    _keeps_conjugate = True

    def _per_example(self, a: Array, y: Array) -> Array:
        return _divergence(identity, a, y)

    def _sample(self, rng: np.random.Generator, output: Array, u: Array) -> Array:
        """A Gaussian of unit variance around the output."""
        xp = array_namespace(output)
        return output + xp.asarray(rng.standard_normal(output.shape), dtype=output.dtype)

    def fisher_root(self, output: Array) -> Array:
        """:math:`S_n = I`: the unit Gaussian's Fisher."""
        xp = array_namespace(output)
        B, d = output.shape
        return xp.broadcast_to(xp.eye(d, dtype=output.dtype), (B, d, d))


class SigmoidCrossEntropy(Loss):
    r"""``sigmoid_cross_entropy``: :math:`\sum_j \mathrm{softplus}(a_j) - y_j a_j`; targets in ``[0, 1]`` ``(B, d)``.

    Its metric is the ``accuracy`` of every unit's decision :math:`a_j > 0` against :math:`y_j > 1/2`.
    """

    name = "sigmoid_cross_entropy"
    transfer = sigmoid

    def _per_example(self, a: Array, y: Array) -> Array:
        return _matching_loss(sigmoid, a, y)

    def metrics(self, a: Array, y: Array) -> dict[str, Array]:
        """``{"accuracy": mean over units and rows of [a > 0] == [y > 1/2]}``."""
        a = check_float_array(a, "a", ndim=2)
        y = self.prepare_targets(a, y)
        return {"accuracy": ((a > 0) == (y > 0.5)).mean()}

    def _sample(self, rng: np.random.Generator, output: Array, u: Array) -> Array:
        """Independent Bernoulli units of probability ``output``."""
        return (u < output).astype(output.dtype)

    def fisher_root(self, output: Array) -> Array:
        r""":math:`S_n = \mathrm{diag}(\sqrt{p(1-p)})`, :math:`p` the output."""
        xp = array_namespace(output)
        root = xp.sqrt(output * (1 - output))
        return root[:, :, None] * xp.eye(output.shape[1], dtype=output.dtype)


class SoftmaxCrossEntropy(Loss):
    r"""``softmax_cross_entropy``: :math:`\mathrm{logsumexp}(a) - y\cdot a`; targets one-hot or probabilities
    ``(B, d)``, or integer labels ``(B,)`` in ``[0, d)``.

    Its metric is the ``accuracy`` of :math:`\arg\max_j a_j` against the label (the target's argmax).
    """

    name = "softmax_cross_entropy"
    transfer = softmax

    def _per_example(self, a: Array, y: Array) -> Array:
        return _matching_loss(softmax, a, y)

    def prepare_targets(self, a: Array, y: Array, name: str = "y") -> Array:
        """Integer labels ``(B,)`` in ``[0, d)`` become one-hot; floating targets as :meth:`Loss.prepare_targets`."""
        xp = array_namespace(a=a, **{name: y})
        if y.dtype.kind in "iu":
            if y.shape != a.shape[:1]:
                raise ValueError(
                    f"{name}: integer labels must have shape ({a.shape[0]},), got {tuple(y.shape)}"
                )
            d = a.shape[1]
            if bool(xp.any((y < 0) | (y >= d))):
                raise ValueError(f"{name}: integer labels must lie in [0, {d})")
            return (y[:, None] == xp.arange(d)[None, :]).astype(a.dtype)
        return super().prepare_targets(a, y, name)

    def metrics(self, a: Array, y: Array) -> dict[str, Array]:
        """``{"accuracy": mean over rows of [argmax a == label]}``."""
        a = check_float_array(a, "a", ndim=2)
        labels = self.prepare_targets(a, y).argmax(axis=1)
        return {"accuracy": (a.argmax(axis=1) == labels).mean()}

    def _sample(self, rng: np.random.Generator, output: Array, u: Array) -> Array:
        """One integer label per row from the categorical ``output``, by inverting its CDF at ``u[:, 0]``."""
        xp = array_namespace(output)
        cdf = xp.cumsum(output, axis=1)
        labels = (u[:, :1] > cdf).sum(axis=1)
        return xp.minimum(labels, output.shape[1] - 1)

    def fisher_root(self, output: Array) -> Array:
        r""":math:`S_n = \mathrm{diag}(\sqrt p) - p\sqrt p^\top`: :math:`S_n S_n^\top = \mathrm{diag}(p) - pp^\top` as :math:`\sum_j p_j = 1`."""
        xp = array_namespace(output)
        root = xp.sqrt(output)
        return (
            root[:, :, None] * xp.eye(output.shape[1], dtype=output.dtype)
            - output[:, :, None] * root[:, None, :]
        )


LOSSES: dict[str, Loss] = {
    loss.name: loss for loss in (SquaredError(), SigmoidCrossEntropy(), SoftmaxCrossEntropy())
}
NAMES: tuple[str, ...] = tuple(LOSSES)


def get(name: str | Loss) -> Loss:
    """Look a loss up by name (case, spaces and ``_``/``-`` do not matter); unknown names list the valid ones."""
    if isinstance(name, Loss):
        return name
    return LOSSES[canonical_choice("loss", name, NAMES)]
