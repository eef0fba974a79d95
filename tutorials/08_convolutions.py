# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 08 · Convolutions: LocoProp on image patches
#
# **Prerequisites:** lesson 03 (LocoProp-S: targets, the closed form, inner GD); the Kronecker product.
#
# **Time:** about 45 minutes
#
# **You will be able to:** write a convolution as a dense layer on its patches, state and solve its LocoProp-S local problem, and compare its closed form with KFC.
#
# ## What you will learn
#
# - **im2col**: a convolution is a matrix product on image patches,
#   $A = \tilde X\tilde W$ with one row of $\tilde X$ per example **and**
#   output position (`nn.im2col`, `Conv2D.design`), checked against a direct
#   correlation (figure);
# - the **local problem** of a conv layer: under this linear view it is a
#   dense layer whose batch is all $B\,|T|$ patch positions, so LocoProp-S
#   is a least squares on patches with the target $A - \gamma G$, and its
#   first step is BackProp;
# - the **patch covariance** $\tilde X^\top\tilde X$ and the exact
#   LocoProp-S solution, a gradient step preconditioned by it; inner GD
#   converging to it at the speed that its spectrum sets (figure);
# - **KFC** (Grosse & Martens 2016), K-FAC for convolutions: it shares
#   LocoProp-S's input factor (the patch covariance) and differs on the
#   output side, where it has the covariance of the pre-activation gradients
#   over positions instead of the identity (numbers and a figure).
#
# Notation (`docs/math.md`, sections 1 and 8). Images are NHWC,
# $X \in \mathbb{R}^{B\times H\times W\times c_{in}}$; a kernel is
# $W \in \mathbb{R}^{k\times k\times c_{in}\times c_{out}}$ with bias
# $b\in\mathbb{R}^{c_{out}}$; the layer computes the cross-correlation (what
# deep learning calls a convolution), for every output position
# $t = (u, v) \in T$, $|T| = H_{out}W_{out}$:
#
# $$A_{n,u,v,o} = \sum_{i,j,c} X^{pad}_{n,\,su+i,\,sv+j,\,c}\,W_{i,j,c,o} + b_o,
#   \qquad Y = f(A).$$

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from locograd import data, locoprop, nn, optim
from locograd.locoprop import GD, S
from locograd.nn import augment, col2im, im2col  # augment(P) = [P, 1], the design of the linear view
from locograd.testing import relative_error
from locograd.tutorial import FAST, Checks, save

rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # two float64 routes to the same numbers: rounding only

# %% [markdown]
# ## 1. A convolution is a matrix product on patches (im2col)
#
# The data: small CURVES images (`data.curves`: smooth random strokes, grey
# levels in $[0, 1]$), labelled by the quadrant that holds the most ink, a
# 4-class problem that needs where-is-the-stroke features. The network is one
# $3\times 3$ convolution with 4 tanh channels, then a dense softmax layer on
# the flattened maps, in float64.

# %%
SIZE, B = (12, 8) if FAST else (16, 32)
images = data.curves(n_train=B, n_test=1, seed=0, size=SIZE).x_train.astype(np.float64)
x = images.reshape(B, SIZE, SIZE, 1)  # NHWC, one channel
half = SIZE // 2
ink = [
    x[:, r, c].sum(axis=(1, 2, 3))
    for r in (slice(0, half), slice(half, None))
    for c in (slice(0, half), slice(half, None))
]
y = np.argmax(np.stack(ink, axis=1), axis=1)  # quadrant with the most ink: 0 top left ... 3 bottom right

conv = nn.Conv2D(1, 4, 3, transfer="tanh", bias_init="glorot")
H_out, W_out, c_out = conv.output_shape((SIZE, SIZE, 1))
net = nn.Sequential(
    [conv, nn.Flatten(), nn.Dense(H_out * W_out * c_out, 4, "softmax")],
    "softmax_cross_entropy",
    in_shape=(SIZE, SIZE, 1),
)
params = net.init(seed=0)
print(net)
print("shapes:", net.shapes, "| weight layers:", net.weight_layers, "| labels:", np.bincount(y, minlength=4))

# %% [markdown]
# **im2col.** Gather the $k\times k\times c_{in}$ patch under every output
# position into one row, in the kernel's $(i, j, c)$ order:
#
# $$P_{(n,u,v),\,(i,j,c)} = X^{pad}_{n,\,su+i,\,sv+j,\,c},\qquad
#   P \in \mathbb{R}^{B|T| \times k^2 c_{in}} .$$
#
# Then the convolution is ONE dense product: with the kernel reshaped to the
# matrix $W_{mat} \in \mathbb{R}^{k^2c_{in}\times c_{out}}$ (rows in the same
# order) and the bias folded in as for a dense layer,
#
# $$A_{rows} = P\,W_{mat} + b = \tilde X\tilde W,\qquad
#   \tilde X = [P, 1] \in \mathbb{R}^{B|T|\times(k^2c_{in}+1)},\quad
#   \tilde W = \begin{bmatrix}W_{mat}\\ b\end{bmatrix},$$
#
# and $A_{rows}$ is $A$ reshaped to $(B|T|, c_{out})$: one row per example and
# position. `nn.im2col` builds $P$, `nn.augment` appends the column of ones
# (the same function as for a dense layer), `conv.stack` builds $\tilde W$.
# We check the product against the conv layer's forward pass and against the
# correlation written out as a sum over the kernel offsets, without im2col.

# %%
trace = net.forward(params, x)
A = trace.pre[0]  # (B, H_out, W_out, c_out)
P = im2col(x, conv.kernel, conv.stride, conv.pads(SIZE, SIZE))
Xt = augment(P)
Wt = conv.stack(params[0])
print(f"patch matrix P: {P.shape} = (B H_out W_out, k k c_in) = ({B}*{H_out}*{W_out}, 3*3*1)")
print(f"design X~ = [P, 1]: {Xt.shape};  W~ = [W_mat; b]: {Wt.shape};  A: {A.shape}")
checks("[P, 1] = conv.design(x)", relative_error(Xt, conv.design(x)), 0.0)  # the same copies: bit for bit

