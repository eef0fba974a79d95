r"""LocoProp and BackProp as network optimizers (:class:`~locograd.optim.base.NetOptimizer`), and the released preset.

* :class:`BackProp` ``(net, inner)``: one step of a first-order optimizer on the gradient of the
  network loss :math:`\partial L/\partial W` per batch.
* :class:`LocoProp` ``(net, variant, solver)``: :func:`locograd.locoprop.step` with one inner
  optimizer state per layer kept across batches, as the released code does.
The released configuration (:func:`~locograd.optim.official` and its schedule) is
:mod:`locograd.optim.presets`'.

Both take the fast paths through their explicit hooks: BackProp's lean pass
(:func:`locograd._fast.passes.backprop_loss_and_grads`, bit for bit ``MLP.forward`` +
``MLP.backward``) and LocoProp's fused local solve (:func:`locograd._fast.local.solve_gd_inplace`,
bit for bit :func:`locograd.locoprop.solve_gd`).

>>> import numpy as np
>>> import locograd as lg
>>> from locograd.locoprop import GD, M
>>> net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> opt = lg.optim.LocoProp(net, M(gamma=1.0), GD(steps=3, inner=lg.optim.adam(1e-3)))
>>> params = net.init(seed=0)
>>> state = opt.init(params)
>>> x = np.random.default_rng(0).random((8, 4))
>>> params, state, info = opt.step(params, x, x, state)
>>> state.inner[0].step
3
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import locoprop
from .._fast.local import solve_gd_inplace
from .._fast.passes import Workspace, backprop_loss_and_grads
from ..backend import Array
from ..errors import StateMismatchError
from ..locoprop import GD, Exact, M, S
from ..locoprop.settings import check_inner, check_solver, check_variant
from ..nn import MLP, Params, Sequential
from ..validators import finite_parameters, number
from .base import GradientTransformation, StepInfo, all_finite, apply_updates, check_state_type
from .first_order import check_state


class BackPropState(NamedTuple):
    """:class:`BackProp`'s state: the inner optimizer's state for all parameters."""

    inner: Any


class LocoPropState(NamedTuple):
    """:class:`LocoProp`'s state: one inner optimizer state per layer (``None`` entries without one)."""

    inner: tuple[Any, ...]


class BackProp:
    r"""BackProp: one step of ``inner`` on :math:`\partial L/\partial W` per batch.

    Args:
        net: the network.
        inner: a first-order optimizer (:mod:`locograd.optim`: ``sgd``, ``adam``, ...).
        donate: the caller gives up ``params`` and ``state`` to each step (as JAX's buffer
            donation, or PyTorch's in-place optimizers): the step writes the new parameters and
            state into their arrays through ``inner.update_inplace`` and returns them, instead of
            allocating new ones.  The same numbers bit for bit; the arrays passed in must not be
            used afterwards.  For training loops, which keep only the latest parameters.

    ``step(params, x, y, state, lr=None)``: ``lr`` replaces ``inner``'s learning rate for this
    batch (the training loop's schedule).  The pass is the fused one
    (:func:`locograd._fast.passes.backprop_loss_and_grads`, bit for bit ``MLP.forward`` +
    ``MLP.backward``), in buffers kept from step to step.
    """

    name = "backprop"

    def __init__(self, net: Sequential, inner: GradientTransformation, *, donate: bool = False) -> None:
        if not isinstance(net, Sequential):
            raise TypeError(
                f"net: expected a locograd.nn.Sequential (an MLP, a CNN), got {type(net).__name__}"
            )
        if not isinstance(check_inner(inner), GradientTransformation):
            raise TypeError(
                f"inner: expected a GradientTransformation from locograd.optim, got {type(inner).__name__}"
            )
        if inner.lr is None:
            raise TypeError(
                f"inner: expected a transformation with a learning rate, got {inner.name} (lr None)"
            )
        if not isinstance(donate, bool):
            raise ValueError(f"donate: expected True or False, got {donate!r}")
        self.net, self.inner, self.donate = net, inner, donate
        self.lr: float = inner.lr
        self._workspace: Workspace | None = None

    def __repr__(self) -> str:
        return f"BackProp({self.inner.name}, lr={self.lr:g})"

    def init(self, params: Params) -> BackPropState:
        """``BackPropState(inner=inner.init(params))``."""
        return BackPropState(self.inner.init(self.net.check_params(params)))

    def check(self, params: Params, state: Any) -> Params:
        """Check ``params`` against the network and ``state`` against what :meth:`init` builds (no array read).

        Raises:
            StateMismatchError: naming the first path that differs, e.g. ``"state.inner.m[1]['W']: ..."``.
        """
        params = self.net.check_params(params)
        check_state_type("state", state, BackPropState, "BackProp")
        check_state(self.inner, state.inner, params, "state.inner")
        return params

    def step(
        self, params: Params, x: Array, y: Array, state: BackPropState, *, lr: float | None = None
    ) -> tuple[Params, BackPropState, StepInfo]:
        """One batch: ``(new_params, new_state, StepInfo(loss))``, the loss at the parameters before the step."""
        eta = self.lr if lr is None else number("lr", lr, low=0)
        params = self.check(params, state)
        if isinstance(self.net, MLP):  # the fused pass, for dense networks
            work = Workspace.for_batch(self.net, x, params[0]["W"].dtype, self._workspace)
            self._workspace = work
            loss, grads = backprop_loss_and_grads(self.net, params, x, y, work)
        else:  # the reference pass
            full = self.net.backward(params, self.net.forward(params, x), y)
            loss, grads = full.loss, full.as_params()
        hook = self.inner.update_inplace
        if self.donate and hook is not None:
            inner = hook(grads, state.inner, params, lr=eta)  # grads are the workspace's: scratch
            new = [dict(layer) for layer in params]
        else:
            updates, inner = self.inner.update(grads, state.inner, params, lr=eta)
            new = apply_updates(params, updates)
        finite_parameters(
            self.name, new, f"lr={eta}", "lower the learning rate (or check the data for NaN)", all_finite
        )
        return new, BackPropState(inner), StepInfo(loss)


