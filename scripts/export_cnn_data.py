"""Write the CNN study's images into one ``.npz`` for a machine without the data set (the GPU device).

The CNN study (``studies/fashion-mnist-cnn.toml``) trains on the first 10,000 Fashion-MNIST training
images, of which ``--validation 5000`` holds out the last 5,000, and reports the 10,000 test images.
This writes exactly those, as uint8 pixels, to ``data/fashion-mnist-cnn.npz`` (git-ignored; 16 MB,
so the device tool carries it): ``locograd train --dataset data/fashion-mnist-cnn.npz`` then reads
bit for bit the float32 images the study read (``pixel / 255`` either way, checked before writing).

    python3 scripts/export_cnn_data.py            # needs Fashion-MNIST here (apt-get install dataset-fashion-mnist)
    bash scripts/gpu_cnn.sh                       # on the device: LocoProp-M, Adam and K-FAC at the study's budget
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from locograd import data

LIMIT_TRAIN = 10_000
"""The CNN study's ``limit_train``: its first 5,000 images train, the last 5,000 validate."""


def to_bytes(x: np.ndarray) -> np.ndarray:
    """Float32 ``pixel / 255`` rows back to uint8 ``(N, 28, 28)`` pixels (exact: checked by the caller)."""
    return np.rint(x * np.float32(255)).astype(np.uint8).reshape(-1, 28, 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/fashion-mnist-cnn.npz", help="the archive to write")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST-format files")
    args = parser.parse_args()
    ds = data.load("fashion-mnist", data_dir=args.data_dir, limit_train=LIMIT_TRAIN)
    parts = {"x_train": to_bytes(ds.x_train), "x_test": to_bytes(ds.x_test)}
    for name, pixels in parts.items():
        back = pixels.reshape(pixels.shape[0], -1).astype(np.float32) / np.float32(255)
        if not np.array_equal(back, getattr(ds, name)):
            raise SystemExit(f"export_cnn_data: {name} does not round-trip through uint8 pixels")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    assert ds.y_train is not None and ds.y_test is not None  # Fashion-MNIST has labels
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, x_train=parts["x_train"], y_train=ds.y_train, x_test=parts["x_test"], y_test=ds.y_test)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, out)  # atomic: a reader never sees half an archive
    print(
        f"wrote {out}: {len(ds.x_train)} training images (the last 5,000 held out by --validation 5000), {len(ds.x_test)} test images"
    )


if __name__ == "__main__":
    main()
