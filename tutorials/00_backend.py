# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 00 · The array backend: NumPy on the CPU, CuPy on a GPU
#
# **Prerequisites:** Python and NumPy arrays (shapes, dtypes); no earlier lesson.
#
# **Time:** about 15 minutes
#
# **You will be able to:** write array code that runs unchanged on NumPy or CuPy, in float64 or float32.
#
# ## What you will learn
#
# - how locograd picks NumPy or CuPy: **the array namespace follows the data**
#   (`lg.backend.array_namespace`), there is no global "use the GPU" flag;
# - the dtype policy: float64 by default (so identities can be checked to
#   ~1e-12), float32 kept when you ask for it, and mixed dtypes refused;
# - the `default_device(...)` scope, which only decides where *new* arrays go;
# - the one explicit copy between host and device: `to_numpy` / `to_device`;
# - the clear error you get when NumPy and CuPy arrays meet in one call, and
#   `has_gpu()`, which asks "does a kernel run?", not "does `import cupy` work?".
#
# Run it with `python tutorials/00_backend.py` from the repository root.
# This lesson draws no figure: it is all printed numbers.

# %%

import numpy as np

import locograd as lg
from locograd import backend
from locograd.testing import relative_error
from locograd.tutorial import FAST

print(f"locograd {lg.__version__}, numpy {np.__version__}, fast mode: {FAST}")

# %% [markdown]
# ## 1. The namespace follows the data
#
# Every library function starts by asking its arguments which array module
# they belong to, the idea of the Python array API standard. NumPy arrays give
# `numpy`, CuPy arrays give `cupy`; Python scalars and `None` are ignored, and
# with no array at all the answer is `numpy`. Code written against the
# returned module `xp` (`xp.exp`, `xp.sum`, ...) then runs on either device
# unchanged.

# %%
x = np.linspace(-2.0, 2.0, 5)
xp = backend.array_namespace(x)
print("namespace of a NumPy array:", xp.__name__)
print("namespace with scalars and None only:", backend.array_namespace(1.0, None).__name__)
print("device of x:", backend.device_of(x))

# %% [markdown]
# A list is not an array: locograd never guesses, it refuses with a message
# that names the argument. (Named keyword arguments make the message precise.)

# %%
try:
    backend.array_namespace(weights=[1.0, 2.0])
except TypeError as err:
    print("TypeError:", err)

# %% [markdown]
# ## 2. The dtype policy
#
# New arrays and freshly initialised parameters are float64 by default:
# LocoProp's identities (first local step = BackProp, closed forms, ...) are
# exact, and in float64 we can *see* them hold to ~1e-13. float32 is kept
# wherever you ask for it (the training runs use float32 for speed), and a
# call that mixes the two is refused rather than silently upcast.

# %%
print("backend.zeros:", backend.zeros((2, 3)).dtype, "| DEFAULT_DTYPE:", np.dtype(backend.DEFAULT_DTYPE))

net = lg.MLP([3, 4, 2], ["tanh", "identity"], "squared_error")
p64 = net.init(seed=0)
p32 = net.init(seed=0, dtype=np.float32)
x64 = np.random.default_rng(0).standard_normal((5, 3))
x32 = x64.astype(np.float32)
out64 = net.forward(p64, x64).output
out32 = net.forward(p32, x32).output
print("float64 params -> output", out64.dtype, "| float32 params -> output", out32.dtype)
print(f"same numbers up to float32 rounding: max |diff| = {np.abs(out64 - out32).max():.2e}")

# %% [markdown]
# `MLP.init` draws the same float64 numbers on the host for every dtype and
# device, then casts; so the float32 network above is the float64 one rounded,
# and its output differs only at the float32 rounding level (~1e-7).
#
# Mixing float32 parameters with a float64 input is an error, not an upcast:

# %%
try:
    net.forward(p32, x64)
except TypeError as err:
    print("TypeError:", err)

# %% [markdown]
# ## 3. `default_device`: where NEW arrays go
#
# `backend.default_device("cpu" | "gpu")` is a scoped context manager (a
# context variable, restored on exit and local to the thread). Inside it,
# `backend.zeros`, `backend.to_device(x)` and `MLP.init` create their arrays
# on that device. Arrays you pass to functions are *never* moved: the
# computation happens wherever the data already is.

# %%
print("default device outside any scope:", backend.current_device())
with backend.default_device("cpu") as xp:
    z = backend.zeros(3)
    print(
        "inside default_device('cpu'):",
        backend.current_device(),
        "| module",
        xp.__name__,
        "| z on",
        backend.device_of(z),
    )
print("after the scope:", backend.current_device())

# %% [markdown]
# Asking for the GPU where there is none fails at once with an actionable
# message (it does not fall back to the CPU behind your back):

