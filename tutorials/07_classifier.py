# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 07 · A classifier with LocoProp-M: the softmax matching loss
#
# **Prerequisites:** lessons 02 (matching losses), 04 (LocoProp-M, out-of-range targets) and 05 (`experiments.compare`).
#
# **Time:** about 40 minutes
#
# **You will be able to:** read a softmax output layer as a matching-loss layer, predict when LocoProp-M's output targets leave the simplex, and train a classifier with LocoProp-M.
#
# ## What you will learn
#
# - the softmax as the gradient of the log-sum-exp potential, and its
#   Bregman divergence as a KL divergence (checked with `bregman`);
# - why the softmax cross-entropy **is** the softmax's matching loss, so that
#   LocoProp-M's last-layer local problem is a cross-entropy with the soft
#   target $y^* = \mathrm{softmax}(A) - \gamma G$, a mix of the prediction and
#   the label;
# - when those targets leave the probability simplex (exactly when
#   $\gamma > B$ for one-hot labels), why the local problem then has no
#   minimiser, and what locograd does about it (`LocoPropWarning`, the
#   proximal term);
# - how to train a tanh classifier with LocoProp-M next to Adam and SGD
#   (`experiments.compare`, `model="classifier"`) and read the loss and
#   accuracy curves.
#
# **Data:** Fashion-MNIST, read from Debian's package `dataset-fashion-mnist`
# (`/usr/share/datasets/fashion-mnist`) or from the folder in `$LOCOGRAD_DATA`;
# nothing is downloaded. Without it the lesson falls back to a generated
# 10-class data set (shifted, noisy CURVES images) and says so: the same code
# runs, the numbers differ.
#
# Notation, as in lessons 02 to 04: a layer's pre-activation $a$ (a row of
# $A$, one example), its transfer $f = \nabla F$ with the convex potential
# $F$, the Bregman divergence $D_F(p, q) = F(p) - F(q) - f(q)\cdot(p - q)$ and
# the matching loss of a post-activation target $y^*$,
# $\ell(a; y^*) = F(a) - y^*\cdot a$, whose gradient is $f(a) - y^*$.

# %%
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import locograd as lg
from locograd import bregman, data, locoprop, transfer
from locograd.experiments import TrainConfig, compare, format_summary, histories
from locograd.locoprop import GD, M
from locograd.nn import augment, stack, unstack  # X~ = [X, 1] (B, d_in+1) and W~ = [W; b] (d_in+1, d_out)
from locograd.testing import relative_error
from locograd.tutorial import FAST, Checks, save

# One BLAS thread, as the command line's default --threads 1 (see lesson 05).
threadpool_limits(limits=1, user_api="blas")

rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # two float64 routes to the same numbers: rounding only
softmax = transfer.softmax
cross_entropy = lg.losses.get("softmax_cross_entropy")

# %% [markdown]
# ## 1. The softmax is the gradient of log-sum-exp
#
# The softmax acts on a whole row, $f(a)_j = e^{a_j}/\sum_k e^{a_k}$. It is
# the gradient of the log-sum-exp potential, and its convex conjugate is the
# negative entropy on the probability simplex $\Delta$:
#
# $$F(a) = \log\sum_k e^{a_k},\qquad \nabla F = \mathrm{softmax},\qquad
#   F^*(y) = \sum_j y_j\log y_j \ \ (y\in\Delta),\ +\infty \text{ elsewhere}.$$
#
# Write $y = \mathrm{softmax}(q)$ and $\hat y = \mathrm{softmax}(p)$. Since
# $\log\hat y_j = p_j - F(p)$, $\log y_j = q_j - F(q)$ and $\sum_j y_j = 1$,
#
# $$D_F(p, q) = F(p) - F(q) - y\cdot(p - q)
#   = \sum_j y_j\big(\log y_j - \log\hat y_j\big)
#   = \mathrm{KL}\big(\mathrm{softmax}(q)\,\|\,\mathrm{softmax}(p)\big),$$
#
# with $\nabla_p D_F(p, q) = \mathrm{softmax}(p) - \mathrm{softmax}(q)$.
# `bregman.divergence("softmax", p, q)` computes it in a stable form (a sum of
# non-negative terms, lesson 02); we compare it with the KL divergence written
# from log-softmaxes, and its gradient with central differences.

# %%
B_demo, d_demo = 6, 4
p = 3 * rng.standard_normal((B_demo, d_demo))
q = 3 * rng.standard_normal((B_demo, d_demo))


def log_softmax(a):
    return a - transfer.logsumexp(a)[:, None]


y_q, y_p = softmax.f(q), softmax.f(p)
kl_terms = y_q * (log_softmax(q) - log_softmax(p))
kl = kl_terms.sum(axis=1)
div = bregman.divergence("softmax", p, q)
print("D_F(p, q) per row:      ", np.array2string(div, precision=6))
print("KL(softmax(q)||softmax(p)):", np.array2string(kl, precision=6))
# the by-hand KL sums terms of size |y (log y - log y^)| (up to ~10 here), each rounded by a few
# eps: 1e-14 of that size is a margin of ~10 over its rounding; the library's form is more accurate
checks(
    "D_F(p, q) = KL(softmax(q) || softmax(p))",
    np.max(np.abs(div - kl) / np.abs(kl_terms).sum(axis=1)),
    1e-14,
)
checks("D_F(p, q) >= 0", float(max(0.0, -div.min())), 0.0)

