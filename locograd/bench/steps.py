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
    from locograd.nn import MLP, Sequential
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


def cnn_host_data(
    net: Sequential, batch: int, seed: int
) -> tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """Float32 parameters of a CNN (Glorot uniform, zero biases), images in [0, 1) ``(B, H, W, C)`` and
    random labels ``(B,)``, on the host."""
    params = net.init(seed=seed, dtype=np.float32, device="cpu")
    rng = np.random.default_rng(seed + 1)
    x = rng.random((batch, *net.shapes[0]), dtype=np.float32)
    y = rng.integers(0, net.shapes[-1][0], batch)
    return params, x, y


def locograd_optimizer(kind: str, net: Sequential, layer_workers: int = 1) -> NetOptimizer:
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
    kind: str, net: Sequential, batch: int, device: str, seed: int = 0, layer_workers: int = 1
) -> Stepper:
    """A locograd step of ``kind`` on ``net`` (:func:`locograd.bench.model.network`, or for a CNN kind
    :func:`locograd.bench.model.cnn_network`), NumPy (``device="cpu"``) or CuPy (``"gpu"``)."""
    from locograd import backend
    from locograd.locoprop import LocoPropWarning

    if kind in model.CNN_KINDS:
        params, x, y = cnn_host_data(net, batch, seed)
    else:
        params, x = host_data(net, batch, seed)  # type: ignore[arg-type]
        y = x  # the autoencoder's target is its input
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "gpu":
        cp = backend.cupy_module()
        params = [{k: backend.to_device(v, "gpu") for k, v in layer.items()} for layer in params]
        x, y = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
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
            params, state, _ = opt.step(params, x, y, state)

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
        gamma, rates = _locoprop_m_rates(kind, built)
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


def _torch_cnn_transfer(torch: Any, name: str, a: Any) -> Any:
    """A hidden transfer of the CNN twin: relu or tanh."""
    return torch.relu(a) if name == "relu" else torch.tanh(a)


def _torch_cnn_potential(torch: Any, name: str, a: Any) -> Any:
    """The matching loss's potential: relu's 0.5 relu(a)^2, tanh's log cosh, softmax's logsumexp (per row)."""
    if name == "relu":
        return 0.5 * torch.relu(a) ** 2
    if name == "tanh":
        return a + torch.nn.functional.softplus(-2.0 * a)
    return torch.logsumexp(a, dim=1)