class LocoProp:
    r"""LocoProp with per-layer inner states kept across batches.

    Args:
        net: the network.
        variant: :class:`~locograd.locoprop.S` or :class:`~locograd.locoprop.M` (``gamma``, ``eta``).
        solver: :class:`~locograd.locoprop.GD` (steps, lr, inner, lr_factor) or :class:`~locograd.locoprop.Exact`.
        diagnostics: fill the per-layer reports of the returned :class:`~locograd.optim.StepInfo`
            (extra work each batch).
        workers: layers solved at once on threads (see :func:`locograd.locoprop.step`).

    ``step(params, x, y, state, lr=None)``: ``lr`` replaces the GD solver's base learning rate
    for this batch (the schedule); zero (the released warm-up epoch 0) keeps the parameters but
    advances the inner states.
    """

    name = "locoprop"

    def __init__(
        self,
        net: Sequential,
        variant: S | M,
        solver: GD | Exact,
        *,
        diagnostics: bool = False,
        workers: int = 1,
    ) -> None:
        if not isinstance(net, Sequential):
            raise TypeError(
                f"net: expected a locograd.nn.Sequential (an MLP, a CNN), got {type(net).__name__}"
            )
        self.net = net
        self.variant, self.solver = check_variant(variant), check_solver(solver)
        if isinstance(solver, Exact) and variant.name == "M" and variant.eta is None:
            raise ValueError("eta: LocoProp-M with Exact() needs a proximal weight, M(gamma, eta=...)")
        if not isinstance(diagnostics, bool):
            raise ValueError(f"diagnostics: expected True or False, got {diagnostics!r}")
        self.diagnostics = diagnostics
        self.workers = locoprop.check_workers(workers)
        self.lr: float = solver.base_lr if isinstance(solver, GD) else 0.0

    def __repr__(self) -> str:
        return f"LocoProp({self.variant}, {self.solver})"

    @property
    def inner(self) -> GradientTransformation | None:
        """The GD solver's inner optimizer (``None`` for plain GD or the exact solver)."""
        return self.solver.inner if isinstance(self.solver, GD) else None

    def init(self, params: Params) -> LocoPropState:
        """``LocoPropState(inner=(one inner state per layer,))`` (``None`` entries without an inner
        optimizer, and for layers without weights)."""
        params = self.net.check_params(params)
        inner = self.inner
        return LocoPropState(tuple(None if inner is None or not p else inner.init(p) for p in params))

    def check(self, params: Params, state: Any) -> Params:
        """Check ``params`` against the network and every inner state against what its ``init`` builds.

        Raises:
            StateMismatchError: naming the first path that differs, e.g.
                ``"state.inner[1].m['W']: expected shape (3, 4), got (1, 4)"``.
        """
        params = self.net.check_params(params)
        check_state_type("state", state, LocoPropState, "LocoProp")
        inner = state.inner
        if not isinstance(inner, tuple) or len(inner) != len(params):
            got = f"{len(inner)} entries" if isinstance(inner, tuple) else type(inner).__name__
            kind = self.inner.name if self.inner is not None else "None"
            raise StateMismatchError(
                f"state.inner: expected a tuple of {len(params)} per-layer {kind} states, got {got}"
            )
        for m, layer in enumerate(params):
            if self.inner is None or not layer:
                if inner[m] is not None:
                    raise StateMismatchError(
                        f"state.inner[{m}]: expected None (no inner optimizer, or a layer without weights), "
                        f"got {type(inner[m]).__name__}"
                    )
            else:
                check_state(self.inner, inner[m], layer, f"state.inner[{m}]", f"params[{m}]")
        return params

    def step(
        self, params: Params, x: Array, y: Array, state: LocoPropState, *, lr: float | None = None
    ) -> tuple[Params, LocoPropState, StepInfo]:
        """One batch: ``(new_params, new_state, info)``; ``info.loss`` is the loss before the step."""
        solver = self.solver
        params = self.check(params, state)
        if lr is not None and isinstance(solver, Exact):
            raise ValueError(
                f"lr: LocoProp with the exact solver has no learning rate (it solves each local problem "
                f"exactly), got {lr!r}; pass none"
            )
        if lr is not None:
            lr = number("lr", lr, low=0)
            if isinstance(solver, GD) and solver.inner is None and lr == 0:  # plain GD at rate 0: no step
                loss = self.net.loss_fn.per_example(self.net.forward(params, x).pre[-1], y).mean()
                return list(params), state, StepInfo(loss)
            if isinstance(solver, GD):
                solver = solver.with_lr(lr)
        new, report = locoprop.step(
            self.net,
            params,
            x,
            y,
            variant=self.variant,
            solver=solver,
            inner_states=None if self.inner is None else state.inner,
            diagnostics=self.diagnostics,
            workers=self.workers,
            gd_kernel=solve_gd_inplace,
        )
        return new, LocoPropState(tuple(report.inner_states)), StepInfo(report.loss, tuple(report.layers))
