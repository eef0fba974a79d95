"""The main job (``locograd compare`` without ``--optimizers``) and the labelled entries it is made of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locograd import cli
from locograd.experiments import TrainConfig, compare, main_job
from locograd.experiments.config import ConfigError, TrainingError

from ..test_arguments import assert_one_line, run_cli


def test_the_main_job_runs_both_autoencoders_with_two_seeds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "main"
    code, stdout, _ = run_cli(
        ["compare", "--limit-train", "400", "--epochs", "1", "--out", str(out), "--no-progress"], capsys
    )
    assert code == 0
    labels = ["adam-logistic", "locoprop-m-logistic", "adam-tanh", "locoprop-m-tanh"]
    record = json.loads((out / "compare.json").read_text())
    assert record["optimizers"] == labels and record["seeds"] == [0, 1]
    for label in labels:
        run = record["runs"][label]
        method, _, group = label.rpartition("-")
        assert run["optimizer"] == method
        assert run["model"]["activations"][0] == main_job.GROUPS[group]
        tuned = main_job.TUNED[group][method]
        assert {k: run[k] for k in tuned} == tuned
        assert (out / label / "seed-1" / "metrics.jsonl").is_file()
    first = {  # the seeds share the images: every run of one seed starts from the same loss
        label: json.loads((out / label / "seed-0" / "metrics.jsonl").read_text().splitlines()[0])[
            "train_loss"
        ]
        for label in labels
    }
    assert (
        first["adam-tanh"] == first["locoprop-m-tanh"]
        and first["adam-logistic"] == first["locoprop-m-logistic"]
    )
    reading = stdout.splitlines()[-2]
    assert (
        reading.startswith("logistic: after 1 epochs (mean ± sd over 2 seeds)")
        and "; tanh: after 1" in reading
    )
    assert "untrained start" in reading and "per second, within" in reading
    assert (out / "compare.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--lr", "0.1"], "lr: the main job (compare without --optimizers) fixes it"),
        (["--gamma", "2"], "gamma: the main job (compare without --optimizers) fixes it"),
        (["--dataset", "mnist"], "dataset: the main job (compare without --optimizers) fixes it"),
        (["--batch-size", "100"], "batch-size: the main job (compare without --optimizers) fixes it"),
        (["--model", "classifier"], "model: the main job (compare without --optimizers) trains the CURVES"),
        (["--layers"], "layers: the main job draws no per-layer figure"),
        (["--seeds", "0"], "seeds: expected an integer >= 1, got 0"),
    ],
)
def test_the_main_job_refuses_what_it_fixes(tmp_path: Path, capsys, options: list[str], message: str) -> None:
    out = tmp_path / "main"
    code, _, err = run_cli(["compare", *options, "--out", str(out)], capsys)
    assert code == 2
    assert_one_line(err, message)
    assert not out.exists()


def test_the_main_job_is_the_default_of_compare() -> None:
    args = cli.build_parser().parse_args(["compare"])
    assert args.optimizers is None and args.seeds is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"a/b": {"optimizer": "adam"}}, "optimizers: label 'a/b': expected 1-64 letters"),
        ({"x": {"lr": 0.1}}, "optimizers.x: expected a mapping with 'optimizer'"),
        ({"x": {"optimizer": "adam", "epochs": 3}}, "optimizers.x.epochs: not a setting of one entry"),
        ({"x": {"optimizer": "adamw"}}, "optimizer: unknown name"),
    ],
)
def test_labelled_entries_are_checked_before_any_folder(tmp_path: Path, entries, message: str) -> None:
    config = TrainConfig(epochs=1, limit_train=400, out=str(tmp_path / "c"), progress=False)
    with pytest.raises((TrainingError, ValueError), match=f"^{message}"):
        compare(config, entries)
    assert not (tmp_path / "c").exists()


def test_labelled_entries_of_one_optimizer_train_side_by_side(tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, limit_train=400, out=str(tmp_path / "c"), progress=False)
    summary = compare(
        config, {"slow": {"optimizer": "adam", "lr": 1e-4}, "fast": {"optimizer": "adam", "lr": 1e-2}}
    )
    assert list(summary) == ["slow", "fast"]
    assert summary["fast"]["train_loss"] < summary["slow"]["train_loss"]  # the rates differ, so do the runs


def test_runs_side_by_side_in_processes_give_the_same_numbers(tmp_path: Path) -> None:
    """jobs=2: each run in a process of its own, the same losses bit for bit as one after the other."""
    config = TrainConfig(epochs=1, limit_train=400, out=str(tmp_path / "one"), progress=False)
    entries = {"a": {"optimizer": "adam"}, "m": {"optimizer": "locoprop-m", "steps": 2}}
    one = compare(config, entries, seeds=2)
    two = compare(TrainConfig(**{**vars(config), "out": str(tmp_path / "two")}), entries, seeds=2, jobs=2)
    for label in entries:
        for key in ("train_loss", "test_loss", "per_seed"):
            if key == "per_seed":
                for seed, finals in one[label][key].items():
                    assert finals["train_loss"] == two[label][key][seed]["train_loss"]
            else:
                assert one[label][key] == two[label][key]
    with pytest.raises(ConfigError, match=r"^jobs: expected an integer >= 1, got 0"):
        compare(TrainConfig(**{**vars(config), "out": str(tmp_path / "bad")}), entries, jobs=0)
    assert not (tmp_path / "bad").exists()
