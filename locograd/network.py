r"""The multi-layer perceptron with explicit pre-activations.

Layers :math:`m = 0..M-1`, :math:`X_0` the input, :math:`A_m = X_m W_m + b_m`,
:math:`Y_m = f_m(A_m)`, :math:`X_{m+1} = Y_m`.  The loss :math:`L` is the
batch mean of the per-example output loss (see :mod:`locograd.losses`).
:meth:`MLP.forward` returns a :class:`Trace` holding every :math:`X_m, A_m,
Y_m`; :meth:`MLP.backward` returns :class:`Grads` holding
:math:`G_m = \partial L/\partial A_m` next to :math:`\partial L/\partial W_m
= X_m^\top G_m` and :math:`\partial L/\partial b_m = \sum_n G_{m,n}`.
These two are the one reference pass; the optimizers' BackProp step runs a lean
fused copy of it (``locograd._fast.passes``), tested bit for bit against it.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
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

from . import losses as losses_mod
from .backend import Array, array_namespace, namespace_for
from .layers import DenseCache, affine, check_batch, check_layer_params, dense_backward
from .transfer import Transfer
from .transfer import get as get_transfer
from .validators import integer

Params = list[dict[str, Array]]
"""One ``{"W": (d_m, d_{m+1}), "b": (d_{m+1},)}`` dict per layer."""

BIAS_INITS = ("zeros", "glorot")


class Trace(NamedTuple):
    """Everything the forward pass computed, per layer ``m``.

    Attributes:
        inputs: ``X_m`` ``(B, d_m)``.
        pre: ``A_m = X_m W_m + b_m`` ``(B, d_{m+1})``.
        post: ``Y_m = f_m(A_m)`` ``(B, d_{m+1})``.
    """

    inputs: list[Array]
    pre: list[Array]
    post: list[Array]

    @property
    def output(self) -> Array:
        """The network output ``Y_{M-1}`` ``(B, d_M)``."""
        return self.post[-1]


class Grads(NamedTuple):
    r"""Gradients of the batch-mean loss.

    Attributes:
        W: :math:`\partial L/\partial W_m` ``(d_m, d_{m+1})`` (``None`` entries
            when weight gradients were not asked for).
        b: :math:`\partial L/\partial b_m` ``(d_{m+1},)`` (likewise).
        pre: :math:`G_m = \partial L/\partial A_m` ``(B, d_{m+1})``; carries :math:`1/B`.
        loss: the loss value :math:`L`, a 0-d array on the data's device.
    """

    W: list[Array | None]
    b: list[Array | None]
    pre: list[Array]
    loss: Array

    def as_params(self) -> Params:
        """The weight gradients in the params structure: ``[{"W": dL/dW_m, "b": dL/db_m}, ...]``.

        Raises:
            ValueError: the backward pass ran with ``weight_grads=False``.
        """
        if any(w is None for w in self.W):
            raise ValueError("grads: computed with weight_grads=False, so it holds no dL/dW")
        return [{"W": w, "b": b} for w, b in zip(self.W, self.b, strict=True)]


class MLP:
    """A dense network ``sizes[0] -> ... -> sizes[-1]``.

    Args:
        sizes: ``[d_0, ..., d_M]``, positive integers, ``M >= 1``.
        activations: ``M`` transfer names (or :class:`~locograd.transfer.Transfer` rows).
        loss: ``"squared_error"`` (last activation identity),
            ``"sigmoid_cross_entropy"`` (sigmoid) or ``"softmax_cross_entropy"`` (softmax).

    Raises:
        ValueError: bad sizes, wrong number of activations, unknown names,
            or a last activation that does not match the loss.
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str | Transfer], loss: str) -> None:
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
        self.transfers: list[Transfer] = [get_transfer(a) for a in activations]
        self.loss_fn = losses_mod.get(loss)
        if self.transfers[-1].name != self.loss_fn.transfer_name:
            raise ValueError(
                f"activations: the last activation must be {self.loss_fn.transfer_name!r} "
                f"for loss {self.loss_fn.name!r}, got {self.transfers[-1].name!r}"
            )

    @property
    def num_layers(self) -> int:
        """``M``, the number of dense layers."""
        return len(self.transfers)

    def __repr__(self) -> str:
        acts = [t.name for t in self.transfers]
        return f"MLP(sizes={self.sizes}, activations={acts}, loss={self.loss_fn.name!r})"

    def init(
        self,
        seed: int = 0,
        dtype: Any = np.float64,
        bias: Literal["zeros", "glorot"] = "zeros",
        device: str | None = None,
    ) -> Params:
        r"""Glorot-uniform parameters.

        ``W_m ~ U(-s, s)`` with :math:`s = \sqrt{6/(d_m + d_{m+1})}`.  Biases are
        zeros, or with ``bias="glorot"`` the released LocoProp code's
        :math:`U(\pm\sqrt{3/n})` for a bias of length ``n``.  Drawn on the host
        from ``numpy.random.default_rng(seed)`` in float64, then cast and moved,
        so every dtype and device gets the same numbers.

        Args:
            seed: random seed.
            dtype: ``float32`` or ``float64``.
            bias: ``"zeros"`` or ``"glorot"``.
            device: ``"cpu"``/``"gpu"``; default the scoped default device.
        """
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
        if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype: expected float32 or float64, got {resolved}")
        seed = integer("seed", seed, minimum=0)
        if bias not in BIAS_INITS:
            raise ValueError(f"bias: expected one of {BIAS_INITS}, got {bias!r}")
        xp = namespace_for(device)
        rng = np.random.default_rng(seed)
        params: Params = []
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (d_in + d_out))
            W = rng.uniform(-limit, limit, size=(d_in, d_out))
            b = (
                rng.uniform(-np.sqrt(3.0 / d_out), np.sqrt(3.0 / d_out), size=d_out)
                if bias == "glorot"
                else np.zeros(d_out)
            )
            params.append({"W": xp.asarray(W, dtype=dtype), "b": xp.asarray(b, dtype=dtype)})
        return params

    def check_params(self, params: object) -> Params:
        """Check that ``params`` fits this network: count, shapes, one dtype, one backend."""
        if not isinstance(params, list | tuple) or len(params) != self.num_layers:
            got = f"{len(params)} layers" if isinstance(params, list | tuple) else type(params).__name__
            raise ValueError(f"params: expected a list of {self.num_layers} layer dicts, got {got}")
        dtype = None
        named: dict[str, Array] = {}
        for m, layer in enumerate(params):
            d_in, d_out = check_layer_params(layer, f"params[{m}]")
            expected = (self.sizes[m], self.sizes[m + 1])
            if (d_in, d_out) != expected:
                raise ValueError(f"params[{m}]['W']: expected shape {expected}, got {(d_in, d_out)}")
            if dtype is not None and layer["W"].dtype != dtype:
                raise TypeError(
                    f"params[{m}]['W']: expected dtype {dtype} like params[0], got {layer['W'].dtype}"
                )
            dtype = layer["W"].dtype
            named[f"params[{m}]['W']"] = layer["W"]
        array_namespace(**named)
        return list(params)

    def check_trace(self, trace: object, params: Params) -> Trace:
        """Check that ``trace`` is a :class:`Trace` of this network at the parameters' dtype: shapes only.

        Every ``inputs[m]`` ``(B, d_m)``, ``pre[m]`` and ``post[m]`` ``(B, d_{m+1})`` with one batch
        size ``B`` and the dtype of ``params`` (no pass over the data), so that a trace of another
        network, batch or dtype is refused instead of broadcast or upcast.

        Raises:
            ValueError: not a Trace of this network's layers, or an array of another shape or dtype,
                e.g. ``"trace.pre[1]: expected shape (5, 2) and dtype float64, got (2, 2) float64"``.
        """
        if not isinstance(trace, Trace) or not all(
            isinstance(part, list | tuple) and len(part) == self.num_layers
            for part in (trace.inputs, trace.pre, trace.post)
        ):
            raise ValueError(f"trace: expected a Trace of {self.num_layers} layers from MLP.forward")
        dtype = params[0]["W"].dtype
        B = getattr(trace.inputs[0], "shape", (None,))[0]
        for m in range(self.num_layers):
            for part, width in (
                ("inputs", self.sizes[m]),
                ("pre", self.sizes[m + 1]),
                ("post", self.sizes[m + 1]),
            ):
                a = getattr(trace, part)[m]
                shape, got_dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
                if shape is None or tuple(shape) != (B, width) or got_dtype != dtype:
                    got = f"{tuple(shape)} {got_dtype}" if shape is not None else type(a).__name__
                    raise ValueError(
                        f"trace.{part}[{m}]: expected shape ({B}, {width}) and dtype {dtype} "
                        f"(a Trace of this network from MLP.forward at these params), got {got}"
                    )
        return trace

    def forward(self, params: Params, x: Array) -> Trace:
        """Forward pass; ``x`` ``(B, d_0)``, ``B >= 1``, of the parameters' dtype and backend.

        Returns:
            The :class:`Trace` of inputs, pre- and post-activations.
        """
        params = self.check_params(params)
        check_batch(x, self.sizes[0], params[0]["W"].dtype)
        array_namespace(x=x, params=params[0]["W"])
        inputs, pre, post = [], [], []
        h = x
        for layer, t in zip(params, self.transfers, strict=True):
            a = affine(layer, h)
            inputs.append(h)
            pre.append(a)
            h = t.f(a)
            post.append(h)
        return Trace(inputs, pre, post)

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
            weight_grads: compute :math:`\partial L/\partial W, \partial L/\partial b`;
                LocoProp needs only :math:`G_m` and may skip them.

        Returns:
            :class:`Grads` with ``W``, ``b``, ``pre`` (the :math:`G_m`) and ``loss``.
        """
        params = self.check_params(params)
        self.check_trace(trace, params)
        if not isinstance(weight_grads, bool):
            raise ValueError(f"weight_grads: expected True or False, got {weight_grads!r}")
        loss, g = self.loss_fn.mean_value_and_grad(trace.pre[-1], y)
        M = self.num_layers
        gW: list[Array | None] = [None] * M
        gb: list[Array | None] = [None] * M
        gpre: list[Array] = [g] * M
        for m in range(M - 1, -1, -1):
            gpre[m] = g
            cache = DenseCache(trace.inputs[m], trace.pre[m], trace.post[m])
            layer_grads, g_x = dense_backward(params[m], cache, g, input_grad=m > 0, param_grads=weight_grads)
            if layer_grads is not None:
                gW[m], gb[m] = layer_grads
            if g_x is not None:
                g = self.transfers[m - 1].vjp(trace.pre[m - 1], g_x, trace.post[m - 1])
        return Grads(gW, gb, gpre, loss)

    def value_and_grad(self, params: Params, x: Array, y: Array) -> tuple[float, Params]:
        r"""The loss and its gradient w.r.t. the parameters, like ``jax.value_and_grad`` of a loss of params.

        :meth:`forward` then :meth:`backward` in one call.

        Returns:
            ``(L, grads)``: the loss as a Python float and the gradients in the params
            structure, ``[{"W": dL/dW_m, "b": dL/db_m}, ...]`` (for :math:`G_m` or the
            loss as an array, call :meth:`backward`).
        """
        grads = self.backward(params, self.forward(params, x), y)
        return float(grads.loss), grads.as_params()

    def jvp(self, params: Params, trace: Trace, tangents: Params) -> Array:
        r"""Forward-mode derivative of the last pre-activation along a parameter direction.

        With :math:`\dot X_0 = 0`, per layer :math:`\dot A_m = \dot X_m W_m + X_m \dot W_m + \dot b_m`
        and :math:`\dot X_{m+1} = f_m'(A_m)\,\dot A_m`.  Every transfer here is the
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
        if tangents[0]["W"].dtype != params[0]["W"].dtype:
            raise TypeError(
                f"tangents: expected dtype {params[0]['W'].dtype} like the parameters, got "
                f"{tangents[0]['W'].dtype} (never upcast)"
            )
        self.check_trace(trace, params)
        dot_x: Array | None = None
        for m, (layer, tangent) in enumerate(zip(params, tangents, strict=True)):
            dot_a = affine(tangent, trace.inputs[m])
            if dot_x is not None:
                dot_a += dot_x @ layer["W"]
            if m < self.num_layers - 1:
                dot_x = self.transfers[m].vjp(trace.pre[m], dot_a, trace.post[m])
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
        out = self.transfers[-1]
        n, B = len(outputs), trace.pre[-1].shape[0]
        gram = np.empty((n, n))
        for j in range(n):
            curved = out.vjp(trace.pre[-1], outputs[j], trace.post[-1])
            for i in range(j + 1):
                gram[i, j] = gram[j, i] = float((outputs[i] * curved).sum()) / B
        return gram
