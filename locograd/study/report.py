r"""The numbers of a study, ``OUT/report.md``, ``OUT/summary.json`` and ``OUT/figures/``.

Per data set and optimizer:

* the mean and sample standard deviation (n - 1, over the finished seeds) of the
  final train and test loss of the final runs;
* for every target: epochs-to-target (the first epoch whose train loss is at or
  below the target) and seconds-to-target (the training seconds interpolated
  linearly within that epoch), as the median over the seeds that reached it,
  with how many did; ``auto`` is the mean final train loss of the best
  first-order baseline (sgd, momentum, adam, rmsprop-tf1) of the study;
* the rank by the data set's metric (the mean over the final seeds; train loss by default);
* which optimizer leads (lowest mean train loss over seeds) at each epoch, and
  at each point of a time grid of 20 log-spaced points up to the shortest final
  run (each seed's loss interpolated linearly in seconds).

:func:`time_independent` strips what depends on the machine's speed (seconds,
leaders per second, wall times, the machine), so that two runs of one spec can
be compared bit for bit.

>>> epochs_to_target([{"epoch": 0, "train_loss": 9.0, "seconds": 0.0},
...                   {"epoch": 1, "train_loss": 5.0, "seconds": 2.0},
...                   {"epoch": 2, "train_loss": 3.0, "seconds": 4.0}], 4.0)
(2, 3.0)
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__, backend
from ..experiments.runfolder import write_json_atomic, write_text_atomic
from .numerics import NUMERICS_VERSION, NUMERICS_VERSIONS
from .spec import BASELINE_TARGETS, METRICS, StudySpec

TIME_KEYS = frozenset(
    {
        "seconds",
        "wall_seconds",
        "task_seconds",
        "seconds_to_target",
        "leaders_by_time",
        "machine",
        "execution",
        "wall",
        "host",
        "jobs",
        "threads",
        "runner",
        "mean_seconds",
        "commands",
        "warnings",
    }
)
"""Keys of ``summary.json`` whose values depend on timing, the machine or the session (a trial resumed
from a checkpoint counts only the warnings of the epochs it ran)."""

TIME_GRID_POINTS = 20


def time_independent(summary: Any) -> Any:
    """``summary`` without the keys in :data:`TIME_KEYS` (at any depth)."""
    if isinstance(summary, dict):
        return {k: time_independent(v) for k, v in summary.items() if k not in TIME_KEYS}
    if isinstance(summary, list):
        return [time_independent(v) for v in summary]
    return summary


def epochs_to_target(rows: Sequence[dict[str, Any]], target: float) -> tuple[int, float] | None:
    """``(epoch, seconds)`` at which the train loss first reaches ``target``, ``None`` if never.

    Seconds are interpolated linearly between the previous epoch's row and that epoch's.
    """
    prev = None
    for row in rows:
        if row["train_loss"] <= target:
            if prev is None or row["epoch"] == 0:
                return int(row["epoch"]), float(row["seconds"])
            drop = prev["train_loss"] - row["train_loss"]
            frac = (prev["train_loss"] - target) / drop if drop > 0 else 1.0
            return int(row["epoch"]), float(prev["seconds"] + frac * (row["seconds"] - prev["seconds"]))
        prev = row
    return None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    # the sample standard deviation (n - 1: an unbiased variance from a few seeds; the population
    # one, n, understates the spread of 2 or 3 seeds by 29% or 18%); one seed has no spread: None
    # (shown as "1 seed"), never a standard deviation of 0
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else None


def machine() -> dict[str, Any]:
    """CPU model, cores, BLAS (with its kernel), GPU if any, Python, locograd version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = "none"
    try:
        if backend.has_gpu():
            props = backend.cupy_module().cuda.runtime.getDeviceProperties(0)
            gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception:  # a broken CUDA set-up is not the report's business
        gpu = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "blas": backend.blas_info(),
        "gpu": gpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "locograd": __version__,
    }


def _interp(rows: Sequence[dict[str, Any]], t: float) -> float:
    xs = [r["seconds"] for r in rows]
    ys = [r["train_loss"] for r in rows]
    return float(np.interp(t, xs, ys))


