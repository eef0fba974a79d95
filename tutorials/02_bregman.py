# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 02 · Transfer functions, convex potentials and Bregman divergences
#
# **Prerequisites:** lesson 01 ($G = \partial L/\partial A$); convex functions and their tangents.
#
# **Time:** about 35 minutes
#
# **You will be able to:** read a network loss as a Bregman (matching) loss and tell when $J_M$ has a minimiser.
#
# ## What you will learn
#
# - every monotone transfer $f$ is the derivative of a convex **potential**
#   $F$ ($F' = f$); its convex conjugate $F^*$ lives on the *outputs*
#   $y = f(a)$ (figure: $f$, $F$, $F^*$ for identity, sigmoid, tanh, relu,
#   leaky relu);
# - the **Bregman divergence** $D_F(p, q) = F(p) - F(q) - f(q)(p-q)$ as the
#   gap between $F$ and its tangent (figure);
# - the **matching-loss table**: squared error, sigmoid cross-entropy and
#   softmax cross-entropy are the matching losses of identity, sigmoid and
#   softmax outputs (checked numerically);
# - why LocoProp-M's local objective $J_M$ is **convex in $W$** while the
#   "obvious" squared loss on the outputs is not (second differences, figure);
# - what happens when a target leaves the range of $f$: $J_M$ becomes
#   unbounded below, and the proximal term restores a minimiser (figure).

# %%

import matplotlib.pyplot as plt
import numpy as np

from locograd import bregman, locoprop, losses, transfer
from locograd.testing import relative_error
from locograd.tutorial import FAST, Checks, save

rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # two float64 formulas for the same number: rounding only
FD = 1e-5  # a central difference (~1e-10 here; ~1e-6 across the kink of relu at 0)

# %% [markdown]
# ## 1. The transfer table: $f$, $F$ and $F^*$
#
# `locograd.transfer` holds one row per activation: `transfer.identity`,
# `transfer.sigmoid`, `transfer.tanh`, `transfer.relu` and `transfer.leaky_relu(s)`
# are `Elementwise` transfers, `transfer.softmax` acts on whole rows (the plain
# functions behind them are `transfer.logistic`, `softplus`, `softmax_rows`,
# `logsumexp`). For elementwise $f$ the
# potential is $F(a) = \int f$ (so $F' = f$, and $F$ is convex because $f$ is
# non-decreasing), and the conjugate is
# $F^*(y) = \sup_a\, y a - F(a)$, finite exactly on the closure of the range
# of $f$. Row methods sum over the unit (last) axis: `t.potential(a)` and
# `t.conjugate(y)` return one number per row.
#
# | f | F | F* |
# |---|---|---|
# | identity | $a^2/2$ | $y^2/2$ |
# | sigmoid | $\log(1+e^a)$ | $y\log y + (1-y)\log(1-y)$ on $[0,1]$ |
# | tanh | $\log\cosh a$ | $\frac12[(1+y)\log(1+y) + (1-y)\log(1-y)]$ on $[-1,1]$ |
# | relu | $\max(a,0)^2/2$ | $y^2/2$ on $[0,\infty)$ |
# | leaky relu (slope $s$) | $a^2/2$, $s a^2/2$ | $y^2/2$, $y^2/(2s)$ |
#
# We use slope $s = 0.2$ for the leaky relu so its two pieces are visible
# (the table's default is 0.01).

# %%
TRANSFERS = [
    transfer.identity,
    transfer.sigmoid,
    transfer.tanh,
    transfer.relu,
    transfer.leaky_relu(0.2),
]


def per_unit(fn, v):
    """Apply a row method (which sums over the last axis) to every entry of a 1-D grid."""
    return fn(v[:, None])


