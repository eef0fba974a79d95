"""LocoProp with per-layer-normalised targets: locograd's variant, NOT in the paper (docs/math.md section 9).

``S(gamma, normalised=True)`` and ``M(gamma, eta, normalised=True)`` (``locoprop-s-normalised``,
``locoprop-m-normalised``) replace gamma in layer m by ``gamma_m = gamma / max(RMS(G_m), tau)``, the
RMS over all ``B*d_out`` entries of the batch's ``G_m = dL/dA_m`` (a convolution's ``B*P`` rows):
every layer's target step has RMS gamma, whatever the scale of its gradient.  Each test below has a
negative control that shows it can fail.

* The first inner step (K = 1, plain GD or the inner SGD, rate rho) is ``-rho gamma_m dL/dW~_m`` in
  every layer (float64, dense and conv layers), and in float32 on the CURVES autoencoder, whose first
  layers' G is ~1e-9, every layer moves by ~rho gamma.  Control: the plain gamma in its place fails.
* The whole step (K > 1, S and M, any inner optimizer) does not change when the loss is scaled by
  c = 2^k: bit for bit, since a power of two scales every rounded operation exactly; for any c > 0
  the offsets agree to rounding.  Control: the plain variant's step changes.
* A layer whose G_m is 0 (and a network whose every G is 0) is not updated; the offset of G = 0 is
  exactly 0 however large gamma.  Control: the layers above do move; gamma_m G_m formed as a product
  overflows or gives NaN.
* S normalised is not linear in G (the existing linearity test excludes it): doubling G leaves the
  step unchanged, bit for bit, while the plain S step doubles, bit for bit.
* The exact solvers (S closed form, M Newton-CG) solve the local problem with the offset gamma_m G_m.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import locograd as lg
from locograd import locoprop, nn, optim
from locograd.experiments.optimizers import build, settings
from locograd.locoprop import GD, Exact, LocalProblem, LocoPropWarning, M, S
from locograd.locoprop.targets import TAU, normalised_gamma, normalised_offset, rms
from locograd.nn import stack
from locograd.testing import relative_error

from .locoprop.test_conv_locoprop import cases as cnn_cases
from .rounding import EPS, evaluation_rounding, gradient_rounding, objective_scale, same_bits
from .strategies import architectures, layer_problems, net_and_batch, seeds
from .test_numerics32 import backprop_errors, curves_setting, to64

RTOL = 1e-8
INNER = {
    "sgd": lambda: optim.sgd(0.05),
    "adam": lambda: optim.adam(1e-3),
    "rmsprop_tf1": lambda: optim.rmsprop_tf1(1e-3),
}


def variant_of(name: str, gamma: float, eta: float | None = None, *, normalised: bool = True) -> S | M:
    return (S if name == "S" else M)(gamma=gamma, eta=eta, normalised=normalised)


def reference_gamma(G: np.ndarray, gamma: float) -> float:
    """gamma_m in float64 from its definition, independently of the library: gamma / max(RMS(G), tau)."""
    G = np.asarray(G, dtype=np.float64)
    return gamma / max(float(np.sqrt(np.mean(G * G))), TAU)


class ScaledLoss(lg.losses.Loss):
    """The loss ``c L``: its gradient ``c dL/dA`` at the output, hence ``c G_m`` in every layer."""

    def __init__(self, base: lg.losses.Loss, c: float) -> None:
        self.base, self.c = base, c
        self.name, self.transfer = base.name, base.transfer

    def _per_example(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.c * self.base._per_example(a, y)

    def prepare_targets(self, a: np.ndarray, y: np.ndarray, name: str = "y") -> np.ndarray:
        return self.base.prepare_targets(a, y, name)

    def mean_value_and_grad(self, a: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
        value, g = self.base.mean_value_and_grad(a, y)
        return self.c * value, self.c * g


def quiet_step(*args: Any, **kwargs: Any) -> Any:
    """``locoprop.step`` without the out-of-range warning of M targets (K > 1 without eta): the
    invariance holds whatever the targets' range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocoPropWarning)
        return locoprop.step(*args, **kwargs)


