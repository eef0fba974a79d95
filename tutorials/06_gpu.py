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
# **Prerequisites:** lessons 00, 03 and 04; a GPU is optional (without one the NumPy half runs).
#
# **Time:** about 15 minutes
#
# **You will be able to:** run the same LocoProp code on CuPy and NumPy and compare the results correctly.
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

import locograd as lg
from locograd import backend, locoprop
from locograd.locoprop import GD, Exact, M, S
from locograd.testing import relative_error
from locograd.tutorial import FAST

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
#    float32 batch): compare the float32 forward and backward passes with the
#    float64 ones on the CPU, and, where a GPU is usable, the float32 GPU
#    result with the float32 CPU one. How large is the difference, and why is
#    it far below the float32 finite-difference error of tutorial 01?
# 2. Call `locoprop.step(..., diagnostics=True)` and count the numbers the
#    reports hold: on a GPU each one is a device-to-host copy. Why is it off
#    by default?
# 3. Write a helper `to_gpu(tree)` with `backend.tree_map` and
#    `backend.to_device`, and use it to move a network's parameters (from
#    `net.init`, or a checkpoint's from tutorial 05) onto the GPU; without a
#    GPU, move them with the same helper to the CPU.

# %% tags=["hide-input"]
# Solution to exercise 1: float32 changes the numbers by a few float32 units, ~1e-7 relative.


def forward_backward(device, dtype):
    """Pre-activations, dL/dW and dL/db, dL/dA and the loss on `device` in `dtype`, as float64 NumPy."""
    with backend.default_device(device):
        params = net.init(seed=0, bias="glorot", dtype=dtype)
        x = backend.to_device(x_host, dtype=dtype)
        trace = net.forward(params, x)
        grads = net.backward(params, trace, x)
        assert trace.output.dtype == dtype and grads.loss.dtype == dtype
        parts = {
            "forward": trace.pre,
            "dL/dW, dL/db": grads.as_params(),
            "dL/dA": grads.pre,
            "loss": grads.loss,
        }
        return backend.tree_map(lambda a: backend.to_numpy(a).astype(np.float64), parts)


def errors(a, b):
    """Relative error of each quantity (each against its own size)."""
    return {key: relative_error(a[key], b[key]) for key in a}


f64 = forward_backward("cpu", np.float64)
f32 = forward_backward("cpu", np.float32)
err32 = errors(f32, f64)
print("float32 vs float64 on the CPU:", ", ".join(f"{key} {e:.1e}" for key, e in err32.items()))
# A dot product of n <= 64 float32 terms errs by at most n u ~ 4e-6 of the size of its terms
# (u = 6e-8), typically by ~sqrt(n) u ~ 5e-7; the ~2e-7 measured through four layers, forward and
# back, is of that typical size, and 1e-5 allows fifty times it. A central difference instead
# divides the rounding of L by 2 epsilon: tutorial 01's float32 curve bottoms out at a few times
# 1e-4, a thousand times the error of the direct computation.
assert max(err32.values()) <= 1e-5
if GPU:
    err_gpu = errors(forward_backward("gpu", np.float32), f32)
    print("float32 GPU vs float32 CPU:", ", ".join(f"{key} {e:.1e}" for key, e in err_gpu.items()))
    assert max(err_gpu.values()) <= 2e-5  # each side within the bound above of the exact result
else:
    print("No usable GPU: the float32 GPU-vs-CPU comparison is skipped; the CPU part above ran.")

# %% tags=["hide-input"]
# Solution to exercise 2: eight numbers per layer, each a Python number on the host.
gamma_d = 10.0
for device in DEVICES:
    with backend.default_device(device):
        params = net.init(seed=0, bias="glorot")
        x = backend.to_device(x_host)
        _, info = locoprop.step(
            net, params, x, x, variant=M(gamma=gamma_d), solver=GD(steps=10, lr=1e-3), diagnostics=True
        )
        _, plain = locoprop.step(net, params, x, x, variant=M(gamma=gamma_d), solver=GD(steps=10, lr=1e-3))
        grads = net.backward(params, net.forward(params, x), x)
    numbers = [value for report in info.layers for value in report]
    print(
        f"[{device}] {len(info.layers)} layer reports x {len(info.layers[0])} fields = {len(numbers)} numbers"
    )
    assert len(info.layers) == net.num_layers and len(plain.layers) == 0
    assert all(isinstance(v, float | int) for v in numbers)  # on the host: one copy each on a GPU
    for report, g in zip(info.layers, grads.as_params(), strict=True):
        expected = gamma_d * float(np.sqrt(sum(float((backend.to_numpy(v) ** 2).sum()) for v in g.values())))
        # grad J(W~_t) = gamma dL/dW~ (lesson 04): two float64 routes to one norm, rounding only
        assert abs(report.grad_norm_before - expected) <= 1e-12 * expected
# Off by default: the reports cost extra passes over every layer (J before and after, the final
# gradient) and, on a GPU, one synchronising device-to-host copy per number, which stalls the
# queue of asynchronous kernels that keeps the GPU busy.

# %% tags=["hide-input"]
# Solution to exercise 3: tree_map rebuilds the list of dicts with every leaf moved.


def to_gpu(tree, device="gpu"):
    """The same tree with every array on `device` (one explicit copy per array)."""
    return backend.tree_map(lambda a: backend.to_device(a, device), tree)


host_params = net.init(seed=1, bias="glorot")
target = "gpu" if GPU else "cpu"
if not GPU:
    print("No usable GPU: moving the parameters with the same helper to the CPU instead.")
moved = to_gpu(host_params, target)
assert [sorted(layer) for layer in moved] == [sorted(layer) for layer in host_params]
for layer_moved, layer_host in zip(moved, host_params, strict=True):
    for k in layer_host:
        assert backend.device_of(layer_moved[k]) == target and layer_moved[k].dtype == layer_host[k].dtype
        # a copy changes no bit: exact equality after the way back
        assert np.array_equal(backend.to_numpy(layer_moved[k]), layer_host[k])
out_moved = net.forward(moved, backend.to_device(x_host, target)).output
err = relative_error(backend.to_numpy(out_moved), net.forward(host_params, x_host).output)
print(f"forward on the moved parameters ({target}) vs on the host: relative error {err:.1e}")
assert err <= 1e-12  # float64; on a GPU cuBLAS sums in another order (~1e-16 per product)

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_backend.py::test_cupy_round_trip_and_namespace)
# On every usable device: an array created in default_device(device) has that device's namespace
# and device, and copies back to the host bit for bit; and, as
# tests/test_backend.py::test_gpu_init_matches_cpu_init checks, net.init on the device gives the
# host's parameters bit for bit (drawn on the host in float64, then moved). Exact: no tolerance.
# (Both tests are marked gpu; without a GPU this cell runs their CPU path.)
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
values = np.random.default_rng(seed).standard_normal((3, 4))
net_check = lg.MLP([5, 3, 2], ["tanh", "identity"], "squared_error")
host_init = net_check.init(seed=seed % 1000, bias="glorot")
for device in DEVICES:
    with backend.default_device(device) as xp:
        z = backend.asarray(values)
    assert backend.array_namespace(z=z) is xp and backend.device_of(z) == device
    assert np.array_equal(backend.to_numpy(z), values)
    device_init = net_check.init(seed=seed % 1000, bias="glorot", device=device)
    for a, b in zip(host_init, device_init, strict=True):
        for k in ("W", "b"):
            assert np.array_equal(a[k], backend.to_numpy(b[k]))
print(f"seed {seed}: round trip and init bit-exact on {DEVICES}")
