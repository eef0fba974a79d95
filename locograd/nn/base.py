r"""The layer protocol, and the linear view of a weight layer.

A layer is a small object that holds its hyperparameters (sizes, transfer) and no arrays;
its parameters live in a dict the caller keeps, as in Flax and optax.  Every layer has

* ``init(rng, in_shape, dtype, device) -> (params, out_shape)``: draws its parameters from
  one NumPy generator (:meth:`locograd.nn.Sequential.init` passes one down in layer order);
* ``forward(params, x) -> (y, cache)``: the output and a :class:`LayerCache` (an inspectable
  NamedTuple holding the input, the pre-activation and the output);
* ``backward(params, cache, g_y) -> (g_x, grads)``: from :math:`\partial L/\partial Y`, the
  input gradient :math:`\partial L/\partial X` and the parameter gradients (a dict like params).

A **weight layer** (:class:`WeightLayer`) computes :math:`Y = f(A)` with :math:`A` linear in
its weights, and owns its transfer :math:`f`, since LocoProp needs :math:`f` per layer.  It
exposes the **linear view** that LocoProp and K-FAC consume:

.. math:: A_{\text{rows}} = \tilde X \tilde W, \qquad \tilde X = [X, 1]\ (\text{rows} \times (d_{in}+1)),
          \qquad \tilde W = [W; b]\ ((d_{in}+1) \times d_{out}),

through :meth:`WeightLayer.design`, :meth:`WeightLayer.rows` / :meth:`WeightLayer.unrows` and
:meth:`WeightLayer.stack` / :meth:`WeightLayer.unstack`, and as operations that never form
:math:`\tilde X`: :meth:`WeightLayer.linear` (:math:`\tilde X \tilde W`), its adjoint
:meth:`WeightLayer.linear_transpose` (:math:`\tilde X^\top R`) and :meth:`WeightLayer.design_gram`
(:math:`\tilde X^\top \tilde X`).  A dense layer has one row per example;
a convolution has one per example and output position.  The local solvers and the Kronecker
blocks are written once on this view.

The public methods validate their arguments; the underscored ones (``_forward``,
``_backward``, ``_backward_from_pre``) are the maths on arrays already checked, which
:class:`~locograd.nn.Sequential` calls after checking once at its own boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np

from ..backend import Array, check_float_array
from ..transfer import Transfer

Shape = tuple[int, ...]
"""The shape of one example (no batch axis), e.g. ``(784,)``."""

LayerParams = dict[str, Array]
"""One layer's parameters, e.g. ``{"W": (d_in, d_out), "b": (d_out,)}``; ``{}`` for a layer without weights."""


class LayerCache(NamedTuple):
    """What one layer's forward pass keeps for its backward pass (and for LocoProp).

    Attributes:
        inputs: the layer's input ``X`` ``(B, *in_shape)``.
        pre: the pre-activation ``A`` ``(B, *out_shape)`` of a weight layer; ``None`` otherwise.
        post: the output ``Y`` ``(B, *out_shape)`` (``f(A)`` for a weight layer).
        saved: what the forward pass computed on the way that its backward pass reuses: a
            convolution's patch rows (:meth:`Layer.saved_shape`); ``None`` for the other layers.
    """

    inputs: Array
    pre: Array | None
    post: Array
    saved: Array | None = None