h = 1e-5
numeric = np.zeros_like(p)
for j in range(d_demo):
    e = np.zeros_like(p)
    e[:, j] = h
    numeric[:, j] = (bregman.divergence("softmax", p + e, q) - bregman.divergence("softmax", p - e, q)) / (
        2 * h
    )
grad = bregman.divergence_grad("softmax", p, q)
checks("grad_p D_F = softmax(p) - softmax(q)", relative_error(grad, y_p - y_q), EXACT)
# central differences: truncation ~h^2 = 1e-10, rounding ~eps |D| / h ~ 1e-10: 1e-8 relative holds
checks("grad_p D_F = central differences", relative_error(grad, numeric, floor=1.0), 1e-8)

# %% [markdown]
# ## 2. The softmax cross-entropy is the matching loss
#
# LocoProp-M never inverts $f$: it uses the matching loss
# $\ell(a; y^*) = F(a) - y^*\cdot a = D_F(a, f^{-1}(y^*)) - F^*(y^*)$ (lesson 02).
# For the softmax, as soon as $\sum_j y^*_j = 1$,
#
# $$\ell(a; y^*) = \log\sum_k e^{a_k} - y^*\cdot a
#   = -\sum_j y^*_j\big(a_j - F(a)\big) = -\sum_j y^*_j \log\mathrm{softmax}(a)_j,$$
#
# the **cross-entropy** of the prediction $\mathrm{softmax}(a)$ against the
# target $y^*$, for any $y^*$ on the hyperplane $\sum_j y^*_j = 1$, even one with
# negative components. For a target in the open simplex it splits into
# $\mathrm{KL}(y^*\,\|\,\mathrm{softmax}(a)) + H(y^*)$, the KL divergence plus
# the entropy of the target (a constant for the optimisation). Its gradient is
# $\mathrm{softmax}(a) - y^*$. The network loss `softmax_cross_entropy` is
# exactly this function, averaged over the batch.

# %%
a = 2 * rng.standard_normal((B_demo, d_demo))
raw = rng.random((B_demo, d_demo)) + 0.1
y_soft = raw / raw.sum(axis=1, keepdims=True)  # soft targets in the open simplex
ce_by_hand = -(y_soft * log_softmax(a)).sum(axis=1)
matching = bregman.matching_loss("softmax", a, y_soft)
entropy = -(y_soft * np.log(y_soft)).sum(axis=1)
# the conjugate's divergence D_F*(y*, softmax(a)) = D_F(a, log y*) is KL(y* || softmax(a))
kl_target = bregman.dual_divergence("softmax", y_soft, softmax.f(a))
print("matching loss F(a) - y*.a:", np.array2string(matching, precision=6))
print("cross-entropy by hand:    ", np.array2string(ce_by_hand, precision=6))
checks("F(a) - y*.a = -sum y* log softmax(a)", relative_error(matching, ce_by_hand), EXACT)
checks(
    "softmax_cross_entropy = matching loss",
    relative_error(cross_entropy.per_example(a, y_soft), matching),
    EXACT,
)
checks("matching loss = KL(y*||softmax(a)) + H(y*)", relative_error(matching, kl_target + entropy), EXACT)
numeric = np.zeros_like(a)
for j in range(d_demo):
    e = np.zeros_like(a)
    e[:, j] = h
    numeric[:, j] = (
        bregman.matching_loss("softmax", a + e, y_soft) - bregman.matching_loss("softmax", a - e, y_soft)
    ) / (2 * h)
checks(
    "grad of the matching loss = softmax(a) - y* (central differences)",
    relative_error(bregman.matching_loss_grad("softmax", a, y_soft), numeric, floor=1.0),
    1e-8,
)

# %% [markdown]
# ## 3. LocoProp-M's last layer: a cross-entropy with soft targets
#
# The network loss is the batch mean $L = \frac1B\sum_n \ell(a_n; y_n)$ of the
# one-hot labels $Y$, so $G = \partial L/\partial A = (\mathrm{softmax}(A) - Y)/B$,
# and LocoProp-M's output target is
#
# $$Y^* = \mathrm{softmax}(A) - \gamma G
#      = \Big(1 - \frac{\gamma}{B}\Big)\,\mathrm{softmax}(A) + \frac{\gamma}{B}\,Y .$$
#
# Each row is a point on the line from the current prediction to the label:
# a *soft label* that mixes the two with weight $\gamma/B$ (at $\gamma = B$ it
# is the label itself). Its rows sum to 1, so by section 2 the last layer's
# local problem, with its input $\tilde X$ frozen,
#
# $$J_M(\tilde W) = \sum_n \ell(\tilde x_n\tilde W; y^*_n) + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2$$
#
# is the softmax cross-entropy of a linear classifier on the frozen features
# against these soft labels. We check it on a small classifier, 4-16-3 with a
# tanh hidden layer, in float64, with a batch of $B = 12$ examples.

