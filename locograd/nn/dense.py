r"""The dense layer, with a hand-written forward and backward pass, and its linear view.

Conventions (batch-major, row vectors): input ``X`` ``(B, d_in)``, weights ``W``
``(d_in, d_out)``, bias ``b`` ``(d_out,)``,

.. math:: A = X W + b, \qquad Y = f(A).

The forward pass returns a :class:`~locograd.nn.LayerCache` that exposes the input, the
pre-activation and the output: LocoProp builds its local problems from them.  The backward pass
takes :math:`G = \partial L/\partial A` (or :math:`\partial L/\partial Y`, through :math:`f`) and
returns

.. math:: \partial L/\partial W = X^\top G,\quad \partial L/\partial b = \textstyle\sum_n G_n,
          \quad \partial L/\partial X = G W^\top.

Its linear view has one row per example: the design :math:`\tilde X = [X, 1]` (:func:`augment`)
and the stacked weights :math:`\tilde W = [W; b]` (:func:`stack`, :func:`unstack`), so that
:math:`\tilde X \tilde W = XW + b`.

>>> import numpy as np
>>> from locograd import nn
>>> layer = nn.Dense(2, 2, "relu")
>>> params = {"W": np.eye(2), "b": np.zeros(2)}
>>> y, cache = layer.forward(params, np.array([[1.0, -2.0]]))
>>> cache.pre.tolist(), y.tolist()
([[1.0, -2.0]], [[1.0, 0.0]])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..backend import Array, array_namespace, check_float_array, namespace_for
from ..transfer import Transfer, get
from ..validators import integer
from .base import LayerCache, LayerParams, Shape, WeightLayer

BIAS_INITS = ("zeros", "glorot")
"""The bias initialisations: zeros, or the released LocoProp code's :math:`U(\\pm\\sqrt{3/n})`."""


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


def check_input(x: Array, d_in: int, dtype: object, name: str = "x", where: str = "") -> Array:
    """Validate a ``(B, d_in)`` floating input of the parameters' dtype; ``where`` names the layer in messages."""
    x = check_float_array(x, name, ndim=2)
    at = f" for {where}" if where else ""
    if x.shape[1] != d_in:
        raise ValueError(f"{name}: expected shape (B, {d_in}){at}, got {tuple(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} like the parameters{at}, got {x.dtype}")
    return x