checks("conv forward = X~ W~ (as rows)", relative_error(conv.rows(A), Xt @ Wt), EXACT)
direct = np.zeros_like(A) + params[0]["b"]  # the correlation, one kernel offset at a time
for i in range(3):
    for j in range(3):
        direct += x[:, i : i + H_out, j : j + W_out, :] @ params[0]["W"][i, j]
checks("direct correlation = X~ W~", relative_error(direct, conv.unrows(Xt @ Wt, x)), EXACT)

# %%
n0 = 0  # the example we look at
spots = []  # four output positions (u, v) whose patches hold ink, at least 3 apart
for t in np.argsort(-P[n0 * H_out * W_out : (n0 + 1) * H_out * W_out].sum(axis=1), kind="stable"):
    u, v = divmod(int(t), W_out)
    if all(max(abs(u - u2), abs(v - v2)) >= 3 for u2, v2 in spots):
        spots.append((u, v))
    if len(spots) == 4:
        break
spots.sort()
colours = ["tab:red", "tab:orange", "tab:green", "tab:blue"]
rows_of = [n0 * H_out * W_out + u * W_out + v for u, v in spots]  # their rows in P
fig, axes = plt.subplot_mosaic(
    [["img", "img", "p0", "p1", "P", "a0", "a1"], ["img", "img", "p2", "p3", "P", "a2", "a3"]],
    figsize=(13, 4.6),
    width_ratios=[1, 1, 0.55, 0.55, 0.7, 0.9, 0.9],
    layout="constrained",
)
ax = axes["img"]
ax.imshow(x[n0, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
for (u, v), colour in zip(spots, colours, strict=True):
    ax.add_patch(Rectangle((v - 0.5, u - 0.5), 3, 3, fill=False, ec=colour, lw=2.5))
ax.set_title(f"input image {n0} ({SIZE}x{SIZE}, label {y[n0]})\nand four 3x3 patches")
for k, ((u, v), colour, r) in enumerate(zip(spots, colours, rows_of, strict=True)):
    ax = axes[f"p{k}"]
    ax.imshow(P[r].reshape(3, 3), cmap="gray_r", vmin=0, vmax=1)
    for side in ax.spines.values():
        side.set(color=colour, lw=3)
    ax.set(xticks=[], yticks=[], title=f"row {r} of P\n(u, v) = ({u}, {v})")
ax = axes["P"]
first = Xt[n0 * H_out * W_out : (n0 + 1) * H_out * W_out]
ax.imshow(first, cmap="gray_r", aspect="auto", vmin=0, vmax=1, interpolation="nearest")
for colour, r in zip(colours, rows_of, strict=True):
    ax.axhline(r - n0 * H_out * W_out, color=colour, lw=2)
ax.set_xticks(range(10), [f"{i}{j}" for i in range(3) for j in range(3)] + ["1"], fontsize=7)
ax.set(xlabel="column (i j), bias", ylabel=f"row t = u {W_out} + v", title=f"X~ = [P, 1]\nof image {n0}")
for o in range(4):
    ax = axes[f"a{o}"]
    ax.imshow(A[n0, :, :, o], cmap="RdBu_r", vmin=-np.abs(A[n0]).max(), vmax=np.abs(A[n0]).max())
    for (u, v), colour in zip(spots, colours, strict=True):
        ax.plot(v, u, "s", ms=6, mec="k", mfc=colour)
    ax.set(xticks=[], yticks=[], title=f"A[{n0}, :, :, {o}]")
fig.suptitle("im2col: one row of the design per output position; A = X~ W~ reshaped to the output maps")
save(fig, "08_im2col.png")

# %% [markdown]
# **What the figure shows.** Left, one input image with four $3\times 3$
# patches outlined; next to it the same four patches as they sit in the patch
# matrix, each a row of $P$ reshaped back to $3\times 3$. In the middle, the
# design $\tilde X = [P, 1]$ of this image: one row per output position
# ($H_{out}W_{out}$ rows), the nine pixel columns in the kernel's $(i, j)$
# order and the column of ones; the coloured lines are the four patches'
# rows. Right, the pre-activation maps of the 4 channels: the value at each
# marked square is the product of ONE row of $\tilde X$ with one column of
# $\tilde W$. Neighbouring rows of $\tilde X$ are shifted copies of each
# other (a patch and its neighbour share 6 of their 9 pixels), and
# neighbouring pixels of a smooth stroke are inked together: section 3 shows
# what this does to the patch covariance.
#
# ## 2. A conv layer's local problem: least squares on patches
#
# Everything LocoProp does with a layer goes through $\tilde X$, the
# pre-activations as rows and $\tilde W$ (`docs/math.md`, section 8). So a
# conv layer is a dense layer whose "batch" is the $B|T|$ patch positions:
# with $G = \partial L/\partial A$ as rows $(B|T|, c_{out})$, BackProp's
# kernel gradient is the sum over examples **and positions** (the weights are
# shared by all positions),
#
# $$\frac{\partial L}{\partial\tilde W} = \tilde X^\top G
#   = \sum_n\sum_{t\in T}\tilde x_{nt}\,g_{nt}^\top ,$$
#
# and LocoProp-S's local problem is a least squares on patches with the
# pre-activation target $A^* = A - \gamma G$:
#
# $$J_S(\tilde W) = \sum_{n}\sum_{t}\tfrac12\big\|\tilde x_{nt}\tilde W - a^*_{nt}\big\|^2
#   + \tfrac{1}{2\eta}\|\tilde W - \tilde W_t\|^2,\qquad
#   \nabla J_S(\tilde W_t) = \tilde X^\top(A - A^*) = \gamma\,\tilde X^\top G
#   = \gamma\,\frac{\partial L}{\partial\tilde W}.$$
#
# `locoprop.local_problems` builds it from one forward/backward pass; its
# `pre` and `offset` $\gamma G$ are already rows of the linear view, and the
# same `locoprop.gradient` as for a dense layer evaluates $\nabla J_S$.

# %%
gamma, eta = 2.0, 0.1
problems, _ = locoprop.local_problems(net, params, x, y, S(gamma=gamma, eta=eta))
problem = problems[0]  # the conv layer's (problems[1] is the dense layer's)
loss, grads = net.value_and_grad(params, x, y)
G = conv.rows(net.backward(params, trace, y).pre[0])  # dL/dA as (B |T|, c_out) rows
print(f"loss {loss:.4f}; conv local problem: pre {problem.pre.shape}, offset gamma G {problem.offset.shape}")
print(
    f"targets A* = A - gamma G: {problem.target.shape}, |gamma G| / |A| = "
    f"{np.linalg.norm(problem.offset) / np.linalg.norm(problem.pre):.2e}"
)
checks("problem.pre = A as rows", relative_error(problem.pre, conv.rows(A)), 0.0)
checks("target = A - gamma G", relative_error(problem.target, conv.rows(A) - gamma * G), EXACT)

grad_bp = conv.stack(grads[0])  # BackProp's dL/dW~, (10, 4)
checks("dL/dW~ = X~^T G (sum over examples and positions)", relative_error(grad_bp, Xt.T @ G), EXACT)
local = conv.stack(locoprop.gradient(problem, problem.anchor))
err_first = checks("grad J_S(W~_t) = gamma dL/dW~", relative_error(local, gamma * grad_bp), EXACT)
print(f"conv layer: |grad J_S(W~_t) - gamma dL/dW~| / |gamma dL/dW~| = {err_first:.1e}")

rho = 0.01
one_step, _ = locoprop.step(net, params, x, y, variant=S(gamma=gamma), solver=GD(steps=1, lr=rho))
for m in net.weight_layers:
    sgd = {k: params[m][k] - rho * gamma * grads[m][k] for k in ("W", "b")}
    checks("locoprop.step(K = 1) = SGD with lr rho gamma", relative_error(one_step[m], sgd), EXACT)
print("layers without weights keep no parameters:", one_step[1])

# %% [markdown]
# ## 3. The patch covariance and the closed form
#
# $J_S$ is a quadratic in $\tilde W$ with Hessian
# $(\tilde X^\top\tilde X + I/\eta)\otimes I_{c_{out}}$, so its minimiser
# solves one linear system (lesson 03, now on patches). With
# $C = \tilde X^\top\tilde X$ and $\tilde X\tilde W_t = A$:
#
# $$\tilde W^* = \tilde W_t + (C + I/\eta)^{-1}\tilde X^\top(A^* - A)
#   = \tilde W_t - \gamma\,(C + I/\eta)^{-1}\,\frac{\partial L}{\partial\tilde W},
#   \qquad C = \sum_n\sum_{t}\tilde x_{nt}\tilde x_{nt}^\top .$$
#
# $C$ is the (uncentred, summed) **second-moment matrix of the patches**:
# entry $((i,j),(i',j'))$ adds up $x_{s u+i,\,sv+j}\,x_{su+i',\,sv+j'}$ over all
# positions and images, i.e. how strongly two pixels at offset
# $(i'-i, j'-j)$ co-occur; its last row and column are the patches' pixel
# sums and $B|T|$. The exact LocoProp-S step is the BackProp gradient
# preconditioned by it, damped by $1/\eta$. `conv.design_gram` forms $C$,
# `locoprop.solve_exact_s` solves by Cholesky.

# %%
Cov = Xt.T @ Xt
checks("C = conv.design_gram(x)", relative_error(Cov, conv.design_gram(x)), EXACT)
spectrum = np.linalg.eigvalsh(Cov)
print(
    f"C = X~^T X~: {Cov.shape}, eigenvalues from {spectrum[0]:.3g} to {spectrum[-1]:.4g} "
    f"(condition number {spectrum[-1] / spectrum[0]:.0f}); with 1/eta = {1 / eta:g}: "
    f"{(spectrum[-1] + 1 / eta) / (spectrum[0] + 1 / eta):.0f}"
)

closed = Wt - gamma * np.linalg.solve(Cov + np.eye(Cov.shape[0]) / eta, grad_bp)
W_exact = conv.stack(locoprop.solve_exact_s(problem))
err_closed = checks(
    "solve_exact_s = W~_t - gamma (C + I/eta)^-1 dL/dW~", relative_error(W_exact, closed), EXACT
)
stationary = np.abs(conv.stack(locoprop.gradient(problem, conv.unstack(W_exact)))).max() / np.abs(local).max()
# Cholesky is backward stable: the gradient left at the computed W~* is ~ eps lambda_max |W~*|, while
# grad J_S(W~_t) = (C + I/eta)(W~_t - W~*) is led by the large eigenvalues, ~ lambda_max d0: a ratio of
# ~ eps |W~_t| / d0, 3e-14 fast and 3e-13 full (|W~_t| / d0 is printed below: ~1e2 fast, ~1e3 full).
# 1e-10 leaves a factor of 300 or more, most of kappa = cond(C + I/eta) (~1e2 fast, ~5e2 full), which a
# step leaning to the small eigenvalues would add
checks("grad J_S(W~*) = 0 (relative to grad J_S(W~_t))", stationary, 1e-10)
print(f"exact solve vs closed form: {err_closed:.1e}; |grad J_S(W~*)| / |grad J_S(W~_t)| = {stationary:.1e}")
step_exact, step_bp = W_exact - Wt, -gamma * eta * grad_bp
cos_bp = float((step_exact * step_bp).sum() / np.linalg.norm(step_exact) / np.linalg.norm(step_bp))
print(f"cosine between the exact step and the BackProp step: {cos_bp:.3f}")

# %% [markdown]
# **Inner GD.** LocoProp's released setting takes $K$ gradient steps on
# $J_S$ instead. Each step is $\tilde W \leftarrow \tilde W - \rho\,\nabla J_S$,
# a product with the same patch matrix (`Conv2D.for_inputs` keeps it: it is
# formed once per outer step). Write $\lambda_{max}$, $\lambda_{min}$ for the
# extreme eigenvalues of the Hessian's factor $C + I/\eta$. GD converges to
# $\tilde W^*$ for $\rho < 2/\lambda_{max}$, and the error along the
# eigenvector of eigenvalue $\lambda$ shrinks by $|1 - \rho\lambda|$ per step:
# the rate is set by the condition number
# $\kappa = \lambda_{max}/\lambda_{min}$, the patch covariance's once damped by
# $1/\eta$. We run GD by hand with `locoprop.gradient` for three step sizes,
# among them the best constant one, $\rho^\star = 2/(\lambda_{max} + \lambda_{min})$,
# whose rate $(\kappa - 1)/(\kappa + 1)$ bounds the error at every step.

# %%
lam_min, lam_max = spectrum[0] + 1 / eta, spectrum[-1] + 1 / eta  # eigenvalues of C + I/eta
K = 2000 if FAST else 10000
rates = {
    r"$\rho = 1/\lambda_{max}$": 1 / lam_max,
    r"$\rho = 1.9/\lambda_{max}$": 1.9 / lam_max,
    r"$\rho^\star = 2/(\lambda_{max} + \lambda_{min})$": 2 / (lam_max + lam_min),
}
d0 = np.linalg.norm(Wt - W_exact)
gd_dists = {}
for label, r in rates.items():
    W = problem.anchor
    dists = [1.0]
    for _ in range(K):
        g = locoprop.gradient(problem, W)
        W = {k: W[k] - r * g[k] for k in W}
        dists.append(np.linalg.norm(conv.stack(W) - W_exact) / d0)
    gd_dists[label] = np.array(dists)
    W_lib, _ = locoprop.solve_gd(problem, GD(steps=K, lr=r))
    checks("solve_gd = K steps of GD by hand", relative_error(W_lib, W), EXACT)
    slowest = max(abs(1 - r * lam_min), abs(1 - r * lam_max))  # the rate of the slowest eigenvector
    print(
        f"{label:<48} after 10 steps {dists[10]:.2e}, after {K}: {dists[-1]:.1e}; slowest rate "
        f"{slowest:.5f}, {np.log(10) / -np.log(slowest):.0f} steps per decade"
    )
kappa = lam_max / lam_min
bound = ((kappa - 1) / (kappa + 1)) ** np.arange(K + 1)  # the spectral norm of I - rho* (C + I/eta), per step
best = gd_dists[r"$\rho^\star = 2/(\lambda_{max} + \lambda_{min})$"]
# The bound holds in exact arithmetic. The computed distances also carry rounding: W~* and the GD
# iterates are each known to about kappa eps |W~_t| (a linear solve / a fixed point of condition
# kappa), i.e. kappa eps |W~_t| / d0 relative to the distance d0 we divide by; 10 times that is the floor.
floor = 10 * kappa * np.finfo(np.float64).eps * np.linalg.norm(Wt) / d0
print(
    f"kappa = {kappa:.1f}; |W~_t| / |W~_t - W~*| = {np.linalg.norm(Wt) / d0:.0f}; "
    f"rounding floor of the relative distances {floor:.1e}"
)
checks(
    "GD with rho*: distance <= ((kappa - 1)/(kappa + 1))^k + floor",
    max(float((best - bound).max()), 0.0),
    floor,
)
checks("GD after K steps reaches the closed form (to the floor)", best[-1], floor)

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.6), width_ratios=[1, 1.5], layout="constrained")
pixel_block = Cov[:-1, :-1] / Cov[-1, -1]  # C's pixel block divided by its corner B|T|: a mean over the rows
im = ax0.imshow(pixel_block, cmap="viridis")
for (r, c), value in np.ndenumerate(pixel_block):
    ax0.text(
        c,
        r,
        f"{value:.3f}",
        ha="center",
        va="center",
        fontsize=6.5,
        color="k" if value > 0.6 * pixel_block.max() else "w",
    )