a_grid = np.linspace(-3, 3, 241)
for t in TRANSFERS:
    h = 1e-5
    dF = (per_unit(t.potential, a_grid + h) - per_unit(t.potential, a_grid - h)) / (2 * h)
    f = t.f(a_grid)
    checks("F' = f (central differences)", np.abs(dF - f).max(), FD)
    # Fenchel-Young equality at y = f(a): F(a) + F*(f(a)) = a f(a)
    fy = per_unit(t.potential, a_grid) + per_unit(t.conjugate, f)
    checks("Fenchel-Young F(a) + F*(f(a)) = a f(a)", relative_error(fy, a_grid * f, floor=1.0), EXACT)

# %%
fig, axes = plt.subplots(3, 5, figsize=(15, 8.2), constrained_layout=True)
y_grids = {"sigmoid": (-0.25, 1.25), "tanh": (-1.25, 1.25)}
for j, t in enumerate(TRANSFERS):
    label = t.name if t.slope is None else f"{t.name} (s={t.slope})"
    axes[0, j].plot(a_grid, t.f(a_grid), color="C0")
    axes[0, j].set_title(label)
    axes[1, j].plot(a_grid, per_unit(t.potential, a_grid), color="C1")
    lo, hi = y_grids.get(t.name, (-3, 3))
    y_grid = np.linspace(lo, hi, 241)
    with np.errstate(all="ignore"):
        conj = per_unit(t.conjugate, y_grid)
    axes[2, j].plot(y_grid, np.where(np.isfinite(conj), conj, np.nan), color="C2")
    low, high = t.range
    axes[2, j].axvspan(max(low, lo), min(high, hi), color="C2", alpha=0.08, label="range of f")
    axes[0, j].set_xlabel("pre-activation $a$")
    axes[1, j].set_xlabel("pre-activation $a$")
    axes[2, j].set_xlabel("post-activation $y$")
    for i in range(3):
        axes[i, j].grid(alpha=0.3)
axes[0, 0].set_ylabel("transfer $f(a)$")
axes[1, 0].set_ylabel("potential $F(a)$, $F' = f$")
axes[2, 0].set_ylabel("conjugate $F^*(y)$")
axes[2, 1].legend(loc="upper center", fontsize=8)
fig.suptitle("Transfer functions (top), their convex potentials (middle) and conjugates (bottom)")
save(fig, "02_transfer_potentials.png")

# %% [markdown]
# **What the figure shows.** Top row: the five monotone transfers. Middle
# row: their potentials $F$, all convex, with slope $f(a)$ everywhere (the
# checks confirm $F' = f$ to ~1e-11, the finite-difference accuracy;
# ~1e-6 for relu and leaky relu, where the difference straddles the kink at 0).
# Bottom row: the conjugates $F^*$, drawn only where they are finite, which
# is exactly the range of $f$ (shaded): $[0,1]$ for sigmoid, $[-1,1]$ for
# tanh, $[0,\infty)$ for relu. The bounded ranges are what makes
# out-of-range targets possible (section 5). The Fenchel-Young check,
# $F(a) + F^*(f(a)) = a\,f(a)$, ties the two rows together.
#
# ## 2. The Bregman divergence is the gap to the tangent
#
# $$D_F(p, q) = F(p) - \big[F(q) + f(q)\,(p - q)\big]\ \ge 0 :$$
#
# the height of $F$ at $p$ above the tangent of $F$ taken at $q$. Since $F$ is
# convex the tangent lies below, so $D_F \ge 0$, with equality at $p = q$
# (for strictly convex $F$, only there). `bregman.divergence(t, p, q)` sums
# over units and returns one value per row.

# %%
sig = transfer.sigmoid
q0, p0 = -1.0, 2.0
a_line = np.linspace(-4, 4, 200)
F_line = per_unit(sig.potential, a_line)
tangent = per_unit(sig.potential, np.array([q0]))[0] + sig.f(q0) * (a_line - q0)
D = float(bregman.divergence(sig, np.array([[p0]]), np.array([[q0]]))[0])
gap_at_p = float(
    per_unit(sig.potential, np.array([p0]))[0]
    - (per_unit(sig.potential, np.array([q0]))[0] + sig.f(q0) * (p0 - q0))
)
s_p, s_q = sig.f(p0), sig.f(q0)
kl = s_q * np.log(s_q / s_p) + (1 - s_q) * np.log((1 - s_q) / (1 - s_p))
checks("D_F(p, q) = the gap F(p) - tangent(p)", relative_error(D, gap_at_p), EXACT)
checks("D_F(p, q) = binary KL(sigmoid(q) || sigmoid(p))", relative_error(D, kl), EXACT)
print(f"D_F(p={p0}, q={q0}) = {D:.6f}: the gap to the tangent, and the binary KL(sigmoid(q) || sigmoid(p))")

