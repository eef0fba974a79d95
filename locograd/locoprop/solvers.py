r"""Local solvers for one layer.

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
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..backend import Array, array_namespace
from ..layers import stack
from ..linalg import cholesky_solve, psd_pinv_solve
from ..validators import integer, number
from .objectives import LocalProblem, _gradient, _objective, _residual, check_params, check_problem, norm
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


def solve_gd(
    problem: LocalProblem, solver: GD, inner_state: Any = None, *, base: Array | None = None
) -> tuple[Params, Any]:
    r"""``K`` inner steps on :math:`J` from the anchor :math:`\tilde W_t`: the reference loop.

    .. math:: \tilde W_{k+1} = \tilde W_k - \rho\,c_k\,\nabla J(\tilde W_k)
              \quad\text{(or the inner optimizer's step on } \nabla J(\tilde W_k)\text{)},

    with :math:`c_k` = ``solver.lr_factor(k, K)`` (1 without one).

    Args:
        problem: the layer's local problem.
        solver: the :class:`~locograd.locoprop.GD` settings (steps, lr, inner, lr_factor).
        inner_state: the inner optimizer's state (kept across batches by the caller); ``None``: fresh.
        base: what the target was built from, at the anchor, if at hand: the forward
            pass's :math:`A` (S, ``trace.pre[m]``) or :math:`f(A)` (M, ``trace.post[m]``).
            The first step's residual is then ``base - target``, without a product.
            Not modified.

    Returns:
        ``(params, inner_state)`` (``inner_state`` is ``None`` for plain GD).  Nothing passed in is modified.

    The fused form of this loop, in reused buffers and with the inner optimizer's in-place hook,
    is :func:`locograd._fast.local.solve_gd_inplace` (bit for bit these numbers), which
    :class:`locograd.optim.LocoProp` passes to :func:`~locograd.locoprop.step`.
    """
    check_solvable(problem, "solve_gd")
    solver = _check_gd(solver)
    _check_base(problem, base)
    params, inner, steps = problem.anchor, solver.inner, solver.steps
    if inner is not None and inner_state is None:
        inner_state = inner.init(params)
    for k in range(steps):
        factor = lr_factor_at(solver.lr_factor, k, steps)
        g = _gradient(problem, params, base - problem.target if k == 0 and base is not None else None)
        if inner is None:
            step = solver.base_lr * factor
            params = {key: params[key] - step * g[key] for key in params}
        else:
            updates, inner_state = inner.update(g, inner_state, params, lr=solver.base_lr * factor)
            params = {key: params[key] + updates[key] for key in params}
    return params, inner_state


def _check_gd(solver: Any) -> GD:
    if not isinstance(solver, GD):
        raise TypeError(
            f"solver: expected locoprop.GD(steps, lr, inner, lr_factor), got {type(solver).__name__}"
        )
    return solver


def _check_base(
    problem: LocalProblem, base: Array | None, name: str = "base", required: bool = False
) -> None:
    """``base`` is an array shaped and typed like the target, on its backend (or ``None`` if not required)."""
    if base is None and not required:
        return
    expected = tuple(problem.target.shape)
    shape, dtype = getattr(base, "shape", None), getattr(base, "dtype", None)
    if shape is None or tuple(shape) != expected or dtype != problem.target.dtype:
        got = f"{tuple(shape)} {dtype}" if shape is not None else type(base).__name__
        raise ValueError(f"{name}: expected shape {expected} and dtype {problem.target.dtype}, got {got}")
    array_namespace(**{name: base, "target": problem.target})


def _augmented_gram(X: Array) -> Array:
    r""":math:`\tilde X^\top\tilde X` for :math:`\tilde X = [X, 1]`, ``(d_in+1, d_in+1)``."""
    xp = array_namespace(X)
    B, d = X.shape
    C = xp.empty((d + 1, d + 1), dtype=X.dtype)
    C[:d, :d] = X.T @ X
    s = X.sum(axis=0)
    C[:d, d] = s
    C[d, :d] = s
    C[d, d] = B
    return C


def solve_exact_s(problem: LocalProblem, rcond: float | None = None, *, base: Array | None = None) -> Params:
    r"""Closed-form minimiser of :math:`J_S` (see the module docstring).

    ``eta`` set: Cholesky solve with :math:`C + I/\eta`.  ``eta=None``:
    :math:`\tilde W_t - C^+ \nabla J_S(\tilde W_t)` (eigenvalues below
    ``rcond * lambda_max`` dropped), the limit :math:`\eta\to\infty`.
    ``base``: the pre-activation :math:`A` at the anchor if at hand (skips one product).

    Raises:
        ValueError: not a variant ``"S"`` problem (the closed form is that of :math:`J_S`; an M
            problem's minimiser is :func:`solve_exact_m`'s), or a ``base`` of another shape or dtype.
    """
    check_solvable(problem, "solve_exact_s", "S")
    rcond = number("rcond", rcond, low=0, high=1, allow_none=True)  # a fraction of lambda_max
    _check_base(problem, base)
    xp = array_namespace(problem.inputs)
    g = _gradient(problem, problem.anchor, None if base is None else base - problem.target)
    rhs = stack(g)
    C = _augmented_gram(problem.inputs)
    if problem.eta is None:
        delta = psd_pinv_solve(C, rhs, rcond)
    else:
        C[xp.diag_indices(C.shape[0])] += 1.0 / problem.eta
        delta = cholesky_solve(C, rhs)
    return {"W": problem.anchor["W"] - delta[:-1], "b": problem.anchor["b"] - delta[-1]}


def _dot(problem: LocalProblem, u: Params, v: Params) -> Array:
    """Per-output-unit inner products (elementwise f: block-diagonal Hessian), or one total (softmax)."""
    per_unit = (u["W"] * v["W"]).sum(axis=0) + u["b"] * v["b"]
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
    _check_base(problem, a, "a", required=True)
    check_params(problem, v, "v")
    return _hvp(problem, a, v)


def _hvp(problem: LocalProblem, a: Array, v: Params) -> Params:
    """:func:`hessian_vector_product` without the checks."""
    assert problem.eta is not None
    da = problem.inputs @ v["W"] + v["b"]
    dy = problem.matching_transfer.vjp(a, da)  # f' is symmetric: the JVP equals the VJP
    inv_eta = 1.0 / problem.eta
    return {"W": problem.inputs.T @ dy + inv_eta * v["W"], "b": dy.sum(axis=0) + inv_eta * v["b"]}


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
    check_params(problem, params)
    check_params(problem, g, "g")
    cg_tol = number("cg_tol", cg_tol, low=0)
    max_cg = integer("max_cg", max_cg, minimum=1)
    return _newton_direction(problem, params, g, cg_tol, max_cg)


def _newton_direction(
    problem: LocalProblem, params: Params, g: Params, cg_tol: float, max_cg: int
) -> tuple[Params, int]:
    """:func:`newton_direction` without the checks."""
    xp = array_namespace(problem.inputs)
    a, _ = _residual(problem, params)
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
    r"""Minimiser of :math:`J_M` with prox by Newton-CG with a backtracking line search.

    Stops when :math:`\|\nabla J(\tilde W)\| \le \mathrm{tol}\,\|\nabla J(\tilde W_t)\|`
    (default :func:`default_tolerance`).

    Raises:
        ValueError: ``eta`` is None (without the proximal term :math:`J_M`
            may be unbounded below and has no unique minimiser).
    """
    check_solvable(problem, "solve_exact_m", "M")
    if problem.eta is None:
        raise ValueError(
            "eta: the exact M solve needs a proximal weight eta > 0; without it J_M may be "
            "unbounded below (targets outside the range of f)"
        )
    tol = default_tolerance(problem.inputs.dtype) if tol is None else number("tol", tol, low=0)
    max_newton = integer("max_newton", max_newton, minimum=0)
    max_cg = integer("max_cg", max_cg, minimum=1, allow_none=True)
    n_block = problem.inputs.shape[1] + 1
    if not problem.matching_transfer.elementwise:
        n_block *= problem.target.shape[1]
    max_cg = 2 * n_block + 20 if max_cg is None else max_cg
    params = problem.anchor
    g = _gradient(problem, params)
    g0 = float(norm(g))
    value = _objective(problem, params)
    iterations, cg_total, rel = 0, 0, 0.0
    while g0 > 0:
        rel = float(norm(g)) / g0
        if rel <= tol or iterations >= max_newton:
            break
        iterations += 1
        d, cg_it = _newton_direction(problem, params, g, min(0.5, math.sqrt(rel)), max_cg)
        cg_total += cg_it
        slope = float(sum((g[k] * d[k]).sum() for k in g))
        g_norm = float(norm(g))
        t = 1.0
        while True:  # backtracking (Armijo); near the minimiser J's change is below rounding,
            # so there a step that lowers the gradient norm is accepted instead
            trial = {k: params[k] + t * d[k] for k in params}
            trial_value = _objective(problem, trial)
            trial_g = _gradient(problem, trial)
            change = float(trial_value) - float(value)
            if change <= 1e-4 * t * slope:
                break
            if abs(change) <= 1e-12 * abs(float(value)) and float(norm(trial_g)) < g_norm:
                break
            t *= 0.5
            if t < 1e-10:
                break
        if t < 1e-10:  # no decrease left at this precision
            break
        params, value, g = trial, trial_value, trial_g
    return params, ExactInfo(iterations, cg_total, rel, rel <= tol)


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
    n = (problem.inputs.shape[1] + 1) * problem.target.shape[1]
    g = _gradient(problem, problem.anchor)
    d, _ = _newton_direction(problem, problem.anchor, g, cg_tol, 2 * n + 20)
    return {k: problem.anchor[k] + d[k] for k in problem.anchor}
