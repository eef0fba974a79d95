"""Faults of `locograd study` found by probing it: each test's docstring says what the code did before.

Every study here is tiny (CURVES, 200 images, 1 epoch, batch 100, one BLAS thread), so that the
file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from locograd.experiments.runfolder import read_jsonl
from locograd.study import SpecError, parse, run_study
from locograd.study.execute import StudyError, cores, gpu_count

TINY = """
name = "tiny"
extend_limit = 0

protocol = "grid"

[tuning]
epochs = 1
subset = 200

[final]
epochs = 2
seeds = 1

[datasets.curves]
limit_train = 200
limit_test = 100
batch_size = 100
targets = ["auto"]

[optimizers.adam]
lr = [1e-3, 3e-3]
"""


def _spec(tmp: Path, text: str = TINY) -> str:
    path = tmp / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(spec: str, out: Path, lines: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("jobs", None if ("cluster" in kw or "scheduler" in kw) else 1)
    kw.setdefault("threads", 1)
    echo = lines.append if lines is not None else (lambda line: None)
    return run_study(spec, str(out), progress=False, echo=echo, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, Any]]:
    """One finished tiny study (3 trials: 2 tuning points of 1 epoch, 1 final seed of 2 epochs)."""
    tmp = tmp_path_factory.mktemp("faults")
    spec = _spec(tmp)
    out = tmp / "out"
    return spec, out, _run(spec, out)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


# --- failures before the study folder is touched ---------------------------------------------------


def test_an_unreachable_scheduler_leaves_the_study_folder_untouched(tmp_path: Path) -> None:
    """Before: the folder was created with .lock, .study-token and spec.toml, then the connection failed."""
    spec = _spec(tmp_path)
    fresh = tmp_path / "fresh"
    start = time.monotonic()
    with pytest.raises(StudyError, match=r"tcp://127\.0\.0\.1:9"):
        _run(spec, fresh, scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - start < 20
    assert not fresh.exists()


def test_a_malformed_scheduler_address_is_refused_in_one_line_before_anything(tmp_path: Path) -> None:
    """Before: 'foo:bar' created the folder and then failed inside Dask with "invalid literal for int()"."""
    spec = _spec(tmp_path)
    with pytest.raises(
        StudyError, match=r"^scheduler: expected an address such as tcp://HOST:8786, got 'foo:bar'$"
    ):
        _run(spec, tmp_path / "out", scheduler="foo:bar")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU")
def test_a_local_dask_cluster_on_gpu_without_a_gpu_fails_before_any_trial(tmp_path: Path) -> None:
    """Before: --cluster local:2 --device gpu started the cluster, every trial failed with a ConfigError,
    and a report of failed trials was written; the local pool refused it at once."""
    spec = _spec(tmp_path)
    with pytest.raises(StudyError, match=r"^device: gpu asked for, but no usable GPU"):
        _run(spec, tmp_path / "out", cluster="local:2", device="gpu")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["jobs", "threads"])
def test_huge_jobs_or_threads_are_refused(tmp_path: Path, name: str) -> None:
    """Before: --jobs 100000 would start 100,000 worker processes, --threads 100000 was passed to BLAS."""
    spec = _spec(tmp_path)
    kw = {"jobs": 1, "threads": 1, name: 100_000}
    with pytest.raises(StudyError, match=rf"^{name}: expected at most {4 * cores()} .*got 100000$"):
        _run(spec, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


# --- the spec --------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "protocol": "grid",
    "tuning": {"epochs": 1},
    "final": {"epochs": 1},
    "datasets": {"curves": {}},
}


def test_a_variant_based_on_a_variant_is_named_as_such() -> None:
    """Before: 'optimizers.k5.base: unknown name "locoprop-m-k2"', as if the name were a typo."""
    raw = {
        **BASE,
        "optimizers": {"locoprop-m-k2": {"base": "locoprop-m", "steps": 2}, "k5": {"base": "locoprop-m-k2"}},
    }
    with pytest.raises(SpecError, match=r'^optimizers.k5.base: "locoprop-m-k2" is itself a named variant'):
        parse(raw, name="t")


def test_auto_without_a_first_order_baseline_is_a_spec_error_and_not_a_default() -> None:
    """Before: accepted; the report's target column read "auto = — (no first-order baseline)" and every
    optimizer "not reached"."""
    raw = {**BASE, "datasets": {"curves": {"targets": [100, "auto"]}}, "optimizers": {"locoprop-m": {}}}
    with pytest.raises(SpecError, match=r'^datasets.curves.targets\[1\]: "auto" is the final train loss'):
        parse(raw, name="t")
    default = parse({**BASE, "optimizers": {"locoprop-m": {}}}, name="t")
    assert default.datasets[0].targets == ()  # no default "auto" without a baseline
    with_variant = parse({**BASE, "optimizers": {"adam-2": {"base": "adam"}, "locoprop-m": {}}}, name="t")
    assert with_variant.datasets[0].targets == ("auto",)  # a variant of a first-order method is a baseline


def test_the_second_order_target_needs_a_second_order_baseline() -> None:
    """The second named target, the best second-order final loss: accepted with K-FAC, Shampoo or FOOF (or a
    variant) in the spec, an error naming the list without; "first-order" is "auto" spelled out."""
    raw = {**BASE, "datasets": {"curves": {"targets": ["First_Order", "second-order"]}}}
    with pytest.raises(
        SpecError,
        match=r'^datasets.curves.targets\[1\]: "second-order" is the final train loss of the best second-order '
        r"baseline \(kfac, shampoo, foof, or a variant of one\)",
    ):
        parse({**raw, "optimizers": {"adam": {}, "locoprop-m": {}}}, name="t")
    spec = parse({**raw, "optimizers": {"adam": {}, "kfac-2": {"base": "kfac"}}}, name="t")
    assert spec.datasets[0].targets == ("auto", "second-order")


def test_a_log_range_is_bounded_and_holds_no_duplicate_points() -> None:
    """Before: n = 100000 was accepted (a 100,000-point grid), and a dense range repeated values after
    rounding to 6 significant digits (the same trial planned twice)."""
    raw = {**BASE, "optimizers": {"adam": {"lr": {"min": 1e-3, "max": 1e-2, "n": 100_000}}}}
    with pytest.raises(SpecError, match=r"^optimizers.adam.lr.n: expected an integer in \[2, 100\]"):
        parse(raw, name="t")
    dense = {**BASE, "optimizers": {"adam": {"lr": {"min": 1.0, "max": 1.00001, "n": 100}}}}
    values = parse(dense, name="t").optimizers[0].axes[0].values
    assert len(values) == len(set(values)) and list(values) == sorted(values)


# --- a corrupt study folder ------------------------------------------------------------------------


def test_a_line_of_trials_jsonl_that_is_not_json_or_not_a_record_is_dropped_and_rerun(
    tmp_path: Path, done: tuple[str, Path, dict[str, Any]]
) -> None:
    """Before: a bad line in the middle of trials.jsonl stopped the study with a RunFolderError, and a
    record whose final loss was a string crashed the ranking (float("x"))."""
    spec, ref_out, ref = done
    out = _copy(ref_out, tmp_path / "out")
    records = read_jsonl(str(out / "trials.jsonl"))
    bad = dict(records[1], final_train_loss="x")
    text = json.dumps(records[0]) + "\n{not json\n" + json.dumps(bad) + "\n" + json.dumps(records[2]) + "\n"
    (out / "trials.jsonl").write_text(text)
    lines: list[str] = []
    summary = _run(spec, out, lines)
    notes = "\n".join(lines)
    assert "line 2 is not JSON" in notes and "line 3 has the final train loss 'x'" in notes
    rows = read_jsonl(str(out / "trials.jsonl"))
    assert [r["key"] for r in rows].count(records[1]["key"]) == 1  # re-run once, the bad lines gone
    assert len(rows) == 3
    assert (
        summary["datasets"]["curves"]["optimizers"]["adam"]["chosen"]
        == ref["datasets"]["curves"]["optimizers"]["adam"]["chosen"]
    )


def test_a_metrics_file_cut_at_a_line_boundary_is_not_taken_for_a_finished_trial(
    tmp_path: Path, done: tuple[str, Path, dict[str, Any]]
) -> None:
    """Before: a metrics.jsonl that lost its last rows whole (no torn line) was trusted: the report used
    the epoch-0 loss as the trial's curve."""
    spec, ref_out, _ = done
    out = _copy(ref_out, tmp_path / "out")
    key = read_jsonl(str(out / "trials.jsonl"))[0]["key"]
    metrics = out / "trials" / key / "metrics.jsonl"
    metrics.write_text(metrics.read_text().splitlines(keepends=True)[0])
    lines: list[str] = []
    _run(spec, out, lines)
    assert any(f"trial {key} is corrupt" in line and "ends at epoch 0" in line for line in lines), lines
    assert len(read_jsonl(str(metrics))) == 2  # epochs 0 and 1 again


