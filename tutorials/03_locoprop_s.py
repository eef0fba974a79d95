# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 03 · LocoProp-S: local squared losses on the pre-activations
#
# **Prerequisites:** lessons 01 and 02; least squares and the eigenvalues of a symmetric matrix.
#
# **Time:** about 40 minutes
#
# **You will be able to:** show that LocoProp-S starts as BackProp and solve its local problem as a preconditioned step.
#
# ## What you will learn
#
# - the LocoProp-S targets $A^*_m = A_m - \gamma G_m$, built for every layer
#   from ONE forward/backward pass ($G_m = \partial L/\partial A_m$);
# - why the first inner step of LocoProp **is** BackProp (numbers);
# - the exact solution in closed form, a *preconditioned gradient step*
#   $\tilde W^* = \tilde W_t - \gamma\,(\tilde X^\top\tilde X + I/\eta)^{-1}\,\partial L/\partial\tilde W$
#   (`locoprop.solve_exact_s`), and its Kronecker form: K-FAC with the
#   output-gradient factor replaced by the identity (Benzing's FOOF);
# - inner gradient descent converging to the closed form when
#   $\rho < 2/(\lambda_{max} + 1/\eta)$, and diverging beyond (figure);
# - the two limits of the proximal weight: $\eta\to 0$ is a BackProp step of
#   size $\gamma\eta$, $\eta\to\infty$ is the pseudo-inverse solution (figure).
#
# Notation (`docs/math.md`, section 1): layer input $X$ $(B, d_{in})$, weights
# $W$ $(d_{in}, d_{out})$, bias $b$; the bias is folded in by augmentation,
# $\tilde X = [X, 1]$, $\tilde W = [W; b]$ (the linear view of a dense
# layer: `nn.augment(X)` and `nn.stack(layer)` build them, `nn.unstack`
# splits $\tilde W$ back into `{"W", "b"}`). The local objective of layer $m$ sums
# over the batch:
#
# $$J_S(\tilde W) = \sum_n \tfrac12\|\tilde x_n\tilde W - a^*_n\|^2
#   + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2 .$$

# %%

import matplotlib.pyplot as plt
import numpy as np

import locograd as lg
from locograd import locoprop
from locograd.locoprop import GD, S
from locograd.nn import augment, stack  # X~ = [X, 1] (B, d_in+1) and W~ = [W; b] (d_in+1, d_out)
from locograd.testing import relative_error
from locograd.tutorial import FAST, Checks, save

rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # two float64 routes to the same numbers: rounding only

# %% [markdown]
# ## 1. Targets from one forward/backward pass
#
# A small regression network in float64. The batch $B = 8$ is deliberately
# smaller than the augmented width $d_{in}+1 = 9$ of the middle layer, so its
# $\tilde X^\top\tilde X$ is singular: that makes the $\eta\to\infty$ limit
# below a true pseudo-inverse.

# %%
net = lg.MLP([6, 8, 5, 4], ["tanh", "tanh", "identity"], "squared_error")
params = net.init(seed=0, bias="glorot")
B = 8
x = rng.standard_normal((B, 6))
y = rng.standard_normal((B, 4))
gamma = 2.0

trace = net.forward(params, x)
grads = net.backward(params, trace, y)
targets = locoprop.targets(trace, grads, gamma, "S")
for m in range(net.num_layers):
    checks("A* = A - gamma G", relative_error(targets[m], trace.pre[m] - gamma * grads.pre[m]), EXACT)
moves = [
    np.linalg.norm(targets[m] - trace.pre[m]) / np.linalg.norm(trace.pre[m]) for m in range(net.num_layers)
]
print("|A* - A| / |A| per layer:", ", ".join(f"{v:.3f}" for v in moves))

# %% [markdown]
# ## 2. The first local step is BackProp
#
# The gradient of $J_S$ at the anchor $\tilde W_t$ (the prox term vanishes
# there) is
#
# $$\nabla J_S(\tilde W_t) = \tilde X^\top(\tilde X\tilde W_t - A^*)
#    = \tilde X^\top (A - A + \gamma G) = \gamma\,\tilde X^\top G
#    = \gamma\,\partial L/\partial\tilde W .$$
#
# So one inner GD step of size $\rho$ is exactly SGD with learning rate
# $\rho\gamma$, in every layer at once, for any $\eta$.

