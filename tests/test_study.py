"""`locograd study`: spec validation, trial keys, edge extension, resume, dead workers, Dask, the lock.

Every study here is tiny (CURVES, 200-300 images, 1-2 epochs, batch 100, one BLAS thread per
trial) so that the file runs in a few minutes on 2 cores.  Before this package existed there was
no `locograd study`: each test below fails on the old code for want of it, and each checks a
behaviour the issue asks for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from locograd import cli
from locograd.errors import RunFolderError
from locograd.experiments.runfolder import FolderLock, read_jsonl
from locograd.study import NUMERICS_VERSION, SpecError, parse, run_study
from locograd.study.execute import TEST_KILL_ENV, StudyError
from locograd.study.protocol import Planner, beyond
from locograd.study.report import epochs_to_target, time_independent
from locograd.study.trials import trial_key

REPO = Path(__file__).resolve().parents[1]

TINY = """
name = "tiny"
extend_limit = 1

protocol = "grid"

[tuning]
epochs = 1
subset = 200

[final]
epochs = 2
seeds = 2

[datasets.curves]
limit_train = 300
limit_test = 200
batch_size = 100
targets = ["auto", 300]

[optimizers.adam]
lr = [1e-3, 3e-3]

[optimizers.rmsprop-tf1]
lr = [3e-4, 1e-3]
"""


def _write(tmp: Path, text: str, name: str = "tiny.toml") -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(spec: str, out: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("jobs", 1 if "cluster" not in kw else None)
    kw.setdefault("threads", 1)
    return run_study(spec, str(out), progress=False, echo=lambda line: None, **kw)


def _finished_keys(out: Path) -> list[str]:
    return [r["key"] for r in read_jsonl(str(out / "trials.jsonl"))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, Any]]:
    """One uninterrupted run of the tiny spec: the numbers every other run must reproduce."""
    tmp = tmp_path_factory.mktemp("study-reference")
    spec = _write(tmp, TINY)
    out = tmp / "out"
    summary = _run(spec, out)
    return spec, out, summary


# --- the spec -------------------------------------------------------------------------------------

BASE = {
    "protocol": "grid",
    "tuning": {"epochs": 1},
    "final": {"epochs": 1},
    "datasets": {"curves": {}},
    "optimizers": {"adam": {"lr": [1e-3]}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(BASE))
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "optimizers.adam.lr",
            "fast",
            'optimizers.adam.lr: expected a list of numbers or {min, max, n}, got "fast"',
        ),
        ("optimizers.adam.lr", [1e-3, -1.0], "optimizers.adam.lr[1]: expected a number > 0, got -1.0"),
        (
            "optimizers.adam.lr",
            {"min": 1e-3, "max": 1e-4, "n": 3},
            "optimizers.adam.lr.max: expected a number > min",
        ),
        (
            "optimizers.adam.lr",
            {"min": 1e-3, "max": 1e-2},
            "optimizers.adam.lr: expected a list of numbers or {min, max, n}",
        ),
        (
            "optimizers.adam.gamma",
            [1.0, 2.0],
            "optimizers.adam.gamma: only applies to locoprop-s and locoprop-m",
        ),
        ("optimizers.adam.speed", 1, "optimizers.adam.speed: unknown key; valid keys are base, "),
        (
            "optimizers.fancy",
            {"lr": [1e-3]},
            'optimizers.fancy: unknown optimizer "fancy"; valid names are sgd',
        ),
        ("optimizers.k5", {"base": "locoprop-q"}, 'optimizers.k5.base: unknown name "locoprop-q"'),
        (
            "optimizers.locoprop-m",
            {"steps": [0, 5]},
            "optimizers.locoprop-m.steps[0]: expected an integer >= 1, got 0",
        ),
        ("optimizers.locoprop-m", {"inner": "lbfgs"}, 'optimizers.locoprop-m.inner: unknown name "lbfgs"'),
        (
            "optimizers.adam.schedule",
            "cosine",
            'optimizers.adam.schedule: expected "constant", "released" or {warmup, total}',
        ),
        ("optimizers.adam.seeds", 0, "optimizers.adam.seeds: expected an integer >= 1, got 0"),
        (
            "datasets.cifar",
            {},
            'datasets.cifar: unknown name "cifar"; valid names are curves, mnist, fashion-mnist',
        ),
        (
            "datasets.curves.targets",
            ["best"],
            'datasets.curves.targets[0]: expected "auto", "first-order", "second-order" or a number > 0, got "best"',
        ),
        ("datasets.curves.batch_size", 0, "datasets.curves.batch_size: expected an integer >= 1, got 0"),
        ("datasets.curves.hidden", "swish", 'datasets.curves.hidden: unknown name "swish"'),
        ("tuning.epochs", 1.5, "tuning.epochs: expected an integer >= 1, got 1.5"),
        ("tuning.epoch", 1, "tuning.epoch: unknown key; valid keys are epochs, subset, seeds"),
        ("final.seeds", True, "final.seeds: expected an integer >= 1, got true"),
        ("device", "tpu", 'device: unknown name "tpu"; valid names are cpu, gpu'),
        ("extend_limit", -1, "extend_limit: expected an integer >= 0, got -1"),
    ],
)
def test_a_bad_spec_gets_one_line_naming_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(_with(path, value), name="t")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_settings_that_do_not_fit_together_are_refused_naming_the_key() -> None:
    subset = _with("tuning.subset", 500)
    subset["datasets"]["curves"]["limit_train"] = 300
    with pytest.raises(
        SpecError, match=r"^tuning.subset: 500 is larger than datasets.curves.limit_train \(300\)$"
    ):
        parse(subset, name="t")
    long = _with("optimizers.adam.schedule", {"warmup": 0, "total": 5})
    long["final"]["epochs"] = 5
    with pytest.raises(
        SpecError, match=r"^optimizers.adam.schedule: the warm-up and linear decay reaches 0 at epoch 4"
    ):
        parse(long, name="t")
    warm = _with("optimizers.adam.schedule", "released")  # a warm-up of 5 epochs, tuned on fewer
    warm["tuning"]["epochs"] = 5
    with pytest.raises(
        SpecError,
        match=r"^optimizers.adam.schedule: its warm-up lasts 5 epochs, as long as or longer than "
        r"tuning.epochs \(5\), so the tuning would choose a peak rate it never trained at; give "
        r"tuning.epochs >= 6 or a shorter warm-up$",
    ):
        parse(warm, name="t")
    warm["tuning"]["epochs"] = 6  # the control: one epoch at the peak rate is enough
    assert parse(warm, name="t").optimizers[0].schedule == {"warmup": 5, "total": 100}
    twice = _with("optimizers.Adam", {"lr": [1e-3]})
    with pytest.raises(SpecError, match="names one optimizer twice"):
        parse(twice, name="t")


def test_tuning_ranks_points_by_the_mean_over_tuning_seeds_and_diverged_last() -> None:
    from locograd.study.protocol import Tuning

    spec = parse(
        {
            "protocol": "grid",
            "tuning": {"epochs": 1, "seeds": 2},
            "final": {"epochs": 1},
            "datasets": {"curves": {}},
            "optimizers": {"adam": {"lr": [1e-3, 3e-3, 1e-2]}},
        },
        name="t",
    )
    tu = Tuning(Planner(spec), spec.datasets[0], spec.optimizers[0])
    losses = {1e-3: (5.0, 1.0), 3e-3: (2.0, 2.5), 1e-2: (0.5, None)}  # None: diverged
    records = {}
    for point in tu.points:
        for t, loss in zip(tu.trials(point), losses[point["lr"]], strict=True):
            status = "finished" if loss is not None else "diverged"
            records[t.key] = {"status": status, "final_train_loss": loss}
    assert [tu.score(p, records) for p in tu.points] == [3.0, 2.25, float("inf")]
    assert tu.best(records) == {"lr": 3e-3}
    assert tu.extend(records) == []  # the best is inside the range: nothing to extend
    for t in tu.trials({"lr": 1e-2}):
        records[t.key] = {"status": "finished", "final_train_loss": 0.5}
    assert tu.best(records) == {"lr": 1e-2}
    assert tu.extend(records) == [{"lr": pytest.approx(0.0333333)}]


def test_a_good_spec_parses_ranges_variants_and_schedules() -> None:
    spec = parse(
        {
            "protocol": "grid",
            "tuning": {"epochs": 6, "subset": 200},
            "final": {"epochs": 3, "seeds": 2},
            "datasets": {"Curves": {"limit_train": 400, "widths": [32, 8], "targets": ["auto", 150]}},
            "optimizers": {
                "RMSProp-TF1": {"lr": {"min": 1e-5, "max": 1e-3, "n": 3}},
                "locoprop-m-k5": {
                    "base": "LocoProp_M",
                    "steps": 5,
                    "lr": [1e-5, 3e-5],
                    "schedule": "released",
                },
                "locoprop-m-relu": {
                    "base": "locoprop-m",
                    "hidden": "relu",
                    "steps": {"min": 1, "max": 20, "n": 3},
                },
            },
        },
        name="good",
    )
    rms, k5, relu = spec.optimizers
    assert (rms.name, rms.base, rms.axes[0].values) == ("rmsprop-tf1", "rmsprop-tf1", (1e-5, 1e-4, 1e-3))
    assert (k5.base, k5.fixed, k5.schedule) == ("locoprop-m", {"steps": 5}, {"warmup": 5, "total": 100})
    assert relu.axes[0].values == (1, 4, 20) and relu.hidden == "relu"
    assert spec.datasets[0].name == "curves" and spec.final_seeds == 2 and spec.tuning_seeds == 1


def test_the_cli_reports_a_bad_spec_in_one_line_and_leaves_the_folder_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path, TINY.replace("lr = [1e-3, 3e-3]", 'lr = "fast"'))
    out = tmp_path / "out"
    assert cli.main(["study", spec, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == 'locograd: error: optimizers.adam.lr: expected a list of numbers or {min, max, n}, got "fast"'
    )
    assert not out.exists()


def test_a_data_set_missing_on_the_machine_is_reported_before_any_trial(tmp_path: Path) -> None:
    spec = _write(
        tmp_path, TINY.replace("[datasets.curves]", f'[datasets.mnist]\ndata_dir = "{tmp_path}/none"')
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="mnist"):
        _run(spec, out)
    assert not out.exists()


# --- trial keys, the protocol's arithmetic, the numbers --------------------------------------------


def test_trial_keys_do_not_depend_on_spelling_but_on_every_setting() -> None:
    def key(opt: dict[str, Any], seed: int = 0, name: str = "adam") -> str:
        spec = parse(
            {
                "protocol": "grid",
                "tuning": {"epochs": 1},
                "final": {"epochs": 2},
                "datasets": {"curves": {}},
                "optimizers": {name: opt},
            },
            name="k",
        )
        return Planner(spec).trial(spec.datasets[0], spec.optimizers[0], {}, seed, "final").key

    same = key({"lr": 0.001})
    assert key({"lr": 1e-3}) == same
    assert key({"lr": [1e-3]}) == same  # a one-value list is a fixed setting
    assert key({"lr": 0.001, "schedule": "constant"}) == same
    assert key({"lr": 0.001}, name="ADAM") == same
    # negative controls: another value, seed, optimizer or schedule is another trial
    assert key({"lr": 0.002}) != same
    assert key({"lr": 0.001}, seed=1) != same
    assert key({"lr": 0.001}, name="sgd") != same
    assert key({"lr": 0.001, "schedule": {"warmup": 0, "total": 10}}) != same
    locoprop_default = key({"lr": 1e-5}, name="locoprop-m")
    from locograd.experiments.optimizers import default

    gamma = default("locoprop-m", "gamma", "curves")  # the defaults written out are the same trial
    assert (
        key({"lr": 1e-5, "steps": 10, "gamma": gamma, "inner": "RMSPROP_TF1"}, name="locoprop-m")
        == locoprop_default
    )
    assert trial_key({"numerics": NUMERICS_VERSION}) != trial_key({"numerics": NUMERICS_VERSION + 1})


def test_one_step_beyond_an_edge_repeats_the_last_ratio_and_respects_bounds() -> None:
    assert beyond((1e-4, 3e-4), "up", integer=False, name="lr") == pytest.approx(9e-4, rel=1e-6)
    assert beyond((1e-4, 3e-4), "down", integer=False, name="lr") == pytest.approx(1e-4 / 3, rel=1e-5)
    assert beyond((5, 10), "up", integer=True, name="steps") == 20
    assert beyond((2, 3), "down", integer=True, name="steps") == 1  # rounds to 1 (>= 1)
    assert beyond((1, 2), "down", integer=True, name="steps") is None  # K >= 1
    assert beyond((1e-3,), "up", integer=False, name="lr") is None  # no step to repeat


def test_epochs_and_seconds_to_target() -> None:
    rows = [
        {"epoch": 0, "train_loss": 10.0, "seconds": 0.0},
        {"epoch": 1, "train_loss": 6.0, "seconds": 1.0},
        {"epoch": 2, "train_loss": 2.0, "seconds": 3.0},
    ]
    assert epochs_to_target(rows, 6.0) == (1, 1.0)  # at or below: the first epoch
    assert epochs_to_target(rows, 4.0) == (2, 2.0)  # halfway through epoch 2's drop
    assert epochs_to_target(rows, 1.0) is None
    assert epochs_to_target(rows, 11.0) == (0, 0.0)


# --- real tiny studies -------------------------------------------------------------------------------


def test_a_study_writes_its_report_summary_figures_and_one_record_per_trial(
    reference: tuple[str, Path, dict[str, Any]],
) -> None:
    _, out, summary = reference
    for name in (
        "report.md",
        "summary.json",
        "trials.jsonl",
        "figures/final-runs.png",
        "figures/tuning-curves-adam.png",
    ):
        assert (out / name).is_file(), name
    keys = _finished_keys(out)
    assert len(keys) == len(set(keys)) == len(summary["trials"])
    curves = summary["datasets"]["curves"]
    assert set(curves["ranks"]) == {"adam", "rmsprop-tf1"}
    for name, o in curves["optimizers"].items():
        assert o["final_train"]["n"] == 2, name
        a, b = (f["final_train_loss"] for f in o["final"])  # the sample sd: |a - b| / sqrt(2) for two seeds
        assert o["final_train"]["std"] == pytest.approx(abs(a - b) / 2**0.5, rel=1e-12), name
        assert (out / "trials" / o["final"][0]["key"] / "checkpoint.npz").is_file()
    report = (out / "report.md").read_text()
    assert "| rank | optimizer |" in report and "1 x 1" in report and "BLAS" in report


def test_edge_extension_on_a_tiny_real_run(tmp_path: Path) -> None:
    """adam with learning rates far too small: the best one sits on the upper edge, so the study
    trains 3x and then 9x the largest (extend_limit 2) and says so in the report."""
    spec = _write(
        tmp_path,
        TINY.replace("extend_limit = 1", "extend_limit = 2")
        .replace("lr = [1e-3, 3e-3]", "lr = [1e-5, 3e-5]")
        .replace("[optimizers.rmsprop-tf1]\nlr = [3e-4, 1e-3]\n", ""),
    )
    summary = _run(spec, tmp_path / "out")
    adam = summary["datasets"]["curves"]["optimizers"]["adam"]
    assert [(e["direction"], e["value"]) for e in adam["extensions"]] == [("up", 9e-5), ("up", 0.00027)]
    assert adam["chosen"] == {"lr": 0.00027}
    assert adam["still_on_edge"] == ["lr"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "the best lr was on the upper edge (3e-05); extension 1 tried 9e-05" in report
    assert "still on the edge of lr" in report


def test_resume_after_kill_9_reruns_no_finished_trial_and_gives_the_same_numbers(
    tmp_path: Path, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    spec, _, ref = reference
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "locograd",
        "study",
        spec,
        "--out",
        str(out),
        "--jobs",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            path = out / "trials.jsonl"
            if path.is_file() and len(path.read_text().splitlines()) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the study ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the study and its pool workers, at once
        proc.wait()
    before = _finished_keys(out)
    assert 3 <= len(before) < len(ref["trials"])
    summary = _run(spec, out)
    after = _finished_keys(out)
    assert after[: len(before)] == before and len(after) == len(set(after)) == len(ref["trials"])
    assert time_independent(summary) == time_independent(ref)


def test_resume_from_a_folder_without_checkpoints(
    tmp_path: Path, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    """A folder as committed to a repository: trials.jsonl, each trial's config and metrics; here the
    last three records are missing too (unfinished trials): they restart, the others are kept."""
    spec, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out, ignore=shutil.ignore_patterns("checkpoint.npz", ".lock"))
    lines = (out / "trials.jsonl").read_text().splitlines(keepends=True)
    (out / "trials.jsonl").write_text("".join(lines[:-3]))
    summary = _run(spec, out)
    keys = _finished_keys(out)
    assert keys[:-3] == [json.loads(line)["key"] for line in lines[:-3]]
    assert sorted(keys[-3:]) == sorted(json.loads(line)["key"] for line in lines[-3:])
    assert time_independent(summary) == time_independent(ref)


def test_a_corrupt_trial_folder_is_reported_by_path_and_rerun(
    tmp_path: Path, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    spec, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out, ignore=shutil.ignore_patterns(".lock"))
    records = read_jsonl(str(out / "trials.jsonl"))
    torn, truncated = records[-1]["key"], records[-2]["key"]
    metrics = out / "trials" / torn / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-20])  # a torn last line
    kept = [*records[:-2], records[-1]]  # the truncated one is unfinished; the torn one finished
    (out / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    ckpt = out / "trials" / truncated / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # a truncated checkpoint of an unfinished trial
    lines: list[str] = []
    summary = run_study(spec, str(out), jobs=1, threads=1, progress=False, echo=lines.append)
    text = "\n".join(lines)
    assert str(metrics) in text and "cut short" in text
    assert f"{out / 'trials' / truncated} is corrupt" in text
    assert time_independent(summary) == time_independent(ref)


def test_widening_a_spec_runs_only_the_new_trials(
    tmp_path: Path, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    spec, ref_out, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out, ignore=shutil.ignore_patterns(".lock"))
    wider = _write(tmp_path, Path(spec).read_text().replace("lr = [1e-3, 3e-3]", "lr = [1e-3, 2e-3, 3e-3]"))
    before = set(_finished_keys(out))
    summary = _run(wider, out)
    new = [k for k in _finished_keys(out) if k not in before]
    names = [summary["trials"][k]["name"] for k in new]
    assert names and all("adam" in n for n in names), names
    assert "curves/adam tuning lr=0.002 seed 0" in names
    assert all(k in before for k in ref["trials"] if "rmsprop-tf1" in ref["trials"][k]["name"])


def test_a_diverged_trial_is_recorded_and_not_retried(tmp_path: Path) -> None:
    spec = _write(
        tmp_path,
        TINY.replace("[optimizers.rmsprop-tf1]\nlr = [3e-4, 1e-3]\n", "[optimizers.sgd]\nlr = [1e37]\n"),
    )
    out = tmp_path / "out"
    summary = _run(spec, out)
    records = read_jsonl(str(out / "trials.jsonl"))
    diverged = [r for r in records if r["status"] == "diverged"]
    assert [r["name"] for r in diverged] == ["curves/sgd tuning lr=1e+37 seed 0"]
    assert summary["datasets"]["curves"]["ranks"][-1] == "sgd"  # no final runs: ranked last
    assert summary["datasets"]["curves"]["optimizers"]["sgd"]["chosen"] is None
    _run(spec, out)
    assert len(read_jsonl(str(out / "trials.jsonl"))) == len(records)  # nothing ran again


def test_a_local_worker_killed_mid_trial_does_not_end_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    """The test hook kills the worker (SIGKILL) after the first epoch of both adam final runs;
    the pool is rebuilt, the trials continue from their checkpoints, the numbers are the same."""
    spec, _, ref = reference
    out = tmp_path / "out"
    monkeypatch.setenv(TEST_KILL_ENV, "adam final")
    lines: list[str] = []
    summary = run_study(spec, str(out), jobs=2, threads=1, progress=False, echo=lines.append)
    assert sorted(p.name for p in out.glob(".test-killed-*")) == sorted(
        f".test-killed-{f['key']}" for f in summary["datasets"]["curves"]["optimizers"]["adam"]["final"]
    )
    assert not summary["failed"]
    assert time_independent(summary) == time_independent(ref)


def test_the_lock_refuses_a_second_study_in_the_same_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path, TINY)
    out = tmp_path / "out"
    with FolderLock(str(out)):
        with pytest.raises(RunFolderError, match=f"study folder: {out} is in use by another locograd run"):
            _run(spec, out)
        assert cli.main(["study", spec, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use" in err
    assert not (out / "trials.jsonl").exists()


def test_a_folder_holding_something_else_is_refused(tmp_path: Path) -> None:
    spec = _write(tmp_path, TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunFolderError, match="holds something other than a study"):
        _run(spec, out)


# --- Dask -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scheduler() -> Any:
    """An existing Dask cluster (2 single-threaded worker processes with nannies), used through
    ``--scheduler tcp://...`` as a user with a cluster would."""
    import distributed

    from locograd.study.execute import _dask_warnings

    with _dask_warnings():
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        )
    try:
        yield cluster.scheduler_address
    finally:
        with _dask_warnings():
            cluster.close()


