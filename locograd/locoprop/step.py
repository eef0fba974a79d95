r"""One LocoProp step for a whole network.

1. One forward and one backward pass at :math:`W_t` give every layer's input
   :math:`X_m`, pre-activation :math:`A_m` and :math:`G_m = \partial L/\partial A_m`.
2. Targets :math:`A^*_m = A_m - \gamma G_m` (S) or :math:`Y^*_m = f(A_m) - \gamma G_m` (M).
3. Each layer's local problem is solved with its input frozen, so the ``M``
   problems are independent and the order in which they are solved does not
   matter.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 4, 3], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> params = net.init(seed=0)
>>> x = np.random.default_rng(0).random((8, 3))
>>> new = lg.locoprop.step(net, params, x, x, variant="M", gamma=1.0, steps=1, lr=0.1)
>>> grads = net.backward(params, net.forward(params, x), x)   # K = 1: SGD with lr * gamma
>>> np.allclose(new[0]["W"], params[0]["W"] - 0.1 * 1.0 * grads.W[0])
True
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from ..backend import Array, array_namespace
from ..errors import NonFiniteError
from ..network import MLP, Grads, Params, Trace
from ..validators import canonical_choice
from .objectives import LocalProblem, check_eta, check_problem, gradient, norm, objective
from .solvers import (
    LrFactor,
    check_inner,
    check_lr,
    check_steps,
    solve_exact_m,
    solve_exact_s,
    solve_gd,
)
from .targets import check_gamma, check_variant, targets

SOLVERS = ("gd", "exact")


class LocoPropWarning(UserWarning):
    """A LocoProp step that runs but may not do what was meant (e.g. out-of-range M targets)."""


class LayerReport(NamedTuple):
    """Per-layer diagnostics of one step.

    Attributes:
        objective_before: local objective :math:`J` at :math:`W_t`.
        objective_after: at the solution.
        grad_norm_before: :math:`\\|\\nabla J(W_t)\\|` (equals :math:`\\gamma\\|\\partial L/\\partial\\tilde W\\|`).
        grad_norm_after: :math:`\\|\\nabla J\\|` at the solution (the stationarity residual).
        iterations: inner steps (gd) or Newton iterations (exact M; 0 for the closed form).
        cg_iterations: conjugate-gradient iterations (exact M).
        out_of_range: how many M targets lie outside the closed range of ``f``.
    """

    objective_before: float
    objective_after: float
    grad_norm_before: float
    grad_norm_after: float
    iterations: int
    cg_iterations: int
    out_of_range: int


class StepInfo(NamedTuple):
    """What :func:`step` saw.

    Attributes:
        loss: the loss :math:`L(W_t)` as a 0-d array on the data's device (no host transfer).
        layers: one :class:`LayerReport` per layer when ``diagnostics=True``, else empty.
        inner_states: the inner optimizers' new states, one per layer.
    """

    loss: Array
    layers: list[LayerReport]
    inner_states: list[Any]


def local_problems(
    net: MLP, params: Params, x: Array, y: Array, *, variant: str, gamma: float, eta: float | None = None
) -> tuple[list[LocalProblem], Grads]:
    """Build every layer's :class:`LocalProblem` from ONE forward/backward pass (no weight gradients)."""
    problems, grads, _ = _local_problems_and_trace(net, params, x, y, variant, gamma, eta)
    return problems, grads


def _local_problems_and_trace(
    net: MLP, params: Params, x: Array, y: Array, variant: str, gamma: float, eta: float | None
) -> tuple[list[LocalProblem], Grads, Trace]:
    """:func:`local_problems`, also returning the forward :class:`~locograd.network.Trace`.

    The solvers reuse ``trace.pre[m]``, the pre-activation at the anchor, for their first step.
    """
    variant, gamma, eta = check_variant(variant), check_gamma(gamma), check_eta(eta)
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y, weight_grads=False)
    tgts = targets(trace, grads, gamma, variant)
    problems = [
        LocalProblem(trace.inputs[m], tgts[m], net.transfers[m], variant, params[m], eta)
        for m in range(net.num_layers)
    ]
    return problems, grads, trace


