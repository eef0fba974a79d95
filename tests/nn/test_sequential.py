"""``locograd.nn``: the layer protocol, the linear view of a dense layer, and ``Sequential``.

Each check compares the layer objects with an independent form of the same quantity (the
explicit formulas, a hand-drawn generator, a second network built another way) bit for bit,
since the same float64 operations in the same order must give the same bits; each has a
negative control that shows it can fail.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import losses, nn

from ..rounding import same_bits
from ..strategies import architectures, net_and_batch, seeds


@given(arch=architectures(), seed=seeds(), bias=st.sampled_from(["zeros", "glorot"]))
def test_mlp_is_a_sequential_of_dense_layers_with_the_same_parameters(arch, seed: int, bias: str) -> None:
    """``MLP`` builds a ``Sequential`` of ``Dense`` layers; its ``init`` draws from ONE generator in layer
    order, ``W`` then (for the Glorot option) ``b`` per layer, exactly as this explicit loop does."""
    sizes, acts, loss = arch
    net = lg.MLP(sizes, acts, loss)
    assert isinstance(net, nn.Sequential) and all(isinstance(layer, nn.Dense) for layer in net.layers)
    assert [(layer.d_in, layer.d_out, layer.transfer.name) for layer in net.layers] == list(
        zip(sizes[:-1], sizes[1:], acts, strict=True)
    )
    params = net.init(seed=seed % 1000, bias=bias)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed % 1000)
    for layer, (d_in, d_out) in zip(params, itertools.pairwise(sizes), strict=True):
        limit = np.sqrt(6.0 / (d_in + d_out))
        W = rng.uniform(-limit, limit, size=(d_in, d_out))
        b = (
            rng.uniform(-np.sqrt(3 / d_out), np.sqrt(3 / d_out), d_out)
            if bias == "glorot"
            else np.zeros(d_out)
        )
        assert same_bits(layer, {"W": W, "b": b})
    layers = [nn.Dense(a, b, f, bias_init=bias) for a, b, f in zip(sizes[:-1], sizes[1:], acts, strict=True)]  # type: ignore[arg-type]
    assert same_bits(nn.Sequential(layers, loss).init(seed % 1000), params)
    other = net.init(seed=seed % 1000 + 1, bias=bias)  # type: ignore[arg-type]
    assert not same_bits(other, params)  # negative control: another seed draws other numbers


@given(arch=architectures(), seed=seeds())
def test_sequential_passes_equal_the_mlp_formulas_bit_for_bit(arch, seed: int) -> None:
    """Forward: ``A_m = X_m W_m + b_m``, ``Y_m = f_m(A_m)``; backward: ``G_{M-1}`` from the loss and
    ``G_{m-1} = f'(A_{m-1})^T (G_m W_m^T)``; weight gradients ``X^T G``, ``sum_n G_n``; written out here."""
    net, params, x, y = net_and_batch(arch, seed)
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    h = x
    G_ref = []
    for m, (layer, f) in enumerate(zip(params, net.transfers, strict=True)):
        a = h @ layer["W"]
        a += layer["b"]
        assert same_bits(trace.inputs[m], h) and same_bits(trace.pre[m], a)
        h = f.f(a)
        assert same_bits(trace.post[m], h)
    loss, g = net.loss_fn.mean_value_and_grad(trace.pre[-1], y)
    for m in range(net.num_layers - 1, -1, -1):
        G_ref.insert(0, g)
        assert same_bits(grads.W[m], trace.inputs[m].T @ g) and same_bits(grads.b[m], g.sum(axis=0))
        if m:
            g = net.transfers[m - 1].vjp(trace.pre[m - 1], g @ params[m]["W"].T, trace.post[m - 1])
    assert same_bits(grads.pre, G_ref) and same_bits(grads.loss, loss)
    swapped = [G_ref[-1], *G_ref[1:-1], G_ref[0]] if len(G_ref) > 1 else [2 * G_ref[0]]
    assert not same_bits(grads.pre, swapped)  # negative control


