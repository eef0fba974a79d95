"""Successive halving at the final budget (the default protocol), validation splits and the metric a
study ranks by: the rung arithmetic, the decisions on records made by hand, a real study (prefix runs
that continue from their checkpoints, the winner's run as final seed 0, a lost checkpoint that
restarts), the committed studies' plans, and the refusals, each in one line before any trial."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from locograd.experiments.runfolder import read_jsonl
from locograd.study import SpecError, parse, run_study
from locograd.study.protocol import Halving, Planner, Tuning, drive, planned_keys
from locograd.study.report import time_independent
from locograd.study.spec import load, rung_epochs, survivors

REPO = Path(__file__).resolve().parents[2]


def _spec(points: int, epochs: int = 9, **dataset: Any) -> Any:
    lrs = [round(1e-4 * 2**i, 8) for i in range(points)]
    return parse(
        {
            "extend_limit": 0,
            "final": {"epochs": epochs, "seeds": 2},
            "datasets": {"curves": {"limit_train": 400, **dataset}},
            "optimizers": {"adam": {"lr": lrs}},
        },
        name="h",
    )


# --- the arithmetic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "epochs", "rungs", "sizes"),
    [
        (25, 9, (1, 3, 9), (25, 9, 3)),  # the example: 25 -> 9 -> 3
        (9, 10, (1, 3, 10), (9, 3, 3)),
        (5, 3, (1, 3), (5, 3)),
        (3, 3, (1, 3), (3, 3)),
        (2, 3, (1, 3), (2, 2)),  # fewer than 3 points: all of them go on
    ],
)
def test_rungs_end_at_a_ninth_and_a_third_and_keep_the_best_third_but_at_least_three(
    points: int, epochs: int, rungs: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    assert rung_epochs(points, epochs) == rungs
    got = [points]
    for _ in rungs[1:]:
        got.append(survivors(got[-1]))
    assert tuple(got) == sizes
    assert got[-1] >= min(3, points)  # the choice is made among at least 3 full-budget runs


class _Records:
    """A store filled by hand: every trial a round asks for 'trains' to its epochs along a loss curve."""

    def __init__(self, curve: Any) -> None:
        self.curve = curve
        self.records: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.dropped: list[str] = []

    def run(self, trials: list[Any]) -> None:
        for t in trials:
            lr = t.point.get("lr", t.run.settings["lr"])
            rows = [{"epoch": e, "train_loss": self.curve(lr, e, t.seed)} for e in range(t.run.epochs + 1)]
            self.rows[t.key] = rows
            self.records[t.key] = {
                "status": "finished",
                "epochs": t.run.epochs,
                "final_train_loss": rows[-1]["train_loss"],
            }

    def metrics(self, key: str) -> list[dict[str, Any]]:
        return self.rows[key]

    def drop_checkpoint(self, key: str) -> None:
        self.dropped.append(key)


def _rises_late(lr: float, epoch: int, seed: int) -> float:
    """The largest rate is best early and rises later; 8e-4 is best at the end."""
    if epoch == 0:
        return 100.0
    if lr == max(_LRS):
        return 50.0 + 10.0 * epoch  # 60 at epoch 1, 90 at epoch 4, 140 at epoch 9
    return 100.0 - epoch * (10 - abs(lr - 8e-4) * 1e4) + seed


_LRS = [round(1e-4 * 2**i, 8) for i in range(9)]


def test_the_winner_at_the_first_rung_that_rises_later_is_not_chosen() -> None:
    spec = _spec(9)
    records = _Records(_rises_late)
    (tu,) = [Halving(Planner(spec), spec.datasets[0], spec.optimizers[0])]
    drive([tu], records, lambda line: None, records.run)  # type: ignore[arg-type]
    sizes = [(r["epochs"], len(r["points"])) for r in tu.ladder]
    assert sizes == [(1, 9), (3, 3), (9, 3)]
    assert tu.ladder[0]["survivors"][0] == {"lr": max(_LRS)}  # best at rung 0 ...
    assert {"lr": max(_LRS)} not in tu.ladder[2]["survivors"]
    assert tu.chosen == {"lr": 8e-4}  # ... but the choice is made at the full budget
    # the winner's full-budget run is its final seed 0; seed 1 follows
    assert tu.final[0].key == tu.trials(tu.chosen)[0].key and [t.seed for t in tu.final] == [0, 1]
    assert records.records[tu.final[1].key]["epochs"] == 9
    # the eliminated points' checkpoints are dropped, the survivors' kept
    eliminated = [p for p in tu.ladder[0]["points"] if p not in tu.ladder[1]["points"]]
    eliminated += [p for p in tu.ladder[1]["points"] if p not in tu.ladder[2]["points"]]
    assert sorted(records.dropped) == sorted(tu.trials(p)[0].key for p in eliminated)
    # negative control: one rung (the grid protocol judged at epoch 1) chooses the point that rises
    grid = parse({**spec.source, "protocol": "grid", "tuning": {"epochs": 1}}, name="g")
    one = Tuning(Planner(grid), grid.datasets[0], grid.optimizers[0])
    flat = _Records(_rises_late)
    drive([one], flat, lambda line: None, flat.run)  # type: ignore[arg-type]
    assert one.chosen == {"lr": max(_LRS)}


def test_halving_ranks_by_accuracy_upwards() -> None:
    """A metric where higher is better ranks the other way (the control: the same curve as a loss)."""
    spec = parse(
        {
            "final": {"epochs": 3, "seeds": 1},
            "datasets": {"curves": {"limit_train": 400, "validation": 100, "metric": "validation_loss"}},
            "optimizers": {"adam": {"lr": [1e-3, 2e-3, 3e-3, 4e-3]}},
            "extend_limit": 0,
        },
        name="a",
    )
    for metric, expected in (("validation_loss", 1e-3), ("validation_accuracy", 4e-3)):
        tu = Halving(Planner(spec), spec.datasets[0], spec.optimizers[0])
        tu.metric, tu.sign = metric, (-1.0 if metric.endswith("accuracy") else 1.0)
        records = _Records(lambda lr, e, s: lr * e)
        records.run = _with_metric(records, metric)  # type: ignore[method-assign]
        drive([tu], records, lambda line: None, records.run)  # type: ignore[arg-type]
        assert tu.chosen == {"lr": expected}


def _with_metric(records: _Records, metric: str) -> Any:
    plain = records.run

    def run(trials: list[Any]) -> None:
        plain(trials)
        for t in trials:
            for row in records.rows[t.key]:
                row[metric] = row["train_loss"]

    return run


# --- a real study -------------------------------------------------------------------------------------

STUDY = """
name = "halving"
extend_limit = 0