fig, ax = plt.subplots(figsize=(6.6, 4.6), constrained_layout=True)
ax.plot(a_line, F_line, color="C1", lw=2, label=r"$F(a) = \log(1 + e^a)$ (softplus)")
ax.plot(a_line, tangent, "k--", lw=1.2, label=rf"tangent at $q = {q0:g}$: $F(q) + f(q)(a - q)$")
ax.fill_between(a_line, tangent, F_line, color="C0", alpha=0.18, label=r"$D_F(a, q)$ (the gap)")
F_p = float(per_unit(sig.potential, np.array([p0]))[0])
ax.vlines(p0, F_p - D, F_p, color="C3", lw=3, label=rf"$D_F({p0:g}, {q0:g}) = {D:.3f}$")
ax.plot([q0], per_unit(sig.potential, np.array([q0])), "ko")
ax.set_xlabel("pre-activation $a$")
ax.set_ylabel("potential")
ax.set_title("Bregman divergence of the sigmoid's potential")
ax.grid(alpha=0.3)
ax.legend(fontsize=9, loc="upper left")
save(fig, "02_bregman_gap.png")

# %% [markdown]
# **What the figure shows.** The softplus potential of the sigmoid (orange),
# its tangent at $q = -1$ (dashed), and the shaded gap between them, which is
# $D_F(a, q)$ as a function of $a$: zero at $a = q$, positive elsewhere, and
# lopsided (it grows linearly on the right, where $F$ becomes a straight line,
# and flattens on the left). The red bar is the value at $p = 2$, the number
# printed above, which also equals a binary KL divergence between the two
# sigmoid outputs.
#
# Three more properties, on random rows: $D_F \ge 0$; it is not symmetric;
# its gradient in the first argument is $f(p) - f(q)$; and the duality
# $D_F(p, q) = D_{F^*}(f(q), f(p))$ (the divergence of the conjugate, between
# the outputs, with the arguments swapped).

# %%
p = rng.standard_normal((200, 4)) * 2
q = rng.standard_normal((200, 4)) * 2
asymmetry = {}
for t in [*TRANSFERS, transfer.softmax]:
    d = bregman.divergence(t, p, q)
    checks("D_F >= 0", max(0.0, -float(d.min())), 0.0)
    asymmetry[t.name] = np.abs(d - bregman.divergence(t, q, p)).max()
    h = 1e-6
    e = np.zeros_like(p)
    e[:, 0] = h
    num = (bregman.divergence(t, p + e, q) - bregman.divergence(t, p - e, q)) / (2 * h)
    checks("grad_p D_F = f(p) - f(q)", np.abs(num - bregman.divergence_grad(t, p, q)[:, 0]).max(), FD)
    if t.name != "relu":  # relu has no inverse: its conjugate's gradient is not defined below 0
        dual = bregman.dual_divergence(t, t.f(q), t.f(p))
        checks("duality D_F(p, q) = D_F*(f(q), f(p))", relative_error(d, dual, floor=1.0), 1e-9)
print("max |D(p,q) - D(q,p)|:", ", ".join(f"{name} {v:.2g}" for name, v in asymmetry.items()))

