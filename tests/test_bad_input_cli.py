"""Bad input and faults at the command line and in the run folder: one true line, before any work."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from locograd import cli
from locograd.errors import RunFolderError
from locograd.experiments.runfolder import FolderLock


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("locograd: error: ")
    return err


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (["--optimizer", ""], "optimizer"),
        (["--optimizer", "  "], "optimizer"),
        (["--optimizer", "rmsprop-tf1", "--dataset", ""], "dataset"),
    ],
)
def test_train_refuses_an_empty_name(
    flags: list[str], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--optimizer ""`` trained rmsprop-tf1 and ``--dataset ""`` trained on curves, in silence
    (the empty string was taken as "not given", so a mistyped shell variable ran the default)."""
    out = tmp_path / "run"
    assert cli.main(["train", *flags, "--out", str(out), "--no-progress", "--epochs", "1"]) == 2
    err = _one_line_error(capsys)
    assert f"{name}: expected a name" in err
    assert not out.exists()  # refused before any folder was made


def test_compare_refuses_an_empty_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``compare --dataset ""`` compared on curves in silence."""
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--optimizers", "rmsprop-tf1", "--dataset", "", "--out", str(out)]) == 2
    assert "dataset: expected a name, got ''" in _one_line_error(capsys)
    assert not out.exists()


def test_a_lock_file_that_is_a_folder_is_one_true_line(tmp_path: Path) -> None:
    """Before: ``[Errno 21] Is a directory: '.../.lock'``, with no word of what the file is."""
    (tmp_path / ".lock").mkdir()
    with pytest.raises(RunFolderError) as info:
        FolderLock(str(tmp_path)).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert f"the lock file {tmp_path / '.lock'} is a folder" in message
    # negative control: with the folder gone, the same lock is taken
    os.rmdir(tmp_path / ".lock")
    with FolderLock(str(tmp_path)):
        assert (tmp_path / ".lock").is_file()


def test_train_into_a_folder_whose_lock_is_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``locograd: error: [Errno 21] Is a directory: 'OUT/.lock'``."""
    (tmp_path / ".lock").mkdir()
    argv = ["train", "--optimizer", "rmsprop-tf1", "--out", str(tmp_path), "--no-progress", "--epochs", "1"]
    assert cli.main(argv) == 2
    err = _one_line_error(capsys)
    assert "lock file" in err and "is a folder" in err
    assert sorted(os.listdir(tmp_path)) == [".lock"]  # nothing was written


def test_curves_limit_above_the_set_keeps_the_set() -> None:
    """Before: ``load("curves", limit_train=30000)`` generated 30,000 training images, more than the
    20,000 of the set that ``--limit-train`` ("use only the first N") cuts, and ``limit_train=10**9``
    ended in a MemoryError traceback.  Now a limit above the set keeps the set, as for a file set."""
    from locograd.data import load
    from locograd.data.registry import CURVES_TRAIN

    assert load("curves", limit_train=10**9).x_train.shape == (CURVES_TRAIN, 784)
    # negative control: a limit below the set still cuts it, to a prefix of the full set
    small = load("curves", limit_train=5)
    assert small.x_train.shape == (5, 784)
    assert (small.x_train == load("curves").x_train[:5]).all()


def test_interrupted_note_claims_resume_only_for_a_readable_checkpoint(tmp_path: Path) -> None:
    """Before: with a 0-byte (unreadable) ``checkpoint.npz`` the Ctrl-C line said "the unreadable
    checkpoint (...) is in OUT (continue with --resume)", though ``--resume`` then fails on it."""
    from locograd.experiments import checkpoint

    (tmp_path / "checkpoint.npz").write_bytes(b"")
    note = cli.interrupted_note("train", str(tmp_path))
    assert "unreadable checkpoint" in note and "--resume" not in note
    # negative control: a readable checkpoint is announced as resumable
    good = tmp_path / "good"
    good.mkdir()
    checkpoint.save(str(good / "checkpoint.npz"), {"epoch": 2})
    note = cli.interrupted_note("train", str(good))
    assert "checkpoint at epoch 2" in note and note.endswith("(continue with --resume)")


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_study_folder_is_named_as_one_and_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``compare`` into a study folder that had no ``summary.json`` yet (a study in progress:
    ``spec.toml``, ``study.jsonl``, ``trials/``) trained its runs beside the study's trials; with a
    ``summary.json``, ``train`` called the folder "a comparison (summary.json)"."""
    (tmp_path / "spec.toml").write_text('name = "x"\n')
    (tmp_path / "study.jsonl").write_text("")
    (tmp_path / "trials").mkdir()
    before = sorted(os.listdir(tmp_path))
    flag = ["--optimizer", "rmsprop-tf1"] if command == "train" else ["--optimizers", "rmsprop-tf1"]
    argv = [command, *flag, "--out", str(tmp_path), "--no-progress", "--epochs", "1", "--limit-train", "200"]
    assert cli.main(argv) == 2
    err = _one_line_error(capsys)
    assert f"out: {tmp_path} holds a study (spec.toml)" in err
    assert sorted(set(os.listdir(tmp_path)) - {".lock"}) == before  # the folder lock's file aside


def test_a_study_folder_with_a_summary_is_not_called_a_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``out: OUT holds a comparison (summary.json), not one run`` for a finished study."""
    (tmp_path / "study.jsonl").write_text("")
    (tmp_path / "summary.json").write_text("{}")
    argv = ["train", "--optimizer", "rmsprop-tf1", "--out", str(tmp_path), "--no-progress", "--epochs", "1"]
    assert cli.main(argv) == 2
    err = _one_line_error(capsys)
    assert "holds a study (study.jsonl)" in err and "comparison" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "10000"], r"threads: expected an integer in \[1, \d+\], got 10000$"),
        (["--batch", "100000000"], r"batch: expected an integer in \[1, 100000\], got 100000000$"),
        (["--width", "100"], r"width: expected an integer in \[1, 16\], got 100$"),
        (
            ["--scaling-batches", "4,8"],
            r"scaling-batches: only applies with --scaling; add --scaling or drop it$",
        ),
        (
            ["--scaling-widths", "1,3"],
            r"scaling-widths: only applies with --scaling; add --scaling or drop it$",
        ),
    ],
)
def test_bench_refuses_sizes_that_hang_and_options_it_would_ignore(
    args: list[str], message: str, capsys: Any
) -> None:
    """Before: --threads 10000 hung, --batch 10**8 filled a table cell with a traceback, and
    --scaling-batches without --scaling was ignored without a word."""
    from locograd.bench import main as bench_main

    assert bench_main([*args, "--quick", "--no-torch"], prog="locograd bench") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
