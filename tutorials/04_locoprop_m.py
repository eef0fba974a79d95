# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 · LocoProp-M: matching losses on the post-activations
#
# **Prerequisites:** lessons 02 (matching losses) and 03 (targets, the first step, inner GD).
#
# **Time:** about 45 minutes
#
# **You will be able to:** build LocoProp-M targets, solve its local problems, and handle out-of-range targets.
#
# ## What you will learn
#
# - the LocoProp-M targets $Y^*_m = f_m(A_m) - \gamma G_m$, a
#   **post**-activation target built from the **pre**-activation gradient
#   $G_m = \partial L/\partial A_m$;
# - why exactly this convention: the first local step equals BackProp, and the
#   two tempting alternatives ($\partial L/\partial Y$ instead of
#   $\partial L/\partial A$, or $f(A - \gamma G)$) do not (numbers and a figure);
# - the exact solve with a proximal term by Newton-CG
#   (`locoprop.solve_exact_m`) against $K$ inner gradient steps (figure);
# - out-of-range targets: when $Y^*$ leaves the range of $f$, what the
#   `LocoPropWarning` says, and how the proximal term keeps the local problem
#   solvable (figure);
# - one whole LocoProp-M step written from the primitives (`nn`,
#   `transfer`, `bregman`) and checked against `locoprop.step`.
#
# The local objective of layer $m$ (input $X$ frozen, bias by augmentation,
# summed over the batch) is the matching loss of the layer's own transfer $f$:
#
# $$J_M(\tilde W) = \sum_n \big[F(\tilde x_n\tilde W) - y^*_n\cdot\tilde x_n\tilde W\big]
#    + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2,\qquad
#   \nabla J_M = \tilde X^\top\big(f(\tilde X\tilde W) - Y^*\big) + (\tilde W - \tilde W_t)/\eta .$$
#
# Tutorial 02 showed that it is convex in $\tilde W$.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

import locograd as lg
from locograd import bregman, locoprop
from locograd.locoprop import GD, M, S
from locograd.nn import augment, stack, unstack  # X~ = [X, 1] (B, d_in+1) and W~ = [W; b] (d_in+1, d_out)
from locograd.testing import relative_error
from locograd.tutorial import FAST, Checks, save


def norm(p):
    """||W~||, the Frobenius norm of [W; b]."""
    return float(np.linalg.norm(stack(p)))


rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # two float64 routes to the same numbers: rounding only

# %% [markdown]
# ## 1. Targets
#
# A small network with tanh and sigmoid layers and a sigmoid cross-entropy
# output, in float64.

# %%
net = lg.MLP([5, 7, 6, 4], ["tanh", "sigmoid", "sigmoid"], "sigmoid_cross_entropy")
params = net.init(seed=0, bias="glorot")
B = 10
x = rng.standard_normal((B, 5))
y = rng.random((B, 4))
gamma = 5.0

trace = net.forward(params, x)
grads = net.backward(params, trace, y)
targets = locoprop.targets(trace, grads, gamma, "M")
for m, t in enumerate(net.transfers):
    checks("Y* = f(A) - gamma G", relative_error(targets[m], t.f(trace.pre[m]) - gamma * grads.pre[m]), EXACT)
    lo, hi = targets[m].min(), targets[m].max()
    print(f"layer {m} ({t.name:>7}): Y* in [{lo:+.3f}, {hi:+.3f}], range of f {t.range}")

