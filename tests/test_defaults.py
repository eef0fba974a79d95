"""The experiments' defaults are the studies' tuned settings, as their committed summaries record them.

``locograd train`` and ``locograd compare`` take their learning rates, gammas and dampings from
``locograd/experiments/optimizers.py``; the studies under ``docs/results/`` chose them.  A default
edited by hand, or a study re-run to another choice, fails here until the two agree again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from locograd.experiments import optimizers

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
STUDIES = {"curves": "curves", "fashion-mnist": "fashion-mnist"}  # study folder -> the data set it tuned on
KEYS = ("lr", "gamma", "damping")
KEPT = {
    # (study folder, optimizer): why the default is not the study's choice, which its own final runs refute
    ("fashion-mnist", "rmsprop-tf1"): "its tuned rate, 1e-3 (best after 30 steps), rose from epoch 2 on "
    "in all three final runs (to 2,091 after 600 steps); the released 1e-5 stays",
}


def _tuned(folder: str, dataset: str) -> dict[str, dict[str, Any]]:
    """optimizer -> its chosen setting in the study (the tuned point and the fixed settings)."""
    summary = json.loads((RESULTS / folder / "summary.json").read_text(encoding="utf-8"))
    chosen = {}
    for name, o in summary["datasets"][dataset]["optimizers"].items():
        if name in optimizers.OPTIMIZERS and o["chosen"] is not None:  # the plain names, not the variants
            chosen[name] = {**o["fixed"], **o["chosen"]}
    return chosen


def _disagreements(resolved: dict[str, Any], tuned: dict[str, Any]) -> list[str]:
    return [
        f"{k}: default {resolved[k]!r}, study {tuned[k]!r}"
        for k in KEYS
        if k in tuned and not math.isclose(resolved[k], tuned[k], rel_tol=1e-12)
    ]


@pytest.mark.parametrize("folder", sorted(STUDIES))
def test_the_defaults_are_the_studies_tuned_settings(folder: str) -> None:
    dataset = STUDIES[folder]
    tuned = _tuned(folder, dataset)
    assert len(tuned) >= 5, f"{folder}: expected the study's optimizers, got {sorted(tuned)}"
    for name, setting in tuned.items():
        assert setting, name
        differences = _disagreements(optimizers.settings(name, dataset), setting)
        if (folder, name) in KEPT:  # a documented exception must still be one
            assert differences, f"{name}: the default now is the study's choice; drop it from KEPT"
        else:
            assert differences == [], name


def test_a_default_that_differs_from_the_study_is_caught() -> None:
    """The negative control: a learning rate off by one part in a million is a disagreement."""
    name, setting = next(iter(_tuned("curves", "curves").items()))
    resolved = optimizers.settings(name, "curves", lr=setting["lr"] * (1 + 1e-6))
    assert _disagreements(resolved, setting) == [
        f"lr: default {setting['lr'] * (1 + 1e-6)!r}, study {setting['lr']!r}"
    ]


def _replanned(folder: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The study's trial records, and the positions of those whose key today's code plans anew (a
    trial re-run at another numerics version has two records of one name)."""
    from locograd.study import load
    from locograd.study.protocol import Planner

    root = RESULTS / folder
    records = [json.loads(line) for line in (root / "trials.jsonl").read_text().splitlines() if line]
    if not records:
        pytest.fail(f"{folder}: no trial records")
    spec = load(str(root / "spec.toml"))
    planner = Planner(spec)
    datasets = {d.name: d for d in spec.datasets}
    optimizers_ = {o.name: o for o in spec.optimizers}
    changed = [
        i
        for i, r in enumerate(records)
        if planner.trial(
            datasets[r["dataset"]], optimizers_[r["optimizer"]], r["point"], r["seed"], r["phase"]
        ).key
        != r["key"]
    ]
    return records, changed


def _locoprop(records: list[dict[str, Any]], folder: str) -> list[int]:
    """The positions of the LocoProp records."""
    from locograd.study import load

    bases = {o.name: o.base for o in load(str(RESULTS / folder / "spec.toml")).optimizers}
    return [i for i, r in enumerate(records) if bases[r["optimizer"]].startswith("locoprop")]


