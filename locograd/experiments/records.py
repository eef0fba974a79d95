r"""Per-layer update records of a training run: the relative size of each step per weight layer.

For weight layer :math:`m` (the ``k``-th of ``net.weight_layers``) and a step :math:`t` of an
epoch of :math:`T` steps, with :math:`W_m^{(t)}` the layer's weight array (``"W"``, not the bias)
before the step and :math:`\Delta W_m^{(t)} = W_m^{(t+1)} - W_m^{(t)}` what the step changed,

.. math::

    r_m = \frac{1}{T} \sum_{t=1}^{T} \frac{\|\Delta W_m^{(t)}\|_F}{\|W_m^{(t)}\|_F}.

The training loop writes :math:`(r_m)_m` into each epoch's metrics row as ``update_ratio``.  A step
that does not change a layer whose weights are all zero counts 0; one that moves it, ``inf``.
:math:`\Delta W` is the change the step made to the stored weights (the difference in their dtype),
not the update the optimizer computed: where float32 rounding swallows part of an update (steps
below the weights' resolution, :math:`2^{-24}` relative), the record shows what was kept.

Optimizers may write their step into the arrays they are given (BackProp with ``donate=True``), so
the old weights are kept here: :class:`UpdateRatios` holds one buffer per weight layer, filled at
the start of an epoch and refreshed in the same pass that measures each step, in blocks of
:data:`BLOCK` elements (one read of the new weights, one of the buffer, one write of the buffer per
step).  The squared norms are the sums, in float64 and in block order, of each block's dot product
in the weights' dtype; the numbers depend only on the weights before and after each step of the
epoch, so a resumed run records the same ones bit for bit.  The pass costs about 2 % of a dense
BackProp (Adam) step, 0.2 % of a LocoProp-M one (``scripts/update_ratio_cost.py``).

>>> import numpy as np
>>> from locograd import MLP
>>> net = MLP([3, 2], ["identity"], "squared_error")
>>> params = [{"W": np.full((3, 2), 2.0), "b": np.zeros(2)}]
>>> record = UpdateRatios(net)
>>> record.start(params)
>>> record.after([{"W": np.full((3, 2), 2.2), "b": np.ones(2)}])
>>> [round(r, 12) for r in record.means()]
[0.1]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Array, array_namespace
from ..nn import Params, Sequential

BLOCK = 65536
"""Elements per block of the measuring pass (256 KiB of float32: within a core's L2 cache)."""


def _blocks(size: int, xp: Any) -> list[slice]:
    """The blocks of a flat array of ``size`` elements: :data:`BLOCK` each; one on CuPy (its kernels
    run on the GPU).

    >>> _blocks(150000, np)
    [slice(0, 65536, None), slice(65536, 131072, None), slice(131072, 150000, None)]
    """
    if xp is not np:
        return [slice(0, size)]
    return [slice(i, min(i + BLOCK, size)) for i in range(0, size, BLOCK)]


class UpdateRatios:
    r"""The mean over an epoch's steps of :math:`\|\Delta W_m\|_F / \|W_m\|_F`, per weight layer.

    ``start(params)`` before an epoch's first step, ``after(params)`` after each step (with the
    parameters the step returned), ``means()`` at the end of the epoch: a list of floats, one per
    weight layer in ``net.weight_layers`` order.  See the module docstring for the formula.

    Args:
        net: the network whose weight layers are recorded.

    Raises:
        TypeError: ``net`` is not a :class:`~locograd.nn.Sequential`.
    """

    def __init__(self, net: Sequential) -> None:
        if not isinstance(net, Sequential):
            raise TypeError(
                f"net: expected a locograd.nn.Sequential (an MLP, a CNN), got {type(net).__name__}"
            )
        self.layers: list[int] = net.weight_layers
        self._old: list[Array] = []  # W before the next step, flat, one per weight layer
        self._scratch: list[Array] = []  # one block of each layer's step
        self._old_sq: list[float] = []  # ||W||_F^2 of those
        self._sums: list[float] = []
        self._steps = 0

    def _weights(self, params: Params) -> list[Array]:
        """The flat ``W`` of every weight layer of ``params``."""
        if not isinstance(params, list | tuple) or len(params) <= max(self.layers):
            raise ValueError(
                f"params: expected one entry per layer ({max(self.layers) + 1} or more), "
                f"got {type(params).__name__}"
            )
        return [params[m]["W"].reshape(-1) for m in self.layers]

    def start(self, params: Params) -> None:
        """Keep a copy of every layer's weights and their squared norms; clear the epoch's sums.

        Args:
            params: the parameters before the epoch's first step (one dict per layer).
        """
        weights = self._weights(params)
        if len(self._old) != len(weights) or any(
            o.shape != w.shape or o.dtype != w.dtype or type(o) is not type(w)
            for o, w in zip(self._old, weights, strict=True)
        ):
            self._old = [array_namespace(w).empty_like(w) for w in weights]
            self._scratch = [
                array_namespace(w).empty(_blocks(w.size, array_namespace(w))[0].stop, dtype=w.dtype)
                for w in weights
            ]
        self._old_sq = []
        for w, old in zip(weights, self._old, strict=True):
            xp = array_namespace(w)
            sq = 0.0
            for s in _blocks(w.size, xp):
                old[s] = w[s]
                sq += float(xp.dot(old[s], old[s]))
            self._old_sq.append(sq)
        self._sums = [0.0] * len(weights)
        self._steps = 0

    def after(self, params: Params) -> None:
        r"""Add one step's :math:`\|\Delta W_m\|_F / \|W_m\|_F` per layer, and keep the new weights.

        Args:
            params: the parameters the step returned (its input may have been overwritten).

        Raises:
            RuntimeError: called before :meth:`start`.
        """
        if not self._old:
            raise RuntimeError("UpdateRatios.after: call start(params) before the epoch's first step")
        weights = self._weights(params)
        for k, (w, old, scratch) in enumerate(zip(weights, self._old, self._scratch, strict=True)):
            xp = array_namespace(w)
            delta_sq = new_sq = 0.0
            for s in _blocks(w.size, xp):
                d = scratch[: s.stop - s.start]
                xp.subtract(w[s], old[s], out=d)
                delta_sq += float(xp.dot(d, d))
                old[s] = w[s]
                new_sq += float(xp.dot(old[s], old[s]))
            before = self._old_sq[k]
            if before > 0:
                self._sums[k] += math.sqrt(delta_sq) / math.sqrt(before)
            elif delta_sq > 0:
                self._sums[k] = math.inf
            self._old_sq[k] = new_sq
        self._steps += 1

    def means(self) -> list[float]:
        """The epoch's mean ratio per weight layer (``net.weight_layers`` order).

        Raises:
            RuntimeError: no step was recorded since :meth:`start`.
        """
        if self._steps == 0:
            raise RuntimeError("UpdateRatios.means: no step was recorded since start(params)")
        return [total / self._steps for total in self._sums]
