r"""The dense layer, with a hand-written forward and backward pass.

Conventions (batch-major, row vectors): input ``X`` ``(B, d_in)``, weights
``W`` ``(d_in, d_out)``, bias ``b`` ``(d_out,)``,

.. math:: A = X W + b, \qquad Y = f(A).

The forward pass returns a :class:`DenseCache` that exposes the input, the
pre-activation and the output: LocoProp builds its targets from them.  The
backward pass takes :math:`G = \partial L/\partial A` and returns

.. math:: \partial L/\partial W = X^\top G,\quad \partial L/\partial b = \textstyle\sum_n G_n,
          \quad \partial L/\partial X = G W^\top.

>>> import numpy as np
>>> from locograd import layers
>>> params = {"W": np.eye(2), "b": np.zeros(2)}
>>> cache = layers.dense_forward(params, np.array([[1.0, -2.0]]), "relu")
>>> cache.pre.tolist(), cache.post.tolist()
([[1.0, -2.0]], [[1.0, 0.0]])
"""

from __future__ import annotations

from typing import NamedTuple

from .backend import Array, array_namespace, check_float_array
from .transfer import Transfer, get


class DenseCache(NamedTuple):
    """What the dense layer's backward pass (and LocoProp) needs.

    Attributes:
        inputs: ``X`` ``(B, d_in)``.
        pre: ``A = X W + b`` ``(B, d_out)``.
        post: ``Y = f(A)`` ``(B, d_out)``.
    """

    inputs: Array
    pre: Array
    post: Array


class DenseGrads(NamedTuple):
    """Gradients of the dense layer's parameters: ``W`` ``(d_in, d_out)``, ``b`` ``(d_out,)``."""

    W: Array
    b: Array


def check_layer_params(params: object, name: str = "params") -> tuple[int, int]:
    """Validate a ``{"W": (d_in, d_out), "b": (d_out,)}`` dict; return ``(d_in, d_out)``."""
    if not isinstance(params, dict) or set(params) != {"W", "b"}:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise TypeError(f"{name}: expected a dict with keys 'W' and 'b', got {got}")
    W = check_float_array(params["W"], f"{name}['W']", ndim=2)
    b = check_float_array(params["b"], f"{name}['b']", ndim=1)
    array_namespace(**{f"{name}['W']": W, f"{name}['b']": b})
    if b.shape != (W.shape[1],):
        raise ValueError(f"{name}['b']: expected shape ({W.shape[1]},), got {tuple(b.shape)}")
    if b.dtype != W.dtype:
        raise TypeError(f"{name}['b']: expected dtype {W.dtype} like {name}['W'], got {b.dtype}")
    return int(W.shape[0]), int(W.shape[1])


def check_input(x: Array, d_in: int, dtype: object, name: str = "x") -> Array:
    """Validate a ``(B, d_in)`` floating input of the parameters' dtype."""
    x = check_float_array(x, name, ndim=2)
    if x.shape[1] != d_in:
        raise ValueError(f"{name}: expected shape (B, {d_in}), got {tuple(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} like the parameters, got {x.dtype}")
    return x


def check_batch(x: Array, d_in: int, dtype: object, name: str = "x") -> Array:
    """:func:`check_input`, and at least one row: the network's batch check.

    The loss is a mean over the batch: on 0 rows it was NaN with NumPy's
    "Mean of empty slice" warning (and every gradient 0/0), so an empty batch is
    refused, as the first thing a network pass does with ``x``.
    """
    x = check_input(x, d_in, dtype, name)
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected a batch of at least one row (B >= 1), got shape {tuple(x.shape)}")
    return x


def affine(params: dict[str, Array], x: Array) -> Array:
    r"""Pre-activation :math:`A = XW + b`, ``(B, d_out)``.

    The bias is added in place into the fresh product (one array, one pass fewer).
    """
    a = x @ params["W"]
    b = params["b"]
    if getattr(a, "ndim", 0) == 0 or array_namespace(a).result_type(a, b) != a.dtype:
        return a + b  # a scalar product, or a bias of a wider dtype: no in-place add
    a += b
    return a