# %%
problems, _ = locoprop.local_problems(net, params, x, y, variant=S(gamma=gamma, eta=0.3))
for m, prob in enumerate(problems):
    g_local = stack(locoprop.gradient(prob, prob.anchor))
    checks(
        "grad J_S(W_t) = gamma dL/dW~", relative_error(g_local, gamma * stack(grads.as_params()[m])), EXACT
    )

rho = 0.05
one_step, _ = locoprop.step(net, params, x, y, variant=S(gamma=gamma), solver=GD(steps=1, lr=rho))
sgd = [{k: p[k] - rho * gamma * g[k] for k in p} for p, g in zip(params, grads.as_params(), strict=True)]
checks("locoprop.step(K = 1) = SGD with lr rho gamma", relative_error(one_step, sgd), EXACT)

# %% [markdown]
# ## 3. The exact solution: a preconditioned gradient step
#
# $J_S$ is a quadratic in $\tilde W$. Setting its gradient to zero, with
# $C = \tilde X^\top\tilde X$ (the uncentred input covariance, summed over
# the batch) and $\tilde X^\top A^* = C\tilde W_t - \gamma\,\partial L/\partial\tilde W$:
#
# $$(C + I/\eta)\,\tilde W^* = C\tilde W_t - \gamma\,\tfrac{\partial L}{\partial\tilde W} + \tilde W_t/\eta
#  \quad\Longrightarrow\quad
#  \tilde W^* = \tilde W_t - \gamma\,(C + I/\eta)^{-1}\,\tfrac{\partial L}{\partial\tilde W}.$$
#
# `locoprop.solve_exact_s` does this with a Cholesky factorisation (never an
# explicit inverse). We check it against `np.linalg.solve` of the formula and
# check that its gradient vanishes.

# %%
eta = 0.1
problems, _ = locoprop.local_problems(net, params, x, y, variant=S(gamma=gamma, eta=eta))
m = 1
prob = problems[m]
Xt = augment(prob.inputs)
C = Xt.T @ Xt
dL_dWt = stack(grads.as_params()[m])
W_exact = stack(locoprop.solve_exact_s(prob))
W_formula = stack(prob.anchor) - gamma * np.linalg.solve(C + np.eye(C.shape[0]) / eta, dL_dWt)
print(f"layer {m}: C is {C.shape}, rank {np.linalg.matrix_rank(C)} (B = {B})")
checks("solve_exact_s = the formula", relative_error(W_exact, W_formula), EXACT)
g_at_exact = stack(locoprop.gradient(prob, locoprop.solve_exact_s(prob)))
g_at_anchor = stack(locoprop.gradient(prob, prob.anchor))
checks(
    "|grad J_S(W*)| / |grad J_S(W_t)| = 0", np.linalg.norm(g_at_exact) / np.linalg.norm(g_at_anchor), EXACT
)

# %% [markdown]
# ### The Kronecker form: K-FAC with the output factor $I$ (FOOF)
#
# Stack the columns of $\Delta\tilde W = \tilde W^* - \tilde W_t$ into one
# vector (`vec`, column-major). Since $\mathrm{vec}(C\,\Delta) = (I_{d_{out}}\otimes C)\,\mathrm{vec}(\Delta)$,
#
# $$\mathrm{vec}(\Delta\tilde W) = -\gamma\,\big(I_{d_{out}}\otimes (C + I/\eta)\big)^{-1}\,
#    \mathrm{vec}\big(\partial L/\partial\tilde W\big).$$
#
# K-FAC preconditions with a Kronecker product of two factors, the input
# covariance and the covariance of the back-propagated output gradients.
# LocoProp-S keeps the first factor (uncentred, summed over the current batch,
# damped by $1/\eta$), replaces the second by the identity, and uses the
# learning rate $\gamma$: the update Benzing (2022) calls FOOF. The block
# structure means the $(d_{in}+1)\,d_{out}$-dimensional solve splits into
# one $(d_{in}+1)$-dimensional solve shared by all output columns. On this
# tiny layer we can afford the dense Kronecker matrix:

