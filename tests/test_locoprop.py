"""docs/math.md section 4, one named test per identity, each with a negative control that can fail.

Tolerances (float64): exact identities that differ only in the order of
floating-point operations are held to 1e-9 relative; closed forms solved by
Cholesky on matrices with condition number <= ~1e5 to 1e-8; iterative solves
to the tolerance they were asked for.  Gradients smaller than a floor of
1e-6 * gamma are compared absolutely, because M targets are built as
f(A) - gamma*G and lose ~eps*|f(A)| to rounding.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import locograd as lg
from locograd import locoprop, nn, optim, transfer
from locograd._fast.local import solve_gd_inplace
from locograd.locoprop import GD, Exact, LocalProblem, M, S
from locograd.optim.schedules import released_inner_factor
from locograd.testing import relative_error

from .rounding import EPS, evaluation_rounding, gradient_rounding, objective_scale, same_bits, stack
from .strategies import architectures, layer_problems, net_and_batch, seeds

RTOL = 1e-9


def variant_of(name: str, gamma: float, eta: float | None = None) -> S | M:
    """The settings object of variant ``name`` ("S" or "M"): the tests keep the names as parameter ids."""
    return (S if name == "S" else M)(gamma=gamma, eta=eta)


OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.05),
    "momentum": lambda: optim.momentum(0.05, 0.9),
    "nesterov": lambda: optim.nesterov(0.05, 0.9),
    "adam": lambda: optim.adam(1e-3),
    "adagrad": lambda: optim.adagrad(0.05),
    "rmsprop": lambda: optim.rmsprop(1e-3),
    "rmsprop_tf1": lambda: optim.rmsprop_tf1(1e-3),
}


def ing_rounding(ing: dict[str, Any], variant: str, gamma: float | None = None) -> float:
    """:func:`gradient_rounding` of a drawn layer (make_problem's target)."""
    gamma = ing["gamma"] if gamma is None else gamma
    A = ing["X"] @ ing["W"] + ing["b"]
    base = A if variant == "S" else transfer.get(ing["transfer"]).f(A)
    return gradient_rounding(ing["X"], base, gamma * ing["G"])


def make_problem(
    ing: dict[str, Any],
    variant: str,
    gamma: float | None = None,
    G: np.ndarray | None = None,
    eta: Any = "same",
) -> LocalProblem:
    t = transfer.get(ing["transfer"])
    A = ing["X"] @ ing["W"] + ing["b"]
    gamma = ing["gamma"] if gamma is None else gamma
    G = ing["G"] if G is None else G
    target = A - gamma * G if variant == "S" else t.f(A) - gamma * G
    return LocalProblem.build(
        ing["X"], target, t, variant, {"W": ing["W"], "b": ing["b"]}, ing["eta"] if eta == "same" else eta
    )


def loss_grad(ing: dict[str, Any]) -> dict[str, np.ndarray]:
    """dL/dW~ of the layer: X^T G and sum_n G_n."""
    return {"W": ing["X"].T @ ing["G"], "b": ing["G"].sum(axis=0)}


def delta(new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: new[k] - old[k] for k in ("W", "b")}


def augmented(ing: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X~, C = X~^T X~, vec-free grad as (d_in+1, d_out))."""
    Xt = nn.augment(ing["X"])
    g = loss_grad(ing)
    return Xt, Xt.T @ Xt, nn.stack(g)


def random_targets(loss: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if loss == "squared_error":
        return rng.standard_normal(shape)
    p = rng.random(shape) + (0.1 if loss == "softmax_cross_entropy" else 0.0)
    return p / p.sum(axis=1, keepdims=True) if loss == "softmax_cross_entropy" else p


def random_net(arch: tuple, seed: int, B: int = 6) -> tuple[lg.MLP, list, np.ndarray, np.ndarray]:
    sizes, acts, loss = arch
    rng = np.random.default_rng(seed)
    net = lg.MLP(sizes, acts, loss)
    params = net.init(seed=seed % 97, bias="glorot")
    return net, params, rng.standard_normal((B, sizes[0])), random_targets(loss, (B, sizes[-1]), rng)


def backprop_grads(net: lg.MLP, params: list, x: np.ndarray, y: np.ndarray) -> list[dict[str, np.ndarray]]:
    grads = net.backward(params, net.forward(params, x), y)
    return grads.as_params()


# ---- 1. the first local step is BackProp -------------------------------------------------------


@pytest.mark.parametrize("variant", ["S", "M"])
@given(ing=layer_problems())
def test_local_gradient_at_anchor_is_gamma_times_backprop_gradient(variant: str, ing: dict) -> None:
    """grad J(W~_t) = gamma dL/dW~, to RTOL relative or the target's rounding (gradient_rounding) absolute.

    (The old floor 1e-6 gamma was not a bound: a gradient below it was compared to 1e-15 gamma absolute,
    under the rounding of the target for a large batch.)
    """
    problem = make_problem(ing, variant)
    local = locoprop.gradient(problem, problem.anchor)
    expected = {k: ing["gamma"] * v for k, v in loss_grad(ing).items()}
    assert relative_error(local, expected, floor=ing_rounding(ing, variant) / RTOL) <= RTOL


@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    arch=architectures(max_depth=4, max_width=8),
    seed=seeds(),
    gamma=st.floats(0.1, 10),
    rho=st.floats(1e-3, 1.0),
)
def test_first_step_equals_backprop_plain_gd(variant: str, arch, seed: int, gamma: float, rho: float) -> None:
    """One inner GD step of size rho = SGD with learning rate rho * gamma, every layer, every transfer.

    Tolerance: 1e-8 relative, or absolutely what rounding allows: rho times the local gradient's
    (gradient_rounding, per layer), plus the rounding of W - rho g and of its difference with W
    (<= 2 eps (|W~| + rho gamma |g|)).  (The old floor 1e-6 rho gamma did not cover the rounding
    of W - rho g when every layer's gradient is tiny.)
    """
    net, params, x, y = random_net(arch, seed)
    new, _ = locoprop.step(net, params, x, y, variant=variant_of(variant, gamma), solver=GD(steps=1, lr=rho))
    bp = backprop_grads(net, params, x, y)
    expected = [{k: p[k] - rho * gamma * g[k] for k in p} for p, g in zip(params, bp, strict=True)]
    updates = [delta(n, p) for n, p in zip(new, params, strict=True)]
    want = [delta(e, p) for e, p in zip(expected, params, strict=True)]
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    bases = trace.pre if variant == "S" else trace.post
    floor = max(
        rho * gradient_rounding(trace.inputs[m], bases[m], gamma * grads.pre[m])
        + 2 * EPS * (np.abs(stack(params[m])).max() + rho * gamma * np.abs(stack(bp[m])).max())
        for m in range(net.num_layers)
    )
    assert relative_error(updates, want, floor=floor / 1e-8) <= 1e-8


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(ing=layer_problems(max_batch=16, max_width=8), warm=st.integers(0, 3), seed=seeds())
def test_first_step_equals_optimizer_step_from_the_same_state(
    name: str, variant: str, ing: dict, warm: int, seed: int
) -> None:
    """Any first-order inner optimizer: its first local step is its step on gamma * dL/dW~ from the same state.

    In two exact parts.  (1) The first local step IS the optimizer's step on the local gradient at
    the anchor, bit for bit (solve_gd's documented contract: the same operations).  (2) That
    gradient is gamma dL/dW~ up to the target's rounding (gradient_rounding).  The old test compared
    the steps on the two gradients to 1e-7 relative, which adaptive methods do not guarantee: they
    divide by sqrt(v) + eps, so where a gradient entry is ~eps (1e-8) its rounding (~1e-15) moves the
    step by ~1e-7 lr.
    """
    opt = OPTIMIZERS[name]()
    problem = make_problem(ing, variant)
    state = opt.init(problem.anchor)
    rng = np.random.default_rng(seed)
    for _ in range(warm):  # a used state, not only a fresh one
        noise = {k: rng.standard_normal(v.shape) for k, v in problem.anchor.items()}
        _, state = opt.update(noise, state, problem.anchor)
    local, _ = locoprop.solve_gd(problem, GD(steps=1, inner=opt), copy.deepcopy(state))
    g_local = locoprop.gradient(problem, problem.anchor)
    updates, _ = opt.update(g_local, copy.deepcopy(state), problem.anchor)
    assert same_bits(local, optim.apply_updates(problem.anchor, updates))
    scaled = {k: ing["gamma"] * v for k, v in loss_grad(ing).items()}
    assert relative_error(g_local, scaled, floor=ing_rounding(ing, variant) / RTOL) <= RTOL


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(arch=architectures(max_depth=3, max_width=6), seed=seeds(), gamma=st.floats(0.5, 5))
def test_k1_locoprop_equals_backprop_on_gamma_loss_over_batches(
    name: str, variant: str, arch, seed: int, gamma: float
) -> None:
    """K = 1 LocoProp with optimizer O = BackProp with O on gamma * L, state carried over three batches.

    In exact parts, as for one layer above: each batch's LocoProp step is, bit for bit, O's step (on
    the carried state) on the layers' local gradients at the current parameters, and those are
    gamma dL/dW~ of each layer up to the targets' rounding (gradient_rounding).  (The old test compared
    against O on gamma * BackProp's gradients to 1e-7: adaptive methods amplify a gradient's rounding
    by lr / eps where an entry is ~eps, and three batches compound it, so no such bound holds.)
    """
    net, params, _, _ = random_net(arch, seed)
    rng = np.random.default_rng(seed + 1)
    loco = optim.LocoProp(net, variant_of(variant, gamma), GD(steps=1, inner=OPTIMIZERS[name]()))
    base = OPTIMIZERS[name]()
    p_loco, s_loco = params, loco.init(params)
    p_bp, s_bp = params, base.init(params)
    for _ in range(3):
        x = rng.standard_normal((5, net.sizes[0]))
        y = random_targets(net.loss_fn.name, (5, net.sizes[-1]), rng)
        p_loco, s_loco, _ = loco.step(p_loco, x, y, s_loco)
        problems, _ = locoprop.local_problems(net, p_bp, x, y, variant_of(variant, gamma))
        local = [locoprop.gradient(problem, problem.anchor) for problem in problems]
        trace = net.forward(p_bp, x)
        grads = net.backward(p_bp, trace, y)
        bases = trace.pre if variant == "S" else trace.post
        for m, (g_local, g_bp) in enumerate(zip(local, grads.as_params(), strict=True)):
            floor = gradient_rounding(trace.inputs[m], bases[m], gamma * grads.pre[m]) / RTOL
            assert relative_error(g_local, {k: gamma * v for k, v in g_bp.items()}, floor=floor) <= RTOL
        updates, s_bp = base.update(local, s_bp, p_bp)
        p_bp = optim.apply_updates(p_bp, updates)
        assert same_bits(p_loco, p_bp)


def test_k1_official_preset_equals_backprop_rmsprop_tf1() -> None:
    """The released optimizer (TF1 RMSProp, ms starting at ones) with K = 1 is BackProp on 10 * L."""
    net = lg.MLP([6, 5, 3, 5, 6], ["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=2, bias="glorot")
    released = optim.official(net)
    assert released.variant == M(gamma=10.0)
    k1 = optim.LocoProp(net, released.variant, GD(steps=1, inner=optim.rmsprop_tf1(lr=1e-3)))
    bp = optim.rmsprop_tf1(lr=1e-3)
    x = np.random.default_rng(0).random((7, 6))
    new, _, _ = k1.step(params, x, x, k1.init(params))
    g = [{k: 10.0 * v for k, v in layer.items()} for layer in backprop_grads(net, params, x, x)]
    updates, _ = bp.update(g, bp.init(params), params)
    ref = optim.apply_updates(params, updates)
    assert relative_error(new, ref) <= 1e-12
    # negative control: the same comparison sees another gamma (9 instead of 10): the steps differ by
    # ~10%, the parameters (steps ~1e-3 of |W| ~ 0.5) by ~1e-4 relative, far above the 1e-12 asked
    k1_9 = optim.LocoProp(net, M(gamma=9.0), GD(steps=1, inner=optim.rmsprop_tf1(lr=1e-3)))
    assert relative_error(k1_9.step(params, x, x, k1_9.init(params))[0], ref) > 1e-6


# ---- negative controls: wrong targets and the wrong local loss break the identity --------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_target_conventions_fail_the_first_step_identity(seed: int) -> None:
    """dL/dY instead of dL/dA, f(A - gamma G), and a squared loss on post-activations all FAIL."""
    net = lg.MLP([5, 6, 4, 3], ["sigmoid", "tanh", "identity"], "squared_error")
    params = net.init(seed=seed, bias="glorot")
    rng = np.random.default_rng(seed)
    x, y = 2 * rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y)
    gamma, m = 1.0, 0  # the first (sigmoid) hidden layer, f' <= 1/4
    f = net.transfers[m]
    A, Y, X, G = trace.pre[m], trace.post[m], trace.inputs[m], grads.pre[m]
    dL_dY = grads.pre[m + 1] @ params[m + 1]["W"].T
    expected = {"W": gamma * grads.W[m], "b": gamma * grads.b[m]}

    def local_grad(target: np.ndarray) -> dict[str, np.ndarray]:
        return locoprop.gradient(LocalProblem.build(X, target, f, "M", params[m]), params[m])

    right = local_grad(Y - gamma * G)
    assert relative_error(right, expected) <= RTOL
    wrong_dy = local_grad(Y - gamma * dL_dY)
    wrong_fa = local_grad(f.f(A - gamma * G))
    r_post = f.df(A) * (Y - (Y - gamma * G))  # squared post-activation loss: X^T (f'(A) (f(A) - Y*))
    wrong_sq = {"W": X.T @ r_post, "b": r_post.sum(axis=0)}
    for wrong in (wrong_dy, wrong_fa, wrong_sq):
        assert relative_error(wrong, expected) > 1e-2


# ---- 2. S exact solution: a preconditioned gradient step ---------------------------------------


@given(ing=layer_problems(eta="some"))
def test_s_closed_form_is_stationary(ing: dict) -> None:
    problem = make_problem(ing, "S")
    """The closed form's gradient vanishes: to the Cholesky solve's accuracy plus the evaluations' rounding.

    Cholesky is backward stable: its residual is <= c n eps cond ||rhs|| with cond(C + I/eta) <=
    1 + eta lambda_max(C) <= 1 + 10 * 64 * 33, so <= ~1e-10 g0 (C's own rounding adds <= B n eps
    lambda_max eta g0 ~ 3e-10 g0): 1e-8 g0.  The right-hand side is the computed gradient at the anchor,
    so its evaluation error stays in the true gradient at the solution, and the check's own evaluation
    adds its error: evaluation_rounding at both points.  (The old assume(g0 > 0) and bound 1e-8 g0 alone
    did not cover a gradient near its rounding.)
    """
    w = locoprop.solve_exact_s(problem)
    g0 = np.linalg.norm(stack(locoprop.gradient(problem, problem.anchor)))
    floor = evaluation_rounding(problem, w) + evaluation_rounding(problem, problem.anchor)
    assert np.linalg.norm(stack(locoprop.gradient(problem, w))) <= 1e-8 * g0 + floor


@given(ing=layer_problems(max_batch=6, max_width=4, eta="some"))
def test_s_closed_form_equals_dense_kronecker_form(ing: dict) -> None:
    """vec(W~*) = vec(W~_t) - gamma (I kron (C + I/eta))^-1 vec(dL/dW~): K-FAC with output factor I, damping 1/eta.

    Both sides are compared whole (W~, not the step), so rounding is relative to |W~| ~ 1: two stable
    solves of condition <= 1 + eta lambda_max(C) <= 1 + 10 * 6 * 5 err by <= ~300 n eps |step|, and the
    target's rounding moves the step by <= eta ||evaluation_rounding|| ~ 1e-13: far below 1e-8.
    """
    problem = make_problem(ing, "S")
    _, C, g = augmented(ing)
    n, d_out = C.shape[0], g.shape[1]
    dense = np.kron(np.eye(d_out), C + np.eye(n) / ing["eta"])
    vec = np.linalg.solve(dense, g.reshape(-1, order="F"))
    expected = stack(problem.anchor) - ing["gamma"] * vec.reshape((n, d_out), order="F")
    assert relative_error(stack(locoprop.solve_exact_s(problem)), expected) <= 1e-8


@given(ing=layer_problems(max_batch=16, max_width=8, eta="some"))
def test_s_closed_form_eta_to_zero_is_backprop(ing: dict) -> None:
    """eta -> 0: W~* -> W~_t - gamma * eta * dL/dW~; the relative gap is O(eta * lambda_max(C)) <= 1e-6.

    The step is eta gamma (I + eta C)^-1 dL/dW~, within eta lambda_max / (1 - eta lambda_max) <= 1e-6 of
    the BackProp step, under the 1e-5 asked.  Absolutely, rounding allows: forming W~* and W~* - W~_t
    (<= 4 eps |W~_t|), and the right-hand side's evaluation error times ||(C + I/eta)^-1|| <= eta.
    (The old test had no floor: a small dL/dW~ drowned the step in the rounding of W~* - W~_t.)
    """
    _, C, g = augmented(ing)
    eta = 1e-6 / (1 + np.linalg.eigvalsh(C).max())
    problem = make_problem(ing, "S", eta=eta)
    got = delta(locoprop.solve_exact_s(problem), problem.anchor)
    want = -ing["gamma"] * eta * g
    floor = 4 * EPS * np.abs(stack(problem.anchor)).max() + eta * evaluation_rounding(problem, problem.anchor)
    assert relative_error(stack(got), want, floor=floor / 1e-5) <= 1e-5


@given(ing=layer_problems(max_batch=16, max_width=8, eta="none"))
def test_s_closed_form_eta_to_infinity_is_pseudo_inverse(ing: dict) -> None:
    """eta=None gives W~_t - gamma C^+ dL/dW~, and large finite eta approaches it.

    A pseudo-inverse is discontinuous where an eigenvalue crosses its cutoff, and the computed C
    (here and in the library, rounded differently) has eigenvalues within ||dC|| <= B n u lambda_max
    <= 1.6e-14 lambda_max of the true ones (zero ones included, for B < d_in + 1).  So both sides use
    the cutoff 1e-9 lambda_max, far above that noise, and the comparison is made where no computed
    eigenvalue lies within [1e-10, 1e-5] lambda_max: then both keep the same eigenvalues, all
    >= 1e-5 lambda_max, and each solve errs by <= ||dC|| / 1e-5 lambda_max ~ 2e-9 relative, under
    1e-7.  (The old test used the two default cutoffs, n eps and 1e-15, both below that noise.)
    """
    _, C, g = augmented(ing)
    lam = np.linalg.eigvalsh(C)
    assume(not np.any((lam > 1e-10 * lam.max()) & (lam < 1e-5 * lam.max())))
    problem = make_problem(ing, "S", eta=None)
    got = stack(locoprop.solve_exact_s(problem, rcond=1e-9))
    want = stack(problem.anchor) - ing["gamma"] * np.linalg.pinv(C, rtol=1e-9, hermitian=True) @ g
    floor = 4 * EPS * np.abs(stack(problem.anchor)).max() / 1e-7
    assert relative_error(got - stack(problem.anchor), want - stack(problem.anchor), floor=floor) <= 1e-7
    positive = lam[lam > 1e-9 * lam.max()]
    assume(positive.min() > 1e-3)
    big = stack(locoprop.solve_exact_s(make_problem(ing, "S", eta=1e9)))
    assert relative_error(big - stack(problem.anchor), want - stack(problem.anchor)) <= 1e-5


@given(ing=layer_problems(), c=st.floats(0.1, 10), K=st.integers(1, 5))
def test_s_is_linear_in_gamma_and_g_but_m_is_not(ing: dict, c: float, K: int) -> None:
    """S (closed form and K GD steps) is linear in gamma and G.

    The plain S only: the per-layer-normalised variant (``S(gamma, normalised=True)``, not in the
    paper) is excluded.  Its gamma_m = gamma / RMS(G_m) is homogeneous of degree -1 in G, so its
    offset gamma_m G_m is of degree 0: scaling G does not scale its step, and linearity in G cannot
    hold (``test_normalised_s_is_not_linear_in_g`` shows it: doubling G leaves that step unchanged).

    Relative 1e-7 covers the solves' relative error (cond(C + I/eta) <= 1 + 10 * 64 * 33: <= ~1e-10).
    Absolutely, each computed step errs by what rounding allows (the old floor 1e-12 did not cover a
    small step, whose W~ - W~_t rounds by eps |W~_t|): for the closed form, eta times the right-hand
    side's evaluation error plus 4 eps |W~_t|; for K GD steps of size lr, each step's rounding
    (lr times the evaluation error plus 2 eps |W~|), carried by ||I - lr H|| <= 1 + lr lambda_max(H).
    A combination of three steps (with weights up to c) errs by the sum: the floor below.
    """
    ing = dict(ing, eta=ing["eta"] or 1.0)
    G2 = np.random.default_rng(1).standard_normal(ing["G"].shape) / ing["G"].shape[0]
    gam = ing["gamma"]
    _, C, _ = augmented(ing)
    lr = 1e-3
    growth = (1 + lr * (np.linalg.eigvalsh(C).max() + 1 / ing["eta"])) ** K
    rounding: list[float] = []

    def exact(**kw: Any) -> np.ndarray:
        p = make_problem(ing, "S", **kw)
        w = locoprop.solve_exact_s(p)
        rounding.append(
            ing["eta"] * evaluation_rounding(p, p.anchor) + 4 * EPS * float(np.abs(stack(p.anchor)).max())
        )
        return stack(delta(w, p.anchor))

    def gd(**kw: Any) -> np.ndarray:
        p = make_problem(ing, "S", **kw)
        w = locoprop.solve_gd(p, GD(steps=K, lr=lr))[0]
        per_step = lr * 2 * (evaluation_rounding(p, p.anchor) + evaluation_rounding(p, w)) + 2 * EPS * (
            np.linalg.norm(stack(p.anchor)) + np.linalg.norm(stack(w))
        )
        rounding.append(K * growth * per_step + 4 * EPS * float(np.abs(stack(p.anchor)).max()))
        return stack(delta(w, p.anchor))

    for solve in (exact, gd):
        rounding.clear()
        scaled, base = solve(gamma=c * gam), solve(gamma=gam)
        floor = rounding[0] + c * rounding[1]
        assert relative_error(scaled, c * base, floor=floor / 1e-7) <= 1e-7
        rounding.clear()
        both, one, two = solve(G=ing["G"] + G2), solve(), solve(G=G2)
        assert relative_error(both, one + two, floor=sum(rounding) / 1e-7) <= 1e-7


@given(ing=layer_problems(max_batch=12, max_width=6, eta="some"), data=st.data())
def test_gd_with_prox_converges_to_closed_form(ing: dict, data: st.DataObject) -> None:
    """rho < 2 / (lambda_max(C) + 1/eta): GD converges to the closed form; rho > that bound diverges.

    After steps >= 40 L/mu the contraction leaves e^-40 of the step: within 1e-8.  Rounding, absolutely:
    each GD step adds lr times the evaluation error plus 2 eps |W~|, and the contraction (1 - mu/L)
    sums these to L/mu times one; the closed form errs by eta times its right-hand side's evaluation
    error plus 4 eps |W~_t|.  Divergence: along the top eigenvector each step multiplies the error by
    |1 - 2.5| = 1.5, so 200 steps multiply any component (rounding seeds one) by 1.5^200 ~ 1e35.
    """
    eta = data.draw(st.floats(0.05, 1.0))
    ing = dict(ing, eta=eta)
    _, C, _ = augmented(ing)
    lam = np.linalg.eigvalsh(C)
    L, mu = lam.max() + 1 / eta, lam.min() + 1 / eta
    problem = make_problem(ing, "S")
    exact = stack(locoprop.solve_exact_s(problem))
    steps = int(np.ceil(40 * L / mu)) + 10  # contraction (1 - mu/L)^K <= e^-40
    w, _ = locoprop.solve_gd(problem, GD(steps=steps, lr=1 / L))
    anchor = stack(problem.anchor)
    per_step = (2 / L) * (
        evaluation_rounding(problem, problem.anchor) + evaluation_rounding(problem, w)
    ) + 2 * EPS * (np.linalg.norm(anchor) + np.linalg.norm(stack(w)))
    floor = (
        (L / mu) * per_step
        + eta * evaluation_rounding(problem, problem.anchor)
        + 4 * EPS * np.abs(anchor).max()
    )
    assert relative_error(stack(w) - anchor, exact - anchor, floor=floor / 1e-8) <= 1e-8
    far, _ = locoprop.solve_gd(problem, GD(steps=200, lr=2.5 / L))  # past the bound: the error grows
    assert np.linalg.norm(stack(far) - exact) > np.linalg.norm(stack(problem.anchor) - exact)


@given(ing=layer_problems(eta="some"), K=st.integers(1, 6))
def test_gd_with_rho_equal_eta_is_the_fixed_point_iteration(ing: dict, K: int) -> None:
    """rho = eta: W~ <- W~_t - eta X~^T (X~ W~ - A*).

    Two computations of the same K steps: each step's rounding (eta times the evaluation error plus
    2 eps |W~|, for each of the two) is carried to the end by ||I - eta C||^(steps left), at most
    (1 + eta lambda_max(C))^K: the absolute floor.  (The old floor 1e-12 did not cover a small step.)
    """
    problem = make_problem(ing, "S")
    got, _ = locoprop.solve_gd(problem, GD(steps=K, lr=ing["eta"]))
    Xt, C, _ = augmented(ing)
    Wt = stack(problem.anchor)
    W = Wt.copy()
    iterates = []
    for _ in range(K):
        W = Wt - ing["eta"] * Xt.T @ (Xt @ W - problem.target)
        iterates.append(W)
    growth = (1 + ing["eta"] * np.linalg.eigvalsh(C).max()) ** K
    per_step = max(
        ing["eta"] * evaluation_rounding(problem, {"W": it[:-1], "b": it[-1]}) + 2 * EPS * np.linalg.norm(it)
        for it in [Wt, *iterates]
    )
    floor = 2 * K * growth * per_step
    assert relative_error(stack(got) - Wt, W - Wt, floor=floor / 1e-8) <= 1e-8


@given(ing=layer_problems(max_batch=16, max_width=8, eta="none"), K=st.integers(1, 8))
def test_k_gd_steps_without_prox_are_a_truncated_neumann_series(ing: dict, K: int) -> None:
    """dW~_K = -rho gamma sum_{k<K} (I - rho C)^k dL/dW~.

    ||I - rho C|| <= 1, so each of the K steps' rounding (rho times the evaluation error plus 2 eps
    |W~|) reaches the end undamped at worst: the absolute floor; the series itself is computed to
    ~K n eps relative.  (The old floor 1e-12 did not cover a small step.)
    """
    _, C, g = augmented(ing)
    rho = 0.5 / np.linalg.eigvalsh(C).max()
    problem = make_problem(ing, "S")
    got, _ = locoprop.solve_gd(problem, GD(steps=K, lr=rho))
    P = np.eye(C.shape[0]) - rho * C
    series = sum(np.linalg.matrix_power(P, k) for k in range(K))
    want = -rho * ing["gamma"] * series @ g
    per_step = 2 * rho * (
        evaluation_rounding(problem, problem.anchor) + evaluation_rounding(problem, got)
    ) + 2 * EPS * (np.linalg.norm(stack(problem.anchor)) + np.linalg.norm(stack(got)))
    floor = K * per_step + 4 * EPS * np.abs(stack(problem.anchor)).max()
    assert relative_error(stack(got) - stack(problem.anchor), want, floor=floor / 1e-8) <= 1e-8


# ---- 4. zero upstream gradient; 5. M exact -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(arch=architectures(max_depth=3, max_width=6), seed=seeds(), K=st.integers(1, 4))
def test_zero_upstream_gradient_gives_no_update(name: str, variant: str, arch, seed: int, K: int) -> None:
    """Targets = current activations: no update for any K, with a zero-initialised optimizer state."""
    net, params, x, _ = random_net(arch, seed)
    y = net.forward(params, x).output  # dL/dA_M = (f(A) - y)/B = 0 exactly, hence every G_m = 0
    new, _ = locoprop.step(
        net, params, x, y, variant=variant_of(variant, 3.0), solver=GD(steps=K, inner=OPTIMIZERS[name]())
    )
    for a, b in zip(new, params, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
        np.testing.assert_array_equal(a["b"], b["b"])


@given(ing=layer_problems(transfers=["sigmoid", "tanh", "softmax", "leaky_relu", "relu"], eta="some"))
def test_m_exact_is_stationary(ing: dict) -> None:
    """Newton-CG reaches ||grad J|| <= 1e-10 ||grad J(W~_t)||, or stops where float64 cannot see further.

    The solver's own stopping test uses the same gradient evaluation, so when it reports convergence
    the check holds to the rounding of the norm (1 + 1e-6).  It may stop short only where progress is
    below what float64 resolves: the gradient within its evaluation rounding, or the decrease a Newton
    step would bring (~eta ||grad J||^2) below the rounding of J (objective_scale).
    """
    problem = make_problem(ing, "M")
    w, info = locoprop.solve_exact_m(problem, tol=1e-10)
    g0 = np.linalg.norm(stack(locoprop.gradient(problem, problem.anchor)))
    g = np.linalg.norm(stack(locoprop.gradient(problem, w)))
    n, N = problem.inputs.shape[1] + 1, problem.target.size
    at_precision = g <= 10 * evaluation_rounding(problem, w) or problem.eta * g**2 <= 1e3 * (
        n + N + 8
    ) * EPS * objective_scale(problem, w)
    assert info.converged or at_precision
    assert g <= 1e-10 * g0 * (1 + 1e-6) or at_precision


@given(ing=layer_problems(transfers=["identity"], eta="some"))
def test_m_exact_equals_s_exact_for_identity(ing: dict) -> None:
    """With f = identity, J_M and J_S differ by a constant: the same minimiser.

    The M solve stops at ||grad J|| <= 1e-12 g0, within eta 1e-12 g0 <= 1e-12 (1 + eta lambda_max(C))
    ||step|| of it (strong convexity, and g0 <= L ||step||), so the relative tolerance is 1e-8 plus that,
    times sqrt(entries) from the Frobenius to the max norm.  Absolutely: both right-hand sides'
    evaluation errors times eta, and 4 eps |W~_t| for forming the steps.  (The old bare 1e-8 relative
    failed neither in practice nor by a bound: for eta lambda_max ~ 2e4 it is not one.)
    """
    m = make_problem(ing, "M")
    s = make_problem(ing, "S")
    w_m, _ = locoprop.solve_exact_m(m, tol=1e-12)
    w_s = locoprop.solve_exact_s(s)
    _, C, _ = augmented(ing)
    rtol = 1e-8 + 2e-12 * (1 + ing["eta"] * np.linalg.eigvalsh(C).max()) * np.sqrt(
        C.shape[0] * m.target.shape[1]
    )
    floor = (
        ing["eta"] * (evaluation_rounding(m, m.anchor) + evaluation_rounding(s, s.anchor))
        + 4 * EPS * np.abs(stack(m.anchor)).max()
    )
    assert relative_error(delta(w_m, m.anchor), delta(w_s, s.anchor), floor=floor / rtol) <= rtol


# sup over a of |f''| for the elementwise transfers: sigmoid'' = s(1-s)(1-2s), largest at
# s = 1/2 -+ 1/(2 sqrt 3); tanh'' = -2 t (1 - t^2), largest at t = 1/sqrt 3.
SECOND_DERIVATIVE_BOUND = {"sigmoid": 1 / (6 * np.sqrt(3)), "tanh": 4 / (3 * np.sqrt(3))}


def second_derivative_norms(name: str, dA: np.ndarray) -> np.ndarray:
    """Per row n, an upper bound on sup_a ||D^2 f(a)[d, d]||_2 at d = dA[n].

    Elementwise f: D^2 f[d, d]_j = f''(a_j) d_j^2, so the bound is sup|f''| ||d||_4^2.  Softmax:
    D^2 s[d, d]_i = s_i ((d_i - m)^2 - v), with m and v the s-mean and s-variance of d; its 2-norm is at
    most its 1-norm, sum_i s_i |(d_i - m)^2 - v| <= 2 v <= (max d - min d)^2 / 2 (a shift of d, which
    softmax ignores, changes nothing).
    """
    if name == "softmax":
        return (dA.max(axis=1) - dA.min(axis=1)) ** 2 / 2
    return SECOND_DERIVATIVE_BOUND[name] * np.sqrt(np.sum(dA**4, axis=1))


def hessian_at_anchor(problem: LocalProblem, d: dict[str, np.ndarray]) -> np.ndarray:
    """H0 d for J_M at the anchor, written independently of the library (stacked (d_in+1, d_out))."""
    Xt = nn.augment(problem.inputs)
    A = Xt @ stack(problem.anchor)
    dA = Xt @ stack(d)
    if problem.transfer.elementwise:
        jvp = problem.transfer.df(A) * dA
    else:
        s = transfer.softmax_rows(A)
        jvp = s * (dA - (s * dA).sum(axis=1, keepdims=True))
    return Xt.T @ jvp + stack(d) / problem.eta


def newton_gap_and_bound(problem: LocalProblem) -> tuple[float, float, float]:
    """(||W_exact - W_newton||, its rigorous bound, ||W_exact - W_t||), Frobenius norms over W~ = [W; b].

    The bound.  J_M is (1/eta)-strongly convex, so ||W - W*|| <= eta ||grad J(W)|| for every W.  At the
    Newton point W_N = W_t + d_N, with r = g0 + H0 d_N the residual of its linear solve (g0 = grad J(W_t))
    and Delta = X~ d_N,

        grad J(W_N) = r + X~^T rho,   rho_n = f(a_n + Delta_n) - f(a_n) - Df(a_n) Delta_n,

    and by Taylor's theorem with integral remainder ||rho_n|| <= q_n / 2, q_n the bound on
    ||D^2 f[Delta_n, Delta_n]|| of second_derivative_norms.  Hence

        ||W_N - W_exact|| <= eta (||r|| + ||X~||_2 sqrt(sum_n q_n^2) / 2 + ||grad J(W_exact)||) + slack,

    where the slack covers the float64 rounding of the computed r and gradients: the residual f(A) - Y*
    cancels O(1) terms (|f| <= 1 here) to ~eps each, and each product rounds by <= (B + d_in + 1) eps of
    its terms' size (B + d_in + 1 <= 25), so 1e-12 of those sizes is a margin of over 100.
    Since ||d_N|| <= eta ||g0|| = eta gamma ||X~^T G||, the bound is O(gamma^2) while ||W* - W_t|| is
    of order gamma: the relative gap is O(gamma).
    """
    Xt = nn.augment(problem.inputs)
    exact, _ = locoprop.solve_exact_m(problem, tol=1e-13)
    newton = locoprop.newton_step(problem)
    d_n = delta(newton, problem.anchor)
    g0 = stack(locoprop.gradient(problem, problem.anchor))
    r = np.linalg.norm(g0 + hessian_at_anchor(problem, d_n))
    q = second_derivative_norms(problem.transfer.name, Xt @ stack(d_n))
    x_norm = np.linalg.norm(Xt, 2)
    remainder = x_norm * np.sqrt(np.sum(q**2)) / 2
    g_exact = np.linalg.norm(stack(locoprop.gradient(problem, exact)))
    scale = (
        np.linalg.norm(g0)
        + x_norm**2 * np.linalg.norm(stack(d_n))
        + np.linalg.norm(stack(d_n)) / problem.eta
        + np.linalg.norm(Xt) * np.sqrt(problem.target.size)
    )
    bound = problem.eta * (r + remainder + g_exact + 1e-12 * scale)
    gap = float(np.linalg.norm(stack(exact) - stack(newton)))
    return gap, float(bound), float(np.linalg.norm(stack(exact) - stack(problem.anchor)))


FALSIFYING_SOFTMAX = {  # seed 1 of the dev profile: the old "10x smaller gap at 10x smaller gamma" failed here
    "X": np.array([[0.75574411, 0.08370444, -0.78066418, 0.66370077, -0.35662369, -0.52313775]]),
    "W": np.array(
        [
            [0.34389698, 0.17578666],
            [0.27177731, -0.1859499],
            [-0.03816879, -0.34376257],
            [0.20028363, -0.20024536],
            [-0.03759784, -0.10481339],
            [0.32483991, 0.01819717],
        ]
    ),
    "b": np.array([0.0, 0.0]),
    "G": np.array([[1.63896385, -0.29672462]]),
    "transfer": "softmax",
    "gamma": 1.0,
    "eta": 1.0,
}


@given(ing=layer_problems(transfers=["sigmoid", "tanh", "softmax"], max_batch=16, max_width=8, eta="some"))
@example(ing=FALSIFYING_SOFTMAX)
def test_m_exact_agrees_with_one_newton_step_to_order_gamma(ing: dict) -> None:
    """||W* - W_newton|| <= eta ||X~||_2 ||D^2 f|| ||X~ d_N||^2 / 2 + solve residuals: O(gamma^2), relative O(gamma).

    The old test asserted that dividing gamma by 10 divides the relative gap by 5 or more, which
    is not true for every problem: the gap is c1 gamma + c2 gamma^2 + ..., and where c1 + c2 gamma
    nearly cancels at gamma = 1e-2 (the softmax example above: gaps 8.2e-7 at 1e-2 and 1.3e-6 at
    1e-3) it failed.  Now the gap is held to a rigorous bound (see newton_gap_and_bound), at the
    drawn gamma and at 1e-2 and 1e-3, which holds for every input the strategy can draw.
    """
    for gamma in (ing["gamma"], 1e-2, 1e-3):
        gap, bound, _ = newton_gap_and_bound(make_problem(ing, "M", gamma=gamma))
        assert gap <= bound


def test_newton_gap_bound_is_sharp_enough_to_fail_a_first_order_step() -> None:
    """Negative control: the bound is O(gamma^2), so at gamma = 1e-3 it is far below ||W* - W_t||
    (the gap of not moving at all), and a gradient step W_t - eta g0 (no curvature) breaks it."""
    ing = dict(
        FALSIFYING_SOFTMAX, X=np.vstack([FALSIFYING_SOFTMAX["X"]] * 4), G=np.tile([[1.6, -0.3]], (4, 1))
    )
    for name in ("softmax", "tanh", "sigmoid"):
        problem = make_problem(dict(ing, transfer=name), "M", gamma=1e-3)
        gap, bound, move = newton_gap_and_bound(problem)
        assert gap <= bound <= 1e-2 * move
        exact, _ = locoprop.solve_exact_m(problem, tol=1e-13)
        g0 = locoprop.gradient(problem, problem.anchor)
        first_order = {k: problem.anchor[k] - problem.eta * g0[k] for k in g0}
        assert np.linalg.norm(stack(exact) - stack(first_order)) > 10 * bound


@given(ing=layer_problems(transfers=["sigmoid", "tanh"], eta="some"))
def test_m_is_nonlinear_in_gamma(ing: dict) -> None:
    """Doubling gamma does not double the M update (S doubles exactly: see the linearity test)."""
    ing = dict(ing, G=ing["G"] * ing["X"].shape[0], eta=1.0)  # O(1) targets shifts so curvature shows
    one = make_problem(ing, "M", gamma=1.0)
    two = make_problem(ing, "M", gamma=2.0)
    d1 = stack(delta(locoprop.solve_exact_m(one, tol=1e-12)[0], one.anchor))
    d2 = stack(delta(locoprop.solve_exact_m(two, tol=1e-12)[0], two.anchor))
    assume(np.abs(d1).max() > 1e-3)
    # S doubles to rounding (~1e-12, test_s_is_linear...); M's second-order term is >= ~1e-6 here
    assert relative_error(d2, 2 * d1) > 1e-7


@given(ing=layer_problems(eta="any"), seed=seeds())
def test_j_m_is_convex_along_random_directions(ing: dict, seed: int) -> None:
    """Second differences of t -> J_M(W~ + t D) are >= 0 (up to rounding), for every transfer.

    Each computed J errs by <= (n + B d_out + 8) eps objective_scale (its terms' sizes, not |J|, which
    may cancel); a second difference by 4 times the largest of those.  (The old allowance 1e-9 (1 +
    max |J|) was relative to |J|, not to the terms that round.)
    """
    problem = make_problem(ing, "M")
    rng = np.random.default_rng(seed)
    D = {k: rng.standard_normal(v.shape) for k, v in problem.anchor.items()}
    ts = np.linspace(-2, 2, 9)
    points = [{k: problem.anchor[k] + t * D[k] for k in D} for t in ts]
    vals = np.array([float(locoprop.objective(problem, p)) for p in points])
    second = vals[:-2] - 2 * vals[1:-1] + vals[2:]
    n, N = problem.inputs.shape[1] + 1, problem.target.size
    allowance = 4 * (n + N + 8) * EPS * max(objective_scale(problem, p) for p in points)
    assert second.min() >= -allowance


# ---- layer order, out-of-range targets ------------------------------------------------------------


@pytest.mark.parametrize("solver", [GD(steps=3, lr=0.05), Exact()], ids=["gd", "exact"])
@given(arch=architectures(max_depth=4, max_width=6), seed=seeds(), data=st.data())
def test_layer_order_does_not_matter(solver: GD | Exact, arch, seed: int, data: st.DataObject) -> None:
    net, params, x, y = random_net(arch, seed)
    variant = M(gamma=2.0, eta=0.5)
    reference, _ = locoprop.step(net, params, x, y, variant=variant, solver=solver)
    problems, _ = locoprop.local_problems(net, params, x, y, variant)
    order = data.draw(st.permutations(range(net.num_layers)))
    solved: dict[int, dict] = {}
    for m in order:
        solved[m], _, _ = locoprop.solve_layer(problems[m], solver)
    for m in range(net.num_layers):
        np.testing.assert_array_equal(solved[m]["W"], reference[m]["W"])


def out_of_range_setup() -> tuple[lg.MLP, list, np.ndarray, np.ndarray]:
    net = lg.MLP([4, 3, 2], ["tanh", "identity"], "squared_error")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    return net, params, rng.standard_normal((4, 4)), 50 * rng.standard_normal((4, 2))


def test_out_of_range_m_targets_without_prox_are_reported() -> None:
    net, params, x, y = out_of_range_setup()
    with pytest.warns(
        locoprop.LocoPropWarning,
        match=r"layer 0: \d+ of 12 M targets lie outside the range \(-1.0, 1.0\) of tanh",
    ):
        _, info = locoprop.step(
            net, params, x, y, variant=M(gamma=10.0), solver=GD(steps=2, lr=1e-3), diagnostics=True
        )
    assert info.layers[0].out_of_range > 0 and info.layers[1].out_of_range == 0


def test_out_of_range_with_prox_is_bounded_and_silent() -> None:
    net, params, x, y = out_of_range_setup()
    _, info = locoprop.step(
        net, params, x, y, variant=M(gamma=10.0, eta=0.1), solver=Exact(), diagnostics=True
    )
    assert info.layers[0].out_of_range > 0
    assert info.layers[0].grad_norm_after <= 1e-9 * info.layers[0].grad_norm_before


def test_long_unregularised_gd_on_out_of_range_targets_is_stopped_not_silent() -> None:
    """Without prox, J_M is unbounded below: a long run is warned about, and a blow-up is an error."""
    net, params, x, y = out_of_range_setup()
    with pytest.warns(locoprop.LocoPropWarning), np.errstate(all="ignore"):
        with pytest.raises(lg.errors.NonFiniteError, match=r"step: layer \d W became non-finite"):
            locoprop.step(net, params, x, y * 1e6, variant=M(gamma=1e6), solver=GD(steps=3000, lr=1e3))


def test_step_info_reports_objective_decrease() -> None:
    net = lg.MLP([5, 4, 5], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=1)
    x = np.random.default_rng(1).random((10, 5))
    _, info = locoprop.step(
        net, params, x, x, variant=M(gamma=1.0), solver=GD(steps=5, lr=0.05), diagnostics=True
    )
    assert len(info.layers) == 2 and float(info.loss) == pytest.approx(net.loss(params, x, x))
    for rep in info.layers:
        assert rep.objective_after < rep.objective_before
        assert rep.grad_norm_after < rep.grad_norm_before and rep.iterations == 5


def test_step_always_returns_the_pair_and_reports_only_when_asked() -> None:
    """``return_info`` is gone: every step returns ``(params, StepReport)``; without ``diagnostics`` the
    reports are empty, the loss is there, and the inner states are one per layer (None for plain GD)."""
    net = lg.MLP([5, 4, 5], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=1)
    x = np.random.default_rng(1).random((10, 5))
    out = locoprop.step(net, params, x, x, variant=M(gamma=1.0), solver=GD(steps=2, lr=0.05))
    assert isinstance(out, tuple) and len(out) == 2
    new, info = out
    assert isinstance(info, locoprop.StepReport) and list(info.layers) == []
    assert float(info.loss) == pytest.approx(net.loss(params, x, x))
    assert list(info.inner_states) == [None, None]
    assert [set(layer) for layer in new] == [{"W", "b"}] * 2
    with pytest.raises(TypeError, match="return_info"):
        locoprop.step(  # type: ignore[call-arg]
            net, params, x, x, variant=M(gamma=1.0), solver=GD(steps=2, lr=0.05), return_info=True
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"variant": "M", "solver": GD(steps=1, lr=0.1)},
            "variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got str 'M'",
        ),
        (
            {"variant": M(gamma=1.0), "solver": "gd"},
            "solver: expected locoprop.GD(steps, lr, inner, lr_factor) or locoprop.Exact(tol), got str 'gd'",
        ),
        (
            {"variant": GD(steps=1, lr=0.1), "solver": M(gamma=1.0)},
            "variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got GD",
        ),
    ],
)
def test_string_settings_are_refused_with_one_line(kwargs: dict, message: str) -> None:
    """The old string settings (``variant="M"``, ``solver="gd"``) are refused by every entry: one TypeError
    line naming the field and the settings object to pass.  Negative control: the objects pass."""
    net = lg.MLP([3, 2], ["sigmoid"], "sigmoid_cross_entropy")
    params, x = net.init(), np.random.default_rng(0).random((4, 3))
    for call in (
        lambda: locoprop.step(net, params, x, x[:, :2], **kwargs),
        lambda: optim.LocoProp(net, kwargs["variant"], kwargs["solver"]),
    ):
        with pytest.raises(TypeError) as err:
            call()
        assert str(err.value) == message
    if isinstance(kwargs["solver"], str):
        problem = locoprop.local_problems(net, params, x, x[:, :2], M(gamma=1.0))[0][0]
        with pytest.raises(TypeError) as err:
            locoprop.solve_layer(problem, kwargs["solver"])
        assert str(err.value) == message
    with pytest.raises(TypeError) as err:
        locoprop.local_problems(net, params, x, x[:, :2], "M")  # type: ignore[arg-type]
    assert "\n" not in str(err.value) and str(err.value).startswith("variant: expected locoprop.S")
    new, _ = locoprop.step(net, params, x, x[:, :2], variant=M(gamma=1.0), solver=GD(steps=1, lr=0.1))
    assert not same_bits(new, params)


@pytest.mark.filterwarnings(
    "ignore::locograd.locoprop.LocoPropWarning"
)  # out-of-range M targets: same either way
@given(
    arch=architectures(max_depth=4, max_width=6),
    seed=seeds(),
    variant=st.sampled_from(["S", "M"]),
    solver=st.sampled_from(["gd", "exact"]),
    workers=st.integers(2, 4),
)
def test_layer_workers_give_the_same_step_bit_for_bit(
    arch, seed: int, variant: str, solver: str, workers: int
) -> None:
    """The layers' problems are independent: solving them on threads changes nothing, not even rounding."""
    net, params, x, y = net_and_batch(arch, seed, B=6)
    eta = 1.0 if solver == "exact" else None
    settings = GD(steps=3, inner=optim.adam(1e-2)) if solver == "gd" else Exact()
    opts = [optim.LocoProp(net, variant_of(variant, 0.5, eta), settings, workers=w) for w in (1, workers)]
    (serial, s1, _), (threaded, s2, _) = (o.step(params, x, y, o.init(params)) for o in opts)
    assert same_bits(serial, threaded) and same_bits(s1, s2)
    assert len(s1.inner) == len(s2.inner) == net.num_layers


