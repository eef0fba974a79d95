"""LOCOPROP.md section 4, one named test per identity, each with a negative control that can fail.

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
from hypothesis import assume, given
from hypothesis import strategies as st

import locograd as lg
from locograd import locoprop, optim, transfer
from locograd.locoprop import LocalProblem
from locograd.testing import relative_error

from .strategies import architectures, layer_problems, net_and_batch, seeds

RTOL = 1e-9

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.05),
    "momentum": lambda: optim.momentum(0.05, 0.9),
    "nesterov": lambda: optim.nesterov(0.05, 0.9),
    "adam": lambda: optim.adam(1e-3),
    "adagrad": lambda: optim.adagrad(0.05),
    "rmsprop": lambda: optim.rmsprop(1e-3),
    "rmsprop_tf1": lambda: optim.rmsprop_tf1(1e-3),
}


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
    Xt = np.hstack([ing["X"], np.ones((ing["X"].shape[0], 1))])
    g = loss_grad(ing)
    return Xt, Xt.T @ Xt, np.vstack([g["W"], g["b"][None]])


def stack(p: dict[str, np.ndarray]) -> np.ndarray:
    return np.vstack([p["W"], p["b"][None]])


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
    problem = make_problem(ing, variant)
    local = locoprop.gradient(problem, problem.anchor)
    expected = {k: ing["gamma"] * v for k, v in loss_grad(ing).items()}
    assert relative_error(local, expected, floor=1e-6 * ing["gamma"]) <= RTOL


@pytest.mark.parametrize("variant", ["S", "M"])
@given(
    arch=architectures(max_depth=4, max_width=8),
    seed=seeds(),
    gamma=st.floats(0.1, 10),
    rho=st.floats(1e-3, 1.0),
)
def test_first_step_equals_backprop_plain_gd(variant: str, arch, seed: int, gamma: float, rho: float) -> None:
    """One inner GD step of size rho = SGD with learning rate rho * gamma, every layer, every transfer."""
    net, params, x, y = random_net(arch, seed)
    new = locoprop.step(net, params, x, y, variant=variant, gamma=gamma, steps=1, lr=rho)
    expected = [
        {k: p[k] - rho * gamma * g[k] for k in p}
        for p, g in zip(params, backprop_grads(net, params, x, y), strict=True)
    ]
    updates = [delta(n, p) for n, p in zip(new, params, strict=True)]
    want = [delta(e, p) for e, p in zip(expected, params, strict=True)]
    assert relative_error(updates, want, floor=1e-6 * rho * gamma) <= 1e-8


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(ing=layer_problems(max_batch=16, max_width=8), warm=st.integers(0, 3), seed=seeds())
def test_first_step_equals_optimizer_step_from_the_same_state(
    name: str, variant: str, ing: dict, warm: int, seed: int
) -> None:
    """Any first-order inner optimizer: its first local step is its step on gamma * dL/dW~ from the same state."""
    opt = OPTIMIZERS[name]()
    problem = make_problem(ing, variant)
    state = opt.init(problem.anchor)
    rng = np.random.default_rng(seed)
    for _ in range(warm):  # a used state, not only a fresh one
        noise = {k: rng.standard_normal(v.shape) for k, v in problem.anchor.items()}
        _, state = opt.update(noise, state, problem.anchor)
    local, _ = locoprop.solve_gd(problem, steps=1, inner=opt, inner_state=copy.deepcopy(state))
    scaled = {k: ing["gamma"] * v for k, v in loss_grad(ing).items()}
    expected, _ = opt.update(scaled, copy.deepcopy(state), problem.anchor)
    # adaptive methods divide by sqrt(v): gradient rounding (~1e-16 |f(A)|) becomes ~1e-10 relative at worst
    assert (
        relative_error(delta(local, problem.anchor), delta(expected, problem.anchor), floor=1e-8 * opt.lr)
        <= 1e-7
    )


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(arch=architectures(max_depth=3, max_width=6), seed=seeds(), gamma=st.floats(0.5, 5))
def test_k1_locoprop_equals_backprop_on_gamma_loss_over_batches(
    name: str, variant: str, arch, seed: int, gamma: float
) -> None:
    """K = 1 LocoProp with optimizer O = BackProp with O on gamma * L, state carried over three batches."""
    net, params, _, _ = random_net(arch, seed)
    rng = np.random.default_rng(seed + 1)
    loco = optim.LocoProp(net, variant=variant, gamma=gamma, steps=1, inner=OPTIMIZERS[name]())
    base = OPTIMIZERS[name]()
    p_loco, s_loco = params, loco.init(params)
    p_bp, s_bp = params, base.init(params)
    for _ in range(3):
        x = rng.standard_normal((5, net.sizes[0]))
        y = random_targets(net.loss_fn.name, (5, net.sizes[-1]), rng)
        p_loco, s_loco, _ = loco.update(p_loco, x, y, s_loco)
        g = [{k: gamma * v for k, v in layer.items()} for layer in backprop_grads(net, p_bp, x, y)]
        p_bp, s_bp = base.update(g, s_bp, p_bp)
    assert (
        relative_error(
            [delta(a, b) for a, b in zip(p_loco, params, strict=True)],
            [delta(a, b) for a, b in zip(p_bp, params, strict=True)],
            floor=1e-8 * base.lr,
        )
        <= 1e-7
    )


def test_k1_official_preset_equals_backprop_rmsprop_tf1() -> None:
    """The released optimizer (TF1 RMSProp, ms starting at ones) with K = 1 is BackProp on 10 * L."""
    net = lg.MLP([6, 5, 3, 5, 6], ["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=2, bias="glorot")
    released = optim.official(net)
    k1 = optim.LocoProp(net, variant="M", gamma=released.gamma, steps=1, inner=optim.rmsprop_tf1(lr=1e-3))
    bp = optim.rmsprop_tf1(lr=1e-3)
    x = np.random.default_rng(0).random((7, 6))
    new, _, _ = k1.update(params, x, x, k1.init(params))
    g = [{k: 10.0 * v for k, v in layer.items()} for layer in backprop_grads(net, params, x, x)]
    ref, _ = bp.update(g, bp.init(params), params)
    assert relative_error(new, ref) <= 1e-12


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
    w = locoprop.solve_exact_s(problem)
    g0 = np.linalg.norm(stack(locoprop.gradient(problem, problem.anchor)))
    assume(g0 > 0)
    assert np.linalg.norm(stack(locoprop.gradient(problem, w))) <= 1e-8 * g0


@given(ing=layer_problems(max_batch=6, max_width=4, eta="some"))
def test_s_closed_form_equals_dense_kronecker_form(ing: dict) -> None:
    """vec(W~*) = vec(W~_t) - gamma (I kron (C + I/eta))^-1 vec(dL/dW~): K-FAC with output factor I, damping 1/eta."""
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

    (Smaller eta would drown the update in the rounding of W~* - W~_t.)
    """
    _, C, g = augmented(ing)
    eta = 1e-6 / (1 + np.linalg.eigvalsh(C).max())
    problem = make_problem(ing, "S", eta=eta)
    got = delta(locoprop.solve_exact_s(problem), problem.anchor)
    want = -ing["gamma"] * eta * g
    assert relative_error(stack(got), want) <= 1e-5