def test_an_unreachable_scheduler_fails_within_seconds_naming_its_address(tmp_path: Path) -> None:
    spec = _write(tmp_path, TINY)
    start = time.monotonic()
    with pytest.raises(StudyError, match=re.escape("at tcp://127.0.0.1:9 within")):
        _run(spec, tmp_path / "out", scheduler="tcp://127.0.0.1:9", jobs=None)
    assert time.monotonic() - start < 20


def test_the_local_pool_and_a_dask_local_cluster_give_the_same_numbers_bit_for_bit(
    tmp_path: Path, reference: tuple[str, Path, dict[str, Any]]
) -> None:
    spec, _, ref = reference
    summary = _run(spec, tmp_path / "out", cluster="local:2")
    assert "Dask" in summary["execution"]["runner"]
    assert time_independent(summary) == time_independent(ref)
    # negative control: the comparison sees a changed loss
    changed = json.loads(json.dumps(summary))
    key = next(iter(changed["trials"]))
    changed["trials"][key]["final_train_loss"] += 1e-12
    assert time_independent(changed) != time_independent(ref)


def test_a_dask_worker_killed_mid_trial_gets_its_trial_retried(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: tuple[str, Path, dict[str, Any]],
    scheduler: str,
) -> None:
    """The test hook kills the worker process after the first epoch of both rmsprop-tf1 final runs; Dask
    reschedules the task (its nanny restarts the worker), which continues from the checkpoint."""
    spec, _, ref = reference
    out = tmp_path / "out"
    monkeypatch.setenv(TEST_KILL_ENV, "rmsprop-tf1 final")
    summary = _run(spec, out, scheduler=scheduler, jobs=None)
    assert summary["execution"]["runner"].startswith(f"Dask ({scheduler})")
    killed = sorted(p.name for p in out.glob(".test-killed-*"))
    assert killed == sorted(
        f".test-killed-{f['key']}"
        for f in summary["datasets"]["curves"]["optimizers"]["rmsprop-tf1"]["final"]
    )
    assert not summary["failed"]
    assert time_independent(summary) == time_independent(ref)