def test_layer_workers_see_the_callers_errstate() -> None:
    import importlib

    step_module = importlib.import_module("locograd.locoprop.step")  # the module, not the function
    problems = [
        type("P", (), {"inputs": np.ones((2, d)), "offset": np.ones((2, 3)), "weight_rows": d + 1})()
        for d in (1, 2, 3)
    ]
    with np.errstate(over="raise", under="ignore"):
        seen = step_module._solve_layers(lambda m: (np.geterr(), m, None), problems, workers=3)
    assert [m for _, m, _ in seen] == [0, 1, 2]
    assert all(err["over"] == "raise" and err["under"] == "ignore" for err, _, _ in seen)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers(workers: Any) -> None:
    net = lg.MLP([3, 2], ["identity"], "squared_error")
    variant, solver = S(gamma=1.0), GD(steps=1, lr=0.1)
    with pytest.raises(ValueError, match=r"workers: expected an integer >= 1, got"):
        optim.LocoProp(net, variant, solver, workers=workers)
    params = net.init()
    with pytest.raises(ValueError, match=r"workers: expected an integer >= 1, got"):
        locoprop.step(
            net, params, np.ones((2, 3)), np.ones((2, 2)), variant=variant, solver=solver, workers=workers
        )


# ---- the fused fast path: bit for bit the reference -------------------------------------------------

