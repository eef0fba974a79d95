"""Bounded hypothesis strategies: no NaN, no infinities, no subnormals."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from locograd import transfer

ELEMENTWISE = [n for n in transfer.NAMES if n != "softmax"]
HIDDEN = list(transfer.NAMES)  # any transfer may be a hidden activation
LOSS_OUTPUT = {
    "squared_error": "identity",
    "sigmoid_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "softmax",
}


def floats(bound: float = 3.0) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def arrays(shape: Any, bound: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays with entries in [-bound, bound]."""
    return hnp.arrays(np.float64, shape, elements=floats(bound))


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


@st.composite
def matrices(draw: st.DrawFn, max_rows: int = 8, max_cols: int = 6, bound: float = 3.0) -> np.ndarray:
    shape = (draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols)))
    return draw(arrays(shape, bound))


def away_from_kink(a: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """Push entries out of (-margin, margin): relu/leaky_relu are not differentiable at 0."""
    return np.where(np.abs(a) < margin, np.where(a < 0, -margin, margin), a)


@st.composite
def architectures(
    draw: st.DrawFn, max_depth: int = 5, max_width: int = 16
) -> tuple[list[int], list[str], str]:
    """(sizes, activations, loss) with depth 1..max_depth and widths 1..max_width."""
    depth = draw(st.integers(1, max_depth))
    sizes = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    loss = draw(st.sampled_from(sorted(LOSS_OUTPUT)))
    if loss == "softmax_cross_entropy":
        sizes[-1] = max(sizes[-1], 2)
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth - 1)]
    return sizes, [*hidden, LOSS_OUTPUT[loss]], loss


@st.composite
def layer_problems(
    draw: st.DrawFn,
    transfers: list[str] | None = None,
    max_batch: int = 64,
    max_width: int = 32,
    eta: str = "any",
) -> dict[str, Any]:
    """One layer's LocoProp ingredients: frozen input X, anchor {W, b}, upstream G = dL/dA, gamma, eta.

    Shapes B 1..max_batch, d_in and d_out 1..max_width; the bias is zero or random; eta is
    None ("none"), a positive float ("some"), or either ("any").  G carries the 1/B of a batch-mean loss.
    """
    B = draw(st.integers(1, max_batch))
    d_in = draw(st.integers(1, max_width))
    name = draw(st.sampled_from(transfers or HIDDEN))
    d_out = draw(st.integers(2 if name == "softmax" else 1, max_width))
    rng = np.random.default_rng(draw(seeds()))
    W = rng.uniform(-1, 1, (d_in, d_out)) / np.sqrt(d_in)
    b = rng.uniform(-0.5, 0.5, d_out) if draw(st.booleans()) else np.zeros(d_out)
    X = rng.uniform(-1, 1, (B, d_in))
    G = rng.standard_normal((B, d_out)) / B
    if eta == "none":
        eta_value = None
    else:
        eta_choices = st.floats(0.01, 10.0, allow_subnormal=False)
        eta_value = draw(eta_choices if eta == "some" else st.none() | eta_choices)
    gamma = draw(st.floats(0.1, 10.0, allow_subnormal=False))
    return {"X": X, "W": W, "b": b, "G": G, "transfer": name, "gamma": gamma, "eta": eta_value}


def net_and_batch(arch: tuple[list[int], list[str], str], seed: int, B: int = 5) -> tuple[Any, Any, Any, Any]:
    """A drawn architecture as an MLP with glorot params, inputs ``(B, d_0)`` and valid targets."""
    import locograd as lg

    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=seed % 89, bias="glorot")
    x = rng.standard_normal((B, sizes[0]))
    y = rng.random((B, sizes[-1]))
    if loss == "softmax_cross_entropy":
        y = y / y.sum(axis=1, keepdims=True)
    return net, params, x, y