def test_the_shipped_specs_are_valid() -> None:
    from locograd.study import load

    names = sorted(p.name for p in (REPO / "studies").glob("*.toml"))
    assert {
        "smoke.toml",
        "curves.toml",
        "fashion-mnist.toml",
        "fashion-mnist-cnn.toml",
        "mnist.toml",
        "ablations.toml",
    } <= set(names)
    for name in names:
        load(str(REPO / "studies" / name))


def test_without_a_shared_folder_dask_workers_send_the_trials_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference: tuple[str, Path, dict[str, Any]],
    scheduler: str,
) -> None:
    """The client writes its token where the workers do not look, as on a cluster without a shared
    file system: the workers train in temporary folders and the client writes the trial folders."""
    import locograd.study.protocol as protocol

    spec, _, ref = reference
    out = tmp_path / "out"
    monkeypatch.setattr(protocol, "TOKEN_NAME", ".token-the-workers-cannot-see")
    summary = _run(spec, out, scheduler=scheduler, jobs=None)
    assert time_independent(summary) == time_independent(ref)
    folders = [p for p in (out / "trials").iterdir() if p.is_dir()]
    assert len(folders) == len(ref["trials"])
    assert all((p / "metrics.jsonl").is_file() and (p / "config.json").is_file() for p in folders)
    assert not list((out / "trials").glob("*/checkpoint.npz"))  # trained elsewhere


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "jobs: expected an integer >= 1, got 0"),
        (["--threads", "-1"], "threads: expected an integer >= 1, got -1"),
        (["--cluster", "remote:2"], "cluster: expected local:N with N >= 1"),
        (["--cluster", "local:0"], "cluster: expected local:N with N >= 1"),
        (
            ["--cluster", "local:1", "--scheduler", "tcp://h:8786"],
            "scheduler: give --scheduler or --cluster, not both",
        ),
        (["--cluster", "local:2", "--jobs", "2"], "jobs: a Dask cluster runs as many trials at once"),
        (["--device", "tpu"], "device: expected one of cpu, gpu, got 'tpu'"),
    ],
)
def test_bad_execution_options_get_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    spec = _write(tmp_path, TINY)
    out = tmp_path / "out"
    assert cli.main(["study", spec, "--out", str(out), "--no-progress", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"locograd: error: {message}") and err.count("\n") == 1, err
    assert not out.exists()


def test_the_second_order_target_is_the_best_second_order_final_loss(tmp_path: Path) -> None:
    """The report's targets: the best first-order final mean train loss and the best second-order one,
    each labelled with the optimizer it comes from, and every optimizer's epochs to each."""
    spec = _write(
        tmp_path,
        TINY.replace('targets = ["auto", 300]', 'targets = ["first-order", "second-order"]')
        .replace("seeds = 2", "seeds = 1")
        .replace("[optimizers.rmsprop-tf1]\nlr = [3e-4, 1e-3]", "[optimizers.kfac]\nlr = 1.0\ndamping = 1.0"),
    )
    summary = _run(spec, tmp_path / "out")
    curves = summary["datasets"]["curves"]
    finals = {k: o["final_train"]["mean"] for k, o in curves["optimizers"].items()}
    first, second = curves["targets"]
    assert (first["target"], first["from"], first["value"]) == ("auto", "adam", finals["adam"])
    assert (second["target"], second["from"], second["value"]) == ("second-order", "kfac", finals["kfac"])
    # each optimizer reaches its own final loss, at the last epoch at the latest
    for name, o in curves["optimizers"].items():
        own = o["targets"][0 if name == "adam" else 1]
        assert own["reached"] == 1 and own["epochs"] <= 2, name
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"best first-order {finals['adam']:.3f} (adam)" in report
    assert f"best second-order {finals['kfac']:.3f} (kfac)" in report


def test_a_final_run_that_ends_above_its_start_is_left_off_the_figures_scale() -> None:
    """Before: one optimizer whose loss rose tenfold set the y-range of final-runs.png and squeezed every
    other curve into a line at the bottom; now the scale follows the runs that end below their start."""
    from locograd.study.report import _ends_above_start

    rows = lambda *losses: [{"train_loss": v} for v in losses]  # noqa: E731
    assert _ends_above_start([rows(548.0, 350.0, 2091.0), rows(548.0, 340.0, 1858.0)])
    assert not _ends_above_start([rows(548.0, 230.0, 224.0)])  # the control: a run that learned
