"""Float32 LocoProp keeps the deep layers' signal: the local problems are solved in the displacement.

The setting is the one where a stored target fails: the CURVES autoencoder (12 logistic layers) at
initialisation on 200 CURVES images, gamma 3.16.  There gamma G is 1e-9 to 1e-6 in the first layers
against f(A) ~ 0.5, below the rounding of a float32 target ``f(A) - gamma G``.

* The first inner GD step, through ``locoprop.step`` and ``optim.LocoProp``, against the float64
  gradient: at most twice float32 BackProp's own error, per layer.  Negative control: the
  absolute-target form (kept below as a reference implementation) fails it.
* After K = 10 contracting GD steps, and for the exact M and S solves, the float32 displacement
  agrees with the float64 one in every layer.  Negative control: the same problems built from the
  stored float32 targets (``LocalProblem.build``) do not.
* ``Transfer.increment`` against an exact reference (Python's ``decimal`` at 50 digits) for every
  transfer, with |delta| from 1e-12 to 1 at |a| up to 20, in float32 and float64.  Negative control:
  the plain difference ``f(a + delta) - f(a)``.
"""

from __future__ import annotations

import decimal
import functools
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import locograd as lg
from locograd import locoprop, transfer
from locograd.data.curves import curves
from locograd.experiments.models import curves_autoencoder
from locograd.locoprop import GD, LocalProblem, M, S
from locograd.nn import stack

from .strategies import floats

GAMMA = 3.16
IMAGES = 200


@functools.lru_cache(maxsize=1)
def _curves_setting() -> tuple[Any, list[dict[str, np.ndarray]], np.ndarray]:
    net = curves_autoencoder()
    x = curves(n_train=IMAGES, n_test=1, seed=0).x_train[:IMAGES].astype(np.float32)
    return net, net.init(seed=0, dtype=np.float32), x


def curves_setting() -> tuple[Any, list[dict[str, np.ndarray]], np.ndarray]:
    net, params, x = _curves_setting()
    return net, [{k: v.copy() for k, v in layer.items()} for layer in params], x.copy()


def to64(tree: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{k: v.astype(np.float64) for k, v in layer.items()} for layer in tree]


