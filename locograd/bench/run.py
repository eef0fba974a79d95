"""``python -m benchmarks``: time and measure every step kind against PyTorch and the matmul rate.

For each step kind the parent starts worker processes (:mod:`locograd.bench.worker`),
alternating locograd and PyTorch runs round by round, each limited to the same
number of threads, and reports per kind: the median (and mean) milliseconds of
a step, its matmul FLOPs (:mod:`locograd.bench.model`), the achieved GFLOP/s and
fraction of this machine's float32 matmul rate for the layer shapes involved,
the ratio to PyTorch, and the peak memory of a step.  A table goes to stdout,
everything to ``--out`` as JSON.

``--unset-openblas`` runs the locograd (and NumPy matmul) workers with
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed from their environment;
without it they inherit this process's environment as set.  The output says
which, with the values.  ``--layer-workers W`` has the LocoProp steps solve W
layers at once on threads (their problems are independent), each BLAS call then
getting ``threads // W`` threads, so that the process still uses ``--threads``.
``--elementwise-threads K`` gives locograd's own elementwise work K threads in its
workers (:func:`locograd.backend.set_threads`; LocoProp with ``--layer-workers W``:
``K // W`` per layer thread, at least 1).

For locograd's BackProp step the table also gives the share of the step spent outside
its matrix products, measured by timing the same step's products alone (those of one real
fused pass, replayed on copies of their operands: :func:`locograd.bench.steps.products_stepper`).
The machine (CPU, cores, NumPy's BLAS and its kernel, PyTorch's version and BLAS, the GPU)
is printed and stored (:func:`machine_info`).

>>> sizes_for(1, quick=False)
[784, 1000, 500, 250, 30, 250, 500, 1000, 784]
>>> build_parser().parse_args(["--unset-openblas", "--threads", "2"]).threads
2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..validators import canonical_choice, integer, integer_list, number, output_file
from . import model
from .worker import OPENBLAS_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``locograd`` package: the workers' working directory and first import path."""


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks`` (also ``locograd bench``); its errors are one line."""
    from ..validators import OneLineParser

    p = OneLineParser(
        prog=prog,
        description="Time locograd's BackProp, LocoProp, K-FAC and Shampoo steps on the MNIST "
        "autoencoder against PyTorch and the machine's float32 matmul rate.",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="threads per worker process (BLAS, PyTorch); default 1"
    )
    p.add_argument(
        "--layer-workers",
        type=int,
        default=1,
        help="LocoProp steps solve this many layers at once on threads, sharing --threads "
        "(BLAS threads each: threads // layer-workers); default 1",
    )
    p.add_argument(
        "--elementwise-threads",
        type=int,
        default=1,
        help="threads of locograd's own elementwise work in its workers (locograd.backend.set_threads; "
        "LocoProp with --layer-workers: divided as --threads); default 1",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed steps per worker (default 10; quick 2)")
    p.add_argument(
        "--rounds", type=int, default=None, help="alternating locograd/PyTorch rounds (default 2; quick 1)"
    )
    p.add_argument("--batch", type=int, default=None, help="batch size B (default 1000; quick 16)")
    p.add_argument("--width", type=int, default=1, help="width multiplier of the hidden layers (default 1)")
    p.add_argument("--kinds", default=",".join(model.KINDS), help="comma-separated step kinds (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (for the test suite)")
    p.add_argument("--device", default="cpu", help="cpu (default): NumPy vs PyTorch CPU; gpu: CuPy vs CUDA")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    p.add_argument(
        "--unset-openblas",
        action="store_true",
        help="run the locograd workers with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed",
    )
    p.add_argument(
        "--scaling", action="store_true", help="also time BackProp and LocoProp-M over batch and width"
    )
    p.add_argument(
        "--scaling-batches", default=None, help="batches of --scaling (default 100,1000,10000; quick 4,8,16)"
    )
    p.add_argument("--scaling-widths", default="1,2", help="width multipliers of --scaling (default 1,2)")
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process")
    return p


def sizes_for(width: int, quick: bool) -> list[int]:
    """Layer widths: the MNIST autoencoder (or its ``--quick`` stand-in) with hidden widths times ``width``.

    Those of :func:`locograd.bench.model.network`, the network every worker builds.
    """
    return model.quick_sizes(width) if quick else model.mnist_sizes(width)


def worker_env(threads: int, unset_openblas: bool) -> dict[str, str]:
    """The environment of a worker: this one's, threads pinned, OpenBLAS variables removed if asked."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if unset_openblas:
        for var in OPENBLAS_VARIABLES:
            env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_worker(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run one worker process; its ``RESULT`` line as a dict, or ``{"error": ...}``."""
    cmd = [sys.executable, "-m", "locograd.bench.worker", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"lib": spec["lib"], "error": f"worker timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {"lib": spec["lib"], "error": f"worker exited {done.returncode}: " + " | ".join(tail)}


TORCH_PROBE = """
import json, re, torch
config = torch.__config__.show()
settings = dict(re.findall(r"(\\w+)=([^,\\n]*)", config))
mkl = re.search(r"Math Kernel Library Version ([\\w.]+)", config)
capability = re.search(r"CPU capability usage: (\\w+)", config)
info = {
    "version": torch.__version__,
    "blas": settings.get("BLAS_INFO"),
    "lapack": settings.get("LAPACK_INFO"),
    "mkl": mkl.group(1).strip() if mkl else None,
    "mkl_available": torch.backends.mkl.is_available(),
    "mkldnn_available": torch.backends.mkldnn.is_available(),
    "openmp_available": torch.backends.openmp.is_available(),
    "cpu_capability": capability.group(1) if capability else None,
    "cuda": torch.version.cuda,
}
print("TORCH " + json.dumps(info))
"""
"""Run by :func:`torch_info` in one subprocess: PyTorch's version and BLAS from ``torch.__config__.show()``."""


def torch_info(timeout: float = 60.0) -> dict[str, Any] | None:
    """PyTorch's version, BLAS and LAPACK (``BLAS_INFO``, the MKL version), CPU kernels; ``None`` if absent.

    One subprocess imports torch (this process does not: its libraries would change this
    process's, and importing it takes seconds): a failure there is recorded as ``{"error": ...}``.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        done = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    for line in done.stdout.splitlines():
        if line.startswith("TORCH "):
            return dict(json.loads(line[len("TORCH ") :]))
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
    return {"error": f"torch probe exited {done.returncode}: " + " | ".join(tail)}


def gpu_info(gpu: bool) -> dict[str, Any] | None:
    """The GPU: on ``--device gpu`` CuPy's device 0 (name, memory, compute capability, CUDA
    runtime and driver); otherwise ``nvidia-smi``'s first GPU name if there is one (else ``None``)."""
    if gpu:
        from locograd import backend

        cp = backend.cupy_module()
        props = cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return {
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cp.cuda.runtime.driverGetVersion(),
            "cupy": cp.__version__,
        }
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return {"name": names[0], "used": False} if done.returncode == 0 and names else None