# %%
print("has_gpu():", backend.has_gpu())
if not backend.has_gpu():
    try:
        with backend.default_device("gpu"):
            pass
    except RuntimeError as err:
        print("RuntimeError:", err)

# %% [markdown]
# ## 4. The one explicit copy: `to_numpy` and `to_device`
#
# `to_device(x, device, dtype)` converts anything array-like (lists too) to
# `device` with an optional cast; `to_numpy(x)` copies a CuPy array to the host
# and returns a NumPy array unchanged. Nothing else in locograd moves data
# between host and device, so the copies in a program are exactly the ones you
# can see.

# %%
a = backend.to_device([1, 2, 3], "cpu", np.float64)
print("to_device(list):", type(a).__name__, a.dtype, a)
print("to_numpy(numpy array) is the same object:", backend.to_numpy(a) is a)

if backend.has_gpu():
    g = backend.to_device(a, "gpu")
    print("on the GPU:", type(g).__module__, backend.device_of(g))
    back = backend.to_numpy(g)
    print("round trip exact:", bool((back == a).all()))

# %% [markdown]
# ## 5. Mixing NumPy and CuPy is an error
#
# When a GPU is usable we build one CuPy array and hand it to a library call
# together with a NumPy array. The error names each argument and its backend,
# and says how to fix it. (On a machine without a GPU this cell only explains:
# there is no CuPy array to mix.)

# %%
if backend.has_gpu():
    with backend.default_device("gpu"):
        a_gpu = backend.to_device(np.array([[0.5, -1.0]]))
    b_cpu = np.array([[0.0, 2.0]])
    try:
        lg.bregman.divergence("tanh", a_gpu, b_cpu)
    except TypeError as err:
        print("TypeError:", err)
else:
    print(
        "No usable GPU here, so there is no CuPy array to mix. On a GPU machine, e.g.\n"
        "  lg.bregman.divergence('tanh', cupy_array, numpy_array)\n"
        "raises: TypeError: NumPy and CuPy arrays mixed in one call (p is cupy, q is numpy); "
        "move them to one device first with locograd.backend.to_device or to_numpy"
    )

# %% [markdown]
# ## 6. `has_gpu()` means "a kernel ran"
#
# `has_gpu()` is `True` only when CuPy imports **and** a CUDA device runs a
# small kernel (the result is cached). An importable CuPy without a driver, or
# with zero devices, is not a GPU. Tests marked `gpu` skip without one;
# `pytest --require-gpu` turns the skip into a failure, so a GPU machine can
# prove that they ran. Tutorial 06 runs the same LocoProp step on both
# backends and compares the numbers.

# %%
print("has_gpu():", backend.has_gpu())
print("BLAS:", backend.blas_info())

# %% [markdown]
# ## Exercises
#
# 1. Write a function `softplus(a)` that works on NumPy and CuPy alike using
#    only `xp = lg.backend.array_namespace(a)`; check it against
#    `lg.transfer.softplus` on `np.linspace(-30, 30, 7)`.
# 2. Initialise `net` with `dtype=np.float32` and run `net.backward` with
#    float32 targets. Which dtype does `grads.loss` have? What happens with
#    float64 targets (read `losses.Loss.prepare_targets`)?
# 3. Round trips through `to_device`: cast a float64 array to float32 and back
#    (`to_device(x, "cpu", np.float32)`, then `np.float64`), and a float32 array
#    to float64 and back. Which round trip is exact, and how large is the
#    error of the other one?

# %% tags=["hide-input"]
# Solution to exercise 1: only xp functions, so a CuPy input gives a CuPy output.


def softplus(a):
    """log(1 + e^a) = max(a, 0) + log(1 + e^-|a|): no overflow for large |a|."""
    xp = backend.array_namespace(a)
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


a = np.linspace(-30.0, 30.0, 7)
mine, library = softplus(a), lg.transfer.softplus(a)
err = relative_error(mine, library)
print(f"softplus: relative error against lg.transfer.softplus {err:.1e}; output {type(mine).__module__}")
# the same formula, evaluated in another order: each entry rounds by a few ulps of its size
# (relative_error divides by the largest entry, 30), so 1e-15 holds with margin; float64 throughout
assert err <= 1e-15
assert backend.array_namespace(mine) is np and mine.dtype == a.dtype
# the smallest entry alone (~9e-14 at a = -30) is also right to a few ulps, not just small
assert abs(mine[0] - library[0]) <= 4 * np.finfo(np.float64).eps * library[0]
if backend.has_gpu():
    with backend.default_device("gpu"):
        on_gpu = softplus(backend.to_device(a))
    assert backend.device_of(on_gpu) == "gpu"
    assert relative_error(backend.to_numpy(on_gpu), library) <= 1e-15

