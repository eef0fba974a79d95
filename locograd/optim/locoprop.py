r"""LocoProp as a stateful optimizer for training loops, and the released ("official") preset.

:class:`LocoProp` keeps one inner-optimizer state per layer across batches, as
the released code does; ``mode="backprop"`` runs the same loop as a BackProp
baseline that applies the same optimizer type to the gradient of the global loss.
The state is ``{"name": "locoprop", "inner": [one inner state per layer]}``
(``{"name": "backprop", "inner": <one state for all params>}`` in backprop mode);
``update`` first checks (:meth:`LocoProp.check`) the params against the network and
every inner state against what the inner optimizer's ``init`` builds for its layer.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
>>> opt = lg.optim.LocoProp(net, variant="M", gamma=1.0, steps=3, inner=lg.optim.adam(1e-3))
>>> params = net.init(seed=0)
>>> state = opt.init(params)
>>> x = np.random.default_rng(0).random((8, 4))
>>> params, state, info = opt.update(params, x, x, state)
>>> state["inner"][0]["step"]
3
"""

from __future__ import annotations

from typing import Any

from .. import locoprop
from ..backend import Array, array_namespace
from ..errors import NonFiniteError, StateMismatchError
from ..locoprop.objectives import check_eta
from ..locoprop.solvers import LrFactor, check_inner, check_lr, check_steps
from ..locoprop.targets import check_gamma, check_variant
from ..network import MLP, Params
from ..validators import canonical_choice, number
from .first_order import Optimizer, check_kind, check_state, register_layout, rmsprop_tf1, sgd
from .schedules import Schedule, released_inner_factor, warmup_linear_decay

MODES = ("locoprop", "backprop")
KEYS = register_layout("locoprop", {"inner"})
register_layout("backprop", KEYS)