def torch_cnn_stepper(
    kind: str,
    net: Sequential,
    batch: int,
    device: str,
    seed: int = 0,
    dtype: Any = None,
    layout: str = "nchw",
) -> Stepper:
    """The PyTorch version of ``cnn_backprop`` or ``cnn_locoprop_m`` on the benchmark CNN.

    ``layout``: ``"nchw"`` or ``"channels_last"`` (the images' and kernels' memory format).  The
    network is read from ``net`` (3x3 "same" convolutions at stride 1, 2x2 max pooling, a flatten in
    locograd's NHWC order, dense layers, a softmax output with cross-entropy):

    * BackProp: ``conv2d``, ``max_pool2d``, ``addmm``, ``cross_entropy``, ``backward()``, ``SGD.step()``.
    * LocoProp-M: one forward pass keeping every weight layer's pre-activation, ``autograd.grad``
      of the loss with respect to them, targets :math:`Y^* = f(A) - \\gamma G`; then per weight layer
      its input's patches by ``unfold``, formed once, and ``K`` steps of ``torch.optim.SGD`` on the
      matching loss of the rows :math:`P W_{mat} + b`, at the built solver's rates.  Its weights
      are kept as matrices ``(c_in*kh*kw, c_out)``, viewed as kernels for the forward pass.

    Raises:
        ValueError: another kind or layout, or a network or built optimizer this twin does not implement.
    """
    import torch

    from locograd.nn import Conv2D, Dense, Flatten, MaxPool2D

    if kind not in model.CNN_KINDS:
        raise ValueError(f"kind: expected one of {model.CNN_KINDS}, got {kind!r}")
    if layout not in ("nchw", "channels_last"):
        raise ValueError(f"layout: expected 'nchw' or 'channels_last', got {layout!r}")
    built: Any = locograd_optimizer(kind, net)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    dtype = torch.float32 if dtype is None else dtype
    memory = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    params, x_host, y_host = cnn_host_data(net, batch, seed)
    for layer in net.layers:
        ok = (
            (
                isinstance(layer, Conv2D)
                and layer.stride == (1, 1)
                and layer.pads(5, 5) == (layer.kernel[0] // 2,) * 2 + (layer.kernel[1] // 2,) * 2
            )
            or (isinstance(layer, MaxPool2D) and layer.stride == layer.size)
            or isinstance(layer, Dense | Flatten)
        )
        if not ok:
            raise ValueError(f"net: the PyTorch twin does not implement {layer!r}")
    weighted = net.weight_layers
    names = {m: net.layers[m].transfer.name for m in weighted}  # type: ignore[attr-defined]
    hidden = {names[m] for m in weighted[:-1]}
    if not hidden <= {"relu", "tanh"} or names[weighted[-1]] != "softmax":
        raise ValueError(
            f"net: the PyTorch twin implements relu or tanh CNNs with a softmax output, got {names}"
        )
    # weights as matrices (rows in unfold's (c_in, kh, kw) order for a kernel) and biases
    mats, biases = {}, {}
    for m in weighted:
        W = params[m]["W"]
        if W.ndim == 4:  # (kh, kw, c_in, c_out) -> (c_in, kh, kw, c_out) -> rows
            W = W.transpose(2, 0, 1, 3).reshape(-1, W.shape[3])
        mats[m] = torch.tensor(W, dtype=dtype, device=dev, requires_grad=True)
        biases[m] = torch.tensor(params[m]["b"], dtype=dtype, device=dev, requires_grad=True)
    x = torch.tensor(x_host.transpose(0, 3, 1, 2), dtype=dtype, device=dev).contiguous(memory_format=memory)
    labels = torch.tensor(y_host, device=dev)
    F = torch.nn.functional
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def kernel(m: int) -> Any:
        layer: Any = net.layers[m]  # a Conv2D
        kh, kw = layer.kernel
        return mats[m].T.reshape(layer.c_out, layer.c_in, kh, kw).contiguous(memory_format=memory)

    def forward(keep: bool) -> tuple[Any, dict[int, Any], dict[int, Any], dict[int, Any]]:
        h, inputs, pres, posts = x, {}, {}, {}
        for m, layer in enumerate(net.layers):
            if isinstance(layer, Conv2D):
                inputs[m] = h.detach()
                a = F.conv2d(h, kernel(m), biases[m], padding=(layer.kernel[0] // 2, layer.kernel[1] // 2))
            elif isinstance(layer, MaxPool2D):
                h = F.max_pool2d(h, layer.size)
                continue
            elif isinstance(layer, Flatten):
                h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # locograd's NHWC order
                continue
            else:
                inputs[m] = h.detach()
                a = torch.addmm(biases[m], h, mats[m])
            if m == weighted[-1]:  # the logits; cross_entropy applies the softmax
                if keep:
                    pres[m], posts[m] = a, torch.softmax(a, dim=1)
                break
            h = _torch_cnn_transfer(torch, names[m], a)
            if keep:
                pres[m], posts[m] = a, h
        return a, inputs, pres, posts

    if kind == "cnn_backprop":
        _twin_check(kind, built.inner.name == "sgd", built)
        opt = torch.optim.SGD([*mats.values(), *biases.values()], lr=built.lr)

        def step() -> None:
            logits = forward(False)[0]
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    else:
        gamma, rates = _locoprop_m_rates(kind, built)
        inner = {m: torch.optim.SGD([mats[m], biases[m]], lr=rates[0]) for m in weighted}

        def step() -> None:
            logits, inputs, pres, posts = forward(True)
            loss = F.cross_entropy(logits, labels)
            grads = torch.autograd.grad(loss, [pres[m] for m in weighted])
            with torch.no_grad():
                targets = {m: posts[m].detach() - gamma * g for m, g in zip(weighted, grads, strict=True)}
            del pres, posts, grads, logits
            for m in weighted:
                layer = net.layers[m]
                if isinstance(layer, Conv2D):  # the patches, once: rows (B*H*W, c_in*kh*kw)
                    pad = (layer.kernel[0] // 2, layer.kernel[1] // 2)
                    rows = (
                        F.unfold(inputs[m], layer.kernel, padding=pad)
                        .transpose(1, 2)
                        .reshape(-1, mats[m].shape[0])
                    )
                    target = targets[m].permute(0, 2, 3, 1).reshape(-1, layer.c_out)
                else:
                    rows, target = inputs[m], targets[m]
                for rate in rates:
                    a = torch.addmm(biases[m], rows, mats[m])
                    J = _torch_cnn_potential(torch, names[m], a).sum() - (target * a).sum()
                    inner[m].zero_grad(set_to_none=True)
                    J.backward()
                    for group in inner[m].param_groups:
                        group["lr"] = rate
                    inner[m].step()

    def current() -> list[dict[str, np.ndarray]]:
        out: list[dict[str, np.ndarray]] = []
        for m, layer in enumerate(net.layers):
            if m not in mats:
                out.append({})
                continue
            W = mats[m].detach().cpu().numpy()
            if isinstance(layer, Conv2D):
                kh, kw = layer.kernel
                W = W.reshape(layer.c_in, kh, kw, layer.c_out).transpose(1, 2, 0, 3)
            out.append({"W": W, "b": biases[m].detach().cpu().numpy()})
        return out

    return Stepper(step, sync, 1, current)


def _locoprop_m_rates(kind: str, built: Any) -> tuple[float, list[float]]:
    """``(gamma, rates)`` of a built LocoProp-M with K inner SGD steps and no proximal term: the inner
    step ``k``'s rate, the base rate times the solver's within-batch factor (refused otherwise)."""
    from locograd.locoprop import GD
    from locograd.locoprop.solvers import lr_factor_at

    solver, variant = built.solver, built.variant
    _twin_check(
        kind,
        variant.name == "M"
        and not variant.normalised  # the twin's targets use the plain gamma
        and variant.eta is None
        and isinstance(solver, GD)
        and solver.inner is not None
        and solver.inner.name == "sgd",
        built,
    )
    K = solver.steps
    return variant.gamma, [solver.base_lr * lr_factor_at(solver.lr_factor, k, K) for k in range(K)]


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
    lib: str,
    sizes: list[int],
    batch: int,
    device: str,
    repeats: int,
    products: list[tuple[str, int, int, int]] | None = None,
) -> list[dict[str, float | str | int]]:
    """Median time and GFLOP/s of every product of the network (layouts as in a step), float32.

    Args:
        lib: ``"numpy"`` (NumPy's BLAS, or CuPy on the GPU) or ``"torch"``.
        sizes: layer widths.
        batch: ``B``.
        device: ``"cpu"`` or ``"gpu"``.
        repeats: timed repetitions per product (after one warm-up).
        products: instead of the network's, these ``(product, rows, d_in, d_out)``
            (:func:`locograd.bench.model.cnn_products`); ``rows`` replaces ``batch``.
    """
    import time

    to_array, mm, empty, sync = _matmul_backend(lib, device)
    rng = np.random.default_rng(0)
    rows: list[dict[str, float | str | int]] = []
    shapes = products or [(p, batch, d_in, d_out) for p, d_in, d_out in model.matmul_shapes(sizes)]
    for product, batch, d_in, d_out in shapes:
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
            {
                "product": product,
                "rows": batch,
                "d_in": d_in,
                "d_out": d_out,
                "seconds": t,
                "gflops": flop / t / 1e9,
            }
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
