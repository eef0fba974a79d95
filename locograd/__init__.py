"""locograd: a from-scratch NumPy/CuPy autodiff mini-framework for LocoProp.

Modules, in the order data flows (each imports only modules to its left):
``backend -> transfer -> bregman -> losses -> nn -> locoprop -> optim``;
``autodiff`` and ``testing`` are the independent reference paths.

>>> import locograd as lg
>>> net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> len(net.init(seed=0))
2
"""

from . import autodiff, backend, bregman, linalg, locoprop, losses, nn, optim, testing, transfer
from .nn import MLP, Grads, Params, Sequential, Trace

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Grads",
    "Params",
    "Sequential",
    "Trace",
    "__version__",
    "autodiff",
    "backend",
    "bregman",
    "linalg",
    "locoprop",
    "losses",
    "nn",
    "optim",
    "testing",
    "transfer",
]