def scaled(net: Any, c: float) -> Any:
    """The same network with the loss multiplied by ``c``."""
    out = copy.copy(net)
    out.loss_fn = ScaledLoss(net.loss_fn, c)
    return out


def first_step_errors(
    net: Any,
    params: list,
    x: np.ndarray,
    y: np.ndarray,
    variant: str,
    new: list,
    rho: float,
    gammas: list[float],
) -> list[float]:
    """An MLP, per layer: the relative error of the first move against -rho gammas[m] dL/dW~_m (float64).

    The absolute floor is what rounding allows, as in ``test_first_step_equals_backprop_plain_gd``:
    rho times the local gradient's rounding (``gradient_rounding``, a bound for the target form and so
    for the displacement form too), plus the rounding of W~ - rho g and of its difference with W~
    (<= 2 eps (|W~| + rho gamma_m |g|)).  The library's gamma_m differs from the reference by the
    rounding of two RMS computations, <= (n + 8) eps relative for n entries (<= 1e-13 here), far
    under RTOL.
    """
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    bp = grads.as_params()
    bases = trace.pre if variant == "S" else trace.post
    errors = []
    for m in range(net.num_layers):
        g = stack(bp[m])
        move = stack(new[m]) - stack(params[m])
        want = -rho * gammas[m] * g
        floor = rho * gradient_rounding(trace.inputs[m], bases[m], gammas[m] * grads.pre[m]) + 2 * EPS * (
            np.abs(stack(params[m])).max() + rho * gammas[m] * np.abs(g).max()
        )
        errors.append(relative_error(move, want, floor=floor / RTOL))
    return errors


# ---- the first inner step: layer-wise normalised BackProp ---------------------------------------


@pytest.mark.parametrize("inner", ["gd", "sgd"])
@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    arch=architectures(max_depth=4, max_width=8),
    seed=seeds(),
    gamma=st.floats(1e-3, 10),
    rho=st.floats(1e-3, 1.0),
)
def test_normalised_first_inner_step_is_rho_gamma_m_times_backprop_in_every_layer(
    variant: str, inner: str, arch, seed: int, gamma: float, rho: float
) -> None:
    """K = 1, plain GD or the inner SGD with rate rho: every layer moves by -rho gamma_m dL/dW~_m.

    Tolerance RTOL = 1e-8 relative per layer, with the absolute floor of :func:`first_step_errors`.
    Negative control: the plain gamma in place of gamma_m fails the same check (gamma_m / gamma =
    1/RMS(G_m), far from 1 here: G carries 1/B).
    """
    net, params, x, y = net_and_batch(arch, seed)
    solver = GD(steps=1, lr=rho) if inner == "gd" else GD(steps=1, inner=optim.sgd(rho))
    new, _ = locoprop.step(net, params, x, y, variant=variant_of(variant, gamma), solver=solver)
    G = net.backward(params, net.forward(params, x), y, weight_grads=False).pre
    gammas = [reference_gamma(G[m], gamma) for m in range(net.num_layers)]
    errors = first_step_errors(net, params, x, y, variant, new, rho, gammas)
    assert max(errors) <= RTOL, errors
    moving = [
        m for m in range(net.num_layers) if np.abs(G[m]).max() > 0 and abs(gammas[m] / gamma - 1) > 1e-3
    ]
    assume(moving)
    wrong = first_step_errors(net, params, x, y, variant, new, rho, [gamma] * net.num_layers)
    assert all(wrong[m] > 1e3 * RTOL for m in moving), wrong


@given(case=cnn_cases(), variant=st.sampled_from(["S", "M"]), gamma=st.floats(1e-3, 1.0))
def test_normalised_first_inner_step_on_every_conv_and_dense_layer(case, variant: str, gamma: float) -> None:
    """A CNN: gamma_m's RMS runs over all B*P rows of a conv layer (the same as over its NHWC G).

    1e-10 relative, as the plain variant's CNN test (the two sides are the same products summed in
    another order), plus the two RMS computations' rounding (<= 1e-13).  Negative control: the plain
    gamma errs by |1 - RMS(G_m)|, far above 1e-10.
    """
    net, params, x, y = case
    rho = 0.05
    new, _ = locoprop.step(net, params, x, y, variant=variant_of(variant, gamma), solver=GD(steps=1, lr=rho))
    grads = net.backward(params, net.forward(params, x), y)
    for m in net.weight_layers:
        gm = reference_gamma(grads.pre[m], gamma)
        grad = {"W": grads.W[m], "b": grads.b[m]}
        want = {k: params[m][k] - rho * gm * grad[k] for k in ("W", "b")}
        assert relative_error(new[m], want) <= 1e-10, m
        if np.abs(grads.pre[m]).max() > 0 and abs(gm / gamma - 1) > 1e-3:
            plain = {k: params[m][k] - rho * gamma * grad[k] for k in ("W", "b")}
            assert relative_error(new[m], plain) > 1e-6


