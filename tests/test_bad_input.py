"""Bad input gets a clear ValueError/TypeError naming the argument, the expected and the received."""

from __future__ import annotations

import numpy as np
import pytest

import locograd as lg
from locograd import losses, nn
from locograd._fast.passes import backprop_loss_and_grads


@pytest.fixture
def net() -> lg.MLP:
    return lg.MLP([3, 4, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy")


def test_x_width_mismatch(net: lg.MLP) -> None:
    """The message names the layer that refuses the input: its index and kind."""
    with pytest.raises(
        ValueError, match=r"^x: expected shape \(B, 3\) for layer 0 \(Dense\(3, 4, 'tanh'\)\), got \(5, 4\)$"
    ):
        net.forward(net.init(), np.zeros((5, 4)))


def test_x_wrong_ndim(net: lg.MLP) -> None:
    with pytest.raises(ValueError, match=r"x: expected a 2-D array, got shape \(3,\)"):
        net.forward(net.init(), np.zeros(3))


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3), dtype=object), np.zeros((2, 3), dtype=bool)]
)
def test_integer_object_bool_inputs(net: lg.MLP, bad: np.ndarray) -> None:
    with pytest.raises(
        TypeError, match=rf"x: expected a floating dtype \(float32 or float64\), got {bad.dtype}"
    ):
        net.forward(net.init(), bad)


def test_x_dtype_must_match_params(net: lg.MLP) -> None:
    with pytest.raises(
        TypeError,
        match=r"x: expected dtype float32 like the parameters for layer 0 \(Dense\(3, 4, 'tanh'\)\), got float64",
    ):
        net.forward(net.init(dtype=np.float32), np.zeros((2, 3)))


def test_list_input_is_rejected(net: lg.MLP) -> None:
    with pytest.raises(TypeError, match=r"x: expected a numpy\.ndarray or cupy\.ndarray, got list"):
        net.forward(net.init(), [[0.0, 0.0, 0.0]])


def test_y_shape_mismatch(net: lg.MLP) -> None:
    params = net.init()
    x = np.zeros((5, 3))
    trace = net.forward(params, x)
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 2\), got \(5, 3\)"):
        net.backward(params, trace, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 2\), got \(4, 2\)"):
        net.loss(params, x, np.zeros((4, 2)))


def test_y_integer_dtype_outside_softmax(net: lg.MLP) -> None:
    params = net.init()
    with pytest.raises(TypeError, match="y: expected a floating dtype"):
        net.loss(params, np.zeros((5, 3)), np.zeros((5, 2), dtype=int))


