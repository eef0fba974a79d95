"""One measurement process: ``python -m locograd.bench.worker SPEC_JSON``.

The parent (:mod:`locograd.bench.run`) starts one process per library and step
kind, so that every measurement starts from a fresh allocator and the libraries
never share a process.  The worker limits its threads (``threadpoolctl`` for
NumPy's BLAS, ``torch.set_num_threads`` for PyTorch), warms up, times each step
on its own (``perf_counter`` around ``step(); sync()``), then measures memory,
and prints one line ``RESULT <json>``.  PyTorch runs with subnormal numbers flushed to
zero (``torch.set_flush_denormal``, recorded as ``torch_flush_denormal``).

For the locograd BackProp step (``"products": true`` in the spec) it then times, in the same
way, that step's matrix products alone (:func:`locograd.bench.steps.products_stepper`:
the products of one real fused pass replayed on copies of their operands), as
``products_ms``; the parent reports the share of the step spent outside them.

Memory, per step kind, over one step (K-FAC and Shampoo: over one refresh period):

* ``rss_peak_mb``: the peak resident set during the step(s) above the resident
  set just before, after ``gc.collect()`` and glibc's ``malloc_trim(0)`` (so
  that memory the allocator kept from earlier steps does not hide the peak).
  Linux only (``/proc/self/clear_refs`` resets the peak); comparable across
  libraries.
* ``tracemalloc_peak_mb`` (locograd on the CPU): the peak of the NumPy and
  Python allocations tracemalloc sees, above what was allocated before.
* ``device_peak_mb`` (GPU): ``torch.cuda.max_memory_allocated`` above the start,
  or the growth of CuPy's memory pool (its high-water mark, approximately).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from typing import Any

from . import model
from .steps import (
    Stepper,
    locograd_stepper,
    matmul_rates,
    products_stepper,
    torch_cnn_stepper,
    torch_stepper,
)

OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_peak_mb(stepper: Stepper) -> float | None:
    """Peak resident memory above the start over ``stepper.memory_window`` steps (see the module docstring)."""
    gc.collect()
    _malloc_trim()
    before = _status_kb("VmRSS")
    if before is None or not _reset_peak_rss():
        return None
    for _ in range(stepper.memory_window):
        stepper.step()
    stepper.sync()
    peak = _status_kb("VmHWM")
    return None if peak is None else max(peak - before, 0) / 1024


def tracemalloc_peak_mb(stepper: Stepper) -> float:
    """Peak of traced (NumPy and Python) allocations above the start over the memory window."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(stepper.memory_window):
            stepper.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - start) / 2**20


def device_peak_mb(lib: str, stepper: Stepper) -> float:
    """Device memory high-water mark above the start over the memory window (GPU)."""
    if lib == "torch":
        import torch

        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(stepper.memory_window):
            stepper.step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    import cupy

    pool = cupy.get_default_memory_pool()
    stepper.sync()
    pool.free_all_blocks()
    start = pool.used_bytes()
    for _ in range(stepper.memory_window):
        stepper.step()
    stepper.sync()
    return (pool.total_bytes() - start) / 2**20