# %% [markdown]
# ## 2. The first local step is BackProp — and why it must be $\partial L/\partial A$
#
# At the anchor, $f(\tilde X\tilde W_t) = f(A)$, so
#
# $$\nabla J_M(\tilde W_t) = \tilde X^\top\big(f(A) - f(A) + \gamma G\big)
#   = \gamma\,\tilde X^\top G = \gamma\,\partial L/\partial\tilde W,$$
#
# for every monotone transfer: one inner GD step of size $\rho$ is SGD with
# learning rate $\rho\gamma$ again. The two natural-looking alternatives break
# this:
#
# * **$\partial L/\partial Y$ instead of $\partial L/\partial A$**:
#   $Y^* = f(A) - \gamma\,\partial L/\partial Y$ gives
#   $\gamma\tilde X^\top \partial L/\partial Y$, but BackProp is
#   $\gamma\tilde X^\top (f'(A)\odot\partial L/\partial Y)$: wrong by the
#   factor $f'$, at every $\gamma$.
# * **Shifting the pre-activation**, $Y^* = f(A - \gamma G)$ (i.e.
#   $a^* = A - \gamma G$ as in LocoProp-S, then mapped through $f$): the local
#   gradient $\tilde X^\top(f(A) - f(A - \gamma G)) \approx \gamma\tilde X^\top(f'(A)\odot G)$
#   is **also** wrong by the factor $f'$, and does not get better as
#   $\gamma\to 0$.
#
# (Combining the two mistakes, $f(A - \gamma\,\partial L/\partial Y)$, happens
# to cancel them at first order: it is right up to $O(\gamma)$, not exactly.)
# For the hidden layers $\partial L/\partial Y_m = G_{m+1}W_{m+1}^\top$.

# %%


def first_step_errors(g):
    """Relative error of the local gradient at W_t against gamma dL/dW~, for each target convention."""
    conventions = {
        "Y* = f(A) - g dL/dA  (LocoProp-M)": lambda f, A, G, dY: f.f(A) - g * G,
        "Y* = f(A) - g dL/dY": lambda f, A, G, dY: f.f(A) - g * dY,
        "Y* = f(A - g dL/dA)": lambda f, A, G, dY: f.f(A - g * G),
        "Y* = f(A - g dL/dY)": lambda f, A, G, dY: f.f(A - g * dY),
    }
    out = {}
    for name, make in conventions.items():
        errs = []
        for m in range(net.num_layers - 1):  # hidden layers, where dL/dY is a different quantity
            f, A, G = net.transfers[m], trace.pre[m], grads.pre[m]
            dY = grads.pre[m + 1] @ params[m + 1]["W"].T
            prob = locoprop.LocalProblem.build(trace.inputs[m], make(f, A, G, dY), f, "M", params[m])
            local = stack(locoprop.gradient(prob, prob.anchor))
            errs.append(relative_error(local, g * stack(grads.as_params()[m])))
        out[name] = max(errs)
    return out


print("max over hidden layers of |grad J_M(W_t) - gamma dL/dW~| / |gamma dL/dW~|, gamma = 5:")
conventions = first_step_errors(gamma)
for name, err in conventions.items():
    print(f"  {name:<36} {err:.2e}")
checks("grad J_M(W_t) = gamma dL/dW~", conventions["Y* = f(A) - g dL/dA  (LocoProp-M)"], EXACT)

rho = 0.01
one_step, _ = locoprop.step(net, params, x, y, variant=M(gamma=gamma), solver=GD(steps=1, lr=rho))
sgd = [{k: p[k] - rho * gamma * g[k] for k in p} for p, g in zip(params, grads.as_params(), strict=True)]
checks("locoprop.step(M, K = 1) = SGD with lr rho gamma", relative_error(one_step, sgd), EXACT)

# %%
gammas = np.logspace(-4, 1, 11 if FAST else 26)
sweep = [first_step_errors(g) for g in gammas]
fig, ax = plt.subplots(figsize=(8.6, 4.4), constrained_layout=True)
labels = {
    "Y* = f(A) - g dL/dA  (LocoProp-M)": r"$Y^* = f(A) - \gamma\,\partial L/\partial A$ (LocoProp-M)",
    "Y* = f(A) - g dL/dY": r"$Y^* = f(A) - \gamma\,\partial L/\partial Y$",
    "Y* = f(A - g dL/dA)": r"$Y^* = f(A - \gamma\,\partial L/\partial A)$",
    "Y* = f(A - g dL/dY)": r"$Y^* = f(A - \gamma\,\partial L/\partial Y)$",
}
styles = [("o-", 4), ("s-", 8), ("D--", 4), ("^-", 4)]
for (name, label), (style, ms) in zip(labels.items(), styles, strict=True):
    errs = np.maximum([s[name] for s in sweep], 1e-17)  # exact zeros drawn at the bottom
    ax.loglog(gammas, errs, style, ms=ms, label=label)
