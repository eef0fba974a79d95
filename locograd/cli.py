"""The ``locograd`` command line (also ``python -m locograd``).

Subcommands:

* ``locograd info``: version, array backends, BLAS, whether a GPU is usable.
* ``locograd demo``: one forward/backward pass on a tiny autoencoder, with the
  hand-written gradients checked against the tape and by the dot-product test.
* ``locograd verify``: LocoProp's identities on random problems, as a pass/fail table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import __version__, autodiff, backend
from .network import MLP
from .testing import check_vjp, relative_error


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``locograd`` command."""
    parser = argparse.ArgumentParser(prog="locograd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"locograd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"locograd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
