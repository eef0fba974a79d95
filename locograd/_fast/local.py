r"""The fused local solve: :func:`locograd.locoprop.solve_gd` in reused buffers, with in-place steps.

:func:`solve_gd_inplace` takes the arguments of the reference :func:`~locograd.locoprop.solve_gd`
and returns its numbers bit for bit (tested in ``tests/test_locoprop.py``), doing less work:

* one :class:`Workspace` per solve: the step :math:`\delta = \tilde X D`, the residual :math:`R`
  and :math:`X^\top R` are written into buffers (:func:`residual_into`, :func:`gradient_into`)
  instead of fresh arrays (on a virtual machine every fresh multi-megabyte array costs page
  faults as well as a pass);
* the displacement :math:`D` belongs to the solve from its start at 0, so plain GD updates it in
  place from the first step; with an inner optimizer, after the first update (which never
  touches the caller's state), :math:`D` and the optimizer's state are updated in place through
  its hook ``update_inplace`` (:mod:`locograd._fast.updates`), when every array shares one dtype
  and is owned by the solve.

:class:`locograd.optim.LocoProp` passes it to :func:`locograd.locoprop.step` as the ``gd_kernel``
hook; the modules the tutorials teach from never reach it.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from ..backend import Array, array_namespace, tree_leaves
from ..locoprop.objectives import LocalProblem, _gradient, check_problem
from ..locoprop.settings import GD
from ..locoprop.solvers import _check_gd, check_solvable, lr_factor_at, moved_anchor, zero_displacement
from ..nn import Dense

Params = dict[str, Array]


def same_dtype(problem: LocalProblem, params: Params) -> bool:
    """Whether inputs, pre-activations, offset, anchor and ``params`` share one floating dtype.

    The condition of the in-place paths (:func:`residual_into`, :func:`gradient_into`):
    with mixed dtypes NumPy promotes, and writing into a buffer would round differently.
    """
    dt = problem.inputs.dtype
    arrays = (problem.pre, problem.offset, problem.anchor["W"], problem.anchor["b"], params["W"], params["b"])
    return dt.kind == "f" and all(getattr(a, "dtype", None) == dt for a in arrays)


def residual_into(problem: LocalProblem, D: Params, out: Array) -> Array:
    r""":math:`R` at the displacement ``D``, written into ``out`` ``(B, d_out)``.

    Args:
        problem: the layer's problem (one dtype throughout, see :func:`same_dtype`).
        D: the displacement :math:`D = \tilde W - \tilde W_t`.
        out: scratch ``(B, d_out)`` of that dtype; it receives :math:`\delta = XD_W + D_b`, then
            :math:`R = \delta + \gamma G` (S) or :math:`f(A_t + \delta) - f(A_t) + \gamma G` (M, the
            increment a fresh array of :meth:`~locograd.transfer.Transfer.increment`).

    Returns:
        ``out``, holding :math:`R` (bit for bit what the reference returns).
    """
    check_problem(problem)
    xp = array_namespace(problem.inputs)
    xp.matmul(problem.inputs, D["W"], out=out)
    out += D["b"]
    if problem.variant == "S":
        return xp.add(out, problem.offset, out=out)
    return xp.add(problem.matching_transfer.increment(problem.pre, out), problem.offset, out=out)


def gradient_into(
    problem: LocalProblem, D: Params, r: Array, out: Array, scratch: Array | None = None
) -> Params:
    r""":math:`\nabla J` from the residual ``r``, with :math:`X^\top R` written into ``out`` ``(d_in, d_out)``.

    ``scratch`` (shaped like ``W``) holds :math:`D_W/\eta` when ``eta`` is set.
    Bit for bit the reference gradient; ``out`` is the returned ``"W"`` entry.
    """
    xp = array_namespace(problem.inputs)
    g = {"W": xp.matmul(problem.inputs.T, r, out=out), "b": r.sum(axis=0)}
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        g["W"] += xp.multiply(D["W"], inv_eta, out=scratch)
        g["b"] = g["b"] + inv_eta * D["b"]
    return g


class Workspace:
    r"""Scratch arrays that local solves of one shape reuse across their ``K`` inner steps, and across steps.

    ``a`` ``(B, d_out)`` receives :math:`\delta`, then :math:`R`; ``gW`` ``(d_in, d_out)``
    receives :math:`X^\top R`; ``prox`` (with ``eta``) :math:`D_W/\eta`.  :meth:`acquire` takes
    one from a pool kept per shape (a steady-state step then allocates no large array: no page
    faults on fresh memory), and :meth:`release` gives it back; solves running at once on
    threads get distinct ones.
    """

    _free: ClassVar[dict[tuple[Any, ...], list[Workspace]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, problem: LocalProblem) -> None:
        xp = array_namespace(problem.inputs)
        W = problem.anchor["W"]
        self.key = self._key(problem)
        self.problem = problem
        self.a = xp.empty((problem.inputs.shape[0], W.shape[1]), dtype=W.dtype)
        self.gW = xp.empty_like(W)
        self.prox = xp.empty_like(W) if problem.eta is not None else None

    @staticmethod
    def _key(problem: LocalProblem) -> tuple[Any, ...]:
        W = problem.anchor["W"]
        return (problem.inputs.shape[0], tuple(W.shape), W.dtype, type(W), problem.eta is not None)

    @classmethod
    def acquire(cls, problem: LocalProblem) -> Workspace:
        """A workspace for ``problem``'s shapes: a free one of the pool, or a new one."""
        with cls._lock:
            free = cls._free.get(cls._key(problem))
            work = free.pop() if free else None
        if work is None:
            return cls(problem)
        work.problem = problem
        return work

    def release(self) -> None:
        """Give the workspace back to the pool (its arrays must no longer be in use)."""
        self.problem = None  # type: ignore[assignment]  # keeps no layer's data alive
        with self._lock:
            self._free.setdefault(self.key, []).append(self)

    def gradient(self, D: Params) -> Params:
        r""":math:`\nabla J` at the displacement ``D``; the ``"W"`` entry is the buffer ``gW`` (valid until the next call)."""
        r = residual_into(self.problem, D, self.a)
        return gradient_into(self.problem, D, r, self.gW, self.prox)


