r"""Learning-rate schedules as callables ``schedule(epoch) -> lr``.

Each schedule is an :class:`EpochSchedule`: called with a finished-epoch count
``epoch >= 0`` (an integer; anything else is refused with a one-line
``ValueError``), it returns the learning rate of that epoch; its ``epochs`` is
the most epochs a run on it should train (``None`` for :func:`constant`).

Past its end a schedule **stays at its final value**, as PyTorch's schedulers
(``LinearLR``, ``PolynomialLR``) and optax's (``linear_schedule``,
``cosine_decay_schedule``) do: :func:`warmup_linear_decay` stays at 0 and
:func:`cosine` at ``final``.  Before, the linear decay went on below zero (at
epoch 100 of the released schedule, ``-1.05e-7``: training then *ascended*
the loss).  A run longer than its schedule is refused before it starts by the
training loop (``epochs > schedule.epochs``), which names the length.

>>> from locograd.optim import schedules
>>> s = schedules.warmup_linear_decay(1e-5, warmup=5, total=100)
>>> [round(s(e) / 1e-5, 4) for e in (0, 1, 4, 5, 98, 99, 150)]
[0.0, 0.2, 0.8, 0.9895, 0.0105, 0.0, 0.0]
>>> s.total, s.epochs
(100, 99)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from ..validators import integer, number

Schedule = Callable[[int], float]
"""Any ``epoch -> lr`` callable (what :class:`~locograd.optim.LocoProp` takes); the built ones are :class:`EpochSchedule`."""


class EpochSchedule:
    """A learning rate per epoch: ``schedule(epoch) -> lr``, with its length ``total``.

    Args:
        rate: ``epoch -> lr`` for ``0 <= epoch`` (already clamped to the schedule's end).
        total: the ``total`` it was built with, ``None`` for no end.
        epochs: the most epochs a run on it should train: from epoch ``epochs`` on, the
            rate stays at its final value (for :func:`warmup_linear_decay` 0, so that
            ``total - 1``, the released 99 of ``total = 100``); ``None`` for no end.
        text: what the schedule is, for messages (``"warmup 5, linear decay to 0 at epoch 99"``).
    """

    def __init__(
        self, rate: Callable[[int], float], total: int | None, epochs: int | None, text: str
    ) -> None:
        self._rate = rate
        self.total = total
        self.epochs = epochs
        self.text = text

    def __call__(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based); ``ValueError`` for a negative or non-integer epoch."""
        return self._rate(integer("epoch", epoch, minimum=0))

    def __repr__(self) -> str:
        return f"EpochSchedule({self.text})"


def _check(lr: float, total: int | None = None) -> tuple[float, int | None]:
    lr = number("lr", lr, low=0, low_open=True)
    if total is not None:
        total = integer("total", total, minimum=1)
    return float(lr), total


# The rates are module-level functions bound with functools.partial (not closures), so that a
# schedule pickles, as a run's configuration does on its way to a study's worker.


def _constant_rate(lr: float, epoch: int) -> float:
    return lr


def _warmup_linear_rate(lr: float, warmup: int, total: int, epoch: int) -> float:
    if epoch < warmup:
        return lr * epoch / warmup
    return lr * max(0.0, 1 - (epoch + 1 - warmup) / (total - warmup))


def _cosine_rate(lr: float, final: float, total: int, epoch: int) -> float:
    t = min(epoch, total) / total
    return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * t))


def constant(lr: float) -> EpochSchedule:
    """``lr`` at every epoch (no end)."""
    lr, _ = _check(lr)
    return EpochSchedule(functools.partial(_constant_rate, lr), None, None, f"constant {lr:g}")


def warmup_linear_decay(lr: float, warmup: int = 5, total: int = 100) -> EpochSchedule:
    r"""The released LocoProp schedule.

    :math:`\mathrm{lr}\cdot e/W` for :math:`e < W` (so epoch 0 trains with
    learning rate 0), then :math:`\mathrm{lr}\,\max(0, 1 - (e + 1 - W)/(T - W))`:
    0 from epoch :math:`T - 1` on (clamped, never negative).
    With ``W = 5``, ``T = 100`` this is the released ``lr * (1 - (e + 1 - 5)/95)``.
    """
    lr, total_ = _check(lr, total)
    assert total_ is not None
    warmup = integer("warmup", warmup, minimum=0, maximum=total_ - 1)
    rate = functools.partial(_warmup_linear_rate, lr, warmup, total_)
    return EpochSchedule(
        rate, total_, total_ - 1, f"warmup {warmup}, linear decay to 0 at epoch {total_ - 1}"
    )


def cosine(lr: float, total: int, final: float = 0.0) -> EpochSchedule:
    r"""Cosine decay from ``lr`` at epoch 0 to ``final`` at epoch ``total``, then ``final``."""
    lr, total_ = _check(lr, total)
    assert total_ is not None
    final = number("final", final, low=0)
    rate = functools.partial(_cosine_rate, lr, final, total_)
    return EpochSchedule(rate, total_, total_, f"cosine from {lr:g} to {final:g} at epoch {total_}")


def released_inner_factor(k: int, steps: int) -> float:
    r"""The released within-batch inner learning-rate factor :math:`\max(1 - k/K, 0.25)` of inner step
    ``k`` of ``K = steps``.

    Raises:
        ValueError: ``steps`` not an integer >= 1, or ``k`` not an integer in ``[0, steps)``.

    >>> released_inner_factor(0, 10), released_inner_factor(9, 10)
    (1.0, 0.25)
    """
    steps = integer("steps", steps, minimum=1)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < steps:
        raise ValueError(f"k: expected an integer in [0, {steps}) (an inner step of K = {steps}), got {k!r}")
    return max(1.0 - k / steps, 0.25)
