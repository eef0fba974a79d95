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
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import model

if TYPE_CHECKING:
    from locograd.nn import MLP
    from locograd.optim import NetOptimizer


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


def host_data(net: MLP, batch: int, seed: int) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Float32 parameters of ``net`` (Glorot uniform, biases too) and a batch in [0, 1), on the host."""
    params = net.init(seed=seed, dtype=np.float32, bias="glorot", device="cpu")
    x = np.random.default_rng(seed + 1).random((batch, net.sizes[0]), dtype=np.float32)
    return params, x


def locograd_optimizer(kind: str, net: MLP, layer_workers: int = 1) -> NetOptimizer:
    """The locograd optimizer of a step kind, built as ``locograd train`` builds it.

    :func:`locograd.experiments.optimizers.build` of :func:`locograd.bench.model.optimizer_settings`;
    ``step(params, x, y, state) -> (params, state, info)``.  ``layer_workers``: LocoProp kinds
    solve this many layers at once on threads (the other kinds have no per-layer solves).

    Raises:
        ValueError: an unknown kind, or a K-FAC / Shampoo refresh period other than the one the
            FLOP count assumes (:data:`locograd.bench.model.UPDATE_EVERY`).
    """
    from locograd.experiments import optimizers

    opt = optimizers.build(net, model.optimizer_settings(kind), workers=layer_workers, donate=True)
    if kind in model.PERIODIC and getattr(opt, "update_every", None) != model.UPDATE_EVERY[kind]:
        raise ValueError(
            f"{kind}: refreshes every {getattr(opt, 'update_every', None)} steps, "
            f"the FLOP count assumes {model.UPDATE_EVERY[kind]}"
        )
    return opt


def locograd_stepper(
    kind: str, net: MLP, batch: int, device: str, seed: int = 0, layer_workers: int = 1
) -> Stepper:
    """A locograd step of ``kind`` on ``net`` (:func:`locograd.bench.model.network`), NumPy (``device="cpu"``) or CuPy (``"gpu"``)."""
    from locograd import backend
    from locograd.locoprop import LocoPropWarning

    params, x = host_data(net, batch, seed)
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "gpu":
        cp = backend.cupy_module()
        params = [{k: backend.to_device(v, "gpu") for k, v in layer.items()} for layer in params]
        x = backend.to_device(x, "gpu")
        sync = cp.cuda.get_current_stream().synchronize
    opt = locograd_optimizer(kind, net, layer_workers)
    state = opt.init(params)

    def step() -> None:
        nonlocal params, state
        # On random data some LocoProp-M targets leave tanh's range, and every step says so
        # (LocoPropWarning): expected here, and formatting it is not what is measured.  Only that
        # category is ignored, and only for this call: catch_warnings restores the filters after.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LocoPropWarning)
            params, state, _ = opt.step(params, x, x, state)

    def current() -> list[dict[str, np.ndarray]]:
        return [{k: backend.to_numpy(v) for k, v in layer.items()} for layer in params]

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


def torch_stepper(kind: str, net: MLP, batch: int, device: str, seed: int = 0, dtype: Any = None) -> Stepper:
    """The PyTorch version of ``kind`` (``"backprop"`` or ``"locoprop_m"``) on ``net``: autograd and ``torch.optim``.

    Its settings are read from the locograd optimizer :func:`locograd_optimizer` builds (so that
    both compute the same numbers), its transfers from ``net``:

    * BackProp: forward, ``binary_cross_entropy_with_logits`` (summed over pixels,
      mean over the batch), ``backward()``, ``SGD.step()`` at the built optimizer's rate.
    * LocoProp-M: one forward pass keeping every pre-activation, ``autograd.grad`` of
      the loss with respect to them (:math:`G_m`), targets :math:`Y^*_m = f(A_m) - \\gamma G_m`,
      then per layer ``K`` steps of ``torch.optim.SGD`` on the matching loss
      :math:`\\sum_n F(x_n W + b) - y^*_n \\cdot (x_n W + b)` with the layer's input frozen,
      inner step ``k`` at the base rate times the built solver's within-batch factor
      ``lr_factor(k, K)`` (``locograd train``'s :math:`\\max(1 - k/K, 0.25)`).

    Raises:
        ValueError: another kind, or a built optimizer this twin does not implement.
    """
    import torch

    if kind not in model.TORCH_KINDS:
        raise ValueError(f"kind: PyTorch implements {model.TORCH_KINDS}, got {kind!r}")
    built: Any = locograd_optimizer(kind, net)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    dtype = torch.float32 if dtype is None else dtype
    params, x_host = host_data(net, batch, seed)
    names = [t.name for t in net.transfers]
    if net.loss_fn.name != "sigmoid_cross_entropy" or not set(names) <= {"tanh", "sigmoid", "identity"}:
        raise ValueError(
            f"net: the PyTorch twin implements tanh/sigmoid/identity MLPs with sigmoid cross-entropy, got {net!r}"
        )
    Ws = [torch.tensor(p["W"], dtype=dtype, device=dev, requires_grad=True) for p in params]
    bs = [torch.tensor(p["b"], dtype=dtype, device=dev, requires_grad=True) for p in params]
    x = torch.tensor(x_host, dtype=dtype, device=dev)
    B = batch
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    if kind == "backprop":
        _twin_check(kind, built.inner.name == "sgd", built)
        opt = torch.optim.SGD([*Ws, *bs], lr=built.lr)

        def step() -> None:
            h = x
            for W, b, name in zip(Ws, bs, names, strict=True):
                a = torch.addmm(b, h, W)
                h = _torch_transfer(torch, name, a)
            loss = bce(a, x, reduction="sum") / B
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    else:
        from locograd.locoprop import GD
        from locograd.locoprop.solvers import lr_factor_at

        solver, variant = built.solver, built.variant
        _twin_check(
            kind,
            variant.name == "M"
            and variant.eta is None
            and isinstance(solver, GD)
            and solver.inner is not None
            and solver.inner.name == "sgd",
            built,
        )
        gamma, K = variant.gamma, solver.steps
        rates = [solver.base_lr * lr_factor_at(solver.lr_factor, k, K) for k in range(K)]
        inner = [torch.optim.SGD([W, b], lr=rates[0]) for W, b in zip(Ws, bs, strict=True)]

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
                targets = [y.detach() - gamma * g for y, g in zip(posts, grads, strict=True)]
            del pres, posts, grads, h
            for m, (W, b, name) in enumerate(zip(Ws, bs, names, strict=True)):
                for rate in rates:
                    a = torch.addmm(b, inputs[m], W)
                    J = (_torch_potential(torch, name, a) - targets[m] * a).sum()
                    inner[m].zero_grad(set_to_none=True)
                    J.backward()
                    for group in inner[m].param_groups:
                        group["lr"] = rate
                    inner[m].step()

    def current() -> list[dict[str, np.ndarray]]:
        return [
            {"W": W.detach().cpu().numpy(), "b": b.detach().cpu().numpy()}
            for W, b in zip(Ws, bs, strict=True)
        ]

    return Stepper(step, sync, 1, current)


def _twin_check(kind: str, ok: bool, built: Any) -> None:
    """Refuse to time a PyTorch twin that would compute something else than the built optimizer."""
    if not ok:
        raise ValueError(f"{kind}: the PyTorch twin does not implement the built optimizer {built!r}")


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


class Product(NamedTuple):
    """One matrix product of a pass, ready to replay: ``matmul(left, right, out=out)``.

    ``left`` and ``right`` are copies of the operands as the pass passed them (same shapes,
    same memory layouts: a transpose stays a transposed view), taken just before the product
    ran; ``out`` is a scratch buffer of the pass's output's shape, dtype and layout.
    """

    left: Any
    right: Any
    out: Any


def record_products(net: MLP, params: Any, x: Any, y: Any) -> list[Product]:
    """Every matrix product one fused BackProp pass runs, in order, with copies of its operands.

    Runs :func:`locograd._fast.passes.backprop_loss_and_grads` once (fresh workspace) with the
    array module's ``matmul`` wrapped to copy each call's operands (``copy(order="K")``: the
    layout is kept) and allocate a scratch output like the pass's ``out=`` buffer.  Products
    the pass ran some other way (``@``, ``dot``) would be missed; the test suite checks that the
    recorded FLOPs are :func:`locograd.bench.model.flops` of ``"backprop"``.
    """
    from locograd import backend
    from locograd._fast import passes

    xp = backend.array_namespace(x)
    real = xp.matmul
    found: list[Product] = []

    def recording(a: Any, b: Any, *rest: Any, out: Any = None, **kw: Any) -> Any:
        if rest or kw or out is None:
            raise ValueError("record_products: expected matmul(a, b, out=buffer) calls only")
        found.append(Product(a.copy(order="K"), b.copy(order="K"), xp.empty_like(out)))
        return real(a, b, out=out)

    setattr(xp, "matmul", recording)  # noqa: B010 (a module attribute, for mypy)
    try:
        passes.backprop_loss_and_grads(net, params, x, y, None)
    finally:
        setattr(xp, "matmul", real)  # noqa: B010
    return found


def products_stepper(net: MLP, batch: int, device: str, seed: int = 0, params: Any = None) -> Stepper:
    """BackProp's matrix products alone: a :class:`Stepper` replaying :func:`record_products`.

    The operands come from one real fused pass at ``params`` (host arrays, e.g. a stepper's
    current ones; default: the initial parameters of :func:`host_data`) on the batch
    :func:`host_data` gives ``seed`` (the one the step trains on).  ``step()`` runs exactly
    those products, same shapes, transposes and ``out=`` buffers (scratch ones, so that the
    operands stay as recorded), and no elementwise work; timed as the step is, it says how
    much of the step the products take.
    """
    from locograd import backend

    start, x = host_data(net, batch, seed)
    host = start if params is None else params
    layers = [{k: np.asarray(v, dtype=np.float32) for k, v in layer.items()} for layer in host]
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "gpu":
        cp = backend.cupy_module()
        layers = [{k: backend.to_device(v, "gpu") for k, v in layer.items()} for layer in layers]
        x = backend.to_device(x, "gpu")
        sync = cp.cuda.get_current_stream().synchronize
    found = record_products(net, layers, x, x)
    mm = backend.array_namespace(x).matmul
    sync()

    def step() -> None:
        for p in found:
            mm(p.left, p.right, out=p.out)

    return Stepper(step, sync, 1, lambda: [])