@given(B=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), seed=seeds())
def test_the_linear_view_of_a_dense_layer(B: int, d_in: int, d_out: int, seed: int) -> None:
    """``design(X) @ stack(W, b) = X W + b`` (to rounding: the bias enters the product's sum, so
    the error is within (d_in + 1) eps of ``|X||W| + |b|``), ``rows``/``unrows`` are the identity on
    ``(B, d_out)``, and ``unstack(stack(p))`` gives ``p`` back bit for bit."""
    layer = nn.Dense(d_in, d_out, "tanh")
    rng = np.random.default_rng(seed)
    params, out_shape = layer.init(rng, (d_in,), np.float64, None)
    params["b"] = rng.standard_normal(d_out)
    x = rng.standard_normal((B, d_in))
    _, cache = layer.forward(params, x)
    design, w = layer.design(cache.inputs), layer.stack(params)
    assert design.shape == (B, d_in + 1) and w.shape == (d_in + 1, d_out) and out_shape == (d_out,)
    bound = (d_in + 1) * np.finfo(np.float64).eps * (np.abs(x) @ np.abs(params["W"]) + np.abs(params["b"]))
    assert (np.abs(design @ w - cache.pre) <= bound).all()
    assert same_bits(layer.unrows(layer.rows(cache.pre), cache.inputs), cache.pre)
    assert same_bits(layer.unstack(w), params)
    without_bias = x @ params["W"]  # negative control: a design without its column of ones misses b
    assert not (np.abs(without_bias - cache.pre) <= bound).all()