@given(ing=layer_problems(max_batch=16, max_width=8, eta="none"))
def test_s_closed_form_eta_to_infinity_is_pseudo_inverse(ing: dict) -> None:
    """eta=None gives W~_t - gamma C^+ dL/dW~, and large finite eta approaches it."""
    _, C, g = augmented(ing)
    problem = make_problem(ing, "S", eta=None)
    got = stack(locoprop.solve_exact_s(problem))
    want = stack(problem.anchor) - ing["gamma"] * np.linalg.pinv(C, hermitian=True) @ g
    assert relative_error(got - stack(problem.anchor), want - stack(problem.anchor)) <= 1e-7
    lam = np.linalg.eigvalsh(C)
    positive = lam[lam > 1e-9 * lam.max()]
    assume(positive.min() > 1e-3)
    big = stack(locoprop.solve_exact_s(make_problem(ing, "S", eta=1e9)))
    assert relative_error(big - stack(problem.anchor), want - stack(problem.anchor)) <= 1e-5


@given(ing=layer_problems(), c=st.floats(0.1, 10), K=st.integers(1, 5))
def test_s_is_linear_in_gamma_and_g_but_m_is_not(ing: dict, c: float, K: int) -> None:
    """S (closed form and K GD steps) is linear in gamma and G."""
    ing = dict(ing, eta=ing["eta"] or 1.0)
    G2 = np.random.default_rng(1).standard_normal(ing["G"].shape) / ing["G"].shape[0]
    gam = ing["gamma"]

    def exact(**kw: Any) -> np.ndarray:
        p = make_problem(ing, "S", **kw)
        return stack(delta(locoprop.solve_exact_s(p), p.anchor))

    def gd(**kw: Any) -> np.ndarray:
        p = make_problem(ing, "S", **kw)
        return stack(delta(locoprop.solve_gd(p, K, lr=1e-3)[0], p.anchor))

    for solve in (exact, gd):
        assert relative_error(solve(gamma=c * gam), c * solve(gamma=gam), floor=1e-12) <= 1e-7
        assert relative_error(solve(G=ing["G"] + G2), solve() + solve(G=G2), floor=1e-12) <= 1e-7


