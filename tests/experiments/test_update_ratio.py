"""Per-layer update records: ``update_ratio`` in every epoch's metrics row (one mean ||dW||/||W|| per
weight layer), checked against the steps redone by hand, across a resume, and in the ``--layers``
figures of ``compare`` and of a study."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from locograd import MLP, cli, data
from locograd.data import Dataset
from locograd.experiments import TrainConfig, resolve, train
from locograd.experiments.plots import NO_UPDATE_RATIOS, plot_update_ratios
from locograd.experiments.records import BLOCK, UpdateRatios
from locograd.experiments.tasks import TASKS
from locograd.experiments.training import initial_params, make_optimizer
from locograd.study import run_study
from locograd.study.report import figures

compare_module = importlib.import_module("locograd.experiments.compare")  # the package exports its function
pytestmark = pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")


@pytest.fixture(scope="module")
def curves() -> Dataset:
    return data.curves(n_train=120, n_test=60, seed=5)


def quadrants(n: int = 80) -> Dataset:
    """8x8 images whose label is the quadrant holding a bright square (for a CNN)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=n + 20)
    x = rng.random((n + 20, 8, 8)).astype(np.float32) * 0.3
    for k, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[k, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.5
    flat = x.reshape(n + 20, 64)
    return Dataset("quadrants", flat[:n], y[:n], flat[n:], y[n:], "by hand", (8, 8))


def config(tmp_path: Path, name: str = "run", **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "dataset": "curves",
        "optimizer": "adam",
        "out": str(tmp_path / name),
        "epochs": 2,
        "batch_size": 40,
        "progress": False,
        "summary": False,
    }
    return TrainConfig(**{**base, **kw})


def by_hand(cfg: TrainConfig, dataset: Dataset) -> tuple[list[list[float]], list[list[float]]]:
    """The run's steps redone here, as the loop takes them (same batches, rates and optimizer), with
    every step's ratio from plain NumPy: per epoch and weight layer, the mean of
    ||W_after - W_before||_F / ||W_before||_F, and (the negative control) of ||dL/dW||_F / ||W||_F."""
    run = resolve(cfg)
    task = TASKS[run.model]
    net = task.model(dataset, run.hidden, None if run.widths is None else list(run.widths))
    opt = make_optimizer(net, run)
    params = initial_params(net, run.seed, np.dtype(run.dtype), "cpu")
    state = opt.init(params)
    rng = np.random.default_rng(run.seed)
    x = dataset.x_train.reshape(-1, *net.shapes[0]).astype(run.dtype)
    y = dataset.y_train if task.metrics else None
    n = x.shape[0]
    updates, gradients = [], []
    for epoch in range(run.epochs):
        lr = run.schedule(epoch) if run.schedule is not None else opt.lr
        order = rng.permutation(n)
        steps = math.ceil(n / run.batch_size)
        du, dg = np.zeros(len(net.weight_layers)), np.zeros(len(net.weight_layers))
        for b in range(steps):
            rows = order[b * run.batch_size : (b + 1) * run.batch_size]
            xb = x[rows]
            yb = task.targets(xb, None if y is None else y[rows])
            before = [params[m]["W"].copy() for m in net.weight_layers]
            grads = net.backward(params, net.forward(params, xb), yb).as_params()
            params, state, _ = opt.step(params, xb, yb, state, lr=lr)
            for k, m in enumerate(net.weight_layers):
                du[k] += np.linalg.norm(params[m]["W"] - before[k]) / np.linalg.norm(before[k])
                dg[k] += np.linalg.norm(grads[m]["W"]) / np.linalg.norm(before[k])
        updates.append(list(du / steps))
        gradients.append(list(dg / steps))
    return updates, gradients


def test_every_epoch_row_records_one_finite_ratio_per_weight_layer(tmp_path: Path, curves: Dataset) -> None:
    rows = train(config(tmp_path), data=curves)
    assert "update_ratio" not in rows[0]  # the starting point: no step yet
    written = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert written == rows
    for row in rows[1:]:
        ratios = row["update_ratio"]
        assert len(ratios) == 12 == len(TASKS["autoencoder"].model(curves).weight_layers)
        assert all(math.isfinite(r) and r >= 0 for r in ratios)
        assert all(r > 0 for r in ratios)  # adam moves every layer


@pytest.mark.parametrize(
    ("model", "optimizer"),
    [("autoencoder", "adam"), ("autoencoder", "locoprop-m"), ("cnn", "adam")],
)
def test_the_record_is_the_mean_step_ratio_redone_by_hand(
    tmp_path: Path, curves: Dataset, model: str, optimizer: str
) -> None:
    """float64; adam steps in place (BackProp donates its arrays), LocoProp-M returns new ones; the CNN's
    weight layers are its two convolutions and two dense layers.  Negative control: the ratio of the
    gradient (not of the update) is told apart by the same check."""
    extra: dict[str, Any] = {"dtype": "float64", "optimizer": optimizer}
    dataset = curves
    if model == "cnn":
        extra.update(model="cnn", widths=[4, 4, 8], batch_size=20, lr=1e-2)
        dataset = quadrants()
    cfg = config(tmp_path, **extra)
    rows = train(cfg, data=dataset)
    recorded = [row["update_ratio"] for row in rows[1:]]
    updates, gradients = by_hand(config(tmp_path, "hand", **extra), dataset)
    assert len(recorded[0]) == (4 if model == "cnn" else 12)
    np.testing.assert_allclose(recorded, updates, rtol=1e-12, atol=0)
    assert not np.allclose(recorded, gradients, rtol=1e-3)  # the gradient's ratio is another number


@pytest.mark.parametrize("optimizer", ["adam", "locoprop-m"])
def test_a_resumed_run_records_the_same_ratios_bit_for_bit(
    tmp_path: Path, curves: Dataset, optimizer: str
) -> None:
    straight = train(config(tmp_path, "straight", optimizer=optimizer, epochs=4), data=curves)
    train(config(tmp_path, "split", optimizer=optimizer, epochs=2), data=curves)
    resumed = train(config(tmp_path, "split", optimizer=optimizer, epochs=4), resume=True, data=curves)
    assert [r.get("update_ratio") for r in resumed] == [r.get("update_ratio") for r in straight]
    assert resumed[3]["update_ratio"] != resumed[4]["update_ratio"]  # control: epochs differ


def test_the_record_is_exact_across_blocks_and_refuses_misuse() -> None:
    """A layer longer than one block (the measuring pass works in blocks) gives the plain NumPy ratio;
    a zero layer that moves records inf, one that stays 0; misuse is refused in one line."""
    net = MLP([BLOCK // 100 + 1, 100, 3], ["tanh", "identity"], "squared_error")
    rng = np.random.default_rng(0)
    params = net.init(seed=0)
    params[1]["W"] = np.zeros_like(params[1]["W"])
    moved = [{k: v + 1e-3 * rng.standard_normal(v.shape) for k, v in layer.items()} for layer in params]
    record = UpdateRatios(net)
    with pytest.raises(RuntimeError, match=r"UpdateRatios.after: call start\(params\) before"):
        record.after(params)
    record.start(params)
    with pytest.raises(RuntimeError, match=r"UpdateRatios\.means: no step was recorded"):
        record.means()
    record.after(moved)
    record.after(moved)  # a step that changed nothing
    first = np.linalg.norm(moved[0]["W"] - params[0]["W"]) / np.linalg.norm(params[0]["W"])
    assert params[0]["W"].size > BLOCK
    assert record.means()[0] == pytest.approx(first / 2, rel=1e-13)
    assert record.means()[1] == math.inf
    record.start(params)
    record.after(params)
    assert record.means() == [0.0, 0.0]
    with pytest.raises(TypeError, match=r"net: expected a locograd\.nn\.Sequential"):
        UpdateRatios("mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"params: expected one entry per layer \(2 or more\), got dict"):
        record.start(params[0])  # type: ignore[arg-type]


def test_the_figure_skips_rows_without_records(tmp_path: Path) -> None:
    old = [{"epoch": e, "train_loss": 1.0} for e in range(3)]
    new = [{"epoch": 0}, *({"epoch": e, "update_ratio": [0.1 / e, 0.2]} for e in (1, 2))]
    assert not plot_update_ratios({"a": [old]}, str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()
    assert plot_update_ratios({"a": [old], "b": [new, new]}, str(tmp_path / "some.png"))
    assert (tmp_path / "some.png").stat().st_size > 0


def test_compare_layers_writes_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--optimizers",
        "sgd,adam",
        "--epochs",
        "1",
        "--limit-train",
        "80",
        "--batch-size",
        "40",
    ]
    assert cli.main([*args, "--out", str(out), "--no-progress", "--layers"]) == 0
    assert (out / "update-ratio.png").stat().st_size > 0
    assert f"per-layer update ratios: {out / 'update-ratio.png'}" in capsys.readouterr().out
    assert cli.main([*args, "--out", str(tmp_path / "plain"), "--no-progress"]) == 0
    assert not (tmp_path / "plain" / "update-ratio.png").exists()  # control: not asked for


def test_compare_layers_without_records_says_so_in_one_line(
    tmp_path: Path, curves: Dataset, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs written before the records existed (simulated: their rows lose update_ratio)."""
    real = compare_module.train

    def older(*args: Any, **kw: Any) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "update_ratio"} for row in real(*args, **kw)]

    monkeypatch.setattr(compare_module, "train", older)
    compare_module.compare(config(tmp_path, "cmp", epochs=1), ["sgd"], data=curves, layers=True)
    assert f"compare: {NO_UPDATE_RATIOS}" in capsys.readouterr().out
    assert not (tmp_path / "cmp" / "update-ratio.png").exists()


TINY_STUDY = """
name = "layers"
protocol = "grid"

[tuning]
epochs = 1
subset = 200

[final]
epochs = 2
seeds = 2

[datasets.curves]
limit_train = 200
limit_test = 100
batch_size = 100

[optimizers.adam]
lr = [1e-3]
"""


class _Store:
    """A study store whose trials' rows have no update_ratio (trials run before it was recorded)."""

    def metrics(self, key: str) -> list[dict[str, Any]]:
        return [
            {"epoch": e, "train_loss": 3.0 - e, "test_loss": 3.0 - e, "seconds": float(e)} for e in range(3)
        ]


def test_a_study_with_layers_plots_its_final_runs_per_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "layers.toml"
    spec.write_text(TINY_STUDY, encoding="utf-8")
    out = tmp_path / "study"
    summary = run_study(
        str(spec), str(out), jobs=1, threads=1, progress=False, echo=lambda line: None, layers=True
    )
    assert (out / "figures" / "curves-update-ratio.png").stat().st_size > 0
    # the same summary over trials without records: no figure, one line
    folder = tmp_path / "older"
    written = figures(summary, _Store(), str(folder), layers=True)
    assert not (folder / "curves-update-ratio.png").exists() and written
    assert f"study: curves: {NO_UPDATE_RATIOS}" in capsys.readouterr().out
    figures(summary, _Store(), str(tmp_path / "plain"))
    assert not (tmp_path / "plain" / "curves-update-ratio.png").exists()  # control: not asked for


def test_the_record_is_the_change_kept_in_the_weights_not_the_update_computed() -> None:
    """float32 weights near 1 do not register a step of 1e-9 (below their resolution, 2^-24): the
    record is 0, as the weights did not change; the update the optimizer computed is not (the
    negative control: the computed update's ratio would be about 1e-9)."""
    net = MLP([4, 3], ["identity"], "squared_error")
    params = [{"W": np.ones((4, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}]
    update = np.full((4, 3), 1e-9, dtype=np.float32)
    record = UpdateRatios(net)
    record.start(params)
    record.after([{"W": params[0]["W"] - update, "b": params[0]["b"]}])
    assert record.means() == [0.0]
    assert np.linalg.norm(update) / np.linalg.norm(params[0]["W"]) == pytest.approx(1e-9, rel=1e-6)