INNER = [None, *sorted(optim.FIRST_ORDER), "chain"]


def make_inner(name: str | None) -> Any:
    """None (plain GD), a first-order optimizer (it has the fused hook update_inplace), or a chain (none:
    the fused solve takes the pure path for it)."""
    if name is None:
        return None
    if name == "chain":
        return optim.chain(optim.scale(0.5), optim.adam(1e-2))
    return OPTIMIZERS[name]()


def test_every_first_order_optimizer_is_covered_and_has_the_fused_hook() -> None:
    """The parametrisations above draw from OPTIMIZERS: a new optimizer in optim.FIRST_ORDER must be added.
    Negative control: a chain has no hook (so the fused solve's fallback is covered by INNER's "chain")."""
    assert set(OPTIMIZERS) == set(optim.FIRST_ORDER)
    assert all(callable(OPTIMIZERS[name]().update_inplace) for name in OPTIMIZERS)
    assert make_inner("chain").update_inplace is None


def typed_problem(ing: dict[str, Any], variant: str, dtype: Any, from_target: bool = False) -> LocalProblem:
    """The drawn layer's problem in ``dtype``: from the offset gamma G (as ``locoprop.step`` builds it),
    or from the target A - gamma G (S) or f(A) - gamma G (M) (as a user may)."""
    t = transfer.get(ing["transfer"])
    X = ing["X"].astype(dtype)
    anchor = {"W": ing["W"].astype(dtype), "b": ing["b"].astype(dtype)}
    A = X @ anchor["W"] + anchor["b"]
    offset = dtype(ing["gamma"]) * ing["G"].astype(dtype)
    transfer_ = t if variant == "M" else None
    if from_target:
        target = (A if variant == "S" else t.f(A)) - offset
        return LocalProblem.build(X, target, transfer_, variant, anchor, ing["eta"])
    return LocalProblem.from_offset(X, A, offset, transfer_, variant, anchor, ing["eta"])


