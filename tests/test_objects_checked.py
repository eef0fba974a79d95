"""Objects are checked against what they serve before any work: an optimizer's parameters, the
updates added to them, a rate given to a transformation without one (each refusal with its control)."""

from __future__ import annotations

import numpy as np
import pytest

from locograd import optim


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: optim.apply_updates({"W": "ab"}, {"W": "cd"}),
            TypeError,
            r"^params\['W'\]: expected a floating numpy.ndarray or cupy.ndarray, got str$",
        ),
        (
            lambda: optim.scale(2.0).update(
                {"w": np.ones(2)}, optim.scale(2.0).init({"w": np.ones(2)}), lr="x"
            ),
            ValueError,
            r"^lr: expected None or a finite number >= 0, got str 'x'$",
        ),
        (
            lambda: optim.chain(optim.scale(2.0)).update(
                {"w": np.ones(2)}, optim.chain(optim.scale(2.0)).init({"w": np.ones(2)}), lr=-1.0
            ),
            ValueError,
            r"^lr: expected None or a finite number >= 0, got -1",
        ),
        (
            lambda: optim.adam().init(None),
            TypeError,
            r"^params: expected a floating numpy.ndarray or cupy.ndarray, got NoneType$",
        ),
        (
            lambda: optim.rmsprop_tf1().init({}),
            TypeError,
            r"^params: expected a tree of floating arrays for rmsprop_tf1's state, got \{\}$",
        ),
        (
            lambda: optim.sgd().init([{"W": [1, 2]}]),
            TypeError,
            r"^params\[0\]\['W'\]\[0\]: expected a floating numpy.ndarray or cupy.ndarray, got int$",
        ),
    ],
)
def test_what_an_optimizer_cannot_use_is_refused_naming_it(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def test_the_controls_pass() -> None:
    w = {"W": np.ones(2)}
    assert optim.apply_updates(w, {"W": np.ones(2)})["W"].tolist() == [2.0, 2.0]
    assert optim.scale(2.0).update(w, optim.scale(2.0).init(w), lr=0.5)[0]["W"].tolist() == [2.0, 2.0]
    for name in ("sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop", "rmsprop_tf1"):
        assert optim.get(name, lr=0.1).init([w, {}]) is not None  # a layer without weights is fine


def test_a_solver_prints_in_one_short_line_for_messages() -> None:
    """A non-finite LocoProp step names its solver: before, GD's repr embedded the inner optimizer's
    functions with their memory addresses (650 characters)."""
    from locograd import locoprop
    from locograd.optim.schedules import released_inner_factor

    text = repr(locoprop.GD(steps=10, inner=optim.rmsprop_tf1(1e-5), lr_factor=released_inner_factor))
    assert text == "GD(steps=10, lr=None, inner=rmsprop_tf1(lr=1e-05), lr_factor=released_inner_factor)"
    assert "0x" not in text and len(text) < 120
    assert repr(locoprop.GD(steps=2, lr=0.1)) == "GD(steps=2, lr=0.1, inner=None, lr_factor=None)"


@pytest.mark.parametrize("kind", ["KFAC", "Shampoo"])
def test_to_dense_refuses_the_state_of_another_network(kind: str) -> None:
    """Before: the state of a network of the same depth but other widths gave a 24x24 matrix where a
    16x16 one was expected, and a state with fewer layers an IndexError."""
    from locograd import MLP
    from locograd.errors import StateMismatchError

    ours, other = (MLP([4, w, 2], ["tanh", "sigmoid"], "sigmoid_cross_entropy") for w in (3, 5))
    x, y = np.random.default_rng(0).random((6, 4)), np.random.default_rng(1).random((6, 2))

    def stepped(net: MLP) -> tuple[object, object]:
        opt = getattr(optim, kind)(net)
        params = net.init(seed=0, dtype=np.float64)
        return opt, opt.step(params, x, y, opt.init(params))[1]

    opt, state = stepped(ours)
    _, foreign = stepped(other)
    with pytest.raises(
        StateMismatchError,
        match=r"^state\.\w\[0\]: expected shape \(3, 3\) for weight layer 0 .* got \(5, 5\)",
    ):
        opt.to_dense(foreign, 0)
    short = state._replace(**{f: v[:1] for f, v in state._asdict().items() if isinstance(v, list)})
    with pytest.raises(StateMismatchError, match=r"expected one entry per weight layer \(2\), got 1"):
        opt.to_dense(short, 1)
    n = 5 * 3 if kind == "KFAC" else 4 * 3  # the control: this network's own state
    assert opt.to_dense(state, 0).shape == (n, n)


def test_an_in_place_update_of_read_only_arrays_is_refused_naming_them() -> None:
    params = {"W": np.ones(3)}
    adam = optim.adam()
    state = adam.init(params)
    params["W"].flags.writeable = False
    with pytest.raises(ValueError, match=r"^params: holds a read-only array; update_inplace writes the step"):
        adam.update_inplace({"W": np.ones(3)}, state, params, lr=0.1)
    writable = {"W": np.ones(3)}  # the control
    adam.update_inplace({"W": np.ones(3)}, state, writable, lr=0.1)
    assert (writable["W"] < 1).all()
