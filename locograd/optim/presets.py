r"""The released configuration of LocoProp (Amid, Anil & Warmuth 2022), in one place.

The released notebook trains LocoProp-M on the deep MNIST autoencoder: gamma 10, K = 10 inner
steps of TF1-RMSProp per layer with the within-batch factor :math:`\max(1 - k/K, 0.25)`, no
proximal term, 99 epochs of batch 1000 under a warm-up and linear-decay schedule, Glorot biases;
its BackProp baseline is the same TF1-RMSProp on :math:`\partial L/\partial W`.

* :func:`official`, :func:`official_backprop`: the two network optimizers;
* :func:`official_schedule`: their per-epoch learning-rate schedule, which the training loop (not
  the optimizer) applies by passing each epoch's rate as ``step(..., lr=schedule(epoch))``;
* the run around them (:data:`OFFICIAL_RUN`: data sets, epochs, batch, model and bias
  initialisation), which ``locograd train --preset official`` uses.

>>> official_schedule().epochs, OFFICIAL_RUN.epochs, OFFICIAL_RUN.batch_size
(99, 99, 1000)
"""

from __future__ import annotations

from typing import NamedTuple

from ..locoprop import GD, M
from ..nn import Sequential
from .first_order import rmsprop_tf1
from .locoprop import BackProp, LocoProp
from .schedules import EpochSchedule, released_inner_factor, warmup_linear_decay

RELEASED_LR = 1e-5
"""The released base learning rate of the inner TF1-RMSProp."""
RELEASED_GAMMA = 10.0
"""The released LocoProp-M target step."""
RELEASED_STEPS = 10
"""The released inner steps K per layer and batch."""
RELEASED_WARMUP = 5
RELEASED_TOTAL = 100
"""The released schedule: warm-up over 5 epochs, then linear decay reaching 0 at epoch 100."""


class OfficialRun(NamedTuple):
    r"""The run the released notebook makes around the optimizer.

    Attributes:
        optimizers: the released method and its BackProp baseline.
        datasets: the MNIST-format sets its model fits.
        default_dataset, default_optimizer: what ``--preset official`` brings.
        epochs: 99, where the schedule reaches 0.
        batch_size: 1000.
        widths: the encoder's hidden widths; the code layer is ``code`` wide (mirrored decoder,
            tanh hidden units, linear code, sigmoid output with sigmoid cross-entropy).
        bias: the released bias initialisation, ``"glorot"`` (:math:`U(\pm\sqrt{3/n})`).
    """

    optimizers: tuple[str, ...] = ("locoprop-m", "rmsprop-tf1")
    datasets: tuple[str, ...] = ("mnist", "fashion-mnist")
    default_dataset: str = "mnist"
    default_optimizer: str = "locoprop-m"
    epochs: int = RELEASED_TOTAL - 1
    batch_size: int = 1000
    widths: tuple[int, ...] = (1000, 500, 250)
    code: int = 30
    bias: str = "glorot"


OFFICIAL_RUN = OfficialRun()


def official(net: Sequential, workers: int = 1) -> LocoProp:
    r"""The released configuration (LocoProp-M on the deep autoencoder).

    gamma = 10, K = 10 inner steps of TF1-RMSProp (``lr=1e-5``, decay 0.9,
    momentum 0.999, epsilon 1e-5 inside the root, mean-square slot starting at
    ones) with the within-batch factor :math:`\max(1 - k/K, 0.25)`, no proximal
    term; trained with :func:`official_schedule` for 99 epochs of batch 1000.
    ``workers`` solves layers at once on threads (the same results).
    """
    solver = GD(steps=RELEASED_STEPS, inner=rmsprop_tf1(lr=RELEASED_LR), lr_factor=released_inner_factor)
    return LocoProp(net, M(gamma=RELEASED_GAMMA), solver, workers=workers)


def official_backprop(net: Sequential, donate: bool = False) -> BackProp:
    """The released notebook's BackProp baseline: the same TF1-RMSProp on :math:`\\partial L/\\partial W` (with :func:`official_schedule`)."""
    return BackProp(net, rmsprop_tf1(lr=RELEASED_LR), donate=donate)


def official_schedule() -> EpochSchedule:
    r"""The released per-epoch schedule: :math:`10^{-5}\,e/5` for :math:`e < 5`, then :math:`10^{-5}(1 - (e + 1 - 5)/95)`."""
    return warmup_linear_decay(RELEASED_LR, warmup=RELEASED_WARMUP, total=RELEASED_TOTAL)