offsets = [f"{i}{j}" for i in range(3) for j in range(3)]
ax0.set_xticks(range(9), offsets)
ax0.set_yticks(range(9), offsets)
ax0.set(xlabel="pixel (i j) of the patch", ylabel="pixel (i j) of the patch")
ax0.set_title(rf"pixel block of $C = \tilde X^\top\tilde X$, divided by $B|T| = {Xt.shape[0]}$")
fig.colorbar(im, ax=ax0, shrink=0.8)
steps_axis = np.arange(K + 1)
for (label, dists), colour in zip(gd_dists.items(), ["tab:blue", "tab:orange", "tab:green"], strict=True):
    ax1.semilogy(steps_axis, np.maximum(dists, 1e-17), color=colour, lw=2, label=f"inner GD, {label}")
ax1.semilogy(steps_axis, bound, "k:", label=r"bound for $\rho^\star$: $((\kappa-1)/(\kappa+1))^k$")
ax1.axvline(10, color="gray", ls="--", lw=1, label="$K = 10$ (the released setting's $K$)")
ax1.set(
    xlabel="inner GD step $k$",
    ylabel=r"$\|\tilde W_k - \tilde W^*\| / \|\tilde W_t - \tilde W^*\|$",
    ylim=(1e-16, 2),
)
ax1.set_title(
    rf"Conv layer, $\gamma = {gamma:g}$, $\eta = {eta:g}$, $\kappa = {kappa:.0f}$: inner GD vs the closed form"
)
ax1.grid(alpha=0.3, which="both")
ax1.legend(fontsize=9, loc="upper right")
save(fig, "08_patch_covariance_gd.png")