@given(ing=layer_problems(max_batch=12, max_width=6, eta="some"), data=st.data())
def test_gd_with_prox_converges_to_closed_form(ing: dict, data: st.DataObject) -> None:
    """rho < 2 / (lambda_max(C) + 1/eta): GD converges to the closed form; rho > that bound diverges."""
    eta = data.draw(st.floats(0.05, 1.0))
    ing = dict(ing, eta=eta)
    _, C, _ = augmented(ing)
    lam = np.linalg.eigvalsh(C)
    L, mu = lam.max() + 1 / eta, lam.min() + 1 / eta
    problem = make_problem(ing, "S")
    exact = stack(locoprop.solve_exact_s(problem))
    steps = int(np.ceil(40 * L / mu)) + 10  # contraction (1 - mu/L)^K <= e^-40
    w, _ = locoprop.solve_gd(problem, steps, lr=1 / L)
    assert relative_error(stack(w) - stack(problem.anchor), exact - stack(problem.anchor)) <= 1e-8
    far, _ = locoprop.solve_gd(problem, 200, lr=2.5 / L)  # past the bound: the error grows
    assert np.linalg.norm(stack(far) - exact) > np.linalg.norm(stack(problem.anchor) - exact)


@given(ing=layer_problems(eta="some"), K=st.integers(1, 6))
def test_gd_with_rho_equal_eta_is_the_fixed_point_iteration(ing: dict, K: int) -> None:
    """rho = eta: W~ <- W~_t - eta X~^T (X~ W~ - A*)."""
    problem = make_problem(ing, "S")
    got, _ = locoprop.solve_gd(problem, K, lr=ing["eta"])
    Xt, _, _ = augmented(ing)
    Wt = stack(problem.anchor)
    W = Wt.copy()
    for _ in range(K):
        W = Wt - ing["eta"] * Xt.T @ (Xt @ W - problem.target)
    assert relative_error(stack(got) - Wt, W - Wt, floor=1e-12) <= 1e-8


@given(ing=layer_problems(max_batch=16, max_width=8, eta="none"), K=st.integers(1, 8))
def test_k_gd_steps_without_prox_are_a_truncated_neumann_series(ing: dict, K: int) -> None:
    """dW~_K = -rho gamma sum_{k<K} (I - rho C)^k dL/dW~."""
    _, C, g = augmented(ing)
    rho = 0.5 / np.linalg.eigvalsh(C).max()
    problem = make_problem(ing, "S")
    got, _ = locoprop.solve_gd(problem, K, lr=rho)
    P = np.eye(C.shape[0]) - rho * C
    series = sum(np.linalg.matrix_power(P, k) for k in range(K))
    want = -rho * ing["gamma"] * series @ g
    assert relative_error(stack(got) - stack(problem.anchor), want, floor=1e-12) <= 1e-8


