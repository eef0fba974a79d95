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