def summarise(
    spec: StudySpec,
    tunings: Sequence[Any],
    store: Any,
    failed: dict[str, str],
    history: Sequence[dict[str, Any]],
    runner: Any,
) -> dict[str, Any]:
    """The numbers of the study (``summary.json``); see the module docstring."""
    records = store.records
    trials: dict[str, Any] = {}
    datasets: dict[str, Any] = {}
    for d in spec.datasets:
        opts: dict[str, Any] = {}
        curves: dict[str, list[list[dict[str, Any]]]] = {}
        for tu in (t for t in tunings if t.d.name == d.name):
            o = tu.o
            halving = spec.protocol == "halving"
            tuning_rows = []
            for point in tu.points:
                ts = tu.trials(point)
                ext = next((e for e in tu.extensions if e["point"] == point), None)
                rows = []
                for t in ts:
                    r = records.get(t.key)
                    rows.append(
                        {
                            "key": t.key,
                            "seed": t.seed,
                            "status": r["status"] if r else ("failed" if t.key in failed else "missing"),
                            "final_train_loss": r.get("final_train_loss") if r else None,
                        }
                    )
                    _trial_entry(trials, t, r, failed)
                judged = tu.value_at(point, tu.rungs[0]) if halving else tu.value(point, records)
                tuning_rows.append(
                    {"point": point, "value": judged, "trials": rows, "extended": ext is not None}
                )
            finals = []
            finished_rows: list[list[dict[str, Any]]] = []
            for t in tu.final:
                r = records.get(t.key)
                _trial_entry(trials, t, r, failed)
                entry = {
                    "key": t.key,
                    "seed": t.seed,
                    "status": r["status"] if r else ("failed" if t.key in failed else "missing"),
                }
                if r is not None:
                    entry.update(
                        final_train_loss=r.get("final_train_loss"),
                        final_test_loss=r.get("final_test_loss"),
                        **{k: r[k] for k in ("final_train_accuracy", "final_test_accuracy") if k in r},
                        epochs=r.get("epochs"),
                        seconds=r.get("seconds"),
                        **{k: r[k] for k in r if k.startswith("final_validation_")},
                    )
                    if r["status"] == "finished":
                        finished_rows.append(store.metrics(t.key))
                finals.append(entry)
            curves[o.name] = finished_rows
            train = [f["final_train_loss"] for f in finals if f["status"] == "finished"]
            test = [f["final_test_loss"] for f in finals if f["status"] == "finished"]
            ranked_by = [
                records[f["key"]][f"final_{d.metric}"]
                for f in finals
                if f["status"] == "finished" and f"final_{d.metric}" in records[f["key"]]
            ]
            tm, ts_ = _mean_std(train)
            em, es = _mean_std(test)
            accuracy = [
                f["final_test_accuracy"]
                for f in finals
                if f["status"] == "finished" and "final_test_accuracy" in f
            ]
            on_edge = []
            if tu.chosen is not None:
                for axis, vals in tu.values.items():
                    if tu.chosen[axis] in (min(vals), max(vals)):
                        on_edge.append(axis)
            wall = sum(
                records[t.key].get("task_seconds", 0.0)
                for t in {
                    t.key: t for t in [*tu.all_trials(), *tu.final]
                }.values()  # halving's winner is a final seed too
                if t.key in records
            )
            opts[o.name] = {
                "base": o.base,
                "fixed": o.fixed,
                "schedule": o.schedule or "constant",
                "chosen": tu.chosen,
                "metric": d.metric,
                "tuning": tuning_rows,
                "rungs": _rungs(tu) if halving else [],
                "extensions": tu.extensions,
                "still_on_edge": on_edge,
                "final": finals,
                "final_train": {"mean": tm, "std": ts_, "n": len(train)},
                "final_metric": dict(
                    zip(("mean", "std"), _mean_std(ranked_by), strict=True), n=len(ranked_by)
                ),
                "final_test": {"mean": em, "std": es, "n": len(test)},
                **(
                    {
                        "final_test_accuracy": dict(
                            zip(("mean", "std"), _mean_std(accuracy), strict=True), n=len(accuracy)
                        )
                    }
                    if accuracy
                    else {}
                ),
                "diverged": sum(1 for f in finals if f["status"] == "diverged"),
                "mean_seconds": (
                    statistics.fmean(r[-1]["seconds"] for r in finished_rows) if finished_rows else None
                ),
                "wall": wall,
                "warnings": _warnings(
                    [
                        records[k]
                        for k in dict.fromkeys(t.key for t in [*tu.all_trials(), *tu.final])
                        if k in records
                    ]
                ),
            }
        # targets
        targets: list[dict[str, Any]] = []
        for t in d.targets:
            if t in BASELINE_TARGETS:
                baselines = [
                    (v["final_train"]["mean"], k)
                    for k, v in opts.items()
                    if v["base"] in BASELINE_TARGETS[t] and v["final_train"]["mean"] is not None
                ]
                if baselines:
                    loss, who = min(baselines)
                    targets.append({"target": t, "value": loss, "from": who})
                else:
                    targets.append({"target": t, "value": None, "from": None})
            else:
                targets.append({"target": t, "value": t, "from": None})
        for name, v in opts.items():
            per = []
            for tg in targets:
                if tg["value"] is None:
                    per.append(
                        {"target": tg["target"], "reached": 0, "epochs": None, "seconds_to_target": None}
                    )
                    continue
                hits = [
                    h for h in (epochs_to_target(rows, tg["value"]) for rows in curves[name]) if h is not None
                ]
                per.append(
                    {
                        "target": tg["target"],
                        "value": tg["value"],
                        "reached": len(hits),
                        "of": len(curves[name]),
                        "epochs": float(statistics.median(h[0] for h in hits)) if hits else None,
                        "seconds_to_target": float(statistics.median(h[1] for h in hits)) if hits else None,
                    }
                )
            v["targets"] = per
        sign = -1.0 if METRICS[d.metric] == "max" else 1.0
        ranked = sorted(
            opts,
            key=lambda k: (
                opts[k]["final_metric"]["mean"] is None,
                sign * (opts[k]["final_metric"]["mean"] or 0.0),
                k,
            ),
        )
        for i, k in enumerate(ranked, start=1):
            opts[k]["rank"] = i
        datasets[d.name] = {
            "metric": d.metric,
            "validation": d.validation,
            "targets": targets,
            "ranks": ranked,
            "leaders_by_epoch": _leaders_by_epoch(curves),
            "leaders_by_time": _leaders_by_time(curves),
            "optimizers": opts,
        }
    seconds = [h["seconds"] for h in history if "seconds" in h]  # finished sessions
    return {
        "study": spec.name,
        "numerics_version": NUMERICS_VERSION,
        "numerics_versions": NUMERICS_VERSIONS,
        "locograd": __version__,
        "protocol": spec.protocol,
        "budget": {
            "tuning": (
                {"epochs": spec.tuning_epochs, "subset": spec.tuning_subset, "seeds": spec.tuning_seeds}
                if spec.protocol == "grid"
                else None
            ),
            "final": {"epochs": spec.final_epochs, "seeds": spec.final_seeds},
        },
        "execution": {
            "runner": runner.describe(),
            "jobs": runner.jobs,
            "threads": runner.threads,
            "final_concurrency": sorted(
                {
                    (records[t.key].get("jobs"), records[t.key].get("threads"))
                    for tu in tunings
                    for t in tu.final
                    if t.key in records
                },
                key=str,
            ),
            "malloc_trim_hosts": sorted(
                {r["host"] for r in records.values() if r.get("malloc_trim_threshold")}
            ),
        },
        "commands": [h["command"] for h in history if h.get("event") != "end"],
        "wall": {
            "total": float(sum(seconds)),
            "sessions": len(seconds),
            "interrupted": len({h.get("session") for h in history if h.get("event") == "start"})
            - len(seconds),
        },
        "machine": machine(),
        "failed": dict(failed),
        "trials": trials,
        "datasets": datasets,
    }