@pytest.mark.parametrize("folder", ["curves", "fashion-mnist", "ablations"])
def test_the_committed_studies_still_plan_their_recorded_trials(folder: str) -> None:
    """Each recorded trial's key, planned again from the study's spec by today's code: a change of the
    defaults (or of anything else a key hashes) that would make ``locograd study`` re-run a committed
    study from scratch, or resume it with other settings, fails here.

    The one deliberate exception: the LocoProp trials, whose numerics version is 2 (the local problems
    solved in the displacement). A study holds LocoProp records of version 1 (its first run) and, once
    resumed, of version 2 (the re-run): each LocoProp record is planned again by today's code or,
    with the family's version set back to 1, by that version's, never by both and never by neither;
    every other record is planned again by both."""
    from locograd.study import numerics as study

    records, changed_now = _replanned(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study, "NUMERICS_VERSIONS", {})
        changed_at_1 = _replanned(folder)[1]
    locoprop = _locoprop(records, folder)
    assert not set(changed_now) & set(changed_at_1), f"{folder}: records planned by neither version"
    assert sorted(changed_now + changed_at_1) == sorted(locoprop), (
        f"{folder}: {len(changed_now)} of {len(records)} trials planned anew today, {len(changed_at_1)} at "
        f"version 1, against {len(locoprop)} LocoProp records"
    )
    assert set(changed_now) <= set(locoprop) and set(changed_at_1) <= set(locoprop)


def test_a_numerics_version_replans_only_its_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control of the test above: bumping the ``kfac`` family's version re-plans the K-FAC
    trials too (so the test above would fail), and the common version 2 re-plans every trial not already
    at version 2 (a family's version is the one its trials' keys hold, whichever table sets it)."""
    from locograd.study import numerics as study

    records, changed_now = _replanned("curves")
    kfac = [i for i, r in enumerate(records) if r["optimizer"] == "kfac"]
    assert kfac
    monkeypatch.setattr(study, "NUMERICS_VERSIONS", {**study.NUMERICS_VERSIONS, "kfac": 2})
    assert _replanned("curves")[1] == sorted(changed_now + kfac)
    monkeypatch.setattr(study, "NUMERICS_VERSIONS", {})
    monkeypatch.setattr(study, "NUMERICS_VERSION", 2)
    at_2 = set(_locoprop(records, "curves")) - set(changed_now)  # the LocoProp records re-run at version 2
    assert _replanned("curves")[1] == sorted(set(range(len(records))) - at_2)


def test_a_default_the_study_relies_on_changes_its_planned_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control: the CURVES study leaves K at its default; another default K plans its
    LocoProp-M trials anew (so the test above would fail)."""
    from locograd.study import load
    from locograd.study.protocol import Planner

    root = RESULTS / "curves"
    record = next(
        json.loads(line)
        for line in (root / "trials.jsonl").read_text().splitlines()
        if line and json.loads(line)["optimizer"] == "locoprop-m"
    )
    spec = load(str(root / "spec.toml"))
    (d,) = spec.datasets
    (o,) = [o for o in spec.optimizers if o.name == "locoprop-m"]
    args = (d, o, record["point"], record["seed"], record["phase"])
    planned = Planner(spec).trial(*args).key
    monkeypatch.setitem(optimizers.DEFAULTS, "locoprop-m", {**optimizers.DEFAULTS["locoprop-m"], "steps": 5})
    assert Planner(spec).trial(*args).key != planned


def test_the_main_job_runs_the_curves_transfer_studys_tuned_points() -> None:
    """``locograd compare`` without --optimizers (the main job) trains each method at the point that
    ``studies/curves-transfer.toml`` chose for it, per hidden transfer (its optimizer
    ``<method>-<group>``)."""
    from locograd.experiments import main_job

    summary = json.loads((RESULTS / "curves-transfer" / "summary.json").read_text(encoding="utf-8"))
    study = summary["datasets"]["curves"]["optimizers"]
    for group, methods in main_job.TUNED.items():
        for method, setting in methods.items():
            o = study[f"{method}-{group}"]
            tuned = {**o["fixed"], **o["chosen"]}
            given = {k: v for k, v in setting.items() if k != "optimizer"}
            assert set(given) == set(tuned) & set(KEYS), (method, group, sorted(tuned))
            assert _disagreements(given, tuned) == [], f"{method}-{group}"
