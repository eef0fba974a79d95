"""Fingerprint short training runs, bit for bit, to check that a redesign keeps the trained numbers.

Runs ``locograd train`` for each optimizer setting below (2 epochs on 300 CURVES images) and
records, per run, every loss in ``metrics.jsonl`` and the SHA-256 of every array in the final
checkpoint and of its skeleton (the tree, the random state and the counters; not the timings).  Compare two fingerprints with ``--compare``::

    python scripts/bit_baseline.py --out /tmp/before.json --dtype float32
    # ... change the code ...
    python scripts/bit_baseline.py --out /tmp/after.json --dtype float32 --compare /tmp/before.json

``--only`` and ``--skip`` take comma-separated run names (e.g. ``--skip locoprop-s,locoprop-m``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNS: dict[str, list[str]] = {
    "sgd": ["--optimizer", "sgd"],
    "momentum": ["--optimizer", "momentum"],
    "adam": ["--optimizer", "adam"],
    "rmsprop-tf1": ["--optimizer", "rmsprop-tf1"],
    "kfac": ["--optimizer", "kfac"],
    "shampoo": ["--optimizer", "shampoo"],
    "foof": ["--optimizer", "foof"],
    "locoprop-s": ["--optimizer", "locoprop-s"],
    "locoprop-m": ["--optimizer", "locoprop-m"],
    "locoprop-m-eta": ["--optimizer", "locoprop-m", "--eta", "0.5"],
    "locoprop-s-exact": ["--optimizer", "locoprop-s", "--solver", "exact", "--eta", "0.5"],
}
LOSS_KEYS = ("train_loss", "test_loss")


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.dtype).encode()).hexdigest()[:16]


UNFINGERPRINTED = ("update_ratio",)
"""Metrics-row fields left out of the skeleton's hash: records added after fingerprints were first taken
(``update_ratio``, derived from the params the hash covers), so that older fingerprints still compare."""


def without_timing(tree: object) -> object:
    """The checkpoint skeleton less what a clock wrote (every key naming seconds) and :data:`UNFINGERPRINTED`."""
    if isinstance(tree, dict):
        return {
            k: without_timing(v) for k, v in tree.items() if "seconds" not in k and k not in UNFINGERPRINTED
        }
    if isinstance(tree, list):
        return [without_timing(v) for v in tree]
    return tree


def fingerprint(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, line in enumerate((folder / "metrics.jsonl").read_text().splitlines()):
        row = json.loads(line)
        for key in LOSS_KEYS:
            if key in row:
                out[f"metrics[{i}].{key}"] = repr(row[key])
    with np.load(folder / "checkpoint.npz", allow_pickle=False) as z:
        for name in sorted(z.files):
            if name == "__skeleton__":  # the tree's layout, the random state, the counters, the timings
                skeleton = json.dumps(without_timing(json.loads(str(z[name]))), sort_keys=True)
                out[name] = hashlib.sha256(skeleton.encode()).hexdigest()[:16]
            else:
                out[name] = digest(z[name])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where the fingerprint JSON goes")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--only", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated run names to leave out")
    parser.add_argument("--compare", default=None, help="an earlier fingerprint JSON to compare with")
    args = parser.parse_args()
    names = [n for n in (args.only.split(",") if args.only else RUNS) if n and n not in args.skip.split(",")]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"--only/--skip: unknown run names {unknown}; expected some of {sorted(RUNS)}")
    result: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            folder = Path(tmp) / name
            cmd = [
                sys.executable,
                "-m",
                "locograd",
                "train",
                *RUNS[name],
                "--dataset",
                "curves",
                "--epochs",
                "2",
                "--limit-train",
                "300",
                "--seed",
                "0",
                "--dtype",
                args.dtype,
                "--out",
                str(folder),
                "--no-progress",
            ]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            result[name] = fingerprint(folder)
            print(f"{name}: {len(result[name])} numbers and arrays", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True))
    if args.compare is None:
        return 0
    before = json.loads(Path(args.compare).read_text())
    failed = 0
    for name in names:
        if name not in before:
            print(f"{name}: not in {args.compare}")
            failed += 1
            continue
        differ = sorted(
            k for k in set(before[name]) | set(result[name]) if before[name].get(k) != result[name].get(k)
        )
        print(f"{name}: {'identical' if not differ else f'{len(differ)} differ, e.g. {differ[:4]}'}")
        failed += bool(differ)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