ax.set_xlabel(r"target step $\gamma$")
ax.set_ylabel("relative error of the first local step\nagainst the BackProp step")
ax.set_title("Which target makes the first local step BackProp?")
ax.set_ylim(1e-17, 10)
ax.grid(alpha=0.3, which="both")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
save(fig, "04_target_conventions.png")

# %% [markdown]
# **What the figure shows.** For each target convention, how far the first
# local gradient step is from the BackProp step, as $\gamma$ varies (log-log,
# hidden layers of the network above). LocoProp-M's $f(A) - \gamma\,\partial L/\partial A$
# is exact: what remains is rounding, namely the cancellation in
# $f(A) - Y^*$, about $\varepsilon_{mach}|f(A)|/(\gamma|G|)$, which is why
# that curve rises slowly as $\gamma \to 0$ but stays below 1e-10. Using
# $\partial L/\partial Y$ (squares) or shifting the pre-activation,
# $f(A - \gamma\,\partial L/\partial A)$ (dashed, on top of the squares:
# both miss a factor $f'$ and here happen to give nearly the same error),
# leaves an error of order one that does not shrink as $\gamma \to 0$. Only
# the combination $f(A - \gamma\,\partial L/\partial Y)$ approaches BackProp,
# and only linearly in $\gamma$. This is why locograd builds M targets from
# the pre-activation gradient, and why `locograd verify --inject dl-dy`
# fails.
#
# ## 3. Solving the local problem: Newton-CG vs $K$ gradient steps
#
# $J_M$ has no closed form. With a proximal term it is strongly convex with
# Hessian $\sum_n \tilde x_n\tilde x_n^\top\otimes\mathrm{diag}\,f'(a_n) + I/\eta$,
# so Newton's method with conjugate gradients (each Hessian-vector product is
# two matrix products) finds its unique minimiser to a set tolerance:
# `locoprop.solve_exact_m`. Without the prox it refuses, because $J_M$ may then
# have no minimiser at all (section 4).

# %%
eta = 1.0
problems, _ = locoprop.local_problems(net, params, x, y, variant=M(gamma=gamma, eta=eta))
for m, prob in enumerate(problems):
    W_star, info = locoprop.solve_exact_m(prob)
    g0 = norm(locoprop.gradient(prob, prob.anchor))
    checks(
        "Newton-CG: |grad J(W*)| / |grad J(W_t)| <= 1e-10", norm(locoprop.gradient(prob, W_star)) / g0, 1e-10
    )
    print(f"layer {m}: {info.newton_iterations} Newton iterations, {info.cg_iterations} CG iterations")

no_prox = locoprop.LocalProblem.build(problems[0].inputs, problems[0].target, "tanh", "M", problems[0].anchor)
try:
    locoprop.solve_exact_m(no_prox)
except ValueError as err:
    print("eta=None -> ValueError:", err)

# %% [markdown]
# For small $\gamma$ the minimiser is close to one Newton step from
# $\tilde W_t$ (relative error $O(\gamma)$, `locoprop.newton_step`); unlike
# LocoProp-S, the M step is not linear in $\gamma$:

# %%
for g in (5.0, 0.5, 0.05):
    prob_g = locoprop.local_problems(net, params, x, y, variant=M(gamma=g, eta=eta))[0][1]
    exact = stack(locoprop.solve_exact_m(prob_g, tol=1e-12)[0]) - stack(prob_g.anchor)
    newton = stack(locoprop.newton_step(prob_g)) - stack(prob_g.anchor)
    print(f"gamma = {g:5.2f}: |one Newton step - exact| / |exact| = {relative_error(newton, exact):.1e}")

# %% [markdown]
# Now $K$ inner steps of plain GD on the sigmoid layer, for step sizes below
# $2/L$ with $L = \lambda_{max}(C)\max f' + 1/\eta$ (a bound on the Hessian;
# $\max f' = 1/4$ for the sigmoid), against the Newton-CG minimiser. We also
# record Newton-CG's own iterates (`max_newton=k`).

# %%
m = 1
prob = problems[m]
# the reference: Newton-CG pushed to the rounding floor (a tolerance tighter than the default 1e-10)
W_star, info_star = locoprop.solve_exact_m(prob, tol=1e-15, max_newton=30)
print(
    f"reference W*: {info_star.newton_iterations} Newton iterations, relative gradient {info_star.relative_gradient:.0e}"
)
d0 = norm({k: prob.anchor[k] - W_star[k] for k in W_star})


