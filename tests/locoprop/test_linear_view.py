"""The local problem is stated on a weight layer's linear view: every solver goes through the
layer's ``linear``, ``linear_transpose`` and ``design_gram``, so a new weight layer needs no solver
of its own.  A layer whose design is ``[2X, 1]`` must give, bit for bit, what a dense layer gives on
inputs ``2X`` (doubling is exact in binary floating point, so every product and sum doubles exactly);
the negative control shows the result does depend on the view."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from locograd import locoprop, nn, optim
from locograd.locoprop import GD, LocalProblem

from ..rounding import same_bits
from ..strategies import layer_problems


class Doubled(nn.Dense):
    """A dense layer whose design is ``[2X, 1]``: its view, written with the doubling inside."""

    def linear(self, inputs, params):
        return (2 * inputs) @ params["W"] + params["b"]

    def linear_transpose(self, inputs, r):
        return {"W": (2 * inputs).T @ r, "b": r.sum(axis=0)}

    def design_gram(self, inputs):
        return super().design_gram(2 * inputs)


def problems(ing, variant: str) -> tuple[LocalProblem, LocalProblem, LocalProblem]:
    """The same layer as (Doubled on X, Dense on 2X, Dense on X)."""
    X, W, b, G = ing["X"], ing["W"], ing["b"], ing["G"]
    anchor = {"W": W, "b": b}
    transfer = ing["transfer"] if variant == "M" else None
    layer = Doubled(*W.shape)
    pre = layer.linear(X, anchor)
    offset = ing["gamma"] * G
    viewed = LocalProblem.from_offset(X, pre, offset, transfer, variant, anchor, ing["eta"], layer=layer)
    doubled = LocalProblem.from_offset(2 * X, pre, offset, transfer, variant, anchor, ing["eta"])
    plain = LocalProblem.from_offset(X, pre, offset, transfer, variant, anchor, ing["eta"])
    return viewed, doubled, plain


@given(ing=layer_problems(max_batch=12, max_width=6, eta="some"), variant=st.sampled_from(["S", "M"]))
def test_every_solver_runs_on_the_layers_linear_view(ing, variant: str) -> None:
    viewed, doubled, plain = problems(ing, variant)
    solvers = [
        lambda p: locoprop.solve_gd(p, GD(steps=3, lr=0.01))[0],
        lambda p: locoprop.solve_gd(p, GD(steps=3, inner=optim.adam(1e-2)))[0],
        lambda p: locoprop.gradient(p, p.anchor),
        lambda p: locoprop.objective_change(p, locoprop.solve_gd(p, GD(steps=2, lr=0.01))[0]),
    ]
    if variant == "S":
        solvers.append(lambda p: locoprop.solve_exact_s(p))
    else:
        solvers.append(lambda p: locoprop.solve_exact_m(p)[0])
    for solve in solvers:
        assert same_bits(solve(viewed), solve(doubled))
    moved = [locoprop.solve_gd(p, GD(steps=3, lr=0.01))[0] for p in (viewed, plain)]
    assert not same_bits(*moved) or not np.abs(ing["G"]).any()  # negative control: the view matters


def test_a_problem_refuses_a_layer_that_does_not_fit() -> None:
    rng = np.random.default_rng(0)
    X, anchor = rng.random((4, 3)), {"W": rng.random((3, 2)), "b": np.zeros(2)}
    args = (X, X @ anchor["W"], np.ones((4, 2)), None, "S", anchor, 1.0)
    with pytest.raises(
        ValueError, match=r"^layer: Dense\(3, 5, 'identity'\) does not fit the anchor's shape \(3, 2\)$"
    ):
        LocalProblem.from_offset(*args, layer=nn.Dense(3, 5))
    with pytest.raises(TypeError, match=r"^layer: expected a locograd.nn weight layer or None, got str$"):
        LocalProblem.from_offset(*args, layer="dense")  # type: ignore[arg-type]
    assert LocalProblem.from_offset(*args, layer=nn.Dense(3, 2)).view.d_out == 2  # negative control
    assert isinstance(LocalProblem.from_offset(*args).view, nn.Dense)  # None: a Dense of the anchor's shape