# %%
net = lg.MLP([4, 16, 3], ["tanh", "softmax"], "softmax_cross_entropy")
params = net.init(seed=0, bias="glorot")
B = 12
x = 1.5 * rng.standard_normal((B, 4))
labels = rng.integers(0, 3, B)
Y = np.eye(3)[labels]
gamma = 6.0  # gamma / B = 1/2: the targets sit halfway between prediction and label

trace = net.forward(params, x)
S_out = softmax.f(trace.pre[-1])
problems, grads = locoprop.local_problems(net, params, x, Y, M(gamma=gamma))
last = problems[-1]
checks("G = (softmax(A) - Y) / B", relative_error(grads.pre[-1], (S_out - Y) / B), EXACT)
checks(
    "Y* = (1 - gamma/B) softmax(A) + (gamma/B) Y",
    relative_error(last.target, (1 - gamma / B) * S_out + gamma / B * Y),
    EXACT,
)
# three entries of size <= 1 are formed and summed with a few roundings of ~1e-16 each: 1e-14 holds
checks("rows of Y* sum to 1", np.abs(last.target.sum(axis=1) - 1).max(), 1e-14)

W_probe = unstack(stack(last.anchor) + 0.3 * rng.standard_normal(stack(last.anchor).shape))  # any weights
A_probe = augment(last.inputs) @ stack(W_probe)
J_by_ce = float(cross_entropy.per_example(A_probe, last.target).sum())
checks(
    "J_M(W) = sum of cross-entropies against Y*",
    abs(float(locoprop.objective(last, W_probe)) - J_by_ce) / J_by_ce,
    EXACT,
)
checks(
    "grad J_M = X~^T (softmax(X~ W~) - Y*)",
    relative_error(
        stack(locoprop.gradient(last, W_probe)), augment(last.inputs).T @ (softmax.f(A_probe) - last.target)
    ),
    EXACT,
)
print(f"first rows of softmax(A), Y and Y* (gamma = {gamma:g}, B = {B}):")
for n in range(3):
    print(f"  {np.round(S_out[n], 3)}  {Y[n]}  {np.round(last.target[n], 3)}")

# %% [markdown]
# ## 4. When the targets leave the simplex
#
# The range of the softmax is the **open** simplex: every output is positive
# and the row sums to 1. The targets always sum to 1, but for
# $\gamma > B$ the mix above is no longer a convex combination: the label's
# component exceeds 1 and the others, $(1 - \gamma/B)\,\mathrm{softmax}(A)_j$,
# become negative. With one-hot labels every row leaves at the same
# $\gamma = B$, since every softmax output is positive. locograd measures
# the range with `softmax.in_range` (a row is in range when its entries are
# $\ge 0$ and sum to 1) and `locoprop.count_out_of_range` counts the entries
# of the rows out of range (all $d$ entries of such a row).
#
# First a picture: three classes, so each row is a point of a triangle.

# %%
d_out = net.sizes[-1]
shown_gammas = (gamma, 0.99 * B, 1.01 * B, 2.0 * B)
targets_at = {}
for g in shown_gammas:
    prob_g = locoprop.local_problems(net, params, x, Y, M(gamma=g))[0][-1]
    targets_at[g] = prob_g.target
    rows_out = int(locoprop.count_out_of_range(prob_g)) // d_out
    print(
        f"gamma = {g:5.2f} (gamma/B = {g / B:.2f}): {rows_out:2d} of {B} output rows outside the simplex, "
        f"smallest entry {prob_g.target.min():+.3f}, largest {prob_g.target.max():+.3f}"
    )
    checks("one-hot labels: out of the simplex iff gamma > B", float((rows_out == B) != (g > B)), 0.0)

# %%
corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])  # barycentric -> plane: y @ corners
fig, ax = plt.subplots(figsize=(7.7, 4.9), constrained_layout=True)
ax.fill(*corners.T, color="0.93", zorder=0, label=r"range of softmax (the simplex $\Delta$)")
ax.plot(*np.append(corners, corners[:1], axis=0).T, color="0.3", lw=1)
# each corner's name beside it, off the grey lines that leave the corner outwards
for k, (name, offset, ha, va) in enumerate(
    [
        ("class 0", (0.0, -0.05), "center", "top"),
        ("class 1", (0.0, -0.05), "center", "top"),
        ("class 2", (-0.06, 0.0), "right", "center"),
    ]
):
    ax.annotate(name, corners[k], xytext=corners[k] + offset, ha=ha, va=va)
pred = S_out @ corners
far = targets_at[2.0 * B] @ corners
for n in range(B):
    ax.plot(*np.stack([pred[n], far[n]]).T, color="0.6", lw=0.8, zorder=1)
ax.scatter(*pred.T, s=30, color="k", zorder=3, label=r"prediction $\mathrm{softmax}(a_n)$")
styles = {gamma: ("o", "tab:blue"), 2.0 * B: ("X", "tab:red")}
for g, (marker, color) in styles.items():
    ax.scatter(
        *(targets_at[g] @ corners).T,
        s=40,
        marker=marker,
        color=color,
        zorder=4,
        label=rf"target $y^*_n$, $\gamma = {g / B:g}\,B$",
    )