# %% [markdown]
# **What the figure shows.** Left, the pixel block of the patch covariance
# divided by the number of rows $B|T|$: the mean over all patches of
# $x_{ij}\,x_{i'j'}$ for two pixels of a patch. Its entries are all positive
# (ink is non-negative) and nearly constant along each diagonal: how often two
# pixels are inked together depends mostly on their offset, not on where the
# pair sits in the patch (the image statistics are nearly shift-invariant),
# and it falls off with the offset's length. Such a matrix has one large
# eigenvalue (the "mean patch", a blob of ink) and small ones for the
# high-frequency patterns, so a large condition number. Right, inner GD on
# the conv layer's $J_S$ converges linearly to the closed form (relative
# distance, log scale). The bound for $\rho^\star$ (dotted) sets the slope
# that the green curve follows: $\rho^\star$ shrinks the error along BOTH
# extreme eigenvectors at exactly the worst rate,
# $|1 - \rho^\star\lambda_{max}| = 1 - \rho^\star\lambda_{min} = (\kappa-1)/(\kappa+1)$,
# and along the intermediate eigenvalues faster (the error at
# $\lambda = 1/\rho^\star$ vanishes in one step). So the curve can at first
# fall faster than the bound, while the error along the intermediate
# eigenvalues dies out, and then runs parallel to it. The other two step sizes are limited by the
# smallest eigenvalue, with rate $1 - \rho\lambda_{min}$:
# $\rho = 1.9/\lambda_{max}$ has nearly the rate of $\rho^\star$ there,
# $1 - 1.9/\kappa$ against $1 - 2/(\kappa+1)$, and $\rho = 1/\lambda_{max}$
# only $1 - 1/\kappa$, about $2.3\,\kappa$ steps per decade (printed above):
# it is still falling at $k = K$. The two faster curves level off far
# below 1e-8: at the rounding of $\tilde W$ itself, whose norm is over a
# hundred times the step $\|\tilde W_t - \tilde W^*\|$ we divide by
# (printed above), amplified by up to $\kappa$ in the fixed point. After
# $K = 10$ steps (dashed line) GD has barely moved along the low-variance
# patch directions: the exact solve is the whole preconditioned step that $K$
# inner steps only begin.
#
# ## 4. KFC: the same input factor, another output factor
#
# K-FAC approximates the Fisher block of a dense layer by a Kronecker product
# $\Omega\otimes\Gamma$ of the input second moment $\Omega$ and the
# covariance $\Gamma$ of the pre-activation gradients. KFC (Grosse & Martens,
# ICML 2016) extends it to convolutions by treating positions as extra
# samples (spatial homogeneity and uncorrelated derivatives across
# positions). With
# $\hat g_{nt} = B\,g_{nt}$ the per-example gradient of the loss at position
# $t$ (our $L$ is a batch mean), the library's factors (`optim.KFAC`,
# `docs/math.md`, section 8) are
#
# $$\Omega = \frac1B\sum_n\sum_{t}\tilde x_{nt}\tilde x_{nt}^\top = \frac{C}{B},
#   \qquad
#   \Gamma = \frac1B\sum_n\frac1{|T|}\sum_{t}\hat g_{nt}\hat g_{nt}^\top ,$$
#
# the patch covariance **summed** over positions and the gradient covariance
# **averaged** over positions ($\hat g$ from the data's labels with
# `fisher="empirical"`; `fisher="sampled"` draws the labels from the model,
# `fisher="expected"` draws nothing and averages over the model's labels
# exactly, one backward pass per output unit). KFC's step, with a damping
# $\lambda_\Omega$, $\lambda_\Gamma$ on each factor, and LocoProp-S's exact step side by side (row-major
# $\mathrm{vec}$, $\nabla = \partial L/\partial\tilde W$):
#
# $$\Delta_{KFC} = -\alpha\,(\Omega + \lambda_\Omega I)^{-1}\,\nabla\,(\Gamma + \lambda_\Gamma I)^{-1},
#   \qquad
#   \Delta_{S} = -\frac{\gamma}{B}\,(\Omega + \tfrac{1}{\eta B} I)^{-1}\,\nabla\; I .$$
#
# The input side is the **same** patch covariance (LocoProp's damping
# $1/\eta$ on $C$ is $1/(\eta B)$ on $\Omega$); the output side is the
# gradient covariance $\Gamma$ for KFC and the identity for LocoProp-S. The
# difference in kind: $(C + I/\eta)\otimes I$ is the **exact** Hessian of
# LocoProp-S's local problem, whereas $\Omega\otimes\Gamma$ is an
# approximation of the Fisher of $L$. It is exact only in a special case
# (`docs/math.md`, section 8): for a deep linear CNN with **squared error**
# and one position per layer, $\Omega\otimes\Gamma$ with the **expected**
# Fisher is the layer's Gauss-Newton block. With several positions, or with
# the empirical Fisher used here (data labels, not the model's), it is an
# approximation (`tests/test_conv_second_order.py`). LocoProp-S with the
# output factor set to $I$ is Benzing's FOOF, which the library also has; its
# input factor is $C$ divided by the number of rows $B|T|$, i.e.
# $\Omega/|T|$, so
# `FOOF(lr = gamma / (B|T|), damping = 1 / (eta B|T|), decay = 0)` takes
# LocoProp-S's exact step.

