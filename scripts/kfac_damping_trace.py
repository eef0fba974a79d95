"""Trace the adaptive K-FAC's damping, step size and weight norms on the classifier MLP, per epoch.

The Fashion-MNIST classifier study (stage e of the README's Results) saw K-FAC lead epoch 1 and
then drift away at every initial damping. This script trains the study's setting (the classifier
MLP 784-1000-500-250-10, tanh, batch 100, the first 15,000 training images, the next 5,000 held
out; K-FAC as the study builds it: sampled Fisher, factors every 5 steps, adaptive step and
damping) and prints, after each epoch: the train loss on the 15,000 images, the validation
accuracy, the damping lambda over the epoch's steps (min / median / last), the norm of the
parameter change per step (median / max), every weight matrix's Frobenius norm, and each layer's
output-gradient factor G as trace / width.

    python3 scripts/kfac_damping_trace.py --damping 1 --epochs 6

(about a minute per epoch on one core; needs the installed Fashion-MNIST).
"""

import argparse

import numpy as np

from locograd import optim
from locograd.data.registry import load
from locograd.experiments.tasks import Classifier

TRAIN, HELD_OUT, BATCH = 15_000, 5_000, 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--damping", type=float, default=1.0, help="K-FAC's initial damping (default 1)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs to train (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed (default 0)")
    args = parser.parse_args()
    if not args.damping > 0:
        parser.error(f"--damping: expected a number > 0, got {args.damping}")
    if args.epochs < 1:
        parser.error(f"--epochs: expected an integer >= 1, got {args.epochs}")

    data = load("fashion-mnist", limit_train=TRAIN + HELD_OUT)
    assert data.y_train is not None  # Fashion-MNIST has labels
    x, y = data.x_train[:TRAIN], data.y_train[:TRAIN]
    x_val, y_val = data.x_train[TRAIN:], data.y_train[TRAIN:]
    task = Classifier()
    net = task.model(data)
    task.check(data, net)
    params = net.init(seed=args.seed, dtype=np.float32)
    kfac = optim.KFAC(net, lr=1.0, damping=args.damping, update_every=5, adaptive=True)
    state = kfac.init(params)
    rng = np.random.default_rng(args.seed)

    print(f"epoch 0: train loss {task.evaluate(net, params, x, y)['loss']:.4f} (untrained)")
    for epoch in range(1, args.epochs + 1):
        dampings, step_norms = [], []
        order = rng.permutation(TRAIN)
        for start in range(0, TRAIN, BATCH):
            idx = order[start : start + BATCH]
            new, state, _ = kfac.step(params, x[idx], y[idx], state)
            change = [n["W"] - p["W"] for n, p in zip(new, params, strict=True) if p]
            step_norms.append(float(np.sqrt(sum(float((d * d).sum()) for d in change))))
            dampings.append(float(state.damping))
            params = new
        accuracy = task.evaluate(net, params, x_val, y_val)["accuracy"]
        weights = ", ".join(f"{float(np.sqrt((p['W'] ** 2).sum())):.1f}" for p in params if p)
        factors = ", ".join(f"{float(np.trace(G)) / G.shape[0]:.2e}" for G in state.G)
        print(
            f"epoch {epoch}: train loss {task.evaluate(net, params, x, y)['loss']:.4f}, validation accuracy {accuracy:.4f}; "
            f"damping min/median/last {min(dampings):.3g}/{np.median(dampings):.3g}/{dampings[-1]:.3g}; "
            f"step norm median/max {np.median(step_norms):.3g}/{max(step_norms):.3g}; "
            f"|W| per layer {weights}; tr(G)/width {factors}",
            flush=True,
        )


if __name__ == "__main__":
    main()
