"""``scripts/export_cnn_data.py``: the npz it writes for the GPU device reads back as the very images
the CNN study trained on (float32 ``pixel / 255``, bit for bit), so a run on the device trains on the
study's data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locograd import data

ROOT = Path(__file__).resolve().parents[1]
FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason=f"Fashion-MNIST not installed at {FASHION}")
def test_the_exported_archive_reads_back_as_the_studys_images(tmp_path: Path) -> None:
    out = tmp_path / "cnn.npz"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "export_cnn_data.py"),
            "--out",
            str(out),
            "--data-dir",
            FASHION,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    study = data.load("fashion-mnist", data_dir=FASHION, limit_train=10_000)
    exported = data.load(str(out))
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(exported, name), getattr(study, name)), name
        assert getattr(exported, name).dtype == getattr(study, name).dtype, name
    # Negative control: one pixel one grey level off is caught by the same comparison.
    with np.load(out) as archive:
        arrays = dict(archive)
    arrays["x_train"][0, 14, 14] ^= 1
    np.savez(tmp_path / "off.npz", **arrays)
    assert not np.array_equal(data.load(str(tmp_path / "off.npz")).x_train, study.x_train)