# %%
R = Xt.shape[0]  # B |T| rows
kfac = optim.KFAC(net, lr=1.0, damping=1e-2, momentum=0.0, decay=0.0, fisher="empirical")
kfac_params, kstate, _ = kfac.step(params, x, y, kfac.init(params))
Omega, Gamma = kstate.A[0], kstate.G[0]
g_hat = B * G  # per-example gradients, one row per example and position
checks("KFC Omega = X~^T X~ / B (library's state.A)", relative_error(Omega, Cov / B), EXACT)
checks(
    "KFC Gamma = sum g^ g^T / (B |T|) (library's state.G)", relative_error(Gamma, g_hat.T @ g_hat / R), EXACT
)
dense_kfc = kfac.to_dense(kstate, 0)  # (Omega + pi sqrt(lambda) I) kron (Gamma + sqrt(lambda)/pi I)
step_kfc = conv.stack(kfac_params[0]) - Wt
want = -np.linalg.solve(dense_kfc, grad_bp.reshape(-1)).reshape(grad_bp.shape)
# two solves of the same damped Kronecker system (the library's two factor solves, ours one dense 40x40
# LU) of condition number cond(Omega_l) cond(Gamma_l) ~ 30 here: they agree to ~ 30 eps ~ 1e-14 << 1e-10
checks("KFAC step = -lr (Omega_l kron Gamma_l)^-1 vec dL/dW~", relative_error(step_kfc, want), 1e-10)

