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
from tutorial_setup import FAST

import locograd as lg
from locograd import backend

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
# 3. Nest `default_device("cpu")` inside a function called from a thread
#    (`threading.Thread`) and print `backend.current_device()` in both
#    threads: the setting is a context variable, so it does not leak.
# 4. On a GPU machine: time `net.forward` for a `(10000, 784)` batch on both
#    devices; remember that CuPy is asynchronous, so synchronise
#    (`cupy.cuda.Device().synchronize()`) before reading the clock.
