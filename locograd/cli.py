"""The ``locograd`` command line (also ``python -m locograd``).

Subcommands:

* ``locograd info``: version, array backends, BLAS, whether a GPU is usable.
* ``locograd demo``: one forward/backward pass on a tiny autoencoder, with the
  hand-written gradients checked against the tape and by the dot-product test.
* ``locograd verify``: LocoProp's identities on random problems, as a pass/fail table.
* ``locograd train``: one optimizer on a deep autoencoder (progress bar, metrics, plots, checkpoints).
* ``locograd compare``: several optimizers on the same data and initialisation, a table and a plot.
* ``locograd sweep``: short trainings over a grid of settings, best first.
* ``locograd bench``: the benchmark of every step kind against PyTorch and the matmul rate
  (:mod:`locograd.bench`; also ``python -m benchmarks`` in a source checkout).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, autodiff, backend
from .network import MLP
from .testing import check_vjp, relative_error

if TYPE_CHECKING:
    from .experiments import TrainConfig


def _info(_: argparse.Namespace) -> int:
    import scipy

    cupy_line = "not installed"
    cp = backend._cupy()
    if cp is not None:
        cupy_line = f"{cp.__version__}"
    gpu = backend.has_gpu()
    gpu_line = "no"
    if gpu:
        cp = backend.cupy_module()
        props = cp.cuda.runtime.getDeviceProperties(0)
        gpu_line = f"yes ({props['name'].decode()})"
    print(f"locograd  {__version__}")
    print(f"python    {platform.python_version()} ({platform.machine()})")
    print(f"numpy     {np.__version__}")
    print(f"scipy     {scipy.__version__}")
    print(f"cupy      {cupy_line}")
    print(f"backends  numpy{', cupy' if gpu else ''}")
    print(f"blas      {backend.blas_info()}")
    print(f"gpu       {gpu_line}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    device = "gpu" if args.device == "gpu" else "cpu"
    net = MLP([16, 8, 3, 8, 16], ["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy")
    with backend.default_device(device):
        params = net.init(seed=args.seed, bias="glorot")
        x = backend.asarray(rng.random((32, 16)))
    net.backward(params, net.forward(params, x), x)  # warm-up: the first GPU call compiles kernels
    start = time.perf_counter()
    trace = net.forward(params, x)
    grads = net.backward(params, trace, x)
    elapsed = time.perf_counter() - start
    print(f"{net} on {device}, batch 32")
    print(f"loss {float(grads.loss):.6f}; forward+backward {1e3 * elapsed:.2f} ms (after one warm-up pass)")
    for m, a in enumerate(trace.pre):
        print(
            f"  layer {m}: pre-activation {tuple(a.shape)}, |dL/dA| = {float((grads.pre[m] ** 2).sum()) ** 0.5:.3e}"
        )

    def tape_loss(p: list[dict[str, autodiff.Tensor]]) -> autodiff.Tensor:
        h: autodiff.Tensor | np.ndarray = x
        for layer, t in zip(p, net.transfers, strict=True):
            a = h @ layer["W"] + layer["b"]
            h = getattr(autodiff, t.name)(a)
        return (autodiff.softplus(a) - x * a).sum() / x.shape[0]

    tape = autodiff.grad(tape_loss)(params)
    hand = grads.as_params()
    print(f"hand-written vs tape gradients: max relative error {relative_error(hand, tape):.2e}")
    err = check_vjp(
        lambda p: backend.array_namespace(x).asarray(net.loss(p, x, x)),
        lambda p, u: [{k: u * v for k, v in layer.items()} for layer in grads.as_params()],
        params,
    )
    print(f"dot-product test (check_vjp): max relative error {err:.2e}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import format_table, run_checks

    start = time.perf_counter()
    rows = run_checks(seed=args.seed, trials=args.trials, inject=args.inject)
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def _run_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    from .data import DATASETS
    from .experiments.training import PRESETS

    parser.add_argument("--dataset", default="curves", help=f"one of {', '.join(DATASETS)} (default curves)")
    parser.add_argument("--epochs", type=int, help="total epochs (default per data set; official: 99)")
    parser.add_argument("--batch-size", type=int, help="default 200 on curves, 1000 on MNIST-format sets")
    parser.add_argument("--seed", type=int, default=0, help="data generation, initialisation and shuffling")
    parser.add_argument("--out", default=out_default, help=f"output folder (default {out_default})")
    parser.add_argument(
        "--data-dir", help="folder with the MNIST-format files (else LOCOGRAD_DATA, then known places)"
    )
    parser.add_argument("--limit-train", type=int, help="use only the first N training examples")
    parser.add_argument(
        "--preset", choices=PRESETS, help="official: the released configuration on the MNIST autoencoder"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.npz up to --epochs"
    )
    parser.add_argument("--device", choices=backend.DEVICES, default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--lr", type=float, help="learning rate (LocoProp: of the inner optimizer)")
    parser.add_argument("--gamma", type=float, help="LocoProp target step")
    parser.add_argument("--eta", type=float, help="LocoProp proximal weight (default none)")
    parser.add_argument("--steps", type=int, help="LocoProp inner steps K")
    parser.add_argument("--solver", choices=("gd", "exact"), help="LocoProp local solver")
    parser.add_argument("--inner", help="LocoProp inner optimizer (default rmsprop_tf1)")
    parser.add_argument("--damping", type=float, help="K-FAC/FOOF damping, Shampoo epsilon")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1, predictable on a shared machine: with the other core busy, 2 threads "
        "ran these products 2-4x slower on a 2-core machine, while on the same machine left quiet they "
        "ran 1.3-1.7x faster; 0 keeps the BLAS default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="LocoProp: solve this many layers at once on threads (same results; e.g. 2 on 2 cores "
        "with --threads 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace, optimizer: str) -> TrainConfig:
    from .experiments import TrainConfig

    return TrainConfig(
        dataset=args.dataset,
        optimizer=optimizer,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        preset=args.preset,
        device=args.device,
        dtype=args.dtype,
        lr=args.lr,
        gamma=args.gamma,
        eta=args.eta,
        steps=args.steps,
        solver=args.solver,
        inner=args.inner,
        damping=args.damping,
        workers=args.workers,
        progress=not args.no_progress,
    )


def _blas_threads(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    if args.threads < 0:
        raise ValueError(f"threads: expected an integer >= 0, got {args.threads}")
    if args.threads == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=args.threads, user_api="blas")


def _train(args: argparse.Namespace) -> int:
    from .experiments import train

    with _blas_threads(args):
        history = train(_config(args, args.optimizer), resume=args.resume)
    last = history[-1]
    print(
        f"{args.optimizer} on {args.dataset}: epoch {last['epoch']}, train loss {last['train_loss']:.4f}, "
        f"test loss {last['test_loss']:.4f}, {last['seconds']:.1f} s training; results in {args.out}"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .experiments import compare, format_summary

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    with _blas_threads(args):
        summary = compare(_config(args, names[0] if names else ""), names, resume=args.resume)
    print(format_summary(summary))
    print(f"curves: {args.out}/compare.png; numbers: {args.out}/summary.json")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import format_sweep, parse_grid, sweep

    grid = parse_grid(args.grid)
    with _blas_threads(args):
        rows = sweep(_config(args, args.optimizer), grid)
    print(format_sweep(rows))
    best = rows[0]
    if best["diverged"]:
        print("every setting diverged")
        return 1
    print("best: " + ", ".join(f"{k}={best[k]:g}" for k in grid) + f" (results in {args.out}/sweep.json)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``locograd`` command."""
    parser = argparse.ArgumentParser(prog="locograd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"locograd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from .experiments.optimizers import OPTIMIZERS

    sub.add_parser("info", help="version, backends, BLAS, GPU").set_defaults(func=_info)
    demo = sub.add_parser("demo", help="a tiny forward/backward pass with gradient checks")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", choices=backend.DEVICES, default="cpu")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser("verify", help="check LocoProp's identities on random problems, as a table")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--trials", type=int, default=5, help="random problems per identity")
    verify.add_argument(
        "--inject",
        choices=("none", "f-of-shifted-pre-activation", "dl-dy"),
        default="none",
        help="use a wrong M target convention, to see the table fail",
    )
    verify.set_defaults(func=_verify)
    train = sub.add_parser("train", help="train a deep autoencoder with one optimizer")
    train.add_argument("--optimizer", required=True, help=", ".join(OPTIMIZERS))
    _run_options(train, "runs/train")
    train.set_defaults(func=_train)
    compare = sub.add_parser("compare", help="several optimizers on the same data and initialisation")
    compare.add_argument(
        "--optimizers", default="rmsprop,locoprop-s,locoprop-m", help="comma-separated names"
    )
    _run_options(compare, "runs/compare")
    compare.set_defaults(func=_compare)
    sweep = sub.add_parser("sweep", help="short trainings over a grid of settings; reports the best")
    sweep.add_argument("--optimizer", required=True, help=", ".join(OPTIMIZERS))
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        help="NAME=V1,V2,... (lr, gamma, eta, steps, damping, batch_size); repeatable",
    )
    _run_options(sweep, "runs/sweep")
    sweep.set_defaults(func=_sweep)
    sub.add_parser(
        "bench",
        help="time every step kind against PyTorch and the matmul rate (locograd bench --help)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark has its own options and help
        from .bench import main as bench_main

        return bench_main(argv[1:], prog="locograd bench")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        where = f"; the last checkpoint in {out} is intact (continue with --resume)" if out else ""
        print(f"locograd: interrupted{where}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"locograd: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