ax.set_aspect("equal")
ax.set_anchor("W")  # the square axes at the left, the legend to its right
# limits from what is drawn (the triangle, predictions, the gamma = 2B targets at the ends of the grey
# lines), with a margin, so that no target and no line leaves the frame
shown = np.concatenate([corners, pred, far])
low, high = shown.min(axis=0), shown.max(axis=0)
margin = 0.08 * (high - low).max()
ax.set_xlim(low[0] - margin, high[0] + margin)
ax.set_ylim(low[1] - margin, high[1] + margin)
ax.set_xticks([])
ax.set_yticks([])
ax.set_title(f"LocoProp-M's output targets, B = {B}, three classes")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)  # outside: no point hidden
save(fig, "07_simplex_targets.png")

# %% [markdown]
# **What the figure shows.** The triangle is the simplex of three-class
# probability vectors, each corner a one-hot label. Black dots: the network's
# predictions for the 12 examples; grey lines: from each prediction through
# its label and beyond. With $\gamma = B/2$ (blue) every target lies halfway
# from the prediction to its label, inside the triangle. With $\gamma = 2B$
# (red crosses) each target overshoots its label by as much again and lands
# outside the triangle: still on the plane $\sum_j y_j = 1$, but with negative
# components, where no softmax output can ever be.
#
# **Why the local problem then has no minimiser.** Take a row with
# $y^*_j < 0$ and lower its pre-activation $a_j$ by $t$: $F(a - te_j)$
# decreases towards the log-sum-exp of the other units, while
# $-y^*\cdot(a - te_j)$ falls by $t\,|y^*_j|$ without end. So
# $\ell(a - te_j; y^*) \to -\infty$ as $t \to \infty$: a row of targets outside
# the simplex makes $J_M$ unbounded below (in the weight space as soon as the
# layer can lower that row's $a_j$ and leave the other rows as they are, e.g.
# when the rows of $\tilde X$ are independent, as here: $\tilde X$ is
# $12 \times 17$ of rank $B = 12$, checked below), and long inner gradient
# descent runs off. For a target inside, the same
# direction makes $\ell$ grow again: the minimum exists.
#
# locograd handles it as for tanh and sigmoid targets (lesson 04):
# `locoprop.step` warns with a `LocoPropWarning` when it is asked for more
# than one inner step ($K > 1$) without a proximal term, and the proximal term
# $\|\tilde W - \tilde W_t\|^2/(2\eta)$ makes $J_M$ strongly convex, so it
# has a unique minimiser again (the exact Newton-CG solve requires it).

# %%
rank_X = int(np.linalg.matrix_rank(augment(last.inputs)))
print(f"X~ of the output layer: {augment(last.inputs).shape}, rank {rank_X}")
checks("rows of X~ independent: rank X~ = B", float(rank_X != B), 0.0)
n0 = 0
j0 = int(np.argmin(targets_at[2.0 * B][n0]))
ts = np.linspace(-4, 20, 200)
rays = {}
for g in (gamma, 2.0 * B):
    a_line = trace.pre[-1][n0] - ts[:, None] * np.eye(d_out)[j0]
    rays[g] = bregman.matching_loss("softmax", a_line, np.tile(targets_at[g][n0], (ts.size, 1)))
    print(
        f"gamma = {g / B:g} B: y*_{j0} = {targets_at[g][n0, j0]:+.3f}; loss along a - t e_{j0} at t = 20: {rays[g][-1]:+.2f}"
    )

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    locoprop.step(net, params, x, Y, variant=M(gamma=2.0 * B), solver=GD(steps=10, lr=0.1))
print(f"gamma = 2B, no eta, 10 inner steps: {len(caught)} warning(s)")
for w in caught:
    print(f"  {w.category.__name__}: {w.message}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    locoprop.step(net, params, x, Y, variant=M(gamma=2.0 * B, eta=1.0), solver=GD(steps=10, lr=0.1))
print(f"gamma = 2B, eta = 1: {len(caught)} warning(s)")

K_long = 1000 if FAST else 3000
runs, W_end = {}, {}
for label, e in (("no prox", None), (r"prox $\eta = 1$", 1.0)):
    prob_e = locoprop.local_problems(net, params, x, Y, M(gamma=2.0 * B, eta=e))[0][-1]
    Xt = augment(prob_e.inputs)
    # the softmax's Jacobian diag(s) - s s^T has eigenvalues <= 1/2: a step below 2/L with this L
    r = 1.0 / (0.5 * np.linalg.eigvalsh(Xt.T @ Xt).max() + (0.0 if e is None else 1 / e))
    W, dist = prob_e.anchor, []
    for _ in range(K_long):
        g_W = locoprop.gradient(prob_e, W)
        W = {k: W[k] - r * g_W[k] for k in W}
        dist.append(float(np.linalg.norm(stack(W) - stack(prob_e.anchor))))
    runs[label], W_end[label] = np.array(dist), W
    print(
        f"{label:<16} after {K_long} inner GD steps: |W - W_t| = {dist[-1]:8.2f}, J_M = {float(locoprop.objective(prob_e, W)):9.2f}"
    )
prob_prox = locoprop.local_problems(net, params, x, Y, M(gamma=2.0 * B, eta=1.0))[0][-1]
W_newton, info = locoprop.solve_exact_m(prob_prox)
d_newton = float(np.linalg.norm(stack(W_newton) - stack(prob_prox.anchor)))
print(
    f"Newton-CG with prox: {info.newton_iterations} iterations, |W* - W_t| = {d_newton:.2f}, "
    f"final relative gradient {info.relative_gradient:.1e}; GD's contraction (1 - r/eta)^K = {(1 - r) ** K_long:.0e}"
)
# Newton-CG stops at |grad J| <= 1e-10 |grad J(W_t)| and J is (1/eta)-strongly convex, so its W* is within
# ~1e-9 (relative) of the minimiser; GD's remaining contraction (printed, r of the prox run) adds nothing: 1e-8
checks(
    "long GD with prox reaches the Newton-CG minimiser",
    relative_error(stack(W_end[r"prox $\eta = 1$"]), stack(W_newton)),
    1e-8,
)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2), constrained_layout=True)
for g, color in ((gamma, "tab:blue"), (2.0 * B, "tab:red")):
    ax1.plot(
        ts,
        rays[g],
        color=color,
        lw=2,
        label=rf"$\gamma = {g / B:g}\,B$: $y^*_{{{j0}}} = {targets_at[g][n0, j0]:+.2f}$",
    )
