r"""A network as a sequence of layers and an output loss, with explicit pre-activations.

Layers :math:`m = 0..M-1`, :math:`X_0` the input, :math:`X_{m+1} = Y_m` the output of layer
:math:`m`; a weight layer computes :math:`A_m` linear in its weights and :math:`Y_m = f_m(A_m)`.
The loss :math:`L` is the batch mean of the per-example output loss of the last layer's
pre-activation (see :mod:`locograd.losses`).  :meth:`Sequential.forward` returns a :class:`Trace`
holding every :math:`X_m, A_m, Y_m`; :meth:`Sequential.backward` returns :class:`Grads` holding
:math:`G_m = \partial L/\partial A_m` for every weight layer next to the parameter gradients.
These two are the one reference pass; the optimizers' BackProp step runs a lean fused copy of it
for dense networks (``locograd._fast.passes``), tested bit for bit against it.

:class:`MLP` builds a :class:`Sequential` of :class:`~locograd.nn.Dense` layers from widths and
transfer names.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> net.layers
(Dense(3, 4, 'tanh'), Dense(4, 2, 'sigmoid'))
>>> params = net.init(seed=0)
>>> x = np.random.default_rng(0).random((5, 3))
>>> trace = net.forward(params, x)
>>> [a.shape for a in trace.pre]
[(5, 4), (5, 2)]
>>> grads = net.backward(params, trace, x[:, :2])
>>> grads.W[0].shape, grads.pre[1].shape
((3, 4), (5, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from .. import losses as losses_mod
from ..backend import Array, array_namespace
from ..losses import Loss
from ..transfer import Transfer
from ..validators import integer
from .base import Layer, LayerCache, LayerParams, Shape, WeightLayer, _check_like
from .dense import BIAS_INITS, Dense

Params = list[LayerParams]
"""One parameter dict per layer, e.g. ``{"W": (d_m, d_{m+1}), "b": (d_{m+1},)}`` for a dense layer."""


class Trace(NamedTuple):
    """Everything the forward pass computed, per layer ``m``.

    Attributes:
        inputs: ``X_m`` ``(B, *in_shape_m)``.
        pre: ``A_m`` ``(B, *out_shape_m)`` of a weight layer (``None`` for a layer without weights).
        post: ``Y_m`` ``(B, *out_shape_m)``.
        saved: each layer's :attr:`~locograd.nn.LayerCache.saved` (a convolution's patch rows, which
            its backward pass and LocoProp's problem reuse; ``None`` elsewhere); ``None`` for none at all.
    """

    inputs: list[Array]
    pre: list[Array]
    post: list[Array]
    saved: list[Array | None] | None = None

    @property
    def output(self) -> Array:
        """The network output ``Y_{M-1}``."""
        return self.post[-1]

    def cache(self, m: int) -> LayerCache:
        """Layer ``m``'s :class:`~locograd.nn.LayerCache` ``(inputs, pre, post, saved)``."""
        saved = None if self.saved is None else self.saved[m]
        return LayerCache(self.inputs[m], self.pre[m], self.post[m], saved)


class Grads(NamedTuple):
    r"""Gradients of the batch-mean loss.

    Attributes:
        W: :math:`\partial L/\partial W_m` (``None`` entries when weight gradients were not asked for).
        b: :math:`\partial L/\partial b_m` (likewise).
        pre: :math:`G_m = \partial L/\partial A_m` ``(B, *out_shape_m)`` of every weight layer; carries :math:`1/B`.
        loss: the loss value :math:`L`, a 0-d array on the data's device (``None`` from :meth:`Sequential.vjp`).
    """

    W: list[Array | None]
    b: list[Array | None]
    pre: list[Array]
    loss: Array | None

    def as_params(self) -> Params:
        """The weight gradients in the params structure: ``[{"W": dL/dW_m, "b": dL/db_m}, ...]`` (``{}`` for a layer without weights).

        Raises:
            ValueError: the backward pass ran with ``weight_grads=False``.
        """
        weighted = [g is not None for g in self.pre]  # a layer without weights has no G (and no params)
        if any(w is None for w, has in zip(self.W, weighted, strict=True) if has):
            raise ValueError("grads: computed with weight_grads=False, so it holds no dL/dW")
        return [{"W": w, "b": b} if has else {} for w, b, has in zip(self.W, self.b, weighted, strict=True)]


