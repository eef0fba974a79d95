# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 01 · BackProp by hand, checked three ways
#
# **Prerequisites:** lesson 00; the chain rule and matrix products.
#
# **Time:** about 30 minutes
#
# **You will be able to:** derive a dense layer's gradients by hand and prove them right in three independent ways.
#
# ## What you will learn
#
# - the dense layer's forward pass $A = XW + b$, $Y = f(A)$ and its backward
#   pass from $G = \partial L/\partial A$, written out with
#   the layer object `nn.Dense(d_in, d_out, f)`, its `forward` and
#   `backward_from_pre`;
# - the MLP **trace** (every layer's input $X_m$, pre-activation $A_m$ and
#   output $Y_m$) and why `grads.pre[m]` $= G_m = \partial L/\partial A_m$ is
#   the quantity LocoProp builds its targets from;
# - three independent checks of every gradient: central finite differences
#   (`locograd.testing.numerical_grad`), the dot-product test
#   (`locograd.testing.check_vjp`) and a reverse-mode tape
#   (`locograd.autodiff.grad`);
# - why gradient checks run in float64: the finite-difference error against
#   the step size $\epsilon$ in float32 and float64 (a figure).
#
# Conventions (see `docs/math.md`, section 1): batch-major rows, $X$ is
# $(B, d_{in})$, $W$ is $(d_{in}, d_{out})$, and the loss $L$ is the **mean**
# over the batch of a per-example loss summed over output units, so
# $\partial L/\partial A$ carries a factor $1/B$.

# %%

import matplotlib.pyplot as plt
import numpy as np

import locograd as lg
from locograd import autodiff as ad
from locograd import nn
from locograd.testing import check_vjp, numerical_grad, relative_error
from locograd.tutorial import FAST, Checks, save

rng = np.random.default_rng(0)
checks = Checks()  # every identity below is asserted here; one summary is printed at the end
EXACT = 1e-12  # the hand formulas vs the library: the same float64 sums, so rounding only
FD = 1e-6  # a central difference is accurate to ~1e-9 here (section 4 shows why)

# %% [markdown]
# ## 1. One dense layer, forward
#
# A layer object holds its sizes and its transfer $f$; its parameters are a
# dict `{"W": (d_in, d_out), "b": (d_out,)}` that we keep. `forward` returns
# the output and a `LayerCache(inputs, pre, post)`: exactly the three arrays
# $X$, $A = XW + b$ and $Y = f(A)$.

# %%
B, d_in, d_out = 4, 3, 2
params = {"W": rng.standard_normal((d_in, d_out)), "b": rng.standard_normal(d_out)}
X = rng.standard_normal((B, d_in))
layer = nn.Dense(d_in, d_out, "tanh")
Y, cache = layer.forward(params, X)

A_by_hand = X @ params["W"] + params["b"]
checks("A = X W + b", relative_error(cache.pre, A_by_hand), EXACT)
checks("Y = tanh(A)", relative_error(cache.post, np.tanh(A_by_hand)), EXACT)
print("shapes: X", cache.inputs.shape, " A", cache.pre.shape, " Y", cache.post.shape)

# %% [markdown]
# ## 2. One dense layer, backward
#
# Given $G = \partial L/\partial A$ (same shape as $A$), the chain rule for
# $A = XW + b$ gives
#
# $$\frac{\partial L}{\partial W} = X^\top G,\qquad
#   \frac{\partial L}{\partial b} = \sum_n G_n,\qquad
#   \frac{\partial L}{\partial X} = G W^\top .$$
#
# Take the loss $L = \frac1B\sum_n u_n\cdot y_n$ for a fixed random $U$, so
# that $\partial L/\partial Y = U/B$ and
# $G = \partial L/\partial A = f'(A)\odot U/B$ (elementwise $f$).

# %%
U = rng.standard_normal((B, d_out))


def layer_loss(p, x):
    return float((layer.forward(p, x)[0] * U).sum() / B)


G = layer.pre_activation_grad(cache, U / B)  # f'(A) * dL/dY
checks("G = f'(A) U / B", relative_error(G, (1 - np.tanh(cache.pre) ** 2) * U / B), EXACT)
dX, grads = layer.backward_from_pre(params, cache, G)
checks("dL/dW = X^T G", relative_error(grads["W"], X.T @ G), EXACT)
checks("dL/db = sum_n G_n", relative_error(grads["b"], G.sum(0)), EXACT)
checks("dL/dX = G W^T", relative_error(dX, G @ params["W"].T), EXACT)