def _rungs(tu: Any) -> list[dict[str, Any]]:
    """Successive halving's rungs: each one's epochs, every point's metric there, and the survivors."""
    out = []
    for rung in tu.ladder:
        out.append(
            {
                "rung": rung["rung"],
                "epochs": rung["epochs"],
                "points": [{"point": p, "value": tu.value_at(p, rung["epochs"])} for p in rung["points"]],
                "survivors": rung.get("survivors", []),
            }
        )
    return out


def _warnings(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The warnings of some trials by category: total count, trials that warned, the first message."""
    out: dict[str, Any] = {}
    for r in records:
        for kind, w in (r.get("warnings") or {}).items():
            entry = out.setdefault(kind, {"count": 0, "trials": 0, "first": w["first"]})
            entry["count"] += w["count"]
            entry["trials"] += 1
    return out


def _trial_entry(trials: dict[str, Any], t: Any, r: dict[str, Any] | None, failed: dict[str, str]) -> None:
    trials[t.key] = {
        "name": t.name,
        "status": r["status"] if r else ("failed" if t.key in failed else "missing"),
        "final_train_loss": r.get("final_train_loss") if r else None,
        "final_test_loss": r.get("final_test_loss") if r else None,
        "seconds": r.get("seconds") if r else None,
    }


def _leaders_by_epoch(curves: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    out = []
    longest = max((min(len(r) for r in rs) for rs in curves.values() if rs), default=0)
    for e in range(1, longest):  # epoch 0 is the common starting point
        scores = []
        for name, rs in curves.items():
            if rs and all(len(r) > e for r in rs):
                scores.append((statistics.fmean(r[e]["train_loss"] for r in rs), name))
        if scores:
            loss, who = min(scores)
            out.append({"epoch": e, "leader": who, "loss": loss})
    return out


def _leaders_by_time(curves: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    runs = {k: rs for k, rs in curves.items() if rs and all(len(r) > 1 for r in rs)}
    if not runs:
        return []
    shortest = min(statistics.fmean(r[-1]["seconds"] for r in rs) for rs in runs.values())
    first = min(statistics.fmean(r[1]["seconds"] for r in rs) for rs in runs.values())
    if shortest <= 0:
        return []
    lo = first if 0 < first < shortest else shortest / 10
    out = []
    for t in np.geomspace(lo, shortest, TIME_GRID_POINTS):
        scores = [(statistics.fmean(_interp(r, float(t)) for r in rs), k) for k, rs in runs.items()]
        loss, who = min(scores)
        out.append({"seconds": float(t), "leader": who, "loss": loss})
    return out


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _spread(stat: dict[str, Any]) -> str:
    """``mean ± std`` over seeds; ``mean (1 seed)`` where one seed gives no spread."""
    if stat["mean"] is None:
        return "—"
    if stat["n"] < 2 or stat["std"] is None:
        return f"{_fmt(stat['mean'])} (1 seed)"
    return f"{_fmt(stat['mean'])} ± {_fmt(stat['std'])}"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _point_text(point: dict[str, Any] | None) -> str:
    if point is None:
        return "—"
    return ", ".join(f"{k}={_value(v)}" for k, v in sorted(point.items())) or "(fixed settings)"


def _setting_text(o: dict[str, Any]) -> str:
    """The chosen point, then the fixed settings and a schedule in parentheses."""
    text = _point_text(o["chosen"]) if o["tuning"] and o["tuning"][0]["point"] else ""
    extra = [f"{k}={_value(v)}" for k, v in sorted(o["fixed"].items())]
    if o["schedule"] != "constant":
        extra.append(f"warm-up {o['schedule']['warmup']}, decay to {o['schedule']['total']}")
    if o["chosen"] is None:
        return "— (every tuning point diverged)"
    if not text:
        return ", ".join(extra) or "(defaults)"
    return text + (f" ({', '.join(extra)})" if extra else "")


def _spans(rows: Sequence[dict[str, Any]], x: str, unit: str) -> list[str]:
    """Consecutive grid points with the same leader as one span: ``"epochs 1-3: adam (157.02 to 155.86)"``."""
    spans: list[list[dict[str, Any]]] = []
    for row in rows:
        if spans and spans[-1][-1]["leader"] == row["leader"]:
            spans[-1].append(row)
        else:
            spans.append([row])
    out = []
    for span in spans:
        a, b = span[0], span[-1]
        where = f"{a[x]:.3g}{unit}" if a is b else f"{a[x]:.3g}-{b[x]:.3g}{unit}"
        losses = f"{a['loss']:.2f}" if a is b else f"{a['loss']:.2f} to {b['loss']:.2f}"
        out.append(f"{where}: {a['leader']} ({losses})")
    return out


def _budget_text(b: dict[str, Any]) -> str:
    """The protocol and its budget in one sentence."""
    final = f"{b['final']['epochs']} epochs on the training set, {b['final']['seeds']} seeds (unless an optimizer sets its own)"
    if b["tuning"] is None:
        return (
            "Successive halving at the final budget: every point trains a prefix of its final-budget run "
            "(seed 0), rung by rung; the best third (at least 3) continues; the winner's full-budget run is "
            f"its final seed 0. Final: {final}."
        )
    t = b["tuning"]
    where = f"the first {t['subset']} images" if t["subset"] else "the training set"
    return f"Grid protocol. Tuning: {t['epochs']} epochs on {where}, {t['seeds']} seed(s) per point; final: {final}."


def _numerics_text(summary: dict[str, Any]) -> str:
    """The numerics versions every reported trial ran at: the default and each family's own.

    >>> _numerics_text({"numerics_version": 1, "numerics_versions": {"locoprop": 2}})
    'numerics version 1 (the locoprop family: 2)'
    """
    families = summary.get("numerics_versions") or {}
    own = ", ".join(f"the {family} family: {version}" for family, version in sorted(families.items()))
    return f"numerics version {summary['numerics_version']}" + (f" ({own})" if own else "")


def render(summary: dict[str, Any]) -> str:
    """``report.md`` from a summary."""
    m, ex = summary["machine"], summary["execution"]
    b = summary["budget"]
    lines = [
        f"# Study `{summary['study']}`",
        "",
        f"locograd {summary['locograd']}, {_numerics_text(summary)}. " + _budget_text(b),
        "",
        "## Commands",
        "",
        "```",
        *summary["commands"],
        "```",
        "",
        "## Machine and execution",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; BLAS: {m['blas']}; GPU: {m['gpu']}",
        f"- Python {m['python']}, NumPy {m['numpy']}, locograd {m['locograd']}",
        f"- This session: {ex['runner']}",
        "- Final runs were timed under (jobs, BLAS threads): "
        + (", ".join(f"{j} x {t}" for j, t in ex["final_concurrency"]) or "—")
        + (
            " — NOT comparable: the final runs ran under different concurrency"
            if len(ex["final_concurrency"]) > 1
            else ""
        ),
        *(
            [
                f"- **Slowed workers**: Dask workers on {', '.join(ex['malloc_trim_hosts'])} had "
                "MALLOC_TRIM_THRESHOLD_ set (Dask's nannies set it): their trials train up to 2.5x slower, so "
                "their seconds are not comparable (start workers with DASK_CONFIG=studies/dask; README, Studies)"
            ]
            if ex.get("malloc_trim_hosts")
            else []
        ),
        f"- Wall time: {summary['wall']['total']:.1f} s in {summary['wall']['sessions']} finished session(s)"
        + (
            f" (and {summary['wall']['interrupted']} interrupted one(s), not counted)"
            if summary["wall"].get("interrupted")
            else ""
        ),
        "",
    ]
    if summary["failed"]:
        lines += ["**Failed trials** (they run again when the study is re-run):", ""]
        lines += [f"- {summary['trials'][k]['name']}: {why}" for k, why in summary["failed"].items()]
        lines.append("")
    for dname, ds in summary["datasets"].items():
        targets = ds["targets"]
        lines += [f"## {dname}", ""]
        tnames = []
        for tg in targets:
            if tg["target"] in BASELINE_TARGETS:
                order = "first-order" if tg["target"] == "auto" else "second-order"
                label = f"best {order} {_fmt(tg['value'])}" + (
                    f" ({tg['from']})" if tg["from"] else f" (no {order} baseline finished)"
                )
            else:
                label = f"{tg['value']:g}"
            tnames.append(label)
        lines.append("Targets: " + "; ".join(tnames) + ".")
        lines.append("")
        metric = ds.get("metric", "train_loss")
        held = f" (the last {ds['validation']} training images, held out)" if ds.get("validation") else ""
        lines += [
            f"Ranked by {metric.replace('_', ' ')}{held}; test metrics are reported, never ranked on.",
            "",
        ]
        shown_metric = metric != "train_loss"
        scored = any("final_test_accuracy" in o for o in ds["optimizers"].values())
        head = (
            "| rank | optimizer | chosen setting |"
            + (f" final {metric.replace('_', ' ')} |" if shown_metric else "")
            + " final train | final test |"
            + (" final test accuracy |" if scored else "")
            + " seeds |"
        )
        sep = (
            "|---:|---|---|"
            + ("---:|" if shown_metric else "")
            + "---:|---:|"
            + ("---:|" if scored else "")
            + "---:|"
        )
        for label in tnames:
            head += f" epochs to {label} | s to {label} |"
            sep += "---:|---:|"
        head += " wall s |"
        sep += "---:|"
        lines += [head, sep]
        for name in ds["ranks"]:
            o = ds["optimizers"][name]
            ft, fe = o["final_train"], o["final_test"]
            seeds = f"{ft['n']}/{len(o['final'])}" + (f" ({o['diverged']} diverged)" if o["diverged"] else "")
            shown = (
                f" {_spread(o['final_test_accuracy'])} |"
                if "final_test_accuracy" in o
                else (" — |" if scored else "")
            )
            by = f" {_spread(o['final_metric'])} |" if shown_metric else ""
            row = f"| {o['rank']} | {name} | {_setting_text(o)} |{by} {_spread(ft)} | {_spread(fe)} |{shown} {seeds} |"
            for tg in o["targets"]:
                if tg["reached"]:
                    row += f" {tg['epochs']:g} ({tg['reached']}/{tg['of']}) | {_fmt(tg['seconds_to_target'], '.2f')} |"
                else:
                    row += " not reached | — |"
            row += f" {o['wall']:.1f} |"
            lines.append(row)
        lines += [
            "",
            "Final losses: mean ± sample standard deviation (n - 1) over the seeds that finished; epochs and seconds to a "
            "target: the median over the seeds that reached it (how many of how many), seconds being one "
            "trial's training seconds; wall s: the wall time of all the optimizer's trials (tuning and "
            "final) summed.",
            "",
        ]
        notes = []
        for name, o in ds["optimizers"].items():
            for e in o["extensions"]:
                notes.append(
                    f"- {name}: the best {e['axis']} was on the {'upper' if e['direction'] == 'up' else 'lower'} "
                    f"edge ({e['from']:g}); extension {e['round']} tried {e['value']:g}"
                )
            if o["still_on_edge"]:
                notes.append(
                    f"- {name}: the chosen point is still on the edge of {', '.join(o['still_on_edge'])} "
                    "(extension limit or bound reached): judged at the edge of its search space"
                )
        for name, o in ds["optimizers"].items():
            for kind, w in sorted(o.get("warnings", {}).items()):
                notes.append(f'- {name}: {w["count"]} {kind} in {w["trials"]} trial(s), e.g. "{w["first"]}"')
        if notes:
            lines += ["Edge extensions and warnings:", "", *notes, ""]
        if ds["leaders_by_epoch"]:
            lines += [
                "Leader per epoch (mean train loss over seeds): "
                + "; ".join(_spans(ds["leaders_by_epoch"], "epoch", "")),
                "",
            ]
        if ds["leaders_by_time"]:
            lines += [
                f"Leader per second ({TIME_GRID_POINTS} log-spaced points up to the shortest final run): "
                + "; ".join(_spans(ds["leaders_by_time"], "seconds", " s")),
                "",
            ]
        rungs = any(o.get("rungs") for o in ds["optimizers"].values())
        judged = "at rung 0" if rungs else "mean over the tuning seeds"
        lines += [f"Tuning ({metric.replace('_', ' ')}, {judged}; * extended, > chosen):", ""]
        for name, o in ds["optimizers"].items():
            cells = []
            for row in o["tuning"]:
                mark = (">" if row["point"] == o["chosen"] else "") + ("*" if row["extended"] else "")
                status = (
                    _fmt(row["value"], ".4g")
                    if row["value"] is not None
                    else "/".join(t["status"] for t in row["trials"])
                )
                cells.append(f"{mark}{_point_text(row['point'])}: {status}")
            lines.append(f"- {name}: " + "; ".join(cells))
        if rungs:
            lines += [
                "",
                "Successive-halving rungs (the points each trained to its epoch, their metric there, — where a run diverged, failed or is missing; > survivors):",
                "",
            ]
            lines += [
                "| optimizer | rung | epoch | points | survivors | metric per point |",
                "|---|---:|---:|---:|---:|---|",
            ]
            for name, o in ds["optimizers"].items():
                for rung in o.get("rungs", []):
                    cells = [
                        ("> " if p["point"] in rung["survivors"] else "")
                        + f"{_point_text(p['point'])}: "
                        + ("—" if p["value"] is None else f"{p['value']:.4g}")
                        for p in rung["points"]
                    ]
                    lines.append(
                        f"| {name} | {rung['rung']} | {rung['epochs']} | {len(rung['points'])} | "
                        f"{len(rung['survivors'])} | {'; '.join(cells)} |"
                    )
        lines += ["", f"Figures: `figures/final-runs.png`, `figures/tuning-{dname}-*.png`.", ""]
    return "\n".join(lines) + "\n"


def _ends_above_start(runs: Sequence[Sequence[dict[str, Any]]]) -> bool:
    """Whether the mean final train loss over ``runs`` is above their mean starting (epoch 0) loss."""
    return bool(
        statistics.fmean(r[-1]["train_loss"] for r in runs)
        > statistics.fmean(r[0]["train_loss"] for r in runs)
    )


def figures(summary: dict[str, Any], store: Any, folder: str, *, layers: bool = False) -> list[str]:
    """The final runs per data set (mean and min-max band), and each optimizer's tuning curve.

    ``layers``: also ``DATASET-update-ratio.png`` per data set, each weight layer's ``update_ratio``
    against epoch for every optimizer's final runs (mean and min-max band over the seeds,
    :func:`~locograd.experiments.plots.plot_update_ratios`); a data set whose final runs have no
    such records (trials run before locograd recorded them) gets none, and one line says so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    os.makedirs(folder, exist_ok=True)
    written = []
    names = list(summary["datasets"])
    fig = Figure(figsize=(11, 4 * max(1, len(names))), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 2, squeeze=False)
    for row, dname in enumerate(names):
        ds = summary["datasets"][dname]
        for i, (oname, o) in enumerate(ds["optimizers"].items()):
            runs = [store.metrics(f["key"]) for f in o["final"] if f["status"] == "finished"]
            if not runs:
                continue
            n = min(len(r) for r in runs)
            epochs = np.arange(n)
            secs = np.mean([[r[e]["seconds"] for e in range(n)] for r in runs], axis=0)
            risen = _ends_above_start(runs)
            note = " (ends above its start: off the scale)" if risen else ""
            for kind, style in (("train_loss", "-"), ("test_loss", "--")):
                ys = np.array([[r[e][kind] for e in range(n)] for r in runs])
                for ax, xs in ((axes[row, 0], epochs), (axes[row, 1], secs)):
                    label = f"{oname} {kind.split('_')[0]}{note if kind == 'train_loss' else ''}"
                    ax.plot(xs, ys.mean(axis=0), style, color=f"C{i}", label=label)
                    ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
        axes[row, 0].set_xlabel("epoch")
        axes[row, 1].set_xlabel("training seconds (mean over seeds)")
        for ax in axes[row]:
            ax.set_ylabel("loss (mean, min-max band over seeds)")
            ax.set_title(dname)
            ax.grid(alpha=0.3)
        # the scale: the curves after epoch 0 of every optimizer that ends below its start (before, one
        # whose loss rose tenfold squeezed all the others into a line at the bottom)
        finished = {
            oname: [store.metrics(f["key"]) for f in o["final"] if f["status"] == "finished"]
            for oname, o in ds["optimizers"].items()
        }
        later = [
            v
            for runs in finished.values()
            if runs and not _ends_above_start(runs)
            for r in runs
            for row_ in r[1:]
            for v in (row_["train_loss"], row_["test_loss"])
        ]
        if later:
            lo, hi = min(later), max(later)
            pad = 0.05 * (hi - lo or 1.0)
            for ax in axes[row]:
                ax.set_ylim(lo - pad, hi + pad)
        axes[row, 0].legend(fontsize=7)
    path = os.path.join(folder, "final-runs.png")
    fig.savefig(path, dpi=100)
    written.append(path)
    for dname, ds in summary["datasets"].items():
        for oname, o in ds["optimizers"].items():
            axes_names = sorted({k for row in o["tuning"] for k in row["point"]})
            if not axes_names:
                continue
            fig = Figure(figsize=(4.5 * len(axes_names), 3.6), constrained_layout=True)
            FigureCanvasAgg(fig)
            panels = fig.subplots(1, len(axes_names), squeeze=False)[0]
            for ax, axis in zip(panels, axes_names, strict=True):
                sign = -1.0 if METRICS[o.get("metric", "train_loss")] == "max" else 1.0
                pts = [
                    (row["point"][axis], row["value"], row["extended"])
                    for row in o["tuning"]
                    if row["value"] is not None
                ]
                # the line: the best loss at each value of this axis (over the other axes, if any);
                # before, it joined every point in value order and zigzagged through the other axes
                profile: dict[float, float] = {}
                for x, y, _ in pts:
                    profile[x] = y if x not in profile else (min if sign > 0 else max)(y, profile[x])
                if len(profile) > 1:
                    line_label = "best over the other axes" if len(axes_names) > 1 else None
                    ax.plot(
                        *zip(*sorted(profile.items()), strict=True), "-", color="0.6", lw=1, label=line_label
                    )
                plain = [(x, y) for x, y, e in pts if not e]
                ext = [(x, y) for x, y, e in pts if e]
                if plain:
                    ax.plot(*zip(*sorted(plain), strict=True), "o", color="C0", label="search space")
                if ext:
                    ax.plot(*zip(*sorted(ext), strict=True), "s", color="C1", label="edge extension")
                if o["chosen"] is not None:
                    best = next(row["value"] for row in o["tuning"] if row["point"] == o["chosen"])
                    if best is not None:
                        ax.plot([o["chosen"][axis]], [best], "*", ms=14, color="C3", label="chosen")
                if all(x > 0 for x, _, _ in pts) and pts:
                    ax.set_xscale("log")
                ax.set_xlabel(axis)
                ax.set_ylabel(
                    f"{o.get('metric', 'train_loss').replace('_', ' ')} ({'rung 0' if o.get('rungs') else 'tuning'})"
                )
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
            fig.suptitle(f"{oname} on {dname}")
            path = os.path.join(folder, f"tuning-{dname}-{oname}.png")
            fig.savefig(path, dpi=100)
            written.append(path)
    if layers:
        from tqdm.auto import tqdm

        from ..experiments.plots import NO_UPDATE_RATIOS, plot_update_ratios

        for dname, ds in summary["datasets"].items():
            finals = {
                oname: [store.metrics(f["key"]) for f in o["final"] if f["status"] == "finished"]
                for oname, o in ds["optimizers"].items()
            }
            path = os.path.join(folder, f"{dname}-update-ratio.png")
            if plot_update_ratios(finals, path, title=f"{dname}: per-layer update ratio of the final runs"):
                written.append(path)
            else:
                tqdm.write(f"study: {dname}: {NO_UPDATE_RATIOS}")
    return written


def write_report(
    spec: StudySpec,
    out: str,
    tunings: Sequence[Any],
    store: Any,
    failed: dict[str, str],
    history: Sequence[dict[str, Any]],
    runner: Any,
    layers: bool = False,
) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and ``figures/``; returns the summary (``layers``: the
    figures also plot each final run's update ratio per weight layer)."""
    summary = summarise(spec, tunings, store, failed, history, runner)
    write_json_atomic(os.path.join(out, "summary.json"), summary)
    write_text_atomic(os.path.join(out, "report.md"), render(summary))
    figures(summary, store, os.path.join(out, "figures"), layers=layers)
    return summary


__all__ = [
    "TIME_KEYS",
    "epochs_to_target",
    "figures",
    "machine",
    "render",
    "summarise",
    "time_independent",
    "write_report",
]
