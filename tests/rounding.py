"""Rounding bounds for float64 tests: the absolute floors below which two computations cannot be compared.

A relative tolerance alone is not sound where the compared value may be ~0 (a gradient, a step): then
rounding, which scales with the size of the terms the value is computed from, decides.  These helpers
bound that rounding from the terms (u = eps/2 is the unit roundoff; a dot product of n terms rounds by
<= n u times the sum of the terms' sizes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from locograd import nn
from locograd.backend import to_numpy
from locograd.locoprop import LocalProblem

EPS = float(np.finfo(np.float64).eps)


def gradient_rounding(X: np.ndarray, base: np.ndarray, gamma_G: np.ndarray) -> float:
    """Bound on every entry of |X~^T R - X~^T (gamma G)|, R the residual computed from a rounded target.

    The target t = fl(base - fl(gamma G)) and R = fl(base - t) (base, A for S or f(A) for M, is
    recomputed bit for bit) differ from gamma G by <= 2 eps (|base| + |gamma G|) per entry; the
    products X~^T R and X~^T G round by <= B u |X~|^T |.| each.  In all <= (B + 2) eps |X~|^T (|base|
    + |gamma G|); the factor 4 is margin.  This is the absolute floor below which a gradient that
    is ~0 cannot be compared relatively (M targets lose ~eps |f(A)| when built).
    """
    Xt = nn.augment(X)
    bound = 4 * (X.shape[0] + 2) * EPS * float((np.abs(Xt).T @ (np.abs(base) + np.abs(gamma_G))).max())
    return max(bound, 1e-300)


def stack(p: dict[str, np.ndarray]) -> np.ndarray:
    """W~ = [W; b] as one (d_in + 1, d_out) array (:func:`locograd.nn.stack`)."""
    return nn.stack(p)


def _abs_parts(problem: LocalProblem, params: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """|X~|, |P~|, |X~||P~| and (A, f(A)) at params, for the rounding bounds below."""
    Xt = nn.augment(problem.inputs)
    P = stack(params)
    A = Xt @ P
    fA = A if problem.variant == "S" else problem.transfer.f(A)
    return np.abs(Xt), np.abs(P), np.abs(Xt) @ np.abs(P), A, fA


def evaluation_rounding(problem: LocalProblem, params: dict[str, np.ndarray]) -> float:
    """Bound on ||computed grad J(params) - grad J(params)||_F in float64 (S or M).

    A = X~ P~ rounds by <= n u |X~||P~| (n = d_in + 1 terms); f(A) moves by at most that (f' <= 1;
    softmax couples a row: <= 2 times the row's largest) plus a few ulps of |f(A)|; R = f(A) - Y* adds
    u (|f(A)| + |Y*|); X~^T R adds B u |X~|^T |R| and carries R's error; the prox term rounds by
    <= 2u (|P~| + |P~_t|) / eta.  In all <= (n + B + 8) eps per entry times
    |X~|^T (|X~||P~| + |f(A)| + |Y*|) + (|P~| + |P~_t|)/eta.
    """
    absX, absP, XP, _, fA = _abs_parts(problem, params)
    if problem.variant == "M" and not problem.transfer.elementwise:
        XP = 2 * np.broadcast_to(XP.max(axis=1, keepdims=True), XP.shape)
    per_entry = absX.T @ (XP + np.abs(fA) + np.abs(problem.target))
    if problem.eta is not None:
        per_entry = per_entry + (absP + np.abs(stack(problem.anchor))) / problem.eta
    n, B = absX.shape[1], absX.shape[0]
    return (n + B + 8) * EPS * float(np.linalg.norm(per_entry))


def objective_scale(problem: LocalProblem, params: dict[str, np.ndarray]) -> float:
    """The size of the terms J(params) is summed from, and of their rounding's sources (float64).

    sum of |F(a_n)| per row, |Y* . A|, |f(A)| + |Y*| times the rounding scale |X~||P~| of A, and the prox
    term: J's computed value errs by <= (n + B d_out + 8) eps times this (each term rounds by a few
    ulps, A by n ulps of |X~||P~|, which moves F by |f(A)| times that and Y*.A by |Y*| times that).
    """
    _, _, XP, A, fA = _abs_parts(problem, params)
    if problem.variant == "S":
        data = np.sum((A - problem.target) ** 2) / 2 + np.sum((np.abs(A) + np.abs(problem.target)) * XP)
    else:
        data = (
            np.sum(np.abs(problem.transfer.potential(A)))
            + np.sum(np.abs(problem.target * A))
            + np.sum((np.abs(fA) + np.abs(problem.target)) * XP)
        )
    prox = 0.0 if problem.eta is None else np.sum((stack(params) - stack(problem.anchor)) ** 2) / problem.eta
    return float(data + prox)


def _structure(tree: Any) -> Any:
    """The shape of a tree without its leaves: node types, dict keys (sorted), lengths."""
    if isinstance(tree, dict):
        return ("dict", tuple((k, _structure(tree[k])) for k in sorted(tree, key=str)))
    if isinstance(tree, list | tuple):
        return (type(tree).__name__, tuple(_structure(v) for v in tree))
    return "leaf"


def _leaves(tree: Any) -> list[Any]:
    """The leaves in the order of :func:`_structure` (dict keys sorted, so insertion order does not matter)."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree, key=str) for leaf in _leaves(tree[k])]
    if isinstance(tree, list | tuple):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def _same_leaf(x: Any, y: Any) -> bool:
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        if not (hasattr(y, "dtype") and hasattr(y, "shape")):
            return False
        a, b = to_numpy(x), to_numpy(y)
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        )
    return type(x) is type(y) and bool(x == y)


def same_bits(a: Any, b: Any) -> bool:
    """Whether two trees are equal bit for bit: the same structure (NamedTuple types included), and
    every array leaf of the same dtype, shape and bytes (so -0.0 differs from 0.0, and a NaN equals
    only the same NaN); other leaves (step counts, None) of the same type and equal."""
    if _structure(a) != _structure(b):
        return False
    la, lb = _leaves(a), _leaves(b)
    return all(_same_leaf(x, y) for x, y in zip(la, lb, strict=True))