def test_a_finished_trial_folder_holding_another_trials_config_is_rerun(
    tmp_path: Path, done: tuple[str, Path, dict[str, Any]]
) -> None:
    """Before: a finished trial's folder whose config.json was another trial's (a folder copied over
    another) was trusted, and its numbers reported under the wrong setting."""
    spec, ref_out, _ = done
    out = _copy(ref_out, tmp_path / "out")
    a, b = (r["key"] for r in read_jsonl(str(out / "trials.jsonl"))[:2])
    (out / "trials" / a / "config.json").write_bytes((out / "trials" / b / "config.json").read_bytes())
    lines: list[str] = []
    _run(spec, out, lines)
    assert any(f"trial {a} is corrupt" in line and "another trial's folder" in line for line in lines), lines
    assert [r["key"] for r in read_jsonl(str(out / "trials.jsonl"))].count(
        a
    ) == 2  # the old and the new record


def test_one_seed_is_reported_as_one_seed_and_not_as_a_spread_of_zero(
    done: tuple[str, Path, dict[str, Any]],
) -> None:
    """Before: a final run of 1 seed was reported as "mean ± 0.000", a spread that was never measured."""
    _, out, summary = done
    adam = summary["datasets"]["curves"]["optimizers"]["adam"]
    assert adam["final_train"]["n"] == 1 and adam["final_train"]["std"] is None
    report = (out / "report.md").read_text()
    assert "(1 seed)" in report and "± 0.000" not in report


