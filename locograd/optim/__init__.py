"""Optimizers: first-order ``(init, update)`` pairs, schedules, LocoProp as a stateful optimizer,
and the second-order baselines K-FAC, Shampoo and FOOF."""

from . import schedules
from .first_order import (
    FIRST_ORDER,
    Optimizer,
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
from .locoprop import LocoProp, official
from .second_order import FOOF, KFAC, Shampoo

__all__ = [
    "FIRST_ORDER",
    "FOOF",
    "KFAC",
    "LocoProp",
    "Optimizer",
    "Shampoo",
    "adagrad",
    "adam",
    "check_state",
    "get",
    "momentum",
    "nesterov",
    "official",
    "rmsprop",
    "rmsprop_tf1",
    "schedules",
    "sgd",
]
