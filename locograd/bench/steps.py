"""The steps being timed, one builder per library: locograd (NumPy or CuPy) and PyTorch (CPU or CUDA).

A builder returns a :class:`Stepper`: ``step()`` runs one training step and keeps
its result (new parameters, optimizer state) for the next, ``sync()`` waits for
the device.  Both libraries start from the same parameters (locograd's
Glorot-uniform initialisation, float32) and the same random batch in [0, 1),
and the PyTorch steps compute the same numbers as locograd's up to rounding
(``tests/test_benchmarks.py`` checks this in float64 when torch is installed).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import model


class Stepper(NamedTuple):
    """One step kind, ready to run.

    Attributes:
        step: runs one step (state carried from call to call).
        sync: blocks until the device has finished (a no-op on the CPU).
        memory_window: how many steps a memory measurement should cover
            (K-FAC and Shampoo: their refresh period, so that it includes a refresh).
        params: returns the current parameters as host arrays, ``[{"W", "b"}, ...]``.
    """

    step: Callable[[], None]
    sync: Callable[[], None]
    memory_window: int
    params: Callable[[], list[dict[str, np.ndarray]]]


def activations(sizes: list[int]) -> list[str]:
    """The autoencoder's transfers for ``len(sizes) - 1`` layers: tanh, identity at the code, sigmoid out."""
    M = len(sizes) - 1
    code = M // 2 - 1
    return ["sigmoid" if m == M - 1 else "identity" if m == code else "tanh" for m in range(M)]


def host_data(sizes: list[int], batch: int, seed: int) -> tuple[Any, list[dict[str, np.ndarray]], np.ndarray]:
    """The network, its float32 parameters and a batch in [0, 1), on the host."""
    import locograd as lg

    net = lg.MLP(sizes, activations(sizes), "sigmoid_cross_entropy")
    params = net.init(seed=seed, dtype=np.float32, bias="glorot", device="cpu")
    x = np.random.default_rng(seed + 1).random((batch, sizes[0]), dtype=np.float32)
    return net, params, x


def locograd_optimizer(kind: str, net: Any, layer_workers: int = 1) -> Any:
    """The locograd optimizer of a step kind (``update(params, x, y, state) -> (params, state, info)``).

    ``layer_workers``: LocoProp kinds solve this many layers at once on threads.
    """
    from locograd import optim

    if kind == "backprop":
        return optim.LocoProp(net, inner=optim.sgd(model.BACKPROP_LR), mode="backprop")
    if kind in ("locoprop_s", "locoprop_m"):
        return optim.LocoProp(
            net,
            variant=kind[-1].upper(),
            gamma=model.GAMMA,
            steps=model.INNER_STEPS,
            inner=optim.sgd(model.INNER_LR),
            workers=layer_workers,
        )
    if kind == "locoprop_s_exact":
        return optim.LocoProp(
            net, variant="S", gamma=model.GAMMA, eta=model.EXACT_ETA, solver="exact", workers=layer_workers
        )
    if kind in model.PERIODIC:  # as `locograd train --dataset mnist` builds them
        from locograd.experiments import optimizers

        opt = optimizers.build(net, optimizers.settings(kind, "mnist"))
        if opt.update_every != model.UPDATE_EVERY[kind]:
            raise ValueError(
                f"{kind}: refreshes every {opt.update_every} steps, the FLOP count assumes {model.UPDATE_EVERY[kind]}"
            )
        return opt
    raise ValueError(f"kind: expected one of {model.KINDS}, got {kind!r}")


def locograd_stepper(
    kind: str, sizes: list[int], batch: int, device: str, seed: int = 0, layer_workers: int = 1
) -> Stepper:
    """A locograd step of ``kind`` on NumPy (``device="cpu"``) or CuPy (``"gpu"``)."""
    from locograd import backend

    net, params, x = host_data(sizes, batch, seed)
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "gpu":
        cp = backend.cupy_module()
        params = [{k: backend.to_device(v, "gpu") for k, v in layer.items()} for layer in params]
        x = backend.to_device(x, "gpu")
        sync = cp.cuda.get_current_stream().synchronize
    opt = locograd_optimizer(kind, net, layer_workers)
    state = {"params": params, "opt": opt.init(params)}
    warnings.simplefilter("ignore")  # out-of-range M targets of random data: expected, and not timed

    def step() -> None:
        state["params"], state["opt"], _ = opt.update(state["params"], x, x, state["opt"])

    def current() -> list[dict[str, np.ndarray]]:
        return [{k: backend.to_numpy(v) for k, v in layer.items()} for layer in state["params"]]

    window = model.UPDATE_EVERY.get(kind, 1)
    return Stepper(step, sync, window, current)


def _torch_potential(torch: Any, name: str, a: Any) -> Any:
    """The matching loss's potential :math:`F` (up to a constant), written with torch ops."""
    if name == "tanh":  # log cosh a = a + softplus(-2a) - log 2
        return a + torch.nn.functional.softplus(-2.0 * a)
    if name == "sigmoid":
        return torch.nn.functional.softplus(a)
    return 0.5 * a * a


def _torch_transfer(torch: Any, name: str, a: Any) -> Any:
    if name == "tanh":
        return torch.tanh(a)
    if name == "sigmoid":
        return torch.sigmoid(a)
    return a