def machine_info(gpu: bool = False) -> dict[str, Any]:
    """What the benchmark ran on.

    The CPU model (``lscpu``) and cores; Python and NumPy; NumPy's BLAS as threadpoolctl sees
    it in this process (library, version and the kernel it chose, ``architecture``, e.g.
    ``Haswell``; the workers' own, which ``--unset-openblas`` may change, are in their
    results); PyTorch's version and BLAS (:func:`torch_info`); the GPU (:func:`gpu_info`).
    """
    import numpy as np
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    details: dict[str, str] = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key == "Model name":
                cpu = value.strip()
            elif key in (
                "CPU family",
                "Model",
                "Stepping",
                "Vendor ID",
                "Hypervisor vendor",
                "L2 cache",
                "L3 cache",
            ):
                details[key.lower().replace(" ", "_")] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    if "cpu_family" in details and "model" in details:  # "AMD EPYC" alone does not say which generation
        cpu = f"{cpu} (family {details['cpu_family']}, model {details['model']})"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_details": details,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})" for p in pools],
        "blas_pools": [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "filepath")}
            for p in pools
        ],
        "openblas_env_as_set": {v: os.environ.get(v) for v in OPENBLAS_VARIABLES},
    }
    info["torch"] = torch_info()
    info["gpu"] = gpu_info(gpu)
    return info