def affine(params: LayerParams, x: Array) -> Array:
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
    r"""The design :math:`\tilde X = [X, 1]` ``(B, d_in + 1)``, so that :math:`\tilde X \tilde W = XW + b`.

    >>> import numpy as np
    >>> augment(np.array([[2.0, 3.0]])).tolist()
    [[2.0, 3.0, 1.0]]
    """
    x = check_float_array(x, "x", ndim=2)
    xp = array_namespace(x)
    return xp.concatenate([x, xp.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def stack(params: LayerParams) -> Array:
    r"""The stacked weights :math:`\tilde W = [W; b]` ``(d_in + 1, d_out)`` of one layer's ``{"W", "b"}``.

    Its last row is the bias, so :func:`augment` ``(X) @ stack(params)`` is :math:`XW + b`;
    :func:`unstack` is its inverse.

    >>> import numpy as np
    >>> stack({"W": np.eye(2), "b": np.array([5.0, 6.0])}).tolist()
    [[1.0, 0.0], [0.0, 1.0], [5.0, 6.0]]
    """
    check_layer_params(params)
    xp = array_namespace(params["W"])
    return xp.concatenate([params["W"], params["b"][None, :]], axis=0)


def unstack(w: Array) -> LayerParams:
    r"""``{"W": w[:-1], "b": w[-1]}`` from stacked weights :math:`\tilde W` ``(d_in + 1, d_out)`` (views, no copy).

    >>> import numpy as np
    >>> layer = unstack(np.arange(6.0).reshape(3, 2))
    >>> layer["W"].shape, layer["b"].tolist()
    ((2, 2), [4.0, 5.0])
    """
    w = check_float_array(w, "w", ndim=2)
    if w.shape[0] < 1:
        raise ValueError(
            f"w: expected stacked weights (d_in + 1, d_out) with at least the bias row, got {tuple(w.shape)}"
        )
    return {"W": w[:-1], "b": w[-1]}


def glorot_params(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    bias_init: Literal["zeros", "glorot"],
    dtype: Any,
    device: str | None,
) -> LayerParams:
    r"""``{"W": shape, "b": (shape[-1],)}``: ``W ~ U(-s, s)``, :math:`s = \sqrt{6/(\mathrm{fan_{in}} + \mathrm{fan_{out}})}`
    (Glorot uniform), then the bias: zeros (drawing nothing) or ``"glorot"``'s :math:`U(\pm\sqrt{3/n})`
    for ``n = shape[-1]``; drawn in float64 on the host, then cast to ``dtype`` and moved to ``device``."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    W = rng.uniform(-limit, limit, size=shape)
    n = shape[-1]
    b = rng.uniform(-np.sqrt(3.0 / n), np.sqrt(3.0 / n), size=n) if bias_init == "glorot" else np.zeros(n)
    xp = namespace_for(device)
    return {"W": xp.asarray(W, dtype=dtype), "b": xp.asarray(b, dtype=dtype)}


class Dense(WeightLayer):
    r"""A fully connected layer :math:`Y = f(XW + b)`, ``(B, d_in) -> (B, d_out)``.

    Args:
        d_in: input width, a positive integer.
        d_out: output width, a positive integer.
        transfer: the activation :math:`f` (a name such as ``"tanh"``, or a
            :class:`~locograd.transfer.Transfer` row); default the identity.
        bias_init: ``"zeros"``, or ``"glorot"`` for the released LocoProp code's
            :math:`U(\pm\sqrt{3/d_{out}})`.

    Its parameters are ``{"W": (d_in, d_out), "b": (d_out,)}``: :meth:`init` draws
    ``W ~ U(-s, s)`` with :math:`s = \sqrt{6/(d_{in} + d_{out})}` (Glorot uniform), then the bias.

    >>> import numpy as np
    >>> layer = Dense(3, 2, "tanh")
    >>> params, out_shape = layer.init(np.random.default_rng(0), (3,), np.float64, None)
    >>> params["W"].shape, out_shape
    ((3, 2), (2,))
    >>> layer.design(np.ones((4, 3))).shape, layer.stack(params).shape
    ((4, 4), (4, 2))
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        transfer: str | Transfer = "identity",
        bias_init: Literal["zeros", "glorot"] = "zeros",
    ) -> None:
        self.d_in = integer("d_in", d_in, minimum=1)
        self.d_out = integer("d_out", d_out, minimum=1)
        self.transfer = get(transfer)
        if bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init: expected one of {BIAS_INITS}, got {bias_init!r}")
        self.bias_init: Literal["zeros", "glorot"] = bias_init

    def __repr__(self) -> str:
        bias = f", bias_init={self.bias_init!r}" if self.bias_init != "zeros" else ""
        return f"Dense({self.d_in}, {self.d_out}, {self.transfer.name!r}{bias})"

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(d_out,)`` for ``in_shape == (d_in,)``."""
        if tuple(in_shape) != (self.d_in,):
            raise ValueError(
                f"in_shape: {self!r} expects inputs of shape ({self.d_in},), got {tuple(in_shape)}"
            )
        return (self.d_out,)

    def init(
        self, rng: np.random.Generator, in_shape: Shape, dtype: Any, device: str | None
    ) -> tuple[LayerParams, Shape]:
        """Glorot-uniform ``W``, then the bias (zeros draw nothing), in float64 on the host, then cast and moved."""
        out_shape = self.output_shape(in_shape)
        params = glorot_params(
            rng, (self.d_in, self.d_out), self.d_in, self.d_out, self.bias_init, dtype, device
        )
        return params, out_shape

    def check_params(self, params: object, name: str = "params") -> LayerParams:
        """``{"W": (d_in, d_out), "b": (d_out,)}`` of one floating dtype and backend."""
        d_in, d_out = check_layer_params(params, name)
        if (d_in, d_out) != (self.d_in, self.d_out):
            raise ValueError(f"{name}['W']: expected shape {(self.d_in, self.d_out)}, got {(d_in, d_out)}")
        assert isinstance(params, dict)
        return params

    def check_input(self, x: object, dtype: Any, name: str = "x", where: str = "") -> Array:
        """A floating ``(B, d_in)`` batch of ``dtype``."""
        return check_input(x, self.d_in, dtype, name, where or repr(self))

    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        a = affine(params, x)
        y = self.transfer.f(a)
        return y, LayerCache(x, a, y)

    def _backward_from_pre(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_pre: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        grads = {"W": cache.inputs.T @ g_pre, "b": g_pre.sum(axis=0)} if param_grads else None
        return (g_pre @ params["W"].T if input_grad else None), grads

    def jvp(self, params: LayerParams, tangent: LayerParams, cache: LayerCache, dot_x: Array | None) -> Array:
        r""":math:`\dot A = \dot X W + X \dot W + \dot b` (``dot_x`` ``None``: a constant input)."""
        dot_a = affine(tangent, cache.inputs)
        if dot_x is not None:
            dot_a += dot_x @ params["W"]
        return dot_a

    def design(self, inputs: Array) -> Array:
        r""":math:`\tilde X = [X, 1]` ``(B, d_in + 1)``: one row per example."""
        return augment(inputs)

    def rows(self, a: Array) -> Array:
        """``(B, d_out)`` is already one row per example."""
        return a

    def unrows(self, r: Array, inputs: Array) -> Array:
        """``(B, d_out)`` rows are already the pre-activation's shape."""
        return r

    def linear(self, inputs: Array, params: LayerParams) -> Array:
        r""":math:`X W + b` ``(B, d_out)`` (the bias added to the product, not through a column of ones)."""
        return inputs @ params["W"] + params["b"]

    def linear_transpose(self, inputs: Array, r: Array) -> LayerParams:
        r"""``{"W": X^T R, "b": sum_n R_n}``."""
        return {"W": inputs.T @ r, "b": r.sum(axis=0)}

    def design_gram(self, inputs: Array) -> Array:
        r""":math:`\tilde X^\top\tilde X = [[X^\top X, X^\top 1], [1^\top X, B]]` by blocks (``[X, 1]`` never formed)."""
        xp = array_namespace(inputs)
        B, d = inputs.shape
        C = xp.empty((d + 1, d + 1), dtype=inputs.dtype)
        C[:d, :d] = inputs.T @ inputs
        s = inputs.sum(axis=0)
        C[:d, d] = s
        C[d, :d] = s
        C[d, d] = B
        return C

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(d_in, d_out)``."""
        return self.d_in, self.d_out

    def weight_matrix(self, params: LayerParams) -> Array:
        """``params["W"]`` itself."""
        return params["W"]

    def stack(self, params: LayerParams) -> Array:
        r""":math:`\tilde W = [W; b]` ``(d_in + 1, d_out)``."""
        return stack(params)

    def unstack(self, w: Array) -> LayerParams:
        r"""``{"W": w[:-1], "b": w[-1]}`` (views)."""
        return unstack(w)