def torch_stepper(
    kind: str, sizes: list[int], batch: int, device: str, seed: int = 0, dtype: Any = None
) -> Stepper:
    """The PyTorch version of ``kind`` (``"backprop"`` or ``"locoprop_m"``): autograd and ``torch.optim``.

    * BackProp: forward, ``binary_cross_entropy_with_logits`` (summed over pixels,
      mean over the batch), ``backward()``, ``SGD.step()``.
    * LocoProp-M: one forward pass keeping every pre-activation, ``autograd.grad`` of
      the loss with respect to them (:math:`G_m`), targets :math:`Y^*_m = f(A_m) - \\gamma G_m`,
      then per layer ``K`` steps of ``torch.optim.SGD`` on the matching loss
      :math:`\\sum_n F(x_n W + b) - y^*_n \\cdot (x_n W + b)` with the layer's input frozen.
    """
    import torch

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    dtype = torch.float32 if dtype is None else dtype
    _, params, x_host = host_data(sizes, batch, seed)
    names = activations(sizes)
    Ws = [torch.tensor(p["W"], dtype=dtype, device=dev, requires_grad=True) for p in params]
    bs = [torch.tensor(p["b"], dtype=dtype, device=dev, requires_grad=True) for p in params]
    x = torch.tensor(x_host, dtype=dtype, device=dev)
    B = batch
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    if kind == "backprop":
        opt = torch.optim.SGD([*Ws, *bs], lr=model.BACKPROP_LR)

        def step() -> None:
            h = x
            for W, b, name in zip(Ws, bs, names, strict=True):
                a = torch.addmm(b, h, W)
                h = _torch_transfer(torch, name, a)
            loss = bce(a, x, reduction="sum") / B
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    elif kind == "locoprop_m":
        inner = [torch.optim.SGD([W, b], lr=model.INNER_LR) for W, b in zip(Ws, bs, strict=True)]

        def step() -> None:
            h, inputs, pres, posts = x, [], [], []
            for W, b, name in zip(Ws, bs, names, strict=True):
                inputs.append(h.detach())
                a = torch.addmm(b, h, W)
                h = _torch_transfer(torch, name, a)
                pres.append(a)
                posts.append(h)
            loss = bce(pres[-1], x, reduction="sum") / B
            grads = torch.autograd.grad(loss, pres)
            with torch.no_grad():
                targets = [y.detach() - model.GAMMA * g for y, g in zip(posts, grads, strict=True)]
            del pres, posts, grads, h
            for m, (W, b, name) in enumerate(zip(Ws, bs, names, strict=True)):
                for _ in range(model.INNER_STEPS):
                    a = torch.addmm(b, inputs[m], W)
                    J = (_torch_potential(torch, name, a) - targets[m] * a).sum()
                    inner[m].zero_grad(set_to_none=True)
                    J.backward()
                    inner[m].step()

    else:
        raise ValueError(f"kind: PyTorch implements {model.TORCH_KINDS}, got {kind!r}")

    def current() -> list[dict[str, np.ndarray]]:
        return [
            {"W": W.detach().cpu().numpy(), "b": b.detach().cpu().numpy()}
            for W, b in zip(Ws, bs, strict=True)
        ]

    return Stepper(step, sync, 1, current)


def _matmul_backend(
    lib: str, device: str
) -> tuple[Callable[..., Any], Any, Callable[..., Any], Callable[[], None]]:
    """``(to_array, matmul, empty, sync)`` of NumPy, CuPy or PyTorch on ``device``."""
    if lib == "torch":
        import torch

        dev = torch.device("cuda" if device == "gpu" else "cpu")
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        return (lambda v: torch.tensor(v, device=dev)), torch.mm, (lambda s: torch.empty(s, device=dev)), sync
    if device == "gpu":
        import cupy

        empty = lambda s: cupy.empty(s, dtype=np.float32)  # noqa: E731
        return cupy.asarray, cupy.matmul, empty, cupy.cuda.get_current_stream().synchronize
    return np.asarray, np.matmul, (lambda s: np.empty(s, dtype=np.float32)), (lambda: None)


def matmul_rates(
    lib: str, sizes: list[int], batch: int, device: str, repeats: int
) -> list[dict[str, float | str | int]]:
    """Median time and GFLOP/s of every product of the network (layouts as in a step), float32.

    Args:
        lib: ``"numpy"`` (NumPy's BLAS, or CuPy on the GPU) or ``"torch"``.
        sizes: layer widths.
        batch: ``B``.
        device: ``"cpu"`` or ``"gpu"``.
        repeats: timed repetitions per product (after one warm-up).
    """
    import time

    to_array, mm, empty, sync = _matmul_backend(lib, device)
    rng = np.random.default_rng(0)
    rows: list[dict[str, float | str | int]] = []
    for product, d_in, d_out in model.matmul_shapes(sizes):
        X, W, G = (
            to_array(rng.random(shape, dtype=np.float32))
            for shape in ((batch, d_in), (d_in, d_out), (batch, d_out))
        )
        left, right, shape = {
            "X @ W": (X, W, (batch, d_out)),
            "X.T @ G": (X.T, G, (d_in, d_out)),
            "G @ W.T": (G, W.T, (batch, d_in)),
        }[product]
        out = empty(shape)
        mm(left, right, out=out)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            mm(left, right, out=out)
            sync()
            times.append(time.perf_counter() - start)
        t = float(np.median(times))
        flop = 2.0 * batch * d_in * d_out
        rows.append(
            {"product": product, "d_in": d_in, "d_out": d_out, "seconds": t, "gflops": flop / t / 1e9}
        )
    return rows