# %% [markdown]
# ### Check 1: central finite differences
#
# `numerical_grad(fn, x, eps)` perturbs one coordinate at a time,
# $\partial f/\partial x_i \approx \frac{f(x+\epsilon e_i) - f(x-\epsilon e_i)}{2\epsilon}$.
# It accepts trees (the parameter dict) as well as arrays.

# %%
num_p = numerical_grad(lambda p: layer_loss(p, X), params)
num_x = numerical_grad(lambda x: layer_loss(params, x), X)
checks("layer dL/dW, dL/db vs finite differences", relative_error(num_p, grads), FD)
checks("layer dL/dX vs finite differences", relative_error(num_x, dX), FD)

# %% [markdown]
# ### Check 2: the dot-product test
#
# Finite differences cost two evaluations *per coordinate*. The dot-product
# test costs two per random direction, whatever the size: for a function
# $y = \phi(x)$ with Jacobian $J$ and a claimed vector-Jacobian product
# $u \mapsto J^\top u$, draw random $u, v$ and compare
#
# $$\langle u, Jv\rangle \approx \Big\langle u, \frac{\phi(x+\epsilon v) - \phi(x-\epsilon v)}{2\epsilon}\Big\rangle
#   \quad\text{with}\quad \langle J^\top u, v\rangle .$$
#
# We test the map $X \mapsto A$ (its VJP is $G \mapsto GW^\top$), the map
# $W \mapsto A$ ($G \mapsto X^\top G$), and every transfer's `vjp`.

# %%
linear = nn.Dense(d_in, d_out)  # f = identity: Y = A
err_x = check_vjp(
    lambda x: linear.forward(params, x)[0],
    lambda x, u: linear.backward_from_pre(params, linear.forward(params, x)[1], u)[0],
    X,
)
err_w = check_vjp(
    lambda p: linear.forward(p, X)[0],
    lambda p, u: linear.backward_from_pre(p, linear.forward(p, X)[1], u)[1],
    params,
)
checks("dot-product test X -> A", err_x, FD)
checks("dot-product test (W, b) -> A", err_w, FD)
a = rng.standard_normal((5, 4))
for name in ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]:
    t = lg.transfer.get(name)
    checks("dot-product test of a transfer's vjp", check_vjp(t.f, t.vjp, a), FD)

# %% [markdown]
# ## 3. The MLP trace and $G_m = \partial L/\partial A_m$
#
# `net.forward` returns a `Trace(inputs, pre, post)` with one entry per layer;
# `net.backward` runs the same recursion as above from the output down and
# returns `Grads(W, b, pre, loss)`. The entry `grads.pre[m]` is
# $G_m = \partial L/\partial A_m$: BackProp gets $\partial L/\partial W_m = X_m^\top G_m$
# from it, and LocoProp builds its layer targets from it.
#
# The output loss is the matching loss of the output transfer (here sigmoid
# cross-entropy for a sigmoid output), so the last $G$ is simply
# $(f(A_{M-1}) - Y)/B$.

# %%
net = lg.MLP([4, 6, 5, 3], ["tanh", "relu", "sigmoid"], "sigmoid_cross_entropy")
params_net = net.init(seed=1, bias="glorot")
Bn = 7
x = rng.standard_normal((Bn, 4))
y = rng.random((Bn, 3))  # targets in [0, 1]
trace = net.forward(params_net, x)
grads_net = net.backward(params_net, trace, y)
for m in range(net.num_layers):
    print(
        f"layer {m} ({net.transfers[m].name:>7}): X {trace.inputs[m].shape}  A {trace.pre[m].shape}"
        f"  Y {trace.post[m].shape}  G {grads_net.pre[m].shape}"
    )
print("loss L =", float(grads_net.loss))
checks(
    "last G = (sigmoid(A) - y)/B",
    relative_error(grads_net.pre[-1], (lg.transfer.logistic(trace.pre[-1]) - y) / Bn),
    EXACT,
)
for m in range(net.num_layers):
    checks("dL/dW_m = X_m^T G_m", relative_error(grads_net.W[m], trace.inputs[m].T @ grads_net.pre[m]), EXACT)

# %% [markdown]
# To check $G_m$ itself by finite differences, write the loss as a function of
# the pre-activation $A_m$: run the rest of the network from $A_m$ on.

# %%