def _move_sizes(new: list, params: list, scale: float) -> list[float]:
    return [
        float(np.sqrt(np.mean((stack(n).astype(np.float64) - stack(p).astype(np.float64)) ** 2))) / scale
        for n, p in zip(new, params, strict=True)
    ]


@functools.lru_cache(maxsize=1)
def _curves_reference() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """dL/dW~ and G per layer in float64 at the float32 CURVES parameters and data."""
    net, p32, x = curves_setting()
    p64, x64 = to64(p32), x.astype(np.float64)
    grads = net.backward(p64, net.forward(p64, x64), x64)
    return [stack(g) for g in grads.as_params()], list(grads.pre)


@pytest.mark.parametrize("path", ["locoprop.step", "optim.LocoProp"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_float32_normalised_first_step_moves_every_layer_by_rho_gamma(variant: str, path: str) -> None:
    """float32, the CURVES autoencoder at initialisation (12 logistic layers, 200 images): G's RMS is
    6e-10 in layer 0 and 2e-3 in the last, so the plain variant's first moves span 7 orders of magnitude.

    * Every layer's offset gamma_m G_m has RMS gamma = 0.01 to 1e-5 relative (float32: a few ulps per
      entry, and the float32 mean of up to 80,000 squares, <= log2(n) eps ~ 1e-6).
    * The first move is -rho gamma_m dL/dW~ (float64 references) in every layer, as accurately as float32
      BackProp computes dL/dW~: at most twice its relative error, per layer (measured <= 1.16 times).
      G's float32 error enters twice (the product X~^T G, and RMS(G) in gamma_m; each at most
      BackProp's error); the normalisation and rho times the gradient add a few ulps; rho is large
      enough that the rounding of W~ + D is negligible (as in ``move_rate``).
    * Every layer moves by about rho gamma: RMS(move) / (rho gamma) is between 1 and 1e3 in every layer
      (measured 14 to 150), within a factor 100 from layer to layer.
    Negative controls: with the plain gamma in place of gamma_m the identity errs by ~100 % and more;
    the plain variant (same gamma) moves layer 0 by < 1e-5 rho gamma and its layers' moves spread by
    more than 1e4.
    """
    net, p32, x = curves_setting()
    gamma = 0.01
    ref, G64 = _curves_reference()
    gammas = [reference_gamma(g, gamma) for g in G64]
    problems, _ = locoprop.local_problems(net, p32, x, x, variant_of(variant, gamma))
    for m, problem in enumerate(problems):
        assert problem.offset.dtype == np.float32
        assert abs(float(rms(problem.offset.astype(np.float64))) / gamma - 1) <= 1e-5, m
    rho = 1e2 * max(
        float(np.abs(stack(p)).mean()) / (gm * float(np.abs(r).mean()))
        for p, gm, r in zip(p32, gammas, ref, strict=True)
    )
    solver, settings_ = GD(steps=1, lr=rho), variant_of(variant, gamma)
    if path == "locoprop.step":
        new, _ = locoprop.step(net, p32, x, x, variant=settings_, solver=solver)
    else:
        opt = lg.optim.LocoProp(net, settings_, solver)
        new, _, _ = opt.step(p32, x, x, opt.init(p32))
    moves = [stack(n).astype(np.float64) - stack(p).astype(np.float64) for n, p in zip(new, p32, strict=True)]

    def errors(gs: list[float]) -> list[float]:
        return [
            float(np.linalg.norm(mv / (-rho * g) - r) / np.linalg.norm(r))
            for mv, g, r in zip(moves, gs, ref, strict=True)
        ]

    backprop = backprop_errors(net, p32, x, ref)
    for m, (mine, theirs) in enumerate(zip(errors(gammas), backprop, strict=True)):
        assert mine <= 2 * theirs, f"layer {m}: {mine:.2e} against BackProp's {theirs:.2e}"
    assert min(errors([gamma] * len(gammas))) > 1.0  # the plain gamma: off by the factor RMS(G_m)

    # the size of the moves, at a small rate (moves well below the weights: the step of a training run)
    small = 1e-3
    sizes = _move_sizes(
        locoprop.step(net, p32, x, x, variant=settings_, solver=GD(steps=1, lr=small))[0], p32, small * gamma
    )
    assert min(sizes) >= 1 and max(sizes) <= 1e3 and max(sizes) / min(sizes) <= 1e2, sizes
    plain = variant_of(variant, gamma, normalised=False)
    plain_sizes = _move_sizes(
        locoprop.step(net, p32, x, x, variant=plain, solver=GD(steps=1, lr=small))[0], p32, small * gamma
    )
    assert plain_sizes[0] < 1e-5 and max(plain_sizes) / min(plain_sizes) > 1e4, plain_sizes


# ---- invariance to the scale of the loss --------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("path", ["locoprop.step", "optim.LocoProp"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_float32_normalised_step_is_invariant_where_g_squared_underflows(
    variant: str, path: str, steps: int
) -> None:
    """float32, the CURVES autoencoder with its loss scaled by c = 2^-56: layer 0's G is ~1e-26, whose
    squares (~1e-52) underflow to 0, so the plain sqrt(mean(G**2)) is 0 and would send gamma_m to
    gamma/tau.  The step is the unscaled one bit for bit: every G entry stays a normal float32
    (checked), so the power of two scales every rounded operation exactly, and the RMS is formed
    from G / max|G| (``rms``).

    Negative controls: the plain RMS of layer 0's G is 0 here; the plain variant's step is not
    invariant (it scales by c and rounds away).
    """
    net, p32, x = curves_setting()
    small = scaled(net, 2.0**-56)
    G = small.backward(p32, small.forward(p32, x), x, weight_grads=False).pre
    tiny = float(np.finfo(np.float32).tiny)
    assert all(np.abs(g[g != 0]).min() >= tiny for g in G)
    assert float(np.sqrt(np.mean(G[0] * G[0]))) == 0.0 and float(rms(G[0])) > 0

    def run(network: Any, normalised: bool = True) -> list:
        settings_, solver = variant_of(variant, 0.01, normalised=normalised), GD(steps=steps, lr=1e-3)
        if path == "locoprop.step":
            return quiet_step(network, p32, x, x, variant=settings_, solver=solver)[0]
        opt = lg.optim.LocoProp(network, settings_, solver)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LocoPropWarning)
            return opt.step(p32, x, x, opt.init(p32))[0]

    assert same_bits(run(small), run(net))
    assert not same_bits(run(small, normalised=False), run(net, normalised=False))


