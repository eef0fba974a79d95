r"""Convolutions as dense layers on image patches (im2col), and pooling and flattening.

Images are NHWC, ``(B, H, W, C)`` (channels last, as in Flax and TensorFlow); a kernel is
``(kh, kw, c_in, c_out)`` and its bias ``(c_out,)``.  :func:`im2col` gathers the patch under
every output position into one row, in the kernel's ``(i, j, c)`` order:

.. math:: P[(n, u, v), (i, j, c)] = X_{\text{pad}}[n,\; s u + i,\; s v + j,\; c],

so that the convolution is the dense product :math:`A_{\text{rows}} = P\,W_{\text{mat}} + b` with
:math:`W_{\text{mat}}` the kernel reshaped to ``(kh*kw*c_in, c_out)``: its linear view has the
design :math:`\tilde X = [P, 1]` (one row per example and output position, ``B*P`` rows) and
:math:`\tilde W = [W_{\text{mat}}; b]`.  :func:`col2im` is im2col's adjoint, which the backward
pass uses: it adds each row of patch gradients back onto the pixels it came from.

Both are written as one slice per kernel offset ``(i, j)``, the same code on NumPy and CuPy.

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 4, 4, 1)
>>> im2col(x, (2, 2), (2, 2), (0, 0, 0, 0)).tolist()
[[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0], [8.0, 9.0, 12.0, 13.0], [10.0, 11.0, 14.0, 15.0]]
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import numpy as np

from ..backend import Array, array_namespace, check_float_array
from ..transfer import Transfer, get
from ..validators import integer
from .base import Layer, LayerCache, LayerParams, Shape, WeightLayer
from .dense import BIAS_INITS, glorot_params

Padding = tuple[int, int, int, int]
"""``(top, bottom, left, right)`` rows and columns of zeros around an image."""


def _pair(name: str, value: Any) -> tuple[int, int]:
    """An integer or a pair of integers >= 1, as ``(rows, columns)``."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return integer(f"{name}[0]", value[0], minimum=1), integer(f"{name}[1]", value[1], minimum=1)
    if isinstance(value, tuple | list):
        raise ValueError(f"{name}: expected an integer >= 1 or a pair of them, got {value!r}")
    n = integer(name, value, minimum=1)
    return n, n


def _out_size(size: int, window: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - window) // stride + 1