def rel_dist(W):
    return norm({k: W[k] - W_star[k] for k in W}) / d0


Xt = augment(prob.inputs)
L_bound = np.linalg.eigvalsh(Xt.T @ Xt).max() * 0.25 + 1 / eta
K = 120 if FAST else 200
dists = {}
for frac in (0.5, 1.0, 1.6):
    r = frac / L_bound
    W = prob.anchor
    d = [1.0]
    for _ in range(K):
        g = locoprop.gradient(prob, W)
        W = {k: W[k] - r * g[k] for k in W}
        d.append(rel_dist(W))
    dists[frac] = np.array(d)
    W_lib, _ = locoprop.solve_gd(prob, GD(steps=K, lr=r))
    checks("solve_gd = K steps of GD by hand", relative_error(W_lib, W), EXACT)
    print(
        f"rho = {frac} / L: after K = 10 steps {dists[frac][10]:.1e}, after {K} steps {dists[frac][-1]:.1e}"
    )
newton_dists = [1.0]
for k in range(1, info_star.newton_iterations):  # the last iterate IS the reference, so stop before it
    W_k, _ = locoprop.solve_exact_m(prob, tol=1e-15, max_newton=k)
    newton_dists.append(max(rel_dist(W_k), 1e-17))
print("Newton-CG relative distance per iteration:", " ".join(f"{v:.0e}" for v in newton_dists))

# %%
fig, ax = plt.subplots(figsize=(8.6, 4.4), constrained_layout=True)
for frac, d in dists.items():
    ax.semilogy(d, lw=2, label=rf"inner GD, $\rho = {frac:g}/L$")
ax.semilogy(range(len(newton_dists)), newton_dists, "ko-", ms=5, label="Newton-CG iterations")
ax.axvline(10, color="gray", ls=":", label="$K = 10$ (the released setting)")
ax.set_xlabel("iteration $k$ (inner GD step, or Newton iteration)")
ax.set_ylabel(r"$\|\tilde W_k - \tilde W^*\| \,/\, \|\tilde W_t - \tilde W^*\|$")
ax.set_title(
    rf"Sigmoid layer {m}, $\gamma = {gamma:g}$, $\eta = {eta:g}$: $K$ inner steps vs the exact solve"
)
ax.set_ylim(1e-16, 2)
ax.grid(alpha=0.3, which="both")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
save(fig, "04_newton_vs_gd.png")

# %% [markdown]
# **What the figure shows.** The distance from the $k$-th iterate to the
# exact minimiser $\tilde W^*$ of $J_M$ (relative, log scale). Inner GD
# (coloured lines) converges linearly, faster with larger steps while they
# stay below $2/L$, until it reaches rounding level (~1e-15). The released LocoProp
# runs only $K = 10$ such steps (dotted line; with RMSProp and a small
# learning rate), so it stops far from the exact minimiser: a partial solve
# by design. Newton-CG (black dots) converges quadratically (the number of
# correct digits roughly doubles per iteration): six iterations bring it
# within ~1e-13 of the reference (the seventh iterate is the reference
# itself), each iteration costing a few CG iterations of two matrix products.
#
# ## 4. Out-of-range targets and the proximal term
#
# $Y^* = f(A) - \gamma G$ can leave the range of $f$ when $\gamma G$ pushes a
# saturated unit further: a sigmoid output already near 1 with a negative
# gradient gets a target above 1. There $J_M$ is unbounded below (tutorial
# 02): without the prox, long inner GD runs off. `locoprop.step` counts such
# targets and warns with a `LocoPropWarning` when it is asked for more than
# one plain-GD inner step without a proximal term (one step is BackProp, so
# it is always safe). With `eta` set there is no warning.