ax1.set_xlabel(rf"$t$ (pre-activation $a_{{{j0}}}$ lowered by $t$)")
ax1.set_ylabel(r"$\ell(a - t e_j;\, y^*) = F(a - te_j) - y^*\cdot(a - te_j)$")
ax1.set_title(f"One example's matching loss along a ray (example {n0})")
ax1.grid(alpha=0.3)
ax1.legend()
steps_axis = np.arange(1, K_long + 1)
for (label, dist), color in zip(runs.items(), ("tab:red", "tab:green"), strict=True):
    ax2.loglog(steps_axis, dist, color=color, lw=2, label=f"inner GD, {label}")
ax2.axhline(d_newton, color="k", ls=":", label=r"Newton-CG minimiser (prox $\eta = 1$)")
ax2.set_xlabel("inner GD step $k$")
ax2.set_ylabel(r"$\|\tilde W_k - \tilde W_t\|$")
ax2.set_title(r"Output layer, $\gamma = 2B$: the whole local problem")
ax2.grid(alpha=0.3, which="both")
ax2.legend(fontsize=9)
save(fig, "07_unbounded.png")

# %% [markdown]
# **What the figure shows.** Left: one example's matching loss as the
# pre-activation of its most negative target unit is lowered. With
# $\gamma = B/2$ (target inside the simplex) the curve has a minimum; with
# $\gamma = 2B$ it falls along a straight line of slope $y^*_j < 0$, for ever.
# Right: the output layer's whole local problem at $\gamma = 2B$. Without the
# prox, inner GD moves the weights further and further (slope 1 on log-log
# axes: the gradient tends to a non-zero constant); with $\eta = 1$ it levels
# off at the Newton-CG minimiser (dotted line).
#
# **In practice.** For a classifier the output targets stay in the simplex as
# long as $\gamma \le B$: with the batch of 100 below and $\gamma = 10$ they
# never leave it (the same bound $\gamma \le B$ holds at a sigmoid output,
# lesson 05). The tanh hidden layers' targets may still leave $[-1, 1]$ for a
# strongly saturated unit; as in lesson 05 a few small RMSProp steps per batch
# cannot run off, so the training runs below silence the warning.
#
# ## 5. The data
#
# Fashion-MNIST: 28x28 grey images of ten kinds of clothing, 60,000 for
# training and 10,000 for testing; we train on the first `N_TRAIN` and test on
# all 10,000. `data.load` reads the set from files already on the machine and
# raises `data.DataError` (a `ValueError`) when they are not there; we then
# generate a stand-in: ten classes, each one CURVES image (lesson 05) drawn
# shifted by up to 3 pixels, dimmed and with pixel noise, so that a class is
# "which curve is it", wherever it sits.

# %%
N_TRAIN = 2000 if FAST else 12000
WIDTHS = [128, 64] if FAST else [256, 128]
EPOCHS = 3 if FAST else 6
BATCH = 100
print(f"fast mode: {FAST}; {N_TRAIN} training images, hidden widths {WIDTHS}, {EPOCHS} epochs, batch {BATCH}")

FASHION = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]


def shifted_curves(n_train, n_test, seed=0):
    """A 10-class stand-in for Fashion-MNIST: class c is CURVES image c, shifted, dimmed, noisy."""
    prototypes = data.curves(n_train=10, n_test=1, seed=seed).x_train.reshape(10, 28, 28)
    draw = np.random.default_rng(seed)

    def sample(n):
        y = draw.integers(0, 10, n)
        shifts = draw.integers(-3, 4, (n, 2))
        imgs = np.stack(
            [np.roll(prototypes[c], tuple(s), axis=(0, 1)) for c, s in zip(y, shifts, strict=True)]
        )
        imgs = imgs * draw.uniform(0.5, 1.0, (n, 1, 1)) + draw.normal(0.0, 0.2, imgs.shape)
        return np.clip(imgs, 0, 1).reshape(n, 784).astype(np.float32), y.astype(np.int64)

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return data.Dataset(
        "shifted-curves", x_train, y_train, x_test, y_test, source=f"generated from CURVES (seed {seed})"
    )


