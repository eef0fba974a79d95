r"""Layers and networks: each layer a small object with ``init``, ``forward`` and ``backward``.

* :class:`Layer`, :class:`WeightLayer`, :class:`LayerCache`: the protocol (:mod:`locograd.nn.base`);
  a weight layer owns its transfer and exposes the linear view :math:`\tilde X`, :math:`\tilde W`.
* :class:`Dense`: :math:`Y = f(XW + b)` (:mod:`locograd.nn.dense`), with :func:`augment`,
  :func:`stack` and :func:`unstack`.
* :class:`Conv2D` (NHWC, a dense layer on :func:`im2col` patches), :class:`MaxPool2D`,
  :class:`AvgPool2D`, :class:`Flatten` (:mod:`locograd.nn.conv`).
* :class:`Sequential`: layers and a loss, with :class:`Trace` and :class:`Grads`;
  :class:`MLP` builds one of dense layers (:mod:`locograd.nn.sequential`).
"""

from .base import Layer, LayerCache, LayerParams, Shape, WeightLayer
from .conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, col2im, im2col
from .dense import Dense, augment, stack, unstack
from .sequential import MLP, Grads, Params, Sequential, Trace

__all__ = [
    "MLP",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "Grads",
    "Layer",
    "LayerCache",
    "LayerParams",
    "MaxPool2D",
    "Params",
    "Sequential",
    "Shape",
    "Trace",
    "WeightLayer",
    "augment",
    "col2im",
    "im2col",
    "stack",
    "unstack",
]
