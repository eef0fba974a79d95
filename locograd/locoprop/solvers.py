r"""Local solvers for one layer.

Each ``solve_*`` forms :math:`\tilde W_t + D` from its ``*_displacement`` twin
(:func:`gd_displacement`, :func:`exact_s_displacement`, :func:`exact_m_displacement`), which
returns the displacement :math:`D` itself.

* :func:`solve_gd`: ``K`` steps of plain gradient descent, or of any first-order
  optimizer (anything with ``init``/``update``, e.g. :mod:`locograd.optim`),
  with an optional within-batch learning-rate factor ``lr_factor(k, K)``
  (the settings: :class:`~locograd.locoprop.GD`).
* :func:`solve_exact_s`: the S minimiser in closed form, a preconditioned
  gradient step

  .. math:: \tilde W^* = \tilde W_t - (\tilde X^\top\tilde X + I/\eta)^{-1}\,\nabla J_S(\tilde W_t)
            = \tilde W_t - \gamma\,(\tilde X^\top\tilde X + I/\eta)^{-1}\,\partial L/\partial\tilde W,

  by Cholesky; ``eta=None`` gives the pseudo-inverse limit :math:`C^+`.
* :func:`solve_exact_m`: the unique root of
  :math:`\tilde X^\top(f(\tilde X\tilde W) - Y^*) + (\tilde W - \tilde W_t)/\eta = 0`
  by Newton's method with conjugate gradients on Hessian-vector products
  (two matmuls each) and a backtracking line search, to a stated tolerance.
  The Hessian :math:`\sum_n \tilde x_n\tilde x_n^\top \otimes \mathrm{diag} f'(a_n) + I/\eta`
  is block-diagonal per output unit for elementwise ``f``, so CG runs on all
  columns at once with per-column step sizes (jointly for softmax).

Every solver works on the displacement :math:`D = \tilde W - \tilde W_t` from :math:`D = 0`,
with the residuals and objective changes of :mod:`locograd.locoprop.objectives` (exactly
:math:`\gamma G` at the anchor, accurate however small the move), and forms
:math:`\tilde W_t + D` once, at the end.  The line search of the exact M solve compares
objective changes, never objective values.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..backend import Array, array_namespace
from ..linalg import cholesky_solve, psd_pinv_solve
from ..validators import integer, number
from .objectives import (
    LocalProblem,
    _gradient,
    _objective_change,
    _step_of,
    check_params,
    check_problem,
    displacement,
    norm,
)
from .settings import GD, LrFactor

Params = dict[str, Array]


class ExactInfo(NamedTuple):
    """What an exact solve did: Newton iterations, CG iterations, and the final relative gradient norm."""

    newton_iterations: int
    cg_iterations: int
    relative_gradient: float
    converged: bool


def check_solvable(problem: LocalProblem, solver: str, variant: str | None = None) -> None:
    """Check ``problem`` (:func:`~locograd.locoprop.objectives.check_problem`) and that ``solver`` applies to it.

    Every solver calls it first, so one message says which variant a solver needs.

    Args:
        problem: the layer's problem.
        solver: the solver's name, for the message.
        variant: the variant the solver solves (``None``: either).

    Raises:
        TypeError, ValueError: a malformed problem (see ``check_problem``).
        ValueError: ``"problem: expected a variant 'M' LocalProblem for newton_step, got variant 'S'"``.
    """
    check_problem(problem)
    if variant is not None and problem.variant != variant:
        raise ValueError(
            f"problem: expected a variant {variant!r} LocalProblem for {solver}, got variant {problem.variant!r}"
        )


def lr_factor_at(lr_factor: LrFactor | None, k: int, steps: int) -> float:
    """``lr_factor(k, K)`` as a float, checked: a finite number >= 0 (``None``: 1).

    A NaN or negative factor would make every parameter NaN, or step uphill, in silence.

    Raises:
        ValueError: ``"lr_factor(0, 3): expected a finite number >= 0, got nan"``.
    """
    if lr_factor is None:
        return 1.0
    if not callable(lr_factor):
        raise TypeError(f"lr_factor: expected a callable lr_factor(k, K), got {type(lr_factor).__name__}")
    return number(f"lr_factor({k}, {steps})", lr_factor(k, steps), low=0)


def zero_displacement(problem: LocalProblem) -> Params:
    """:math:`D = 0`, shaped like the anchor: where every solve starts (fresh arrays)."""
    xp = array_namespace(problem.inputs)
    return {key: xp.zeros_like(problem.anchor[key]) for key in ("W", "b")}


def moved_anchor(problem: LocalProblem, D: Params) -> Params:
    r""":math:`\tilde W_t + D`: the one place a solve forms its new parameters."""
    return {key: problem.anchor[key] + D[key] for key in ("W", "b")}


def solve_gd(problem: LocalProblem, solver: GD, inner_state: Any = None) -> tuple[Params, Any]:
    r"""``K`` inner steps on :math:`J` from the anchor :math:`\tilde W_t`: the reference loop.

    .. math:: D_{k+1} = D_k - \rho\,c_k\,\nabla J(D_k)
              \quad\text{(or the inner optimizer's step on } \nabla J(D_k)\text{)},
              \qquad D_0 = 0,

    with :math:`c_k` = ``solver.lr_factor(k, K)`` (1 without one), returning
    :math:`\tilde W_t + D_K`.  The gradient is that of :math:`J` at :math:`\tilde W_t + D_k`,
    :math:`\tilde X^\top R + D_k/\eta` (the inner optimizer sees what it always saw); the first is
    :math:`\tilde X^\top\gamma G` exactly.

    Args:
        problem: the layer's local problem.
        solver: the :class:`~locograd.locoprop.GD` settings (steps, lr, inner, lr_factor).
        inner_state: the inner optimizer's state (kept across batches by the caller); ``None``: fresh.

    Returns:
        ``(params, inner_state)`` (``inner_state`` is ``None`` for plain GD).  Nothing passed in is modified.

    The fused form of this loop, in reused buffers and with the inner optimizer's in-place hook,
    is :func:`locograd._fast.local.solve_gd_inplace` (bit for bit these numbers), which
    :class:`locograd.optim.LocoProp` passes to :func:`~locograd.locoprop.step`.
    """
    D, inner_state = gd_displacement(problem, solver, inner_state)
    return moved_anchor(problem, D), inner_state


def gd_displacement(problem: LocalProblem, solver: GD, inner_state: Any = None) -> tuple[Params, Any]:
    r""":func:`solve_gd`'s loop, returning the displacement :math:`D_K` itself: ``(D, inner_state)``.

    :math:`D_K` keeps what :math:`\tilde W_t + D_K` rounds away where the move is below half an
    ulp of the weights (the first layers of a deep network, in float32).
    """
    check_solvable(problem, "solve_gd")
    solver = _check_gd(solver)
    inner, steps = solver.inner, solver.steps
    D = zero_displacement(problem)
    if inner is not None and inner_state is None:
        inner_state = inner.init(problem.anchor)
    for k in range(steps):
        factor = lr_factor_at(solver.lr_factor, k, steps)
        g = _gradient(problem, D)
        if inner is None:
            step = solver.base_lr * factor
            D = {key: D[key] - step * g[key] for key in D}
        else:
            updates, inner_state = inner.update(g, inner_state, D, lr=solver.base_lr * factor)
            D = {key: D[key] + updates[key] for key in D}
    return D, inner_state


def _check_gd(solver: Any) -> GD:
    if not isinstance(solver, GD):
        raise TypeError(
            f"solver: expected locoprop.GD(steps, lr, inner, lr_factor), got {type(solver).__name__}"
        )
    return solver


def _check_rows(problem: LocalProblem, a: Any, name: str) -> None:
    """``a`` is an array shaped and typed like the problem's pre-activations ``(B, d_out)``, on its backend."""
    expected = tuple(problem.pre.shape)
    shape, dtype = getattr(a, "shape", None), getattr(a, "dtype", None)
    if shape is None or tuple(shape) != expected or dtype != problem.pre.dtype:
        got = f"{tuple(shape)} {dtype}" if shape is not None else type(a).__name__
        raise ValueError(f"{name}: expected shape {expected} and dtype {problem.pre.dtype}, got {got}")
    array_namespace(**{name: a, "pre": problem.pre})


def solve_exact_s(problem: LocalProblem, rcond: float | None = None) -> Params:
    r"""Closed-form minimiser of :math:`J_S` (see the module docstring), formed from :math:`\gamma G` directly.

    .. math:: D^* = -(\tilde X^\top\tilde X + I/\eta)^{-1}\,\tilde X^\top(\gamma G),
              \qquad \tilde W^* = \tilde W_t + D^*.

    ``eta`` set: Cholesky solve with :math:`C + I/\eta`.  ``eta=None``:
    :math:`-C^+ \tilde X^\top(\gamma G)` (eigenvalues below ``rcond * lambda_max`` dropped), the
    limit :math:`\eta\to\infty`.

    Raises:
        ValueError: not a variant ``"S"`` problem (the closed form is that of :math:`J_S`; an M
            problem's minimiser is :func:`solve_exact_m`'s).
    """
    return moved_anchor(problem, exact_s_displacement(problem, rcond))


def exact_s_displacement(problem: LocalProblem, rcond: float | None = None) -> Params:
    r""":func:`solve_exact_s`'s minimiser as the displacement :math:`D^*` itself."""
    check_solvable(problem, "solve_exact_s", "S")
    rcond = number("rcond", rcond, low=0, high=1, allow_none=True)  # a fraction of lambda_max
    xp = array_namespace(problem.inputs)
    view = problem.view
    rhs = view.stack(view.linear_transpose(problem.inputs, problem.offset))
    C = view.design_gram(problem.inputs)
    if problem.eta is None:
        step = psd_pinv_solve(C, rhs, rcond)
    else:
        C[xp.diag_indices(C.shape[0])] += 1.0 / problem.eta
        step = cholesky_solve(C, rhs)
    return view.unstack(-step)


def _dot(problem: LocalProblem, u: Params, v: Params) -> Array:
    """Per-output-unit inner products (elementwise f: block-diagonal Hessian), or one total (softmax)."""
    per_unit = (u["W"] * v["W"]).reshape(-1, u["b"].shape[0]).sum(axis=0) + u["b"] * v["b"]
    return per_unit if problem.matching_transfer.elementwise else per_unit.sum()


def hessian_vector_product(problem: LocalProblem, a: Array, v: Params) -> Params:
    r""":math:`H v` of :math:`J_M` at pre-activation ``a``: :math:`\tilde X^\top (f'(A)\odot \tilde X v) + v/\eta`.

    Args:
        problem: a variant ``"M"`` problem with ``eta``.
        a: the pre-activation :math:`A` ``(B, d_out)`` where the Hessian is taken.
        v: the direction, shaped like the anchor.

    Raises:
        ValueError: not an M problem (:math:`J_S`'s Hessian is :math:`C + I/\eta`, another
            matrix), no ``eta``, or ``a``/``v`` of other shapes.
    """
    check_solvable(problem, "hessian_vector_product", "M")
    if problem.eta is None:
        raise ValueError("eta: a Hessian-vector product of J_M here needs a proximal weight eta > 0")
    _check_rows(problem, a, "a")
    check_params(problem, v, "v")
    return _hvp(problem, a, v)


def _hvp(problem: LocalProblem, a: Array, v: Params) -> Params:
    """:func:`hessian_vector_product` without the checks."""
    assert problem.eta is not None
    view = problem.view
    da = view.linear(problem.inputs, v)
    dy = problem.matching_transfer.vjp(a, da)  # f' is symmetric: the JVP equals the VJP
    inv_eta = 1.0 / problem.eta
    g = view.linear_transpose(problem.inputs, dy)
    return {k: g[k] + inv_eta * v[k] for k in g}


def newton_direction(
    problem: LocalProblem, params: Params, g: Params, cg_tol: float, max_cg: int
) -> tuple[Params, int]:
    r"""Solve :math:`H d = -g` by (column-batched) conjugate gradients; returns ``(d, iterations)``.

    Raises:
        ValueError: not a variant ``"M"`` problem with ``eta``, or ``params``/``g`` of other shapes.
    """
    check_solvable(problem, "newton_direction", "M")
    if problem.eta is None:
        raise ValueError("eta: a Newton direction of J_M needs a proximal weight eta > 0")
    D = displacement(problem, params)
    check_params(problem, g, "g")
    cg_tol = number("cg_tol", cg_tol, low=0)
    max_cg = integer("max_cg", max_cg, minimum=1)
    return _newton_direction(problem, problem.pre + _step_of(problem, D), g, cg_tol, max_cg)


def _newton_direction(
    problem: LocalProblem, a: Array, g: Params, cg_tol: float, max_cg: int
) -> tuple[Params, int]:
    """:func:`newton_direction` at the pre-activation ``a``, without the checks."""
    xp = array_namespace(problem.inputs)
    d = {k: xp.zeros_like(v) for k, v in g.items()}
    r = {k: -v for k, v in g.items()}
    p = dict(r)
    rs = _dot(problem, r, r)
    stop = (cg_tol**2) * rs
    it = 0
    for it in range(1, max_cg + 1):  # noqa: B007 (the count is returned)
        hp = _hvp(problem, a, p)
        php = _dot(problem, p, hp)
        alpha = xp.where(php > 0, rs / xp.where(php > 0, php, 1), 0)
        d = {k: d[k] + alpha * p[k] for k in d}
        r = {k: r[k] - alpha * hp[k] for k in r}
        rs_new = _dot(problem, r, r)
        if bool(xp.all(rs_new <= stop)):
            break
        beta = xp.where(rs > 0, rs_new / xp.where(rs > 0, rs, 1), 0)
        p = {k: r[k] + beta * p[k] for k in p}
        rs = rs_new
    return d, it


def default_tolerance(dtype: Any) -> float:
    """Relative gradient tolerance of exact solves: 1e-10 in float64, 1e-4 in float32."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-4


def solve_exact_m(
    problem: LocalProblem, tol: float | None = None, max_newton: int = 50, max_cg: int | None = None
) -> tuple[Params, ExactInfo]:
    r"""Minimiser of :math:`J_M` with prox by Newton-CG on the displacement, with a backtracking line search.

    Stops when :math:`\|\nabla J(\tilde W)\| \le \mathrm{tol}\,\|\nabla J(\tilde W_t)\|`
    (default :func:`default_tolerance`).  The line search compares objective changes
    :math:`J(D) - J(0)` (:func:`~locograd.locoprop.objectives.objective_change`), which keep
    their precision where the objective's own values would differ by less than their rounding.

    Raises:
        ValueError: ``eta`` is None (without the proximal term :math:`J_M`
            may be unbounded below and has no unique minimiser).
    """
    D, info = exact_m_displacement(problem, tol, max_newton, max_cg)
    return moved_anchor(problem, D), info


def exact_m_displacement(
    problem: LocalProblem, tol: float | None = None, max_newton: int = 50, max_cg: int | None = None
) -> tuple[Params, ExactInfo]:
    r""":func:`solve_exact_m`'s Newton-CG solve, returning the displacement :math:`D^*` itself: ``(D, info)``."""
    check_solvable(problem, "solve_exact_m", "M")
    if problem.eta is None:
        raise ValueError(
            "eta: the exact M solve needs a proximal weight eta > 0; without it J_M may be "
            "unbounded below (targets outside the range of f)"
        )
    tol = default_tolerance(problem.inputs.dtype) if tol is None else number("tol", tol, low=0)
    max_newton = integer("max_newton", max_newton, minimum=0)
    max_cg = integer("max_cg", max_cg, minimum=1, allow_none=True)
    n_block = problem.weight_rows
    if not problem.matching_transfer.elementwise:
        n_block *= problem.offset.shape[1]
    max_cg = 2 * n_block + 20 if max_cg is None else max_cg
    rounding = 16 * float(np.finfo(problem.inputs.dtype).eps)
    D = zero_displacement(problem)
    a = problem.pre
    g = _gradient(problem, D)
    g0 = float(norm(g))
    change = 0.0  # J(D) - J(0)
    iterations, cg_total, rel = 0, 0, 0.0
    while g0 > 0:
        rel = float(norm(g)) / g0
        if rel <= tol or iterations >= max_newton:
            break
        iterations += 1
        d, cg_it = _newton_direction(problem, a, g, min(0.5, math.sqrt(rel)), max_cg)
        cg_total += cg_it
        slope = float(sum((g[k] * d[k]).sum() for k in g))
        g_norm = float(norm(g))
        t = 1.0
        while True:  # backtracking (Armijo) on J's change; near the minimiser that change is below
            # its own rounding, so there a step that lowers the gradient norm is accepted instead
            trial = {k: D[k] + t * d[k] for k in D}
            trial_change = float(_objective_change(problem, trial))
            trial_g = _gradient(problem, trial)
            decrease = trial_change - change
            if decrease <= 1e-4 * t * slope:
                break
            if abs(decrease) <= rounding * abs(change) and float(norm(trial_g)) < g_norm:
                break
            t *= 0.5
            if t < 1e-10:
                break
        if t < 1e-10:  # no decrease left at this precision
            break
        D, change, g = trial, trial_change, trial_g
        a = problem.pre + _step_of(problem, D)
    return D, ExactInfo(iterations, cg_total, rel, rel <= tol)


def newton_step(problem: LocalProblem, cg_tol: float = 1e-12) -> Params:
    r"""One full Newton step of :math:`J_M` from :math:`\tilde W_t` (no line search).

    For small :math:`\gamma` it agrees with the exact minimiser to relative error :math:`O(\gamma)`.

    Raises:
        ValueError: not a variant ``"M"`` problem (an S problem's minimiser is the closed form of
            :func:`solve_exact_s`; this step would use the M Hessian on it), or no ``eta``.
    """
    check_solvable(problem, "newton_step", "M")
    if problem.eta is None:
        raise ValueError("eta: a Newton step of J_M needs a proximal weight eta > 0")
    cg_tol = number("cg_tol", cg_tol, low=0)
    n = problem.weight_rows * problem.offset.shape[1]
    g = _gradient(problem, zero_displacement(problem))
    d, _ = _newton_direction(problem, problem.pre, g, cg_tol, 2 * n + 20)
    return moved_anchor(problem, d)