def test_shapes_that_do_not_chain_are_refused_when_built() -> None:
    with pytest.raises(
        ValueError,
        match=r"^layers\[1\]: Dense\(5, 2, 'sigmoid'\) does not take the output of shape \(4,\) of layer 0",
    ):
        nn.Sequential([nn.Dense(3, 4, "tanh"), nn.Dense(5, 2, "sigmoid")], "sigmoid_cross_entropy")
    with pytest.raises(ValueError, match=r"the last layer must be a weight layer with transfer 'softmax'"):
        nn.Sequential([nn.Dense(3, 4, "tanh"), nn.Dense(4, 2, "sigmoid")], "softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"^layers: expected a non-empty list"):
        nn.Sequential([], "squared_error")
    with pytest.raises(TypeError, match=r"^layers\[0\]: expected a locograd.nn layer, got dict"):
        nn.Sequential([{"W": 1}], "squared_error")  # type: ignore[list-item]
    net = nn.Sequential([nn.Dense(3, 4, "tanh"), nn.Dense(4, 2, "sigmoid")], "sigmoid_cross_entropy")
    assert net.shapes == [(3,), (4,), (2,)]  # negative control: shapes that chain


def test_a_layer_names_itself_when_its_input_is_wrong() -> None:
    layer = nn.Dense(3, 4, "tanh")
    params, _ = layer.init(np.random.default_rng(0), (3,), np.float32, None)
    with pytest.raises(
        ValueError, match=r"^x: expected shape \(B, 3\) for Dense\(3, 4, 'tanh'\), got \(2, 5\)$"
    ):
        layer.forward(params, np.zeros((2, 5), np.float32))
    with pytest.raises(
        TypeError,
        match=r"^x: expected dtype float32 like the parameters for Dense\(3, 4, 'tanh'\), got float64$",
    ):
        layer.forward(params, np.zeros((2, 3)))
    with pytest.raises(
        ValueError, match=r"^in_shape: Dense\(3, 4, 'tanh'\) expects inputs of shape \(3,\), got \(5,\)$"
    ):
        layer.init(np.random.default_rng(0), (5,), np.float32, None)
    with pytest.raises(ValueError, match=r"^d_out: expected an integer >= 1, got 0$"):
        nn.Dense(3, 0)
    y, _ = layer.forward(params, np.zeros((2, 3), np.float32))  # negative control
    assert y.shape == (2, 4) and y.dtype == np.float32


def test_losses_are_objects_with_metrics_and_sampling() -> None:
    """Each loss is a class; the registry returns its instance.  Softmax accuracy is argmax against
    the label; the sigmoid's compares each unit's sign with its target's side of 1/2."""
    assert isinstance(losses.get("softmax_cross_entropy"), losses.SoftmaxCrossEntropy)
    soft = losses.SoftmaxCrossEntropy()
    a = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert float(soft.metrics(a, np.array([0, 1, 0, 1]))["accuracy"]) == 0.5
    assert float(soft.metrics(a, np.array([0, 1, 2, 0]))["accuracy"]) == 1.0  # negative control
    sig = losses.SigmoidCrossEntropy()
    assert float(sig.metrics(np.array([[1.0, -1.0]]), np.array([[0.9, 0.2]]))["accuracy"]) == 1.0
    assert float(sig.metrics(np.array([[1.0, -1.0]]), np.array([[0.2, 0.2]]))["accuracy"]) == 0.5
    assert losses.SquaredError().metrics(a, a) == {}
    out = soft.transfer.f(a)
    labels = soft.sample(np.random.default_rng(0), out)
    assert labels.shape == (4,) and labels.dtype.kind == "i" and ((labels >= 0) & (labels < 3)).all()
    many = soft.sample(np.random.default_rng(1), np.tile(out[:1], (20000, 1)))
    assert np.allclose(np.bincount(many, minlength=3) / 20000, out[0], atol=0.02)  # the model's distribution


class Negate(nn.Layer):
    """A layer without weights, ``Y = -X``: it passes gradients and has no local problem."""

    def __repr__(self) -> str:
        return "Negate()"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def init(self, rng, in_shape, dtype, device):
        return {}, tuple(in_shape)

    def check_params(self, params, name="params"):
        if params != {}:
            raise ValueError(f"{name}: expected {{}}, got {params!r}")
        return params

    def check_input(self, x, dtype, name="x", where=""):
        return x

    def _forward(self, params, x):
        y = -x
        return y, nn.LayerCache(x, None, y)

    def _backward(self, params, cache, g_y, *, input_grad=True, param_grads=True):
        return (-g_y if input_grad else None), ({} if param_grads else None)


@given(seed=seeds())
def test_a_layer_without_weights_passes_gradients_through_sequential(seed: int) -> None:
    """``Dense, Negate, Dense`` is the MLP whose second weight matrix is negated: the same pre-activations
    and ``G_m``, and ``dL/dW`` of the second layer negated, bit for bit (negation is exact)."""
    rng = np.random.default_rng(seed)
    net = nn.Sequential(
        [nn.Dense(4, 3, "tanh"), Negate(), nn.Dense(3, 2, "sigmoid")], "sigmoid_cross_entropy"
    )
    assert net.weight_layers == [0, 2] and [t.name for t in net.transfers] == ["tanh", "sigmoid"]
    params = net.init(seed=seed % 1000)
    assert params[1] == {}
    mlp = lg.MLP([4, 3, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    mlp_params = [params[0], {"W": -params[2]["W"], "b": params[2]["b"]}]
    x, y = rng.random((5, 4)), rng.random((5, 2))
    trace, ref = net.forward(params, x), mlp.forward(mlp_params, x)
    assert trace.pre[1] is None and same_bits(trace.pre[2], ref.pre[1])
    grads, ref_grads = net.backward(params, trace, y), mlp.backward(mlp_params, ref, y)
    assert same_bits(grads.pre[0], ref_grads.pre[0]) and same_bits(grads.pre[2], ref_grads.pre[1])
    assert same_bits(grads.W[0], ref_grads.W[0]) and same_bits(grads.W[2], -ref_grads.W[1])
    assert grads.W[1] is None and grads.pre[1] is None
    loss, as_params = net.value_and_grad(params, x, y)
    assert as_params[1] == {} and same_bits(as_params[2]["W"], grads.W[2]) and loss == float(grads.loss)
    assert not same_bits(grads.W[2], ref_grads.W[1])  # negative control: the sign does matter
