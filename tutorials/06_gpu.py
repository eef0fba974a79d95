# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 06 · The same code on a GPU (CuPy)
#
# ## What you will learn
#
# - that running locograd on a GPU changes **where the arrays are created**,
#   not the code: the same `net.init`, `net.forward`, `net.backward` and
#   `locoprop.step` calls run on CuPy inside `backend.default_device("gpu")`;
# - how to compare a GPU result with the CPU result: copy back with
#   `backend.to_numpy` and measure `testing.relative_error` (float64 on both
#   sides: direct computations agree to rounding, ~1e-15, an iterative solve
#   to its stopping tolerance);
# - which device-side habits keep the GPU busy: no host copies inside the
#   step (`StepInfo.loss` stays a 0-d device array), synchronise before timing.
#
# Without a usable GPU this lesson says so and runs the NumPy half only
# (every line of it still runs). Run it with `python tutorials/06_gpu.py`;
# on a GPU machine install CuPy first (`pip install -e '.[cuda12x]'` or
# `'.[cuda13x]'`).

# %%
import time

import numpy as np
from tutorial_setup import FAST

import locograd as lg
from locograd import backend, locoprop
from locograd.locoprop import GD, Exact, M, S
from locograd.testing import relative_error

GPU = backend.has_gpu()
DEVICES = ["cpu", "gpu"] if GPU else ["cpu"]
if GPU:
    cp = backend.cupy_module()
    print("GPU usable: CuPy", cp.__version__, "on", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
else:
    print("No usable GPU here (CuPy missing, or no CUDA device ran a kernel): running on NumPy only.")

# %% [markdown]
# ## 1. One function, two devices
#
# The data and the network are drawn on the host with fixed seeds. Inside
# `default_device(device)`, `net.init` creates the parameters on that device
# (it draws the same float64 numbers on the host and then moves them, so the
# CPU and GPU networks are identical) and `backend.to_device` moves the batch.
# From then on nothing names a device: every function follows its data.
#
# The function returns everything it computed, copied back to the host with
# `backend.to_numpy`, so the two runs can be compared.

# %%
net = lg.MLP([64, 48, 16, 48, 64], ["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy")
B = 128
x_host = np.random.default_rng(0).random((B, 64))


def run_on(device):
    """Forward, backward and three kinds of LocoProp step on `device`; results as NumPy trees."""
    with backend.default_device(device):
        params = net.init(seed=0, bias="glorot")
        x = backend.to_device(x_host)
        trace = net.forward(params, x)
        grads = net.backward(params, trace, x)
        # LocoProp-M, the released inner loop: K = 10 TF1-RMSProp steps with the within-batch factor
        released = GD(
            steps=10, inner=lg.optim.rmsprop_tf1(lr=1e-3), lr_factor=lg.optim.schedules.released_inner_factor
        )
        new_m, info = locoprop.step(net, params, x, x, variant=M(gamma=10.0), solver=released)
        # LocoProp-S in closed form (Cholesky) and LocoProp-M solved exactly (Newton-CG)
        new_s, _ = locoprop.step(net, params, x, x, variant=S(gamma=10.0, eta=1.0), solver=Exact())
        new_m_exact, _ = locoprop.step(net, params, x, x, variant=M(gamma=10.0, eta=1.0), solver=Exact())
        print(
            f"[{device}] output is a {type(trace.output).__module__}.{type(trace.output).__name__} "
            f"of dtype {trace.output.dtype}; StepInfo.loss is a {type(info.loss).__module__} 0-d array"
        )
        return {
            "loss": backend.to_numpy(grads.loss),
            "forward (trace.pre)": [backend.to_numpy(a) for a in trace.pre],
            "backward (dL/dW, dL/db)": backend.tree_map(backend.to_numpy, grads.as_params()),
            "backward (G = dL/dA)": [backend.to_numpy(g) for g in grads.pre],
            "LocoProp-M step, K = 10 RMSProp": backend.tree_map(backend.to_numpy, new_m),
            "LocoProp-S step, closed form": backend.tree_map(backend.to_numpy, new_s),
            "LocoProp-M step, Newton-CG": backend.tree_map(backend.to_numpy, new_m_exact),
        }


results = {device: run_on(device) for device in DEVICES}

# %% [markdown]
# ## 2. Compare
#
# Same float64 numbers in, same algorithms. The forward and backward passes,
# the fixed $K = 10$ inner loop and the closed-form S step agree to rounding
# (~1e-16 to 1e-15): they are not bit-identical only because cuBLAS and
# OpenBLAS sum products in different orders. The Newton-CG solve of M agrees
# only to its stopping tolerance (relative gradient 1e-10 in float64; we
# measured ~1e-10 on an H200): an iterative solver stops as soon as its
# residual is small enough, and rounding differences move that point.

# %%
cpu = results["cpu"]
print(f"loss on the CPU: {float(cpu['loss']):.12f}")
if GPU:
    gpu = results["gpu"]
    print(f"loss on the GPU: {float(gpu['loss']):.12f}\n")
    print(f"{'quantity':<34} {'relative error GPU vs CPU':>26}")
    for key in cpu:
        print(f"{key:<34} {relative_error(gpu[key], cpu[key]):26.1e}")
else:
    print("\nNo GPU: nothing to compare against. On a GPU machine this cell prints, for each quantity")
    print("(forward, backward, and the three LocoProp steps), the relative error between the GPU")
    print("and the CPU result: about 1e-15 in float64, except the Newton-CG solve, which agrees to")
    print("its stopping tolerance (~1e-10).")
    for key, value in cpu.items():
        leaves = backend.tree_leaves(value)
        print(
            f"  {key:<34} {len(leaves)} array(s), max |entry| {max(float(np.abs(v).max()) for v in leaves):.3g}"
        )

# %% [markdown]
# ## 3. Mixing devices is refused, moving is explicit
#
# A CPU batch handed to GPU parameters is a `TypeError` that names both
# sides (tutorial 00); `backend.to_device(x, "gpu")` and `backend.to_numpy`
# are the only copies.

# %%
if GPU:
    with backend.default_device("gpu"):
        params_gpu = net.init(seed=0)
    try:
        net.forward(params_gpu, x_host)
    except TypeError as err:
        print("TypeError:", err)
else:
    print(
        "No GPU: on a GPU machine, net.forward(gpu_params, numpy_batch) raises a TypeError saying "
        "that NumPy and CuPy arrays were mixed and naming both arguments."
    )

# %% [markdown]
# ## 4. Timing, done right
#
# CuPy launches kernels asynchronously: a Python call returns before the GPU
# has finished. To time GPU work, synchronise before reading the clock (and
# warm up once: the first call compiles kernels). The step itself avoids host
# round trips: `StepInfo.loss` stays on the device until you ask for it.
# Small networks like this one are faster on the CPU; the GPU pays off for
# the 784-1000-500-250-30 autoencoder with batch 1000 (`--device gpu` in
# tutorial 05's commands).

# %%


def time_step(device, repeats):
    with backend.default_device(device):
        params = net.init(seed=0, dtype=np.float32, bias="glorot")
        x = backend.to_device(x_host, dtype=np.float32)
        opt = lg.optim.LocoProp(net, M(gamma=10.0), GD(steps=10, inner=lg.optim.rmsprop_tf1(lr=1e-3)))
        state = opt.init(params)
        params, state, _ = opt.step(params, x, x, state)  # warm-up
        if device == "gpu":
            backend.cupy_module().cuda.Device().synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            params, state, info = opt.step(params, x, x, state)
        if device == "gpu":
            backend.cupy_module().cuda.Device().synchronize()
        return (time.perf_counter() - start) / repeats, float(info.loss)


repeats = 3 if FAST else 10
for device in DEVICES:
    seconds, loss = time_step(device, repeats)
    print(
        f"[{device}] one LocoProp-M step (K = 10, float32, batch {B}): {seconds * 1e3:7.2f} ms; loss {loss:.4f}"
    )

# %% [markdown]
# ## Exercises
#
# 1. Repeat the comparison in float32 (`net.init(dtype=np.float32)` and a
#    float32 batch). How large is the GPU-vs-CPU difference now, and why is
#    it still far below the float32 finite-difference error of tutorial 01?
# 2. Time `run_on("gpu")` for the MNIST autoencoder
#    (`locograd.experiments.mnist_autoencoder()`, batch 1000) against the CPU.
# 3. Call `locoprop.step(..., diagnostics=True)` on the GPU and count the
#    device-to-host copies the reports need (one per number): why is it off
#    by default?
# 4. Write a helper `to_gpu(tree)` with `backend.tree_map` and
#    `backend.to_device`, and use it to move a checkpoint's params (tutorial
#    05) onto the GPU.