[final]
epochs = 3
seeds = 2

[datasets.curves]
limit_train = 300
limit_test = 100
batch_size = 100
validation = 100
metric = "validation_loss"
targets = [300]

[optimizers.adam]
lr = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
"""


def _run(spec: Path, out: Path) -> dict[str, Any]:
    return run_study(str(spec), str(out), jobs=2, threads=1, progress=False, echo=lambda line: None)


@pytest.fixture(scope="module")
def halving_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("halving")
    spec = tmp / "halving.toml"
    spec.write_text(STUDY, encoding="utf-8")
    out = tmp / "out"
    return spec, out, _run(spec, out)


def test_a_halving_study_trains_prefixes_of_the_final_runs_and_reports_every_rung(
    halving_study: tuple[Path, Path, dict[str, Any]],
) -> None:
    _spec, out, summary = halving_study
    adam = summary["datasets"]["curves"]["optimizers"]["adam"]
    rungs = adam["rungs"]
    assert [(r["epochs"], len(r["points"]), len(r["survivors"])) for r in rungs] == [(1, 5, 3), (3, 3, 1)]
    # rung 0 keeps the 3 points with the lowest validation loss at epoch 1
    at_one = sorted((p["value"], p["point"]["lr"]) for p in rungs[0]["points"])
    assert [p["lr"] for p in rungs[0]["survivors"]] == [lr for _, lr in at_one[:3]]
    assert adam["chosen"] == rungs[1]["survivors"][0]
    report = (out / "report.md").read_text()
    assert "Successive-halving rungs" in report and "| adam | 1 | 3 | 3 | 1 |" in report
    assert "Ranked by validation loss (the last 100 training images, held out)" in report
    records = {r["key"]: r for r in read_jsonl(str(out / "trials.jsonl"))}
    final = adam["final"]
    assert [f["seed"] for f in final] == [0, 1] and all(f["epochs"] == 3 for f in final)
    # the survivors' runs continued from their checkpoints: one trial folder per point, whose rows at
    # the first rung are the ones rung 0 ranked; checkpoints stay for survivors only
    folders = sorted(os.listdir(out / "trials"))
    assert len(folders) == 5 + 1  # five points, and the winner's seed 1
    for p in rungs[0]["points"]:
        key = next(k for k, r in records.items() if r["point"] == p["point"] and r["seed"] == 0)
        rows = read_jsonl(str(out / "trials" / key / "metrics.jsonl"))
        assert rows[1]["validation_loss"] == p["value"]
        kept = os.path.exists(out / "trials" / key / "checkpoint.npz")
        assert kept == (p["point"] in rungs[0]["survivors"])
        assert len(rows) == (4 if kept else 2)


def test_a_prefix_continued_from_its_checkpoint_is_the_straight_run(
    halving_study: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The chosen point's full-budget run, trained in rungs, equals the same run trained straight."""
    from locograd.experiments.config import TrainConfig
    from locograd.experiments.training import train

    _spec, out, summary = halving_study
    adam = summary["datasets"]["curves"]["optimizers"]["adam"]
    rows = read_jsonl(str(out / "trials" / adam["final"][0]["key"] / "metrics.jsonl"))
    straight = train(
        TrainConfig(
            dataset="curves",
            optimizer="adam",
            lr=adam["chosen"]["lr"],
            epochs=3,
            batch_size=100,
            limit_train=300,
            validation=100,
            out=str(tmp_path / "run"),
            progress=False,
            summary=False,
        )
    )
    # the study's data: the first 100 test images (the run above has all of CURVES' test set)
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in straight]
    assert [r["validation_loss"] for r in rows] == [r["validation_loss"] for r in straight]