foof = optim.FOOF(net, lr=gamma / R, damping=1 / (eta * R), momentum=0.0, decay=0.0)
foof_params, _, _ = foof.step(params, x, y, foof.init(params))
# the same system (C + I/eta) scaled by 1/R, solved twice: condition kappa (~1e2 fast, ~5e2 full) so the
# steps agree to ~ kappa eps ~ 1e-13, and W~ compared here is 1e2-1e3 times the step: << 1e-10
checks(
    "FOOF(decay 0) step = LocoProp-S exact step", relative_error(conv.stack(foof_params[0]), W_exact), 1e-10
)

ev_omega, ev_gamma = np.linalg.eigvalsh(Omega), np.linalg.eigvalsh(Gamma)
print(
    f"Omega (10x10): eigenvalues {ev_omega[0]:.3g} .. {ev_omega[-1]:.4g}, condition number {ev_omega[-1] / ev_omega[0]:.0f}"
)
print(
    f"Gamma ({c_out}x{c_out}):  eigenvalues {ev_gamma[0]:.3g} .. {ev_gamma[-1]:.3g}, condition number {ev_gamma[-1] / ev_gamma[0]:.1f}"
)

# %% [markdown]
# **Comparing the preconditioners.** Both steps share the input side; fix
# it at LocoProp's damping $\lambda_\Omega = 1/(\eta B)$ and vary KFC's output
# damping $\lambda_\Gamma$ relative to $\mu_\Gamma = \mathrm{tr}\,\Gamma/c_{out}$
# (the mean eigenvalue). As $\lambda_\Gamma\to\infty$,
# $(\Gamma + \lambda_\Gamma I)^{-1} \to I/\lambda_\Gamma$ and KFC's direction
# becomes LocoProp-S's; at small $\lambda_\Gamma$ it is LocoProp-S's
# direction whitened on the output side by $\Gamma^{-1}$. The cosine between
# the two directions measures how much the output factor matters; the cosine
# of each with the BackProp direction $-\nabla$ how much the shared input
# factor does.


