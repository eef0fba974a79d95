"""The classic deep autoencoders (Hinton & Salakhutdinov 2006), as :class:`~locograd.MLP` s.

* MNIST (and Fashion-MNIST): 784-1000-500-250-30-250-500-1000-784, tanh
  everywhere except the linear 30-unit code layer and the sigmoid output,
  sigmoid cross-entropy summed over pixels (the released LocoProp notebook's model).
* CURVES: 784-400-200-100-50-25-6 and its mirror, logistic hidden units, a
  linear code layer, sigmoid output with sigmoid cross-entropy.

>>> net = autoencoder("curves")
>>> net.sizes[:7], [t.name for t in net.transfers][5:7]
([784, 400, 200, 100, 50, 25, 6], ['identity', 'sigmoid'])
"""

from __future__ import annotations

from ..network import MLP

MNIST_SIZES = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
CURVES_SIZES = [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]


def mnist_autoencoder(width_multiplier: int = 1) -> MLP:
    """The released deep autoencoder; ``width_multiplier`` scales the hidden widths (not the code layer)."""
    sizes = [784] + [d * width_multiplier for d in (1000, 500, 250)] + [30]
    sizes = sizes + sizes[-2::-1]
    return MLP(sizes, ["tanh"] * 3 + ["identity"] + ["tanh"] * 3 + ["sigmoid"], "sigmoid_cross_entropy")


def curves_autoencoder() -> MLP:
    """The CURVES deep autoencoder: logistic hidden units, linear 6-unit code, sigmoid output."""
    return MLP(CURVES_SIZES, ["sigmoid"] * 5 + ["identity"] + ["sigmoid"] * 6, "sigmoid_cross_entropy")


def autoencoder(dataset: str) -> MLP:
    """The autoencoder used for ``dataset`` (CURVES' own, the MNIST one for any MNIST-format set)."""
    return curves_autoencoder() if dataset == "curves" else mnist_autoencoder()