# %%
n, d_out = C.shape[0], dL_dWt.shape[1]
K_dense = np.kron(np.eye(d_out), C + np.eye(n) / eta)  # ((d_in+1) d_out)^2 entries
vec = np.linalg.solve(K_dense, dL_dWt.reshape(-1, order="F"))
delta_kron = -gamma * vec.reshape((n, d_out), order="F")
print(f"dense Kronecker matrix: {K_dense.shape}")
checks(
    "solve_exact_s = dense (I kron (C + I/eta)) solve",
    relative_error(W_exact - stack(prob.anchor), delta_kron),
    EXACT,
)

# %% [markdown]
# ## 4. Inner gradient descent converges to the closed form
#
# $J_S$ has the constant Hessian $H = I_{d_{out}}\otimes(C + I/\eta)$, with
# eigenvalues between $\lambda_{min}(C) + 1/\eta$ and
# $L = \lambda_{max}(C) + 1/\eta$. Gradient descent with step $\rho$ contracts
# every eigendirection by $|1 - \rho\lambda|$, so it converges to
# $\tilde W^*$ exactly when $\rho < 2/L$, and diverges along the top
# eigendirection beyond. We run it with the library's own local gradient
# (`locoprop.gradient`, the same code `solve_gd` uses) and record the
# distance to the closed form after every step.

# %%
lam = np.linalg.eigvalsh(C)
L_smooth = lam.max() + 1 / eta
rho_max = 2 / L_smooth
print(f"lambda_max(C) = {lam.max():.3f}, lambda_min(C) = {max(lam.min(), 0):.1e}, 1/eta = {1 / eta:g}")
print(f"bound rho < 2 / (lambda_max + 1/eta) = {rho_max:.4f}")
mu = max(lam.min(), 0) + 1 / eta
print(
    f"fastest step 2 / (lambda_max + lambda_min + 2/eta) = {2 / (L_smooth + mu):.4f} "
    f"= {2 / (L_smooth + mu) / rho_max:.2f} x bound"
)

K = 150
best = 2 / (L_smooth + mu) / rho_max
fractions = [0.25, 0.5, round(best, 2), 0.9, 1.03]
dist = {}
for frac in fractions:
    r = frac * rho_max
    W = prob.anchor
    d = [np.linalg.norm(stack(W) - W_exact)]
    for _ in range(K):
        g = locoprop.gradient(prob, W)
        W = {k: W[k] - r * g[k] for k in W}
        d.append(np.linalg.norm(stack(W) - W_exact))
    dist[frac] = np.array(d) / d[0]
    # the same K steps through the library's solver
    W_lib, _ = locoprop.solve_gd(prob, GD(steps=K, lr=r))
    if frac < 1:  # (beyond the bound the iterates grow, and so does their rounding)
        checks("solve_gd = K steps of GD by hand", relative_error(W_lib, W), EXACT)
    print(f"rho = {frac:4.2f} x bound: distance after {K} steps {dist[frac][-1]:.1e}")

# %%
fig, ax = plt.subplots(figsize=(9.2, 4.4), constrained_layout=True)
for frac in fractions:
    style = "--" if frac > 1 else "-"
    note = " (best)" if frac == round(best, 2) else ""
    ax.semilogy(dist[frac], style, lw=2, label=rf"$\rho = {frac:g}\times 2/(\lambda_{{max}} + 1/\eta)${note}")
ax.set_xlabel("inner GD step $k$")
ax.set_ylabel(r"$\|\tilde W_k - \tilde W^*\| \,/\, \|\tilde W_t - \tilde W^*\|$")
ax.set_title(rf"Inner GD on $J_S$ (layer {m}, $\eta = {eta:g}$) vs the closed form")
ax.set_ylim(1e-16, 1e3)
ax.grid(alpha=0.3, which="both")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
save(fig, "03_gd_to_closed_form.png")

