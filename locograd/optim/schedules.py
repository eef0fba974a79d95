r"""Learning-rate schedules as plain callables ``schedule(epoch) -> lr``.

>>> from locograd.optim import schedules
>>> s = schedules.warmup_linear_decay(1e-5, warmup=5, total=100)
>>> [round(s(e) / 1e-5, 4) for e in (0, 1, 4, 5, 98)]
[0.0, 0.2, 0.8, 0.9895, 0.0105]
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], float]


def _check(lr: float, total: int | None = None) -> None:
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive finite number, got {lr!r}")
    if total is not None and total < 1:
        raise ValueError(f"total: expected an integer >= 1, got {total!r}")


def constant(lr: float) -> Schedule:
    """``lr`` at every epoch."""
    _check(lr)
    return lambda epoch: lr


def warmup_linear_decay(lr: float, warmup: int = 5, total: int = 100) -> Schedule:
    r"""The released LocoProp schedule.

    :math:`\mathrm{lr}\cdot e/W` for :math:`e < W` (so epoch 0 trains with
    learning rate 0), then :math:`\mathrm{lr}\,(1 - (e + 1 - W)/(T - W))`.
    With ``W = 5``, ``T = 100`` this is the released ``lr * (1 - (e + 1 - 5)/95)``.
    """
    _check(lr, total)
    if not (0 <= warmup < total):
        raise ValueError(f"warmup: expected an integer in [0, total), got {warmup!r}")

    def schedule(epoch: int) -> float:
        if epoch < warmup:
            return lr * epoch / warmup
        return lr * (1 - (epoch + 1 - warmup) / (total - warmup))

    return schedule


def cosine(lr: float, total: int, final: float = 0.0) -> Schedule:
    r"""Cosine decay from ``lr`` at epoch 0 to ``final`` at epoch ``total``."""
    _check(lr, total)

    def schedule(epoch: int) -> float:
        t = min(max(epoch, 0), total) / total
        return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * t))

    return schedule


def released_inner_factor(k: int, steps: int) -> float:
    r"""The released within-batch inner learning-rate factor :math:`\max(1 - k/K, 0.25)`."""
    return max(1.0 - k / steps, 0.25)