class Layer(ABC):
    """A layer: hyperparameters only; parameters are passed in.

    Subclasses implement :meth:`output_shape`, :meth:`init`,
    :meth:`check_params`, :meth:`_forward` and :meth:`_backward`.
    """

    has_weights: bool = False
    """Whether the layer has parameters and a local problem."""

    @abstractmethod
    def output_shape(self, in_shape: Shape) -> Shape:
        """The shape of one output example for one input example of shape ``in_shape``.

        Raises:
            ValueError: the layer does not accept inputs of that shape.
        """

    @abstractmethod
    def init(
        self, rng: np.random.Generator, in_shape: Shape, dtype: Any, device: str | None
    ) -> tuple[LayerParams, Shape]:
        """Draw the parameters from ``rng`` on the host in float64, then cast to ``dtype`` and move to ``device``.

        Returns:
            ``(params, out_shape)``.
        """

    @abstractmethod
    def check_params(self, params: object, name: str = "params") -> LayerParams:
        """Check that ``params`` fits this layer (keys, shapes, one dtype, one backend); return it."""

    @abstractmethod
    def check_input(self, x: object, dtype: Any, name: str = "x", where: str = "") -> Array:
        """Check that ``x`` is a floating batch ``(B, *in_shape)`` of ``dtype``; return it.

        ``where`` names the layer in messages (default: the layer itself), e.g. ``"layer 0 (Dense(...))"``.
        """

    @abstractmethod
    def _forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        """:meth:`forward` on checked arguments."""

    @abstractmethod
    def _backward(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_y: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        """:meth:`backward` on checked arguments; ``input_grad``/``param_grads`` skip either half."""

    def forward(self, params: LayerParams, x: Array) -> tuple[Array, LayerCache]:
        """The output ``Y`` and the :class:`LayerCache` of one batch ``x`` ``(B, *in_shape)``."""
        params = self.check_params(params)
        x = self.check_input(x, _dtype_of(params, x))
        return self._forward(params, x)

    def backward(self, params: LayerParams, cache: LayerCache, g_y: Array) -> tuple[Array, LayerParams]:
        r"""``(g_x, grads)``: :math:`\partial L/\partial X` and the parameter gradients, from :math:`\partial L/\partial Y`.

        Raises:
            ValueError, TypeError: ``cache`` not a :class:`LayerCache`, or ``g_y`` not an array of the
                shape and dtype of ``cache.post``.
        """
        params = self.check_params(params)
        _check_like(g_y, cache, "post", "g_y")
        self.check_saved(cache)
        g_x, grads = self._backward(params, cache, g_y)
        assert g_x is not None and grads is not None  # both halves were asked for
        return g_x, grads

    def saved_shape(self, in_shape: Shape) -> tuple[int, int] | None:
        """Per example, the shape of :attr:`LayerCache.saved` (rows per example, columns); ``None``: the layer saves nothing."""
        return None

    def check_saved(self, cache: LayerCache, saved: Array | None = None, name: str = "cache.saved") -> None:
        """``saved`` (default ``cache.saved``) ``None``, or of the shape and dtype this layer's forward
        pass saves for ``cache.inputs`` (shapes only: its values are the forward pass's to vouch for).

        Raises:
            ValueError: e.g. ``"cache.saved: expected shape (50, 9) and dtype float64 like this layer's
                forward on cache.inputs, got (49, 9) float64"``.
        """
        saved = cache.saved if saved is None else saved
        if saved is None:
            return
        inputs = cache.inputs
        per_example = self.saved_shape(tuple(inputs.shape[1:]))
        want = None if per_example is None else (inputs.shape[0] * per_example[0], per_example[1])
        shape, dtype = getattr(saved, "shape", None), getattr(saved, "dtype", None)
        if want is None or shape is None or tuple(shape) != want or dtype != inputs.dtype:
            what = "None" if want is None else f"shape {want} and dtype {inputs.dtype}"
            got = f"{tuple(shape)} {dtype}" if shape is not None else type(saved).__name__
            raise ValueError(f"{name}: expected {what} like this layer's forward on cache.inputs, got {got}")

    def jvp(self, params: LayerParams, tangent: LayerParams, cache: LayerCache, dot_x: Array | None) -> Array:
        r"""Forward-mode derivative: :math:`\dot A` of a weight layer along ``tangent`` (params-shaped) and the
        input's ``dot_x`` (``None``: a constant input); :math:`\dot Y` of a layer without weights.

        Raises:
            TypeError: a layer that does not implement it.
        """
        raise TypeError(f"jvp: {self!r} has no forward-mode derivative")

    def describe(self, index: int) -> str:
        """How messages name the layer at ``index`` of a network: ``"layer 2 (Dense(500, 250, 'tanh'))"``."""
        return f"layer {index} ({self!r})"


class WeightLayer(Layer):
    r"""A layer :math:`Y = f(A)` whose pre-activation is linear in its weights: :math:`A_{\text{rows}} = \tilde X \tilde W`."""

    has_weights = True
    transfer: Transfer

    @abstractmethod
    def _backward_from_pre(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_pre: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        r"""``(g_x, grads)`` from :math:`G = \partial L/\partial A` on checked arguments."""

    @abstractmethod
    def design(self, inputs: Array) -> Array:
        r"""The design matrix :math:`\tilde X` ``(rows, d_in + 1)`` of a batch of inputs."""

    @abstractmethod
    def rows(self, a: Array) -> Array:
        """A pre-activation-shaped array ``(B, *out_shape)`` as rows ``(rows, d_out)``, matching :meth:`design`."""

    @abstractmethod
    def unrows(self, r: Array, inputs: Array) -> Array:
        """The inverse of :meth:`rows`: rows ``(rows, d_out)`` back to the pre-activation's shape for ``inputs``."""

    @abstractmethod
    def linear(self, inputs: Array, params: LayerParams) -> Array:
        r"""The pre-activation rows :math:`\tilde X \tilde W` ``(rows, d_out)`` of params-shaped weights on ``inputs``.

        Linear in ``params``: LocoProp applies it to displacements :math:`D`, giving :math:`\tilde X D`.
        """

    @abstractmethod
    def linear_transpose(self, inputs: Array, r: Array) -> LayerParams:
        r""":math:`\tilde X^\top R` in the params structure, for rows ``r`` ``(rows, d_out)``: the adjoint of :meth:`linear`."""

    @abstractmethod
    def design_gram(self, inputs: Array) -> Array:
        r""":math:`\tilde X^\top \tilde X` ``(d_in + 1, d_in + 1)``, in the row order of :meth:`stack`."""

    def for_inputs(self, inputs: Array, saved: Array | None = None) -> WeightLayer:
        r"""This layer, for many passes of its linear view on the same ``inputs``: LocoProp's K inner steps.

        A layer whose design is not the input itself (a convolution's patches) returns a copy that
        holds it, formed once (or ``saved``, the forward pass's :attr:`LayerCache.saved`); a dense
        layer returns itself.
        """
        return self

    @property
    @abstractmethod
    def matrix_shape(self) -> tuple[int, int]:
        """``(d_in, d_out)``: the shape of the weight matrix :meth:`weight_matrix`; :math:`\\tilde W` has one row more."""

    @abstractmethod
    def weight_matrix(self, params: LayerParams) -> Array:
        """The weights as the ``(d_in, d_out)`` matrix of the linear view (``params["W"]`` of a dense layer)."""

    @abstractmethod
    def stack(self, params: LayerParams) -> Array:
        r"""The stacked weights :math:`\tilde W = [W; b]` ``(d_in + 1, d_out)``."""

    @abstractmethod
    def unstack(self, w: Array) -> LayerParams:
        r"""The inverse of :meth:`stack`: params from :math:`\tilde W`."""

    def _backward(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_y: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        g_pre = self.transfer.vjp(cache.pre, g_y, cache.post)
        return self._backward_from_pre(params, cache, g_pre, input_grad=input_grad, param_grads=param_grads)

    def pre_activation_grad(self, cache: LayerCache, g_y: Array) -> Array:
        r""":math:`G = \partial L/\partial A = f'(A)^\top \partial L/\partial Y`, through the layer's transfer.

        Raises:
            ValueError, TypeError: ``g_y`` not an array of the shape and dtype of ``cache.post``.
        """
        _check_like(g_y, cache, "post", "g_y")
        self.check_saved(cache)
        return self.transfer.vjp(cache.pre, g_y, cache.post)

    def backward_from_pre(
        self,
        params: LayerParams,
        cache: LayerCache,
        g_pre: Array,
        *,
        input_grad: bool = True,
        param_grads: bool = True,
    ) -> tuple[Array | None, LayerParams | None]:
        r"""``(g_x, grads)`` from :math:`G = \partial L/\partial A` (the form a loss or LocoProp gives).

        Args:
            params: the layer's parameters.
            cache: from :meth:`forward`.
            g_pre: :math:`G`, of the shape and dtype of ``cache.pre``.
            input_grad: compute :math:`\partial L/\partial X` (the first layer needs none).
            param_grads: compute the parameter gradients.

        Returns:
            ``(g_x or None, grads or None)``.
        """
        params = self.check_params(params)
        _check_like(g_pre, cache, "pre", "g_pre")
        self.check_saved(cache)
        return self._backward_from_pre(params, cache, g_pre, input_grad=input_grad, param_grads=param_grads)


def _dtype_of(params: LayerParams, x: object) -> Any:
    """The parameters' dtype (any array's), or for a layer without parameters the input's."""
    for value in params.values():
        return value.dtype
    return getattr(x, "dtype", None)


def _check_like(g: Array, cache: object, part: str, name: str) -> None:
    """``g`` a floating array of the shape and dtype of ``cache.<part>`` (never broadcast, never upcast)."""
    if not isinstance(cache, LayerCache):
        raise TypeError(f"cache: expected a LayerCache from the layer's forward, got {type(cache).__name__}")
    like = getattr(cache, part)
    g = check_float_array(g, name)
    if g.shape != like.shape:
        raise ValueError(
            f"{name}: expected shape {tuple(like.shape)} like cache.{part}, got {tuple(g.shape)}"
        )
    if g.dtype != like.dtype:
        raise TypeError(f"{name}: expected dtype {like.dtype} like the cache, got {g.dtype} (never upcast)")
