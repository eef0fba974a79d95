"""Run folders never hold two runs and never lie (issue 11, kind 3).

Each test states what the code did before.  The processes that must really be
other processes (a run holding its folder, a run killed with SIGKILL) are started
with :mod:`subprocess`; the second run is the command line in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from locograd import cli, data
from locograd.errors import RunFolderError
from locograd.experiments import TrainConfig, checkpoint, compare, train
from locograd.experiments import training as train_module
from locograd.experiments.models import autoencoder
from locograd.experiments.optimizers import build
from locograd.experiments.runfolder import TEMP_PREFIX, FolderLock, scan_jsonl

ARGS = ["--limit-train", "120", "--batch-size", "40", "--no-progress"]  # 3 batches per epoch


def train_args(out: Path, *extra: str, optimizer: str = "rmsprop-tf1", epochs: int = 3) -> list[str]:
    return ["train", "--optimizer", optimizer, "--epochs", str(epochs), *ARGS, "--out", str(out), *extra]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def epochs_of(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def losses(folder: Path) -> list[tuple[int, float, float, int]]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["train_loss"], r["test_loss"], r["steps"]) for r in rows]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def straight(tmp_path: Path, capsys: pytest.CaptureFixture[str], epochs: int = 3) -> Path:
    """A run of ``epochs`` epochs without interruption (the reference of the resumed ones)."""
    out = tmp_path / "straight"
    assert run_cli(train_args(out, epochs=epochs), capsys)[0] == 0
    return out


# ---- processes: the lock -----------------------------------------------------------------------

BLOCKING_RUN = textwrap.dedent(
    """
    import sys
    from locograd import cli
    from locograd.experiments import training

    real = training.make_optimizer
    calls = {"n": 0}

    def make(net, run):
        opt = real(net, run)
        update = opt.step

        def blocking(params, x, y, state, *, lr=None):
            calls["n"] += 1
            if calls["n"] == 4:  # epoch 2, batch 1: epoch 1's checkpoint and row are on disk
                print("blocked", flush=True)
                sys.stdin.readline()  # until the test lets it go (or kills it)
            return update(params, x, y, state, lr=lr)

        opt.step = blocking
        return opt

    training.make_optimizer = make
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def start_blocked_run(tmp_path: Path, out: Path) -> subprocess.Popen[str]:
    """A ``locograd train`` process on ``out``, stopped in epoch 2 until its stdin gets a line."""
    script = tmp_path / "blocking_run.py"
    script.write_text(BLOCKING_RUN)
    proc = subprocess.Popen(
        [sys.executable, str(script), *train_args(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the epoch summaries, then "blocked"
        seen.append(line)
        if line.strip() == "blocked":
            return proc
    proc.kill()
    raise AssertionError(f"the blocking run did not start: {seen!r} {proc.communicate()[1]}")


def test_a_second_run_on_a_running_folder_fails_at_once_and_metrics_never_interleave(
    tmp_path, capsys
) -> None:
    """Before: the folder had no lock; a concurrent ``--resume`` ran beside the first run, both
    appending to ``metrics.jsonl`` (rows of epochs 2 and 3 twice, interleaved)."""
    out = tmp_path / "r"
    proc = start_blocked_run(tmp_path, out)
    try:
        before = (out / "metrics.jsonl").read_bytes()
        for extra in (["--resume"], []):
            code, _, err = run_cli(train_args(out, *extra), capsys)
            assert code == 2 and one_line(err), err
            assert f"out: {out} is in use by another locograd run (process {proc.pid})" in err
        assert (out / "metrics.jsonl").read_bytes() == before
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert epochs_of(out) == [0, 1, 2, 3]


def test_a_run_killed_with_sigkill_leaves_no_stale_lock(tmp_path, capsys) -> None:
    """Before: there was no lock at all (the first half fails: the live run's folder was not held).
    Now the flock dies with the process: after ``kill -9`` the folder resumes at once, and the row
    the killed run wrote past its checkpoint is not kept twice."""
    out = tmp_path / "r"
    proc = start_blocked_run(tmp_path, out)
    try:
        code, _, err = run_cli(train_args(out, "--resume"), capsys)
        assert code == 2 and "is in use by another locograd run" in err
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert (out / ".lock").exists()  # the file stays; the lock itself is gone with the process
    code, _, err = run_cli(train_args(out, "--resume"), capsys)
    assert code == 0, err
    assert losses(out) == losses(straight(tmp_path, capsys))


def test_compare_and_train_lock_their_folder(tmp_path, capsys) -> None:
    """Before: compare and train took no lock; both trained into a folder another process held."""
    folder = tmp_path / "held"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from locograd.experiments.runfolder import FolderLock\n"
            f"lock = FolderLock({str(folder)!r}).acquire(); print('held', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        common = ["--epochs", "1", "--limit-train", "80", "--batch-size", "40", "--no-progress"]
        for command in (
            ["compare", "--optimizers", "sgd", *common, "--out", str(folder)],
            ["train", "--optimizer", "sgd", *common, "--out", str(folder)],
        ):
            code, _, err = run_cli(command, capsys)
            assert code == 2 and one_line(err) and f"out: {folder} is in use" in err, (command, err)
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.communicate()


# ---- processes: a checkpoint write cut by kill -9 ----------------------------------------------

KILLED_IN_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from locograd import cli

    real = np.savez
    calls = {"n": 0}

    def savez(handle, **members):
        calls["n"] += 1
        if calls["n"] == 2:  # a checkpoint write, half done
            handle.write(b"PK\\x03\\x04 half a checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(handle, **members)

    np.savez = savez
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_kill_during_a_checkpoint_write_leaves_no_temporary_and_resumes_exactly(tmp_path, capsys) -> None:
    """Before: the temporary of a checkpoint write cut by ``kill -9`` stayed in the folder for good
    (nothing removed it).  Now the next run, under the lock, removes it; the resumed run drops the
    row written after the last intact checkpoint and ends bit-identical to a straight run."""
    out = tmp_path / "r"
    script = tmp_path / "killed_in_save.py"
    script.write_text(KILLED_IN_SAVE)
    done = subprocess.run(
        [sys.executable, str(script), *train_args(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    stray = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert stray and all(name.startswith(TEMP_PREFIX) for name in stray), stray
    code, _, err = run_cli(train_args(out, "--resume"), capsys)
    assert code == 0, err
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lock"]
    assert losses(out) == losses(straight(tmp_path, capsys))


# ---- stopped in epoch 1: an epoch-0 checkpoint ---------------------------------------------------


def poison(monkeypatch: pytest.MonkeyPatch, after: int, exc: BaseException | None) -> None:
    """The optimizer's update raises ``exc`` (or returns a NaN loss if ``None``) after ``after`` calls."""
    real = train_module.make_optimizer
    calls = {"n": 0}

    def make(net, run):
        opt = real(net, run)
        update = opt.step

        def poisoned(params, x, y, state, *, lr=None):
            calls["n"] += 1
            new, state, info = update(params, x, y, state, lr=lr)
            if calls["n"] > after:
                if exc is not None:
                    raise exc
                info = info._replace(loss=np.array(np.nan))
            return new, state, info

        opt.step = poisoned
        return opt

    monkeypatch.setattr(train_module, "make_optimizer", make)


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            KeyboardInterrupt(),
            130,
            "locograd: interrupted; the checkpoint at epoch 0 is in {out} (continue with --resume)",
        ),
        (
            None,
            3,
            "non-finite loss in epoch 1, batch 2; the last good checkpoint (epoch 0) and metrics are kept in {out}",
        ),
        (RuntimeError("the step failed"), 2, "locograd: error: the step failed"),
    ],
    ids=["ctrl-c", "diverged", "error"],
)
def test_a_run_stopped_in_epoch_1_resumes_from_its_epoch_0_checkpoint(
    tmp_path, capsys, monkeypatch, exc: BaseException | None, code: int, message: str
) -> None:
    """Before: the first checkpoint came after epoch 1.  A run stopped in epoch 1 left metrics.jsonl
    and no checkpoint, so the folder could be neither resumed ("resume: no checkpoint at ...") nor
    restarted ("already holds a run"), and Ctrl-C said "the last checkpoint in OUT is intact"."""
    out = tmp_path / "r"
    poison(monkeypatch, after=1, exc=exc)
    got, _, err = run_cli(train_args(out), capsys)
    assert got == code and one_line(err) and message.format(out=out) in err, err
    assert checkpoint.read_epoch(str(out / "checkpoint.npz")) == 0
    monkeypatch.undo()
    got, _, err = run_cli(train_args(out, "--resume"), capsys)
    assert got == 0, err
    assert losses(out) == losses(straight(tmp_path, capsys))


def test_ctrl_c_before_any_checkpoint_says_so(tmp_path, capsys, monkeypatch) -> None:
    """Before: "the last checkpoint in OUT is intact (continue with --resume)" with no checkpoint."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "load_dataset", interrupted)
    out = tmp_path / "r"
    code, _, err = run_cli(train_args(out), capsys)
    assert code == 130 and err == f"locograd: interrupted; no checkpoint was written in {out}\n"


# ---- every file of a run through one reader: a one-line message naming the file -----------------


def two_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "r"
    assert run_cli(train_args(out, epochs=2), capsys)[0] == 0
    return out


def refused(out: Path, capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """Resume ``out`` to 3 epochs; it must fail with one line holding ``expected``, changing nothing."""
    before = snapshot(out)
    code, _, err = run_cli(train_args(out, "--resume"), capsys)
    assert code == 2 and one_line(err), err
    for part in expected:
        assert part in err, err
    assert snapshot(out) == before
    return err


def test_torn_last_metrics_line_in_the_history_is_refused(tmp_path, capsys) -> None:
    """Before: ``locograd: error: Unterminated string starting at: line 1 column ...`` (json's
    message, no file named).  Now the line that is cut is named, and refused: rows the checkpoint
    needs (epochs 0..2) are missing."""
    out = two_epochs(tmp_path, capsys)
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text(lines[0] + lines[1][:30])
    refused(
        out,
        capsys,
        f"{out}/metrics.jsonl: line 2, the last, is cut short (a write was interrupted); "
        f"the run's rows up to epoch 2 ({out}/checkpoint.npz) are needed",
    )


def test_torn_last_metrics_line_past_the_checkpoint_is_dropped(tmp_path, capsys) -> None:
    """A torn last line after the rows the checkpoint covers is this run's own row, cut by a kill:
    resume drops it (it redoes that epoch anyway) and re-writes nothing before it.  The row of the
    checkpoint's own epoch, if it is the one torn, is restored from the checkpoint (it holds it).
    Before: ``locograd: error: Unterminated string ...`` for both."""
    reference = losses(straight(tmp_path, capsys))
    out = two_epochs(tmp_path, capsys)
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines) + '{"epoch": 3, "train_lo')
    assert run_cli(train_args(out, "--resume"), capsys)[0] == 0
    assert losses(out) == reference
    kept = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert kept[:3] == lines  # the bytes before the torn line are unchanged
    # the row of the checkpoint's own epoch torn: restored from the checkpoint
    out2 = tmp_path / "r2"
    assert run_cli(train_args(out2, epochs=2), capsys)[0] == 0
    (out2 / "metrics.jsonl").write_text(lines[0] + lines[1] + lines[2][:25])
    assert run_cli(train_args(out2, "--resume"), capsys)[0] == 0
    assert losses(out2) == reference


def test_metrics_row_without_epoch(tmp_path, capsys) -> None:
    """Before: a KeyError('epoch') traceback out of ``locograd train --resume``."""
    out = two_epochs(tmp_path, capsys)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    del row["epoch"]
    (out / "metrics.jsonl").write_text("\n".join([lines[0], json.dumps(row), lines[2]]) + "\n")
    refused(out, capsys, f"{out}/metrics.jsonl: line 2 has no 'epoch'")


def test_metrics_of_another_run_or_out_of_order_are_refused(tmp_path, capsys) -> None:
    """Before: resume kept every row with ``epoch <= E`` in file order, whatever run wrote it, and
    rewrote the file with them (another run's history became this run's)."""
    out = two_epochs(tmp_path, capsys)
    other = tmp_path / "other"
    assert run_cli(train_args(other, "--seed", "1", epochs=2), capsys)[0] == 0
    mine = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text((other / "metrics.jsonl").read_text())
    refused(
        out,
        capsys,
        f"{out}/metrics.jsonl: line 3 (epoch 2) is not the row of the run in {out}/checkpoint.npz",
    )
    (out / "metrics.jsonl").write_text("\n".join([mine[0], mine[2], mine[1]]) + "\n")
    refused(out, capsys, f"{out}/metrics.jsonl: line 2 holds epoch 2, expected 1")


def rewrite_checkpoint(path: Path, edit) -> None:
    """Rewrite the npz at ``path`` with ``edit(skeleton, arrays)`` applied (a valid npz)."""
    with np.load(path, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    skeleton = json.loads(str(members.pop("__skeleton__")))
    skeleton = edit(skeleton, members) or skeleton
    np.savez(path, __skeleton__=np.array(json.dumps(skeleton)), **members)


def test_malformed_checkpoint_skeleton(tmp_path, capsys) -> None:
    """Before: ``locograd: error: too many values to unpack (expected 1)`` (the node's shape was
    unpacked unchecked), or a KeyError / AttributeError traceback for other shapes."""
    out = two_epochs(tmp_path, capsys)

    def bad_node(skeleton, arrays):
        skeleton["tree"]["dict"]["epoch"] = {"value": 2, "extra": 1}

    rewrite_checkpoint(out / "checkpoint.npz", bad_node)
    err = refused(
        out,
        capsys,
        f"{out}/checkpoint.npz: malformed skeleton at payload['epoch']: expected one of the nodes",
    )
    with pytest.raises(RunFolderError):  # a CheckpointError is a RunFolderError
        checkpoint.load(str(out / "checkpoint.npz"))
    assert "unpack" not in err
    rewrite_checkpoint(
        out / "checkpoint.npz", lambda s, a: {"format": checkpoint.FORMAT_VERSION, "tree": [1, 2]}
    )
    refused(out, capsys, f"{out}/checkpoint.npz: malformed skeleton at payload: expected one of the nodes")


def test_missing_array_member(tmp_path, capsys) -> None:
    """Before: a KeyError('a0') traceback."""
    out = two_epochs(tmp_path, capsys)

    def drop(skeleton, arrays):
        del arrays["a0"]

    rewrite_checkpoint(out / "checkpoint.npz", drop)
    refused(
        out, capsys, f"{out}/checkpoint.npz: the array member 'a0' of payload['params'][0]['W'] is missing"
    )


def test_another_optimizers_state_and_wrong_shaped_params(tmp_path, capsys) -> None:
    """Before: rmsprop-tf1's update took adam's state (a KeyError traceback, or the state was dropped),
    and params of the wrong shape went into the first step (a matmul error with no file named)."""
    out = two_epochs(tmp_path, capsys)
    good = (out / "checkpoint.npz").read_bytes()
    saved = checkpoint.load(str(out / "checkpoint.npz"))
    net = autoencoder("curves")
    adam = build(net, dict(train_module.resolve(TrainConfig(optimizer="adam")).settings))
    checkpoint.save(str(out / "checkpoint.npz"), {**saved, "state": adam.init(saved["params"])})
    refused(
        out,
        capsys,
        f"{out}/checkpoint.npz: state.inner: expected RMSPropTF1State, got AdamState",
    )
    (out / "checkpoint.npz").write_bytes(good)
    params = [dict(layer) for layer in saved["params"]]
    params[0]["W"] = np.zeros((3, 3), np.float32)
    checkpoint.save(str(out / "checkpoint.npz"), {**saved, "params": params})
    refused(out, capsys, f"{out}/checkpoint.npz: params[0]['W']: expected shape (784, 400), got (3, 3)")


def test_checkpoint_format_version(tmp_path, capsys) -> None:
    """Before: there was no version; an unknown layout failed somewhere inside (``too many values
    to unpack``), and an unversioned checkpoint was read as the current layout."""
    out = two_epochs(tmp_path, capsys)
    assert (
        json.loads(str(np.load(out / "checkpoint.npz")["__skeleton__"]))["format"]
        == checkpoint.FORMAT_VERSION
    )
    rewrite_checkpoint(out / "checkpoint.npz", lambda s, a: {**s, "format": 99})
    refused(
        out, capsys, f"{out}/checkpoint.npz: checkpoint format version 99; this locograd reads version 2 only"
    )
    rewrite_checkpoint(out / "checkpoint.npz", lambda s, a: {**s, "format": 1})
    refused(
        out, capsys, f"{out}/checkpoint.npz: checkpoint format version 1; this locograd reads version 2 only"
    )
    rewrite_checkpoint(out / "checkpoint.npz", lambda s, a: s["tree"])  # no version at all
    refused(out, capsys, f"{out}/checkpoint.npz: malformed skeleton: expected {{'format': 2, 'tree': ...}}")


def test_npz_without_a_skeleton_and_a_text_file(tmp_path, capsys) -> None:
    """Before: ``'__skeleton__ is not a file in the archive'`` and, for a text file, NumPy's advice
    to "load it unsafely" (never suggest unpickling)."""
    out = two_epochs(tmp_path, capsys)
    np.savez(out / "checkpoint.npz", a0=np.zeros(2))
    refused(
        out, capsys, f"{out}/checkpoint.npz is not a readable locograd checkpoint (no __skeleton__ member)"
    )
    (out / "checkpoint.npz").write_text("params = 1\n")
    err = refused(out, capsys, "is not a readable locograd checkpoint (not an .npz archive")
    assert "unsafely" not in err and "allow_pickle" not in err


# ---- resuming never rewrites what it did not produce ---------------------------------------------


def test_resume_compares_config_json_instead_of_rewriting_it(tmp_path, capsys) -> None:
    """Before: ``--resume`` rewrote config.json with its own settings whatever it held."""
    out = two_epochs(tmp_path, capsys)
    config = json.loads((out / "config.json").read_text())
    config["settings"]["lr"] = 0.5
    (out / "config.json").write_text(json.dumps(config))
    refused(
        out,
        capsys,
        f"{out}/config.json: does not describe the run in {out}/checkpoint.npz (settings.lr differ)",
    )
    (out / "config.json").write_text("{not json")
    refused(out, capsys, f"{out}/config.json: not valid JSON (line 1")


def test_resume_to_the_same_epochs_changes_nothing_and_to_more_only_the_epochs(tmp_path, capsys) -> None:
    """Resuming to the checkpoint's own epoch rewrites no file; to more epochs, config.json differs
    in ``settings.epochs`` only.  Before, both rewrote config.json and metrics.jsonl (the metrics
    rows re-serialised), and ``--epochs`` below the checkpoint's epoch silently trained nothing."""
    out = two_epochs(tmp_path, capsys)
    before = snapshot(out)
    code, _, err = run_cli(train_args(out, "--resume", epochs=2), capsys)
    assert code == 0, err
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k != "loss.png"} == {
        k: v for k, v in before.items() if k != "loss.png"
    }
    code, _, err = run_cli(train_args(out, "--resume", epochs=1), capsys)
    assert (
        code == 2
        and f"epochs: the checkpoint {out}/checkpoint.npz is at epoch 2; expected --epochs >= 2" in err
    )
    old = json.loads(before["config.json"])
    assert run_cli(train_args(out, "--resume", epochs=3), capsys)[0] == 0
    new = json.loads((out / "config.json").read_text())
    assert new["settings"].pop("epochs") == 3 and old["settings"].pop("epochs") == 2 and new == old


# ---- compare: one comparison per folder -----------------------------------------------------------

COMPARE = ["--epochs", "1", "--limit-train", "80", "--batch-size", "40", "--no-progress"]


def compare_args(out: Path, optimizers: str, *extra: str) -> list[str]:
    return ["compare", "--optimizers", optimizers, *COMPARE, "--out", str(out), *extra]


def test_compare_refuses_a_folder_of_another_comparison_and_resumes_its_own(tmp_path, capsys) -> None:
    """Before: a second comparison trained into the folder of the first, beside its runs, and
    overwrote its summary.json and compare.png; nothing recorded what a folder held."""
    out = tmp_path / "cmp"
    assert run_cli(compare_args(out, "sgd,momentum"), capsys)[0] == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["optimizers"] == ["sgd", "momentum"] and set(record["runs"]) == {"sgd", "momentum"}
    summary = (out / "summary.json").read_bytes()
    for optimizers, extra, message in [
        ("adam", [], f"out: {out} holds another comparison (sgd, momentum; optimizers differ)"),
        ("sgd,adam", [], f"out: {out} holds another comparison (sgd, momentum; optimizers differ)"),
        ("sgd,adam", ["--resume"], f"out: {out} holds another comparison (sgd, momentum; optimizers differ)"),
        ("sgd,momentum", ["--lr", "0.5"], "(sgd, momentum; sgd.lr, momentum.lr differ)"),
        ("sgd,momentum", [], f"out: {out} already holds this comparison; pass --resume to continue it"),
    ]:
        code, _, err = run_cli(compare_args(out, optimizers, *extra), capsys)
        assert code == 2 and one_line(err) and message in err, err
    assert (out / "summary.json").read_bytes() == summary and not (out / "adam").exists()
    code, _, err = run_cli([*compare_args(out, "sgd,momentum", "--resume"), "--epochs", "2"], capsys)
    assert code == 0, err
    assert {s["epochs"] for s in json.loads((out / "summary.json").read_text()).values()} == {2}
    assert json.loads((out / "compare.json").read_text())["runs"]["sgd"]["epochs"] == 2


def test_compare_refuses_folders_holding_other_things(tmp_path, capsys) -> None:
    """Before: compare trained into a run's folder, beside another command's runs, and into a
    folder with an older comparison's summary.json (overwriting it)."""
    runs = tmp_path / "runs"
    assert run_cli(train_args(runs / "adam", optimizer="adam", epochs=1), capsys)[0] == 0
    code, _, err = run_cli(compare_args(runs, "sgd"), capsys)
    assert code == 2 and f"out: {runs} holds other runs (adam) and no compare.json" in err
    code, _, err = run_cli(compare_args(runs / "adam", "sgd"), capsys)
    assert code == 2 and f"out: {runs / 'adam'} holds a run (checkpoint.npz), not a comparison" in err
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "summary.json").write_text(json.dumps({"rmsprop-tf1": {}, "kfac": {}}))
    code, _, err = run_cli(compare_args(legacy, "sgd"), capsys)
    assert (
        code == 2 and "holds another comparison (summary.json of rmsprop-tf1, kfac, no compare.json)" in err
    )
    code, _, err = run_cli(compare_args(tmp_path / "none", "sgd", "--resume"), capsys)
    assert code == 2 and "resume: no comparison in" in err and not (tmp_path / "none").exists()


def test_train_refuses_a_comparison_folder(tmp_path) -> None:
    """Before: ``train --out CMP`` trained a run into a comparison's folder, beside its runs."""
    tiny = data.curves(n_train=80, n_test=40, seed=5)
    cfg = TrainConfig(optimizer="sgd", out=str(tmp_path / "c"), epochs=1, batch_size=40, progress=False)
    compare(cfg, ["sgd"], data=tiny)
    with pytest.raises(RunFolderError, match=r"holds a comparison \(compare.json\), not one run"):
        train(cfg, data=tiny)


# ---- the reader itself -------------------------------------------------------------------------


def test_scan_jsonl_reports_a_torn_tail_and_where_each_row_ends(tmp_path) -> None:
    """The reader resume uses: a torn last line is reported (not raised), row ends are byte offsets;
    other defects raise as in read_jsonl."""
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"epoch": 0}\n\n{"epoch": 1}\n{"epo')
    scan = scan_jsonl(str(path), required=("epoch",))
    assert scan.rows == [{"epoch": 0}, {"epoch": 1}] and scan.lines == [1, 3] and scan.ends == [13, 27]
    assert scan.torn == f"{path}: line 4, the last, is cut short (a write was interrupted)"
    path.write_bytes(b'{"epoch": 0}\n{"epo\n{"epoch": 1}\n')
    with pytest.raises(RunFolderError, match=r"line 2 is not valid JSON"):
        scan_jsonl(str(path))
    path.write_bytes('{"epoch": 0}\n{"a": "\u00e9"}'.encode()[:-3])  # a character cut in two
    assert scan_jsonl(str(path)).torn is not None
    assert scan_jsonl(str(tmp_path / "absent"), missing_ok=True).rows == []


def test_lock_names_the_folder_and_is_released(tmp_path) -> None:
    """The lock refuses a second holder in this process too (flock is per open file), and frees on exit."""
    with (
        FolderLock(str(tmp_path / "f")),
        pytest.raises(RunFolderError, match="is in use by another locograd run"),
    ):
        FolderLock(str(tmp_path / "f")).acquire()
    with FolderLock(str(tmp_path / "f")):
        pass
    assert os.path.isfile(tmp_path / "f" / ".lock")


def test_results_are_written_with_the_users_umask(tmp_path: Path) -> None:
    """``summary.json``, ``report.md``, configs and checkpoints are for sharing: written as ``open``
    writes files (0666 less the umask), not 0600 as ``mkstemp`` makes them."""
    import os

    from locograd.experiments import checkpoint
    from locograd.experiments.runfolder import append_jsonl, write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(str(tmp_path / "summary.json"), {"a": 1})
        checkpoint.save(str(tmp_path / "checkpoint.npz"), {"epoch": 0})
        append_jsonl(str(tmp_path / "rows.jsonl"), {"a": 1})
        os.umask(0o077)  # the control: a stricter umask is honoured
        write_json_atomic(str(tmp_path / "private.json"), {"a": 1})
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {
        "summary.json": 0o644,
        "checkpoint.npz": 0o644,
        "rows.jsonl": 0o644,
        "private.json": 0o600,
    }