def test_a_failing_start_leaves_an_existing_study_folder_unchanged(
    tmp_path: Path, done: tuple[str, Path, dict[str, Any]]
) -> None:
    """Before: an unreachable scheduler rewrote .study-token and spec.toml of an existing study folder."""
    spec, ref_out, _ = done
    out = _copy(ref_out, tmp_path / "out")
    before = _snapshot(out)
    with pytest.raises(StudyError):
        _run(spec, out, scheduler="tcp://127.0.0.1:9")
    assert _snapshot(out) == before


# --- Ctrl-C ----------------------------------------------------------------------------------------

LONG = TINY.replace("epochs = 1\nsubset = 200", "epochs = 40\nsubset = 1000").replace(
    "limit_train = 200", "limit_train = 1000"
)


def test_ctrl_c_of_a_study_leaks_no_semaphore(tmp_path: Path) -> None:
    """Before: Ctrl-C of a study ended with the resource tracker's "There appear to be N leaked semaphore
    objects to clean up at shutdown" (seen in 2 of 2 runs by hand): tqdm makes a multiprocessing lock in
    every worker, and the workers killed on Ctrl-C never unregister it.  After: the workers use a thread
    lock, and the study exits with 130 and nothing but its one line."""
    spec = _spec(tmp_path, LONG)
    out = tmp_path / "out"
    args = ["study", spec, "--out", str(out), "--no-progress", "--jobs", "2", "--threads", "1"]
    # A process started in the background by a non-interactive shell inherits SIGINT as ignored, and
    # Python then installs no KeyboardInterrupt handler: the child installs it, so that SIGINT is Ctrl-C.
    start = (
        "import runpy, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"sys.argv = ['locograd', *{args!r}]\n"
        "runpy.run_module('locograd', run_name='__main__')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("trials/*/checkpoint.npz")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(out.glob("trials/*/checkpoint.npz")), "no trial started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "leaked semaphore" not in err, err
    assert "interrupted" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("datasets", "tuning", "message"),
    [
        (
            {"curves": {"batch_size": 10**8}},
            {},
            r"^datasets.curves.batch_size: 100000000 is larger than the training set \(20000\)$",
        ),
        (
            {"mnist": {"limit_train": 70000}},
            {},
            r"^datasets.mnist.limit_train: expected an integer in \[1, 60000\]",
        ),
        (
            {"fashion-mnist": {}},
            {"subset": 70000},
            r"^tuning.subset: 70000 is larger than the training set of fashion-mnist \(60000\)$",
        ),
    ],
)
def test_sizes_beyond_the_data_set_are_refused(datasets: Any, tuning: Any, message: str) -> None:
    """Before: accepted; a batch larger than the training set failed in every trial, and a limit or
    subset above an MNIST-format set's 60,000 images was reported as "the first 70000 images"."""
    raw = {
        "protocol": "grid",
        "tuning": {"epochs": 1, **tuning},
        "final": {"epochs": 1},
        "datasets": datasets,
        "optimizers": {"adam": {}},
    }
    with pytest.raises(SpecError, match=message):
        parse(raw, name="t")


@pytest.mark.parametrize("name", ["lr", "gamma", "eta", "damping", "steps"])
@pytest.mark.parametrize("direction", ["down", "up"])
def test_edge_extension_never_passes_a_bound(name: str, direction: str) -> None:
    """Before: already held (a guard, probed for every bound).  Every numeric hyperparameter, from grids
    that touch its bound: the step beyond is inside the
    bound (K >= 1 and an integer; lr, gamma, eta, damping > 0) or refused (None).  A negative control:
    the unbounded direction gives a value outside the grid."""
    from locograd.study.protocol import beyond
    from locograd.study.spec import NUMERIC

    integer, low, _, _, _ = NUMERIC[name]
    grids = [(1, 2), (1, 3, 9), (2, 3)] if integer else [(1e-12, 1e-11), (1e-3, 1e-2), (0.5, 1.0), (1.0, 2.0)]
    for grid in grids:
        new = beyond(grid, direction, integer=integer, name=name)
        if new is None:
            assert direction == "down"
            continue
        assert (new >= low) if integer else (new > low), (grid, new)
        assert isinstance(new, int) is integer
        assert (new < grid[0]) if direction == "down" else (new > grid[-1])