# %%
gamma_big = 50.0
problems_big, _ = locoprop.local_problems(net, params, x, y, variant=M(gamma=gamma_big))
for m, p in enumerate(problems_big):
    print(
        f"gamma = {gamma_big:g}, layer {m} ({p.transfer.name}): {int(locoprop.count_out_of_range(p))} of "
        f"{p.target.size} targets outside {p.transfer.range}"
    )

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    locoprop.step(net, params, x, y, variant=M(gamma=gamma_big), solver=GD(steps=10, lr=0.01))
print(f"without eta: {len(caught)} warning(s)")
for w in caught:
    print(f"  {w.category.__name__}: {w.message}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    locoprop.step(net, params, x, y, variant=M(gamma=gamma_big, eta=1.0), solver=GD(steps=10, lr=0.01))
print(f"with eta = 1: {len(caught)} warning(s)")

# %% [markdown]
# Long inner GD on the output layer, where most targets are out of range,
# with and without the prox:

# %%
m = 2
runs = {}
K_long = 2000
for label, e in ((r"no prox ($\eta$ = None)", None), (r"prox, $\eta = 1$", 1.0)):
    p = locoprop.local_problems(net, params, x, y, variant=M(gamma=gamma_big, eta=e))[0][m]
    Xt = augment(p.inputs)
    r = 1.0 / (np.linalg.eigvalsh(Xt.T @ Xt).max() * 0.25 + (0.0 if e is None else 1 / e))
    W = p.anchor
    dist = []
    for _ in range(K_long):
        g = locoprop.gradient(p, W)
        W = {k: W[k] - r * g[k] for k in W}
        dist.append(norm({k: W[k] - p.anchor[k] for k in W}))
    runs[label] = (np.array(dist), float(locoprop.objective(p, W)))
    text = "no prox" if e is None else f"prox eta = {e:g}"
    print(f"{text:<14} after {K_long} steps: |W - W_t| = {dist[-1]:9.2f}, J_M = {runs[label][1]:12.2f}")
p_prox = locoprop.local_problems(net, params, x, y, variant=M(gamma=gamma_big, eta=1.0))[0][m]
W_newton, _ = locoprop.solve_exact_m(p_prox)
d_newton = norm({k: W_newton[k] - p_prox.anchor[k] for k in W_newton})
print(f"Newton-CG minimiser with prox: |W* - W_t| = {d_newton:.2f}")

# %%
fig, ax = plt.subplots(figsize=(6.8, 4.4), constrained_layout=True)
steps_axis = np.arange(1, K_long + 1)
for label, (dist, _) in runs.items():
    ax.loglog(steps_axis, dist, lw=2, label=f"inner GD, {label}")
ax.axhline(d_newton, color="k", ls=":", label=r"Newton-CG minimiser (prox $\eta = 1$)")
ax.set_xlabel("inner GD step $k$")
ax.set_ylabel(r"$\|\tilde W_k - \tilde W_t\|$")
ax.set_title(rf"Output layer, $\gamma = {gamma_big:g}$: out-of-range targets")
ax.grid(alpha=0.3, which="both")
ax.legend()
save(fig, "04_out_of_range_gd.png")

# %% [markdown]
# **What the figure shows.** How far inner GD moves the output layer's
# weights from the anchor (log-log) when most of its targets lie outside
# $(0, 1)$. Without the prox the distance grows in proportion to $k$ (slope 1
# on the log-log axes) and $J_M$ falls without bound: once the units with
# targets above 1 saturate, their residual $f(a) - y^*$ tends to the non-zero
# constant $1 - y^*$, so the gradient never vanishes and there is nothing to
# converge to. With $\eta = 1$ the iterate levels off at
# the Newton-CG minimiser (dotted line). In practice LocoProp avoids the
# runaway either with a prox term, or, like the released code, by taking only
# a few inner steps ($K = 10$ with a small RMSProp learning rate), which is why
# tutorial 05 silences this warning for its short runs.
#
# ## 5. One LocoProp-M step from the primitives
#
# Everything `locoprop.step(net, params, x, y, variant=M(gamma), solver=GD(steps=K, lr=rho))`
# does, written with the building blocks only (no `locoprop` call until the
# comparison):
#
# 1. **Forward** (each `net.layers[m].forward`): each layer's input $X_m$,
#    pre-activation $A_m$ and output $f_m(A_m)$.
# 2. **Backward** for $G_m = \partial L/\partial A_m$: the network loss is the
#    matching loss of the output transfer (lesson 02), so
#    $G_{M-1} = (f(A_{M-1}) - Y)/B$ (`bregman.matching_loss_grad`), and below it
#    $G_{m-1} = f_{m-1}'(A_{m-1})\odot(G_m W_m^\top)$ (the transfer row's `vjp`).
#    We check these against `net.backward`.
# 3. **Targets** $Y^*_m = f_m(A_m) - \gamma G_m$ (section 1).
# 4. **$K$ plain GD steps** on each layer's
#    $J_M(\tilde W) = \sum_n \big[F(\tilde x_n\tilde W) - y^*_n\cdot\tilde x_n\tilde W\big]$
#    (no prox), from $\tilde W_t$ = `nn.stack(params[m])`, with
#    $\tilde X$ = `nn.augment(X_m)` frozen:
#    $\tilde W \leftarrow \tilde W - \rho\,\tilde X^\top\big(f(\tilde X\tilde W) - Y^*\big)$,
#    where $f(\tilde X\tilde W) - Y^*$ is `bregman.matching_loss_grad`, the
#    gradient of the per-example matching loss in $a = \tilde x_n\tilde W$;
#    `bregman.matching_loss` gives $J_M$ itself, and `nn.unstack` turns
#    $\tilde W$ back into `{"W", "b"}`. The layers' problems are independent
#    (every $X_m$ stays frozen at the forward pass), so their order does not
#    matter.
#
# **Tolerance.** The cell and the library compute the same numbers with the
# same float64 operations, but not in the same order: the library forms
# $XW + b$, $X^\top R$ and $\sum_n R_n$ separately, the cell multiplies the
# augmented matrices (the bias as a column of ones inside one product), and
# BLAS blocks the sums differently. Each product then differs by a few units
# in the last place (~1e-16 relative), and $K$ GD steps with $\rho < 2/L$ do
# not amplify such differences, so we expect ~1e-15 and assert $10^{-12}$:
# well above rounding, far below any real mistake (a missing factor $f'$, or
# $\partial L/\partial Y$ in place of $\partial L/\partial A$, is of order
# one: section 2).

# %%
K_steps, rho_gd = 10, 0.02
# 1. forward
caches, h = [], x
for layer, layer_params in zip(net.layers, params, strict=True):
    h, cache = layer.forward(layer_params, h)
    caches.append(cache)
# 2. backward: G_m = dL/dA_m
G = [None] * net.num_layers
G[-1] = bregman.matching_loss_grad(net.transfers[-1], caches[-1].pre, y) / B
for m in range(net.num_layers - 1, 0, -1):
    G[m - 1] = net.transfers[m - 1].vjp(caches[m - 1].pre, G[m] @ params[m]["W"].T)
checks("G by hand = net.backward's dL/dA", relative_error(G, grads.pre), EXACT)
# 3. targets and 4. K plain GD steps on each layer's J_M
by_hand, J_before, J_after = [], [], []
for m, (f, cache) in enumerate(zip(net.transfers, caches, strict=True)):
    Y_star = f.f(cache.pre) - gamma * G[m]
    Xt, Wt = augment(cache.inputs), stack(params[m])
    J_before.append(float(bregman.matching_loss(f, Xt @ Wt, Y_star).sum()))
    for _ in range(K_steps):
        Wt = Wt - rho_gd * Xt.T @ bregman.matching_loss_grad(f, Xt @ Wt, Y_star)
    J_after.append(float(bregman.matching_loss(f, Xt @ Wt, Y_star).sum()))
    by_hand.append(unstack(Wt))

library, _ = locoprop.step(net, params, x, y, variant=M(gamma=gamma), solver=GD(steps=K_steps, lr=rho_gd))
err_by_hand = checks("one LocoProp-M step by hand = locoprop.step", relative_error(by_hand, library), EXACT)
print(
    f"LocoProp-M step from the primitives (gamma = {gamma:g}, K = {K_steps}, rho = {rho_gd}) vs locoprop.step: "
    f"relative error {err_by_hand:.1e} (tolerance {EXACT:.0e})\n  J_M per layer, before -> after the K steps: "
    + ", ".join(f"{b:.3f} -> {a:.3f}" for b, a in zip(J_before, J_after, strict=True))
)

# %% [markdown]
# ## Summary of the checks
#
# Each identity of this lesson was asserted where it was computed; here they
# are in one line, with the largest error met for each tolerance.

# %%
checks.report()

# %% [markdown]
# ## Exercises
#
# 1. Set every transfer to `"identity"` (and the loss to `"squared_error"`):
#    check that `solve_exact_m` and `solve_exact_s` give the same weights.
# 2. Replace plain GD by `solver=GD(steps=1, inner=lg.optim.adam(1e-2))` in
#    `locoprop.step` and verify that the first step equals Adam's first step on
#    $\gamma\,\partial L/\partial W$.
# 3. Find the smallest $\gamma$ for which the output layer's targets leave
#    $(0,1)$. Why is it at least $B$ (write $G = (f(A) - Y)/B$)?

# %% tags=["hide-input"]
# Solution to exercise 1: with f = identity, F(a) = a^2/2 and J_M - J_S = sum_n |y*_n|^2 / 2, a
# constant: the two local problems have the same minimiser.
net_id = lg.MLP([5, 7, 6, 4], ["identity"] * 3, "squared_error")
params_id = net_id.init(seed=0, bias="glorot")
y_id = rng.standard_normal((B, 4))
probs_m, _ = locoprop.local_problems(net_id, params_id, x, y_id, variant=M(gamma=gamma, eta=eta))
probs_s, _ = locoprop.local_problems(net_id, params_id, x, y_id, variant=S(gamma=gamma, eta=eta))
for m, (p_m, p_s) in enumerate(zip(probs_m, probs_s, strict=True)):
    W_m, info_m = locoprop.solve_exact_m(p_m, tol=1e-12)
    err = relative_error(W_m, locoprop.solve_exact_s(p_s))
    print(f"layer {m}: exact M (Newton-CG, {info_m.newton_iterations} iteration(s)) vs exact S: {err:.1e}")
    # Newton-CG stops at |grad J| <= 1e-12 |grad J(W_t)| (tol); strong convexity (1/eta = 1) then
    # puts W within 1e-12 eta |grad J(W_t)| of the minimiser: 1e-8 (the test suite's tolerance for
    # this identity) is far above that and above the Cholesky solve's rounding
    assert err <= 1e-8

# %% tags=["hide-input"]
# Solution to exercise 2: the first local gradient is gamma dL/dW~ (section 2), so Adam's first
# inner step, from a fresh state, is Adam's step on gamma dL/dW.
adam = lg.optim.adam(1e-2)
first, _ = locoprop.step(net, params, x, y, variant=M(gamma=gamma), solver=GD(steps=1, inner=adam))
scaled = [{k: gamma * g[k] for k in g} for g in grads.as_params()]
updates, _ = adam.update(scaled, adam.init(params), params)
by_adam = lg.optim.apply_updates(params, updates)
err = relative_error(first, by_adam)
print(f"LocoProp-M with K = 1 Adam step vs Adam on gamma dL/dW: relative error {err:.1e}")
# the two gradients differ by rounding (~1e-16 relative, section 2), and Adam's first step
# g / (|g| + eps) is insensitive to it where |g| >> eps = 1e-8 (every entry here): EXACT holds
assert err <= EXACT
assert min(float(np.abs(g[k]).min()) for g in scaled for k in g) > 1e3 * 1e-8

# %% tags=["hide-input"]
# Solution to exercise 3: f - gamma G < 0 needs gamma > f / G (G > 0), f - gamma G > 1 needs
# gamma > (1 - f) / (-G) (G < 0); the smallest such gamma over the units is the threshold.
f_out, G_out = net.transfers[-1].f(trace.pre[-1]), grads.pre[-1]
with np.errstate(divide="ignore"):
    room = np.where(G_out > 0, f_out / G_out, np.where(G_out < 0, (1 - f_out) / -G_out, np.inf))
gamma_star = float(room.min())
n, j = np.unravel_index(np.argmin(room), room.shape)
print(
    f"smallest gamma: {gamma_star:.4f} (B = {B}), at unit ({n}, {j}): f = {f_out[n, j]:.4f}, "
    f"y = {y[n, j]:.4f}, G = {G_out[n, j]:+.4f}"
)


def out_of_range(g):
    problem = locoprop.local_problems(net, params, x, y, variant=M(gamma=g))[0][-1]
    return int(locoprop.count_out_of_range(problem))


# a relative margin of 1e-6 around the threshold is far above the rounding of f - gamma G (~1e-16)
assert out_of_range(gamma_star * (1 - 1e-6)) == 0 and out_of_range(gamma_star * (1 + 1e-6)) >= 1
# At the output G = (f - y)/B, so Y* = (1 - gamma/B) f + (gamma/B) y: a convex combination of two
# points of [0, 1] while gamma <= B, hence the threshold is at least B. It is B (1 - f)/(y - f)
# for y > f (B f/(f - y) for y < f), closest to B for a target y near 1 (or 0). In a hidden
# layer |G| has no such bound, and a saturated unit (f near 0 or 1) can leave at a small gamma.
assert gamma_star >= B * (1 - 1e-12)
f_nj, y_nj = f_out[n, j], y[n, j]
closed = B * (1 - f_nj) / (y_nj - f_nj) if y_nj > f_nj else B * f_nj / (f_nj - y_nj)
# the same quotient with G formed as (f - y)/B: they differ by the rounding of f - y, ~1e-16 / |f - y|
assert abs(gamma_star - closed) <= 1e-12 * gamma_star

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_locoprop.py::test_first_step_equals_backprop_plain_gd)
# A random network (depth 1-4, widths 1-8, every transfer and loss, batch 6), gamma in [0.1, 10]
# and rho in [1e-3, 1]: one inner GD step of LocoProp-M moves every layer by -rho gamma dL/dW~,
# to 1e-8 relative, or absolutely by what rounding allows: rho times the target's rounding
# 4 (B + 2) eps max |X~|^T (|f(A)| + |gamma G|), plus 2 eps (|W~| + rho gamma |dL/dW~|) for
# forming W~ - rho g and its difference with W~.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)
outputs = {
    "squared_error": "identity",
    "sigmoid_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "softmax",
}
loss = str(draw.choice(list(outputs)))
depth = int(draw.integers(1, 5))
sizes = [int(s) for s in draw.integers(1, 9, depth + 1)]
if loss == "softmax_cross_entropy":
    sizes[-1] = max(sizes[-1], 2)
