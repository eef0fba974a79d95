"""The study never reports a number it did not measure: records that contradict each other or their
trial's metrics are dropped (the trial runs again), a study with failed trials does not exit 0, an
unwritable folder is named, and a truncated checkpoint leaves no open file behind."""

from __future__ import annotations

import gc
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from locograd.errors import RunFolderError
from locograd.experiments import checkpoint
from locograd.study import run_study
from locograd.study.trials import Store

TINY = """
[final]
epochs = 2
seeds = 1

[datasets.curves]
limit_train = 200
limit_test = 100
batch_size = 100
targets = [300]

[optimizers.adam]
lr = [1e-3]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("trust")
    (tmp / "tiny.toml").write_text(TINY, encoding="utf-8")
    run_study(
        str(tmp / "tiny.toml"), str(tmp / "out"), jobs=1, threads=1, progress=False, echo=lambda line: None
    )
    return tmp / "out"


def _copy(study: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(study, tmp_path / "copy"))


def _load(out: Path) -> tuple[Store, list[str]]:
    notes: list[str] = []
    store = Store(str(out), echo=notes.append)
    store.load()
    return store, notes


def test_two_records_of_one_trial_at_one_epoch_with_other_losses_are_both_dropped(
    study: Path, tmp_path: Path
) -> None:
    out = _copy(study, tmp_path)
    store, notes = _load(out)  # the control: a study as it ran loads whole, without a note
    assert notes == [] and len(store.records) == 1
    line = (out / "trials.jsonl").read_text().splitlines()[-1]
    record = json.loads(line)
    forged = {**record, "final_train_loss": record["final_train_loss"] + 1.0}
    with open(out / "trials.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(forged) + "\n")
    store, notes = _load(out)
    assert record["key"] not in store.records
    assert len(notes) == 1 and notes[0].endswith("dropped its records (the trial runs again)")
    assert f"give trial {record['key']} at epoch 2 the final train losses" in notes[0]
    assert record["key"] not in (out / "trials.jsonl").read_text()  # the file no longer claims them


def test_a_record_that_contradicts_its_metrics_is_dropped(study: Path, tmp_path: Path) -> None:
    out = _copy(study, tmp_path)
    record = json.loads((out / "trials.jsonl").read_text().splitlines()[-1])
    forged = {**record, "final_train_loss": 1.5}
    (out / "trials.jsonl").write_text(json.dumps(forged) + "\n", encoding="utf-8")
    store, notes = _load(out)
    assert store.records == {}
    assert "its train loss at epoch 2 is" in notes[0] and "but the record says 1.5" in notes[0]


def test_a_study_with_failed_trials_exits_non_zero(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import locograd.study as study_module
    from locograd.cli import main

    def fake(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**_SUMMARY, "failed": failed}

    monkeypatch.setattr(study_module, "run_study", fake)
    monkeypatch.setattr("locograd.study.report.render", lambda summary: "## Machine\n")
    failed: dict[str, str] = {"k": "its worker died 4 times"}
    assert main(["study", "spec.toml"]) == 1
    assert "1 trial(s) failed" in capsys.readouterr().err
    failed.clear()
    assert main(["study", "spec.toml"]) == 0  # the control


_SUMMARY: dict[str, Any] = {"datasets": {}}


def test_an_unwritable_study_folder_is_named_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny.toml").write_text(TINY, encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    with pytest.raises(
        RunFolderError, match=rf"^out: {locked}, where the study folder would be made, is not writable"
    ):
        run_study(
            str(tmp_path / "tiny.toml"),
            str(locked / "out"),
            jobs=1,
            threads=1,
            progress=False,
            echo=lambda line: None,
        )
    assert os.listdir(locked) == []


def test_a_truncated_checkpoint_leaves_no_file_open(tmp_path: Path) -> None:
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, {"epoch": 1, "params": [{"W": np.ones((30, 30))}]})
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)

    def warned(call: Any) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(Exception):  # noqa: B017 (either reader's own error)
                call()
            gc.collect()
        return [w.category.__name__ for w in caught]

    assert warned(lambda: checkpoint.load(path)) == []
    assert warned(lambda: checkpoint.read_epoch(path)) == []
    assert "ResourceWarning" in warned(lambda: np.load(path, allow_pickle=False))  # the control: NumPy's own


def test_the_report_says_when_dask_workers_had_the_slow_allocator_setting(study: Path) -> None:
    from locograd.study.report import render

    summary = json.loads((study / "summary.json").read_text())
    assert summary["execution"]["malloc_trim_hosts"] == []  # the control: the local pool never sets it
    assert "Slowed workers" not in render(summary)
    summary["execution"]["malloc_trim_hosts"] = ["node7"]
    assert "- **Slowed workers**: Dask workers on node7 had MALLOC_TRIM_THRESHOLD_ set" in render(summary)


def test_the_shipped_dask_config_unsets_the_allocator_setting() -> None:
    """``DASK_CONFIG=studies/dask``: Dask reads the folder and its nannies leave MALLOC_TRIM_THRESHOLD_ out."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = "import dask.config, distributed; print(dask.config.get('distributed.nanny.pre-spawn-environ'))"
    env = {**os.environ, "DASK_CONFIG": str(root / "studies" / "dask")}
    shipped = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "'MALLOC_TRIM_THRESHOLD_': None" in shipped.stdout
    env.pop("DASK_CONFIG")
    default = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "'MALLOC_TRIM_THRESHOLD_': None" not in default.stdout  # the control: Dask's default sets it
