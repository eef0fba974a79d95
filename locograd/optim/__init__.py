"""Optimizers, in two protocols (:mod:`locograd.optim.base`).

* Gradient transformations (optax's design): the first-order optimizers ``sgd``, ``momentum``,
  ``nesterov``, ``adam``, ``adagrad``, ``rmsprop`` (PyTorch's) and ``rmsprop_tf1`` (the released
  LocoProp code's), ``scale``, composed by :func:`chain` and applied by :func:`apply_updates`.
* Network optimizers (:class:`NetOptimizer`: ``init``, ``step(params, x, y, state, lr=None)``):
  :class:`BackProp`, :class:`LocoProp`, and the second-order baselines :class:`KFAC`,
  :class:`Shampoo` and :class:`FOOF`.
* :mod:`locograd.optim.schedules`: per-epoch learning rates, applied by the training loop.
* :mod:`locograd.optim.presets`: the released configuration, in one place (:func:`official`).
"""

from . import presets, schedules
from .base import (
    ChainState,
    EmptyState,
    GradientTransformation,
    NetOptimizer,
    StepInfo,
    apply_updates,
    chain,
    scale,
)
from .first_order import (
    FIRST_ORDER,
    STATES,
    AdagradState,
    AdamState,
    MomentumState,
    NesterovState,
    RMSPropState,
    RMSPropTF1State,
    SgdState,
    adagrad,
    adam,
    check_state,
    get,
    momentum,
    nesterov,
    rmsprop,
    rmsprop_tf1,
    sgd,
)
from .locoprop import BackProp, BackPropState, LocoProp, LocoPropState
from .presets import official, official_backprop, official_schedule
from .second_order import FOOF, KFAC, Shampoo

__all__ = [
    "FIRST_ORDER",
    "FOOF",
    "KFAC",
    "STATES",
    "AdagradState",
    "AdamState",
    "BackProp",
    "BackPropState",
    "ChainState",
    "EmptyState",
    "GradientTransformation",
    "LocoProp",
    "LocoPropState",
    "MomentumState",
    "NesterovState",
    "NetOptimizer",
    "RMSPropState",
    "RMSPropTF1State",
    "SgdState",
    "Shampoo",
    "StepInfo",
    "adagrad",
    "adam",
    "apply_updates",
    "chain",
    "check_state",
    "get",
    "momentum",
    "nesterov",
    "official",
    "official_backprop",
    "official_schedule",
    "presets",
    "rmsprop",
    "rmsprop_tf1",
    "scale",
    "schedules",
    "sgd",
]