def count_out_of_range(problem: LocalProblem) -> Array:
    """Number of M targets outside the closed range of ``f`` (0-d array; always 0 for S)."""
    check_problem(problem)
    xp = array_namespace(problem.target)
    if problem.variant == "S":
        return xp.zeros((), dtype=xp.int64)
    return (~problem.transfer.in_range(problem.target)).sum()


def _maybe_out_of_range(problem: LocalProblem) -> bool:
    """A cheap necessary condition for :func:`count_out_of_range` > 0: the targets' min/max leave the range.

    Two reductions and one host transfer instead of a mask per element; the exact count
    is taken only when this says there may be one.  Softmax rows are always counted.
    """
    if problem.variant == "S":
        return False
    if not problem.transfer.elementwise:
        return True
    t = problem.target
    if t.size == 0:
        return False
    xp = array_namespace(t)
    low, high = problem.transfer.range
    lo, hi = xp.stack([xp.min(t), xp.max(t)]).tolist()
    return not (lo >= low and hi <= high)  # a NaN fails both comparisons: counted, as in_range does


def solve_layer(
    problem: LocalProblem,
    *,
    solver: str = "gd",
    steps: int = 1,
    lr: float | None = None,
    inner: Any = None,
    inner_state: Any = None,
    lr_factor: LrFactor | None = None,
    tol: float | None = None,
    report: bool = False,
    base: Array | None = None,
) -> tuple[dict[str, Array], Any, LayerReport | None]:
    """Solve one layer's problem; returns ``(params, inner_state, report or None)``.

    ``base``: what the target was built from, at the anchor (``trace.pre[m]`` for S,
    ``trace.post[m]`` for M), if at hand: saves the first product of gd and exact S.
    """
    cg_iterations = iterations = 0
    if solver == "gd":
        new, inner_state = solve_gd(problem, steps, lr, inner, inner_state, lr_factor, base=base)
        iterations = steps
    elif solver == "exact":
        if problem.variant == "S":
            new = solve_exact_s(problem, base=base)
        else:
            new, info = solve_exact_m(problem, tol=tol)
            iterations, cg_iterations = info.newton_iterations, info.cg_iterations
    else:
        raise ValueError(f"solver: expected one of {SOLVERS}, got {solver!r}")
    if not report:
        return new, inner_state, None
    layer_report = LayerReport(
        float(objective(problem, problem.anchor)),
        float(objective(problem, new)),
        float(norm(gradient(problem, problem.anchor))),
        float(norm(gradient(problem, new))),
        iterations,
        cg_iterations,
        int(count_out_of_range(problem)),
    )
    return new, inner_state, layer_report


def _check_finite(name: str, arrays: Sequence[Array]) -> None:
    for i, a in enumerate(arrays):
        if not bool(array_namespace(a).isfinite(a).all()):
            where = name if len(arrays) == 1 else f"{name}[{i}]"
            raise NonFiniteError(f"{where}: expected finite values, found NaN or Inf")