def augment(x: Array) -> Array:
    r"""The augmented input :math:`\tilde X = [X, 1]` ``(B, d_in + 1)``, so that :math:`\tilde X \tilde W = XW + b`.

    >>> import numpy as np
    >>> augment(np.array([[2.0, 3.0]])).tolist()
    [[2.0, 3.0, 1.0]]
    """
    x = check_float_array(x, "x", ndim=2)
    xp = array_namespace(x)
    return xp.concatenate([x, xp.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def stack(params: dict[str, Array]) -> Array:
    r"""The augmented weights :math:`\tilde W = [W; b]` ``(d_in + 1, d_out)`` of one layer's ``{"W", "b"}``.

    Its last row is the bias, so :func:`augment` ``(X) @ stack(params)`` is :math:`XW + b`;
    :func:`unstack` is its inverse.

    >>> import numpy as np
    >>> stack({"W": np.eye(2), "b": np.array([5.0, 6.0])}).tolist()
    [[1.0, 0.0], [0.0, 1.0], [5.0, 6.0]]
    """
    check_layer_params(params)
    xp = array_namespace(params["W"])
    return xp.concatenate([params["W"], params["b"][None, :]], axis=0)


def unstack(w: Array) -> dict[str, Array]:
    r"""``{"W": w[:-1], "b": w[-1]}`` from augmented weights :math:`\tilde W` ``(d_in + 1, d_out)`` (views, no copy).

    >>> import numpy as np
    >>> layer = unstack(np.arange(6.0).reshape(3, 2))
    >>> layer["W"].shape, layer["b"].tolist()
    ((2, 2), [4.0, 5.0])
    """
    w = check_float_array(w, "w", ndim=2)
    if w.shape[0] < 1:
        raise ValueError(
            f"w: expected augmented weights (d_in + 1, d_out) with at least the bias row, got {tuple(w.shape)}"
        )
    return {"W": w[:-1], "b": w[-1]}


def dense_forward(params: dict[str, Array], x: Array, transfer: str | Transfer) -> DenseCache:
    r"""Forward pass :math:`A = XW + b`, :math:`Y = f(A)`.

    Args:
        params: ``{"W": (d_in, d_out), "b": (d_out,)}``.
        x: ``(B, d_in)``, same dtype and backend as the parameters.
        transfer: the activation :math:`f` (name or table row).

    Returns:
        The cache ``(inputs, pre, post)``.
    """
    d_in, _ = check_layer_params(params)
    check_input(x, d_in, params["W"].dtype)
    array_namespace(x=x, W=params["W"])
    a = affine(params, x)
    return DenseCache(x, a, get(transfer).f(a))


def dense_backward(
    params: dict[str, Array],
    cache: DenseCache,
    g_pre: Array,
    input_grad: bool = True,
    param_grads: bool = True,
) -> tuple[DenseGrads | None, Array | None]:
    r"""Backward pass from :math:`G = \partial L/\partial A` ``(B, d_out)``.

    Args:
        params: the layer's ``{"W", "b"}``.
        cache: from :func:`dense_forward`.
        g_pre: :math:`G`, same shape as ``cache.pre``.
        input_grad: compute :math:`G W^\top` (the first layer needs none).
        param_grads: compute :math:`X^\top G` and :math:`\sum_n G_n`.

    Returns:
        ``(DenseGrads(X^T G, sum_n G_n) or None, G W^T or None)``.
    """
    check_float_array(g_pre, "g_pre")
    if g_pre.shape != cache.pre.shape:
        raise ValueError(f"g_pre: expected shape {tuple(cache.pre.shape)}, got {tuple(g_pre.shape)}")
    if g_pre.dtype != cache.pre.dtype:
        raise TypeError(
            f"g_pre: expected dtype {cache.pre.dtype} like the cache, got {g_pre.dtype} (never upcast)"
        )
    grads = DenseGrads(cache.inputs.T @ g_pre, g_pre.sum(axis=0)) if param_grads else None
    return grads, (g_pre @ params["W"].T if input_grad else None)


def pre_activation_grad(transfer: str | Transfer, cache: DenseCache, g_post: Array) -> Array:
    r""":math:`\partial L/\partial A` from :math:`\partial L/\partial Y` through :math:`f`.

    Raises:
        ValueError, TypeError: ``g_post`` not a floating array of the shape and dtype of ``cache.post``.
    """
    check_float_array(g_post, "g_post")
    if g_post.shape != cache.post.shape or g_post.dtype != cache.post.dtype:
        raise ValueError(
            f"g_post: expected shape {tuple(cache.post.shape)} and dtype {cache.post.dtype} like the cache, "
            f"got {tuple(g_post.shape)} {g_post.dtype}"
        )
    return get(transfer).vjp(cache.pre, g_post, cache.post)