# %%
def cosine(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


lam_omega = 1 / (eta * B)
left = np.linalg.solve(Omega + lam_omega * np.eye(Omega.shape[0]), grad_bp)  # (Omega + l I)^-1 dL/dW~
# (Omega + I/(eta B)) = (C + I/eta)/B has condition kappa (~1e2 fast, ~5e2 full): the two solves agree to
# ~ kappa eps; W~* - W~_t carries W~*'s rounding, eps |W~| ~ 1e2-1e3 eps |step|: ~ 1e-13 << 1e-10
checks(
    "(gamma/B)(Omega + I/(eta B))^-1 dL/dW~ = the exact S step",
    relative_error(-gamma / B * left, W_exact - Wt),
    1e-10,
)
mu_gamma = np.trace(Gamma) / c_out
ratios = np.logspace(-3, 3, 25 if FAST else 61)
cos_kfc_s, cos_kfc_bp = [], []
for ratio in ratios:
    d_kfc = -np.linalg.solve(Gamma + ratio * mu_gamma * np.eye(c_out), left.T).T  # Gamma symmetric
    cos_kfc_s.append(cosine(d_kfc, -left))
    cos_kfc_bp.append(cosine(d_kfc, -grad_bp))
cos_s_bp = cosine(-left, -grad_bp)
print(f"cos(LocoProp-S step, -grad) = {cos_s_bp:.3f}")
for ratio in (1e-3, 1e-1, 1.0, 10.0):
    k = int(np.argmin(np.abs(ratios - ratio)))
    print(
        f"lambda_Gamma = {ratios[k]:g} x mean eig(Gamma): cos(KFC, LocoProp-S) = {cos_kfc_s[k]:.4f}, "
        f"cos(KFC, -grad) = {cos_kfc_bp[k]:.3f}"
    )
# the library's factored damping with the same input side: pi sqrt(lambda) = lam_omega
pi = np.sqrt((np.trace(Omega) / Omega.shape[0]) / mu_gamma)
lib_ratio = (lam_omega / pi**2) / mu_gamma
print(
    f"KFAC's pi-split damping with lambda_Omega = 1/(eta B) puts lambda_Gamma at {lib_ratio:.3g} x mean eig(Gamma)"
)

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
ax0.semilogy(
    np.arange(1, 11),
    ev_omega[::-1] / ev_omega.mean(),
    "o-",
    label=r"$\Omega$ (patch covariance, $10\times 10$)",
)
ax0.semilogy(
    np.arange(1, c_out + 1),
    ev_gamma[::-1] / ev_gamma.mean(),
    "s-",
    ms=8,
    label=rf"$\Gamma$ (gradient covariance, ${c_out}\times{c_out}$)",
)
ax0.axhline(1, color="k", ls=":", label="$I$ (LocoProp-S's output factor)")
ax0.axhline(
    lam_omega / ev_omega.mean(), color="tab:blue", ls="--", lw=1, label=r"damping $1/(\eta B)$ on $\Omega$"
)
ax0.set(
    xlabel="eigenvalue index (largest first)",
    ylabel="eigenvalue / mean eigenvalue",
    title="The Kronecker factors of the conv layer",
)
ax0.grid(alpha=0.3, which="both")
ax0.legend(fontsize=9)
ax1.semilogx(ratios, cos_kfc_s, lw=2, label="cos(KFC step, LocoProp-S step)")
ax1.semilogx(ratios, cos_kfc_bp, lw=2, label="cos(KFC step, BackProp step)")
ax1.axhline(cos_s_bp, color="tab:green", ls="--", lw=2, label="cos(LocoProp-S step, BackProp step)")
ax1.axvline(lib_ratio, color="gray", ls=":", label=r"KFAC's $\pi$-split at the same $\lambda_\Omega$")
ax1.set(
    xlabel=r"KFC's output damping $\lambda_\Gamma$ / mean eigenvalue of $\Gamma$",
    ylabel="cosine",
    title=rf"Same input side $(\Omega + I/(\eta B))^{{-1}}$, $\eta = {eta:g}$: output side $\Gamma$ vs $I$",
    ylim=(0, 1.02),
)
ax1.grid(alpha=0.3, which="both")
ax1.legend(fontsize=9, loc="lower right")
save(fig, "08_kfc_vs_locoprop.png")

# %% [markdown]
# **What the figure shows.** Left, the eigenvalues of the two Kronecker
# factors of the conv layer, each divided by its mean. The patch covariance
# $\Omega$ spans three orders of magnitude; LocoProp-S and KFC both invert it
# (up to the damping, dashed), which is where most of the preconditioning
# happens. The output factor $\Gamma$ is a small $c_{out}\times c_{out}$
# matrix whose eigenvalues lie within a factor of a few of each other: close
# to a multiple of the identity, which is LocoProp-S's output factor (dotted).
# Right, with the input side fixed: the KFC and LocoProp-S directions are
# nearly parallel for every output damping (cosine near 1, exactly 1 in the
# limit of a large $\lambda_\Gamma$), while both are far from the BackProp
# direction (green dashed for LocoProp-S): the input factor, which the two
# share, turns the gradient much more than the output factor, on which they
# differ. The gap can be larger on a layer with more channels or more
# anisotropic gradients (try it: raise the conv layer's 4 channels in
# section 1 and rerun); and KFC's $\Gamma$ changes
# from batch to batch, while LocoProp-S's output side is always $I$, because
# its local loss is the squared error on the pre-activations.
#
# ## Summary of the checks
#
# Each identity of this lesson was asserted where it was computed; here they
# are in one line, with the largest error met for each tolerance.

# %%
checks.report()

# %% [markdown]
# ## Exercises
#
# 1. `nn.col2im` is the adjoint of `nn.im2col`: check
#    $\langle \mathrm{im2col}(X), Q\rangle = \langle X, \mathrm{col2im}(Q)\rangle$
#    for random $X$ and $Q$, and that the conv layer's input gradient
#    (`conv.backward_from_pre`) is $\mathrm{col2im}(G\,W_{mat}^\top)$.
# 2. Replace the convolution by `Conv2D(1, 4, 3, stride=2, padding="same")`.
#    Predict the shape of its patch matrix, then check it and check that the
#    first-step identity $\nabla J_S(\tilde W_t) = \gamma\,\partial L/\partial\tilde W$
#    still holds.
# 3. A $1\times 1$ convolution is a dense layer applied to every pixel. Take
#    the tanh maps `trace.post[0]` as inputs of `Conv2D(4, 3, 1)` with a random
#    $G$, and check that the exact LocoProp-S solution of its local problem is
#    that of a dense layer whose batch is the $B H_{out} W_{out}$ pixels.

# %% tags=["hide-input"]
# Solution to exercise 1: im2col copies pixels into rows and col2im adds rows back onto pixels, so
# <im2col(X), Q> and <X, col2im(Q)> are the same products summed in another order.
geometry = (conv.kernel, conv.stride, conv.pads(SIZE, SIZE))
X_r = rng.standard_normal(x.shape)
Q_r = rng.standard_normal(P.shape)
lhs, rhs = float((im2col(X_r, *geometry) * Q_r).sum()), float((X_r * col2im(Q_r, x.shape, *geometry)).sum())
scale = float(np.abs(im2col(X_r, *geometry) * Q_r).sum())
print(f"<im2col(X), Q> = {lhs:.12f}, <X, col2im(Q)> = {rhs:.12f}")
# the same ~B|T| k^2 products in another order: rounding ~ n eps of the sum of their magnitudes
assert abs(lhs - rhs) <= 1e-12 * scale
g_x, _ = conv.backward_from_pre(params[0], trace.cache(0), conv.unrows(G, x))
err = relative_error(g_x, col2im(G @ conv.weight_matrix(params[0]).T, x.shape, *geometry))
print(f"input gradient = col2im(G W_mat^T): relative error {err:.1e}")
# the library adds the kernel offsets' contributions in the same order as col2im: rounding only
assert err <= EXACT

# %% tags=["hide-input"]
# Solution to exercise 2: "same" padding with stride 2 gives ceil(H/2) x ceil(W/2) positions,
# so P has B ceil(H/2)^2 rows of 3*3*1 = 9 columns.
strided = nn.Conv2D(1, 4, 3, stride=2, padding="same", transfer="tanh", bias_init="glorot")
Ho2, Wo2, _ = strided.output_shape((SIZE, SIZE, 1))
net2 = nn.Sequential(
    [strided, nn.Flatten(), nn.Dense(Ho2 * Wo2 * 4, 4, "softmax")],
    "softmax_cross_entropy",
    in_shape=(SIZE, SIZE, 1),
)
params2 = net2.init(seed=1)
P2 = strided.patches(x)
print(
    f"padding {strided.pads(SIZE, SIZE)} (top, bottom, left, right): P {P2.shape}, "
    f"predicted ({B} * {-(-SIZE // 2)}^2, 9) = ({B * (-(-SIZE // 2)) ** 2}, 9)"
)
assert P2.shape == (B * (-(-SIZE // 2)) ** 2, 9)
prob2 = locoprop.local_problems(net2, params2, x, y, S(gamma=gamma))[0][0]
_, grads2 = net2.value_and_grad(params2, x, y)
err = relative_error(locoprop.gradient(prob2, prob2.anchor), {k: gamma * grads2[0][k] for k in ("W", "b")})
print(f"stride 2, same padding: |grad J_S(W~_t) - gamma dL/dW~| / |gamma dL/dW~| = {err:.1e}")
# X~^T (gamma G) against gamma (X~^T G): the same products, rounding only
assert err <= EXACT

# %% tags=["hide-input"]
# Solution to exercise 3: with k = 1 each patch is one pixel's c_in values, so P is the input
# reshaped to (B H W, c_in): the conv's linear view is a dense layer's on the pixels.
pointwise = nn.Conv2D(4, 3, 1)
X1 = trace.post[0]  # (B, H_out, W_out, 4)
anchor1 = pointwise.init(rng, X1.shape[1:], np.float64, None)[0]
pre1 = pointwise.linear(X1, anchor1)
offset1 = gamma * rng.standard_normal(pre1.shape) / B
as_conv = locoprop.LocalProblem.from_offset(X1, pre1, offset1, None, "S", anchor1, eta, layer=pointwise)
pixels = X1.reshape(-1, 4)
as_dense = locoprop.LocalProblem.from_offset(
    pixels, pre1, offset1, None, "S", {"W": anchor1["W"].reshape(4, 3), "b": anchor1["b"]}, eta
)
W_conv = pointwise.stack(locoprop.solve_exact_s(as_conv))
W_dense = nn.stack(locoprop.solve_exact_s(as_dense))
err = relative_error(W_conv, W_dense)
print(
    f"1x1 conv vs dense on {pixels.shape[0]} pixels: P equal: {bool((pointwise.patches(X1) == pixels).all())}, "
    f"exact S solutions differ by {err:.1e}"
)
# the same patch matrix and the same Cholesky solve on the same numbers: rounding only
assert err <= EXACT

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/locoprop/test_conv_locoprop.py::test_the_s_exact_solution_on_a_conv_layer_is_the_closed_form_on_patches)
# A random CNN on (5, 4, 2) images (conv 3x2 with stride 1-2 and padding 0, 1 or "same" -> avg pool 1 ->
# conv 1x1 -> flatten -> dense softmax; tanh or sigmoid; B 1-4), eta in [0.1, 10], gamma = 1.5: the
# exact LocoProp-S step of the first conv layer is -(C + I/eta)^-1 X~^T (gamma G) with C the patch
# covariance summed by explicit loops over examples and positions (no im2col), to 1e-9 relative:
# cond(C + I/eta) <= 1 + eta lambda_max(C) stays below ~1e4 on these tiny inputs in [0, 1], so two
# Cholesky/LU solves of sums taken in another order agree to ~1e-12. Negative control: the same
# sums with the kernel offsets reversed give another step.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)
IN_SHAPE = (5, 4, 2)
first_c = nn.Conv2D(
    2,
    3,
    (3, 2),
    stride=int(draw.integers(1, 3)),
    padding=[0, 1, "same"][int(draw.integers(3))],
    transfer=str(draw.choice(["tanh", "sigmoid"])),
)
Ho_c, Wo_c, _ = first_c.output_shape(IN_SHAPE)
net_c = nn.Sequential(
    [
        first_c,
        nn.AvgPool2D(1),
        nn.Conv2D(3, 2, 1, transfer=first_c.transfer),
        nn.Flatten(),
        nn.Dense(Ho_c * Wo_c * 2, 3, "softmax"),
    ],
    "softmax_cross_entropy",
    in_shape=IN_SHAPE,
)
B_c = int(draw.integers(1, 5))
params_c = net_c.init(seed=int(draw.integers(1000)))
x_c, y_c = draw.random((B_c, *IN_SHAPE)), draw.integers(0, 3, B_c)
eta_c = float(draw.uniform(0.1, 10.0))
problem_c = locoprop.local_problems(net_c, params_c, x_c, y_c, S(gamma=1.5, eta=eta_c))[0][0]


def loop_covariance(images, layer, reverse=False):
    """sum over examples and output positions of x~ x~^T, the patches gathered by explicit loops."""
    top, bottom, left_, right = layer.pads(*images.shape[1:3])
    padded = np.pad(images, ((0, 0), (top, bottom), (left_, right), (0, 0)))
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    offsets = [(i, j) for i in range(kh) for j in range(kw)]
    total = np.zeros((kh * kw * layer.c_in + 1,) * 2)
    for n in range(images.shape[0]):
        for u in range(Ho_c):
            for v in range(Wo_c):
                row = [
                    padded[n, sh * u + i, sw * v + j, c]
                    for i, j in (offsets[::-1] if reverse else offsets)
                    for c in range(layer.c_in)
                ]
                row = np.array([*row, 1.0])
                total += np.outer(row, row)
    return total


rhs_c = first_c.stack(first_c.linear_transpose(x_c, problem_c.offset))
C_c = loop_covariance(x_c, first_c)
D_c = -np.linalg.solve(C_c + np.eye(C_c.shape[0]) / eta_c, rhs_c)
exact_c = first_c.stack(locoprop.solve_exact_s(problem_c)) - first_c.stack(params_c[0])
assert relative_error(exact_c, D_c) <= 1e-9
C_rev = loop_covariance(x_c, first_c, reverse=True)
assert relative_error(exact_c, -np.linalg.solve(C_rev + np.eye(C_c.shape[0]) / eta_c, rhs_c)) > 1e-6
print(
    f"seed {seed}: {first_c!r}, B = {B_c}, eta = {eta_c:.2f}: the exact S step on the conv layer is "
    f"the closed form on its patches ({relative_error(exact_c, D_c):.1e})"
)
