#!/usr/bin/env bash
# The CNN study's final budget on a GPU, per epoch and per second: LocoProp-M, Adam and K-FAC, seed 0,
# each at the setting studies/fashion-mnist-cnn.toml chose (K-FAC: its best point at the epoch-3 rung,
# damping 1e-2; every K-FAC point of the study diverged before epoch 10, and so may this run: its
# epochs up to then still count). 10 epochs of batch 128 on 5,000 images, 5,000 held out.
# The device has no network: the images travel as data/fashion-mnist-cnn.npz (git-ignored), written here
# by `python3 scripts/export_cnn_data.py`. Run from the repository root: bash scripts/gpu_cnn.sh
# (uses PYTHONPATH=., installs nothing; about 5 minutes on an H100 is its budget, each run capped).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
images=data/fashion-mnist-cnn.npz
if [ ! -f "$images" ]; then
  echo "gpu_cnn: $images is missing: run python3 scripts/export_cnn_data.py where Fashion-MNIST is installed" >&2
  exit 2
fi
device=${LOCOGRAD_DEVICE:-gpu}
epochs=${LOCOGRAD_EPOCHS:-10}
out="${OUT:-$(mktemp -d)}/gpu-cnn"
common=(--model cnn --dataset "$images" --validation 5000 --batch-size 128 --epochs "$epochs" --seed 0
  --dtype float32 --device "$device" --no-progress)
status=0
run() {  # name, then the optimizer's own arguments
  local name=$1
  shift
  echo "== $name"
  timeout "${LOCOGRAD_RUN_LIMIT_S:-150}" python3 -m locograd train "${common[@]}" --out "$out/$name" "$@" || status=1
}
run adam --optimizer adam --lr 3e-3
run locoprop-m --optimizer locoprop-m --gamma 1 --lr 1e-5 --steps 10 --inner rmsprop-tf1
run kfac --optimizer kfac --lr 1 --damping 1e-2
python3 - "$out" <<'EOF'
import json, sys
from pathlib import Path

print("| run | epochs | train loss | validation accuracy | test accuracy | training s | s/epoch |")
print("|---|---:|---:|---:|---:|---:|---:|")
for folder in sorted(Path(sys.argv[1]).iterdir()):
    metrics = folder / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    if len(rows) < 2:  # only the untrained epoch 0, or nothing: it stopped (time cap, error) before epoch 1
        print(f"| {folder.name} | no epoch finished | | | | | |")
        continue
    last = rows[-1]
    seconds = last.get("seconds", float("nan"))
    epochs = last.get("epoch", 0)
    print(f"| {folder.name} | {epochs} | {last.get('train_loss', float('nan')):.4f} | "
          f"{last.get('validation_accuracy', float('nan')):.4f} | {last.get('test_accuracy', float('nan')):.4f} | "
          f"{seconds:.1f} | {seconds / max(epochs, 1):.2f} |")
EOF
echo "== gpu_cnn: status $status (runs in $out)"
exit $status