@pytest.mark.parametrize("inner", ["gd", *sorted(INNER)])
@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    arch=architectures(max_depth=3, max_width=6),
    seed=seeds(),
    k=st.integers(-30, 30).filter(lambda k: k != 0),
    K=st.integers(2, 5),
    gamma=st.floats(1e-3, 1.0),
)
def test_normalised_step_is_invariant_to_the_scale_of_the_loss(
    variant: str, inner: str, arch, seed: int, k: int, K: int, gamma: float
) -> None:
    """L -> c L with c = 2^k (G_m -> c G_m in every layer): the whole step (K inner steps, the new inner
    states too) is the same bit for bit.  A power of two scales every rounded operation exactly (no
    subnormals here), and the normalised offset gamma (cG)/RMS(cG) = gamma G/RMS(G) is formed from the
    same quotients; so "up to rounding" is exactly here.  (For any c > 0, see the next test.)

    Negative control: the plain variant with plain GD moves differently under the same scaling (its S
    step is linear in G: it scales by c).
    """
    net, params, x, y = net_and_batch(arch, seed)
    c = 2.0**k
    solver = GD(steps=K, lr=0.05) if inner == "gd" else GD(steps=K, inner=INNER[inner]())
    settings_ = variant_of(variant, gamma)
    base = quiet_step(net, params, x, y, variant=settings_, solver=solver)
    other = quiet_step(scaled(net, c), params, x, y, variant=settings_, solver=solver)
    assert same_bits(base[0], other[0])
    assert same_bits(list(base[1].inner_states), list(other[1].inner_states))
    if inner == "gd":
        plain = variant_of(variant, gamma, normalised=False)
        p_base = quiet_step(net, params, x, y, variant=plain, solver=solver)[0]
        p_other = quiet_step(scaled(net, c), params, x, y, variant=plain, solver=solver)[0]
        moves = [stack(n) - stack(p) for n, p in zip(p_base, params, strict=True)]
        assume(max(np.abs(mv).max() for mv in moves) > 1e-6)
        assert not same_bits(p_base, p_other)