# %% [markdown]
# **What the figure shows.** The relative distance between the inner GD
# iterate and the closed-form minimiser, on a log scale, for four step sizes
# given as fractions of the bound $2/(\lambda_{max}+1/\eta)$. Below the bound
# all four runs converge linearly (straight lines on the log scale) down to
# rounding level ~1e-15. The contraction per step is
# $\max(|1-\rho\mu|, |1-\rho L|)$ with $\mu = \lambda_{min}(C) + 1/\eta$:
# $0.25\times$ is slow along the flattest direction, $0.9\times$ is slow
# because the steepest direction overshoots and oscillates
# ($|1-\rho L| = 0.8$), and the best step $2/(L+\mu)$ printed above
# ($0.72\times$ here) balances the two and converges fastest. Just above the bound ($1.03\times$, dashed) the
# steepest direction is amplified by $|1 - \rho L| > 1$ every step and the
# iterate diverges. The proximal term sets the smallest eigenvalue to at
# least $1/\eta$, which is what makes the
# convergence linear even though $C$ itself is singular here.
#
# ## 5. The limits of the proximal weight $\eta$
#
# * $\eta \to 0$: $(C + I/\eta)^{-1} = \eta\,(I + \eta C)^{-1} \approx \eta\,I$, so
#   $\tilde W^* \approx \tilde W_t - \gamma\eta\,\partial L/\partial\tilde W$:
#   **a plain BackProp step** with learning rate $\gamma\eta$ (relative error $O(\eta\lambda_{max})$).
# * $\eta \to \infty$: the prox disappears and the minimum-norm change
#   $\tilde W^* = \tilde W_t - \gamma\,C^{+}\,\partial L/\partial\tilde W$ with
#   the **pseudo-inverse** $C^+$ remains (the gradient lies in the range of
#   $C$, so the limit exists even though $C$ is singular here).
#   `solve_exact_s` with `eta=None` computes exactly this limit.

# %%
prob_inf = locoprop.LocalProblem.build(prob.inputs, prob.target, None, "S", prob.anchor, eta=None)
delta_pinv = stack(locoprop.solve_exact_s(prob_inf)) - stack(prob.anchor)
checks(
    "eta = None: -gamma pinv(C) dL/dW~",
    relative_error(delta_pinv, -gamma * np.linalg.pinv(C) @ dL_dWt),
    1e-10,
)

etas = np.logspace(-6, 8, 15 if FAST else 43)
to_backprop, to_pinv = [], []
for e in etas:
    p_e = locoprop.LocalProblem.build(prob.inputs, prob.target, None, "S", prob.anchor, eta=float(e))
    delta = stack(locoprop.solve_exact_s(p_e)) - stack(prob.anchor)
    bp = -gamma * e * dL_dWt
    to_backprop.append(np.linalg.norm(delta - bp) / np.linalg.norm(bp))
    to_pinv.append(np.linalg.norm(delta - delta_pinv) / np.linalg.norm(delta_pinv))