@pytest.mark.parametrize("inner", INNER, ids=[str(n) for n in INNER])
@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    ing=layer_problems(max_batch=16, max_width=8),
    K=st.integers(1, 4),
    warm=st.integers(0, 2),
    from_target=st.booleans(),
    with_factor=st.booleans(),
    override=st.booleans(),
    seed=seeds(),
)
def test_fused_solve_equals_the_reference_bit_for_bit(
    inner: str | None,
    variant: str,
    dtype: Any,
    ing: dict,
    K: int,
    warm: int,
    from_target: bool,
    with_factor: bool,
    override: bool,
    seed: int,
) -> None:
    """_fast.local.solve_gd_inplace returns solve_gd's params and inner state bit for bit (its contract),
    for plain GD and every inner optimizer, with and without eta and lr_factor, for problems built from
    the offset or from a target, in float32 and float64, from a fresh (None) or a used state; and it
    never writes into what it is given (the anchor, the inputs, the pre-activations, the offset, the
    caller's inner state).

    Negative control: the same comparison fails for the fused solve with a 1.25 times larger step size.
    """
    problem = typed_problem(ing, variant, dtype, from_target)
    opt = make_inner(inner)
    solver = GD(
        steps=K,
        lr=0.02 if opt is None or override else None,
        inner=opt,
        lr_factor=released_inner_factor if with_factor else None,
    )
    state = None
    if opt is not None and warm:
        state = opt.init(problem.anchor)
        rng = np.random.default_rng(seed)
        for _ in range(warm):
            noise = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in problem.anchor.items()}
            _, state = opt.update(noise, state, problem.anchor)
    before = copy.deepcopy((problem.inputs, problem.pre, problem.offset, problem.anchor, state))
    reference = locoprop.solve_gd(problem, solver, copy.deepcopy(state))
    fused = solve_gd_inplace(problem, solver, state)
    assert same_bits(fused, reference)
    assert fused[0]["W"].dtype == dtype
    assert same_bits((problem.inputs, problem.pre, problem.offset, problem.anchor, state), before)
    # the caller may keep using what it got: a second fused solve from the same state agrees again
    assert same_bits(solve_gd_inplace(problem, solver, state), reference)
    perturbed = solve_gd_inplace(problem, solver.with_lr(1.25 * solver.base_lr), state)
    assert not same_bits(perturbed[0], reference[0])