def check_workers(workers: int) -> int:
    """Validate the number of layer solves run at once (an integer >= 1)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    return workers


def _solve_layers(
    solve: Callable[[int], tuple[dict[str, Array], Any, LayerReport | None]],
    problems: Sequence[LocalProblem],
    workers: int,
) -> list[tuple[dict[str, Array], Any, LayerReport | None]]:
    """Run ``solve(m)`` for every layer: in order, or on ``workers`` threads for NumPy arrays.

    The layers' problems are independent, and NumPy releases the GIL in its
    products, so threads overlap them; the largest problems start first. Each
    task runs in a copy of the caller's context (NumPy's ``errstate`` included).
    CuPy arrays are solved in order: their kernels already run asynchronously.
    """
    if workers == 1 or len(problems) == 1 or array_namespace(problems[0].inputs) is not np:
        return [solve(m) for m in range(len(problems))]
    largest_first = sorted(
        range(len(problems)), key=lambda m: -problems[m].inputs.shape[1] * problems[m].target.shape[1]
    )
    with ThreadPoolExecutor(max_workers=min(workers, len(problems))) as pool:
        futures = {m: pool.submit(contextvars.copy_context().run, solve, m) for m in largest_first}
        return [futures[m].result() for m in range(len(problems))]


@overload
def step(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    variant: str,
    gamma: float,
    eta: float | None = None,
    solver: str = "gd",
    steps: int = 1,
    lr: float | None = None,
    inner: Any = None,
    inner_states: Sequence[Any] | None = None,
    lr_factor: LrFactor | None = None,
    tol: float | None = None,
    return_info: Literal[False] = False,
    diagnostics: bool = False,
    check_finite: bool = True,
    workers: int = 1,
) -> Params: ...


@overload
def step(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    variant: str,
    gamma: float,
    eta: float | None = None,
    solver: str = "gd",
    steps: int = 1,
    lr: float | None = None,
    inner: Any = None,
    inner_states: Sequence[Any] | None = None,
    lr_factor: LrFactor | None = None,
    tol: float | None = None,
    return_info: Literal[True],
    diagnostics: bool = False,
    check_finite: bool = True,
    workers: int = 1,
) -> tuple[Params, StepInfo]: ...


def step(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    *,
    variant: str,
    gamma: float,
    eta: float | None = None,
    solver: str = "gd",
    steps: int = 1,
    lr: float | None = None,
    inner: Any = None,
    inner_states: Sequence[Any] | None = None,
    lr_factor: LrFactor | None = None,
    tol: float | None = None,
    return_info: bool = False,
    diagnostics: bool = False,
    check_finite: bool = True,
    workers: int = 1,
) -> Params | tuple[Params, StepInfo]:
    r"""One LocoProp step: targets from one forward/backward pass, then every layer's local solve.

    Args:
        net: the network.
        params: parameters :math:`W_t` (never modified).
        x: inputs ``(B, d_0)``.
        y: targets of the network loss.
        variant: ``"S"`` (squared loss on pre-activations) or ``"M"`` (matching loss).
        gamma: target step :math:`\gamma > 0`.
        eta: proximal weight :math:`\eta > 0`, or ``None`` for no proximal term.
        solver: ``"gd"`` (``steps`` inner steps) or ``"exact"`` (closed form for S,
            Newton-CG for M, which needs ``eta``).
        steps: inner steps ``K >= 1`` (solver ``"gd"``).
        lr: inner step size :math:`\rho`; required for plain GD, overrides ``inner``'s lr.
        inner: a first-order optimizer from :mod:`locograd.optim` (``None``: plain GD).
        inner_states: one state per layer for ``inner`` (kept across batches by the caller).
        lr_factor: ``lr_factor(k, K)`` scales the inner step size at inner step ``k``.
        tol: relative gradient tolerance of the exact M solve.
        return_info: also return a :class:`StepInfo` (loss, inner states, reports).
        diagnostics: fill ``StepInfo.layers`` with per-layer :class:`LayerReport` s
            (costs extra passes over each layer and a host transfer per number).
        check_finite: raise if the data or the new parameters hold NaN/Inf
            (one device synchronisation per array).
        workers: solve this many layers' problems at once on threads (NumPy
            arrays; the problems are independent, so the result is the same bit for
            bit). Pair it with as few BLAS threads (threadpoolctl), e.g. 2 workers with
            1 BLAS thread each on 2 cores.

    Returns:
        The new parameters (same structure), and the :class:`StepInfo` if asked.

    Raises:
        ValueError: bad ``gamma``/``eta``/``steps``/``lr``/``variant``/``solver``/``workers``, an
            exact M solve without ``eta``, non-finite data, or a step that
            produced non-finite parameters.
    """
    variant, gamma, eta, steps = (
        check_variant(variant),
        check_gamma(gamma),
        check_eta(eta),
        check_steps(steps),
    )
    check_workers(workers)
    check_inner(inner)
    solver = canonical_choice("solver", solver, SOLVERS)
    check_lr(lr, required=solver == "gd" and inner is None, allow_zero=inner is not None)
    if solver == "exact" and variant == "M" and eta is None:
        raise ValueError(
            "eta: solver='exact' with variant 'M' needs a proximal weight eta > 0; without it "
            "J_M may be unbounded below"
        )
    if inner_states is not None and len(inner_states) != net.num_layers:
        raise ValueError(f"inner_states: expected {net.num_layers} per-layer states, got {len(inner_states)}")
    if check_finite:
        _check_finite("x", [x])
        if getattr(y, "dtype", None) is not None and y.dtype.kind == "f":
            _check_finite("y", [y])
    # with check_finite, a step that overflows ends in ONE NonFiniteError naming the layer (below),
    # not in NumPy's overflow warnings from inside the solve (an error where warnings are errors)
    quiet = np.errstate(over="ignore", invalid="ignore") if check_finite else contextlib.nullcontext()
    with quiet:
        new_params, grads, states, reports = _step(
            net, params, x, y, variant, gamma, eta, solver, steps, lr, inner, inner_states,
            lr_factor, tol, diagnostics, workers,
        )  # fmt: skip
    if check_finite:
        for m, layer in enumerate(new_params):
            for key in ("W", "b"):
                if not bool(array_namespace(layer[key]).isfinite(layer[key]).all()):
                    raise NonFiniteError(
                        f"step: layer {m} {key} became non-finite (gamma={gamma}, lr={lr}, steps={steps}); "
                        "lower the step sizes or add a proximal term eta"
                    )
    if return_info:
        return new_params, StepInfo(grads.loss, reports, states)
    return new_params


def _step(
    net: MLP,
    params: Params,
    x: Array,
    y: Array,
    variant: str,
    gamma: float,
    eta: float | None,
    solver: str,
    steps: int,
    lr: float | None,
    inner: Any,
    inner_states: Sequence[Any] | None,
    lr_factor: LrFactor | None,
    tol: float | None,
    diagnostics: bool,
    workers: int,
) -> tuple[Params, Grads, list[Any], list[LayerReport]]:
    """The work of :func:`step` once its arguments are checked: ``(new params, grads, states, reports)``."""
    problems, grads, trace = _local_problems_and_trace(net, params, x, y, variant, gamma, eta)
    # what each target was built from (A for S, f(A) for M): the first inner step's residual is
    # base - target; each is dropped once its layer is solved, and the rest of the trace at once
    bases: list[Array | None] = list(trace.pre if variant == "S" else trace.post)
    del trace
    if variant == "M" and eta is None and solver == "gd" and steps > 1:  # one step is BackProp: always safe
        for m, problem in enumerate(problems):
            outside = int(count_out_of_range(problem)) if _maybe_out_of_range(problem) else 0
            if outside:
                warnings.warn(
                    f"layer {m}: {outside} of {problem.target.size} M targets lie outside the range "
                    f"{problem.transfer.range} of {problem.transfer.name}; without a proximal term (eta) "
                    "J_M is unbounded below there, so long inner GD diverges: pass eta, or keep steps small",
                    LocoPropWarning,
                    stacklevel=3,
                )

    def solve(m: int) -> tuple[dict[str, Array], Any, LayerReport | None]:
        solved = solve_layer(
            problems[m],
            solver=solver,
            steps=steps,
            lr=lr,
            inner=inner,
            inner_state=None if inner_states is None else inner_states[m],
            lr_factor=lr_factor,
            tol=tol,
            report=diagnostics,
            base=bases[m],
        )
        bases[m] = None
        return solved

    results = _solve_layers(solve, problems, workers)
    new_params: Params = [new for new, _, _ in results]
    states: list[Any] = [state for _, state, _ in results]
    reports: list[LayerReport] = [rep for _, _, rep in results if rep is not None]
    return new_params, grads, states, reports
