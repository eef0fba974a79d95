r"""The fused local solve: :func:`locograd.locoprop.solve_gd` in reused buffers, with in-place steps.

:func:`solve_gd_inplace` takes the arguments of the reference :func:`~locograd.locoprop.solve_gd`
and returns its numbers bit for bit (tested in ``tests/test_locoprop.py``), doing less work:

* one :class:`Workspace` per solve: the residual :math:`R` and :math:`X^\top R` are written
  into buffers (:func:`residual_into`, :func:`gradient_into`) instead of fresh arrays (on a
  virtual machine every fresh multi-megabyte array costs page faults as well as a pass);
* after the first inner step (which never touches the anchor or the caller's state), the
  parameters are updated in place, and so is the inner optimizer's state through its hook
  ``update_inplace`` (:mod:`locograd._fast.updates`), when every array shares one dtype and is
  owned by the solve.

:class:`locograd.optim.LocoProp` passes it to :func:`locograd.locoprop.step` as the ``gd_kernel``
hook; the modules the tutorials teach from never reach it.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from ..backend import Array, array_namespace, tree_leaves
from ..locoprop.objectives import LocalProblem, _gradient, check_problem
from ..locoprop.settings import GD
from ..locoprop.solvers import _check_base, _check_gd, check_solvable, lr_factor_at
from ..transfer import sigmoid
from .kernels import bias_transfer

Params = dict[str, Array]


def same_dtype(problem: LocalProblem, params: Params) -> bool:
    """Whether inputs, target, anchor and ``params`` share one floating dtype.

    The condition of the in-place paths (:func:`residual_into`, :func:`gradient_into`):
    with mixed dtypes NumPy promotes, and writing into a buffer would round differently.
    """
    dt = problem.inputs.dtype
    arrays = (problem.target, problem.anchor["W"], problem.anchor["b"], params["W"], params["b"])
    return dt.kind == "f" and all(getattr(a, "dtype", None) == dt for a in arrays)


def residual_into(
    problem: LocalProblem, params: Params, out: Array, base: Array | None = None, scratch: Array | None = None
) -> Array:
    r""":math:`R` of :func:`~locograd.locoprop.residual`, written into ``out`` ``(B, d_out)``.

    Args:
        problem: the layer's problem (one dtype throughout, see :func:`same_dtype`).
        params: the current :math:`\tilde W`.
        out: scratch ``(B, d_out)`` of that dtype; it receives :math:`A`, then :math:`f(A)`,
            then :math:`R` (the bias, the transfer and the target in one pass per row block,
            :func:`locograd._fast.kernels.bias_transfer`).
        base: when ``params`` is the anchor, the forward pass's value there that the
            target was built from, :math:`A` (S) or :math:`f(A)` (M): then
            :math:`R = \text{base} - \text{target}` and the product is skipped.  Not modified.
        scratch: a ``(B, d_out)`` buffer for the sigmoid (``None``: fresh ones).

    Returns:
        ``out``, holding :math:`R` (bit for bit what the reference returns).
    """
    check_problem(problem)
    xp = array_namespace(problem.inputs)
    if base is not None:
        return xp.subtract(base, problem.target, out=out)
    xp.matmul(problem.inputs, params["W"], out=out)
    if problem.variant == "S":
        out += params["b"]
        return xp.subtract(out, problem.target, out=out)
    fa = bias_transfer(out, params["b"], problem.matching_transfer, scratch=scratch)
    return xp.subtract(fa, problem.target, out=out)


def gradient_into(
    problem: LocalProblem, params: Params, r: Array, out: Array, scratch: Array | None = None
) -> Params:
    r""":math:`\nabla J` from the residual ``r``, with :math:`X^\top R` written into ``out`` ``(d_in, d_out)``.

    ``scratch`` (shaped like ``W``) holds the proximal term's difference when ``eta`` is set.
    Bit for bit :func:`~locograd.locoprop.gradient`; ``out`` is the returned ``"W"`` entry.
    """
    xp = array_namespace(problem.inputs)
    g = {"W": xp.matmul(problem.inputs.T, r, out=out), "b": r.sum(axis=0)}
    if problem.eta is not None:
        inv_eta = 1.0 / problem.eta
        d = xp.subtract(params["W"], problem.anchor["W"], out=scratch)
        d *= inv_eta
        g["W"] += d
        g["b"] = g["b"] + inv_eta * (params["b"] - problem.anchor["b"])
    return g


class Workspace:
    r"""Scratch arrays that local solves of one shape reuse across their ``K`` inner steps, and across steps.

    ``a`` ``(B, d_out)`` receives :math:`A`, :math:`f(A)`, then :math:`R`; ``gW`` ``(d_in, d_out)``
    receives :math:`X^\top R`; ``prox`` (with ``eta``) the difference :math:`W - W_t`; ``scratch``
    ``(B, d_out)`` the sigmoid's temporary.  :meth:`acquire` takes one from a pool kept per shape
    (a steady-state step then allocates no large array: no page faults on fresh memory), and
    :meth:`release` gives it back; solves running at once on threads get distinct ones.
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
        sigmoid_m = problem.variant == "M" and problem.transfer is sigmoid
        self.scratch = xp.empty_like(self.a) if sigmoid_m else None

    @staticmethod
    def _key(problem: LocalProblem) -> tuple[Any, ...]:
        W = problem.anchor["W"]
        return (
            problem.inputs.shape[0],
            tuple(W.shape),
            W.dtype,
            type(W),
            problem.eta is not None,
            problem.variant == "M" and problem.transfer is sigmoid,
        )

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

    def gradient(self, params: Params, base: Array | None = None) -> Params:
        r""":math:`\nabla J` at ``params``; the ``"W"`` entry is the buffer ``gW`` (valid until the next call)."""
        r = residual_into(self.problem, params, self.a, base, self.scratch)
        return gradient_into(self.problem, params, r, self.gW, self.prox)


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