def im2col(x: Array, window: tuple[int, int], stride: tuple[int, int], padding: Padding) -> Array:
    r"""The patches of ``x`` ``(B, H, W, C)`` as rows ``(B*Ho*Wo, kh*kw*C)``, in ``(i, j, c)`` order.

    Args:
        x: the images, NHWC.
        window: ``(kh, kw)``.
        stride: ``(sh, sw)``.
        padding: ``(top, bottom, left, right)`` zeros.
    """
    xp = array_namespace(x)
    (kh, kw), (sh, sw), (top, bottom, left, right) = window, stride, padding
    B, H, W, C = x.shape
    Ho, Wo = _out_size(H, kh, sh, top, bottom), _out_size(W, kw, sw, left, right)
    padded = xp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))) if any(padding) else x
    slabs = [
        padded[:, i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return xp.stack(slabs, axis=3).reshape(B * Ho * Wo, kh * kw * C)


def col2im(
    cols: Array,
    shape: tuple[int, int, int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    padding: Padding,
) -> Array:
    r"""The adjoint of :func:`im2col`: rows ``(B*Ho*Wo, kh*kw*C)`` added back onto images ``shape`` ``(B, H, W, C)``.

    :math:`\langle \mathrm{im2col}(X), P\rangle = \langle X, \mathrm{col2im}(P)\rangle` for every ``X`` and ``P``.
    """
    xp = array_namespace(cols)
    (kh, kw), (sh, sw), (top, bottom, left, right) = window, stride, padding
    B, H, W, C = shape
    Ho, Wo = _out_size(H, kh, sh, top, bottom), _out_size(W, kw, sw, left, right)
    blocks = cols.reshape(B, Ho, Wo, kh, kw, C)
    padded = xp.zeros((B, H + top + bottom, W + left + right, C), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw, :] += blocks[
                :, :, :, i, j, :
            ]
    return padded[:, top : top + H, left : left + W, :]


def _check_images(layer: Layer, x: object, channels: int | None, dtype: Any, name: str, where: str) -> Array:
    """``x`` a floating ``(B, H, W, C)`` batch (NHWC) of ``dtype``, with ``C == channels`` where given."""
    where = where or repr(layer)
    images = check_float_array(x, name)
    if images.ndim != 4:
        raise ValueError(
            f"{name}: expected images (B, H, W, C) (NHWC) for {where}, got shape {tuple(images.shape)}"
        )
    if channels is not None and images.shape[3] != channels:
        hint = " (the layout is NHWC: channels last)" if images.shape[1] == channels else ""
        raise ValueError(
            f"{name}: expected {channels} channels in the last axis for {where}, got shape {tuple(images.shape)}{hint}"
        )
    if images.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} like the parameters for {where}, got {images.dtype}")
    return images


class Conv2D(WeightLayer):
    r"""A 2-D convolution :math:`Y = f(X * W + b)` on NHWC images: a dense layer on their patches.

    Args:
        c_in: input channels.
        c_out: output channels.
        kernel: ``kh`` (square) or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``, >= 1.
        padding: an integer ``p >= 0`` or a pair ``(ph, pw)``, symmetric; or ``"same"`` (TensorFlow's
            and Flax's: ``ceil(H/s)`` output rows, an odd extra row or column of zeros at the bottom
            and right).
        transfer: the activation :math:`f` (default the identity).
        bias_init: ``"zeros"`` or ``"glorot"``.

    Parameters ``{"W": (kh, kw, c_in, c_out), "b": (c_out,)}``; :meth:`init` draws ``W`` Glorot-uniform
    with fan-in ``kh*kw*c_in`` and fan-out ``kh*kw*c_out``.

    >>> import numpy as np
    >>> conv = Conv2D(1, 2, 3, padding="same", transfer="relu")
    >>> params, out_shape = conv.init(np.random.default_rng(0), (5, 5, 1), np.float64, None)
    >>> y, cache = conv.forward(params, np.ones((2, 5, 5, 1)))
    >>> out_shape, y.shape, conv.design(cache.inputs).shape, conv.stack(params).shape
    ((5, 5, 2), (2, 5, 5, 2), (50, 10), (10, 2))
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | Literal["same"] = 0,
        transfer: str | Transfer = "identity",
        bias_init: Literal["zeros", "glorot"] = "zeros",
    ) -> None:
        self.c_in = integer("c_in", c_in, minimum=1)
        self.c_out = integer("c_out", c_out, minimum=1)
        self.kernel = _pair("kernel", kernel)
        self.stride = _pair("stride", stride)
        if padding == "same":
            self.padding: tuple[int, int] | Literal["same"] = "same"
        elif isinstance(padding, tuple | list) and len(padding) == 2:
            self.padding = (
                integer("padding[0]", padding[0], minimum=0),
                integer("padding[1]", padding[1], minimum=0),
            )
        elif isinstance(padding, str | tuple | list):
            raise ValueError(f"padding: expected an integer >= 0, a pair of them or 'same', got {padding!r}")
        else:
            p = integer("padding", padding, minimum=0)
            self.padding = (p, p)
        self.transfer = get(transfer)
        if bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init: expected one of {BIAS_INITS}, got {bias_init!r}")
        self.bias_init: Literal["zeros", "glorot"] = bias_init

    def __repr__(self) -> str:
        kh, kw = self.kernel
        return (
            f"Conv2D({self.c_in}, {self.c_out}, ({kh}, {kw}), stride={self.stride}, padding={self.padding!r}, "
            f"{self.transfer.name!r})"
        )

    def pads(self, height: int, width: int) -> Padding:
        """``(top, bottom, left, right)`` for an input of ``height`` x ``width``."""
        if isinstance(self.padding, tuple):
            ph, pw = self.padding
            return ph, ph, pw, pw
        pads = []
        for size, k, s in ((height, self.kernel[0], self.stride[0]), (width, self.kernel[1], self.stride[1])):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return pads[0], pads[1], pads[2], pads[3]

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(Ho, Wo, c_out)`` for ``(H, W, c_in)``.

        Raises:
            ValueError: not ``(H, W, c_in)``, or a kernel larger than the padded input.
        """
        if len(in_shape) != 3 or in_shape[2] != self.c_in:
            raise ValueError(
                f"in_shape: {self!r} expects images (H, W, {self.c_in}) (NHWC), got {tuple(in_shape)}"
            )
        H, W, _ = in_shape
        top, bottom, left, right = self.pads(H, W)
        if self.kernel[0] > H + top + bottom or self.kernel[1] > W + left + right:
            raise ValueError(
                f"in_shape: {self!r}'s kernel {self.kernel} is larger than the padded input "
                f"({H + top + bottom}, {W + left + right})"
            )
        return (
            _out_size(H, self.kernel[0], self.stride[0], top, bottom),
            _out_size(W, self.kernel[1], self.stride[1], left, right),
            self.c_out,
        )

    @property
    def fan_in(self) -> int:
        """``kh*kw*c_in``: the width of a patch row."""
        return self.kernel[0] * self.kernel[1] * self.c_in

    def init(
        self, rng: np.random.Generator, in_shape: Shape, dtype: Any, device: str | None
    ) -> tuple[LayerParams, Shape]:
        """Glorot-uniform ``W`` (fan-in ``kh*kw*c_in``, fan-out ``kh*kw*c_out``), then the bias."""
        out_shape = self.output_shape(in_shape)
        kh, kw = self.kernel
        shape = (kh, kw, self.c_in, self.c_out)
        params = glorot_params(rng, shape, self.fan_in, kh * kw * self.c_out, self.bias_init, dtype, device)
        return params, out_shape

    def check_params(self, params: object, name: str = "params") -> LayerParams:
        """``{"W": (kh, kw, c_in, c_out), "b": (c_out,)}`` of one floating dtype and backend."""
        if not isinstance(params, dict) or set(params) != {"W", "b"}:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise TypeError(f"{name}: expected a dict with keys 'W' and 'b', got {got}")
        W = check_float_array(params["W"], f"{name}['W']", ndim=4)
        b = check_float_array(params["b"], f"{name}['b']", ndim=1)
        expected = (*self.kernel, self.c_in, self.c_out)
        if tuple(W.shape) != expected:
            raise ValueError(f"{name}['W']: expected shape {expected}, got {tuple(W.shape)}")
        if tuple(b.shape) != (self.c_out,):
            raise ValueError(f"{name}['b']: expected shape ({self.c_out},), got {tuple(b.shape)}")
        if b.dtype != W.dtype:
            raise TypeError(f"{name}['b']: expected dtype {W.dtype} like {name}['W'], got {b.dtype}")
        array_namespace(**{f"{name}['W']": W, f"{name}['b']": b})
        return params

    def check_input(self, x: object, dtype: Any, name: str = "x", where: str = "") -> Array:
        """A floating NHWC batch with ``c_in`` channels, of ``dtype``, whose padded size fits the kernel."""
        images = _check_images(self, x, self.c_in, dtype, name, where)
        try:
            self.output_shape(tuple(images.shape[1:]))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}".replace("in_shape: ", "")) from None
        return images

    def _geometry(self, x: Array) -> tuple[tuple[int, int], tuple[int, int], Padding]:
        return self.kernel, self.stride, self.pads(x.shape[1], x.shape[2])

    _formed: tuple[Array, Array] | None = None  # (inputs, their patches), set by for_inputs

    def patches(self, inputs: Array) -> Array:
        """The patch rows :math:`P` ``(B*Ho*Wo, kh*kw*c_in)`` of ``inputs`` (:func:`im2col`; formed
        once for the inputs of :meth:`for_inputs`)."""
        if self._formed is not None and self._formed[0] is inputs:
            return self._formed[1]
        return im2col(inputs, *self._geometry(inputs))

    def for_inputs(self, inputs: Array, saved: Array | None = None) -> Conv2D:
        """A copy of this layer holding the patches of ``inputs`` (that array): ``saved``, the forward
        pass's (:attr:`LayerCache.saved`), or formed here once.  Its linear view on them (:meth:`linear`,
        :meth:`linear_transpose`, :meth:`design`) reuses them, so LocoProp's inner steps are products on
        one patch matrix.  Other inputs are gathered as usual.

        >>> import numpy as np
        >>> conv = Conv2D(1, 2, 3, padding="same")
        >>> x = np.ones((2, 5, 5, 1))
        >>> bound = conv.for_inputs(x)
        >>> bound.patches(x) is bound.patches(x), repr(bound) == repr(conv)
        (True, True)
        """
        if saved is not None:
            self.check_saved(LayerCache(inputs, None, inputs), saved, "saved")
        bound = copy.copy(self)
        bound._formed = (inputs, im2col(inputs, *self._geometry(inputs)) if saved is None else saved)
        return bound

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(kh*kw*c_in, c_out)``."""
        return self.fan_in, self.c_out

    def weight_matrix(self, params: LayerParams) -> Array:
        r""":math:`W_{\text{mat}}` ``(kh*kw*c_in, c_out)``: the kernel as a matrix, rows in the patch order of :func:`im2col`."""
        return params["W"].reshape(self.fan_in, self.c_out)

    def saved_shape(self, in_shape: Shape) -> tuple[int, int]:
        """``(Ho*Wo, kh*kw*c_in)``: an example's patch rows, which the forward pass keeps for the backward."""
        Ho, Wo, _ = self.output_shape(in_shape)
        return Ho * Wo, self.fan_in

    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        B = x.shape[0]
        Ho, Wo, _ = self.output_shape(tuple(x.shape[1:]))
        P = self.patches(x)
        a = (P @ self.weight_matrix(params) + params["b"]).reshape(B, Ho, Wo, self.c_out)
        y = self.transfer.f(a)
        return y, LayerCache(x, a, y, P)

    def _backward_from_pre(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_pre: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        g_rows = g_pre.reshape(-1, self.c_out)
        grads = None
        if param_grads:  # the forward pass's patches where the cache has them
            P = self.patches(cache.inputs) if cache.saved is None else cache.saved
            grads = self._transpose_on(P, g_rows)
        g_x = self._input_grad(params, g_rows, cache.inputs.shape) if input_grad else None
        return g_x, grads

    def _input_grad(self, params: LayerParams, g_rows: Array, shape: tuple[int, int, int, int]) -> Array:
        r""":math:`\partial L/\partial X` ``shape`` ``(B, H, W, c_in)`` from the pre-activation gradient rows
        :math:`G` ``(B*Ho*Wo, c_out)``: :func:`col2im` of :math:`G W_{\text{mat}}^\top`, computed one kernel
        offset at a time (:math:`G W[i, j]^\top`, ``(B*Ho*Wo, c_in)``, added onto the pixels that offset
        read), so that the ``(B*Ho*Wo, kh*kw*c_in)`` matrix is never formed; ``test_conv.py`` checks it
        against the col2im form."""
        xp = array_namespace(g_rows)
        (kh, kw), (sh, sw), (top, bottom, left, right) = (
            self.kernel,
            self.stride,
            self.pads(shape[1], shape[2]),
        )
        B, H, W, C = shape
        Ho, Wo = _out_size(H, kh, sh, top, bottom), _out_size(W, kw, sw, left, right)
        padded = xp.zeros((B, H + top + bottom, W + left + right, C), dtype=g_rows.dtype)
        for i in range(kh):
            for j in range(kw):
                block = (g_rows @ params["W"][i, j].T).reshape(B, Ho, Wo, C)
                padded[:, i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw, :] += block
        return padded[:, top : top + H, left : left + W, :]

    def jvp(self, params: LayerParams, tangent: LayerParams, cache: LayerCache, dot_x: Array | None) -> Array:
        r""":math:`\dot A = P(\dot X) W_{\text{mat}} + P(X) \dot W_{\text{mat}} + \dot b` ``(B, Ho, Wo, c_out)``
        (``dot_x`` ``None``: a constant input)."""
        dot_a = self.linear(cache.inputs, tangent)
        if dot_x is not None:
            dot_a = dot_a + self.patches(dot_x) @ self.weight_matrix(params)
        return self.unrows(dot_a, cache.inputs)

    def design(self, inputs: Array) -> Array:
        r""":math:`\tilde X = [P, 1]` ``(B*Ho*Wo, kh*kw*c_in + 1)``: one row per example and output position."""
        P = self.patches(inputs)
        xp = array_namespace(P)
        return xp.concatenate([P, xp.ones((P.shape[0], 1), dtype=P.dtype)], axis=1)

    def rows(self, a: Array) -> Array:
        """``(B, Ho, Wo, c_out)`` as ``(B*Ho*Wo, c_out)``."""
        return a.reshape(-1, self.c_out)

    def unrows(self, r: Array, inputs: Array) -> Array:
        """``(B*Ho*Wo, c_out)`` rows back to ``(B, Ho, Wo, c_out)``, the output shape of ``inputs``."""
        return r.reshape(inputs.shape[0], *self.output_shape(tuple(inputs.shape[1:])))

    def linear(self, inputs: Array, params: LayerParams) -> Array:
        r""":math:`P\,W_{\text{mat}} + b` ``(B*Ho*Wo, c_out)``."""
        return self.patches(inputs) @ self.weight_matrix(params) + params["b"]

    def linear_transpose(self, inputs: Array, r: Array) -> LayerParams:
        r"""``{"W": (P^T R) reshaped to the kernel, "b": sum of R's rows}``."""
        return self._transpose_on(self.patches(inputs), r)

    def _transpose_on(self, P: Array, r: Array) -> LayerParams:
        r""":math:`P^\top R` as a kernel, and the bias gradient, for patch rows ``P``."""
        return {"W": (P.T @ r).reshape(*self.kernel, self.c_in, self.c_out), "b": r.sum(axis=0)}

    def design_gram(self, inputs: Array) -> Array:
        r""":math:`\tilde X^\top\tilde X`: the patch covariance (unnormalised) with its bias row and column."""
        X = self.design(inputs)
        return X.T @ X

    def stack(self, params: LayerParams) -> Array:
        r""":math:`\tilde W = [W_{\text{mat}}; b]` ``(kh*kw*c_in + 1, c_out)``."""
        self.check_params(params)
        xp = array_namespace(params["W"])
        return xp.concatenate([self.weight_matrix(params), params["b"][None, :]], axis=0)

    def unstack(self, w: Array) -> LayerParams:
        r"""``{"W": w[:-1] as (kh, kw, c_in, c_out), "b": w[-1]}``."""
        w = check_float_array(w, "w", ndim=2)
        if tuple(w.shape) != (self.fan_in + 1, self.c_out):
            raise ValueError(
                f"w: expected stacked weights {(self.fan_in + 1, self.c_out)}, got {tuple(w.shape)}"
            )
        return {"W": w[:-1].reshape(*self.kernel, self.c_in, self.c_out), "b": w[-1]}


class _Parameterless(Layer):
    """A layer without parameters (pooling, flattening): ``init`` draws nothing, ``params`` is ``{}``."""

    def init(
        self, rng: np.random.Generator, in_shape: Shape, dtype: Any, device: str | None
    ) -> tuple[LayerParams, Shape]:
        """No parameters: ``({}, out_shape)`` (draws nothing from ``rng``)."""
        return {}, self.output_shape(in_shape)

    def check_params(self, params: object, name: str = "params") -> LayerParams:
        """``{}``: the layer has no parameters."""
        if params != {}:
            raise ValueError(
                f"{name}: {self!r} has no parameters; expected {{}}, got {type(params).__name__}"
            )
        return {}


class _Pool2D(_Parameterless):
    """A pooling window over each channel of NHWC images, no padding, no weights."""

    def __init__(self, size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> None:
        self.size = _pair("size", size)
        self.stride = self.size if stride is None else _pair("stride", stride)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, stride={self.stride})"

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(Ho, Wo, C)`` for ``(H, W, C)``.

        Raises:
            ValueError: not ``(H, W, C)``, or a window larger than the input.
        """
        if len(in_shape) != 3:
            raise ValueError(f"in_shape: {self!r} expects images (H, W, C) (NHWC), got {tuple(in_shape)}")
        H, W, C = in_shape
        if self.size[0] > H or self.size[1] > W:
            raise ValueError(f"in_shape: {self!r}'s window {self.size} does not fit images of {(H, W)}")
        return (
            _out_size(H, self.size[0], self.stride[0], 0, 0),
            _out_size(W, self.size[1], self.stride[1], 0, 0),
            C,
        )

    def check_input(self, x: object, dtype: Any, name: str = "x", where: str = "") -> Array:
        """A floating NHWC batch whose size fits the window."""
        images = _check_images(
            self, x, None, getattr(x, "dtype", None) if dtype is None else dtype, name, where
        )
        try:
            self.output_shape(tuple(images.shape[1:]))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}".replace("in_shape: ", "")) from None
        return images

    def _pool(self, windows: Array) -> Array:
        """``(B, Ho, Wo, C)`` from the windows ``(B, Ho, Wo, kh*kw, C)``."""
        raise NotImplementedError

    def _window_grads(self, x: Array, g_y: Array) -> Array:
        """The gradient of each window's entries ``(B, Ho, Wo, kh*kw, C)`` from ``g_y`` ``(B, Ho, Wo, C)``, for input ``x``."""
        raise NotImplementedError

    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        y = self._pool(self._windows(x))
        return y, LayerCache(x, None, y)

    def _backward(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_y: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        if not input_grad:
            return None, ({} if param_grads else None)
        grads = self._window_grads(cache.inputs, g_y)
        return self._scatter(grads, cache.inputs.shape), ({} if param_grads else None)

    def jvp(self, params: LayerParams, tangent: LayerParams, cache: LayerCache, dot_x: Array | None) -> Array:
        r""":math:`\dot Y`: each window of ``dot_x`` weighted as the window's gradient weights its entries
        (the mean's :math:`1/(kh\,kw)`; the max's one at its first largest entry of the input)."""
        assert dot_x is not None  # Sequential.jvp skips a layer whose input is constant
        xp = array_namespace(dot_x)
        weights = self._window_grads(cache.inputs, xp.ones_like(cache.post))
        return (weights * self._windows(dot_x)).sum(axis=3)

    def _windows(self, x: Array) -> Array:
        """``(B, Ho, Wo, kh*kw, C)``: each output position's window, per channel."""
        B, _, _, C = x.shape
        Ho, Wo, _ = self.output_shape(tuple(x.shape[1:]))
        kh, kw = self.size
        return im2col(x, self.size, self.stride, (0, 0, 0, 0)).reshape(B, Ho, Wo, kh * kw, C)

    def _scatter(self, g_windows: Array, shape: tuple[int, int, int, int]) -> Array:
        """Window gradients ``(B, Ho, Wo, kh*kw, C)`` added back onto the input pixels (:func:`col2im`)."""
        return col2im(
            g_windows.reshape(g_windows.shape[0] * g_windows.shape[1] * g_windows.shape[2], -1),
            shape,
            self.size,
            self.stride,
            (0, 0, 0, 0),
        )


class MaxPool2D(_Pool2D):
    r"""The largest value in each ``size`` window, per channel, moving by ``stride`` (default ``size``).

    Its gradient goes to the window's largest entry (the first one, where several tie).

    >>> import numpy as np
    >>> y, _ = MaxPool2D(2).forward({}, np.arange(16.0).reshape(1, 4, 4, 1))
    >>> y[0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """

    def _pool(self, windows: Array) -> Array:
        return windows.max(axis=3)

    def _window_grads(self, x: Array, g_y: Array) -> Array:
        xp = array_namespace(g_y)
        windows = self._windows(x)
        first = windows.argmax(axis=3)[:, :, :, None, :]
        mask = xp.arange(windows.shape[3])[None, None, None, :, None] == first
        return mask * g_y[:, :, :, None, :]

    def _tiles(self, x: Array) -> Array | None:
        """Non-overlapping windows (stride = size) as a view ``(B, Ho, kh, Wo, kw, C)`` of ``x``; else ``None``."""
        if self.stride != self.size:
            return None
        (kh, kw), (B, H, W, C) = self.size, x.shape
        Ho, Wo = H // kh, W // kw
        return x[:, : Ho * kh, : Wo * kw, :].reshape(B, Ho, kh, Wo, kw, C)

    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        """The fast path for non-overlapping windows: the running maximum over the window's offsets, on
        views of ``x`` (no copy of the windows; the same values as :meth:`_Pool2D._forward`, which
        ``test_conv.py`` checks bit for bit)."""
        tiles = self._tiles(x)
        if tiles is None:
            return super()._forward(params, x)
        xp = array_namespace(x)
        y = xp.array(tiles[:, :, 0, :, 0, :], copy=True)
        for i in range(self.size[0]):
            for j in range(self.size[1]):
                if i or j:
                    xp.maximum(y, tiles[:, :, i, :, j, :], out=y)
        return y, LayerCache(x, None, y)

    def _backward(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_y: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        """The fast path for non-overlapping windows: each window's first largest entry, in ``(i, j)``
        order, takes its output's gradient; written straight into the input's layout, no col2im."""
        tiles = self._tiles(cache.inputs)
        if tiles is None or not input_grad:
            return super()._backward(params, cache, g_y, input_grad=input_grad, param_grads=param_grads)
        xp = array_namespace(g_y)
        (kh, kw), (B, H, W, C) = self.size, cache.inputs.shape
        grads = xp.empty(tiles.shape, dtype=g_y.dtype)
        free = xp.ones(g_y.shape, dtype=bool)  # windows whose largest entry is still to be found
        first = xp.empty(g_y.shape, dtype=bool)
        for i in range(kh):
            for j in range(kw):
                xp.equal(tiles[:, :, i, :, j, :], cache.post, out=first)
                first &= free
                entry = grads[:, :, i, :, j, :]
                xp.multiply(first, g_y, out=entry)
                entry += 0.0  # False * g is -0.0 where g < 0; the reference adds onto +0.0
                free ^= first
        Ho, Wo = g_y.shape[1], g_y.shape[2]
        g_x = grads.reshape(B, Ho * kh, Wo * kw, C)
        if (Ho * kh, Wo * kw) != (H, W):  # rows and columns no window covers get no gradient
            g_x = xp.pad(g_x, ((0, 0), (0, H - Ho * kh), (0, W - Wo * kw), (0, 0)))
        return g_x, ({} if param_grads else None)


class AvgPool2D(_Pool2D):
    r"""The mean of each ``size`` window, per channel, moving by ``stride`` (default ``size``).

    >>> import numpy as np
    >>> y, _ = AvgPool2D(2).forward({}, np.arange(16.0).reshape(1, 4, 4, 1))
    >>> y[0, :, :, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """

    def _pool(self, windows: Array) -> Array:
        return windows.mean(axis=3)

    def _window_grads(self, x: Array, g_y: Array) -> Array:
        xp = array_namespace(g_y)
        n = self.size[0] * self.size[1]
        return xp.broadcast_to(g_y[:, :, :, None, :] / n, (*g_y.shape[:3], n, g_y.shape[3]))


class Flatten(_Parameterless):
    """``(B, *shape)`` to ``(B, prod(shape))``, row-major (NHWC images become ``H*W*C`` features)."""

    def __repr__(self) -> str:
        return "Flatten()"

    def output_shape(self, in_shape: Shape) -> Shape:
        """``(prod(in_shape),)``."""
        return (int(np.prod(in_shape)),)

    def check_input(self, x: object, dtype: Any, name: str = "x", where: str = "") -> Array:
        """A floating batch of at least one axis beyond the batch."""
        batch = check_float_array(x, name)
        if batch.ndim < 2:
            raise ValueError(
                f"{name}: expected a batch (B, ...) for {where or repr(self)}, got shape {tuple(batch.shape)}"
            )
        return batch

    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        y = x.reshape(x.shape[0], -1)
        return y, LayerCache(x, None, y)

    def _backward(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_y: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        return (g_y.reshape(cache.inputs.shape) if input_grad else None), ({} if param_grads else None)

    def jvp(self, params: LayerParams, tangent: LayerParams, cache: LayerCache, dot_x: Array | None) -> Array:
        r""":math:`\dot Y`: ``dot_x`` flattened like the input."""
        assert dot_x is not None  # Sequential.jvp skips a layer whose input is constant
        return dot_x.reshape(dot_x.shape[0], -1)
