"""The training cost of a study's tuning under the grid protocol and under successive halving.

Counts training in full-budget runs (``final.epochs`` epochs on the study's training set), per
optimizer of each spec, for its search grid as written (edge extensions add to both: a grid point
at the tuning budget, a rung-0 point under successive halving).  Successive halving continues
each survivor from its checkpoint, so a point costs only the epochs of the rungs it reaches; the
winner's full-budget run is its final seed 0, so the final runs add ``seeds - 1``.

    python scripts/protocol_cost.py studies/curves.toml studies/fashion-mnist.toml studies/ablations.toml
"""

from __future__ import annotations

import argparse

from locograd.study.spec import TRAIN_SIZES, grid_size, load, rung_epochs, survivors


def halving_runs(points: int, final_epochs: int) -> float:
    """Full-budget runs that successive halving trains for a ``points``-point grid (final seed 0 included).

    >>> round(halving_runs(25, 9), 2)  # 25 points for 1/9, 9 of them to 1/3, 3 to the end
    6.78
    """
    total, done, alive = 0.0, 0, points
    for i, epochs in enumerate(rung_epochs(points, final_epochs)):
        if i:
            alive = survivors(alive)
        total += alive * (epochs - done) / final_epochs
        done = epochs
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+")
    args = parser.parse_args()
    print(
        "| study | optimizer | points | grid: tuning + final runs | halving: rungs + final runs | halving / grid |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for path in args.specs:
        spec = load(path)
        for d in spec.datasets:
            images = d.limit_train or TRAIN_SIZES[d.name]
            for o in spec.optimizers:
                n, seeds = grid_size(o), spec.seeds_of(o)
                tuning_images = spec.tuning_subset or images
                grid = (
                    n * spec.tuning_seeds * spec.tuning_epochs * tuning_images / (spec.final_epochs * images)
                )
                rungs = halving_runs(n, spec.final_epochs)
                print(
                    f"| {spec.name} | {o.name} | {n} | {grid:.2f} + {seeds} = {grid + seeds:.2f} | "
                    f"{rungs:.2f} + {seeds - 1} = {rungs + seeds - 1:.2f} | {(rungs + seeds - 1) / (grid + seeds):.2f} |"
                )


if __name__ == "__main__":
    main()