def loss_from_pre(m, A):
    h = net.transfers[m].f(A)
    for k in range(m + 1, net.num_layers):
        A = h @ params_net[k]["W"] + params_net[k]["b"]
        h = net.transfers[k].f(A)
    return float(net.loss_fn.per_example(A, y).mean())


for m in range(net.num_layers):
    num_G = numerical_grad(lambda A, m=m: loss_from_pre(m, A), trace.pre[m])
    checks("G_m vs finite differences of L(A_m)", relative_error(num_G, grads_net.pre[m], floor=1e-8), FD)

num_params = numerical_grad(lambda p: net.loss(p, x, y), params_net)
checks("network dL/dW, dL/db vs finite differences", relative_error(num_params, grads_net.as_params()), FD)

# %% [markdown]
# ### Check 3: the tape
#
# `locograd.autodiff` is a small reverse-mode tape that shares no derivative
# rule with the hand-written code: its `tanh`, `relu`, `softplus` are
# composed from elementary primitives. Writing the same network on `Tensor`s
# and asking `ad.grad` for the gradient gives a third, independent answer.

# %%


def tape_loss(p, x, y):
    h = x
    acts = [ad.tanh, ad.relu, ad.identity]
    for layer, act in zip(p, acts, strict=True):
        a = h @ layer["W"] + layer["b"]
        h = act(a)
    # sigmoid cross-entropy on the logits a, summed over units, mean over the batch
    return (ad.softplus(a) - y * a).sum() / x.shape[0]


tape_grads = ad.grad(tape_loss)(params_net, x, y)
checks("tape vs hand-written backward", relative_error(tape_grads, grads_net.as_params()), EXACT)

# %% [markdown]
# Three routes, one answer: the hand-written backward pass agrees with finite
# differences to ~1e-9 (the accuracy of a central difference) and with the
# tape to ~1e-16 (rounding); the summary at the end of the lesson prints the
# largest errors met.
#
# ## 4. Why float64 for gradient checks
#
# A central difference has two errors: truncation, $O(\epsilon^2)$, and
# rounding, about $\varepsilon_{mach}\,|L| / \epsilon$, because
# $L(x\pm\epsilon e_i)$ are each rounded to relative precision
# $\varepsilon_{mach}$ before they are subtracted. The best step balances the
# two at $\epsilon \approx \varepsilon_{mach}^{1/3}$ and leaves an error of
# about $\varepsilon_{mach}^{2/3}$: ~1e-11 in float64
# ($\varepsilon_{mach}\approx 2\cdot10^{-16}$) but only ~1e-5 in float32
# ($\approx 1.2\cdot10^{-7}$), and far worse at the wrong $\epsilon$. We
# measure it on the network above: the same numbers cast to float32, the exact
# reference being the float64 hand-written gradient.

# %%
eps_grid = np.logspace(-10, -0.5, 9 if FAST else 20)
params32 = [{k: v.astype(np.float32) for k, v in layer.items()} for layer in params_net]
x32, y32 = x.astype(np.float32), y.astype(np.float32)
exact = grads_net.as_params()
errors = {"float64": [], "float32": []}
for eps in eps_grid:
    g64 = numerical_grad(lambda p: net.loss(p, x, y), params_net, eps=eps)
    g32 = numerical_grad(lambda p: net.loss(p, x32, y32), params32, eps=eps)
    errors["float64"].append(relative_error(g64, exact))
    errors["float32"].append(relative_error(g32, exact))
for dt in errors:
    i = int(np.argmin(errors[dt]))
    print(
        f"{dt}: best eps {eps_grid[i]:.1e}, relative error {errors[dt][i]:.1e}; at eps=1e-6: "
        f"{np.interp(-6, np.log10(eps_grid), errors[dt]):.1e}"
    )

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
for dt, marker in (("float64", "o"), ("float32", "s")):
    ax.loglog(eps_grid, errors[dt], marker + "-", label=f"measured, {dt}")
    mach = np.finfo(dt).eps
    ax.axvline(mach ** (1 / 3), color="C0" if dt == "float64" else "C1", ls=":", lw=1)
ax.loglog(eps_grid, eps_grid**2, "k--", lw=1, label=r"truncation $\propto\epsilon^2$")
ax.set_ylim(1e-12, 10)
ax.set_xlabel(r"finite-difference step $\epsilon$")
ax.set_ylabel("max relative error of the gradient")
ax.set_title("Central differences: float32 vs float64\n(dotted lines: $\\varepsilon_{mach}^{1/3}$)")
ax.grid(alpha=0.3, which="both")
ax.legend()
save(fig, "01_fd_error_vs_eps.png")