def test_softmax_labels_bad_shape_or_range() -> None:
    fn = losses.get("softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"y: integer labels must have shape \(2,\), got \(2, 1\)"):
        fn.per_example(np.zeros((2, 3)), np.zeros((2, 1), dtype=int))
    with pytest.raises(ValueError, match=r"y: integer labels must lie in \[0, 3\)"):
        fn.per_example(np.zeros((2, 3)), np.array([0, 3]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"sizes": [3], "activations": [], "loss": "squared_error"},
            "sizes: expected at least two positive integers",
        ),
        (
            {"sizes": [3, 0], "activations": ["identity"], "loss": "squared_error"},
            "sizes: expected at least two",
        ),
        (
            {"sizes": [3, 2], "activations": ["tanh", "identity"], "loss": "squared_error"},
            "activations: expected 1 transfer names",
        ),
        (
            {"sizes": [3, 2], "activations": "identity", "loss": "squared_error"},
            "activations: expected 1 transfer names",
        ),
        (
            {"sizes": [3, 2], "activations": ["gelu"], "loss": "squared_error"},
            "transfer: unknown name 'gelu'; valid names are",
        ),
        (
            {"sizes": [3, 2], "activations": ["identity"], "loss": "hinge"},
            "loss: unknown name 'hinge'; valid names are squared_error",
        ),
        (
            {"sizes": [3, 2], "activations": ["tanh"], "loss": "sigmoid_cross_entropy"},
            "activations: the last activation must be 'sigmoid' for loss 'sigmoid_cross_entropy', got 'tanh'",
        ),
    ],
)
def test_bad_network_definitions(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lg.MLP(**kwargs)


def test_params_that_do_not_fit(net: lg.MLP) -> None:
    x = np.zeros((2, 3))
    other = lg.MLP([3, 5, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy").init()
    with pytest.raises(ValueError, match=r"params\[0\]\['W'\]: expected shape \(3, 4\), got \(3, 5\)"):
        net.forward(other, x)
    with pytest.raises(ValueError, match="params: expected a list of 2 layer dicts, got 1 layers"):
        net.forward(net.init()[:1], x)
    with pytest.raises(TypeError, match=r"params\[1\]: expected a dict with keys 'W' and 'b', got \['W'\]"):
        p = net.init()
        net.forward([p[0], {"W": p[1]["W"]}], x)
    p = net.init()
    p[1]["b"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"params\[1\]\['b'\]: expected shape \(2,\), got \(3,\)"):
        net.forward(p, x)
    p = net.init()
    p[1] = {"W": p[1]["W"].astype(np.float32), "b": p[1]["b"].astype(np.float32)}
    with pytest.raises(
        TypeError, match=r"params\[1\]\['W'\]: expected dtype float64 like params\[0\], got float32"
    ):
        net.forward(p, x)
    with pytest.raises(ValueError, match="params: expected a list of 2 layer dicts, got dict"):
        net.forward({"W": 1}, x)


def test_init_bad_arguments(net: lg.MLP) -> None:
    with pytest.raises(TypeError, match="dtype: expected float32 or float64, got int64"):
        net.init(dtype=np.int64)
    with pytest.raises(ValueError, match=r"bias: expected one of \('zeros', 'glorot'\), got 'ones'"):
        net.init(bias="ones")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device: expected one of"):
        net.init(device="tpu")


def test_trace_from_another_net(net: lg.MLP) -> None:
    with pytest.raises(ValueError, match="trace: expected a Trace of 2 layers"):
        net.backward(net.init(), "not a trace", np.zeros((1, 2)))  # type: ignore[arg-type]


def test_dense_layer_bad_gradient_shape() -> None:
    params = {"W": np.zeros((2, 3)), "b": np.zeros(3)}
    layer = nn.Dense(2, 3, "tanh")
    _, cache = layer.forward(params, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"g_pre: expected shape \(4, 3\) like cache.pre, got \(4, 2\)"):
        layer.backward_from_pre(params, cache, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"g_y: expected shape \(4, 3\) like cache.post, got \(4, 2\)"):
        layer.backward(params, cache, np.zeros((4, 2)))


@pytest.mark.parametrize(
    "call",
    [
        lambda net, p, x, y: net.forward(p, x),
        lambda net, p, x, y: net.loss(p, x, y),
        lambda net, p, x, y: net.value_and_grad(p, x, y),
        lambda net, p, x, y: backprop_loss_and_grads(net, p, x, y),
    ],
    ids=["forward", "loss", "value_and_grad", "backprop_loss_and_grads"],
)
def test_empty_batch_is_refused(net: lg.MLP, call) -> None:
    """Before: 0 rows gave a NaN loss with NumPy's "Mean of empty slice" RuntimeWarning (an error
    under this suite's filterwarnings), and forward returned empty arrays in silence."""
    with pytest.raises(
        ValueError, match=r"x: expected a batch of at least one row \(B >= 1\), got shape \(0, 3\)"
    ):
        call(net, net.init(), np.zeros((0, 3)), np.zeros((0, 2)))
    loss, _ = net.value_and_grad(net.init(), np.zeros((1, 3)), np.full((1, 2), 0.5))  # one row: fine
    assert np.isfinite(loss)