@given(
    seed=seeds(),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 12)),
    exponent=st.integers(-20, 2),
    c=st.floats(1e-6, 1e6),
    gamma=st.floats(1e-3, 10.0),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_normalised_offset_is_invariant_to_any_scale_up_to_rounding(
    seed: int, shape: tuple[int, int], exponent: int, c: float, gamma: float, dtype: type
) -> None:
    """normalised_offset(c G) = normalised_offset(G) for any c > 0, to (n + 8) eps relative (max norm):
    c G rounds each entry by 1/2 ulp, the RMS (scale by max|G|, square, mean of n terms, sqrt) by
    <= (n + 4) eps relative, the quotient and gamma's product by 1 ulp each.  RMS(G) is >= 1e-21 c here,
    far above tau, where the invariance holds.  In float32 the RMS of G of 1e-20 is accurate although
    G**2 underflows.

    Negative control: the plain offset gamma c G is off by |c - 1|; and below tau the floor makes the
    offset scale with c (the tau floor is a limit of the invariance).
    """
    rng = np.random.default_rng(seed)
    G: np.ndarray = (rng.standard_normal(shape) * 10.0**exponent).astype(dtype)
    cG: np.ndarray = (c * G).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    n = G.size
    base, other = normalised_offset(G, gamma), normalised_offset(cG, gamma)
    assert base.dtype == other.dtype == dtype
    assert relative_error(other, base) <= (n + 8) * eps
    assert relative_error(float(rms(base.astype(np.float64))), gamma) <= (n + 8) * eps
    if abs(c - 1) > 1e3 * (n + 8) * eps:
        assert relative_error(gamma * cG, gamma * G) > (n + 8) * eps
    tiny: np.ndarray = np.full((2, 3), 1e-33, dtype=dtype)  # RMS below tau = 1e-30: gamma_m = gamma/tau
    assert relative_error(normalised_offset(2 * tiny, gamma), 2 * normalised_offset(tiny, gamma)) <= 4 * eps