# %% [markdown]
# **What the figure shows.** The error of the central-difference gradient
# against the step $\epsilon$ (both axes logarithmic). Right of each minimum
# the curves follow the truncation line $\epsilon^2$; left of it rounding
# dominates and the error grows like $1/\epsilon$. The float64 curve reaches
# ~1e-10 near $\epsilon\approx 10^{-5}$ (the dotted line marks
# $\varepsilon_{mach}^{1/3}$); the float32 curve bottoms out at a few times
# 1e-4 near $\epsilon\approx 10^{-3}$, and at the float64-friendly
# $\epsilon = 10^{-6}$ its error is of order one (the two evaluations differ
# by less than their rounding). A
# float32 gradient check can therefore neither confirm a correct gradient
# tightly nor catch a small bug, which is why every identity check in locograd
# runs in float64.
#
# ## Summary of the checks
#
# Every identity of this lesson was asserted where it was computed (the
# lesson stops at the first one that fails); here they are in one line, with
# the largest error met for each tolerance: the hand formulas agree with the
# library to rounding, the finite differences and dot-product tests to their
# own accuracy (~1e-9).

# %%
checks.report()

# %% [markdown]
# ## Exercises
#
# 1. Plant a bug: in a copy of the layer's backward pass
#    ($\partial L/\partial W = X^\top G$, $\partial L/\partial b = \sum_n G_n$,
#    $\partial L/\partial X = G W^\top$) replace `G.sum(0)` by `G.mean(0)`, and
#    watch which of the three checks catch it, and by how much.
# 2. Change the loss to `"softmax_cross_entropy"` (last activation `softmax`)
#    and integer labels `y = rng.integers(0, 3, Bn)`; verify that the last
#    `grads.pre` is `(softmax(A) - onehot(y)) / B`.
# 3. Write the tape version of `net.backward` for a network with a `sigmoid`
#    hidden layer using `ad.sigmoid`, and compare to `net.backward`.

# %% tags=["hide-input"]
# Solution to exercise 1: only dL/db is wrong, by the factor 1/B, and all three checks see it.


def buggy_backward(p, x, G):
    """(dL/dX, {dL/dW, dL/db}) with the planted bug: the mean over the batch instead of the sum."""
    return G @ p["W"].T, {"W": x.T @ G, "b": G.mean(0)}


_, buggy = buggy_backward(params, X, G)
tape_layer = ad.grad(lambda p: (ad.tanh(X @ p["W"] + p["b"]) * U).sum() / B)(params)
err_fd = relative_error(num_p, buggy)
err_tape = relative_error(tape_layer, buggy)
print(f"bug seen by finite differences: relative error {err_fd:.2f} (tolerance {FD:.0e})")
print(f"bug seen by the tape:           relative error {err_tape:.2f} (tolerance {EXACT:.0e})")
try:
    check_vjp(
        lambda p: linear.forward(p, X)[0],
        lambda p, u: buggy_backward(p, X, u)[1],
        params,
    )
    caught = None
except AssertionError as error:
    caught = str(error)
print("bug seen by the dot-product test:", caught)
# the bug scales dL/db by 1/B = 1/4: an error of order one, far above each check's tolerance
# (finite differences 1e-6, the tape 1e-12), so each check must fail by orders of magnitude
assert err_fd > 1e3 * FD and err_tape > 1e3 * EXACT
assert caught is not None and "relative error" in caught
# the correct backward pass passes the same three checks (sections 2 and 3)
assert relative_error(tape_layer, grads) <= EXACT and relative_error(num_p, grads) <= FD

# %% tags=["hide-input"]
# Solution to exercise 2: integer labels become one-hot rows inside the loss.
net_sm = lg.MLP([4, 6, 3], ["tanh", "softmax"], "softmax_cross_entropy")
params_sm = net_sm.init(seed=2, bias="glorot")
labels = rng.integers(0, 3, Bn)
trace_sm = net_sm.forward(params_sm, x)
grads_sm = net_sm.backward(params_sm, trace_sm, labels)
onehot = np.eye(3)[labels]
expected = (lg.transfer.softmax_rows(trace_sm.pre[-1]) - onehot) / Bn
err = relative_error(grads_sm.pre[-1], expected)
print(f"last G vs (softmax(A) - onehot(y)) / B: relative error {err:.1e}")
# the same float64 formula on the same numbers: rounding only, as the EXACT checks above
assert err <= EXACT
# and the one-hot targets give the same gradient as the integer labels, bit for bit
assert np.array_equal(net_sm.backward(params_sm, trace_sm, onehot).pre[-1], grads_sm.pre[-1])