class LocoProp:
    """A LocoProp (or BackProp-baseline) optimizer with per-layer inner states.

    Args:
        net: the network.
        variant: ``"S"`` or ``"M"``.
        gamma: target step.
        eta: proximal weight or ``None``.
        solver: ``"gd"`` or ``"exact"``.
        steps: inner steps ``K`` per batch.
        inner: the inner first-order optimizer (default plain SGD with ``lr``).
        lr: base inner learning rate (overrides ``inner``'s); a schedule passes its own per call.
        lr_factor: within-batch factor ``lr_factor(k, K)``.
        mode: ``"locoprop"``, or ``"backprop"``: one step of ``inner`` on :math:`\\partial L/\\partial W`.
        schedule: optional per-epoch learning-rate schedule (used by training loops).
        diagnostics: fill the per-layer reports of the returned :class:`~locograd.locoprop.StepInfo`
            (extra work each batch).
        workers: layers solved at once on threads (see :func:`locograd.locoprop.step`).
    """

    def __init__(
        self,
        net: MLP,
        *,
        variant: str = "M",
        gamma: float = 1.0,
        eta: float | None = None,
        solver: str = "gd",
        steps: int = 1,
        inner: Optimizer | None = None,
        lr: float | None = None,
        lr_factor: LrFactor | None = None,
        mode: str = "locoprop",
        schedule: Schedule | None = None,
        diagnostics: bool = False,
        workers: int = 1,
    ) -> None:
        mode = canonical_choice("mode", mode, MODES)
        self.net = net
        self.variant = check_variant(variant)
        self.gamma = check_gamma(gamma)
        self.eta = check_eta(eta)
        self.solver = canonical_choice("solver", solver, locoprop.SOLVERS)
        self.steps = check_steps(steps)
        lr = check_lr(lr, required=False, allow_zero=inner is not None)
        self.inner = check_inner(inner) if inner is not None else sgd(lr if lr is not None else 0.01)
        self.lr = self.inner.lr if lr is None else lr
        if not isinstance(diagnostics, bool):
            raise ValueError(f"diagnostics: expected True or False, got {diagnostics!r}")
        self.lr_factor = lr_factor
        self.mode = mode
        self.schedule = schedule
        self.diagnostics = diagnostics
        self.workers = locoprop.check_workers(workers)

    def init(self, params: Params) -> dict[str, Any]:
        """State: ``{"name": "locoprop", "inner": [one inner state per layer]}``.

        Backprop mode: ``{"name": "backprop", "inner": <one inner state for all params>}``.
        """
        params = self.net.check_params(params)
        if self.mode == "backprop":
            return {"name": "backprop", "inner": self.inner.init(params)}
        return {"name": "locoprop", "inner": [self.inner.init(layer) for layer in params]}

    def check(self, params: Params, state: Any) -> Params:
        """Check ``params`` against the network and ``state`` against what :meth:`init` builds for them.

        The state's name (``"locoprop"`` or ``"backprop"``, the mode) and keys, then each
        inner state by :func:`~locograd.optim.check_state` (its optimizer's name, keys, step,
        shapes and dtypes; no array is read).

        Returns:
            ``params`` as a list.

        Raises:
            ValueError, TypeError: params that do not fit the network (see :meth:`~locograd.MLP.check_params`).
            StateMismatchError: naming the first path of the state that differs, e.g.
                ``"state['inner'][1]['m']['W']: expected shape (3, 4), got (1, 4)"``.
        """
        params = self.net.check_params(params)
        check_kind("state", state, self.mode, KEYS)
        inner = state["inner"]
        if self.mode == "backprop":
            check_state(self.inner, inner, params, "state['inner']")
            return params
        if not isinstance(inner, list | tuple) or len(inner) != len(params):
            got = f"{len(inner)} entries" if isinstance(inner, list | tuple) else type(inner).__name__
            kind = getattr(self.inner, "name", "inner")
            raise StateMismatchError(
                f"state['inner']: expected a list of {len(params)} per-layer {kind} states, got {got}"
            )
        for m, layer in enumerate(params):
            check_state(self.inner, inner[m], layer, f"state['inner'][{m}]", f"params[{m}]")
        return params

    def update(
        self, params: Params, x: Array, y: Array, state: dict[str, Any], lr: float | None = None
    ) -> tuple[Params, dict[str, Any], locoprop.StepInfo]:
        """One batch: returns ``(new_params, new_state, info)``.

        ``info.loss`` is the batch loss at the parameters before the update (a 0-d
        array); in backprop mode ``info.layers`` and ``info.inner_states`` are empty.

        ``lr`` (e.g. from the schedule) replaces the base learning rate for this batch; zero
        (the released warm-up epoch 0) keeps the parameters but advances the inner state.
        """
        base = self.lr if lr is None else number("lr", lr, low=0)
        params = self.check(params, state)
        if self.mode == "backprop":
            loss, g = self.net.loss_and_weight_grads(params, x, y)
            new, inner_state = self.inner.update(g, state["inner"], params, lr=base)
            for m, layer in enumerate(new):  # as locoprop.step checks its own result: once per batch
                for key in ("W", "b"):
                    if not bool(array_namespace(layer[key]).isfinite(layer[key]).all()):
                        raise NonFiniteError(
                            f"backprop: layer {m} {key} became non-finite (lr={base}); "
                            "lower the learning rate (or check the data for NaN)"
                        )
            return new, {"name": "backprop", "inner": inner_state}, locoprop.StepInfo(loss, [], [])
        new, info = locoprop.step(
            self.net,
            params,
            x,
            y,
            variant=self.variant,
            gamma=self.gamma,
            eta=self.eta,
            solver=self.solver,
            steps=self.steps,
            lr=base,
            inner=self.inner,
            inner_states=state["inner"],
            lr_factor=self.lr_factor,
            return_info=True,
            diagnostics=self.diagnostics,
            workers=self.workers,
        )
        return new, {"name": "locoprop", "inner": info.inner_states}, info


def official(net: MLP, mode: str = "locoprop", workers: int = 1) -> LocoProp:
    r"""The released configuration (LocoProp-M on the deep autoencoder).

    gamma = 10, K = 10 inner steps of TF1-RMSProp (``lr=1e-5``, decay 0.9,
    momentum 0.999, epsilon 1e-5 inside the root, mean-square slot starting at
    ones) with the within-batch factor :math:`\max(1 - k/K, 0.25)`, no proximal
    term; per-epoch schedule :math:`10^{-5}\,e/5` for :math:`e < 5`, then
    :math:`10^{-5}(1 - (e + 1 - 5)/95)`; the released run trains 99 epochs
    with batch 1000.  ``mode="backprop"`` is the same loop's BackProp baseline;
    ``workers`` solves layers at once on threads (the same results).
    """
    base_lr = 1e-5
    return LocoProp(
        net,
        variant="M",
        gamma=10.0,
        eta=None,
        solver="gd",
        steps=10,
        inner=rmsprop_tf1(lr=base_lr),
        lr_factor=released_inner_factor,
        mode=mode,
        schedule=warmup_linear_decay(base_lr, warmup=5, total=100),
        workers=workers,
    )
