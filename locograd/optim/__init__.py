"""Optimizers: first-order ``(init, update)`` pairs, schedules, and LocoProp as a stateful optimizer."""

from . import schedules
from .first_order import (
    FIRST_ORDER,
    Optimizer,
    adagrad,
    adam,
    get,
    momentum,
    nesterov,
    rmsprop,
    rmsprop_tf1,
    sgd,
)
from .locoprop import LocoProp, official

__all__ = [
    "FIRST_ORDER",
    "LocoProp",
    "Optimizer",
    "adagrad",
    "adam",
    "get",
    "momentum",
    "nesterov",
    "official",
    "rmsprop",
    "rmsprop_tf1",
    "schedules",
    "sgd",
]