# ---- zero gradient: no update ---------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["gd", *sorted(INNER), "exact"])
@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    seed=seeds(), hidden=st.sampled_from(["tanh", "sigmoid"]), K=st.integers(1, 4), gamma=st.floats(1e-3, 1.0)
)
def test_zero_gradient_layer_gets_no_update(
    variant: str, solver: str, seed: int, hidden: str, K: int, gamma: float
) -> None:
    """A relu layer whose pre-activations are all negative (bias -100 on inputs bounded by 1) has
    G_m = 0, and so has every layer below it: their offsets are exactly 0 (not 0/0) and they keep
    their parameters bit for bit, for GD, every inner optimizer from its zero-initialised state, and
    the exact solvers.  And a network whose every G is 0 (targets = its outputs, squared error) is
    not updated at all.

    Negative controls: the layer above, whose G is not 0, does move; and gamma_m G_m formed as the
    product of gamma_m = gamma/tau with G (rather than gamma (G / max(RMS, tau))) is NaN for G = 0 at
    a gamma that overflows gamma/tau in float32.
    """
    rng = np.random.default_rng(seed)
    net = lg.MLP([3, 4, 5, 2], [hidden, "relu", "identity"], "squared_error")
    params = net.init(seed=seed % 97, bias="glorot")
    params[1]["b"] = np.full(5, -100.0)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    eta = 1.0 if solver == "exact" else None
    settings_: GD | Exact
    if solver == "exact":
        settings_ = Exact()
    elif solver == "gd":
        settings_ = GD(steps=K, lr=0.05)
    else:
        settings_ = GD(steps=K, inner=INNER[solver]())
    v = variant_of(variant, gamma, eta)
    G = net.backward(params, net.forward(params, x), y, weight_grads=False).pre
    assert not G[0].any() and not G[1].any() and G[2].any()
    new, _ = locoprop.step(net, params, x, y, variant=v, solver=settings_)
    for m in (0, 1):
        assert same_bits(new[m], params[m]), m
    assert not same_bits(new[2], params[2])
    # every G = 0: no layer moves
    out = net.forward(params, x).output
    still, _ = locoprop.step(net, params, x, out, variant=v, solver=settings_)
    assert same_bits(still, params)
    # the same in float32 at gamma = 1e10, whose gamma/tau = 1e40 overflows float32
    p32 = [{k: a.astype(np.float32) for k, a in layer.items()} for layer in params]
    x32 = x.astype(np.float32)
    huge = variant_of(variant, 1e10, eta)
    still32, _ = locoprop.step(net, p32, x32, net.forward(p32, x32).output, variant=huge, solver=settings_)
    assert same_bits(still32, p32)
    # the offset of G = 0 is 0 in both dtypes, even at a gamma whose gamma/tau overflows float32
    for dtype in (np.float32, np.float64):
        zero = np.zeros((4, 3), dtype=dtype)
        assert same_bits(normalised_offset(zero, 1e10), zero)
    with np.errstate(over="ignore", invalid="ignore"):
        naive = normalised_gamma(np.zeros((4, 3), dtype=np.float32), 1e10) * np.zeros(
            (4, 3), dtype=np.float32
        )
    assert np.isnan(naive).all()


# ---- not linear in G ------------------------------------------------------------------------------


def _layer(ing: dict[str, Any], offset: np.ndarray) -> LocalProblem:
    A = ing["X"] @ ing["W"] + ing["b"]
    return LocalProblem.from_offset(
        ing["X"], A, offset, None, "S", {"W": ing["W"], "b": ing["b"]}, ing["eta"]
    )


@given(ing=layer_problems(max_batch=16, max_width=8), K=st.integers(1, 5))
def test_normalised_s_is_not_linear_in_g(ing: dict, K: int) -> None:
    """Plain S is linear in G (``test_s_is_linear_in_gamma_and_g_but_m_is_not``); the normalised S is
    not: gamma_m is homogeneous of degree -1 in G, so the offset gamma_m G is of degree 0.  Doubling G
    leaves its displacement (closed form and K GD steps) unchanged, bit for bit, where the plain S
    displacement doubles, bit for bit (a factor 2 is exact in every rounded operation); and the
    displacement of G1 + G2 is not the sum of theirs.
    """
    ing = dict(ing, eta=ing["eta"] or 1.0)
    gamma, G = ing["gamma"], ing["G"]
    lr = 1e-3

    def displacements(offset: np.ndarray) -> list[np.ndarray]:
        p = _layer(ing, offset)
        return [
            stack(locoprop.exact_s_displacement(p)),
            stack(locoprop.gd_displacement(p, GD(steps=K, lr=lr))[0]),
        ]

    for one, two in zip(
        displacements(normalised_offset(G, gamma)),
        displacements(normalised_offset(2 * G, gamma)),
        strict=True,
    ):
        assert same_bits(one, two)
        assert np.abs(one).max() > 0 and not same_bits(two, 2 * one)  # not doubled
    for one, two in zip(displacements(gamma * G), displacements(gamma * (2 * G)), strict=True):
        assert same_bits(two, 2 * one)  # the control: plain S doubles
    G2 = np.random.default_rng(1).standard_normal(G.shape) / G.shape[0]
    both, first, second = (displacements(normalised_offset(g, gamma))[0] for g in (G + G2, G, G2))
    assert relative_error(both, first + second) > 1e-3