# $LOCOGRAD_DATA, when set, is passed as data_dir: the ONLY folder the loader then looks in. So
# LOCOGRAD_DATA=/an/empty/folder python tutorials/07_classifier.py runs the fallback even where the
# Debian package is installed; unset, the loader also tries the usual places (/usr/share/datasets/...).
try:
    ds = data.load("fashion-mnist", data_dir=os.environ.get("LOCOGRAD_DATA") or None, limit_train=N_TRAIN)
    class_names = FASHION
    print(f"data: Fashion-MNIST from {ds.source}")
except data.DataError as err:
    print(f"data: Fashion-MNIST not found ({str(err).split(';')[0]}); using the generated stand-in")
    ds = shifted_curves(N_TRAIN, 2000)
    class_names = [f"curve {c}" for c in range(10)]
print(ds)
print("training images per class:", np.bincount(ds.y_train, minlength=10).tolist())

fig, axes = plt.subplots(2, 10, figsize=(11, 2.9), constrained_layout=True)
for c in range(10):
    for row, idx in enumerate(np.flatnonzero(ds.y_train == c)[:2]):
        axes[row, c].imshow(ds.x_train[idx].reshape(ds.image_shape), cmap="gray_r", vmin=0, vmax=1)
    axes[0, c].set_title(class_names[c], fontsize=8)
for axis in axes.ravel():
    axis.set_xticks([])
    axis.set_yticks([])
fig.suptitle(f"{ds.name}: two training images per class")
save(fig, "07_data.png")

# %% [markdown]
# ## 6. Training: LocoProp-M, Adam and SGD
#
# `compare` trains each optimizer from the same initialisation on the same
# batches (lesson 05). The model is the library's `classifier`
# (`model="classifier"`: tanh hidden layers of the given `widths`, a softmax
# output, softmax cross-entropy), batch 100, float32. The settings:
#
# * `locoprop-m`: $\gamma = 10$ (so $\gamma/B = 0.1$: each output target moves
#   a tenth of the way from the prediction to the label), $K = 10$ inner steps
#   of TF1-RMSProp per layer and batch with learning rate $10^{-5}$ (its
#   momentum 0.999 makes the effective step much larger; the released inner
#   optimizer), no prox;
# * `adam`: BackProp with Adam, learning rate $10^{-3}$;
# * `sgd`: BackProp with plain SGD, learning rate $0.1$.
#
# These are reasonable settings, not tuned ones; the Fashion-MNIST classifier
# study (`studies/fashion-mnist-classifier.toml`) tunes every method on a
# validation split. We pass the data in (`data=ds`), so the runs use the set
# loaded above, whichever it is (the `dataset` name only picks the defaults
# of the settings we do not give).

# %%
warnings.filterwarnings("ignore", category=locoprop.LocoPropWarning)  # hidden tanh targets, see section 4
runs_dir = Path(tempfile.mkdtemp(prefix="locograd_tutorial07_"))
config = TrainConfig(
    dataset="fashion-mnist",
    model="classifier",
    widths=WIDTHS,
    out=str(runs_dir),
    epochs=EPOCHS,
    batch_size=BATCH,
    seed=0,
    dtype="float32",
    progress=False,
)
entries = {
    "locoprop-m": {"optimizer": "locoprop-m", "gamma": 10.0, "lr": 1e-5},
    "adam": {"optimizer": "adam", "lr": 1e-3},
    "sgd": {"optimizer": "sgd", "lr": 0.1},
}
start = time.perf_counter()
summary = compare(config, entries, data=ds, figure=False)
print(f"\n{time.perf_counter() - start:.1f} s in total (evaluation included)\n")
print(format_summary(summary))
history = histories(str(runs_dir), list(entries))
shutil.rmtree(runs_dir, ignore_errors=True)
for name, rows in history.items():
    print(
        f"{name:>10}: test accuracy by epoch "
        + ", ".join(f"{row['test_accuracy']:.3f}" for row in rows)
        + "; train loss "
        + ", ".join(f"{row['train_loss']:.3f}" for row in rows)
        + "; test loss "
        + ", ".join(f"{row['test_loss']:.3f}" for row in rows)
    )
loco_rows = history["locoprop-m"]
best = min(loco_rows[1:], key=lambda row: row["test_loss"])  # epoch 0 is the initialisation
print(
    f"\nafter {EPOCHS} epochs on {N_TRAIN} training images: test accuracy "
    + ", ".join(f"{name} {rows[-1]['test_accuracy']:.3f}" for name, rows in history.items())
    + f"; lowest training loss: {min(history, key=lambda name: history[name][-1]['train_loss'])}"
)
print(
    f"locoprop-m's test loss is lowest after epoch {best['epoch']} ({best['test_loss']:.3f}) "
    f"and ends at {loco_rows[-1]['test_loss']:.3f}"
)
ratio = summary["locoprop-m"]["seconds_per_epoch"] / summary["adam"]["seconds_per_epoch"]
print(f"locoprop-m's time per epoch: {ratio:.1f} times Adam's on this machine (the s/epoch column)")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.0), constrained_layout=True)
colors = {"locoprop-m": "tab:red", "adam": "tab:blue", "sgd": "tab:green"}
for name, rows in history.items():
    epochs = [row["epoch"] for row in rows]
    ax1.plot(epochs, [row["train_loss"] for row in rows], "o-", color=colors[name], label=f"{name}, train")
    ax1.plot(
        epochs,
        [row["test_loss"] for row in rows],
        "s--",
        color=colors[name],
        alpha=0.6,
        label=f"{name}, test",
    )
    ax2.plot(epochs, [row["test_accuracy"] for row in rows], "o-", color=colors[name], label=name)