acts = [str(a) for a in draw.choice(lg.transfer.NAMES, depth - 1)] + [outputs[loss]]
net_c = lg.MLP(sizes, acts, loss)
params_c = net_c.init(seed=seed % 97, bias="glorot")
x_c = draw.standard_normal((6, sizes[0]))
if loss == "squared_error":
    y_c = draw.standard_normal((6, sizes[-1]))
else:
    y_c = draw.random((6, sizes[-1])) + (0.1 if loss == "softmax_cross_entropy" else 0.0)
    if loss == "softmax_cross_entropy":
        y_c = y_c / y_c.sum(axis=1, keepdims=True)
gamma_c, rho_c = float(draw.uniform(0.1, 10)), float(draw.uniform(1e-3, 1))
new_c, _ = locoprop.step(net_c, params_c, x_c, y_c, variant=M(gamma=gamma_c), solver=GD(steps=1, lr=rho_c))
trace_c = net_c.forward(params_c, x_c)
grads_c = net_c.backward(params_c, trace_c, y_c)
bp = grads_c.as_params()
updates_c = [{k: n_[k] - p_[k] for k in p_} for n_, p_ in zip(new_c, params_c, strict=True)]
want_c = [{k: -rho_c * gamma_c * g[k] for k in g} for g in bp]
eps64 = float(np.finfo(np.float64).eps)


def target_rounding(X_m, base, gamma_G):
    return (
        4
        * (X_m.shape[0] + 2)
        * eps64
        * float((np.abs(augment(X_m)).T @ (np.abs(base) + np.abs(gamma_G))).max())
    )


floor = max(
    rho_c * target_rounding(trace_c.inputs[m], trace_c.post[m], gamma_c * grads_c.pre[m])
    + 2 * eps64 * (np.abs(stack(params_c[m])).max() + rho_c * gamma_c * np.abs(stack(bp[m])).max())
    for m in range(net_c.num_layers)
)
assert relative_error(updates_c, want_c, floor=max(floor, 1e-300) / 1e-8) <= 1e-8
print(f"seed {seed}: {sizes} {acts} {loss}: the first LocoProp-M step is the BackProp step")