def limit_threads(lib: str, threads: int, elementwise: int = 1) -> dict[str, Any]:
    """Limit this process to ``threads`` threads; returns what the BLAS/PyTorch now report.

    locograd's elementwise work gets ``elementwise`` threads (:func:`locograd.backend.set_threads`;
    reported as ``elementwise_threads``); PyTorch's ``threads`` cover its elementwise work too.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    from locograd import backend

    threadpool_limits(limits=threads)
    if lib == "locograd":
        backend.set_threads(threads, elementwise=elementwise)
    info: dict[str, Any] = {
        "blas": [
            {
                k: p.get(k)
                for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")
            }
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    }
    if lib == "locograd":
        info["elementwise_threads"] = backend.compute_threads()
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
        info["torch_version"] = torch.__version__
    return info


def time_steps(stepper: Stepper, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        stepper.step()
    stepper.sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stepper.step()
        stepper.sync()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def fastest_layout(kind: str, net: Any, batch: int, device: str, seed: int) -> tuple[Stepper, dict[str, Any]]:
    """PyTorch's CNN step in whichever memory format is faster here: NCHW or ``channels_last``.

    Times 3 steps of each (after one warm-up) and keeps the faster; returns its stepper and
    ``{"layout": ..., "layout_trial_ms": {layout: median ms}}``.
    """
    trial = {}
    for layout in ("nchw", "channels_last"):
        probe = torch_cnn_stepper(kind, net, batch, device, seed, layout=layout)
        trial[layout] = statistics.median(time_steps(probe, 1, 3))
        del probe
    best = min(trial, key=lambda k: trial[k])
    return torch_cnn_stepper(kind, net, batch, device, seed, layout=best), {
        "layout": best,
        "layout_trial_ms": trial,
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Carry out one measurement spec (built by :func:`locograd.bench.run.measure`) and return its result."""
    lib, device = spec["lib"], spec["device"]
    result: dict[str, Any] = {
        "lib": lib,
        "device": device,
        "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_VARIABLES},
        "pid": os.getpid(),
    }
    if lib == "torch":
        try:
            import torch
        except ImportError as exc:
            return {**result, "skipped": f"torch not importable ({exc})"}
        if device == "gpu" and not torch.cuda.is_available():
            return {**result, "skipped": "torch has no CUDA device"}
        # Subnormal numbers: on random data PyTorch's LocoProp-M twin meets them from its third step
        # (its softplus), and on an Intel Xeon each such step then took 4x as long; flushed to zero, its
        # steps keep their speed.  NumPy's do not slow down, so this only makes PyTorch faster.
        result["torch_flush_denormal"] = torch.set_flush_denormal(True)
    elementwise = spec.get("elementwise_threads", 1)
    result["threads"] = limit_threads(lib, spec["threads"], elementwise)
    quick = spec.get("quick", False)
    if spec.get("matmul"):
        products = None
        if spec.get("cnn"):  # the CNN's products at its batch
            products = model.cnn_products(model.batch_of("cnn_backprop", spec["batch"], quick), quick)
        rows = matmul_rates(
            "torch" if lib == "torch" else "numpy",
            spec["sizes"],
            spec["batch"],
            device,
            spec["repeats"],
            products,
        )
        return {**result, "matmul": rows}
    kinds: dict[str, Any] = {}
    layer_workers = spec.get("layer_workers", 1)
    mlp = model.network(spec.get("width", 1), quick)
    if list(mlp.sizes) != list(spec["sizes"]):
        raise ValueError(f"sizes: the spec says {spec['sizes']}, its width and quick build {mlp.sizes}")
    for kind in spec["kinds"]:
        net = model.cnn_network(quick) if kind in model.CNN_KINDS else mlp
        batch = model.batch_of(kind, spec["batch"], quick)
        seed = spec.get("seed", 0)
        chosen: dict[str, Any] = {}
        if lib == "torch" and kind in model.CNN_KINDS:
            stepper, chosen = fastest_layout(kind, net, batch, device, seed)
        elif lib == "torch":
            stepper = torch_stepper(kind, net, batch, device, seed)  # type: ignore[arg-type]
        else:  # BLAS and elementwise threads: divided among a LocoProp kind's layer workers
            result["threads"] = limit_threads(
                lib,
                model.blas_threads(kind, spec["threads"], layer_workers),
                model.blas_threads(kind, elementwise, layer_workers),
            )
            stepper = locograd_stepper(kind, net, batch, device, seed, layer_workers)
        entry: dict[str, Any] = {"times_ms": time_steps(stepper, spec["warmup"], spec["repeats"]), **chosen}
        entry["memory_window_steps"] = stepper.memory_window
        entry["threads"] = result["threads"]  # what this kind ran with
        if spec.get("memory", True) and device == "gpu":
            entry["device_peak_mb"] = device_peak_mb(lib, stepper)
        elif spec.get("memory", True):
            entry["rss_peak_mb"] = rss_peak_mb(stepper)
            if lib == "locograd":
                entry["tracemalloc_peak_mb"] = tracemalloc_peak_mb(stepper)
        if lib == "locograd" and kind == "backprop" and spec.get("products", False):
            # the same step's matrix products alone, on operands of a real pass at the current parameters
            replay = products_stepper(mlp, batch, device, seed, stepper.params())
            entry["products_ms"] = time_steps(replay, spec["warmup"], spec["repeats"])
            del replay
        kinds[kind] = entry
        del stepper
        gc.collect()
    return {**result, "kinds": kinds}


def main(argv: list[str] | None = None) -> int:
    """Entry point: one JSON spec in, one ``RESULT <json>`` line out."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    if spec.get("kinds"):
        unknown = set(spec["kinds"]) - set(model.KINDS)
        if unknown:
            raise SystemExit(f"worker: unknown step kinds {sorted(unknown)}")
    print("RESULT " + json.dumps(run(spec)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