# ---- 4. zero upstream gradient; 5. M exact -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("variant", ["S", "M"])
@given(arch=architectures(max_depth=3, max_width=6), seed=seeds(), K=st.integers(1, 4))
def test_zero_upstream_gradient_gives_no_update(name: str, variant: str, arch, seed: int, K: int) -> None:
    """Targets = current activations: no update for any K, with a zero-initialised optimizer state."""
    net, params, x, _ = random_net(arch, seed)
    y = net.forward(params, x).output  # dL/dA_M = (f(A) - y)/B = 0 exactly, hence every G_m = 0
    new = locoprop.step(net, params, x, y, variant=variant, gamma=3.0, steps=K, inner=OPTIMIZERS[name]())
    for a, b in zip(new, params, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
        np.testing.assert_array_equal(a["b"], b["b"])


@given(ing=layer_problems(transfers=["sigmoid", "tanh", "softmax", "leaky_relu", "relu"], eta="some"))
def test_m_exact_is_stationary(ing: dict) -> None:
    problem = make_problem(ing, "M")
    w, info = locoprop.solve_exact_m(problem, tol=1e-10)
    g0 = np.linalg.norm(stack(locoprop.gradient(problem, problem.anchor)))
    assert info.converged
    assert np.linalg.norm(stack(locoprop.gradient(problem, w))) <= 1e-10 * g0 * (1 + 1e-6)


@given(ing=layer_problems(transfers=["identity"], eta="some"))
def test_m_exact_equals_s_exact_for_identity(ing: dict) -> None:
    m = make_problem(ing, "M")
    s = make_problem(ing, "S")
    w_m, _ = locoprop.solve_exact_m(m, tol=1e-12)
    w_s = locoprop.solve_exact_s(s)
    assert relative_error(delta(w_m, m.anchor), delta(w_s, s.anchor)) <= 1e-8


@given(ing=layer_problems(transfers=["sigmoid", "tanh", "softmax"], max_batch=16, max_width=8, eta="some"))
def test_m_exact_agrees_with_one_newton_step_to_order_gamma(ing: dict) -> None:
    """||W* - W_newton|| / ||W* - W_t|| = O(gamma): dividing gamma by 10 divides it by ~10."""

    def gap(gamma: float) -> float:
        p = make_problem(ing, "M", gamma=gamma)
        exact, _ = locoprop.solve_exact_m(p, tol=1e-13)
        newton = locoprop.newton_step(p)
        return np.linalg.norm(stack(exact) - stack(newton)) / np.linalg.norm(stack(exact) - stack(p.anchor))

    big, small = gap(1e-2), gap(1e-3)
    assume(big > 1e-7)  # else both are at rounding level
    assert small <= 0.2 * big


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
    """Second differences of t -> J_M(W~ + t D) are >= 0 (up to rounding), for every transfer."""
    problem = make_problem(ing, "M")
    rng = np.random.default_rng(seed)
    D = {k: rng.standard_normal(v.shape) for k, v in problem.anchor.items()}
    ts = np.linspace(-2, 2, 9)
    vals = np.array(
        [float(locoprop.objective(problem, {k: problem.anchor[k] + t * D[k] for k in D})) for t in ts]
    )
    second = vals[:-2] - 2 * vals[1:-1] + vals[2:]
    assert second.min() >= -1e-9 * (1 + np.abs(vals).max())


# ---- layer order, out-of-range targets ------------------------------------------------------------


@pytest.mark.parametrize("solver", ["gd", "exact"])
@given(arch=architectures(max_depth=4, max_width=6), seed=seeds(), data=st.data())
def test_layer_order_does_not_matter(solver: str, arch, seed: int, data: st.DataObject) -> None:
    net, params, x, y = random_net(arch, seed)
    kw = {"variant": "M", "gamma": 2.0, "eta": 0.5}
    reference = locoprop.step(net, params, x, y, solver=solver, steps=3, lr=0.05, **kw)
    problems, _ = locoprop.local_problems(net, params, x, y, **kw)
    order = data.draw(st.permutations(range(net.num_layers)))
    solved: dict[int, dict] = {}
    for m in order:
        solved[m], _, _ = locoprop.solve_layer(problems[m], solver=solver, steps=3, lr=0.05)
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
            net, params, x, y, variant="M", gamma=10.0, steps=2, lr=1e-3, return_info=True, diagnostics=True
        )
    assert info.layers[0].out_of_range > 0 and info.layers[1].out_of_range == 0


