r"""Layers and networks: each layer a small object with ``init``, ``forward`` and ``backward``.

* :class:`Layer`, :class:`WeightLayer`, :class:`LayerCache`: the protocol (:mod:`locograd.nn.base`);
  a weight layer owns its transfer and exposes the linear view :math:`\tilde X`, :math:`\tilde W`.
* :class:`Dense`: :math:`Y = f(XW + b)` (:mod:`locograd.nn.dense`), with :func:`augment`,
  :func:`stack` and :func:`unstack`.
* :class:`Sequential`: layers and a loss, with :class:`Trace` and :class:`Grads`;
  :class:`MLP` builds one of dense layers (:mod:`locograd.nn.sequential`).
"""

from .base import Layer, LayerCache, LayerParams, Shape, WeightLayer
from .dense import Dense, augment, stack, unstack
from .sequential import MLP, Grads, Params, Sequential, Trace

__all__ = [
    "MLP",
    "Dense",
    "Grads",
    "Layer",
    "LayerCache",
    "LayerParams",
    "Params",
    "Sequential",
    "Shape",
    "Trace",
    "WeightLayer",
    "augment",
    "stack",
    "unstack",
]