for e, a_, b_ in list(zip(etas, to_backprop, to_pinv, strict=True))[:: max(1, len(etas) // 7)]:
    print(f"eta = {e:8.0e}: distance to BackProp step {a_:.1e}, to pseudo-inverse step {b_:.1e}")

# %%
fig, ax = plt.subplots(figsize=(6.6, 4.4), constrained_layout=True)
ax.loglog(
    etas, to_backprop, "o-", ms=3, label=r"to the BackProp step $-\gamma\eta\,\partial L/\partial\tilde W$"
)
ax.loglog(
    etas, to_pinv, "s-", ms=3, label=r"to the pseudo-inverse step $-\gamma C^+\partial L/\partial\tilde W$"
)
ax.axvline(1 / lam.max(), color="gray", ls=":", label=r"$\eta = 1/\lambda_{max}(C)$")
pos = lam[lam > 1e-10 * lam.max()].min()
ax.axvline(1 / pos, color="gray", ls="--", label=r"$\eta = 1/\lambda_{min}^{+}(C)$")
ax.set_xlabel(r"proximal weight $\eta$")
ax.set_ylabel("relative distance of the exact S step")
ax.set_title("LocoProp-S interpolates between BackProp and a pseudo-inverse step")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8, loc="lower center")
save(fig, "03_eta_limits.png")

# %% [markdown]
# **What the figure shows.** How far the exact LocoProp-S step is from its
# two limits as the proximal weight $\eta$ sweeps fourteen decades (log-log).
# For $\eta$ well below $1/\lambda_{max}(C)$ (dotted line) the step is a
# BackProp step of size $\gamma\eta$: the distance falls linearly with $\eta$.
# For $\eta$ well above $1/\lambda^+_{min}(C)$ (dashed line, the smallest
# non-zero eigenvalue) it is the pseudo-inverse step: the distance falls like
# $1/\eta$. In between, LocoProp-S is a genuinely preconditioned step,
# neither of the two.
#
# ## Summary of the checks
#
# Each identity above was asserted where it was computed; here they are in
# one line, with the largest error met for each tolerance (the pseudo-inverse
# check allows 1e-10: two eigenvalue cut-offs of a singular $C$ meet there).

# %%
checks.report()

# %% [markdown]
# ## Exercises
#
# 1. Run $K$ inner GD steps **without** prox (`eta=None`) and check the
#    truncated Neumann series
#    $\Delta\tilde W_K = -\rho\gamma\sum_{k<K}(I - \rho C)^k\,\partial L/\partial\tilde W$.
# 2. Show that GD with $\rho = \eta$ is the fixed-point iteration
#    $\tilde W \leftarrow \tilde W_t - \eta\,\tilde X^\top(\tilde X\tilde W - A^*)$.
#    When does it converge?
# 3. Check that the whole LocoProp-S step is linear in $\gamma$: compare
#    `solve_exact_s` at $\gamma$ and $2\gamma$.

# %% tags=["hide-input"]
# Solution to exercise 1: without prox, each GD step maps the step D to (I - rho C) D - rho gamma dL/dW~.
free = locoprop.LocalProblem.build(prob.inputs, prob.target, None, "S", prob.anchor, eta=None)
rho_n = 0.5 / lam.max()  # ||I - rho C|| <= 1: the series neither grows nor oscillates
P = np.eye(C.shape[0]) - rho_n * C
for K_n in (1, 5, 20):
    W_K, _ = locoprop.solve_gd(free, GD(steps=K_n, lr=rho_n))
    series = sum(np.linalg.matrix_power(P, k) for k in range(K_n))
    err = relative_error(stack(W_K) - stack(free.anchor), -rho_n * gamma * series @ dL_dWt)
    print(f"K = {K_n:2d}: GD vs truncated Neumann series, relative error {err:.1e}")
    # both sides sum the same K products in float64, rounding only (~1e-15); the step is not
    # small next to W~_t here, so forming W~_K - W~_t costs no digits: EXACT (1e-12) holds
    assert err <= EXACT

# %% tags=["hide-input"]
# Solution to exercise 2: grad J_S = X~^T (X~ W~ - A*) + (W~ - W~_t) / eta, so
# W~ - eta grad J_S = W~_t - eta X~^T (X~ W~ - A*): the W~ terms cancel.
Wt = stack(prob.anchor)
W_fp = Wt.copy()
for _ in range(6):
    W_fp = Wt - eta * Xt.T @ (Xt @ W_fp - prob.target)
W_gd, _ = locoprop.solve_gd(prob, GD(steps=6, lr=eta))
err = relative_error(stack(W_gd) - Wt, W_fp - Wt)
print(f"6 GD steps with rho = eta vs the fixed-point iteration: relative error {err:.1e}")
assert err <= EXACT  # the same float64 operations grouped differently: rounding only
# Its linear part is -eta C, so it converges exactly when eta lambda_max(C) < 1 (equivalently
# rho = eta < 2 / (lambda_max + 1/eta), the bound of section 4), with rate eta lambda_max.
print(f"here eta lambda_max(C) = {eta * lam.max():.2f}: the identity holds, but iterated on it would diverge")
for factor in (0.5, 1.5):
    e = factor / lam.max()
    p_e = locoprop.LocalProblem.build(prob.inputs, prob.target, None, "S", prob.anchor, eta=e)
    W_far, _ = locoprop.solve_gd(p_e, GD(steps=60, lr=e))
    start = np.linalg.norm(Wt - stack(locoprop.solve_exact_s(p_e)))
    dist = np.linalg.norm(stack(W_far) - stack(locoprop.solve_exact_s(p_e))) / start
    print(f"eta lambda_max = {factor}: relative distance to the closed form after 60 steps {dist:.1e}")
    if factor < 1:
        # contraction by <= 0.5 per step: 0.5^60 ~ 1e-18, so only rounding (~1e-15) is left
        assert dist <= EXACT
    else:
        # the top eigendirection grows by 1.5 per step: 1.5^60 ~ 4e10
        assert dist > 1e6

# %% tags=["hide-input"]
# Solution to exercise 3: A* - A = -gamma G, so the right-hand side of (C + I/eta) D = -gamma dL/dW~
# and the GD iterates' displacements are proportional to gamma.
steps = {}
for g in (gamma, 2 * gamma):
    p_g = locoprop.local_problems(net, params, x, y, variant=S(gamma=g, eta=eta))[0][m]
    exact_g = stack(locoprop.solve_exact_s(p_g)) - stack(p_g.anchor)
    gd_g = stack(locoprop.solve_gd(p_g, GD(steps=5, lr=0.5 * rho_max))[0]) - stack(p_g.anchor)
    steps[g] = (exact_g, gd_g)
err_exact = relative_error(steps[2 * gamma][0], 2 * steps[gamma][0])
err_gd = relative_error(steps[2 * gamma][1], 2 * steps[gamma][1])
print(f"step at 2 gamma vs 2 x step at gamma: closed form {err_exact:.1e}, 5 GD steps {err_gd:.1e}")
# the same solves with a right-hand side scaled by 2 (exact in binary): rounding only, ~1e-15
assert err_exact <= EXACT and err_gd <= EXACT

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_locoprop.py::test_local_gradient_at_anchor_is_gamma_times_backprop_gradient)
# A random layer as the tests draw one (B 1-64, d_in and d_out 1-32, uniform X and W, G ~ N(0, 1)/B,
# gamma in [0.1, 10], eta None or in [0.01, 10]): grad J_S(W~_t) = gamma dL/dW~ to 1e-9 relative, or
# absolutely to the rounding of the target A - gamma G, 4 (B + 2) eps max |X~|^T (|A| + |gamma G|).
# Then, as tests/test_locoprop.py::test_s_closed_form_equals_dense_kronecker_form checks (B 1-6,
# widths 1-4), the closed form is the preconditioned step
# vec(W~*) = vec(W~_t) - gamma (I kron (C + I/eta))^-1 vec(dL/dW~) to 1e-8 relative.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)