# %% tags=["hide-input"]
# Solution to exercise 3: the tape differentiates the composed primitives of ad.sigmoid.
net_sig = lg.MLP([4, 6, 5, 3], ["sigmoid", "tanh", "sigmoid"], "sigmoid_cross_entropy")
params_sig = net_sig.init(seed=3, bias="glorot")


def tape_loss_sig(p, x, y):
    h = x
    for layer, act in zip(p, [ad.sigmoid, ad.tanh, ad.identity], strict=True):
        a = h @ layer["W"] + layer["b"]
        h = act(a)
    return (ad.softplus(a) - y * a).sum() / x.shape[0]


hand_sig = net_sig.backward(params_sig, net_sig.forward(params_sig, x), y).as_params()
tape_sig = ad.grad(tape_loss_sig)(params_sig, x, y)
err = relative_error(tape_sig, hand_sig)
print(f"tape vs net.backward with a sigmoid hidden layer: relative error {err:.1e}")
# two exact formulas for the same derivative in float64: they differ by rounding only (~1e-16),
# the tolerance of the tape check of section 3
assert err <= EXACT

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_gradients.py::test_mlp_gradients_hand_vs_tape_vs_check_vjp)
# A random architecture (depth 1-5, widths 1-16, every hidden transfer and loss, batch 1-32):
# net.backward equals the tape to 1e-10 relative and the loss to 1e-12 (1 + |L|) (two exact
# formulas, rounding only), and passes the dot-product test at rtol 1e-6 (central differences
# err by ~1e-10 here) unless a relu pre-activation lies within 1e-4 of its kink.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
draw = np.random.default_rng(seed)
outputs = {
    "squared_error": "identity",
    "sigmoid_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "softmax",
}
loss = str(draw.choice(list(outputs)))
depth = int(draw.integers(1, 6))
sizes = [int(s) for s in draw.integers(1, 17, depth + 1)]
if loss == "softmax_cross_entropy":
    sizes[-1] = max(sizes[-1], 2)
acts = [str(a) for a in draw.choice(lg.transfer.NAMES, depth - 1)] + [outputs[loss]]
B_check = int(draw.integers(1, 33))
net_check = lg.MLP(sizes, acts, loss)
params_check = net_check.init(seed=seed % 1000, bias="glorot" if draw.random() < 0.5 else "zeros")
x_check = draw.standard_normal((B_check, sizes[0]))
if loss == "squared_error":
    y_check = draw.standard_normal((B_check, sizes[-1]))
elif loss == "sigmoid_cross_entropy":
    y_check = draw.random((B_check, sizes[-1]))
else:
    y_check = draw.random((B_check, sizes[-1])) + 0.1
    y_check = y_check / y_check.sum(axis=1, keepdims=True)
trace = net_check.forward(params_check, x_check)
hand = net_check.backward(params_check, trace, y_check)


def tape_objective(p):
    h = x_check
    for layer, t in zip(p, net_check.transfers, strict=True):
        a = h @ layer["W"] + layer["b"]
        h = getattr(ad, t.name)(a)
    if loss == "squared_error":
        per = ((a - y_check) ** 2).sum(axis=1) * 0.5
    elif loss == "sigmoid_cross_entropy":
        per = (ad.softplus(a) - y_check * a).sum(axis=1)
    else:
        per = ad.logsumexp(a, axis=-1) - (y_check * a).sum(axis=1)
    return per.mean()


value, tape = ad.value_and_grad(tape_objective)(params_check)
assert relative_error(hand.as_params(), tape) <= 1e-10
assert abs(float(hand.loss) - float(value)) <= 1e-12 * (1 + abs(float(value)))
kink_gap = min(
    (
        float(np.abs(a).min())
        for a, t in zip(trace.pre, net_check.transfers, strict=True)
        if t.name in ("relu", "leaky_relu")
    ),
    default=np.inf,
)
if kink_gap >= 1e-4:
    check_vjp(
        lambda p: np.asarray(net_check.loss(p, x_check, y_check)),
        lambda p, u: [{"W": u * g["W"], "b": u * g["b"]} for g in hand.as_params()],
        params_check,
        rtol=1e-6,
        seed=seed % 1000,
    )
print(f"seed {seed}: {sizes} {acts} {loss}, B = {B_check}: hand = tape, dot-product test passed")