class Sequential:
    r"""A network: layers applied in order, and a loss on the last layer's pre-activation.

    Like PyTorch's ``nn.Sequential`` with the loss attached (a LocoProp step needs both), and like
    Flax, the parameters are not held: :meth:`init` returns them and every pass takes them.

    Args:
        layers: the :class:`~locograd.nn.Layer` s, first to last; the last is a weight layer whose
            transfer is the loss's output transfer.
        loss: a :class:`~locograd.losses.Loss` or its name (``"squared_error"``,
            ``"sigmoid_cross_entropy"``, ``"softmax_cross_entropy"``).
        in_shape: the shape of one input example; default the first layer's (``(d_in,)`` for a
            :class:`~locograd.nn.Dense`).

    Raises:
        ValueError: no layers, shapes that do not chain (naming the layer), or a last layer that is
            not a weight layer with the loss's transfer.

    >>> import locograd as lg
    >>> from locograd import nn
    >>> net = nn.Sequential([nn.Dense(4, 3, "tanh"), nn.Dense(3, 2, "softmax")], "softmax_cross_entropy")
    >>> net.shapes
    [(4,), (3,), (2,)]
    """

    def __init__(self, layers: Sequence[Layer], loss: str | Loss, in_shape: Shape | None = None) -> None:
        if isinstance(layers, Layer) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"layers: expected a non-empty list of locograd.nn layers, got {layers!r}")
        for m, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{m}]: expected a locograd.nn layer, got {type(layer).__name__}")
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.loss_fn: Loss = losses_mod.get(loss)
        if in_shape is None:
            first = self.layers[0]
            if not isinstance(first, Dense):
                raise ValueError(f"in_shape: expected the input shape, since {first!r} does not fix it")
            in_shape = (first.d_in,)
        shapes = [tuple(int(d) for d in in_shape)]
        for m, layer in enumerate(self.layers):
            try:
                shapes.append(tuple(layer.output_shape(shapes[-1])))
            except ValueError as exc:
                raise ValueError(
                    f"layers[{m}]: {layer!r} does not take the output of shape {shapes[-1]} of "
                    f"{self.layers[m - 1].describe(m - 1) if m else 'the input'} ({exc})"
                ) from None
        self.shapes: list[Shape] = shapes
        last = self.layers[-1]
        if not isinstance(last, WeightLayer) or last.transfer.name != self.loss_fn.transfer.name:
            got = last.transfer.name if isinstance(last, WeightLayer) else f"{last!r}, without weights"
            raise ValueError(
                f"layers: the last layer must be a weight layer with transfer {self.loss_fn.transfer.name!r} "
                f"for loss {self.loss_fn.name!r}, got {got}"
            )

    def __repr__(self) -> str:
        return f"Sequential({list(self.layers)}, {self.loss_fn.name!r})"

    @property
    def num_layers(self) -> int:
        """``M``, the number of layers."""
        return len(self.layers)

    @property
    def weight_layers(self) -> list[int]:
        """The indices of the layers with weights (and a local problem)."""
        return [m for m, layer in enumerate(self.layers) if layer.has_weights]

    @property
    def transfers(self) -> list[Transfer]:
        """The transfer :math:`f_m` of every weight layer, in order."""
        return [layer.transfer for layer in self.layers if isinstance(layer, WeightLayer)]

    def init(
        self,
        seed: int = 0,
        dtype: Any = np.float64,
        device: str | None = None,
    ) -> Params:
        """Every layer's parameters from ONE generator ``numpy.random.default_rng(seed)``, drawn in layer order.

        Drawn on the host in float64, then cast and moved, so every dtype and device gets the same numbers.

        Args:
            seed: random seed, an integer >= 0.
            dtype: ``float32`` or ``float64``.
            device: ``"cpu"``/``"gpu"``; default the scoped default device.
        """
        return self._init(self.layers, seed, dtype, device)

    def _init(self, layers: Sequence[Layer], seed: int, dtype: Any, device: str | None) -> Params:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
        if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype: expected float32 or float64, got {resolved}")
        seed = integer("seed", seed, minimum=0)
        rng = np.random.default_rng(seed)
        params: Params = []
        shape = self.shapes[0]
        for layer in layers:
            layer_params, shape = layer.init(rng, shape, dtype, device)
            params.append(layer_params)
        return params

    def check_params(self, params: object) -> Params:
        """Check that ``params`` fits this network: count, shapes, one dtype, one backend."""
        if not isinstance(params, list | tuple) or len(params) != self.num_layers:
            got = f"{len(params)} layers" if isinstance(params, list | tuple) else type(params).__name__
            raise ValueError(f"params: expected a list of {self.num_layers} layer dicts, got {got}")
        dtype = None
        named: dict[str, Array] = {}
        for m, (layer, layer_params) in enumerate(zip(self.layers, params, strict=True)):
            layer.check_params(layer_params, f"params[{m}]")
            for key, value in layer_params.items():
                if dtype is not None and value.dtype != dtype:
                    raise TypeError(
                        f"params[{m}][{key!r}]: expected dtype {dtype} like params[0], got {value.dtype}"
                    )
                dtype = value.dtype
                named[f"params[{m}][{key!r}]"] = value
        array_namespace(**named)
        return list(params)

    def _dtype(self, params: Params) -> Any:
        for layer_params in params:
            for value in layer_params.values():
                return value.dtype
        raise ValueError("params: expected at least one layer with weights")

    def check_trace(self, trace: object, params: Params) -> Trace:
        """Check that ``trace`` is a :class:`Trace` of this network at the parameters' dtype: shapes only.

        Every ``inputs[m]`` ``(B, *in_shape_m)``, ``pre[m]`` (weight layers) and ``post[m]``
        ``(B, *out_shape_m)`` with one batch size ``B`` and the dtype of ``params``, and any saved
        patches of the shape the layer saves (:meth:`~locograd.nn.Layer.check_saved`; no pass over the
        data), so that a trace of another network, batch or dtype is refused instead of broadcast or upcast.

        Raises:
            ValueError: not a Trace of this network's layers, or an array of another shape or dtype,
                e.g. ``"trace.pre[1]: expected shape (5, 2) and dtype float64, got (2, 2) float64"``.
        """
        if not isinstance(trace, Trace) or not all(
            isinstance(part, list | tuple) and len(part) == self.num_layers
            for part in (trace.inputs, trace.pre, trace.post)
        ):
            raise ValueError(
                f"trace: expected a Trace of {self.num_layers} layers from the network's forward"
            )
        dtype = self._dtype(params)
        B = getattr(trace.inputs[0], "shape", (None,))[0]
        if trace.saved is not None and (
            not isinstance(trace.saved, list | tuple) or len(trace.saved) != self.num_layers
        ):
            raise ValueError(
                f"trace.saved: expected None or a list of {self.num_layers} entries from the forward pass"
            )
        for m, layer in enumerate(self.layers):
            parts = [("inputs", self.shapes[m]), ("post", self.shapes[m + 1])]
            if layer.has_weights:
                parts.insert(1, ("pre", self.shapes[m + 1]))
            for part, shape_m in parts:
                a = getattr(trace, part)[m]
                shape, got_dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
                expected = (B, *shape_m)
                if shape is None or tuple(shape) != expected or got_dtype != dtype:
                    got = f"{tuple(shape)} {got_dtype}" if shape is not None else type(a).__name__
                    raise ValueError(
                        f"trace.{part}[{m}]: expected shape {expected} and dtype {dtype} "
                        f"(a Trace of this network from its forward at these params), got {got}"
                    )
            if trace.saved is not None:  # an entry None: the backward pass forms what it needs again
                layer.check_saved(trace.cache(m), name=f"trace.saved[{m}]")
        return trace

    def check_input(self, x: Array, params: Params, name: str = "x") -> Array:
        """``x`` a floating batch ``(B, *in_shape)``, ``B >= 1``, of the parameters' dtype and backend."""
        x = self.layers[0].check_input(x, self._dtype(params), name, self.layers[0].describe(0))
        if x.shape[0] == 0:  # the loss is a batch mean: NaN on no rows
            raise ValueError(
                f"{name}: expected a batch of at least one row (B >= 1), got shape {tuple(x.shape)}"
            )
        for layer_params in params:
            for value in layer_params.values():
                array_namespace(**{name: x, "params": value})
                return x
        return x

    def forward(self, params: Params, x: Array) -> Trace:
        """Forward pass; ``x`` ``(B, *in_shape)``, ``B >= 1``, of the parameters' dtype and backend.

        Returns:
            The :class:`Trace` of inputs, pre- and post-activations.
        """
        params = self.check_params(params)
        self.check_input(x, params)
        inputs, pre, post, saved = [], [], [], []
        h = x
        for layer, layer_params in zip(self.layers, params, strict=True):
            h, cache = layer._forward(layer_params, h)
            inputs.append(cache.inputs)
            pre.append(cache.pre)
            post.append(cache.post)
            saved.append(cache.saved)
        return Trace(inputs, pre, post, saved)

    def loss(self, params: Params, x: Array, y: Array) -> float:
        """The batch-mean loss :math:`L` as a Python float."""
        trace = self.forward(params, x)
        return float(self.loss_fn.per_example(trace.pre[-1], y).mean())

    def backward(self, params: Params, trace: Trace, y: Array, weight_grads: bool = True) -> Grads:
        r"""Backward pass from a forward :class:`Trace`.

        Args:
            params: the parameters the trace was computed with.
            trace: from :meth:`forward`.
            y: targets ``(B, d_M)`` (or integer labels ``(B,)`` for softmax cross-entropy).
            weight_grads: compute the parameter gradients; LocoProp needs only :math:`G_m` and may skip them.

        Returns:
            :class:`Grads` with ``W``, ``b``, ``pre`` (the :math:`G_m` of weight layers, ``None``
            elsewhere) and ``loss``.
        """
        params = self.check_params(params)
        self.check_trace(trace, params)
        if not isinstance(weight_grads, bool):
            raise ValueError(f"weight_grads: expected True or False, got {weight_grads!r}")
        loss, g = self.loss_fn.mean_value_and_grad(trace.pre[-1], y)
        gW, gb, gpre = self._pullback(params, trace, g, weight_grads)
        return Grads(gW, gb, gpre, loss)

    def vjp(self, params: Params, trace: Trace, cotangent: Array, weight_grads: bool = True) -> Grads:
        r"""Backpropagate a cotangent of the last pre-activation: the pass :meth:`backward` runs from
        :math:`\partial L/\partial A_{M-1}`, from any :math:`V` ``(B, d_M)``.

        Every :math:`G_m` is then :math:`V`'s pullback :math:`J_m^\top V` to layer :math:`m`'s
        pre-activation (K-FAC's expected Fisher backpropagates the columns of the output's Fisher root).

        Returns:
            :class:`Grads` whose ``loss`` is ``None``.

        Raises:
            ValueError, TypeError: ``cotangent`` not of the last pre-activation's shape and dtype.
        """
        params = self.check_params(params)
        self.check_trace(trace, params)
        if not isinstance(weight_grads, bool):
            raise ValueError(f"weight_grads: expected True or False, got {weight_grads!r}")
        _check_like(cotangent, trace.cache(self.num_layers - 1), "pre", "cotangent")
        gW, gb, gpre = self._pullback(params, trace, cotangent, weight_grads)
        return Grads(gW, gb, gpre, None)

    def _pullback(
        self, params: Params, trace: Trace, g: Array, weight_grads: bool
    ) -> tuple[list[Array | None], list[Array | None], list[Array]]:
        r"""Backpropagate :math:`\partial/\partial A_{M-1}` = ``g`` ``(B, d_M)`` on checked arguments: ``(W, b, pre)`` as in :class:`Grads`."""
        M = self.num_layers
        gW: list[Array | None] = [None] * M
        gb: list[Array | None] = [None] * M
        gpre: list[Array] = [g] * M
        for m in range(M - 1, -1, -1):
            layer = self.layers[m]
            if isinstance(layer, WeightLayer):
                gpre[m] = g
                g_x, layer_grads = layer._backward_from_pre(
                    params[m], trace.cache(m), g, input_grad=m > 0, param_grads=weight_grads
                )
                if layer_grads is not None:
                    gW[m], gb[m] = layer_grads["W"], layer_grads["b"]
            else:
                gpre[m] = None
                g_x, _ = layer._backward(params[m], trace.cache(m), g, input_grad=m > 0, param_grads=False)
            if g_x is not None:
                below = self.layers[m - 1]
                g = (
                    below.transfer.vjp(trace.pre[m - 1], g_x, trace.post[m - 1])
                    if isinstance(below, WeightLayer)
                    else g_x
                )
        return gW, gb, gpre

    def value_and_grad(self, params: Params, x: Array, y: Array) -> tuple[float, Params]:
        r"""The loss and its gradient w.r.t. the parameters, like ``jax.value_and_grad`` of a loss of params.

        :meth:`forward` then :meth:`backward` in one call.

        Returns:
            ``(L, grads)``: the loss as a Python float and the gradients in the params
            structure, ``[{"W": dL/dW_m, "b": dL/db_m}, ...]`` (for :math:`G_m` or the
            loss as an array, call :meth:`backward`).
        """
        grads = self.backward(params, self.forward(params, x), y)
        assert grads.loss is not None  # backward computes it
        return float(grads.loss), grads.as_params()

    def jvp(self, params: Params, trace: Trace, tangents: Params) -> Array:
        r"""Forward-mode derivative of the last pre-activation along a parameter direction.

        With :math:`\dot X_0 = 0`, per weight layer :math:`\dot A_m = \dot X_m W_m + X_m \dot W_m + \dot b_m`
        (on the linear view: :math:`\tilde X` a convolution's patches) and :math:`\dot X_{m+1} = f_m'(A_m)\,\dot A_m`;
        a layer without weights maps :math:`\dot X_m` by its own (linear, or piecewise linear) derivative.  Every transfer here is the
        gradient of a convex potential, so its Jacobian is symmetric and its VJP is also its JVP.

        Args:
            params: the parameters the trace was computed with.
            trace: from :meth:`forward`.
            tangents: a direction :math:`(\dot W_m, \dot b_m)` in the params structure.

        Returns:
            :math:`\dot A_{M-1} = J\,\mathrm{vec}(\dot\theta)`, ``(B, d_M)``.
        """
        params = self.check_params(params)
        tangents = self.check_params(tangents)
        dtype, tangent_dtype = self._dtype(params), self._dtype(tangents)
        if tangent_dtype != dtype:
            raise TypeError(
                f"tangents: expected dtype {dtype} like the parameters, got {tangent_dtype} (never upcast)"
            )
        self.check_trace(trace, params)
        dot_x: Array | None = None
        for m, layer in enumerate(self.layers):
            if isinstance(layer, WeightLayer):
                dot_a = layer.jvp(params[m], tangents[m], trace.cache(m), dot_x)
                if m < self.num_layers - 1:
                    dot_x = layer.transfer.vjp(trace.pre[m], dot_a, trace.post[m])
            elif dot_x is not None:  # a layer without weights moves only with its input
                dot_x = layer.jvp(params[m], tangents[m], trace.cache(m), dot_x)
        return dot_a

    def fisher_quadratic(self, params: Params, trace: Trace, u: Params, v: Params | None = None) -> float:
        r"""The exact Fisher (Gauss-Newton) form :math:`u^\top F v` of the batch-mean loss.

        For a matching loss the Hessian w.r.t. the output pre-activation is the
        output transfer's Jacobian :math:`f'(A)`, so
        :math:`F = \frac1B\sum_n J_n^\top f'(A_n) J_n` (Martens & Grosse 2015, section 7)
        and :math:`u^\top F v = \frac1B\sum_n (J_n u)^\top f'(A_n) (J_n v)`, by two :meth:`jvp` s.

        Args:
            params, trace: the point, with its forward pass.
            u, v: directions in the params structure (``v = u`` when omitted).
        """
        return float(self.fisher_gram(params, trace, [u] if v is None else [u, v])[0, -1])

    def fisher_gram(self, params: Params, trace: Trace, directions: Sequence[Params]) -> np.ndarray:
        r"""All :math:`u_i^\top F u_j` (see :meth:`fisher_quadratic`), one :meth:`jvp` per direction.

        Returns:
            The symmetric ``(n, n)`` NumPy matrix for ``n`` directions.
        """
        outputs = [self.jvp(params, trace, u) for u in directions]
        out = self.loss_fn.transfer
        n, B = len(outputs), trace.pre[-1].shape[0]
        gram = np.empty((n, n))
        for j in range(n):
            curved = out.vjp(trace.pre[-1], outputs[j], trace.post[-1])
            for i in range(j + 1):
                gram[i, j] = gram[j, i] = float((outputs[i] * curved).sum()) / B
        return gram