ax1.set_xlabel("epoch")
ax1.set_xticks(range(EPOCHS + 1))
ax1.set_ylabel("softmax cross-entropy (mean)")
ax1.set_yscale("log")
ax1.set_title("Loss per epoch (epoch 0: the initialisation)")
ax1.grid(alpha=0.3, which="both")
ax1.legend(fontsize=8, ncol=3)
ax2.set_xlabel("epoch")
ax2.set_xticks(range(EPOCHS + 1))
ax2.set_ylabel("test accuracy")
ax2.set_ylim(0, 1)
ax2.axhline(0.1, color="0.5", ls=":", label="chance (10 classes)")
ax2.set_title(f"Test accuracy ({ds.n_test} test images)")
ax2.grid(alpha=0.3)
ax2.legend(fontsize=9)
fig.suptitle(f"{ds.name}: 784-{'-'.join(map(str, WIDTHS))}-10 tanh classifier, {N_TRAIN} training images")
save(fig, "07_training.png")

# %% [markdown]
# **What the figure shows.** Left: the mean training loss (solid) and test
# loss (dashed) after each epoch, log scale; right: the test accuracy, with
# chance (10%) dotted. All three start from the same initialisation (epoch 0,
# loss about 2.5, near the $\log 10 \approx 2.3$ of a uniform guess) and leave
# chance within the first epoch.
# On Fashion-MNIST, LocoProp-M (ten inner TF1-RMSProp steps per layer and
# batch, with momentum 0.999) drives the training loss down fastest per epoch,
# by far. Its test loss does not follow: after an epoch or two it rises again
# while the training loss keeps falling (the epoch of its lowest test loss is
# printed above), so it overfits the training images (2,000 in fast mode,
# 12,000 otherwise), and the lower training loss buys it no clear lead in test
# accuracy: it ends close to Adam's (the final accuracies are printed above).
# Per second of training it is the slowest, several times Adam's time per
# epoch (the `s/epoch` column, and the ratio printed above; it depends on the
# machine): ten inner passes per layer and batch. The remedies are the usual
# ones: a smaller $\gamma$ or inner rate, or stopping on a validation split,
# which is how the Fashion-MNIST classifier study tunes every method. With the
# generated stand-in the curves play the same roles at other values. This is
# one seed, few epochs and untuned settings: a picture of how the methods
# start, not a ranking.

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
# 1. With label smoothing, $Y = (1 - \varepsilon)\,\mathrm{onehot} + \varepsilon/d$
#    ($\varepsilon = 0.1$), the output targets of section 4 leave the simplex
#    at a larger $\gamma$. Show that row $n$ leaves at
#    $\gamma_n = \min_{j:\,s_{nj} > y_{nj}} B\,s_{nj}/(s_{nj} - y_{nj})$
#    ($s = \mathrm{softmax}(A)$), check the smallest one against
#    `locoprop.count_out_of_range`, and explain why it exceeds $B$.
# 2. The softmax ignores a constant added to every pre-activation of a row, so
#    $F$ is not strictly convex. Show that adding the same constant $c$ to every
#    output bias changes neither the softmax nor the last layer's $J_M$ (no
#    prox), even at $\gamma = 2B$, and that the local gradient never moves
#    along that direction. What does the proximal term add along it?
# 3. Solve the last layer's local problem of section 3 exactly (Newton-CG,
#    `locoprop.solve_exact_m`, with $\eta = 1$) and check that it lowers
#    $\sum_n \mathrm{KL}(y^*_n\,\|\,\mathrm{softmax}(\tilde x_n\tilde W))$ by
#    exactly the decrease of $J_M$ without the prox, and by at least
#    $\|\tilde W^* - \tilde W_t\|^2/(2\eta)$.

# %% tags=["hide-input"]
# Solution to exercise 1: y*_j = (1 - g/B) s_j + (g/B) y_j is >= 0 for every g when s_j <= y_j, and
# for s_j > y_j only while g <= B s_j / (s_j - y_j); the rows still sum to 1.
eps_smooth = 0.1
Y_smooth = (1 - eps_smooth) * Y + eps_smooth / d_out
with np.errstate(divide="ignore"):
    room = np.where(S_out > Y_smooth, B * S_out / (S_out - Y_smooth), np.inf)
gamma_star = float(room.min())
print(
    f"label smoothing {eps_smooth}: the first output row leaves the simplex at gamma = {gamma_star:.3f} = {gamma_star / B:.3f} B"
)


def rows_outside(g):
    problem = locoprop.local_problems(net, params, x, Y_smooth, M(gamma=g))[0][-1]
    return int(locoprop.count_out_of_range(problem)) // d_out


