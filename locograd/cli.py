"""The ``locograd`` command line (also ``python -m locograd``).

Subcommands:

* ``locograd info``: version, array backends, BLAS, whether a GPU is usable.
* ``locograd demo``: one forward/backward pass on a tiny autoencoder, with the
  hand-written gradients checked against the tape and by the dot-product test.
* ``locograd verify``: LocoProp's identities on random problems, as a pass/fail table.
* ``locograd train``: one optimizer on a deep autoencoder (progress bar, metrics, plots, checkpoints).
* ``locograd compare``: several optimizers on the same data and initialisation, a table and a plot.
* ``locograd study``: a seeded, resumable comparison of optimizers from a TOML spec
  (:mod:`locograd.study`), on a local process pool or a Dask cluster.
* ``locograd bench``: the benchmark of every step kind against PyTorch and the matmul rate
  (:mod:`locograd.bench`; also ``python -m benchmarks`` in a source checkout).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, autodiff, backend
from .nn import MLP
from .testing import check_vjp, relative_error
from .validators import OneLineParser, canonical_choice, integer

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
    seed = integer("seed", args.seed, minimum=0)
    device = canonical_choice("device", args.device, backend.DEVICES)
    if device == "gpu" and not backend.has_gpu():
        raise ValueError("device: gpu needs CuPy and a usable CUDA device; none was found")
    rng = np.random.default_rng(seed)
    net = MLP([16, 8, 3, 8, 16], ["tanh", "identity", "tanh", "sigmoid"], "sigmoid_cross_entropy")
    with backend.default_device(device):
        params = net.init(seed=seed, bias="glorot")
        x = backend.asarray(rng.random((32, 16)))
    net.backward(params, net.forward(params, x), x)  # warm-up: the first GPU call compiles kernels
    start = time.perf_counter()
    trace = net.forward(params, x)
    grads = net.backward(params, trace, x)
    elapsed = time.perf_counter() - start
    assert grads.loss is not None  # backward computes it
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
    from .experiments.config import PRESETS

    parser.add_argument(
        "--dataset",
        help=f"one of {', '.join(DATASETS)} (default curves; with --preset official, mnist); "
        "case and _/- do not matter; or PATH.npz, your own data: x_train and x_test, plus y_train and "
        "y_test for a classifier",
    )
    parser.add_argument(
        "--model",
        default="autoencoder",
        help="autoencoder (default: the data set's own, the target is the input) or classifier "
        "(tanh 1000-500-250 and a softmax over the labels' classes; --widths changes the hidden widths)",
    )
    parser.add_argument(
        "--widths",
        help="comma-separated hidden widths: the classifier's, or the autoencoder's encoder (code layer last)",
    )
    parser.add_argument(
        "--epochs", type=int, help="total epochs (default 5 on curves, 10 otherwise; official: 99)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="default 200 on curves, 1000 on MNIST-format sets and files, 100 for a classifier",
    )
    parser.add_argument("--seed", type=int, default=0, help="data generation, initialisation and shuffling")
    parser.add_argument("--out", default=out_default, help=f"output folder (default {out_default})")
    parser.add_argument(
        "--data-dir", help="folder with the MNIST-format files (else LOCOGRAD_DATA, then known places)"
    )
    parser.add_argument("--limit-train", type=int, help="use only the first N training examples")
    parser.add_argument(
        "--validation",
        type=int,
        default=0,
        help="hold out the last N training examples: validation loss (and accuracy) every epoch, never trained on",
    )
    parser.add_argument(
        "--preset",
        help=f"one of {', '.join(PRESETS)}; official: the released configuration of the MNIST autoencoder "
        "(locoprop-m, or its baseline rmsprop-tf1, on mnist or fashion-mnist, at most 99 epochs)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.npz up to --epochs"
    )
    parser.add_argument("--device", default="cpu", help=f"one of {', '.join(backend.DEVICES)} (default cpu)")
    parser.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    parser.add_argument("--lr", type=float, help="learning rate (LocoProp: of the inner optimizer)")
    parser.add_argument(
        "--gamma",
        type=float,
        help="LocoProp target step (the -normalised variants, not in the paper: the RMS of every layer's "
        "target step, dimensionless, default 0.01)",
    )
    parser.add_argument("--eta", type=float, help="LocoProp proximal weight (default none)")
    parser.add_argument("--steps", type=int, help="LocoProp inner steps K")
    parser.add_argument("--solver", help="LocoProp local solver: gd (default) or exact")
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
        help="LocoProp: solve this many layers at once on threads (same results; default 1; e.g. 2 on 2 "
        "cores with --threads 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _widths(text: str | None) -> list[int] | None:
    """``--widths 500,100`` as ``[500, 100]``; ``None`` when not given."""
    if text is None:
        return None
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"widths: expected comma-separated integers >= 1, got {text!r}") from None
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths: expected comma-separated integers >= 1, got {text!r}")
    return widths


def _config(args: argparse.Namespace, optimizer: str | None) -> TrainConfig:
    """The run's config from the options (``train`` and ``compare`` resolve it, before any work).

    ``optimizer`` ``None``: the preset's (``--preset official``: locoprop-m); without
    a preset it is required.  ``--dataset`` not given: the preset's (mnist), else curves.
    """
    from .experiments import TrainConfig
    from .experiments.optimizers import OPTIMIZERS

    if optimizer is None and args.preset is None:
        raise ValueError(
            f"optimizer: expected --optimizer NAME with NAME one of {', '.join(OPTIMIZERS)}, "
            "or --preset official (which brings locoprop-m)"
        )
    integer("threads", args.threads, minimum=0)
    for flag, value in (("optimizer", optimizer), ("dataset", args.dataset)):
        if value is not None and not str(value).strip():  # before: "" silently meant the default
            raise ValueError(f"{flag}: expected a name, got {value!r}")
    config = TrainConfig(
        dataset=args.dataset or "",
        optimizer=optimizer or "",
        model=args.model,
        widths=_widths(args.widths),
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        limit_train=args.limit_train,
        validation=args.validation,
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
        workers=1 if args.workers is None else args.workers,
        progress=not args.no_progress,
    )
    return config


def _blas_threads(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    if integer("threads", args.threads, minimum=0) == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=args.threads, user_api="blas")


def _train(args: argparse.Namespace) -> int:
    from .experiments import resolve, train

    run = resolve(_config(args, args.optimizer))  # once: names, numbers, paths, before any work
    with _blas_threads(args):
        history = train(run, resume=args.resume)
    last = history[-1]
    print(
        f"{run.optimizer} on {run.dataset}: epoch {last['epoch']}, train loss {last['train_loss']:.4f}, "
        f"test loss {last['test_loss']:.4f}, {last['seconds']:.1f} s training; results in {args.out}"
    )
    return 0


MAIN_JOB_FIXED = (
    "dataset",
    "widths",
    "batch_size",
    "preset",
    "lr",
    "gamma",
    "eta",
    "steps",
    "solver",
    "inner",
    "damping",
    "data_dir",
)
"""The options the main job (``locograd compare`` without --optimizers) refuses: it fixes them."""


def _compare(args: argparse.Namespace) -> int:
    from .experiments import compare, format_summary, histories, reading
    from .experiments.compare import UPDATE_FIGURE
    from .experiments.optimizers import check_name

    if args.optimizers is None:
        return _main_job(args)
    names = [check_name(n) for n in args.optimizers.split(",") if n.strip()]
    if not names:
        raise ValueError("optimizers: expected at least one name (comma-separated)")
    if len(set(names)) != len(names):
        raise ValueError(f"optimizers: a name is repeated in {','.join(names)}")
    seeds = integer("seeds", 1 if args.seeds is None else args.seeds, minimum=1)
    jobs = integer("jobs", 1 if args.jobs is None else args.jobs, minimum=1)
    config = _config(args, names[0])
    with _blas_threads(args):  # compare resolves every run's settings once, before the first one trains
        summary = compare(
            config,
            names,
            resume=args.resume,
            seeds=seeds,
            layers=args.layers,
            jobs=jobs,
            threads=max(1, args.threads),
        )
    print(format_summary(summary))
    print(reading(histories(args.out, names, [args.seed + i for i in range(seeds)])))
    print(f"curves: {args.out}/compare.png; numbers: {args.out}/summary.json")
    figure = os.path.join(args.out, UPDATE_FIGURE)
    if args.layers and os.path.isfile(figure):
        print(f"per-layer update ratios: {figure}")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    """``locograd compare`` without --optimizers: LocoProp-M and Adam on the logistic and the tanh
    CURVES autoencoder (:mod:`locograd.experiments.main_job`)."""
    import dataclasses

    from .experiments import format_summary, main_job

    for option in MAIN_JOB_FIXED:
        if getattr(args, option) is not None:
            flag = "--" + option.replace("_", "-")
            raise ValueError(
                f"{option.replace('_', '-')}: the main job (compare without --optimizers) fixes it, with the "
                f"tuned settings of studies/curves-transfer.toml; drop {flag}, or name --optimizers"
            )
    if args.model != "autoencoder":
        raise ValueError(
            "model: the main job (compare without --optimizers) trains the CURVES autoencoder; drop --model, "
            "or name --optimizers"
        )
    if args.layers:
        raise ValueError("layers: the main job draws no per-layer figure; name --optimizers to get one")
    seeds = integer("seeds", main_job.SEEDS if args.seeds is None else args.seeds, minimum=1)
    jobs = integer("jobs", min(2, os.cpu_count() or 1) if args.jobs is None else args.jobs, minimum=1)
    config = _config(args, "adam")
    config = dataclasses.replace(config, dataset="curves", epochs=args.epochs or main_job.EPOCHS)
    with _blas_threads(args):
        summary, line = main_job.run(
            config, resume=args.resume, seeds=seeds, jobs=jobs, threads=max(1, args.threads)
        )
    print(format_summary(summary))
    print(line)
    print(f"curves: {args.out}/compare.png; numbers: {args.out}/summary.json")
    return 0


def _study(args: argparse.Namespace) -> int:
    from .study import run_study
    from .study.report import render

    try:
        summary = run_study(
            args.spec,
            args.out,
            jobs=args.jobs,
            threads=args.threads,
            scheduler=args.scheduler,
            cluster=args.cluster,
            device=args.device,
            progress=not args.no_progress,
            layers=args.layers,
        )
    except KeyboardInterrupt:
        where = f" in {args.out}" if args.out else ""
        print(
            f"locograd: interrupted; the finished trials{where} are kept and the unfinished ones continue "
            "from their checkpoints when the same command runs again",
            file=sys.stderr,
        )
        return 130
    report = render(summary)
    start = report.find("\n## ", report.find("## Machine"))
    print(report[start + 1 :] if start >= 0 else report, end="")
    if summary["failed"]:  # an incomplete study is not a success: its failed trials run again next time
        print(
            f"locograd: {len(summary['failed'])} trial(s) failed (see the report); run the same command "
            "again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def _study_parser(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    study = sub.add_parser(
        "study", help="tune, extend and compare optimizers from a TOML spec; resumable (studies/*.toml)"
    )
    study.add_argument("spec", help="the study spec, e.g. studies/smoke.toml")
    study.add_argument("--out", help="the study folder (default runs/study-NAME)")
    study.add_argument("--jobs", type=int, help="trials at once on the local pool (default cores / threads)")
    study.add_argument("--threads", type=int, help="BLAS threads per trial (default cores / jobs)")
    study.add_argument("--scheduler", help="run on the Dask cluster of this scheduler, e.g. tcp://HOST:8786")
    study.add_argument("--cluster", help="local:N: run on a Dask LocalCluster of N workers started for it")
    study.add_argument("--device", help="cpu or gpu (one trial per GPU); default the spec's")
    study.add_argument("--no-progress", action="store_true", help="no progress bar")
    study.add_argument(
        "--layers",
        action="store_true",
        help="also plot each weight layer's update ratio against epoch for the final runs "
        "(figures/DATASET-update-ratio.png)",
    )
    study.set_defaults(func=_study)


EXAMPLES = """examples:
  locograd compare                                   # the main job: LocoProp-M and Adam, logistic and tanh CURVES
  locograd train --optimizer locoprop-m --epochs 3   # one run; runs/train/metrics.jsonl, loss.png
  locograd train --model classifier --dataset fashion-mnist --optimizer adam --validation 5000
  locograd study studies/smoke.toml                  # successive halving, seeds, a report (runs/study-smoke)
  locograd verify                                    # LocoProp's identities on random problems
  locograd SUBCOMMAND --help                         # the options of one subcommand"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``locograd`` command."""
    parser = OneLineParser(
        prog="locograd",
        description="LocoProp, BackProp and second-order optimizers on NumPy/CuPy: train, compare, study.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"locograd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from .experiments.optimizers import OPTIMIZERS

    sub.add_parser("info", help="version, backends, BLAS, GPU").set_defaults(func=_info)
    demo = sub.add_parser("demo", help="a tiny forward/backward pass with gradient checks")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu", help=f"one of {', '.join(backend.DEVICES)} (default cpu)")
    demo.set_defaults(func=_demo)
    verify = sub.add_parser("verify", help="check LocoProp's identities on random problems, as a table")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--trials", type=int, default=5, help="random problems per identity (>= 1)")
    verify.add_argument(
        "--inject",
        default="none",
        help="none (default), f-of-shifted-pre-activation or dl-dy: use a wrong M target convention, "
        "to see the table fail",
    )
    verify.set_defaults(func=_verify)
    train = sub.add_parser("train", help="train an autoencoder, a classifier or a CNN with one optimizer")
    train.add_argument("--optimizer", help=", ".join(OPTIMIZERS) + " (required unless --preset brings one)")
    _run_options(train, "runs/train")
    train.set_defaults(func=_train)
    compare = sub.add_parser("compare", help="several optimizers on the same data and initialisation")
    compare.add_argument(
        "--optimizers",
        help="comma-separated names; without it, the main job: LocoProp-M and Adam on the logistic and "
        "the tanh CURVES autoencoder, tuned by studies/curves-transfer.toml, 3 epochs, 2 seeds",
    )
    compare.add_argument(
        "--seeds",
        type=int,
        help="runs per optimizer, with the seeds SEED to SEED+N-1 (default 1, the main job 2); N > 1: runs "
        "in OUT/NAME/seed-S/, the table and reading give mean ± sd over the seeds",
    )
    compare.add_argument(
        "--jobs",
        type=int,
        help="runs trained at once, each in its own process with --threads BLAS threads (default 1; the "
        "main job 2 where the machine has 2 cores or more); the same numbers, only the seconds differ",
    )
    compare.add_argument(
        "--layers",
        action="store_true",
        help="also plot each weight layer's update ratio ||dW||/||W|| against epoch (OUT/update-ratio.png)",
    )
    _run_options(compare, "runs/compare")
    compare.set_defaults(func=_compare)
    _study_parser(sub)
    sub.add_parser(
        "bench",
        help="time every step kind against PyTorch and the matmul rate (locograd bench --help)",
        add_help=False,
    )
    return parser


def on_disk(folder: str, runs: Sequence[str] | None = None) -> str:
    """What checkpoint is on disk in a run folder (or in each of its ``runs`` subfolders), in words.

    Used by the command line after an interruption, so that it says only what is true.

    >>> import tempfile
    >>> on_disk(tempfile.mkdtemp() + "/none")  # doctest: +ELLIPSIS
    'no checkpoint was written in .../none'
    """
    from .experiments.checkpoint import CheckpointError, read_epoch

    def epoch_of(path: str) -> str:
        if not os.path.exists(path):
            return "no checkpoint"
        try:
            return f"checkpoint at epoch {read_epoch(path)}"
        except CheckpointError as exc:
            return f"unreadable checkpoint ({exc})"

    if runs is None:
        path = os.path.join(folder, "checkpoint.npz")
        if not os.path.exists(path):
            return f"no checkpoint was written in {folder}"
        return f"the {epoch_of(path)} is in {folder}"
    parts = [f"{name}: {epoch_of(os.path.join(folder, name, 'checkpoint.npz'))}" for name in runs]
    return f"in {folder}, " + "; ".join(parts)


def _readable(path: str) -> bool:
    """Whether ``path`` is a checkpoint whose epoch can be read (so that ``--resume`` can start from it)."""
    from .experiments.checkpoint import CheckpointError, read_epoch

    if not os.path.isfile(path):
        return False
    try:
        read_epoch(path)
    except CheckpointError:
        return False
    return True


def interrupted_note(
    command: str, out: str | None, optimizers: str | None = None, seeds: Sequence[int] = ()
) -> str:
    """The end of the command line's ``locograd: interrupted`` line: what is on disk, read from ``out``.

    Args:
        command: the subcommand (``train``, ``compare``, ...).
        out: its ``--out`` (``None``: the command has none).
        optimizers: ``compare``'s ``--optimizers`` (comma-separated).
        seeds: ``compare``'s seeds (``--seed`` to ``--seed + --seeds - 1``); several: a run folder
            per optimizer and seed (:func:`~locograd.experiments.compare.run_folder`).
    """
    from .experiments.compare import RECORD, run_folder
    from .experiments.optimizers import check_name

    if not isinstance(out, str):
        return ""
    if command == "train":
        note = on_disk(out)
        resumable = _readable(os.path.join(out, "checkpoint.npz"))
    elif command == "compare":
        names = []
        for name in str(optimizers or "").split(","):
            try:
                names.append(check_name(name.strip()))
            except (ValueError, RuntimeError):
                continue
        n = len(seeds) or 1
        folders = [
            os.path.relpath(run_folder(out, name, seed, n), out) for name in names for seed in seeds or [0]
        ]
        note = on_disk(out, folders)
        resumable = os.path.isfile(os.path.join(out, RECORD))
    else:
        return f"; {command} in {out} did not finish"
    return f"; {note}" + (" (continue with --resume)" if resumable else "")


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
        seeds = getattr(args, "seeds", 1)
        first = getattr(args, "seed", 0)
        note = interrupted_note(
            args.command,
            getattr(args, "out", None),
            getattr(args, "optimizers", None),
            [first + i for i in range(seeds)] if isinstance(seeds, int) and isinstance(first, int) else (),
        )
        print(f"locograd: interrupted{note}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"locograd: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