def relative(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def reference_gradients(net: Any, p32: list[dict[str, np.ndarray]], x: np.ndarray) -> list[np.ndarray]:
    """dL/dW~ per layer in float64, at the float32 parameters and data."""
    p64, x64 = to64(p32), x.astype(np.float64)
    return [stack(g) for g in net.backward(p64, net.forward(p64, x64), x64).as_params()]


def move_rate(p32: list[dict[str, np.ndarray]], ref: list[np.ndarray]) -> float:
    """One GD rate rho at which every layer's first move is 100 times its weights' mean magnitude.

    The identity is linear in rho, and a move that large makes the rounding of W~ + D (at most half an
    ulp of W~ per entry) negligible against the move: the error measured is the direction's alone.
    """
    scale = max(
        float(np.abs(stack(p)).mean()) / float(np.abs(r).mean()) for p, r in zip(p32, ref, strict=True)
    )
    return 1e2 * scale / GAMMA


def absolute_target_first_step(
    net: Any, p32: list[dict[str, np.ndarray]], x: np.ndarray, variant: str, rho: float
) -> list[np.ndarray]:
    """The retired form, as a reference implementation: the residual ``f(X~W~) - Y*`` (M) or
    ``X~W~ - A*`` (S) from the target stored in float32, one plain GD step; returns each layer's move."""
    trace = net.forward(p32, x)
    grads = net.backward(p32, trace, x, weight_grads=False)
    moves = []
    for m, params in enumerate(p32):
        X, G, f = trace.inputs[m], grads.pre[m], net.transfers[m]
        a = X @ params["W"] + params["b"]
        target = (trace.pre[m] if variant == "S" else trace.post[m]) - np.float32(GAMMA) * G
        r = (a if variant == "S" else f.f(a)) - target
        g = {"W": X.T @ r, "b": r.sum(axis=0)}
        new = {k: params[k] - np.float32(rho) * g[k] for k in params}
        moves.append(stack(new).astype(np.float64) - stack(params).astype(np.float64))
    return moves


def step_errors(moves: list[np.ndarray], ref: list[np.ndarray], rho: float) -> list[float]:
    return [relative(mv / (-rho * GAMMA), r) for mv, r in zip(moves, ref, strict=True)]


def backprop_errors(
    net: Any, p32: list[dict[str, np.ndarray]], x: np.ndarray, ref: list[np.ndarray]
) -> list[float]:
    g32 = net.backward(p32, net.forward(p32, x), x).as_params()
    return [relative(stack(g).astype(np.float64), r) for g, r in zip(g32, ref, strict=True)]


@pytest.mark.parametrize("path", ["locoprop.step", "optim.LocoProp"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_float32_first_inner_step_is_backprop_in_every_layer(variant: str, path: str) -> None:
    """The first inner GD step moves every layer by -rho gamma dL/dW~ as accurately as float32 BackProp
    computes dL/dW~: per layer, its relative error against the float64 gradient is at most twice
    BackProp's.  Measured here: at most 1.03 times (4.3e-7 against 4.2e-7 in layer 0).  The factor 2
    covers the two roundings BackProp does not make (gamma G, and rho times the gradient); the
    rounding of W~ + D is negligible at this rate (``move_rate``).

    Negative control: the absolute-target form errs by 67-100 % in layer 0 (every layer-0 entry of
    f(X~W~) - Y* is exactly 0 in float32 for M), failing the same bound.
    """
    net, p32, x = curves_setting()
    ref = reference_gradients(net, p32, x)
    rho = move_rate(p32, ref)
    settings = S(gamma=GAMMA) if variant == "S" else M(gamma=GAMMA)
    solver = GD(steps=1, lr=rho)
    if path == "locoprop.step":
        new, _ = locoprop.step(net, p32, x, x, variant=settings, solver=solver)
    else:
        opt = lg.optim.LocoProp(net, settings, solver)
        new, _, _ = opt.step(p32, x, x, opt.init(p32))
    moves = [stack(n).astype(np.float64) - stack(p).astype(np.float64) for n, p in zip(new, p32, strict=True)]
    loco, backprop = step_errors(moves, ref, rho), backprop_errors(net, p32, x, ref)
    for m, (mine, theirs) in enumerate(zip(loco, backprop, strict=True)):
        assert mine <= 2 * theirs, f"layer {m}: {mine:.2e} against BackProp's {theirs:.2e}"
    old = step_errors(absolute_target_first_step(net, p32, x, variant, rho), ref, rho)
    assert (
        old[0] > 0.5 and old[1] > 0.5 and all(o > 2 * b for o, b in zip(old[:3], backprop[:3], strict=True))
    )


def _problems(
    net: Any, params: list[dict[str, np.ndarray]], x: np.ndarray, variant: Any, stored_target: bool
) -> list[LocalProblem]:
    problems, _ = locoprop.local_problems(net, params, x, x, variant)
    if stored_target:  # the negative control: the same problems through their float32 targets
        return [
            LocalProblem.build(p.inputs, p.target, p.transfer, p.variant, p.anchor, p.eta) for p in problems
        ]
    return problems


def _contracting_rate(problem: LocalProblem) -> float:
    """1 / lambda_max(X~^T X~): GD on J contracts for S (Hessian X~^T X~) and for M (f' <= 1/4, and 1 for identity)."""
    X = np.hstack([problem.inputs.astype(np.float64), np.ones((problem.inputs.shape[0], 1))])
    return 1.0 / float(np.linalg.norm(X, 2) ** 2)


def _kappa_bound(problem: LocalProblem) -> float:
    """An upper bound on the condition number of the layer's Hessian at eta = 1: 1 + lambda_max(X~^T X~) max f'."""
    slope = 1.0 if problem.variant == "S" or problem.matching_transfer.name == "identity" else 0.25
    return 1.0 + slope / _contracting_rate(problem)


def _displacements(
    variant: str, solver: str, stored_target: bool
) -> tuple[list[float], list[float], list[float]]:
    """Per layer: the float32 displacement's relative error against float64's, the float64 norm, and the tolerance."""
    net, p32, x = curves_setting()
    settings = S(gamma=GAMMA, eta=1.0) if variant == "S" else M(gamma=GAMMA, eta=1.0)
    problems32 = _problems(net, p32, x, settings, stored_target)
    problems64 = _problems(net, to64(p32), x.astype(np.float64), settings, False)
    errors, norms, tolerances = [], [], []
    for p32_, p64_ in zip(problems32, problems64, strict=True):
        if solver == "gd":
            gd = GD(steps=10, lr=_contracting_rate(p64_))
            D32, _ = locoprop.gd_displacement(p32_, gd)
            D64, _ = locoprop.gd_displacement(p64_, gd)
            tolerances.append(GD_TOLERANCE)
        else:
            if variant == "M":
                D32, _ = locoprop.exact_m_displacement(p32_, tol=1e-6)
                D64, _ = locoprop.exact_m_displacement(p64_)
            else:
                D32, D64 = locoprop.exact_s_displacement(p32_), locoprop.exact_s_displacement(p64_)
            tolerances.append(EXACT_TOLERANCE * float(np.finfo(np.float32).eps) * _kappa_bound(p64_))
        errors.append(relative(stack(D32).astype(np.float64), stack(D64)))
        norms.append(float(np.linalg.norm(stack(D64))))
    return errors, norms, tolerances


# K contracting steps each add a few float32 roundings (relative 6e-8) of a map of norm < 1, on data
# (X, A, gamma G) that differ from float64's by float32 BackProp's error (~4e-7 relative, ~1e-6 in the
# output layer): measured at most 1.2e-6.
GD_TOLERANCE = 1e-5
# The exact solves are limited by the conditioning kappa of the layer's Hessian (<= _kappa_bound, 2e2
# to 2e4 here): a backward-stable solve (Cholesky for S; Newton-CG run to a relative gradient of
# 1e-6 for M, where float32 reaches its floor) errs by O(n eps kappa).  Measured at most 20 eps kappa
# (S, the 401-wide output layer) and 0.3 eps kappa (M).
EXACT_TOLERANCE = 64


@pytest.mark.parametrize(("variant", "solver"), [("S", "gd"), ("M", "gd"), ("S", "exact"), ("M", "exact")])
def test_float32_displacement_agrees_with_float64_in_every_layer(variant: str, solver: str) -> None:
    """After K = 10 GD steps at a contracting rate, or an exact solve, the float32 displacement D agrees with
    float64's in every layer, and every layer moves (a stored target stopped the exact M solve at the
    anchor in the first layers).  Negative control: the problems built from float32 targets fail the
    tolerance in layers 0 and 1 (by 50-190 %: the target rounded gamma G away)."""
    errors, norms, tolerances = _displacements(variant, solver, stored_target=False)
    for m, (e, tol) in enumerate(zip(errors, tolerances, strict=True)):
        assert e <= tol, f"layer {m}: relative error {e:.2e} > {tol:.1e}"
    assert all(n > 0 for n in norms)
    stored, _, _ = _displacements(variant, solver, stored_target=True)
    assert stored[0] > tolerances[0] and stored[1] > tolerances[1], stored[:3]


INCREMENT_TRANSFERS = sorted(transfer.NAMES)


def _exact_f(name: str, slope: float) -> Any:
    """f at 50 digits, on Decimals (on rows of them for softmax)."""

    def logistic(v: Decimal) -> Decimal:
        return 1 / (1 + (-v).exp())

    def tanh(v: Decimal) -> Decimal:
        e = (2 * v).exp()
        return (e - 1) / (e + 1)

    def softmax(row: list[Decimal]) -> list[Decimal]:
        top = max(row)
        e = [(v - top).exp() for v in row]
        total = sum(e)
        return [v / total for v in e]

    return {
        "identity": lambda v: v,
        "sigmoid": logistic,
        "tanh": tanh,
        "relu": lambda v: max(v, Decimal(0)),
        "leaky_relu": lambda v: v if v >= 0 else Decimal(slope) * v,
        "softmax": softmax,
    }[name]


def exact_increment(name: str, t: transfer.Transfer, a: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """f(a + delta) - f(a) at 50 digits, for the exact float values of ``a`` and ``delta``."""
    f = _exact_f(name, t.slope or 0.0)
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        out = np.empty(a.shape, dtype=np.float64)
        for i in range(a.shape[0]):
            row_a = [Decimal(float(v)) for v in a[i]]
            row_b = [va + Decimal(float(d)) for va, d in zip(row_a, delta[i], strict=True)]
            if name == "softmax":
                out[i] = [float(u - v) for u, v in zip(f(row_b), f(row_a), strict=True)]
            else:
                out[i] = [float(f(u) - f(v)) for u, v in zip(row_b, row_a, strict=True)]
    return out


def increment_tolerance(
    a: np.ndarray, delta: np.ndarray, exact: np.ndarray, name: str, dtype: Any
) -> np.ndarray:
    """4 eps (1 + |a| + |delta|) relative per entry.

    The forms are products of a few factors each accurate to an ulp; the rounding of a + delta (relative
    eps) enters only the smooth factors sigma(a + delta), whose relative condition is at most |a + delta|
    (tanh: twice that, through 2a).  Measured: at most 1.5 eps (1 + |a|).  Softmax adds, per entry,
    the rounding of the centring s . delta, eps |delta|_max s_j relative to the row.
    """
    eps = float(np.finfo(dtype).eps)
    a64, d64 = a.astype(np.float64), delta.astype(np.float64)
    bound = 4 * eps * (1 + np.abs(a64) + np.abs(d64)) * np.abs(exact)
    if name == "softmax":
        s = np.exp(a64 - a64.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        bound += (
            8
            * eps
            * s
            * (1 + np.abs(a64).max(axis=1, keepdims=True))
            * np.abs(d64).max(axis=1, keepdims=True)
        )
    return bound


@pytest.mark.parametrize("name", INCREMENT_TRANSFERS)
@given(
    a=st.lists(floats(20.0), min_size=3, max_size=3),
    exponents=st.lists(st.floats(-12, 0, allow_nan=False), min_size=3, max_size=3),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3),
)
def test_increment_is_accurate_however_small_the_step(
    name: str, bk: Any, dtype: Any, a: list[float], exponents: list[float], signs: list[float]
) -> None:
    """``Transfer.increment(a, delta)`` = f(a + delta) - f(a) to 4 eps (1 + |a| + |delta|) relative (see
    ``increment_tolerance``), for |delta| in [1e-12, 1] and |a| <= 20: including where a + delta rounds
    to a; on NumPy, and on CuPy under the gpu marker.  Negative control: the plain difference fails at
    sigma(0.3 + 4e-9) - sigma(0.3) (0 in float32, 9.78e-10 exactly) and at tanh(2 + 1e-12) - tanh(2) in
    float64."""
    t = transfer.get(name)
    av = np.array([a], dtype=dtype)
    dv = np.array([[s * 10.0**e for s, e in zip(signs, exponents, strict=True)]], dtype=dtype)
    on_backend = t.increment(bk.asarray(av), bk.asarray(dv))
    assert on_backend.dtype == av.dtype and on_backend.shape == av.shape
    got = bk.numpy(on_backend)
    exact = exact_increment(name, t, av, dv)
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= increment_tolerance(av, dv, exact, name, dtype)), (err, exact)


@pytest.mark.parametrize(
    ("name", "dtype", "a", "delta"),
    [
        ("sigmoid", np.float32, 0.3, 4e-9),
        ("tanh", np.float64, 2.0, 1e-12),
        ("softmax", np.float32, 0.3, 4e-9),
    ],
)
def test_the_plain_difference_fails_the_increment_bound(
    name: str, dtype: Any, a: float, delta: float
) -> None:
    """The negative control of the test above: where a + delta rounds to (nearly) a, the plain difference
    loses the increment; the stable form keeps it (9.78e-10 for the sigmoid at 0.3 + 4e-9)."""
    t = transfer.get(name)
    av = np.array([[a, -1.0]], dtype=dtype)
    dv = np.array([[delta, 0.0]], dtype=dtype)
    exact = exact_increment(name, t, av, dv)
    tol = increment_tolerance(av, dv, exact, name, dtype)
    plain = (t.f(av + dv) - t.f(av)).astype(np.float64)
    assert not np.all(np.abs(plain - exact) <= tol)
    assert np.all(np.abs(t.increment(av, dv).astype(np.float64) - exact) <= tol)
    if name == "sigmoid":
        assert plain[0, 0] == 0.0 and abs(exact[0, 0] - 9.778e-10) < 1e-12
