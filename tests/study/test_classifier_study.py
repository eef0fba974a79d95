"""A study of classifiers on a data set of your own: spec keys ``file`` and ``model``, accuracy in
the trial records and the report, the file's content (not its path) in the trial keys, a CNN study
on images, and the spec errors, each refused in one line before any trial runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from locograd.data import DataError
from locograd.experiments.runfolder import read_jsonl
from locograd.study import SpecError, run_study


def toy_file(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((6, 3))
    x, xt = rng.random((200, 6)), rng.random((50, 6))
    np.savez(path, x_train=x, y_train=(x @ w).argmax(1), x_test=xt, y_test=(xt @ w).argmax(1))
    return path


def spec(tmp_path: Path, dataset: str) -> str:
    text = f"""
name = "toy"
protocol = "grid"

[tuning]
epochs = 1
[final]
epochs = 1
seeds = 2
{dataset}
[optimizers.adam]
lr = [1e-3, 1e-2]
"""
    path = tmp_path / "toy.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(path: str, out: Path) -> dict:
    return run_study(path, str(out), jobs=1, threads=1, progress=False, echo=lambda line: None)


def test_a_classifier_study_on_a_file_reports_accuracy_and_keys_its_trials_by_content(tmp_path: Path) -> None:
    data = toy_file(tmp_path / "toy.npz")
    table = f'[datasets.toy]\nfile = "{data}"\nmodel = "classifier"\nwidths = [8]\nbatch_size = 50\nvalidation = 50'
    run(spec(tmp_path, table), tmp_path / "a")
    records = [r for r in read_jsonl(str(tmp_path / "a" / "trials.jsonl")) if r["status"] == "finished"]
    assert records and all(0 <= r["final_test_accuracy"] <= 1 for r in records)
    assert all(0 <= r["final_validation_accuracy"] <= 1 for r in records)
    report = (tmp_path / "a" / "report.md").read_text()
    assert "| final test accuracy |" in report
    assert "Ranked by validation accuracy (the last 50 training images, held out)" in report
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["datasets"]["toy"]["optimizers"]["adam"]["final_test_accuracy"]["n"] == 2
    # the same bytes elsewhere: the same trials (nothing runs again); other bytes: other trials
    moved = shutil.copy(data, tmp_path / "moved.npz")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    keys = sorted(r["key"] for r in records)
    run(spec(tmp_path, table.replace(str(data), str(moved))), tmp_path / "b")
    assert (
        sorted(
            r["key"] for r in read_jsonl(str(tmp_path / "b" / "trials.jsonl")) if r["status"] == "finished"
        )
        == keys
    )
    toy_file(tmp_path / "other.npz", seed=1)
    (tmp_path / "c").mkdir()
    run(spec(tmp_path, table.replace(str(data), str(tmp_path / "other.npz"))), tmp_path / "c")
    other = {r["key"] for r in read_jsonl(str(tmp_path / "c" / "trials.jsonl"))}
    assert not other & set(keys)  # negative control: another file's trials are other trials


def test_a_cnn_study_on_images_trains_every_method_and_reports_accuracy(tmp_path: Path) -> None:
    """``model = "cnn"`` on 8x8 images: BackProp, K-FAC and LocoProp-M trials all finish (the study's
    records name the CNN), and the report gives their accuracy."""
    rng = np.random.default_rng(0)
    images = rng.random((120, 8, 8))
    labels = (images[:, :4].mean(axis=(1, 2)) > images[:, 4:].mean(axis=(1, 2))).astype(int)
    data = tmp_path / "images.npz"
    np.savez(data, x_train=images[:100], y_train=labels[:100], x_test=images[100:], y_test=labels[100:])
    text = f"""
name = "cnn"
protocol = "grid"

[tuning]
epochs = 1
[final]
epochs = 1
seeds = 1
[datasets.images]
file = "{data}"
model = "cnn"
widths = [2, 2, 4]
batch_size = 25
validation = 25
[optimizers.adam]
lr = [1e-3, 1e-2]
[optimizers.kfac]
lr = 1.0
[optimizers.locoprop-m]
gamma = 1.0
lr = 1e-4
"""
    path = tmp_path / "cnn.toml"
    path.write_text(text, encoding="utf-8")
    run(str(path), tmp_path / "out")
    records = read_jsonl(str(tmp_path / "out" / "trials.jsonl"))
    finished = [r for r in records if r["status"] == "finished"]
    assert len(finished) == len(records) and {r["optimizer"] for r in finished} == {
        "adam",
        "kfac",
        "locoprop-m",
    }
    config = json.loads(next((tmp_path / "out" / "trials").glob("*/config.json")).read_text())
    assert config["settings"]["task"] == "cnn" and config["layers"][0].startswith("Conv2D(1, 2")
    assert "| final test accuracy |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    ("table", "error", "message"),
    [
        (
            '[datasets.toy]\nfile = "toy.csv"',
            SpecError,
            r"datasets.toy.file: expected the path of an .npz file",
        ),
        (
            '[datasets.toy]\nfile = "{data}"\ndata_dir = "/x"',
            SpecError,
            r"datasets.toy.data_dir: a file is read from its own path",
        ),
        (
            '[datasets.curves]\nmodel = "regressor"',
            SpecError,
            r"datasets.curves.model: unknown name \"regressor\"; valid names are autoencoder, classifier",
        ),
        (
            '[datasets.curves]\nlimit_train = 300\nmodel = "classifier"\nmetric = "train_loss"',
            DataError,
            r"curves: has no labels; a classifier needs y_train and y_test",
        ),
    ],
)
def test_spec_errors_are_refused_before_any_trial(
    tmp_path: Path, table: str, error: type, message: str
) -> None:
    data = toy_file(tmp_path / "toy.npz")
    with pytest.raises(error, match=message):
        run(spec(tmp_path, table.replace("{data}", str(data))), tmp_path / "out")
    assert not (tmp_path / "out" / "trials.jsonl").exists()
