"""What the per-layer update record (``update_ratio`` in ``metrics.jsonl``) costs, as a share of a step.

Steps an optimizer as ``locograd train`` builds it (:func:`locograd.experiments.optimizers.build`,
``donate=True``) and times, in alternating pairs within one run, a training step alone and a step
followed by :meth:`locograd.experiments.records.UpdateRatios.after` (the training loop's record).
Per case it prints the median step time, the median time of the record and its share of the
median step (the cost, timed apart), and the median of the per-pair ratios with/alone (the same
cost plus the machine's noise).

Prints the CPU model.  Run it on a quiet machine: other work on the cores shows as noise.

Cases: the Fashion-MNIST deep autoencoder (784-1000-500-250-30 and mirror, tanh, batch 1000;
Fashion-MNIST's images when installed, else uniform random images of that shape) with Adam
BackProp and with LocoProp-M, and the benchmarked CNN (:func:`locograd.bench.model.cnn_network`,
28x28x1 images, 10 classes) at batch 100 with Adam BackProp, on random images and labels.

    python scripts/update_ratio_cost.py            # 1 BLAS thread
    python scripts/update_ratio_cost.py --pairs 30 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from locograd.bench.model import cnn_network
from locograd.data import DataError
from locograd.data import load as load_dataset
from locograd.experiments.models import autoencoder
from locograd.experiments.optimizers import build, settings
from locograd.experiments.records import UpdateRatios
from locograd.experiments.training import initial_params
from locograd.locoprop import LocoPropWarning
from locograd.nn import Sequential


def cpu_model() -> str:
    """The ``model name`` line of ``/proc/cpuinfo`` (``unknown`` where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def fashion_batch(batch: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``batch`` Fashion-MNIST training images in [0, 1] (float32), or uniform random ones if it is not installed."""
    try:
        data = load_dataset("fashion-mnist", limit_train=batch, seed=0)
        return np.ascontiguousarray(data.x_train[:batch], dtype=np.float32), "Fashion-MNIST images"
    except DataError:
        return rng.random((batch, 784), dtype=np.float32), "random images (Fashion-MNIST not installed)"


def measure(
    net: Sequential, optimizer: str, x: np.ndarray, y: np.ndarray, pairs: int, warmup: int
) -> dict[str, float]:
    """The median step, the median record and its share of the step, and the median per-pair ratio
    with/alone, over ``pairs`` pairs (which of the two comes first alternates)."""
    params = initial_params(net, 0, np.float32, "cpu")
    opt = build(net, settings(optimizer, "fashion-mnist"), 1, donate=True)
    state = opt.init(params)
    record = UpdateRatios(net)
    record.start(params)
    alone: list[float] = []
    records: list[float] = []
    ratios: list[float] = []
    for i in range(warmup + pairs):
        timing = {}
        for recorded in (False, True) if i % 2 == 0 else (True, False):
            t0 = time.perf_counter()
            params, state, info = opt.step(params, x, y, state)
            float(info.loss)
            t1 = time.perf_counter()
            record.after(params)  # after every step: the kept copy stays the weights before the next
            t2 = time.perf_counter()
            timing[recorded] = t2 - t0 if recorded else t1 - t0
            if i >= warmup and recorded:
                records.append(t2 - t1)
        if i >= warmup:
            alone.append(timing[False])
            ratios.append(timing[True] / timing[False])
    step = statistics.median(alone)
    return {
        "step": step,
        "record": statistics.median(records),
        "share": statistics.median(records) / step,
        "paired": statistics.median(ratios),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12, help="timed pairs per case (default 12)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed pairs first (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=LocoPropWarning)  # LocoProp-M's targets: not the subject
    for name in ("pairs", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup: expected an integer >= 0, got {args.warmup}")
    rng = np.random.default_rng(0)
    x_ae, source = fashion_batch(1000, rng)
    x_cnn = rng.random((100, 28, 28, 1), dtype=np.float32)
    y_cnn = rng.integers(0, 10, size=100)
    cases = [
        ("autoencoder, adam, batch 1000", autoencoder("fashion-mnist"), "adam", x_ae, x_ae, args.pairs),
        (
            "autoencoder, locoprop-m, batch 1000",
            autoencoder("fashion-mnist"),
            "locoprop-m",
            x_ae,
            x_ae,
            max(3, args.pairs // 3),
        ),
        ("cnn, adam, batch 100", cnn_network(), "adam", x_cnn, y_cnn, args.pairs),
    ]
    print(f"CPU: {cpu_model()}; BLAS threads {args.threads}; autoencoder data: {source}")
    print(f"{'case':<38} {'step ms':>8} {'record ms':>10} {'record/step':>12} {'with/alone':>11}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for label, net, optimizer, x, y, pairs in cases:
            r = measure(net, optimizer, x, y, pairs, args.warmup)
            print(
                f"{label:<38} {1e3 * r['step']:8.1f} {1e3 * r['record']:10.3f} {100 * r['share']:11.2f}% "
                f"{r['paired']:11.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