# ---- the exact solvers use gamma_m ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    arch=architectures(max_depth=3, max_width=6),
    seed=seeds(),
    gamma=st.floats(1e-3, 1.0),
    eta=st.floats(0.1, 10.0),
)
def test_normalised_exact_step_solves_the_problem_with_offset_gamma_m_g(
    variant: str, arch, seed: int, gamma: float, eta: float
) -> None:
    """Each layer's exact solution (S closed form; M Newton-CG, tolerance 1e-10) is stationary for the
    local problem with the offset gamma_m G_m, gamma_m computed here from its definition (float64).

    S, as ``test_s_closed_form_is_stationary``: ||grad J|| <= 1e-8 g0 plus the evaluations' rounding;
    M, as ``test_m_exact_is_stationary``: 1e-10 g0 (times 1 + 1e-6 for the norm's rounding), or float64's
    precision.  Both also carry the difference of the two offsets (<= (n + 8) eps |gamma_m G|, times
    |X~|^T: far below the rest).  Negative control: the solution is not stationary for the plain
    gamma's problem.
    """
    net, params, x, y = net_and_batch(arch, seed)
    new, _ = locoprop.step(
        net, params, x, y, variant=variant_of(variant, gamma, eta), solver=Exact(tol=1e-10)
    )
    trace = net.forward(params, x)
    G = net.backward(params, trace, y, weight_grads=False).pre
    for m in range(net.num_layers):
        gm = reference_gamma(G[m], gamma)

        def problem(g: float, m: int = m) -> LocalProblem:
            return LocalProblem.from_offset(
                trace.inputs[m], trace.pre[m], g * G[m], net.layers[m].transfer, variant, params[m], eta
            )

        p = problem(gm)
        g0 = np.linalg.norm(stack(locoprop.gradient(p, p.anchor)))
        g = np.linalg.norm(stack(locoprop.gradient(p, new[m])))
        n = G[m].size
        offsets = (
            (n + 8) * EPS * float(np.linalg.norm(np.abs(nn.augment(trace.inputs[m])).T @ np.abs(gm * G[m])))
        )
        floor = evaluation_rounding(p, new[m]) + evaluation_rounding(p, p.anchor) + offsets
        if variant == "S":
            assert g <= 1e-8 * g0 + floor, m
        else:
            k, N = trace.inputs[m].shape[1] + 1, p.target.size
            at_precision = g <= 10 * floor or eta * g**2 <= 1e3 * (k + N + 8) * EPS * objective_scale(
                p, new[m]
            )
            assert g <= 1e-10 * (g0 + offsets) * (1 + 1e-6) + offsets or at_precision, m
        if g0 > 0 and abs(gm / gamma - 1) > 1e-3:
            q = problem(gamma)
            assert np.linalg.norm(stack(locoprop.gradient(q, new[m]))) > 1e-6 * np.linalg.norm(
                stack(locoprop.gradient(q, q.anchor))
            ), m


# ---- the experiments' names -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["s", "m"])
def test_normalised_names_resolve_and_build(variant: str) -> None:
    """``locoprop-{s,m}-normalised``: variant from the name (not its last letter, 'd'), gamma 0.01, the
    plain variant's K, inner optimizer and rates, and ``"normalised": True`` (a key the plain names do
    not have); ``build`` gives the normalised settings object.  Negative control: the plain name."""
    for family in ("curves", "mnist"):
        plain = settings(f"locoprop-{variant}", family)
        mine = settings(f"LocoProp_{variant.upper()}_Normalised", family)
        assert "normalised" not in plain
        assert mine == {
            **plain,
            "optimizer": f"locoprop-{variant}-normalised",
            "gamma": 0.01,
            "normalised": True,
        }
        assert settings(f"locoprop-{variant}-normalised", family, gamma=0.1)["gamma"] == 0.1
    net = lg.MLP([4, 3, 4], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    built = build(net, settings(f"locoprop-{variant}-normalised", "curves"))
    assert isinstance(built, optim.LocoProp)
    assert built.variant == variant_of(variant.upper(), 0.01)
    assert repr(built.variant) == f"{variant.upper()}(gamma=0.01, eta=None, normalised=True)"
    plain_built = build(net, settings(f"locoprop-{variant}", "curves"))
    assert isinstance(plain_built, optim.LocoProp) and plain_built.variant.normalised is False