def test_out_of_range_with_prox_is_bounded_and_silent() -> None:
    net, params, x, y = out_of_range_setup()
    _, info = locoprop.step(
        net,
        params,
        x,
        y,
        variant="M",
        gamma=10.0,
        eta=0.1,
        solver="exact",
        return_info=True,
        diagnostics=True,
    )
    assert info.layers[0].out_of_range > 0
    assert info.layers[0].grad_norm_after <= 1e-9 * info.layers[0].grad_norm_before


def test_long_unregularised_gd_on_out_of_range_targets_is_stopped_not_silent() -> None:
    """Without prox, J_M is unbounded below: a long run is warned about, and a blow-up is an error."""
    net, params, x, y = out_of_range_setup()
    with pytest.warns(locoprop.LocoPropWarning), np.errstate(all="ignore"):
        with pytest.raises(ValueError, match=r"step: layer \d W became non-finite"):
            locoprop.step(net, params, x, y * 1e6, variant="M", gamma=1e6, steps=3000, lr=1e3)


def test_step_info_reports_objective_decrease() -> None:
    net = lg.MLP([5, 4, 5], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=1)
    x = np.random.default_rng(1).random((10, 5))
    _, info = locoprop.step(
        net, params, x, x, variant="M", gamma=1.0, steps=5, lr=0.05, return_info=True, diagnostics=True
    )
    assert len(info.layers) == 2 and float(info.loss) == pytest.approx(net.loss(params, x, x))
    for rep in info.layers:
        assert rep.objective_after < rep.objective_before
        assert rep.grad_norm_after < rep.grad_norm_before and rep.iterations == 5


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
    opts = [
        optim.LocoProp(
            net,
            variant=variant,
            gamma=0.5,
            eta=eta,
            solver=solver,
            steps=3,
            inner=optim.adam(1e-2),
            workers=w,
        )
        for w in (1, workers)
    ]
    (serial, s1, _), (threaded, s2, _) = (o.update(params, x, y, o.init(params)) for o in opts)
    for a, b in zip(serial, threaded, strict=True):
        assert np.array_equal(a["W"], b["W"]) and np.array_equal(a["b"], b["b"])
    assert len(s1["inner"]) == len(s2["inner"]) == net.num_layers


def test_layer_workers_see_the_callers_errstate() -> None:
    import importlib

    step_module = importlib.import_module("locograd.locoprop.step")  # the module, not the function
    problems = [type("P", (), {"inputs": np.ones((2, d)), "target": np.ones((2, 3))})() for d in (1, 2, 3)]
    with np.errstate(over="raise", under="ignore"):
        seen = step_module._solve_layers(lambda m: (np.geterr(), m, None), problems, workers=3)
    assert [m for _, m, _ in seen] == [0, 1, 2]
    assert all(err["over"] == "raise" and err["under"] == "ignore" for err, _, _ in seen)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers(workers: Any) -> None:
    net = lg.MLP([3, 2], ["identity"], "squared_error")
    with pytest.raises(ValueError, match=r"workers: expected an integer >= 1, got"):
        optim.LocoProp(net, workers=workers)
    params = net.init()
    with pytest.raises(ValueError, match=r"workers: expected an integer >= 1, got"):
        locoprop.step(
            net, params, np.ones((2, 3)), np.ones((2, 2)), variant="S", gamma=1.0, lr=0.1, workers=workers
        )