# %% [markdown]
# Every divergence is $\ge 0$ (the identity's is symmetric, being
# $\frac12(p-q)^2$; all the others are not, as printed), the gradients match
# central differences, and the duality holds to rounding for every invertible
# transfer (tanh's conjugate goes through `atanh`, whose rounding near $\pm1$
# is why that check allows 1e-9).
#
# ## 3. The matching-loss table
#
# The **matching loss** of a pre-activation $a$ against a post-activation
# target $y^*$ is $D_F(a, f^{-1}(y^*))$. Because
# $F(f^{-1}(y)) - y\,f^{-1}(y) = -F^*(y)$, it equals
# $F(a) - y^*\cdot a + F^*(y^*)$, so `bregman.matching_loss` returns
# $F(a) - y^*\cdot a$ (the part that depends on $a$) and never needs $f^{-1}$.
# Its gradient is $f(a) - y^*$. The three network losses are exactly the
# matching losses of their output transfers:
#
# | network loss | output $f$ | per-example value |
# |---|---|---|
# | `squared_error` | identity | $\frac12\|a-y\|^2 = F(a) - y\cdot a + F^*(y)$ |
# | `sigmoid_cross_entropy` | sigmoid | $\sum_j \log(1+e^{a_j}) - y_j a_j = F(a) - y\cdot a$ |
# | `softmax_cross_entropy` | softmax | $\mathrm{logsumexp}(a) - y\cdot a = F(a) - y\cdot a$ |

# %%
B, d = 6, 5
a = rng.standard_normal((B, d)) * 2
targets = {
    "squared_error": rng.standard_normal((B, d)),
    "sigmoid_cross_entropy": rng.uniform(0.05, 0.95, (B, d)),
    "softmax_cross_entropy": transfer.softmax_rows(rng.standard_normal((B, d))),
}
for name, y in targets.items():
    loss = losses.get(name)
    t = loss.transfer
    value = loss.per_example(a, y)
    const = t.conjugate(y) if name == "squared_error" else 0.0  # F*(y) is part of the squared error
    match = bregman.matching_loss(t, a, y) + const
    via_div = bregman.divergence(t, a, t.inverse(y)) - t.conjugate(y) + const
    _, g = loss.mean_value_and_grad(a, y)
    checks("network loss = matching loss", relative_error(value, match), EXACT)
    checks("network loss = D_F(a, f^-1(y)) + c", relative_error(value, via_div), EXACT)
    checks("dL/dA = (f(a) - y) / B", relative_error(g, bregman.matching_loss_grad(t, a, y) / B), EXACT)

# %% [markdown]
# All equal up to rounding (asserted). This is why the network's last $G = \partial L/\partial A$
# is simply $(f(A) - Y)/B$, and it is the template for LocoProp-M: each layer
# gets a matching loss of its own transfer against a target $Y^*$.
#
# ## 4. $J_M$ is convex in $W$ — the squared loss on outputs is not
#
# LocoProp-M's local objective for one layer with frozen input $X$ is
#
# $$J_M(\tilde W) = \sum_n \big[F(\tilde x_n \tilde W) - y^*_n\cdot\tilde x_n\tilde W\big]
#   \;(+\tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2),$$
#
# a convex function ($F$) of a linear map of $\tilde W$ plus a linear term:
# convex in $\tilde W$ for any data. Compare the tempting alternative
# $\frac12\sum_n\|f(\tilde x_n\tilde W) - y^*_n\|^2$: a squared loss composed
# with a sigmoid-shaped function, not convex. A numerical test: along random
# directions $D$ the second difference
# $\big[J(\tilde W + tD) + J(\tilde W - tD) - 2J(\tilde W)\big]/t^2$
# must be $\ge 0$ everywhere for a convex $J$.

# %%
Bl, d_in, d_out = 20, 5, 3
X = rng.standard_normal((Bl, d_in))
anchor = {"W": rng.standard_normal((d_in, d_out)), "b": rng.standard_normal(d_out)}
Y_star = 0.9 * np.tanh(rng.standard_normal((Bl, d_out)))  # targets inside (-1, 1)
problem = locoprop.LocalProblem.build(X, Y_star, "tanh", "M", anchor)


def J_M(params):
    return float(locoprop.objective(problem, params))


