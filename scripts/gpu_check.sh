#!/usr/bin/env bash
# The device check: everything GPU-related (info, demo, training, the CNN study's budget, benchmark, gpu tests) in
# about 8 minutes, on a machine with a GPU and no network. Carry data/fashion-mnist-cnn.npz (scripts/export_cnn_data.py).
# Run from the repository root: bash scripts/gpu_check.sh   (uses PYTHONPATH=., installs nothing)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export LOCOGRAD_HYPOTHESIS_PROFILE=${LOCOGRAD_HYPOTHESIS_PROFILE:-ci}
status=0
echo "== locograd info"
python3 -m locograd info || status=1
echo "== demo on the GPU"
python3 -m locograd demo --device gpu || status=1
echo "== a short training run on the GPU"
python3 -m locograd train --device gpu --optimizer locoprop-m --limit-train 2000 --epochs 2 --out "$(mktemp -d)/run" \
  --no-progress --threads 0 || status=1
echo "== a CNN on the GPU: LocoProp-M, one epoch on a generated 28x28 npz (im2col on the device)"
images="$(mktemp -d)/images.npz"
python3 -c "import numpy as np; r = np.random.default_rng(0); np.savez('$images', x_train=(r.random((512, 28, 28)) * 255).astype(np.uint8), y_train=r.integers(0, 10, 512), x_test=(r.random((128, 28, 28)) * 255).astype(np.uint8), y_test=r.integers(0, 10, 128))" || status=1
python3 -m locograd train --device gpu --model cnn --dataset "$images" --optimizer locoprop-m --epochs 1 \
  --out "$(mktemp -d)/cnn" --no-progress --threads 0 || status=1
echo "== benchmark on the GPU: CuPy vs PyTorch CUDA (JSON in \$OUT when set)"
python3 -m locograd bench --device gpu --rounds 1 --repeats 20 --out "${OUT:-$(mktemp -d)}/gpu-bench.json" || status=1
echo "== the CNN study's final budget on the GPU: LocoProp-M, Adam, K-FAC (scripts/gpu_cnn.sh, at most 100 s each)"
if [ -f data/fashion-mnist-cnn.npz ]; then
  LOCOGRAD_RUN_LIMIT_S=100 bash scripts/gpu_cnn.sh || status=1
else
  echo "not run: data/fashion-mnist-cnn.npz is missing (python3 scripts/export_cnn_data.py writes it; carry it to the device)"
  status=1
fi
echo "== the gpu tests with --require-gpu (they fail instead of skipping; the CPU suite is CI's)"
timeout 240 python3 -m pytest -q --require-gpu -m gpu -p no:cacheprovider -x || status=1
echo "== gpu_check: status $status"
exit $status
