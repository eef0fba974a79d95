"""How far KFC's Kronecker factors are from the exact Fisher of a conv layer, as a figure.

With one output position per layer, squared error and a deep linear CNN, K-FAC's expected-Fisher
factors give the exact Gauss-Newton block (``tests/test_conv_second_order.py``).  With several
positions they approximate it (Grosse & Martens 2016 assume the positions' gradients independent
and spatially homogeneous).  This prints, per weight layer of small deep linear CNNs, the relative
Frobenius gap ``||Omega kron Gamma - F||_F / ||F||_F`` over seeds (mean, min, max), with ``F`` the
exact block from central differences (exact up to rounding, the network being linear in each
layer's weights)::

    python scripts/kfc_gap.py --seeds 5
"""

from __future__ import annotations

import argparse

import numpy as np

from locograd import nn, optim
from locograd.testing import gauss_newton_block


def network(image: int, channels: tuple[int, int], pool: int, classes: int) -> nn.Sequential:
    """conv 3x3 "same" -> average pool -> conv 3x3 "same" -> flatten -> dense, every transfer the identity."""
    c1, c2 = channels
    first = nn.Conv2D(1, c1, 3, padding="same")
    window = nn.AvgPool2D(pool)
    second = nn.Conv2D(c1, c2, 3, padding="same")
    h, w, _ = second.output_shape(window.output_shape(first.output_shape((image, image, 1))))
    layers = [first, window, second, nn.Flatten(), nn.Dense(h * w * c2, classes)]
    return nn.Sequential(layers, "squared_error", in_shape=(image, image, 1))


def gaps(net: nn.Sequential, seed: int, batch: int) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    params = net.init(seed=seed)
    x = rng.standard_normal((batch, *net.shapes[0]))
    y = rng.standard_normal((batch, net.shapes[-1][0]))
    opt = optim.KFAC(net, lr=0.1, momentum=0.0, decay=0.0, fisher="expected")
    _, state, _ = opt.step(params, x, y, opt.init(params))
    out = {}
    for k, m in enumerate(net.weight_layers):
        exact = gauss_newton_block(net, params, x, m)
        kfc = np.kron(state.A[k], state.G[k])
        out[m] = float(np.linalg.norm(kfc - exact) / np.linalg.norm(exact))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    print("| network | layer | positions | relative gap (mean) | min | max |")
    print("|---|---|---:|---:|---:|---:|")
    for image, channels, pool in ((4, (2, 3), 2), (6, (2, 3), 2), (8, (3, 4), 2)):
        net = network(image, channels, pool, 3)
        per_seed = [gaps(net, seed, args.batch) for seed in range(args.seeds)]
        for m in net.weight_layers:
            values = np.array([g[m] for g in per_seed])
            positions = int(np.prod(net.shapes[m + 1][:-1]))
            name = f"{image}x{image}, channels {channels}, pool {pool}"
            print(
                f"| {name} | {net.layers[m]!r} | {positions} | {values.mean():.3f} | "
                f"{values.min():.3f} | {values.max():.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