# a relative margin of 1e-6 around the threshold is far above the rounding of s - g G (~1e-16)
assert rows_outside(gamma_star * (1 - 1e-6)) == 0 and rows_outside(gamma_star * (1 + 1e-6)) >= 1
# s_j / (s_j - y_j) > 1 since y_j >= eps/d > 0: every row's threshold is above B (one-hot: exactly B)
assert gamma_star > B

# %% tags=["hide-input"]
# Solution to exercise 2: F(a + c 1) = F(a) + c and y*.(a + c 1) = y*.a + c sum_j y*_j = y*.a + c, so
# the matching loss is unchanged whenever the targets sum to 1, inside the simplex or not.
prob_far = locoprop.local_problems(net, params, x, Y, M(gamma=2.0 * B))[0][-1]
shifted = {"W": prob_far.anchor["W"], "b": prob_far.anchor["b"] + 3.7}
J0, J_shift = (
    float(locoprop.objective(prob_far, prob_far.anchor)),
    float(locoprop.objective(prob_far, shifted)),
)
A0 = augment(prob_far.inputs) @ stack(prob_far.anchor)
print(f"J_M at W_t {J0:.12f}, with every output bias + 3.7: {J_shift:.12f}")
# the two sums of B = 12 rows of terms of size |F(a)| + |y*.a| (< 100) round by ~1e-13 together
assert abs(J_shift - J0) <= 1e-12 * (np.abs(softmax.potential(A0)).sum() + np.abs(prob_far.target * A0).sum())
assert relative_error(softmax.f(A0 + 3.7), softmax.f(A0)) <= EXACT
# the bias gradient is sum_n (softmax(a_n) - y*_n); its entries sum to sum_n (1 - 1) = 0: GD never
# moves along c 1. The prox adds d c^2 / (2 eta): it picks the representative closest to W_t.
g_bias = locoprop.gradient(prob_far, prob_far.anchor)["b"]
assert abs(g_bias.sum()) <= 1e-14 * np.abs(g_bias).sum() + 1e-15

# %% tags=["hide-input"]
# Solution to exercise 3: J_M(W) = sum_n KL(y*_n || softmax(x_n W)) + sum_n H(y*_n), the entropies
# a constant, so both decrease by the same amount; W* minimises J_M + prox, so
# J_M(W*) + |W* - W_t|^2 / (2 eta) <= J_M(W_t).
eta = 1.0
prob_eta = locoprop.local_problems(net, params, x, Y, M(gamma=gamma, eta=eta))[0][-1]
W_star, _ = locoprop.solve_exact_m(prob_eta, tol=1e-12)
Xt_last = augment(prob_eta.inputs)


def J_no_prox(W):
    return float(bregman.matching_loss("softmax", Xt_last @ stack(W), prob_eta.target).sum())


def kl_sum(W):
    return float(bregman.dual_divergence("softmax", prob_eta.target, softmax.f(Xt_last @ stack(W))).sum())


dJ = J_no_prox(W_star) - J_no_prox(prob_eta.anchor)
dKL = kl_sum(W_star) - kl_sum(prob_eta.anchor)
prox = float(np.sum((stack(W_star) - stack(prob_eta.anchor)) ** 2)) / (2 * eta)
print(f"decrease of J_M: {-dJ:.6f}; of the summed KL: {-dKL:.6f}; prox term at W*: {prox:.6f}")
# J and the KL sums (~10) round by ~1e-15 each; their differences agree to that: 1e-12 is a wide margin
assert abs(dJ - dKL) <= 1e-12 * (1 + abs(J_no_prox(prob_eta.anchor)))
assert -dJ >= prox * (1 - 1e-9) and prox > 0  # Newton-CG stops at 1e-12 of the first gradient
print(
    f"the soft-label cross-entropy went down by {-dJ:.4f}; the weights moved by {np.sqrt(2 * eta * prox):.4f}"
)

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_bregman.py::test_softmax_is_kl_of_softmaxes)
# Two random matrices p and q (1-8 rows, 1-6 columns, entries in [-8, 8]; q resized to p's shape as
# the test does): the softmax's Bregman divergence D_F(p, q) is KL(softmax(q) || softmax(p)), to
# rtol 1e-8 and atol 1e-10 (numpy.testing.assert_allclose: |D - KL| <= 1e-10 + 1e-8 |KL|).
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)
shape_p = (int(draw.integers(1, 9)), int(draw.integers(1, 7)))
shape_q = (int(draw.integers(1, 9)), int(draw.integers(1, 7)))
p_c = draw.uniform(-8, 8, shape_p)
q_c = np.resize(draw.uniform(-8, 8, shape_q), p_c.shape)
y_c, yh_c = transfer.softmax_rows(q_c), transfer.softmax_rows(p_c)
kl_c = (y_c * (np.log(y_c) - np.log(yh_c))).sum(-1)
div_c = bregman.divergence("softmax", p_c, q_c)
assert np.all(np.abs(div_c - kl_c) <= 1e-10 + 1e-8 * np.abs(kl_c))
print(
    f"seed {seed}: p, q of shape {shape_p}: D_F(p, q) = KL(softmax(q) || softmax(p)), max gap {np.abs(div_c - kl_c).max():.1e}"
)