def _owned_and_uniform(params: Params, state: Any, dtype: Any, callers: set[int]) -> bool:
    """Whether the arrays of ``params`` and ``state`` are fresh, distinct, of ``dtype``, none the caller's.

    Checked once, after the first (pure) inner update, before later steps update in place.
    """
    arrays = [*tree_leaves(params), *(a for a in tree_leaves(state) if hasattr(a, "dtype"))]
    ids = {id(a) for a in arrays}
    return (
        all(a.dtype == dtype and a.base is None for a in arrays)
        and len(ids) == len(arrays)
        and not ids & callers
    )


def solve_gd_inplace(problem: LocalProblem, solver: GD, inner_state: Any = None) -> tuple[Params, Any]:
    """:func:`locograd.locoprop.solve_gd`, fused (see the module docstring); the same arguments and numbers.

    Falls back to the reference's operations (fresh arrays, pure inner updates) where the fast
    path does not apply: mixed dtypes, or an inner optimizer without ``update_inplace``.
    """
    check_solvable(problem, "solve_gd")
    solver = _check_gd(solver)
    inner = solver.inner
    callers = {id(a) for a in tree_leaves(inner_state)}  # the caller's state arrays: never written
    if inner is not None and inner_state is None:
        inner_state = inner.init(problem.anchor)
    kernel = getattr(inner, "update_inplace", None) if inner is not None else None
    D = zero_displacement(problem)
    fast = (
        isinstance(problem.view, Dense) and same_dtype(problem, D) and (inner is None or kernel is not None)
    )
    work = Workspace.acquire(problem) if fast else None
    try:
        D, inner_state = _solve(problem, solver, D, inner, inner_state, kernel, work, callers)
    finally:
        if work is not None:
            work.release()
    return moved_anchor(problem, D), inner_state


def _solve(
    problem: LocalProblem,
    solver: GD,
    D: Params,
    inner: Any,
    inner_state: Any,
    kernel: Any,
    work: Workspace | None,
    callers: set[int],
) -> tuple[Params, Any]:
    """The loop of :func:`solve_gd_inplace` on the displacement ``D`` (fresh zeros), its arguments checked."""
    steps = solver.steps
    in_place = False
    for k in range(steps):
        factor = lr_factor_at(solver.lr_factor, k, steps)
        g = work.gradient(D) if work is not None else _gradient(problem, D)
        if inner is None:
            step = solver.base_lr * factor
            if work is not None:  # D is the solve's own from the start
                for key in D:
                    g[key] *= step
                    D[key] -= g[key]
            else:
                D = {key: D[key] - step * g[key] for key in D}
        elif in_place and kernel is not None:
            inner_state = kernel(g, inner_state, D, lr=solver.base_lr * factor)
        else:
            updates, inner_state = inner.update(g, inner_state, D, lr=solver.base_lr * factor)
            D = {key: D[key] + updates[key] for key in D}
            in_place = work is not None and _owned_and_uniform(D, inner_state, problem.inputs.dtype, callers)
    return D, inner_state