def torch_line(info: dict[str, Any] | None) -> str:
    """:func:`torch_info` in words, for the ``machine:`` lines.

    >>> torch_line({"version": "2.3.0", "blas": "mkl", "lapack": "mkl", "mkl": "2024.2", "mkldnn_available": True,
    ...             "cpu_capability": "AVX512"})
    'PyTorch 2.3.0, BLAS mkl (MKL 2024.2), LAPACK mkl, oneDNN yes, CPU kernels AVX512'
    >>> torch_line(None)
    'PyTorch not installed'
    """
    if info is None:
        return "PyTorch not installed"
    if "error" in info:
        return f"PyTorch unknown ({info['error']})"
    mkl = f" (MKL {info['mkl']})" if info.get("mkl") else ""
    return (
        f"PyTorch {info.get('version')}, BLAS {info.get('blas') or 'unknown'}{mkl}, "
        f"LAPACK {info.get('lapack') or 'unknown'}, oneDNN {'yes' if info.get('mkldnn_available') else 'no'}, "
        f"CPU kernels {info.get('cpu_capability') or 'unknown'}"
        + (f", CUDA {info['cuda']}" if info.get("cuda") else "")
    )


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def measure(
    args: argparse.Namespace,
    sizes: list[int],
    batch: int,
    kinds: Sequence[str],
    with_torch: bool,
    repeats: int,
    rounds: int,
    memory: bool = True,
    width: int | None = None,
    products: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the alternating rounds for ``kinds``; per ``lib`` and kind: all times, memory, errors.

    ``products``: the locograd BackProp workers also time the step's matrix products alone
    (``products_ms``, :func:`locograd.bench.steps.products_stepper`).

    ``sizes`` are :func:`sizes_for` ``(width, args.quick)`` (``width``: ``args.width`` if ``None``);
    the workers build the network from ``width`` and ``quick`` (:func:`locograd.bench.model.network`).
    """
    quick = args.quick
    envs = {
        "locograd": worker_env(args.threads, args.unset_openblas),
        "torch": worker_env(args.threads, False),
    }
    base = {
        "sizes": sizes,
        "width": args.width if width is None else width,
        "quick": quick,
        "batch": batch,
        "threads": args.threads,
        "layer_workers": args.layer_workers,
        "elementwise_threads": args.elementwise_threads,
        "device": args.device,
        "repeats": repeats,
        "warmup": 1 if quick or not memory else 2,
        "memory": memory,
        "products": products,
    }
    found: dict[str, dict[str, Any]] = {"locograd": {}, "torch": {}}

    def record(lib: str, result: dict[str, Any], group: Sequence[str]) -> None:
        for kind in group:
            entry = found[lib].setdefault(kind, {"times_ms": [], "memory": [], "workers": [], "threads": []})
            if "error" in result or "skipped" in result:
                entry.setdefault("error", result.get("error") or result.get("skipped"))
                continue
            got = result["kinds"][kind]
            entry["times_ms"].extend(got["times_ms"])
            if "products_ms" in got:
                entry.setdefault("products_ms", []).extend(got["products_ms"])
            entry["memory"].append(
                {k: v for k, v in got.items() if k not in ("times_ms", "products_ms", "threads")}
            )
            entry["threads"].append(got.get("threads"))
            entry["workers"].append({k: result.get(k) for k in ("pid", "openblas_env", "threads")})

    for _ in range(rounds):
        # quick: one process per library for all kinds (seconds matter more than isolation there)
        groups = [list(kinds)] if quick else [[k] for k in kinds]
        for group in groups:
            spec = {**base, "lib": "locograd", "kinds": group}
            record("locograd", run_worker(spec, envs["locograd"], args.timeout), group)
            torch_group = [k for k in group if k in model.TORCH_KINDS]
            if with_torch and torch_group:
                spec = {**base, "lib": "torch", "kinds": torch_group}
                record("torch", run_worker(spec, envs["torch"], args.timeout), torch_group)
    return found


def matmul_rate(
    args: argparse.Namespace, sizes: list[int], batch: int, lib: str, cnn: bool = False
) -> dict[str, Any]:
    """This machine's float32 matmul rate over the network's products (NumPy's BLAS or PyTorch);
    ``cnn``: over the CNN's products at its batch (:func:`locograd.bench.model.cnn_products`)."""
    env = worker_env(args.threads, args.unset_openblas and lib == "locograd")
    spec = {
        "lib": lib,
        "matmul": True,
        "cnn": cnn,
        "quick": args.quick,
        "sizes": sizes,
        "batch": batch,
        "threads": args.threads,
        "device": args.device,
        "repeats": 3 if args.quick else 10,
    }
    result = run_worker(spec, env, args.timeout)
    if "matmul" not in result:
        return {"error": result.get("error") or result.get("skipped")}
    rows = result["matmul"]
    flop = sum(2.0 * r["rows"] * r["d_in"] * r["d_out"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    return {"gflops": flop / seconds / 1e9, "products": rows, "blas": result.get("threads")}


def summarise(
    found: dict[str, dict[str, Any]],
    sizes: list[int],
    batch: int,
    rate: float | None,
    cnn_rates: dict[str, float | None] | None = None,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """One row per (kind, lib): median/mean ms, FLOPs, GFLOP/s, fraction of the matmul rate, ratio to PyTorch, memory.

    Rows with ``products_ms`` (locograd's BackProp) also get ``products_ms_median`` and
    ``outside_products`` = 1 - products median / step median.  The CNN kinds run at their own
    batch (:func:`locograd.bench.model.batch_of`) and compare with ``cnn_rates["locograd"]``, NumPy's
    matmul rate over the CNN's products; their ``outside_products`` is 1 - the step's FLOPs at the
    library's own rate over those products (``cnn_rates[lib]``) / the step, and PyTorch's rows name
    the memory format it ran in (``layout``).
    """
    rows = []
    for kind in model.KINDS:
        for lib in ("locograd", "torch"):
            entry = found[lib].get(kind)
            if entry is None:
                continue
            times = entry["times_ms"]
            row: dict[str, Any] = {
                "kind": kind,
                "label": model.LABELS[kind],
                "lib": lib,
                "batch": model.batch_of(kind, batch, quick),
            }
            if not times:
                row["error"] = entry.get("error", "no samples")
                rows.append(row)
                continue
            # a periodic kind's cost is its mean over whole periods; any other's, the median step
            ms = float(statistics.fmean(times)) if kind in model.PERIODIC else _median(times)
            flop = model.flops(kind, sizes, row["batch"], lib, quick)
            cnn_rates = cnn_rates or {}
            kind_rate = cnn_rates.get("locograd") if kind in model.CNN_KINDS else rate
            row.update(
                ms=ms,
                ms_median=_median(times),
                ms_mean=float(statistics.fmean(times)),
                ms_min=float(min(times)),
                samples=len(times),
                flops=flop,
                gflops=flop / ms / 1e6,
                fraction_of_matmul_rate=(flop / ms / 1e6) / kind_rate if kind_rate else None,
            )
            if entry["memory"] and "layout" in entry["memory"][0]:
                row["layout"] = entry["memory"][0]["layout"]
                row["layout_trial_ms"] = entry["memory"][0]["layout_trial_ms"]
            for key in ("rss_peak_mb", "tracemalloc_peak_mb", "device_peak_mb"):
                values = [m[key] for m in entry["memory"] if m.get(key) is not None]
                if values:
                    row[key] = max(values)
            row["memory_window_steps"] = (
                entry["memory"][0].get("memory_window_steps") if entry["memory"] else None
            )
            products = entry.get("products_ms")
            own_rate = cnn_rates.get(lib)
            if kind in model.CNN_KINDS and own_rate:
                row["outside_products"] = 1.0 - (flop / ms / 1e6) / own_rate
            if products:
                # the share of the step spent outside its matrix products (elementwise work, overheads)
                row["products_ms_median"] = _median(products)
                row["outside_products"] = 1.0 - row["products_ms_median"] / row["ms_median"]
                row["products_ms"] = products
            # the threads the kind ran with (BLAS pools, PyTorch's, locograd's elementwise ones)
            row["threads_seen"] = entry["threads"][0] if entry.get("threads") else None
            row["times_ms"] = times
            rows.append(row)
    by = {(r["kind"], r["lib"]): r for r in rows}
    for r in rows:
        other = by.get((r["kind"], "torch"))
        if r["lib"] == "locograd" and other and "ms" in other and "ms" in r:
            r["ratio_to_torch"] = r["ms"] / other["ms"]
            key = "device_peak_mb" if "device_peak_mb" in r else "rss_peak_mb"
            if r.get(key) is not None and other.get(key):
                r["memory_ratio_to_torch"] = r[key] / other[key]
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    """A fraction as a whole percentage for the table (``9 %``), ``-`` if there is none."""
    return "-" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None) -> str:
    """A measurement for the table: whole numbers from 100, one decimal from 1, else 3 digits."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = (
        "| step | lib | ms (median) | ms (mean) | GFLOP | GFLOP/s | % matmul rate | vs torch "
        "| peak MB | peak MB (traced) | mem vs torch | outside products |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['lib']} | {r['error']} |")
            continue
        frac = r.get("fraction_of_matmul_rate")
        mem = r.get("device_peak_mb", r.get("rss_peak_mb"))
        lib = f"{r['lib']} ({r['layout']})" if "layout" in r else r["lib"]
        lines.append(
            f"| {r['label']} | {lib} | {_num(r['ms_median'])} | {_num(r['ms_mean'])} | {_num(r['flops'] / 1e9)} "
            f"| {r['gflops']:.1f} | {_fmt(None if frac is None else 100 * frac, '.0f')} "
            f"| {_fmt(r.get('ratio_to_torch'), '.2f')} | {_num(mem)} "
            f"| {_num(r.get('tracemalloc_peak_mb'))} | {_fmt(r.get('memory_ratio_to_torch'), '.2f')} "
            f"| {_pct(r.get('outside_products'))} |"
        )
    lines.append("")
    lines.append(
        "GFLOP/s, % of the matmul rate and the ratios use the median step; K-FAC and Shampoo use the mean "
        f"over whole periods ({', '.join(f'{k} {v}' for k, v in model.UPDATE_EVERY.items())} steps, their refresh included). Peak MB: on the CPU the resident "
        "memory (RSS) above the start of a step, on the GPU the device allocations above the start; traced: the "
        "NumPy allocations tracemalloc sees; over one step (K-FAC, Shampoo: one period). Outside products "
        "(BackProp): 1 - the median time of the step's matrix products alone (replayed on a real pass's "
        "operands, same shapes, transposes and out= buffers) / the median step. The CNN kinds run at batch "
        f"{model.CNN_BATCH} ({model.CNN_QUICK_BATCH} with --quick); their % matmul rate is against NumPy's rate "
        "over the CNN's own products (the patch matrices' shapes), and outside products is 1 - the time "
        "their FLOPs take at the library's own rate over those products / the median step; PyTorch's CNN "
        "rows name the faster memory format of the two it tried (nchw or channels_last)."
    )
    return "\n".join(lines)


def scaling(args: argparse.Namespace, with_torch: bool, repeats: int) -> list[dict[str, Any]]:
    """BackProp and LocoProp-M over batches and widths; time per step and its growth from the smallest.

    ``args.scaling_batches`` / ``args.scaling_widths``: lists of integers >= 1 (see :func:`check_args`).
    """
    batches, widths = args.scaling_batches, args.scaling_widths
    rows: list[dict[str, Any]] = []
    for width in widths:
        sizes = sizes_for(width, args.quick)
        for batch in batches:
            found = measure(
                args,
                sizes,
                batch,
                ["backprop", "locoprop_m"],
                with_torch,
                repeats,
                1,
                memory=False,
                width=width,
                products=False,
            )
            for r in summarise(found, sizes, batch, None):
                r.pop("times_ms", None)
                rows.append({"batch": batch, "width": width, **r})
    ms = {(r["kind"], r["lib"], r["width"], r["batch"]): r["ms"] for r in rows if "ms" in r}
    for r in rows:
        if "ms" in r:
            same_width = ms.get((r["kind"], r["lib"], r["width"], batches[0]))
            same_batch = ms.get((r["kind"], r["lib"], widths[0], r["batch"]))
            r["growth_vs_batch"] = r["ms"] / same_width if same_width else None
            r["growth_vs_width"] = r["ms"] / same_batch if same_batch else None
            r["us_per_example"] = 1e3 * r["ms"] / r["batch"]
    return rows


def scaling_table(rows: list[dict[str, Any]]) -> str:
    """The scaling rows as a Markdown table."""
    lines = [
        "| width | batch | step | lib | ms | us/example | x first batch | x first width | GFLOP/s | vs torch |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "ms" not in r:
            lines.append(f"| {r['width']} | {r['batch']} | {r['label']} | {r['lib']} | {r.get('error')} |")
            continue
        lines.append(
            f"| {r['width']} | {r['batch']} | {r['label']} | {r['lib']} | {_num(r['ms'])} "
            f"| {r['us_per_example']:.1f} | {_fmt(r['growth_vs_batch'], '.1f')} "
            f"| {_fmt(r['growth_vs_width'], '.1f')} | {r['gflops']:.1f} "
            f"| {_fmt(r.get('ratio_to_torch'), '.2f')} |"
        )
    return "\n".join(lines)


MAX_PER_CORE = 4
"""``--threads`` and the other thread counts may be at most this many times the machine's cores."""
MAX_BATCH = 100_000
"""The largest ``--batch``: 100,000 rows of the MNIST autoencoder hold about 3 GB of activations."""
MAX_WIDTH = 16
"""The largest ``--width`` multiplier (16 x 1000 hidden units already needs gigabytes per step)."""


def check_args(args: argparse.Namespace) -> list[str]:
    """Check every option before anything runs; returns the step kinds, puts the rest in canonical form.

    Before, a bad ``--out`` (a folder, or under a file) or ``--scaling-batches``
    (``abc``, ``0``) failed with a traceback only after the whole benchmark had
    run, ``--timeout nan`` / ``0`` after the first worker, and ``--kinds ""`` ran nothing.

    Raises:
        ValueError: one line naming the option, e.g. ``"scaling-batches: expected comma-separated
            integers >= 1, got 'abc'"``.
    """
    kinds = [canonical_choice("kinds", k, model.KINDS) for k in args.kinds.split(",") if k.strip()]
    if not kinds:
        raise ValueError(
            f"kinds: expected comma-separated step kinds from {', '.join(model.KINDS)}, got {args.kinds!r}"
        )
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds: a step kind is repeated in {args.kinds!r}")
    cores = os.cpu_count() or 1
    for name in ("threads", "layer_workers", "elementwise_threads"):  # 10,000 threads hung the machine
        integer(name.replace("_", "-"), getattr(args, name), minimum=1, maximum=MAX_PER_CORE * cores)
    integer("width", args.width, minimum=1, maximum=MAX_WIDTH)
    for name in ("repeats", "rounds"):
        if getattr(args, name) is not None:  # None: the default of --quick or not
            integer(name, getattr(args, name), minimum=1)
    if args.batch is not None:  # 10**8 rows filled a table cell with a worker's traceback
        integer("batch", args.batch, minimum=1, maximum=MAX_BATCH)
    if args.scaling_batches is not None and not args.scaling:
        raise ValueError("scaling-batches: only applies with --scaling; add --scaling or drop it")
    if args.scaling_widths != "1,2" and not args.scaling:
        raise ValueError("scaling-widths: only applies with --scaling; add --scaling or drop it")
    args.timeout = number("timeout", args.timeout, low=0, low_open=True)
    args.device = canonical_choice("device", args.device, ("cpu", "gpu"))
    default = "4,8,16" if args.quick else "100,1000,10000"
    args.scaling_batches = integer_list("scaling-batches", args.scaling_batches or default, minimum=1)
    args.scaling_widths = integer_list("scaling-widths", args.scaling_widths, minimum=1)
    if args.out is not None:
        args.out = output_file("out", args.out)
    if args.device == "gpu":
        from locograd import backend

        if not backend.has_gpu():
            raise ValueError("device: gpu needs CuPy and a usable CUDA device; none was found")
    return kinds


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Run the benchmark; 0 when every locograd measurement succeeded, 1 otherwise, 2 on bad options.

    Every option is checked first (:func:`check_args`); a bad one is one line on
    stderr, ``<prog>: error: <option>: expected ..., got ...``, and exit status 2.
    """
    args = build_parser(prog).parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        kinds = check_args(args)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    repeats = args.repeats or (2 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 2)
    batch = args.batch or (16 if args.quick else 1000)
    sizes = sizes_for(args.width, args.quick)
    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    started = time.time()

    report: dict[str, Any] = {
        "command": f"{prog} " + shlex.join(argv),
        "machine": machine_info(args.device == "gpu"),
        "settings": {
            "sizes": sizes,
            "batch": batch,
            "width": args.width,
            "dtype": "float32",
            "device": args.device,
            "threads": args.threads,
            "layer_workers": args.layer_workers,
            "elementwise_threads": args.elementwise_threads,
            "repeats": repeats,
            "rounds": rounds,
            "quick": args.quick,
            "gamma": model.GAMMA,
            "inner_steps": model.INNER_STEPS,
            "update_every": model.UPDATE_EVERY,
            # what experiments.optimizers.build gets (it adds the within-batch factor to LocoProp's GD)
            "optimizers": {kind: model.optimizer_settings(kind) for kind in kinds},
            "locograd_openblas_env": "unset (--unset-openblas)" if args.unset_openblas else "as set",
            "torch": with_torch,
        },
    }
    report["matmul"] = {"locograd": matmul_rate(args, sizes, batch, "locograd")}
    if with_torch:
        report["matmul"]["torch"] = matmul_rate(args, sizes, batch, "torch")
    rate = report["matmul"]["locograd"].get("gflops")
    cnn_rates: dict[str, float | None] = {}
    if set(kinds) & set(model.CNN_KINDS):
        report["matmul_cnn"] = {"locograd": matmul_rate(args, sizes, batch, "locograd", cnn=True)}
        if with_torch:
            report["matmul_cnn"]["torch"] = matmul_rate(args, sizes, batch, "torch", cnn=True)
        cnn_rates = {lib: measured.get("gflops") for lib, measured in report["matmul_cnn"].items()}
    found = measure(args, sizes, batch, kinds, with_torch, repeats, rounds)
    rows = summarise(found, sizes, batch, rate, cnn_rates, args.quick)
    report["steps"] = rows
    workers = [w for e in found["locograd"].values() for w in e.get("workers", [])]
    seen_env = workers[0]["openblas_env"] if workers else None
    report["settings"]["locograd_openblas_env_seen"] = seen_env

    env_line = ", ".join(f"{k}={v if v is not None else '<unset>'}" for k, v in (seen_env or {}).items())
    mode = "removed by --unset-openblas" if args.unset_openblas else "as set by the machine"
    torch_rate = report["matmul"].get("torch", {}).get("gflops")
    machine = report["machine"]
    print(f"command:  {report['command']}")
    pools = (report["matmul"]["locograd"].get("blas") or {}).get("blas") or []
    blas = ", ".join(f"{p['internal_api']} {p['version']} ({p['architecture']})" for p in pools) or "unknown"
    report["settings"]["locograd_workers_blas"] = blas
    print(
        f"machine:  {machine['cpu']}, {machine['cores']} cores; NumPy {machine['numpy']}, "
        f"locograd workers' BLAS {blas} (kernel in brackets)"
    )
    print(f"          {torch_line(machine['torch'])}")
    gpu = machine.get("gpu")
    if gpu:
        details = ", ".join(
            text
            for key, text in (
                ("memory_gb", f"{gpu.get('memory_gb')} GiB"),
                ("compute_capability", f"compute {gpu.get('compute_capability')}"),
                ("cuda_runtime", f"CUDA runtime {gpu.get('cuda_runtime')}"),
                ("cupy", f"CuPy {gpu.get('cupy')}"),
            )
            if key in gpu
        )
        used = "" if gpu.get("used", True) else " (not used)"
        print(f"gpu:      {gpu['name']}{used}" + (f"; {details}" if details else ""))
    print(
        f"settings: sizes {'-'.join(map(str, sizes))}, batch {batch}, float32, {args.device}, {args.threads} thread(s), "
        f"{args.elementwise_threads} elementwise thread(s), "
        f"{repeats} timed steps x {rounds} round(s) per kind"
        + (
            f"; LocoProp layers on {args.layer_workers} threads, "
            f"{model.blas_threads('locoprop_m', args.threads, args.layer_workers)} BLAS thread(s) and "
            f"{model.blas_threads('locoprop_m', args.elementwise_threads, args.layer_workers)} "
            "elementwise thread(s) each"
            if args.layer_workers > 1
            else ""
        )
    )
    print(f"locograd workers' OpenBLAS variables ({mode}): {env_line or 'n/a'}")
    print(
        f"float32 matmul rate over the layer shapes: NumPy {_fmt(rate, '.1f')} GFLOP/s"
        + (f", PyTorch {_fmt(torch_rate, '.1f')} GFLOP/s" if with_torch else "")
    )
    if cnn_rates:
        cnn_batch = model.batch_of("cnn_backprop", batch, args.quick)
        print(
            f"float32 matmul rate over the CNN's products (batch {cnn_batch}): "
            f"NumPy {_fmt(cnn_rates['locograd'], '.1f')} GFLOP/s"
            + (f", PyTorch {_fmt(cnn_rates.get('torch'), '.1f')} GFLOP/s" if with_torch else "")
        )
    if not with_torch:
        print("PyTorch: not run (" + ("--no-torch" if args.no_torch else "not installed") + ")")
    print()
    print(table(rows))

    if args.scaling:
        scale_rows = scaling(args, with_torch, max(2, repeats // 3))
        report["scaling"] = scale_rows
        print()
        print(scaling_table(scale_rows))
    report["seconds"] = time.time() - started
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.out}")
    failed = [r for r in rows if r["lib"] == "locograd" and "error" in r]
    return 1 if failed or "error" in report["matmul"]["locograd"] else 0