def count_hook_calls(problem: LocalProblem, opt: Any, state: Any, steps: int) -> tuple[int, Any]:
    """How many times the fused solve calls ``opt``'s update_inplace hook, and its result."""
    calls: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return opt.update_inplace(*args, **kwargs)

    solved = solve_gd_inplace(problem, GD(steps=steps, inner=opt._replace(update_inplace=spy)), state)
    return len(calls), solved


def hook_problem(dtype: Any) -> LocalProblem:
    rng = np.random.default_rng(0)
    X, W = rng.uniform(-1, 1, (6, 3)).astype(dtype), rng.uniform(-1, 1, (3, 2)).astype(dtype)
    return LocalProblem.build(X, X @ W + dtype(0.1), None, "S", {"W": W, "b": np.zeros(2, dtype)})


@pytest.mark.parametrize("name", sorted(optim.FIRST_ORDER))
def test_fused_solve_takes_the_optimizers_in_place_hook(name: str, dtype: Any) -> None:
    """The bit-for-bit tests compare the fused kernels, not a fallback: from a state the caller passes, after
    the first (pure) inner step every later step goes through the optimizer's update_inplace hook (K - 1
    calls), in both dtypes, with the reference's numbers, and the caller's state is not written.
    Negative control: with K = 1 the hook is never called (the first step is always the pure update), and
    without the hook (replaced by None) the fused solve falls back to the pure updates, same numbers."""
    problem, opt = hook_problem(dtype), OPTIMIZERS[name]()
    state = opt.init(problem.anchor)
    kept = copy.deepcopy(state)
    reference = locoprop.solve_gd(problem, GD(steps=4, inner=opt), state)
    calls, spied = count_hook_calls(problem, opt, state, 4)
    assert calls == 3 and same_bits(spied, reference) and same_bits(state, kept)
    assert count_hook_calls(problem, opt, state, 1)[0] == 0
    plain = solve_gd_inplace(problem, GD(steps=4, inner=opt._replace(update_inplace=None)), state)
    assert same_bits(plain, reference)