def test_a_survivor_whose_checkpoint_was_lost_restarts_and_gives_the_same_numbers(
    halving_study: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    import shutil

    spec, out, summary = halving_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lines = (copy / "trials.jsonl").read_text().splitlines()
    rung0 = [line for line in lines if json.loads(line)["epochs"] == 1]
    (copy / "trials.jsonl").write_text("".join(line + "\n" for line in rung0))  # as if stopped after rung 0
    for key in os.listdir(copy / "trials"):
        checkpoint = copy / "trials" / key / "checkpoint.npz"
        if checkpoint.exists():
            checkpoint.unlink()  # every survivor's checkpoint lost
    again = _run(spec, copy)
    assert time_independent(again["datasets"]) == time_independent(summary["datasets"])


# --- the committed studies --------------------------------------------------------------------------


RECORDS_AT_THE_FIXTURE = {
    "docs/results/curves": 157,
    "docs/results/fashion-mnist": 83,
    "docs/results/ablations": 108,
}
"""How many trial records each study folder held when the fixture was made (f978646): a study that ran
on since then (the re-runs at numerics version 2) plans further, so the replay reads those records only."""


def _as_at_the_fixture(folder: str, where: Path) -> str:
    """A study folder in ``where`` holding ``folder``'s first records (``trials.jsonl`` only grows, a line
    per finished trial) and linking its trial folders, as the folder was when the fixture was made."""
    lines = (REPO / folder / "trials.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    where.mkdir()
    (where / "trials.jsonl").write_text("".join(lines[: RECORDS_AT_THE_FIXTURE[folder]]), encoding="utf-8")
    (where / "trials").symlink_to(REPO / folder / "trials", target_is_directory=True)
    return str(where)


def test_the_committed_studies_plan_the_trials_they_planned_before_successive_halving(tmp_path: Path) -> None:
    """The fixture holds the keys the grid protocol planned before successive halving existed (made by
    that code from these specs and the committed records); the specs now name ``protocol = "grid"``.
    Replayed on the records as they were then (:data:`RECORDS_AT_THE_FIXTURE`). (The CNN study, never
    run under the grid protocol, moved to successive halving before its first trial.)"""
    before = json.loads((Path(__file__).parent / "planned_keys_before_halving.json").read_text())
    folders = {
        "studies/curves.toml": "docs/results/curves",
        "studies/fashion-mnist.toml": "docs/results/fashion-mnist",
        "studies/ablations.toml": "docs/results/ablations",
        "studies/mnist.toml": None,
    }
    for path, folder in folders.items():
        spec = load(str(REPO / path))
        assert spec.protocol == "grid"
        where = (
            _as_at_the_fixture(folder, tmp_path / folder.replace("/", "-"))
            if folder
            else str(tmp_path / "none")
        )
        assert sorted(planned_keys(spec, where)) == before[path], path
    # negative control: the same spec under successive halving plans other trials
    source = {k: v for k, v in load(str(REPO / "studies/curves.toml")).source.items() if k != "tuning"}
    halving = parse({**source, "protocol": "halving"}, name="curves")
    assert sorted(planned_keys(halving, str(REPO / "no-such-study-folder"))) != before["studies/curves.toml"]


# --- bad input ----------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "final": {"epochs": 9},
    "datasets": {"curves": {"limit_train": 1000}},
    "optimizers": {"adam": {"lr": [1e-3, 3e-3]}},
}


def _with(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        node = spec
        *head, last = path.split("__")
        for k in head:
            node = node.setdefault(k, {})
        node[last] = value
    return spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"datasets__curves__validation": 1000},
            r"^datasets.curves.validation: 1000 held-out images is not smaller than datasets.curves.limit_train \(1000\)$",
        ),
        (
            {"datasets__curves__validation": 900, "datasets__curves__batch_size": 200},
            r"^datasets.curves.validation: holding out 900 of datasets.curves.limit_train's 1000 images leaves "
            r"100 to train on, fewer than one batch \(200\)",
        ),
        (
            {"datasets__curves__validation": 100, "datasets__curves__metric": "validation_accuracy"},
            r"^datasets.curves.metric: the autoencoder task has no accuracy; expected one of train_loss, validation_loss$",
        ),
        (
            {"datasets__curves__metric": "test_loss"},
            r'^datasets.curves.metric: unknown name "test_loss"; valid names are train_loss, validation_loss, '
            r"validation_accuracy$",
        ),
        (
            {"datasets__curves__metric": "validation_loss"},
            r"^datasets.curves.validation: ranking on validation_loss needs a validation split",
        ),
        (
            {
                "optimizers__adam__lr": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4],
                "final__epochs": 4,
            },
            r"^final.epochs: 4 epochs cannot hold the rungs of successive halving for optimizers.adam \(9 points: "
            r"rungs at 1/9, 1/3, 1 of the budget end at epochs 1, 1, 4\); give final.epochs >= 5 or "
            r'protocol = "grid"$',
        ),
        (
            {"final__epochs": 1},
            r"^final.epochs: 1 epochs cannot hold the rungs of successive halving for optimizers.adam",
        ),
        (
            {"tuning": {"epochs": 3}},
            r"^tuning: successive halving \(the default protocol\) tunes on the final budget",
        ),
        (
            {"optimizers__adam__schedule": "released"},
            r"^optimizers.adam.schedule: its warm-up lasts 5 epochs, as long as or longer than the first rung "
            r"of successive halving \(3 epochs\)",
        ),
        (
            {
                "optimizers": {
                    "locoprop-m-normalised": {
                        "solver": "exact",
                        "eta": 1.0,
                        "gamma": 0.01,
                        "schedule": {"warmup": 0, "total": 50},
                    }
                }
            },
            r"^optimizers.locoprop-m-normalised.schedule: the exact solver has no learning rate, so it would "
            r"ignore the schedule",
        ),
    ],
)
def test_bad_protocol_and_split_settings_are_refused_in_one_line(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse(_with(**changes), name="bad")


def test_the_refused_settings_pass_once_fixed() -> None:
    """Controls for the refusals above: the nearest good settings parse."""
    assert (
        parse(_with(datasets__curves__validation=999, datasets__curves__batch_size=1), name="ok")
        .datasets[0]
        .validation
        == 999
    )
    spec = parse(
        _with(datasets__curves__validation=100, datasets__curves__metric="validation_loss"), name="ok"
    )
    assert spec.datasets[0].metric == "validation_loss" and spec.protocol == "halving"
    assert parse(_with(final__epochs=3), name="ok").rungs_of(parse(_with(), name="x").optimizers[0]) == (1, 3)
    grid = parse(_with(protocol="grid", tuning={"epochs": 3}), name="ok")
    assert grid.protocol == "grid" and grid.tuning_epochs == 3
    scheduled = _with(optimizers__adam__schedule={"warmup": 0, "total": 50})
    assert parse(scheduled, name="ok").optimizers[0].schedule == {"warmup": 0, "total": 50}


def test_a_classifier_defaults_to_validation_accuracy() -> None:
    spec = parse(
        {
            "final": {"epochs": 3},
            "datasets": {"mnist": {"model": "classifier", "validation": 5000}},
            "optimizers": {"adam": {"lr": [1e-3]}},
        },
        name="c",
    )
    assert spec.datasets[0].metric == "validation_accuracy"
    with pytest.raises(
        SpecError, match=r"^datasets.mnist.validation: ranking on validation_accuracy \(a classifier"
    ):
        parse({**spec.source, "datasets": {"mnist": {"model": "classifier"}}}, name="c")


RISER = """
name = "riser"
dtype = "float64"
extend_limit = 0

[final]
epochs = 9
seeds = 1

[datasets.curves]
limit_train = 1000
limit_test = 100
batch_size = 100
targets = [300]

[optimizers.rmsprop-tf1]
lr = [3e-4, 1e-3, 3e-3, 1e-2]
"""


def test_on_a_real_case_the_one_rung_winner_rises_at_the_full_budget_and_halving_picks_another(
    tmp_path: Path,
) -> None:
    """TF1-RMSProp on 1,000 CURVES images: after 3 of 9 epochs (rung 0) lr 1e-2 leads by about 10,
    then its loss rises (to about 168.5 at epoch 9, above its 161.5 at epoch 3) while lr 1e-3 ends
    near 158.2: successive halving chooses 1e-3.  Negative control: the grid protocol tuned for those
    3 epochs on the same images (one rung) chooses 1e-2.  float64, so that the trajectories (TF1-RMSProp's
    loss jumps by 80 between epochs at these rates) do not depend on the BLAS kernel's rounding."""
    spec = tmp_path / "riser.toml"
    spec.write_text(RISER, encoding="utf-8")
    summary = _run(spec, tmp_path / "halving")
    o = summary["datasets"]["curves"]["optimizers"]["rmsprop-tf1"]
    first, last = o["rungs"]
    assert (first["epochs"], last["epochs"]) == (3, 9)
    leader = min(first["points"], key=lambda p: p["value"])
    assert leader["point"] == {"lr": 1e-2}
    at_end = {p["point"]["lr"]: p["value"] for p in last["points"]}
    assert at_end[1e-2] > leader["value"] + 3  # it rises ...
    assert o["chosen"] == {"lr": 1e-3} and at_end[1e-3] < at_end[1e-2] - 3  # ... and another is chosen
    grid = tmp_path / "grid.toml"
    grid.write_text(
        RISER.replace("extend_limit = 0", 'extend_limit = 0\nprotocol = "grid"\n\n[tuning]\nepochs = 3'),
        encoding="utf-8",
    )
    one_rung = _run(grid, tmp_path / "grid")
    assert one_rung["datasets"]["curves"]["optimizers"]["rmsprop-tf1"]["chosen"] == {"lr": 1e-2}


def test_two_optimizers_sharing_trials_at_other_rungs_both_decide(tmp_path: Path) -> None:
    """``adam`` (9 points: rungs at epochs 1, 3, 9) and ``adam-few`` (3 of the same points: rungs at 3
    and 9) plan the same trials; each is trained once, to the longer of the two requests, and both
    protocols read their rung's row of it (before, adam-few found no row at its epoch 3 and every one
    of its points counted as diverged)."""
    lrs = [round(1e-3 * 1.5**i, 8) for i in range(9)]
    text = (
        STUDY.split("[optimizers.adam]")[0].replace("epochs = 3\n", "epochs = 9\n", 1)
        + f'[optimizers.adam]\nlr = {lrs}\n\n[optimizers.adam-few]\nbase = "adam"\nlr = {lrs[2:5]}\n'
    )
    spec = tmp_path / "shared.toml"
    spec.write_text(text, encoding="utf-8")
    summary = _run(spec, tmp_path / "out")
    opts = summary["datasets"]["curves"]["optimizers"]
    assert [r["epochs"] for r in opts["adam"]["rungs"]] == [1, 3, 9]
    assert [r["epochs"] for r in opts["adam-few"]["rungs"]] == [3, 9]
    for o in opts.values():
        assert o["chosen"] is not None
        assert all(p["value"] is not None for r in o["rungs"] for p in r["points"])
    keys = {r["key"] for r in read_jsonl(str(tmp_path / "out" / "trials.jsonl"))}
    seed_one = {f["key"] for o in opts.values() for f in o["final"] if f["seed"] == 1}
    assert len(keys) == 9 + len(seed_one)  # nine points trained once each, and the winners' seed 1


def test_a_file_too_small_for_its_validation_split_is_refused_before_any_trial(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((50, 6))
    data = tmp_path / "small.npz"
    np.savez(
        data,
        x_train=x,
        y_train=(x[:, 0] > 0.5).astype(int),
        x_test=x[:10],
        y_test=(x[:10, 0] > 0.5).astype(int),
    )
    spec = tmp_path / "small.toml"
    table = f'[datasets.small]\nfile = "{data}"\nmodel = "classifier"\nwidths = [4]\nbatch_size = 10\nvalidation = 60\n'
    spec.write_text(f"[final]\nepochs = 3\n\n{table}\n[optimizers.adam]\nlr = [1e-3]\n", encoding="utf-8")
    with pytest.raises(
        SpecError,
        match=r"^datasets.small.validation: 60 held-out images is not smaller than small's training set \(50\)$",
    ):
        _run(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    spec.write_text(spec.read_text().replace("validation = 60", "validation = 20"), encoding="utf-8")
    assert _run(spec, tmp_path / "out")["datasets"]["small"]["validation"] == 20  # the control