class MLP(Sequential):
    """A dense network ``sizes[0] -> ... -> sizes[-1]``: a :class:`Sequential` of :class:`~locograd.nn.Dense` layers.

    Args:
        sizes: ``[d_0, ..., d_M]``, positive integers, ``M >= 1``.
        activations: ``M`` transfer names (or :class:`~locograd.transfer.Transfer` rows).
        loss: ``"squared_error"`` (last activation identity),
            ``"sigmoid_cross_entropy"`` (sigmoid) or ``"softmax_cross_entropy"`` (softmax), or a
            :class:`~locograd.losses.Loss`.

    Raises:
        ValueError: bad sizes, wrong number of activations, unknown names,
            or a last activation that does not match the loss.
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str | Transfer], loss: str | Loss) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or not all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1 for d in sizes
        ):
            raise ValueError(f"sizes: expected at least two positive integers, got {sizes!r}")
        if isinstance(activations, str) or len(activations) != len(sizes) - 1:
            raise ValueError(
                f"activations: expected {len(sizes) - 1} transfer names (one per layer), got {activations!r}"
            )
        self.sizes: list[int] = [int(d) for d in sizes]
        layers = [
            Dense(d_in, d_out, a)
            for d_in, d_out, a in zip(self.sizes[:-1], self.sizes[1:], activations, strict=True)
        ]
        loss_fn = losses_mod.get(loss)
        if layers[-1].transfer.name != loss_fn.transfer.name:
            raise ValueError(
                f"activations: the last activation must be {loss_fn.transfer.name!r} "
                f"for loss {loss_fn.name!r}, got {layers[-1].transfer.name!r}"
            )
        super().__init__(layers, loss_fn)

    def __repr__(self) -> str:
        acts = [t.name for t in self.transfers]
        return f"MLP(sizes={self.sizes}, activations={acts}, loss={self.loss_fn.name!r})"

    def init(  # type: ignore[override]
        self,
        seed: int = 0,
        dtype: Any = np.float64,
        bias: Literal["zeros", "glorot"] = "zeros",
        device: str | None = None,
    ) -> Params:
        r"""Glorot-uniform parameters from ``numpy.random.default_rng(seed)``, layer by layer.

        ``W_m ~ U(-s, s)`` with :math:`s = \sqrt{6/(d_m + d_{m+1})}`.  Biases are
        zeros, or with ``bias="glorot"`` the released LocoProp code's
        :math:`U(\pm\sqrt{3/n})` for a bias of length ``n`` (drawn after its layer's ``W``).
        Drawn on the host in float64, then cast and moved, so every dtype and device gets the same numbers.

        Args:
            seed: random seed.
            dtype: ``float32`` or ``float64``.
            bias: ``"zeros"`` or ``"glorot"``.
            device: ``"cpu"``/``"gpu"``; default the scoped default device.
        """
        if bias not in BIAS_INITS:
            raise ValueError(f"bias: expected one of {BIAS_INITS}, got {bias!r}")
        layers = [Dense(layer.d_in, layer.d_out, layer.transfer, bias) for layer in self.layers]  # type: ignore[attr-defined]
        return self._init(layers, seed, dtype, device)