@pytest.mark.parametrize("name", sorted(set(optim.FIRST_ORDER) - {"sgd"}))
def test_fused_solve_from_a_fresh_state_takes_the_hook_after_the_first_step(name: str, dtype: Any) -> None:
    """With ``inner_state=None`` the state is the solve's own: every step after the first is in place."""
    problem, opt = hook_problem(dtype), OPTIMIZERS[name]()
    calls, spied = count_hook_calls(problem, opt, None, 4)
    assert same_bits(spied, locoprop.solve_gd(problem, GD(steps=4, inner=opt)))
    assert calls == 3


@pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")  # M without eta: same either way
@pytest.mark.parametrize("inner", INNER, ids=[str(n) for n in INNER])
@given(
    arch=architectures(max_depth=3, max_width=6),
    seed=seeds(),
    variant=st.sampled_from(["S", "M"]),
    eta=st.sampled_from([None, 0.5]),
    K=st.integers(1, 3),
    with_factor=st.booleans(),
)
def test_locoprop_optimizer_equals_the_reference_step_bit_for_bit(
    inner: str | None, dtype: Any, arch, seed: int, variant: str, eta: float | None, K: int, with_factor: bool
) -> None:
    """optim.LocoProp.step (the fused local solve) = locoprop.step with the reference solve, bit for bit:
    parameters, inner states and loss, over two batches with the state carried and the second batch at
    another learning rate (the schedule's ``lr``); the caller's state is never written.

    Negative control: a LocoProp with a 1.25 times larger step size fails the same comparison.
    """
    net, params, x, y = net_and_batch(arch, seed, B=6)
    params = [{k: v.astype(dtype) for k, v in layer.items()} for layer in params]
    rng = np.random.default_rng(seed + 1)
    batches = [(x, y), (rng.standard_normal(x.shape), net_and_batch(arch, seed + 1, B=6)[3])]
    batches = [(bx.astype(dtype), by.astype(dtype)) for bx, by in batches]
    opt_inner = make_inner(inner)
    solver = GD(
        steps=K,
        lr=0.02 if opt_inner is None else None,
        inner=opt_inner,
        lr_factor=released_inner_factor if with_factor else None,
    )
    v = variant_of(variant, 0.5, eta)
    loco = optim.LocoProp(net, v, solver)
    p_fast, s_fast = params, loco.init(params)
    p_ref, s_ref = params, loco.init(params).inner
    for b, (bx, by) in enumerate(batches):
        lr = None if b == 0 else 0.5 * solver.base_lr
        given_state, kept = s_fast, copy.deepcopy(s_fast)
        p_fast, s_fast, info = loco.step(p_fast, bx, by, given_state, lr=lr)
        p_ref, ref_info = locoprop.step(
            net,
            p_ref,
            bx,
            by,
            variant=v,
            solver=solver if lr is None else solver.with_lr(lr),
            inner_states=None if opt_inner is None else s_ref,
        )
        s_ref = tuple(ref_info.inner_states)
        assert same_bits(p_fast, p_ref) and same_bits(s_fast.inner, s_ref)
        assert same_bits(info.loss, ref_info.loss)
        assert same_bits(given_state, kept)
    first = optim.LocoProp(net, v, solver).step(params, *batches[0], loco.init(params))[0]
    faster = optim.LocoProp(net, v, solver.with_lr(1.25 * solver.base_lr))
    assert not same_bits(faster.step(params, *batches[0], faster.init(params))[0], first)
