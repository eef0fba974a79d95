"""Re-run one recorded trial of a committed study with today's code, and compare its losses.

The trial is planned anew from the study's spec (the same data, seed and settings; today's numerics
version), run in a scratch folder (the study folder is not touched), and its per-epoch losses are
printed beside the recorded ones::

    python scripts/rerun_trial.py docs/results/curves 635f56d5da3294ed [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from locograd.study import load
from locograd.study.execute import _payload, run_trial
from locograd.study.protocol import Planner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="the study folder (spec.toml, trials.jsonl, trials/KEY/metrics.jsonl)")
    parser.add_argument("key", help="the recorded trial's key")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    root = Path(args.study)
    records = {
        json.loads(line)["key"]: json.loads(line)
        for line in (root / "trials.jsonl").read_text().splitlines()
        if line
    }
    if args.key not in records:
        parser.error(f"key: no trial {args.key!r} in {root / 'trials.jsonl'}")
    record = records[args.key]
    spec = load(str(root / "spec.toml"))
    datasets = {d.name: d for d in spec.datasets}
    optimizers = {o.name: o for o in spec.optimizers}
    trial = Planner(spec).trial(
        datasets[record["dataset"]],
        optimizers[record["optimizer"]],
        record["point"],
        record["seed"],
        record["phase"],
    )
    print(f"{record['name']}: recorded key {args.key}, planned today {trial.key}", flush=True)
    old = [
        json.loads(line)
        for line in (root / "trials" / args.key / "metrics.jsonl").read_text().splitlines()
        if line
    ]
    with tempfile.TemporaryDirectory() as out:
        result = run_trial(_payload(trial), str(Path(out).resolve()), None, args.threads)
    new = result["metrics"]
    print(f"status {result['record']['status']} {result['record']['message']}".rstrip())
    print(
        f"{'epoch':>5} {'train before':>13} {'train after':>12} {'change':>9} {'test before':>12} {'test after':>11}"
    )
    for a, b in zip(old, new, strict=False):
        change = (b["train_loss"] - a["train_loss"]) / a["train_loss"]
        print(
            f"{a['epoch']:5d} {a['train_loss']:13.4f} {b['train_loss']:12.4f} {change:9.2%} "
            f"{a['test_loss']:12.4f} {b['test_loss']:11.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
