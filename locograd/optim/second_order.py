r"""Second-order baselines: K-FAC, Shampoo and FOOF, with the interface of :class:`~locograd.optim.LocoProp`.

Each is a :class:`~locograd.optim.base.NetOptimizer` built for a network, dense or convolutional
(``opt = KFAC(net, ...)``): ``state = opt.init(params)``;
``params, state, info = opt.step(params, x, y, state, lr=None)``.  The state is a NamedTuple
(:class:`KFACState`, :class:`ShampooState`, :class:`FOOFState`) whose per-layer statistics are
lists, one array per weight layer (the ``k``-th is layer ``net.weight_layers[k]``'s), and ``step`` first checks (:meth:`KFAC.check`) the params against
the network and the state against what ``init(params)`` builds: its type, step count and every
statistic's shape and dtype (a :class:`~locograd.errors.StateMismatchError` naming the path
otherwise, e.g. ``"state.A[1]: expected shape (4, 4), got (2, 2)"``).

Every preconditioner acts on one weight layer's augmented weights in its linear view,
:math:`\tilde W = [W; b]` ``(d_in + 1, d_out)`` (:meth:`~locograd.nn.WeightLayer.stack`; a
convolution's kernel as the ``(kh*kw*c_in, c_out)`` matrix on its patches; Shampoo: on that
matrix, with a diagonal AdaGrad preconditioner for ``b``).  The design :math:`\tilde X` has one row
per example and output position (one per example for a dense layer, :math:`|T| = 1`).  The preconditioned per-layer steps
are the gradients of the first-order :func:`~locograd.optim.momentum` transformation
(heavy ball, :math:`m \leftarrow \mu m + s`, update :math:`-\eta m`), whose
:class:`~locograd.optim.MomentumState` over the augmented matrices is the state's ``momentum``
field; its updates are unstacked (:func:`locograd.layers.unstack`) and added by
:func:`~locograd.optim.apply_updates`.  ``to_dense(state, layer)`` builds one layer's dense
preconditioner from the optimizer's own state, so that tests compare the structured update with
the exact formula on tiny layers.  Factors are applied by Cholesky or eigendecomposition, never
by an explicit inverse of a Kronecker product.

>>> import numpy as np
>>> import locograd as lg
>>> net = lg.MLP([3, 2], ["identity"], "squared_error")
>>> opt = lg.optim.FOOF(net, lr=0.1)
>>> params = net.init(seed=0)
>>> x = np.ones((4, 3))
>>> params, state, info = opt.step(params, x, np.zeros((4, 2)), opt.init(params))
>>> type(state).__name__, state.step, state.A[0].shape, opt.to_dense(state, 0).shape
('FOOFState', 1, (4, 4), (8, 8))

* K-FAC (Martens & Grosse, "Optimizing Neural Networks with Kronecker-factored
  Approximate Curvature", ICML 2015): the Fisher of the batch-mean loss per
  layer approximated as :math:`A \otimes G` with :math:`A = E[\tilde x\tilde x^\top]`
  (their eq. 1-3 / section 3) and :math:`G = E[g g^\top]`, :math:`g` the
  per-example gradient w.r.t. the pre-activation with targets sampled from the
  model's predictive distribution (section 5; ``fisher="empirical"`` uses the
  data's targets, ``fisher="expected"`` takes the expectation over the model's
  targets exactly, one backward pass per output unit through the loss's
  :meth:`~locograd.losses.Loss.fisher_root`).  On a convolution these are KFC's factors
  (Grosse & Martens, "A Kronecker-factored approximate Fisher matrix for convolution
  layers", ICML 2016): :math:`\Omega = E_n[\sum_t \tilde x_t\tilde x_t^\top]`, the patch covariance
  summed over the positions :math:`t` (``X~^T X~ / B``), and
  :math:`\Gamma = E_n[\frac1{|T|}\sum_t g_t g_t^\top]`, the pre-activation gradients' covariance
  averaged over positions; with one position they are K-FAC's.  Both are kept as exponential moving averages (section 5), factored
  Tikhonov damping :math:`(A + \pi\sqrt\lambda I)\otimes(G + \sqrt\lambda/\pi I)`
  with :math:`\pi = \sqrt{(\mathrm{tr}A/(d_{in}+1))/(\mathrm{tr}G/d_{out})}`
  (section 6.3, eq. 11), update :math:`(A+\pi\sqrt\lambda I)^{-1}\nabla_{\tilde W}(G+\sqrt\lambda/\pi I)^{-1}`,
  factors re-factorised every ``update_every`` steps, and either a fixed
  learning rate and momentum or (``adaptive=True``) the paper's step rule:
  :math:`\delta = \alpha\Delta + \mu\delta_0` with :math:`\Delta` the
  preconditioned direction, :math:`\delta_0` the previous update and
  :math:`(\alpha, \mu)` minimising the quadratic model
  :math:`M(\delta) = \tfrac12\delta^\top(F + \lambda I)\delta + \nabla h^\top\delta` with the
  exact Fisher :math:`F` of the batch (section 7, eq. 12-13, by
  :meth:`~locograd.MLP.fisher_quadratic`), and :math:`\lambda` adjusted by the
  Levenberg-Marquardt rule every ``update_every`` steps: with
  :math:`\rho = (h(\theta+\delta) - h(\theta))/M(\delta)`,
  :math:`\lambda \leftarrow \omega\lambda` if :math:`\rho > 3/4`,
  :math:`\lambda/\omega` if :math:`\rho < 1/4`, :math:`\omega = (19/20)^{T}`
  (section 6.5; the factored damping uses the same :math:`\lambda`, the
  simplification of section 6.6 with :math:`\gamma = \sqrt\lambda`).
* Shampoo (Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
  Optimization", ICML 2018, algorithm 1): :math:`L \leftarrow L + G G^\top`,
  :math:`R \leftarrow R + G^\top G` from :math:`\epsilon I`, update
  :math:`L^{-1/4} G R^{-1/4}` with inverse roots by ``eigh`` every
  ``update_every`` steps (Anil et al., "Scalable Second Order Optimization for
  Deep Learning", 2020, section 3); optional grafting of each layer's step norm
  to SGD or Adam (Anil et al. 2020, section 4.1).
* FOOF (Benzing, "Gradient Descent on Neurons and its Link to Approximate
  Second-Order Optimization", ICML 2022): :math:`\Delta\tilde W = -\eta\,(\bar A + \lambda I)^{-1}\nabla_{\tilde W} L`
  with :math:`\bar A` a moving average of :math:`\tilde X^\top\tilde X` divided by its number of rows
  (the mean over examples, and on a convolution over its :math:`B P` example-positions): K-FAC's input
  factor with :math:`G = I`, and with decay 0 exactly LocoProp-S's closed form
  (``damping = 1/(eta R)``, ``lr = gamma / R`` for a layer of :math:`R` design rows: :math:`B`, or :math:`BP`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..backend import Array, array_namespace
from ..errors import NonFiniteError, NotPositiveDefiniteError, StateMismatchError
from ..linalg import cholesky_apply, cholesky_factor
from ..nn import Params, Sequential, WeightLayer
from ..validators import canonical_choice, finite_parameters, integer, number, same_layout, template_array
from .base import GradientTransformation, StepInfo, apply_updates, check_state_type, check_step
from .first_order import AdamState, MomentumState, check_state
from .first_order import adam as adam_optimizer
from .first_order import momentum as momentum_transformation

__all__ = [
    "FOOF",
    "KFAC",
    "FOOFState",
    "KFACState",
    "Shampoo",
    "ShampooState",
    "inverse_root",
    "spd_factor",
]

FISHER = ("sampled", "empirical", "expected")
DAMPING_RANGE = (1e-8, 1e8)  # the Levenberg-Marquardt rule keeps lambda inside this range
GRAFTING = (None, "sgd", "adam")


class KFACState(NamedTuple):
    r""":class:`KFAC`'s state; every per-layer field is a list of one array per layer.

    Attributes:
        step: the number of batches seen.
        A: moving averages of :math:`E[\tilde x\tilde x^\top]` (KFC's :math:`\Omega` on a convolution), ``(d_in + 1, d_in + 1)``.
        G: moving averages of :math:`E[g g^\top]` (:math:`\Gamma`), ``(d_out, d_out)``.
        chol_A, chol_G: Cholesky factors of the damped factors of the last refresh.
        damping: :math:`\lambda` (adapted with ``adaptive=True``, else the constructor's).
        momentum: the heavy-ball :class:`~locograd.optim.MomentumState` over the augmented
            ``(d_in + 1, d_out)`` steps; ``None`` with ``adaptive=True``.
        previous: with ``adaptive=True``, the previous update :math:`\delta_0` per layer
            (augmented, the change of :math:`\tilde W`); ``None`` otherwise.
    """

    step: int
    A: list[Array]
    G: list[Array]
    chol_A: list[Array]
    chol_G: list[Array]
    damping: float
    momentum: MomentumState | None
    previous: list[Array] | None


class ShampooState(NamedTuple):
    """:class:`Shampoo`'s state; every per-layer field is a list of one array per layer.

    Attributes:
        step: the number of batches seen.
        L, R: the statistics :math:`\\epsilon I + \\sum G G^\\top` ``(d_in, d_in)`` and
            :math:`\\epsilon I + \\sum G^\\top G` ``(d_out, d_out)``.
        L_root, R_root: their inverse fourth roots of the last refresh.
        bias_sum: :math:`\\epsilon + \\sum g_b^2` ``(d_out,)``, the bias's AdaGrad statistic.
        momentum: the heavy-ball :class:`~locograd.optim.MomentumState` over the augmented steps.
        adam: with ``grafting="adam"``, the grafted Adam's :class:`~locograd.optim.AdamState`; else ``None``.
    """

    step: int
    L: list[Array]
    R: list[Array]
    L_root: list[Array]
    R_root: list[Array]
    bias_sum: list[Array]
    momentum: MomentumState
    adam: AdamState | None


class FOOFState(NamedTuple):
    r""":class:`FOOF`'s state; every per-layer field is a list of one array per layer.

    Attributes:
        step: the number of batches seen.
        A: moving averages of :math:`E[\tilde x\tilde x^\top]`, ``(d_in + 1, d_in + 1)``.
        chol_A: Cholesky factors of :math:`A + \lambda I` of the last refresh.
        momentum: the heavy-ball :class:`~locograd.optim.MomentumState` over the augmented steps.
    """

    step: int
    A: list[Array]
    chol_A: list[Array]
    momentum: MomentumState


def _positive(name: str, value: float) -> float:
    return number(name, value, low=0, low_open=True)


def _unit(name: str, value: float) -> float:
    return number(name, value, low=0, high=1, high_open=True)


def _check_finite(matrix: Array, name: str) -> None:
    if not bool(array_namespace(matrix).isfinite(matrix).all()):
        raise NonFiniteError(f"{name}: non-finite statistics (NaN or Inf); lower the learning rate")


def spd_factor(matrix: Array, name: str) -> Array:
    """Cholesky factor of a damped factor; a clear error when it is not positive definite."""
    try:
        return cholesky_factor(matrix)
    except ValueError:
        raise NotPositiveDefiniteError(
            f"{name}: the damped factor is not symmetric positive definite; raise the damping"
        ) from None


class _NetOptimizer:
    """Shared plumbing: learning rate, the momentum transformation on the preconditioned steps, state checks."""

    name: ClassVar[str]  # names the messages
    state_type: ClassVar[type]  # what init builds

    def __init__(self, net: Sequential, lr: float, momentum: float, update_every: int) -> None:
        if not isinstance(net, Sequential):
            raise TypeError(
                f"net: {self.name} takes a network (an nn.Sequential or MLP), got {type(net).__name__}"
            )
        self.net = net
        self.weighted: list[int] = net.weight_layers  # the state's k-th statistics are layer weighted[k]'s
        self.lr = _positive("lr", lr)
        self.momentum = _unit("momentum", momentum)
        self.update_every = integer("update_every", update_every, minimum=1)
        self.heavy_ball: GradientTransformation = momentum_transformation(lr=self.lr, beta=self.momentum)
        self._templates: dict[Any, dict[str, list[np.ndarray]]] = {}

    def _view(self, k: int) -> WeightLayer:
        r"""The ``k``-th weight layer, whose linear view gives its Kronecker block: the design :math:`\tilde X` and :math:`\tilde W`."""
        layer = self.net.layers[self.weighted[k]]
        assert isinstance(layer, WeightLayer)  # weight_layers lists only those
        return layer

    def _dtype(self, params: Params) -> Any:
        return params[self.weighted[0]]["W"].dtype

    def _as_params(self, per_layer: list[Array]) -> Params:
        """Stacked per-weight-layer arrays as a params-structured list (``{}`` for a layer without weights)."""
        full: Params = [{} for _ in self.net.layers]
        for k, m in enumerate(self.weighted):
            full[m] = self._view(k).unstack(per_layer[k])
        return full

    def _slot_shapes(self, d_in: int, d_out: int) -> dict[str, tuple[int, ...]]:
        """The shape of each per-layer statistic of the state (its list fields), for a ``(d_in, d_out)`` layer."""
        raise NotImplementedError

    def _template(self, dtype: Any) -> dict[str, list[np.ndarray]]:
        """Per-layer arrays of the state as zero-memory templates (shapes and dtype), cached per dtype.

        The key ``"augmented"`` holds the ``(d_in + 1, d_out)`` templates of the steps (the momentum buffer).
        """
        template = self._templates.get(dtype)
        if template is None:
            shapes = []
            for k in range(len(self.weighted)):
                d_in, d_out = self._view(k).matrix_shape
                shapes.append({**self._slot_shapes(d_in, d_out), "augmented": (d_in + 1, d_out)})
            template = {key: [template_array(s[key], dtype) for s in shapes] for key in shapes[0]}
            self._templates[dtype] = template
        return template

    def check(self, params: Params, state: Any) -> Params:
        """Check ``params`` against the network and ``state`` against what :meth:`init` builds for them.

        Compares the state's type, step count (an ``int >= 0``) and every array's shape and dtype
        (the parameters'); reads no array.

        Returns:
            ``params`` as a list.

        Raises:
            ValueError, TypeError: params that do not fit the network (see :meth:`~locograd.MLP.check_params`).
            StateMismatchError: naming the first path of the state that differs
                (``"state.A[1]: expected shape (4, 4), got (2, 2)"``); a dict (an earlier
                locograd's layout) in one line.
        """
        params = self.net.check_params(params)
        check_state_type("state", state, self.state_type, self.name)
        check_step("state.step", state.step)
        template = self._template(self._dtype(params))
        for key, layers in template.items():
            if key != "augmented":
                same_layout(f"state.{key}", getattr(state, key), layers)
        return params

    def _check_momentum(self, state: Any, dtype: Any) -> None:
        check_state(
            self.heavy_ball, state.momentum, self._template(dtype)["augmented"], "state.momentum", "steps"
        )

    def _apply(
        self, params: Params, steps: list[Array], momentum: MomentumState, lr: float | None
    ) -> tuple[Params, MomentumState]:
        """Heavy ball on the preconditioned steps: :math:`m \\leftarrow \\mu m + s`, :math:`\\tilde W \\leftarrow \\tilde W - \\eta m`."""
        updates, momentum = self.heavy_ball.update(steps, momentum, None, lr=lr)
        return apply_updates(params, self._as_params(updates)), momentum

    def _finite(self, new: Params, lr: float | None) -> Params:
        """``new`` unchanged if every parameter is finite (one reduction per array, once per batch).

        Raises:
            NonFiniteError: ``"kfac: layer 0 W became non-finite (lr=...); lower the learning rate ..."``.
        """
        why = f"lr={self.lr if lr is None else lr}"
        finite_parameters(self.name, new, why, "lower the learning rate or raise the damping")
        return new

    def _layer(self, state: Any, layer: int) -> int:
        """Check ``to_dense``'s arguments (``state`` of this optimizer, ``layer`` an index of a weight
        layer in ``net.layers``); returns the layer's position ``k`` in the state's lists."""
        check_state_type("state", state, self.state_type, self.name)
        m = integer("layer", layer, minimum=0, maximum=self.net.num_layers - 1)
        if m not in self.weighted:
            raise ValueError(
                f"layer: {self.net.layers[m].describe(m)} has no weights; the weight layers are {self.weighted}"
            )
        for field, value in state._asdict().items():  # one entry per weight layer in every list
            if isinstance(value, list) and len(value) != len(self.weighted):
                raise StateMismatchError(
                    f"state.{field}: expected one entry per weight layer ({len(self.weighted)}), got {len(value)}; "
                    "is it the state of another network?"
                )
        return self.weighted.index(m)

    def _factor(self, state: Any, field: str, k: int, size: int) -> Array:
        """``state.<field>[k]``, checked to be ``size x size`` (the layer's, not another network's)."""
        factor = getattr(state, field)[k]
        if tuple(getattr(factor, "shape", ())) != (size, size):
            raise StateMismatchError(
                f"state.{field}[{k}]: expected shape ({size}, {size}) for weight layer {self.weighted[k]} of this "
                f"network, got {tuple(getattr(factor, 'shape', ()))}; is it the state of another network?"
            )
        return factor

    def _zeros(self, params: Params) -> list[Array]:
        return [
            array_namespace(params[m]["W"]).zeros_like(self._view(k).stack(params[m]))
            for k, m in enumerate(self.weighted)
        ]

    def _shapes(self) -> list[tuple[int, int]]:
        """Each weight layer's ``(d_in, d_out)`` (:attr:`~locograd.nn.WeightLayer.matrix_shape`)."""
        return [self._view(k).matrix_shape for k in range(len(self.weighted))]


class KFAC(_NetOptimizer):
    """K-FAC (Martens & Grosse 2015); see the module docstring for every formula.

    Args:
        net: the network.
        lr: learning rate.
        damping: Tikhonov damping :math:`\\lambda > 0`, split between the factors by the pi-correction.
        momentum: momentum on the preconditioned step.
        decay: moving-average decay of the factors (the first batch initialises them).
        update_every: re-factorise the damped factors every this many steps.
        fisher: ``"sampled"`` (targets drawn from the model: Bernoulli for a
            sigmoid output, categorical for softmax, Gaussian for identity), ``"empirical"`` (the
            data's targets) or ``"expected"`` (the expectation over the model's targets, exactly: one
            backward pass per output unit).
        seed: seed of the target sampler.
        adaptive: choose the step by the exact quadratic model and adapt the damping
            (Martens & Grosse, sections 6.5 and 7): the update is
            ``lr * (alpha Delta + mu delta_0)`` with ``alpha, mu`` the model's minimiser, so
            ``lr = 1`` takes the model's step; ``momentum > 0`` enables the ``mu`` term (its
            value is then not used) and ``momentum = 0`` leaves it out; ``damping`` is
            the initial :math:`\\lambda`.  The state keeps :math:`\\delta_0` in ``previous``
            (and no momentum buffer).
    """

    name = "kfac"
    state_type = KFACState

    def __init__(
        self,
        net: Sequential,
        lr: float = 0.01,
        damping: float = 1e-2,
        momentum: float = 0.9,
        decay: float = 0.95,
        update_every: int = 10,
        fisher: str = "sampled",
        seed: int = 0,
        adaptive: bool = False,
    ) -> None:
        super().__init__(net, lr, momentum, update_every)
        if not isinstance(adaptive, bool):
            raise ValueError(f"adaptive: expected True or False, got {adaptive!r}")
        self.adaptive = adaptive
        self.damping = _positive("damping", damping)
        self.decay = _unit("decay", decay)
        self.fisher = canonical_choice("fisher", fisher, FISHER)
        self.seed = integer("seed", seed, minimum=0)

    def init(self, params: Params) -> KFACState:
        params = self.net.check_params(params)
        dt = self._dtype(params)
        xp = array_namespace(params[self.weighted[0]]["W"])
        shapes = self._shapes()
        return KFACState(
            step=0,
            A=[xp.zeros((d_in + 1,) * 2, dtype=dt) for d_in, _ in shapes],
            G=[xp.zeros((d_out,) * 2, dtype=dt) for _, d_out in shapes],
            chol_A=[xp.eye(d_in + 1, dtype=dt) for d_in, _ in shapes],
            chol_G=[xp.eye(d_out, dtype=dt) for _, d_out in shapes],
            damping=self.damping,
            momentum=None if self.adaptive else self.heavy_ball.init(self._zeros(params)),
            previous=self._zeros(params) if self.adaptive else None,
        )

    def _slot_shapes(self, d_in: int, d_out: int) -> dict[str, tuple[int, ...]]:
        a, g = (d_in + 1,) * 2, (d_out,) * 2
        return {"A": a, "G": g, "chol_A": a, "chol_G": g}

    def check(self, params: Params, state: Any) -> Params:
        """As :meth:`_NetOptimizer.check`, and ``state.damping`` a finite number > 0; with
        ``adaptive=True`` ``state.previous`` shaped like the augmented weights and ``state.momentum``
        ``None``, else the reverse."""
        params = super().check(params, state)
        try:
            number("state.damping", state.damping, low=0, low_open=True)
        except ValueError as exc:
            raise StateMismatchError(str(exc)) from None
        dtype = self._dtype(params)
        if self.adaptive:
            same_layout("state.momentum", state.momentum, None)
            same_layout("state.previous", state.previous, self._template(dtype)["augmented"])
        else:
            same_layout("state.previous", state.previous, None)
            self._check_momentum(state, dtype)
        return params

    def _sample_targets(self, output: Array, step: int) -> Array:
        """Targets from the model's predictive distribution (the loss's ``sample``), seeded by ``(seed, step)``."""
        return self.net.loss_fn.sample(np.random.default_rng([self.seed, step]), output)

    def _expected_output_factors(self, params: Params, trace: Any) -> list[Array]:
        r"""The expected Fisher's :math:`\Gamma` of every weight layer, exactly.

        For each column :math:`j` of the output's Fisher root :math:`S_n` (:meth:`~locograd.losses.Loss.fisher_root`),
        backpropagate :math:`S_n e_j` to every weight layer's pre-activation rows :math:`r`;
        :math:`\Gamma = \sum_j R_j^\top R_j / \mathrm{rows} = E_y[g g^\top]` averaged over rows (one backward
        pass per output unit).
        """
        roots = self.net.loss_fn.fisher_root(trace.output)
        xp = array_namespace(roots)
        sums = [xp.zeros((d_out, d_out), dtype=roots.dtype) for _, d_out in self._shapes()]
        rows = [0] * len(sums)
        for j in range(roots.shape[2]):
            pre = self.net.vjp(params, trace, xp.ascontiguousarray(roots[:, :, j]), weight_grads=False).pre
            for k, m in enumerate(self.weighted):
                r = self._view(k).rows(pre[m])
                sums[k] += r.T @ r
                rows[k] = r.shape[0]
        return [total / n for total, n in zip(sums, rows, strict=True)]

    def damped_factors(self, A: Array, G: Array, damping: float | None = None) -> tuple[Array, Array]:
        r"""The factored Tikhonov damping: :math:`(A + \pi\sqrt\lambda I, G + \sqrt\lambda/\pi I)`.

        ``damping`` is :math:`\lambda` (default: the constructor's).
        """
        xp = array_namespace(A)
        tr_a = float(xp.trace(A)) / A.shape[0]
        tr_g = float(xp.trace(G)) / G.shape[0]
        pi = math.sqrt(tr_a / tr_g) if tr_a > 0 and tr_g > 0 else 1.0
        root = math.sqrt(self.damping if damping is None else damping)
        return A + pi * root * xp.eye(A.shape[0], dtype=A.dtype), G + root / pi * xp.eye(
            G.shape[0], dtype=G.dtype
        )

    def precondition(self, chol_A: Array, chol_G: Array, grad: Array) -> Array:
        r""":math:`A_\lambda^{-1} \nabla G_\lambda^{-1}` given Cholesky factors of the damped factors."""
        return cholesky_apply(chol_G, cholesky_apply(chol_A, grad).T).T

    def to_dense(self, state: KFACState, layer: int) -> Array:
        r"""Layer ``layer``'s dense damped preconditioner :math:`A_\lambda \otimes G_\lambda`, for row-major ``vec`` of :math:`\tilde W`.

        ``layer`` indexes ``net.layers`` (a weight layer; the state's lists hold its statistics at its
        position among ``net.weight_layers``).  Built from the state alone: ``state.A``, ``state.G`` and ``state.damping``,
        damped as :meth:`damped_factors` splits it; after a step that refreshed the factors with an
        unchanged damping (``adaptive=False``), the step was :math:`-\eta` times its inverse
        applied to the gradient (without momentum).
        """
        m = self._layer(state, layer)
        d_in, d_out = self._shapes()[m]
        A, G = self._factor(state, "A", m, d_in + 1), self._factor(state, "G", m, d_out)
        damped_A, damped_G = self.damped_factors(A, G, state.damping)
        return array_namespace(damped_A).kron(damped_A, damped_G)

    def step(
        self, params: Params, x: Array, y: Array, state: KFACState, *, lr: float | None = None
    ) -> tuple[Params, KFACState, StepInfo]:
        """One batch: ``(new_params, new_state, StepInfo(loss))``; ``params`` and ``state`` are not modified."""
        lr = number("lr", lr, low=0, allow_none=True)
        params = self.check(params, state)
        trace = self.net.forward(params, x)
        grads = self.net.backward(params, trace, y)
        B = x.shape[0]
        step = int(state.step)
        g_batches: list[Array] = []
        if self.fisher == "expected":
            g_batches = self._expected_output_factors(params, trace)
        else:
            pre = grads.pre
            if self.fisher == "sampled":
                pre = self.net.backward(
                    params, trace, self._sample_targets(trace.output, step), weight_grads=False
                ).pre
            for k, m in enumerate(self.weighted):
                g = self._view(k).rows(B * pre[m])  # per-example gradients, one row per example and position
                g_batches.append(g.T @ g / g.shape[0])
        A, G = list(state.A), list(state.G)
        chol_A, chol_G = list(state.chol_A), list(state.chol_G)
        first = step == 0
        refresh = step % self.update_every == 0
        layer_grads = grads.as_params()
        steps = []
        for k, m in enumerate(self.weighted):
            xa = self._view(k).design(trace.inputs[m])
            a_batch = xa.T @ xa / B
            rho = 0.0 if first else self.decay
            A[k] = rho * A[k] + (1 - rho) * a_batch
            G[k] = rho * G[k] + (1 - rho) * g_batches[k]
            if refresh:
                _check_finite(A[k], f"A[{k}]")
                _check_finite(G[k], f"G[{k}]")
                damped_A, damped_G = self.damped_factors(A[k], G[k], state.damping)
                chol_A[k] = spd_factor(damped_A, f"A[{k}]")  # factorised once per refresh
                chol_G[k] = spd_factor(damped_G, f"G[{k}]")
            steps.append(self.precondition(chol_A[k], chol_G[k], self._view(k).stack(layer_grads[m])))
        new_state = state._replace(step=step + 1, A=A, G=G, chol_A=chol_A, chol_G=chol_G)
        if self.adaptive:
            new, previous, damping = self._model_step(params, trace, grads, steps, state, x, y, lr, refresh)
            new_state = new_state._replace(previous=previous, damping=damping)
        else:
            assert state.momentum is not None  # check() made sure
            new, momentum = self._apply(params, steps, state.momentum, lr)
            new_state = new_state._replace(momentum=momentum)
        return self._finite(new, lr), new_state, StepInfo(grads.loss)

    def _model_step(
        self,
        params: Params,
        trace: Any,
        grads: Any,
        steps: list[Array],
        state: KFACState,
        x: Array,
        y: Array,
        lr: float | None,
        adapt: bool,
    ) -> tuple[Params, list[Array], float]:
        r"""Martens & Grosse's step rule: :math:`(\alpha, \mu)` from the quadratic model, then the LM rule.

        Returns:
            The new parameters, the update :math:`\delta` (augmented, per layer) and the new damping.
        """
        scale = self.lr if lr is None else float(lr)
        lam = state.damping
        layer_grads = grads.as_params()
        grad = [self._view(k).stack(layer_grads[m]) for k, m in enumerate(self.weighted)]
        direction = [-s for s in steps]  # Delta = -F~^-1 grad
        previous = state.previous
        assert previous is not None  # check() made sure
        use_previous = self.momentum > 0 and state.step > 0
        candidates = [direction, previous] if use_previous else [direction]
        as_params = [self._as_params(c) for c in candidates]

        def dot(u: list[Array], v: list[Array]) -> float:
            return sum(float((a * b).sum()) for a, b in zip(u, v, strict=True))

        Q: np.ndarray = self.net.fisher_gram(params, trace, as_params)
        Q += lam * np.array([[dot(a, b) for b in candidates] for a in candidates])
        lin = np.array([dot(grad, c) for c in candidates])
        if not (np.isfinite(Q).all() and np.isfinite(lin).all()):
            raise NonFiniteError(
                "kfac: the quadratic model is not finite (NaN or Inf); lower the learning rate or raise the damping"
            )
        coef = _minimise_quadratic(Q, lin)
        coef *= scale
        update = [
            sum(float(c) * cand[m] for c, cand in zip(coef, candidates, strict=True))
            for m in range(len(steps))
        ]
        predicted = 0.5 * float(coef @ Q @ coef) + float(lin @ coef)  # M(delta) - M(0)
        new = apply_updates(params, self._as_params(update))
        if adapt and predicted < 0:
            rho = (self.net.loss(new, x, y) - float(grads.loss)) / predicted
            omega = (19 / 20) ** self.update_every
            if rho > 0.75:
                lam *= omega
            elif rho < 0.25:
                lam /= omega
            lam = min(max(lam, DAMPING_RANGE[0]), DAMPING_RANGE[1])
        return new, update, lam


def _minimise_quadratic(Q: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """argmin of ``c^T Q c / 2 + lin^T c`` for PSD ``Q`` (1x1 or 2x2).

    Drops the second term when ``Q`` is singular, and both (no step) when the
    first direction is zero (a zero gradient).
    """
    if Q.shape[0] == 2:
        det = Q[0, 0] * Q[1, 1] - Q[0, 1] ** 2
        if det > 1e-12 * Q[0, 0] * Q[1, 1]:
            return np.linalg.solve(Q, -lin)
    coef = np.zeros(Q.shape[0])
    if Q[0, 0] > 0:
        coef[0] = -lin[0] / Q[0, 0]
    return coef


def inverse_root(matrix: Array, power: float, fallback: Array | None = None, name: str = "factor") -> Array:
    r""":math:`M^{-1/p}` of a symmetric positive-definite matrix by ``eigh``.

    If the decomposition fails, warn and return ``fallback`` (the previous
    root) or the identity, never NaN.
    """
    xp = array_namespace(matrix)
    try:
        lam, Q = xp.linalg.eigh(matrix)
        if not bool(xp.isfinite(lam).all()):
            raise np.linalg.LinAlgError("non-finite eigenvalues")
    except np.linalg.LinAlgError as exc:
        warnings.warn(
            f"{name}: eigendecomposition failed ({exc}); keeping the previous preconditioner",
            RuntimeWarning,
            stacklevel=2,
        )
        return fallback if fallback is not None else xp.eye(matrix.shape[0], dtype=matrix.dtype)
    lam = xp.maximum(lam, float(xp.finfo(matrix.dtype).tiny))
    return (Q * lam ** (-1.0 / power)) @ Q.T


def _graft(direction: Array, target: Array) -> Array:
    """``direction`` rescaled to the Frobenius norm of ``target``."""
    xp = array_namespace(direction)
    norm = xp.sqrt((direction * direction).sum())
    return direction * (xp.sqrt((target * target).sum()) / xp.maximum(norm, xp.finfo(direction.dtype).tiny))


class Shampoo(_NetOptimizer):
    """Shampoo (Gupta, Koren & Singer 2018) with optional grafting (Anil et al. 2020).

    Args:
        net: the network.
        lr: learning rate.
        eps: initial :math:`\\epsilon I` of both statistics (> 0).
        momentum: momentum on the (grafted) step.
        update_every: recompute the inverse fourth roots every this many steps.
        grafting: ``None``, ``"sgd"`` (each weight matrix's and bias's step gets the
            norm of its gradient) or ``"adam"`` (the norm of an Adam step with the same
            learning rate), per tensor as in Anil et al. (2020).
    """

    name = "shampoo"
    state_type = ShampooState

    def __init__(
        self,
        net: Sequential,
        lr: float = 0.01,
        eps: float = 1e-4,
        momentum: float = 0.9,
        update_every: int = 10,
        grafting: str | None = None,
    ) -> None:
        super().__init__(net, lr, momentum, update_every)
        self.eps = _positive("eps", eps)
        self.grafting = None if grafting is None else canonical_choice("grafting", grafting, GRAFTING[1:])
        self._adam = adam_optimizer(lr=1.0)

    def init(self, params: Params) -> ShampooState:
        params = self.net.check_params(params)
        dt = self._dtype(params)
        xp = array_namespace(params[self.weighted[0]]["W"])
        shapes = self._shapes()
        return ShampooState(
            step=0,
            L=[self.eps * xp.eye(d_in, dtype=dt) for d_in, _ in shapes],
            R=[self.eps * xp.eye(d_out, dtype=dt) for _, d_out in shapes],
            L_root=[xp.eye(d_in, dtype=dt) for d_in, _ in shapes],
            R_root=[xp.eye(d_out, dtype=dt) for _, d_out in shapes],
            bias_sum=[xp.full_like(params[m]["b"], self.eps) for m in self.weighted],
            momentum=self.heavy_ball.init(self._zeros(params)),
            adam=self._adam.init(params) if self.grafting == "adam" else None,
        )

    def _slot_shapes(self, d_in: int, d_out: int) -> dict[str, tuple[int, ...]]:
        left, right = (d_in,) * 2, (d_out,) * 2
        return {"L": left, "R": right, "L_root": left, "R_root": right, "bias_sum": (d_out,)}

    def check(self, params: Params, state: Any) -> Params:
        """As :meth:`_NetOptimizer.check`, with the momentum state, and with ``grafting="adam"`` the
        Adam state ``state.adam`` (``None`` otherwise)."""
        params = super().check(params, state)
        self._check_momentum(state, self._dtype(params))
        if self.grafting == "adam":
            check_state(self._adam, state.adam, params, "state.adam")
        else:
            same_layout("state.adam", state.adam, None)
        return params

    def precondition(self, L_root: Array, R_root: Array, grad: Array) -> Array:
        r""":math:`L^{-1/4} G R^{-1/4}` given the stored roots."""
        return L_root @ grad @ R_root

    def to_dense(self, state: ShampooState, layer: int) -> Array:
        r"""Layer ``layer``'s dense :math:`(L \otimes R)^{-1/4}`, for row-major ``vec`` of ``W`` (a kernel: its matrix).

        ``layer`` indexes ``net.layers`` (a weight layer).  Built from the state alone (``state.L``, ``state.R``, one ``eigh`` of the
        Kronecker product); after a step that refreshed the roots, the step of ``W`` was
        :math:`-\eta` times it applied to the gradient (without momentum or grafting).
        """
        m = self._layer(state, layer)
        d_in, d_out = self._shapes()[m]
        L, R = self._factor(state, "L", m, d_in), self._factor(state, "R", m, d_out)
        return inverse_root(array_namespace(L).kron(L, R), 4.0)

    def step(
        self, params: Params, x: Array, y: Array, state: ShampooState, *, lr: float | None = None
    ) -> tuple[Params, ShampooState, StepInfo]:
        """One batch: ``(new_params, new_state, StepInfo(loss))``; ``params`` and ``state`` are not modified."""
        lr = number("lr", lr, low=0, allow_none=True)
        params = self.check(params, state)
        grads = self.net.backward(params, self.net.forward(params, x), y)
        layer_grads = grads.as_params()
        L, R, bias_sum = list(state.L), list(state.R), list(state.bias_sum)
        L_root, R_root = list(state.L_root), list(state.R_root)
        step = int(state.step)
        refresh = step % self.update_every == 0
        adam = state.adam
        if self.grafting == "adam":
            adam_updates, adam = self._adam.update(layer_grads, adam, params)
            # the Adam step as it lands on the parameters, p - (p + u), as before the port (bit for bit)
            adam_params = apply_updates(params, adam_updates)
            adam_steps = [
                self._view(k).stack(params[m]) - self._view(k).stack(adam_params[m])
                for k, m in enumerate(self.weighted)
            ]
        steps = []
        for k, m in enumerate(self.weighted):
            g = layer_grads[m]
            gw = self._view(k).weight_matrix(g)  # (d_in, d_out): a dense layer's W, a kernel as a matrix
            xp = array_namespace(gw)
            L[k] = L[k] + gw @ gw.T
            R[k] = R[k] + gw.T @ gw
            bias_sum[k] = bias_sum[k] + g["b"] ** 2
            if refresh:
                _check_finite(L[k], f"L[{k}]")
                _check_finite(R[k], f"R[{k}]")
                L_root[k] = inverse_root(L[k], 4.0, L_root[k], f"L[{k}]")
                R_root[k] = inverse_root(R[k], 4.0, R_root[k], f"R[{k}]")
            step_w = self.precondition(L_root[k], R_root[k], gw)
            step_b = g["b"] / xp.sqrt(bias_sum[k])
            if self.grafting is not None:  # per tensor: W and b each get the norm of the graft's step
                target = self._view(k).stack(g) if self.grafting == "sgd" else adam_steps[k]
                step_w = _graft(step_w, target[:-1])
                step_b = _graft(step_b, target[-1])
            steps.append(xp.concatenate([step_w, step_b[None, :]], axis=0))
        new, momentum = self._apply(params, steps, state.momentum, lr)
        new_state = ShampooState(step + 1, L, R, L_root, R_root, bias_sum, momentum, adam)
        return self._finite(new, lr), new_state, StepInfo(grads.loss)


class FOOF(_NetOptimizer):
    """FOOF (Benzing 2022): K-FAC with the output factor replaced by the identity.

    Args:
        net: the network.
        lr: learning rate.
        damping: :math:`\\lambda > 0` added to the input covariance.
        momentum: momentum on the preconditioned step.
        decay: moving-average decay of :math:`E[\\tilde x\\tilde x^\\top]` (0: this batch only).
        update_every: re-factorise every this many steps.
    """

    name = "foof"
    state_type = FOOFState

    def __init__(
        self,
        net: Sequential,
        lr: float = 0.01,
        damping: float = 1e-2,
        momentum: float = 0.0,
        decay: float = 0.95,
        update_every: int = 1,
    ) -> None:
        super().__init__(net, lr, momentum, update_every)
        self.damping = _positive("damping", damping)
        self.decay = _unit("decay", decay)

    def init(self, params: Params) -> FOOFState:
        params = self.net.check_params(params)
        dt = self._dtype(params)
        xp = array_namespace(params[self.weighted[0]]["W"])
        shapes = self._shapes()
        return FOOFState(
            step=0,
            A=[xp.zeros((d_in + 1,) * 2, dtype=dt) for d_in, _ in shapes],
            chol_A=[xp.eye(d_in + 1, dtype=dt) for d_in, _ in shapes],
            momentum=self.heavy_ball.init(self._zeros(params)),
        )

    def _slot_shapes(self, d_in: int, d_out: int) -> dict[str, tuple[int, ...]]:
        return {"A": (d_in + 1,) * 2, "chol_A": (d_in + 1,) * 2}

    def check(self, params: Params, state: Any) -> Params:
        """As :meth:`_NetOptimizer.check`, with the momentum state."""
        params = super().check(params, state)
        self._check_momentum(state, self._dtype(params))
        return params

    def to_dense(self, state: FOOFState, layer: int) -> Array:
        r"""Layer ``layer``'s dense :math:`(\bar A + \lambda I) \otimes I`, for row-major ``vec`` of :math:`\tilde W`.

        ``layer`` indexes ``net.layers`` (a weight layer).  Built from the state alone (``state.A``) and the constructor's damping; after a step
        that refreshed the factor, the step was :math:`-\eta` times its inverse applied to the
        gradient (without momentum).
        """
        m = self._layer(state, layer)
        A = self._factor(state, "A", m, self._shapes()[m][0] + 1)
        xp = array_namespace(A)
        damped = A + self.damping * xp.eye(A.shape[0], dtype=A.dtype)
        return xp.kron(damped, xp.eye(self._view(m).matrix_shape[1], dtype=A.dtype))

    def step(
        self, params: Params, x: Array, y: Array, state: FOOFState, *, lr: float | None = None
    ) -> tuple[Params, FOOFState, StepInfo]:
        """One batch: ``(new_params, new_state, StepInfo(loss))``; ``params`` and ``state`` are not modified."""
        lr = number("lr", lr, low=0, allow_none=True)
        params = self.check(params, state)
        trace = self.net.forward(params, x)
        grads = self.net.backward(params, trace, y)
        A, chol_A = list(state.A), list(state.chol_A)
        step = int(state.step)
        refresh = step % self.update_every == 0
        rho = 0.0 if step == 0 else self.decay
        layer_grads = grads.as_params()
        steps = []
        for k, m in enumerate(self.weighted):
            xa = self._view(k).design(trace.inputs[m])
            A[k] = rho * A[k] + (1 - rho) * (xa.T @ xa / xa.shape[0])  # a mean over the design's rows
            if refresh:
                _check_finite(A[k], f"A[{k}]")
                xp = array_namespace(xa)
                damped = A[k] + self.damping * xp.eye(xa.shape[1], dtype=xa.dtype)
                chol_A[k] = spd_factor(damped, f"A[{k}]")
            steps.append(cholesky_apply(chol_A[k], self._view(k).stack(layer_grads[m])))
        new, momentum = self._apply(params, steps, state.momentum, lr)
        return self._finite(new, lr), FOOFState(step + 1, A, chol_A, momentum), StepInfo(grads.loss)
