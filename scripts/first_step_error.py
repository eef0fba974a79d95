"""The float32 first-step identity, per layer, on the CURVES autoencoder at initialisation.

One LocoProp step with one plain GD inner step (rate ``rho``) must move every layer by
``-rho * gamma * dL/dW~``.  This script measures, per layer, the relative error of that move
against the float64 gradient taken at the same (float32) parameters, for S and M, through
``locoprop.step`` and through ``optim.LocoProp``; and, beside it, the error of float32
BackProp's own gradient.  The move is read in float64 from the float32 parameters before and
after, so it also carries the rounding of ``W~ + D``; ``rho`` is set so that each layer's move
is large against that rounding (the identity is linear in ``rho``).

    PYTHONPATH=. python scripts/first_step_error.py [--images 200] [--gamma 3.16]
"""

from __future__ import annotations

import argparse

import numpy as np

import locograd as lg
from locograd.data.curves import curves
from locograd.experiments.models import curves_autoencoder
from locograd.locoprop import GD, M, S
from locograd.nn import stack


def relative(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--gamma", type=float, default=3.16)
    args = parser.parse_args()
    net = curves_autoencoder()
    x = curves(n_train=args.images, n_test=1, seed=0).x_train[: args.images].astype(np.float32)
    p32 = net.init(seed=0, dtype=np.float32)
    p64 = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in p32]
    x64 = x.astype(np.float64)
    g64 = net.backward(p64, net.forward(p64, x64), x64)
    g32 = net.backward(p32, net.forward(p32, x), x)
    ref = [stack(g) for g in g64.as_params()]
    rows = {
        "BackProp float32 gradient": [
            relative(stack(g).astype(np.float64), r) for g, r in zip(g32.as_params(), ref, strict=True)
        ]
    }
    # one rate for every layer, large enough that each layer's move dwarfs the rounding of W~ + D:
    # every layer moves by at least 100 times its weights' mean magnitude
    scale = max(
        float(np.abs(stack(p)).mean()) / float(np.abs(r).mean()) for p, r in zip(p64, ref, strict=True)
    )
    rho = 1e2 * scale / args.gamma
    sgd = [
        (stack(p) - np.float32(rho * args.gamma) * stack(g)).astype(np.float64) - stack(p).astype(np.float64)
        for p, g in zip(p32, g32.as_params(), strict=True)
    ]
    rows["BackProp float32 step (SGD)"] = [
        relative(m / (-rho * args.gamma), r) for m, r in zip(sgd, ref, strict=True)
    ]
    for name, variant in (("M", M(gamma=args.gamma)), ("S", S(gamma=args.gamma))):
        solver = GD(steps=1, lr=rho)
        new, _ = lg.locoprop.step(net, p32, x, x, variant=variant, solver=solver)
        opt = lg.optim.LocoProp(net, variant, solver)
        new_opt, _, _ = opt.step(p32, x, x, opt.init(p32))
        for path, params in (("locoprop.step", new), ("optim.LocoProp", new_opt)):
            moves = [
                (stack(n).astype(np.float64) - stack(p)) / (-rho * args.gamma)
                for n, p in zip(params, p64, strict=True)
            ]
            rows[f"{name} via {path}"] = [relative(m, r) for m, r in zip(moves, ref, strict=True)]
    print(f"CURVES autoencoder at initialisation, {args.images} images, gamma {args.gamma}, rho {rho:.3g}")
    print("relative error against the float64 dL/dW~, per layer:")
    print(f"{'':32s}" + "".join(f"{m:>9d}" for m in range(net.num_layers)))
    for label, errs in rows.items():
        print(f"{label:32s}" + "".join(f"{e:9.1e}" for e in errs))


if __name__ == "__main__":
    main()
