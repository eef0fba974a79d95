"""``Loss.best_constant``: the least mean loss of one constant output is reached at the mean target.

Tolerance: every quantity is a float64 sum of at most 6 terms per row, each below 20 in size
(logits bounded by 3 give |softplus|, |logsumexp|, |y a| <= 3 + log 6), averaged over at most 8 rows,
so rounding stays below 1e-13 absolute; 1e-10 leaves room and is far below any gap tested here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from locograd import losses
from locograd.transfer import logistic, softmax_rows

from .strategies import matrices

TOL = 1e-10


def _targets(name: str, m: np.ndarray) -> np.ndarray:
    """Targets of each loss's range from bounded logits: probabilities in (0, 1), rows on the simplex."""
    if name == "sigmoid_cross_entropy":
        return logistic(m)
    if name == "softmax_cross_entropy":
        return softmax_rows(m)
    return m


def _mean_loss(loss: losses.Loss, c: np.ndarray, y: np.ndarray) -> float:
    return float(loss.per_example(np.broadcast_to(c, y.shape).copy(), y).mean())


@pytest.mark.parametrize("name", losses.NAMES)
@given(m=matrices(), c=matrices(max_rows=1))
def test_the_mean_target_is_the_best_constant(name: str, m: np.ndarray, c: np.ndarray) -> None:
    loss = losses.get(name)
    y = _targets(name, m)
    best = loss.best_constant(y)
    at_mean = loss.transfer.inverse(y.mean(axis=0, keepdims=True))  # f(c*) = the mean target
    assert abs(_mean_loss(loss, at_mean, y) - best) <= TOL
    other = np.resize(c[0], (1, y.shape[1]))
    assert _mean_loss(loss, other, y) >= best - TOL  # no other constant does better


@pytest.mark.parametrize("name", losses.NAMES)
def test_the_first_target_is_not_the_best_constant(name: str) -> None:
    """Negative control: the same check with the first target in place of the mean target fails."""
    loss = losses.get(name)
    y = _targets(name, np.array([[2.0, -1.0, 0.0], [-2.0, 1.0, 0.5]]))
    at_first = loss.transfer.inverse(y[:1])
    assert _mean_loss(loss, at_first, y) - loss.best_constant(y) > 0.1


def test_integer_labels_give_the_entropy_of_the_class_frequencies() -> None:
    frequencies = np.array([1, 2, 1]) / 4
    value = losses.get("softmax_cross_entropy").best_constant(np.array([0, 1, 1, 2]))
    assert value == pytest.approx(-(frequencies * np.log(frequencies)).sum(), abs=TOL)


def test_curves_plateau_is_the_entropy_of_the_mean_image() -> None:
    """The CURVES autoencoder's plateau near 155.2 is this bound on its training images."""
    from locograd.data import load

    images = load("curves", seed=0).x_train
    assert losses.get("sigmoid_cross_entropy").best_constant(images) == pytest.approx(155.2167, abs=1e-3)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.zeros((0, 3)), "y: expected at least one target row"),
        (np.zeros(3), "y: expected a 2-D array, got shape \\(3,\\)"),
    ],
)
def test_bad_targets_are_refused(y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        losses.get("squared_error").best_constant(y)