def J_sq(params):
    return 0.5 * float(((np.tanh(X @ params["W"] + params["b"]) - Y_star) ** 2).sum())


def moved(params, D, t):
    return {k: params[k] + t * D[k] for k in params}


n_dirs = 60 if FAST else 300
worst = {"J_M (matching loss)": np.inf, "squared loss on tanh outputs": np.inf}
for _ in range(n_dirs):
    D = {k: rng.standard_normal(v.shape) for k, v in anchor.items()}
    for t in (1e-2, 0.3, 1.0):
        for name, J in zip(worst, (J_M, J_sq), strict=True):
            second = (J(moved(anchor, D, t)) + J(moved(anchor, D, -t)) - 2 * J(anchor)) / t**2
            worst[name] = min(worst[name], second)
for name, v in worst.items():
    print(f"min second difference over {n_dirs} directions x 3 scales, {name}: {v:9.3f}")
checks("J_M convex: every second difference >= 0", max(0.0, -worst["J_M (matching loss)"]), 0.0)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
ts = np.linspace(-3, 3, 121)
for i in range(5):
    D = {k: rng.standard_normal(v.shape) for k, v in anchor.items()}
    axes[0].plot(ts, [J_M(moved(anchor, D, t)) for t in ts], color=f"C{i}")
    axes[1].plot(ts, [J_sq(moved(anchor, D, t)) for t in ts], color=f"C{i}")
axes[0].set_title(r"$J_M$ (matching loss of tanh): convex along every line")
axes[1].set_title(r"$\frac{1}{2}\sum_n \Vert\tanh(x_n W + b) - y^*_n\Vert^2$: not convex")
for ax in axes:
    ax.set_xlabel(r"$t$ in $\tilde W_t + t D$ (5 random directions $D$)")
    ax.set_ylabel("local objective")
    ax.grid(alpha=0.3)
save(fig, "02_convexity_slices.png")

# %% [markdown]
# **What the figure shows.** The two local objectives of one tanh layer along
# the same five random lines through $\tilde W_t$. Left, the matching loss:
# every slice is a convex bowl (the printed minimum second difference is
# positive). Right, the squared loss on the outputs: slices have flat
# shoulders and inflection points where the tanh saturates, and the printed
# minimum second difference is negative, so that objective is not convex.
#
# ## 5. Out of range: $J_M$ unbounded below, rescued by the prox
#
# If a target leaves the range of $f$ the matching loss loses its minimiser.
# For tanh, $F(a) = \log\cosh a \approx |a| - \log 2$, so with $y^* = 1.2$
# the term $F(a) - 1.2\,a \approx -0.2\,a \to -\infty$ as $a \to +\infty$:
# making the pre-activation ever larger keeps lowering $J_M$. (In LocoProp a
# target $Y^* = f(A) - \gamma G$ lands outside $(-1, 1)$ when $\gamma G$ is
# large where the unit is already saturated.) We walk along the direction
# $D$ = "raise every bias by $t$", which raises every pre-activation by $t$.
# The proximal term $\frac{1}{2\eta}\|\tilde W - \tilde W_t\|^2$ adds
# $t^2 d_{out}/(2\eta)$ along this line and makes $J_M$ bounded below again.

# %%
Y_out = np.full((Bl, d_out), 1.2)
Y_in = np.full((Bl, d_out), 0.8)
D_bias = {"W": np.zeros((d_in, d_out)), "b": np.ones(d_out)}
t_line = np.linspace(0, 40, 161)
curves = {}
for text, label, Y, eta in (
    ("y* = 1.2 (out of range), no prox", r"$y^* = 1.2$ (out of range), no prox", Y_out, None),
    ("y* = 1.2, prox eta = 5", r"$y^* = 1.2$, prox $\eta = 5$", Y_out, 5.0),
    ("y* = 0.8 (in range), no prox", r"$y^* = 0.8$ (in range), no prox", Y_in, None),
):
    prob = locoprop.LocalProblem.build(X, Y, "tanh", "M", anchor, eta=eta)
    curves[label] = [float(locoprop.objective(prob, moved(anchor, D_bias, t))) for t in t_line]
    print(
        f"{text:<34} J at t=0: {curves[label][0]:8.2f}  t=20: {curves[label][80]:8.2f}  t=40: {curves[label][-1]:8.2f}"
    )