def random_layer(max_batch, max_width, eta_may_be_none):
    """X (B, d_in), anchor {W, b}, G = dL/dA (B, d_out), gamma, eta: one layer's ingredients."""
    B_, d_in, d_out = (int(draw.integers(1, top + 1)) for top in (max_batch, max_width, max_width))
    W_ = draw.uniform(-1, 1, (d_in, d_out)) / np.sqrt(d_in)
    b_ = draw.uniform(-0.5, 0.5, d_out) if draw.random() < 0.5 else np.zeros(d_out)
    X_ = draw.uniform(-1, 1, (B_, d_in))
    G_ = draw.standard_normal((B_, d_out)) / B_
    eta_ = None if eta_may_be_none and draw.random() < 0.5 else float(draw.uniform(0.01, 10))
    return X_, {"W": W_, "b": b_}, G_, float(draw.uniform(0.1, 10)), eta_


X_c, anchor_c, G_c, gamma_c, eta_c = random_layer(64, 32, True)
A_c = X_c @ anchor_c["W"] + anchor_c["b"]
problem = locoprop.LocalProblem.build(X_c, A_c - gamma_c * G_c, None, "S", anchor_c, eta=eta_c)
local = locoprop.gradient(problem, problem.anchor)
expected = {"W": gamma_c * X_c.T @ G_c, "b": gamma_c * G_c.sum(axis=0)}
eps64 = float(np.finfo(np.float64).eps)
rounding = (
    4
    * (X_c.shape[0] + 2)
    * eps64
    * float((np.abs(augment(X_c)).T @ (np.abs(A_c) + np.abs(gamma_c * G_c))).max())
)
assert relative_error(local, expected, floor=max(rounding, 1e-300) / 1e-9) <= 1e-9

X_c, anchor_c, G_c, gamma_c, eta_c = random_layer(6, 4, False)
A_c = X_c @ anchor_c["W"] + anchor_c["b"]
problem = locoprop.LocalProblem.build(X_c, A_c - gamma_c * G_c, None, "S", anchor_c, eta=eta_c)
Xt_c = augment(X_c)
C_c, g_c = Xt_c.T @ Xt_c, stack({"W": X_c.T @ G_c, "b": G_c.sum(axis=0)})
n_c, d_c = C_c.shape[0], g_c.shape[1]
vec = np.linalg.solve(np.kron(np.eye(d_c), C_c + np.eye(n_c) / eta_c), g_c.reshape(-1, order="F"))
preconditioned = stack(anchor_c) - gamma_c * vec.reshape((n_c, d_c), order="F")
assert relative_error(stack(locoprop.solve_exact_s(problem)), preconditioned) <= 1e-8
print(f"seed {seed}: first local step = gamma dL/dW~, closed form = the preconditioned step")
