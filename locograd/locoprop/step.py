r"""One LocoProp step for a whole network.

1. One forward and one backward pass at :math:`W_t` give every layer's input
   :math:`X_m`, pre-activation :math:`A_m` and :math:`G_m = \partial L/\partial A_m`.
2. Targets :math:`A^*_m = A_m - \gamma G_m` (S) or :math:`Y^*_m = f(A_m) - \gamma G_m` (M),
   held as :math:`A_m` and the offset :math:`\gamma G_m` (never subtracted into a target:
   in float32 its rounding would wipe :math:`\gamma G_m` out in the first layers).
   With ``normalised=True`` (not in the paper) :math:`\gamma` becomes the per-layer
   :math:`\gamma_m = \gamma / \max(\mathrm{RMS}(G_m), \tau)` (RMS over the layer's ``B*d_out``
   entries, a convolution's ``B*P`` rows): the offset :math:`\gamma_m G_m` has RMS :math:`\gamma`.
3. Each layer's local problem is solved with its input frozen, so the ``M``
   problems are independent and the order in which they are solved does not
   matter.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 4, 3], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> params = net.init(seed=0)
>>> x = np.random.default_rng(0).random((8, 3))
>>> from locograd.locoprop import GD, M
>>> new, info = lg.locoprop.step(net, params, x, x, variant=M(gamma=1.0), solver=GD(steps=1, lr=0.1))
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
from typing import Any, NamedTuple

import numpy as np

from ..backend import Array, array_namespace
from ..errors import NonFiniteError
from ..nn import Grads, Params, Sequential, Trace, WeightLayer
from ..validators import finite_parameters, integer
from .objectives import LocalProblem, check_problem, gradient, norm, objective, objective_change
from .settings import GD, Exact, M, S, check_solver, check_variant
from .solvers import solve_exact_m, solve_exact_s, solve_gd
from .targets import check_gamma, normalised_offset

GDKernel = Callable[..., tuple[dict[str, Array], Any]]
"""A GD local solve with :func:`~locograd.locoprop.solve_gd`'s arguments and numbers (the fast path's hook)."""


class LocoPropWarning(UserWarning):
    """A LocoProp step that runs but may not do what was meant (e.g. out-of-range M targets)."""


class LayerReport(NamedTuple):
    """Per-layer diagnostics of one step.

    Attributes:
        objective_before: local objective :math:`J` at :math:`W_t` (its defining value, for teaching).
        objective_after: at the solution (in float32 the two may differ by less than their rounding).
        objective_change: :math:`J(W) - J(W_t)` at the solution, from the displacement
            (:func:`~locograd.locoprop.objective_change`): accurate however small the move.
        grad_norm_before: :math:`\\|\\nabla J(W_t)\\|` (equals :math:`\\gamma\\|\\partial L/\\partial\\tilde W\\|`;
            :math:`\\gamma_m\\|\\partial L/\\partial\\tilde W_m\\|` for a ``normalised`` variant: it is
            computed from the problem's offset).
        grad_norm_after: :math:`\\|\\nabla J\\|` at the solution (the stationarity residual).
        iterations: inner steps (gd) or Newton iterations (exact M; 0 for the closed form).
        cg_iterations: conjugate-gradient iterations (exact M).
        out_of_range: how many M targets lie outside the closed range of ``f``.
    """

    objective_before: float
    objective_after: float
    objective_change: float
    grad_norm_before: float
    grad_norm_after: float
    iterations: int
    cg_iterations: int
    out_of_range: int


class StepReport(NamedTuple):
    """What one :func:`step` did: its loss, its per-layer reports and the inner optimizers' new states.

    :class:`locograd.optim.LocoProp` keeps ``inner_states`` in its own state and returns the loss
    and the reports as its :class:`~locograd.optim.StepInfo`.

    Attributes:
        loss: the loss :math:`L(W_t)` at the parameters before the step, a 0-d array on the
            data's device (no host transfer).
        layers: one :class:`LayerReport` per layer with ``diagnostics=True``, else empty.
        inner_states: the inner optimizers' new states, one per layer (``None`` entries without one).
    """

    loss: Array
    layers: Sequence[LayerReport] = ()
    inner_states: Sequence[Any] = ()

    def __repr__(self) -> str:
        states = [type(state).__name__ for state in self.inner_states]
        return f"StepReport(loss={float(self.loss):.6g}, layers={list(self.layers)}, inner_states={states})"


def local_problems(
    net: Sequential, params: Params, x: Array, y: Array, variant: S | M
) -> tuple[list[LocalProblem], Grads]:
    """Build every weight layer's :class:`LocalProblem` (in order, layers without weights have none)
    from ONE forward/backward pass (no weight gradients)."""
    problems, grads, _ = _local_problems_and_trace(net, params, x, y, check_variant(variant))
    return problems, grads


def _local_problems_and_trace(
    net: Sequential, params: Params, x: Array, y: Array, variant: S | M
) -> tuple[list[LocalProblem], Grads, Trace]:
    r""":func:`local_problems`, also returning the forward :class:`~locograd.network.Trace`.

    Each problem holds the layer's pre-activation ``trace.pre[m]`` and the offset
    :math:`\gamma G_m` as rows of its linear view (``layer.rows``: the arrays themselves for a
    dense layer; ``B*P`` rows for a convolution): the residual at the anchor, exactly.  For a
    ``normalised`` variant the offset is :math:`\gamma_m G_m`
    (:func:`~locograd.locoprop.targets.normalised_offset` of those rows), for every solver.
    """
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y, weight_grads=False)
    gamma = check_gamma(variant.gamma)
    saved = trace.saved or [None] * net.num_layers
    problems = []
    for m in net.weight_layers:
        layer = net.layers[m]
        assert isinstance(layer, WeightLayer)
        g = layer.rows(grads.pre[m])
        problems.append(
            LocalProblem(
                trace.inputs[m],
                layer.rows(trace.pre[m]),
                # the normalised variant (not in the paper): gamma_m G_m, gamma_m = gamma / max(RMS(G_m), tau)
                normalised_offset(g, gamma) if variant.normalised else gamma * g,
                layer.transfer if variant.name == "M" else None,
                variant.name,
                params[m],
                variant.eta,
                layer.for_inputs(trace.inputs[m], saved[m]),  # a convolution's patches, for every inner step
            )
        )
    return problems, grads, trace


def count_out_of_range(problem: LocalProblem) -> Array:
    """Number of M targets outside the closed range of ``f`` (0-d array; always 0 for S)."""
    check_problem(problem)
    xp = array_namespace(problem.target)
    if problem.variant == "S":
        return xp.zeros((), dtype=xp.int64)
    return (~problem.matching_transfer.in_range(problem.target)).sum()


def _maybe_out_of_range(problem: LocalProblem) -> bool:
    """A cheap necessary condition for :func:`count_out_of_range` > 0: the targets' min/max leave the range.

    Two reductions and one host transfer instead of a mask per element; the exact count
    is taken only when this says there may be one.  Softmax rows are always counted.
    """
    if problem.variant == "S":
        return False
    if not problem.matching_transfer.elementwise:
        return True
    t = problem.target  # the targets' range: a teaching view, formed once per step for this check
    if t.size == 0:
        return False
    xp = array_namespace(t)
    low, high = problem.matching_transfer.range
    lo, hi = xp.stack([xp.min(t), xp.max(t)]).tolist()
    return not (lo >= low and hi <= high)  # a NaN fails both comparisons: counted, as in_range does


def solve_layer(
    problem: LocalProblem,
    solver: GD | Exact,
    *,
    inner_state: Any = None,
    report: bool = False,
    gd_kernel: GDKernel | None = None,
) -> tuple[dict[str, Array], Any, LayerReport | None]:
    """Solve one layer's problem; returns ``(params, inner_state, report or None)``.

    Args:
        problem: the layer's :class:`LocalProblem`.
        solver: :class:`~locograd.locoprop.GD` or :class:`~locograd.locoprop.Exact`.
        inner_state: the GD inner optimizer's state for this layer (``None``: fresh).
        report: also return a :class:`LayerReport` (extra passes, a host transfer per number).
        gd_kernel: the GD solve to run in place of the reference :func:`~locograd.locoprop.solve_gd`
            (the fast path's hook, the same numbers), or ``None``.
    """
    solver = check_solver(solver)
    cg_iterations = iterations = 0
    if isinstance(solver, GD):
        new, inner_state = (gd_kernel or solve_gd)(problem, solver, inner_state)
        iterations = solver.steps
    elif problem.variant == "S":
        new = solve_exact_s(problem)
    else:
        new, info = solve_exact_m(problem, tol=solver.tol)
        iterations, cg_iterations = info.newton_iterations, info.cg_iterations
    if not report:
        return new, inner_state, None
    layer_report = LayerReport(
        float(objective(problem, problem.anchor)),
        float(objective(problem, new)),
        float(objective_change(problem, new)),
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
    return integer("workers", workers, minimum=1)


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
        range(len(problems)), key=lambda m: -problems[m].weight_rows * problems[m].offset.shape[1]
    )
    with ThreadPoolExecutor(max_workers=min(workers, len(problems))) as pool:
        futures = {m: pool.submit(contextvars.copy_context().run, solve, m) for m in largest_first}
        return [futures[m].result() for m in range(len(problems))]


def step(
    net: Sequential,
    params: Params,
    x: Array,
    y: Array,
    *,
    variant: S | M,
    solver: GD | Exact,
    inner_states: Sequence[Any] | None = None,
    diagnostics: bool = False,
    check_finite: bool = True,
    workers: int = 1,
    gd_kernel: GDKernel | None = None,
) -> tuple[Params, StepReport]:
    r"""One LocoProp step: targets from one forward/backward pass, then every layer's local solve.

    Args:
        net: the network.
        params: parameters :math:`W_t` (never modified).
        x: inputs ``(B, d_0)``.
        y: targets of the network loss.
        variant: :class:`~locograd.locoprop.S` or :class:`~locograd.locoprop.M` (``gamma``, ``eta``).
        solver: :class:`~locograd.locoprop.GD` (``steps`` inner steps of plain GD or of an inner
            optimizer) or :class:`~locograd.locoprop.Exact` (closed form for S, Newton-CG for M,
            which needs ``eta``).
        inner_states: one state per layer for ``solver.inner`` (kept across batches by the caller).
        diagnostics: fill ``StepReport.layers`` with per-layer :class:`LayerReport` s
            (costs extra passes over each layer and a host transfer per number).
        check_finite: raise if the data or the new parameters hold NaN/Inf
            (one device synchronisation per array).
        workers: solve this many layers' problems at once on threads (NumPy
            arrays; the problems are independent, so the result is the same bit for
            bit). Pair it with as few BLAS threads (threadpoolctl), e.g. 2 workers with
            1 BLAS thread each on 2 cores.
        gd_kernel: the fast path's hook: a GD solve with :func:`~locograd.locoprop.solve_gd`'s
            arguments and numbers (:func:`locograd._fast.local.solve_gd_inplace`, which
            :class:`locograd.optim.LocoProp` passes), or ``None`` for the reference.

    Returns:
        ``(new_params, info)``: the new parameters (same structure) and the :class:`StepReport`
        (the loss at :math:`W_t`, the inner states, the reports).

    Raises:
        TypeError: a variant or solver that is not a settings object (``"M"`` instead of ``M(...)``).
        ValueError: bad ``workers``, an exact M solve without ``eta``, ``inner_states`` of another length.
        NonFiniteError: non-finite data, or a step that produced non-finite parameters.
    """
    variant, solver = check_variant(variant), check_solver(solver)
    check_workers(workers)
    if isinstance(solver, Exact) and variant.name == "M" and variant.eta is None:
        raise ValueError(
            "eta: solver Exact() with variant M needs a proximal weight eta > 0 (M(gamma, eta=...)); "
            "without it J_M may be unbounded below"
        )
    if inner_states is not None and len(inner_states) != net.num_layers:
        raise ValueError(f"inner_states: expected {net.num_layers} per-layer states, got {len(inner_states)}")
    for flag, value in (("diagnostics", diagnostics), ("check_finite", check_finite)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag}: expected True or False, got {value!r}")
    if check_finite:
        _check_finite("x", [x])
        if getattr(y, "dtype", None) is not None and y.dtype.kind == "f":
            _check_finite("y", [y])
    # with check_finite, a step that overflows ends in ONE NonFiniteError naming the layer (below),
    # not in NumPy's overflow warnings from inside the solve (an error where warnings are errors)
    quiet = np.errstate(over="ignore", invalid="ignore") if check_finite else contextlib.nullcontext()
    with quiet:
        new_params, grads, states, reports = _step(
            net, params, x, y, variant, solver, inner_states, diagnostics, workers, gd_kernel
        )
    if check_finite:
        finite_parameters(
            "step", new_params, f"{variant}, {solver}", "lower the step sizes or add a proximal term eta"
        )
    return new_params, StepReport(grads.loss, reports, states)


def _step(
    net: Sequential,
    params: Params,
    x: Array,
    y: Array,
    variant: S | M,
    solver: GD | Exact,
    inner_states: Sequence[Any] | None,
    diagnostics: bool,
    workers: int,
    gd_kernel: GDKernel | None,
) -> tuple[Params, Grads, list[Any], list[LayerReport]]:
    """The work of :func:`step` once its arguments are checked: ``(new params, grads, states, reports)``."""
    problems, grads, trace = _local_problems_and_trace(net, params, x, y, variant)
    del trace  # each problem holds what it needs of it
    weighted = net.weight_layers  # problems[k] is layer weighted[k]'s
    long_gd = isinstance(solver, GD) and solver.steps > 1
    if variant.name == "M" and variant.eta is None and long_gd:  # one step is BackProp: safe
        for m, problem in zip(weighted, problems, strict=True):
            outside = int(count_out_of_range(problem)) if _maybe_out_of_range(problem) else 0
            if outside:
                warnings.warn(
                    f"layer {m}: {outside} of {problem.target.size} M targets lie outside the range "
                    f"{problem.matching_transfer.range} of {problem.matching_transfer.name}; without a proximal term (eta) "
                    "J_M is unbounded below there, so long inner GD diverges: pass eta, or keep steps small",
                    LocoPropWarning,
                    stacklevel=3,
                )

    def solve(k: int) -> tuple[dict[str, Array], Any, LayerReport | None]:
        solved = solve_layer(
            problems[k],
            solver,
            inner_state=None if inner_states is None else inner_states[weighted[k]],
            report=diagnostics,
            gd_kernel=gd_kernel,
        )
        return solved

    results = dict(zip(weighted, _solve_layers(solve, problems, workers), strict=True))
    new_params: Params = [results[m][0] if m in results else params[m] for m in range(net.num_layers)]
    states: list[Any] = [results[m][1] if m in results else None for m in range(net.num_layers)]
    reports: list[LayerReport] = [rep for _, _, rep in results.values() if rep is not None]
    return new_params, grads, states, reports