# %% tags=["hide-input"]
# Solution to exercise 2: the parameters' dtype decides; targets are cast to the output's dtype.
p32 = net.init(seed=0, dtype=np.float32)
x32 = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
y64 = np.random.default_rng(2).standard_normal((5, 2))
trace32 = net.forward(p32, x32)
grads32 = net.backward(p32, trace32, y64.astype(np.float32))
grads_mixed = net.backward(p32, trace32, y64)
print(
    "grads.loss dtype with float32 targets:",
    grads32.loss.dtype,
    "| with float64 targets:",
    grads_mixed.loss.dtype,
)
assert grads32.loss.dtype == np.float32 and grads_mixed.loss.dtype == np.float32
assert all(g.dtype == np.float32 for g in grads_mixed.W + grads_mixed.b + grads_mixed.pre)
# prepare_targets casts y to the output's dtype first, so the two runs are the same float32
# computation: equal bit for bit (exact equality, no tolerance)
assert grads_mixed.loss == grads32.loss
assert all(np.array_equal(g, h) for g, h in zip(grads_mixed.W, grads32.W, strict=True))

# %% tags=["hide-input"]
# Solution to exercise 3: float32 -> float64 -> float32 is exact; the other way rounds once.
x64 = np.random.default_rng(3).standard_normal(1000)
down_up = backend.to_device(backend.to_device(x64, "cpu", np.float32), "cpu", np.float64)
x32 = x64.astype(np.float32)
up_down = backend.to_device(backend.to_device(x32, "cpu", np.float64), "cpu", np.float32)
rel = np.abs(down_up - x64) / np.abs(x64)
u32 = np.finfo(np.float32).eps / 2  # float32's unit roundoff, 2^-24
print(f"float64 -> float32 -> float64: max relative error {rel.max():.2e} (unit roundoff {u32:.2e})")
print("float32 -> float64 -> float32 exact:", np.array_equal(up_down, x32))
# every float32 is a float64, so widening and narrowing back changes no bit (exact equality)
assert up_down.dtype == np.float32 and np.array_equal(up_down, x32)
# narrowing rounds to the nearest float32: |fl(x) - x| <= u |x| with u = 2^-24 (normal numbers)
assert rel.max() <= u32

# %%
# The identity this lesson taught, checked as the test suite checks it (tests/test_gradients.py::test_dtype_preserved_through_net)
# The namespace and the dtype follow the data: for every loss, on every usable device, in float32
# and float64, every array the forward and backward passes return (pre- and post-activations,
# dL/dW, dL/db, dL/dA, the loss) has the parameters' dtype and lives on their device, and so does
# the tape's gradient. An exact property: no tolerance.
seed = 0 if FAST else int(np.random.default_rng().integers(2**31))  # fast mode (the test suite): fixed
rng = np.random.default_rng(seed)
outputs = {
    "squared_error": "identity",
    "sigmoid_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "softmax",
}
tape_losses = {  # the batch-mean losses written with tape primitives
    "squared_error": lambda z, y: ((z - y) ** 2).sum() * 0.5 / z.shape[0],
    "sigmoid_cross_entropy": lambda z, y: (lg.autodiff.softplus(z) - y * z).sum() / z.shape[0],
    "softmax_cross_entropy": lambda z, y: (lg.autodiff.logsumexp(z, axis=-1) - (y * z).sum(axis=1)).mean(),
}
devices = ["cpu", "gpu"] if backend.has_gpu() else ["cpu"]
for loss, out in outputs.items():
    net_check = lg.MLP([3, 4, 5, 2], ["tanh", "leaky_relu", out], loss)
    x_host, y_host = rng.standard_normal((2, 3)), rng.random((2, 2))
    y_host = y_host / y_host.sum(axis=1, keepdims=True)  # rows on the simplex: valid for every loss
    for device in devices:
        for dtype in (np.float32, np.float64):
            with backend.default_device(device):
                params_d = net_check.init(seed=seed % 1000, dtype=dtype)
            x_d, y_d = backend.to_device(x_host, device, dtype), backend.to_device(y_host, device, dtype)
            trace = net_check.forward(params_d, x_d)
            grads = net_check.backward(params_d, trace, y_d)
            arrays_out = [*trace.pre, *trace.post, *grads.W, *grads.b, *grads.pre, grads.loss]
            assert all(a.dtype == dtype for a in arrays_out)
            assert all(backend.device_of(a) == device for a in arrays_out)
            tape = lg.autodiff.grad(lambda z, loss=loss, y=y_d: tape_losses[loss](z, y))(trace.pre[-1])
            assert tape.dtype == dtype and backend.device_of(tape) == device
print(f"seed {seed}: 3 losses x {devices} x (float32, float64): every array kept the dtype and the device")