def solve_gd_inplace(
    problem: LocalProblem, solver: GD, inner_state: Any = None, *, base: Array | None = None
) -> tuple[Params, Any]:
    """:func:`locograd.locoprop.solve_gd`, fused (see the module docstring); the same arguments and numbers.

    Falls back to the reference's operations (fresh arrays, pure inner updates) where the fast
    path does not apply: mixed dtypes, or an inner optimizer without ``update_inplace``.
    """
    check_solvable(problem, "solve_gd")
    solver = _check_gd(solver)
    _check_base(problem, base)
    params, inner = problem.anchor, solver.inner
    callers = {id(a) for a in tree_leaves(inner_state)}  # the caller's state arrays: never written
    if inner is not None and inner_state is None:
        inner_state = inner.init(params)
    kernel = getattr(inner, "update_inplace", None) if inner is not None else None
    fast = same_dtype(problem, params) and (inner is None or kernel is not None)
    work = Workspace.acquire(problem) if fast else None
    try:
        return _solve(problem, solver, params, inner, inner_state, kernel, work, callers, base)
    finally:
        if work is not None:
            work.release()


def _solve(
    problem: LocalProblem,
    solver: GD,
    params: Params,
    inner: Any,
    inner_state: Any,
    kernel: Any,
    work: Workspace | None,
    callers: set[int],
    base: Array | None,
) -> tuple[Params, Any]:
    """The loop of :func:`solve_gd_inplace`, its arguments checked."""
    steps = solver.steps
    in_place = False
    for k in range(steps):
        factor = lr_factor_at(solver.lr_factor, k, steps)
        first = base if k == 0 else None
        if work is not None:
            g = work.gradient(params, first)
        else:
            g = _gradient(problem, params, None if first is None else first - problem.target)
        if inner is None:
            step = solver.base_lr * factor
            if in_place:
                for key in params:
                    g[key] *= step
                    params[key] -= g[key]
            else:
                params = {key: params[key] - step * g[key] for key in params}
                in_place = work is not None
        elif in_place and kernel is not None:
            inner_state = kernel(g, inner_state, params, lr=solver.base_lr * factor)
        else:
            updates, inner_state = inner.update(g, inner_state, params, lr=solver.base_lr * factor)
            params = {key: params[key] + updates[key] for key in params}
            in_place = work is not None and _owned_and_uniform(
                params, inner_state, problem.inputs.dtype, callers
            )
    return params, inner_state