no_prox = next(iter(curves.values()))
slope = (no_prox[-1] - no_prox[-41]) / 10
print(
    f"slope far out, no prox: {slope:.2f} per unit of t (predicted -(1.2 - 1) * B * d_out = {-0.2 * Bl * d_out:.1f})"
)
checks("slope of J_M far out = -(y* - 1) B d_out", relative_error(slope, -0.2 * Bl * d_out), 1e-9)

fig, ax = plt.subplots(figsize=(6.6, 4.4), constrained_layout=True)
for (label, c), style in zip(curves.items(), ("-", "--", ":"), strict=True):
    ax.plot(t_line, c, style, lw=2, label=label)
ax.set_xlabel(r"$t$: every bias raised by $t$  ($\tilde W = \tilde W_t + tD$)")
ax.set_ylabel(r"$J_M$")
ax.set_title("tanh layer: a target outside (-1, 1) makes $J_M$ unbounded below")
ax.grid(alpha=0.3)
ax.legend()
save(fig, "02_out_of_range.png")

# %% [markdown]
# **What the figure shows.** $J_M$ of the tanh layer along the "raise every
# bias" line. With the out-of-range target $y^* = 1.2$ and no proximal term
# (solid) it falls without end, with the predicted slope
# $-0.2 \cdot B \cdot d_{out} = -12$ per unit of $t$: gradient descent on it
# would run off to infinity. Adding the prox with $\eta = 5$ (dashed) turns the
# same line into a bowl with a finite minimiser. With an in-range target
# $y^* = 0.8$ (dotted) $J_M$ is bounded below even without the prox.
# Tutorial 04 shows what LocoProp does about such targets in practice.
#
# ## Summary of the checks
#
# Each identity above was asserted where it was computed; here they are in
# one line, with the largest error met for each tolerance.

# %%
checks.report()

# %% [markdown]
# ## Exercises
#
# 1. Softmax's potential $F(a) = \mathrm{logsumexp}(a)$ is convex but not
#    strictly convex: compare `t.potential(a + c)` with `t.potential(a)` for a
#    constant $c$, and compute $D_F(a + c, a)$. What does this mean for a
#    softmax layer's matching loss?
# 2. For relu, find two different pre-activations $p \ne q$ with
#    $D_F(p, q) = 0$. What does this mean for a relu layer's matching loss?
# 3. Show numerically that $D_F(p, q) \approx \frac12 f'(q)(p-q)^2$ for
#    $p \to q$ (the divergence is locally a squared error weighted by $f'$).

# %% tags=["hide-input"]
# Solution to exercise 1: F(a + c 1) = F(a) + c, so F is flat (linear) along the all-ones direction.
smax = transfer.softmax
a = rng.standard_normal((6, 4)) * 2
c = 2.5
shift = smax.potential(a + c) - smax.potential(a) - c
D_shift = bregman.divergence(smax, a + c, a)
y_rows = transfer.softmax_rows(rng.standard_normal((6, 4)))  # targets on the simplex
loss_change = bregman.matching_loss(smax, a + c, y_rows) - bregman.matching_loss(smax, a, y_rows)
print(
    f"max |F(a + c) - F(a) - c| = {np.abs(shift).max():.1e}, max D_F(a + c, a) = {np.abs(D_shift).max():.1e}"
)
print(f"max change of the matching loss under a + c: {np.abs(loss_change).max():.1e}")
# float64 sums of terms up to ~10 in size round by ~1e-15: EXACT (1e-12) times that size is rounding only
assert np.abs(shift).max() <= EXACT * 10 and np.abs(D_shift).max() <= EXACT
assert np.abs(loss_change).max() <= EXACT * 10
# p != q with D = 0 is what "not strictly convex" means; a shift that is not constant is seen
assert float(bregman.divergence(smax, a + rng.standard_normal((6, 4)), a).min()) > 0
# So a softmax layer's matching loss cannot tell A from A + c 1: moving the layer's bias along
# (1, ..., 1) leaves J_M unchanged, a flat direction; the minimiser is unique only with the prox.

# %% tags=["hide-input"]
# Solution to exercise 2: any two negative pre-activations (F = 0 and f = 0 on a <= 0).
p_neg = -rng.random((5, 3)) - 0.1
q_neg = -rng.random((5, 3)) - 0.1
D_neg = bregman.divergence(transfer.relu, p_neg, q_neg)
print("D_F(p, q) for p, q < 0 (relu):", D_neg)
# every term of F(p) - F(q) - f(q)(p - q) is exactly 0 for p, q <= 0: exact equality, no tolerance
assert np.all(p_neg != q_neg) and np.all(D_neg == 0.0)
# the matching loss against the target y* = 0 is then constant (0) for every a <= 0
assert np.all(bregman.matching_loss(transfer.relu, p_neg, np.zeros_like(p_neg)) == 0.0)
# So a relu unit whose target is 0 is satisfied by ANY negative pre-activation: its J_M is flat
# there, and inner GD gets no signal to move such a unit once it is below zero.

# %% tags=["hide-input"]
# Solution to exercise 3: D_F(q + h, q) = f'(q) h^2 / 2 + f''(q) h^3 / 6 + O(h^4).
q_col = rng.uniform(-2, 2, (50, 1))  # one unit per row: divergence returns one value per row
for t in (transfer.tanh, transfer.sigmoid):
    errs = []
    for h in (1e-3, 1e-4):
        D = bregman.divergence(t, q_col + h, q_col)
        quad = 0.5 * t.df(q_col[:, 0]) * h**2
        errs.append(float(np.abs(D / quad - 1).max()))
    print(f"{t.name}: max |D / (f'(q) h^2 / 2) - 1| = {errs[0]:.1e} at h = 1e-3, {errs[1]:.1e} at h = 1e-4")
    # the relative deviation is f''(q) h / (3 f'(q)) + O(h^2), and |f''/f'| <= 2 for tanh
    # (-2 tanh q) and <= 1 for sigmoid (1 - 2 sigma(q)): so below h, and shrinking with h
    assert errs[0] <= 1e-3 and errs[1] <= 1e-4 and errs[1] < errs[0] / 5

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_bregman.py::test_divergence_agrees_with_the_defining_difference)
# On random rows (1-8 rows, 1-6 units, entries in [-6, 6]) and every transfer, the library's
# divergence is the gap to the tangent, F(p) - F(q) - f(q).(p - q), to 1e-13 times the size of
# the terms (their rounding); and, as tests/test_bregman.py::test_nonnegative_and_zero_on_diagonal
# checks, it is >= 0 with no rounding allowance and exactly 0 at p = q.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)
shape = (int(draw.integers(1, 9)), int(draw.integers(1, 7)))
p_check, q_check = draw.uniform(-6, 6, shape), draw.uniform(-6, 6, shape)
for name in transfer.NAMES:
    t = transfer.get(name)
    D = bregman.divergence(t, p_check, q_check)
    defining = t.potential(p_check) - t.potential(q_check) - (t.f(q_check) * (p_check - q_check)).sum(-1)
    scale = (
        float(
            np.max(
                np.abs(t.potential(p_check))
                + np.abs(t.potential(q_check))
                + np.abs((t.f(q_check) * (p_check - q_check)).sum(-1))
            )
        )
        + 1.0
    )
    assert np.abs(D - defining).max() <= 1e-13 * scale
    assert D.shape == (shape[0],) and D.min() >= 0
    assert np.all(bregman.divergence(t, p_check, p_check) == 0.0)
print(
    f"seed {seed}: rows {shape}, {len(transfer.NAMES)} transfers: D_F = the tangent gap, >= 0, 0 on the diagonal"
)
