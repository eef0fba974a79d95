"""Experiments: models, optimizers by name, the training loop, resume, divergence, compare, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from locograd import cli, data
from locograd.errors import NotPositiveDefiniteError
from locograd.experiments import (
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    TrainingError,
    autoencoder,
    checkpoint,
    compare,
    settings,
    train,
)
from locograd.experiments import training as train_module

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(
    not os.path.isdir(FASHION),
    reason=f"Fashion-MNIST not installed at {FASHION} (apt-get install dataset-fashion-mnist)",
)
# Real training with gamma = 10 and no proximal term puts a few M targets out of range: reported, not an error.
pytestmark = pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")


@pytest.fixture(scope="module")
def tiny() -> data.Dataset:
    """A small CURVES set: 120 training and 60 test images."""
    full = data.curves(n_train=120, n_test=60, seed=5)
    return full


def config(tmp_path, name: str = "run", **kw) -> TrainConfig:
    base = {
        "dataset": "curves",
        "optimizer": "rmsprop-tf1",
        "out": str(tmp_path / name),
        "epochs": 2,
        "batch_size": 40,
        "progress": False,
    }
    base.update(kw)
    return TrainConfig(**base)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_models_are_the_classic_autoencoders() -> None:
    mnist, curves = autoencoder("mnist"), autoencoder("curves")
    assert mnist.sizes == [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
    assert [t.name for t in mnist.transfers] == ["tanh"] * 3 + ["identity"] + ["tanh"] * 3 + ["sigmoid"]
    assert curves.sizes == [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]
    assert [t.name for t in curves.transfers] == ["sigmoid"] * 5 + ["identity"] + ["sigmoid"] * 6
    assert mnist.loss_fn.name == curves.loss_fn.name == "sigmoid_cross_entropy"


def test_optimizer_settings_and_overrides() -> None:
    s = settings("locoprop-m", "curves", gamma=3.0, steps=4)
    assert (s["variant"], s["gamma"], s["steps"], s["inner"], s["solver"]) == (
        "M",
        3.0,
        4,
        "rmsprop_tf1",
        "gd",
    )
    assert settings("rmsprop-tf1", "mnist")["inner"] == "rmsprop_tf1"
    with pytest.raises(ValueError, match="gamma: only applies to locoprop-s and locoprop-m, not to 'adam'"):
        settings("adam", "curves", gamma=1.0)
    with pytest.raises(ValueError, match="optimizer: unknown name 'lbfgs'; valid names are sgd, momentum"):
        settings("lbfgs", "curves")


def test_train_writes_metrics_plot_checkpoint_and_config(tmp_path, tiny) -> None:
    rows = train(config(tmp_path), data=tiny)
    out = tmp_path / "run"
    # .lock: the folder's flock file (runfolder.FolderLock), left in place by design (unlinking it would race)
    assert {p.name for p in out.iterdir()} == {
        "metrics.jsonl",
        "loss.png",
        "checkpoint.npz",
        "config.json",
        ".lock",
    }
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == rows and [r["epoch"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert {"epoch", "train_loss", "test_loss", "seconds", "steps"} <= set(r)
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["test_loss"])
    assert rows[-1]["steps"] == 6 and rows[2]["seconds"] >= rows[1]["seconds"] > 0
    ckpt = checkpoint.load(str(out / "checkpoint.npz"))
    assert ckpt["epoch"] == 2 and ckpt["params"][0]["W"].dtype == np.float32
    assert json.loads((out / "config.json").read_text())["settings"]["optimizer"] == "rmsprop-tf1"


@pytest.mark.parametrize("optimizer", ["rmsprop-tf1", "locoprop-m", "adam"])
def test_resume_is_bit_identical_to_a_straight_run(tmp_path, tiny, optimizer: str) -> None:
    straight = train(config(tmp_path, "straight", optimizer=optimizer, epochs=4), data=tiny)
    train(config(tmp_path, "split", optimizer=optimizer, epochs=2), data=tiny)
    resumed = train(config(tmp_path, "split", optimizer=optimizer, epochs=4), resume=True, data=tiny)
    keys = ("epoch", "train_loss", "test_loss", "steps", "lr")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in straight]
    a = checkpoint.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b = checkpoint.load(str(tmp_path / "split" / "checkpoint.npz"))
    for la, lb in zip(a["params"], b["params"], strict=True):
        np.testing.assert_array_equal(la["W"], lb["W"])
        np.testing.assert_array_equal(la["b"], lb["b"])
    assert a["rng"] == b["rng"]


def test_layer_workers_train_bit_identically(tmp_path, tiny) -> None:
    """--workers 2 solves two layers at once; the run is the same bit for bit."""
    runs = [train(config(tmp_path, f"w{w}", optimizer="locoprop-m", workers=w), data=tiny) for w in (1, 2)]
    assert [r["train_loss"] for r in runs[0]] == [r["train_loss"] for r in runs[1]]
    a, b = (checkpoint.load(str(tmp_path / f"w{w}" / "checkpoint.npz")) for w in (1, 2))
    for la, lb in zip(a["params"], b["params"], strict=True):
        np.testing.assert_array_equal(la["W"], lb["W"])


def _poison(monkeypatch, after: int, exc: type[BaseException] | None = None) -> None:
    """Make the optimizer's step return a NaN loss (or raise ``exc``) after ``after`` calls."""
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
                    raise exc()
                info = info._replace(loss=np.array(np.nan))
            return new, state, info

        opt.step = poisoned
        return opt

    monkeypatch.setattr(train_module, "make_optimizer", make)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny, monkeypatch) -> None:
    _poison(monkeypatch, after=4)  # 3 batches per epoch: epoch 2 goes bad
    with pytest.raises(
        TrainingDiverged, match=r"non-finite loss in epoch 2, batch 2; the last good checkpoint \(epoch 1\)"
    ):
        train(config(tmp_path, epochs=3), data=tiny)
    assert checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))["epoch"] == 1
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0, 1]


def test_a_damped_factor_breakdown_stops_as_a_divergence(tmp_path, tiny, monkeypatch) -> None:
    """Before: K-FAC's or FOOF's "not symmetric positive definite" escaped as a plain ValueError, so a study
    called the trial FAILED and ran it again at every re-run, to fail the same way; now it is a divergence
    of the method at that damping (exit status 3, the last good checkpoint kept)."""
    breakdown = "A[1]: the damped factor is not symmetric positive definite; raise the damping"
    _poison(monkeypatch, after=4, exc=lambda: NotPositiveDefiniteError(breakdown))
    with pytest.raises(
        TrainingDiverged,
        match=r"^a damped factor without a Cholesky factor in epoch 2, batch 2 \(A\[1\]: the damped factor "
        r"is not symmetric positive definite; raise the damping\); the last good checkpoint \(epoch 1\)",
    ):
        train(config(tmp_path, epochs=3), data=tiny)
    assert checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))["epoch"] == 1


def test_other_value_errors_are_not_divergences(tmp_path, tiny, monkeypatch) -> None:
    """The negative control of the test above: only the two numerical breakdowns become divergences."""
    _poison(monkeypatch, after=4, exc=lambda: ValueError("x: something else"))
    with pytest.raises(ValueError, match=r"^x: something else$") as caught:
        train(config(tmp_path, epochs=3), data=tiny)
    assert not isinstance(caught.value, TrainingDiverged)


def test_non_finite_stop_from_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    _poison(monkeypatch, after=0)
    code, _, err = run_cli(
        [
            "train",
            "--optimizer",
            "sgd",
            "--epochs",
            "2",
            "--limit-train",
            "100",
            "--batch-size",
            "50",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ],
        capsys,
    )
    assert (
        code == 3 and err.count("\n") == 1 and "non-finite loss in epoch 1" in err and "Traceback" not in err
    )


def test_ctrl_c_leaves_the_last_checkpoint_intact(tmp_path, monkeypatch, capsys) -> None:
    _poison(monkeypatch, after=3, exc=KeyboardInterrupt)
    out = tmp_path / "r"
    code, _, err = run_cli(
        [
            "train",
            "--optimizer",
            "rmsprop-tf1",
            "--epochs",
            "3",
            "--limit-train",
            "120",
            "--batch-size",
            "40",
            "--out",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    # Changed on purpose: the message states the checkpoint on disk (before: "the last checkpoint ... is
    # intact", also when none had been written).
    assert code == 130 and "interrupted; the checkpoint at epoch 1 is in" in err and "--resume" in err
    assert checkpoint.load(str(out / "checkpoint.npz"))["epoch"] == 1
    monkeypatch.undo()
    code, _, _ = run_cli(
        [
            "train",
            "--optimizer",
            "rmsprop-tf1",
            "--epochs",
            "2",
            "--limit-train",
            "120",
            "--batch-size",
            "40",
            "--out",
            str(out),
            "--no-progress",
            "--resume",
        ],
        capsys,
    )
    assert code == 0 and checkpoint.load(str(out / "checkpoint.npz"))["epoch"] == 2


def test_compare_writes_summary_plot_and_subfolders(tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    code, stdout, _ = run_cli(
        [
            "compare",
            "--optimizers",
            "rmsprop-tf1,locoprop-s",
            "--epochs",
            "1",
            "--limit-train",
            "80",
            "--batch-size",
            "40",
            "--out",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"rmsprop-tf1", "locoprop-s"}
    for s in summary.values():
        assert {"train_loss", "test_loss", "epochs", "seconds"} <= set(s) and s["epochs"] == 1
    assert (out / "compare.png").stat().st_size > 0
    assert (out / "rmsprop-tf1" / "metrics.jsonl").exists() and (
        out / "locoprop-s" / "checkpoint.npz"
    ).exists()
    assert "| rmsprop-tf1 |" in stdout and "| locoprop-s |" in stdout


def test_compare_uses_the_same_initialisation(tmp_path, tiny) -> None:
    summary = compare(config(tmp_path, "c", epochs=1, limit_train=80), ["sgd", "adam"])
    first = [json.loads(line) for line in (tmp_path / "c" / "sgd" / "metrics.jsonl").read_text().splitlines()]
    second = [
        json.loads(line) for line in (tmp_path / "c" / "adam" / "metrics.jsonl").read_text().splitlines()
    ]
    assert first[0]["train_loss"] == second[0]["train_loss"] and set(summary) == {"sgd", "adam"}


COMPARE_SMALL = ["--epochs", "1", "--limit-train", "80", "--batch-size", "40", "--no-progress"]


def test_compare_with_two_seeds_gives_mean_and_spread(tmp_path, capsys) -> None:
    """--seeds 2: a run folder per optimizer and seed, each seed's run the one ``train --seed S`` gives;
    summary.json and the table give the mean and the sample sd over the seeds; the reading says it."""
    import statistics

    from threadpoolctl import threadpool_limits

    out = tmp_path / "cmp"
    args = ["compare", "--optimizers", "sgd,adam", "--seed", "3", "--out", str(out), *COMPARE_SMALL]
    code, stdout, _ = run_cli([*args, "--seeds", "2"], capsys)
    assert code == 0
    assert json.loads((out / "compare.json").read_text())["seeds"] == [3, 4]
    summary = json.loads((out / "summary.json").read_text())
    for name in ("sgd", "adam"):
        s = summary[name]
        finals = [s["per_seed"][seed]["train_loss"] for seed in ("3", "4")]
        assert finals[0] != finals[1]  # two seeds, two runs
        assert s["train_loss"] == statistics.fmean(finals) and s["train_loss_std"] == statistics.stdev(finals)
        assert s["seeds"] == [3, 4] and s["epochs"] == 1
        for seed in (3, 4):
            assert (out / name / f"seed-{seed}" / "checkpoint.npz").is_file()
    with threadpool_limits(limits=1, user_api="blas"):  # as the command line (--threads 1)
        alone = train(config(tmp_path, "alone", optimizer="adam", epochs=1, limit_train=80, seed=4))
    assert alone[-1]["train_loss"] == summary["adam"]["per_seed"]["4"]["train_loss"]
    assert "mean ± sd over 2 seeds (3, 4):" in stdout
    adam = summary["adam"]
    assert f"| adam | {adam['train_loss']:.3f} ± {adam['train_loss_std']:.3f} |" in stdout
    assert "(mean ± sd over 2 seeds)" in stdout and "seed spread" in stdout
    # the same comparison continues with the same --seeds (the last --epochs counts)
    code, _, _ = run_cli([*args, "--seeds", "2", "--resume", "--epochs", "2"], capsys)
    assert code == 0 and json.loads((out / "summary.json").read_text())["adam"]["epochs"] == 2

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    before = snapshot()
    for seeds in ("3", "1"):  # another --seeds is refused in one line, the folder untouched
        code, _, err = run_cli([*args, "--seeds", seeds, "--resume"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"seeds: {out} holds this comparison with --seeds 2, not --seeds {seeds}" in err
    assert snapshot() == before


def test_a_single_seed_comparison_keeps_its_layout_and_record(tmp_path, tiny) -> None:
    """--seeds 1 (the default) is the comparison as before: runs in OUT/NAME, no seeds in compare.json,
    the plain table and reading (so existing comparison folders still resume)."""
    from locograd.experiments import format_summary, histories, reading

    summary = compare(config(tmp_path, "c", epochs=1), ["sgd", "adam"], data=tiny, seeds=1)
    assert set(json.loads((tmp_path / "c" / "compare.json").read_text())) == {"optimizers", "runs"}
    assert (tmp_path / "c" / "sgd" / "checkpoint.npz").is_file() and "per_seed" not in summary["sgd"]
    assert "±" not in format_summary(summary) + reading(histories(str(tmp_path / "c"), ["sgd", "adam"], [0]))


def _seed_rows(*finals: float) -> list[list[dict]]:
    return [
        [{"epoch": 0, "train_loss": 9.0, "seconds": 0.0}, {"epoch": 1, "train_loss": f, "seconds": 1.0}]
        for f in finals
    ]


def test_the_reading_tells_a_difference_beyond_the_seed_spread_from_one_within_it() -> None:
    from locograd.experiments import reading

    beyond = reading({"a": _seed_rows(1.0, 1.2), "b": _seed_rows(2.0, 2.2)})
    assert "a 1.100 ± 0.141 < b 2.100 ± 0.141; a beats b by 1.000, beyond the seed spread (0.283)" in beyond
    # negative control: the same means, seeds spread wider than the gap
    within = reading({"a": _seed_rows(0.1, 2.1), "b": _seed_rows(1.1, 3.1)})
    assert "a 1.100 ± 1.414 < b 2.100 ± 1.414; a beats b by 1.000, within the seed spread (2.828)" in within


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("0", "locograd: error: seeds: expected an integer >= 1, got 0"),
        ("-2", "locograd: error: seeds: expected an integer >= 1, got -2"),
        ("1.5", "argument --seeds: invalid int value: '1.5'"),
        ("two", "argument --seeds: invalid int value: 'two'"),
    ],
)
def test_compare_refuses_a_bad_seed_count(tmp_path, capsys, seeds: str, message: str) -> None:
    out = tmp_path / "cmp"
    try:  # argparse's own refusal (not an integer) exits
        code = cli.main(
            ["compare", "--optimizers", "sgd", "--seeds", seeds, "--out", str(out), *COMPARE_SMALL]
        )
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()  # before any work


def test_the_compare_function_refuses_a_bad_seed_count(tmp_path, tiny) -> None:
    for seeds in (0, True, 1.0):
        with pytest.raises(TrainingError, match="seeds: expected an integer >= 1"):
            compare(config(tmp_path, "c", epochs=1), ["sgd"], data=tiny, seeds=seeds)
    assert not (tmp_path / "c").exists()


def test_official_preset_resolves_to_the_released_configuration() -> None:
    resolved = train_module.resolve(
        TrainConfig(dataset="mnist", optimizer="locoprop-m", preset="official")
    ).settings
    assert (resolved["epochs"], resolved["batch_size"], resolved["preset"]) == (99, 1000, "official")
    with pytest.raises(TrainingError, match="preset official: the released configuration is locoprop-m"):
        train_module.resolve(TrainConfig(optimizer="adam", preset="official"))
    with pytest.raises(TrainingError, match="lr: the official preset fixes every optimizer setting"):
        train_module.resolve(TrainConfig(optimizer="locoprop-m", preset="official", lr=1.0))


@needs_fashion
def test_real_fashion_mnist_run_decreases_the_loss(tmp_path) -> None:
    """The released gamma and rate, written out: the default gamma (31.6) was tuned for batches of
    1,000, and at batch 100 the same gamma is a ten times larger target step (G carries 1/B)."""
    rows = train(
        TrainConfig(
            dataset="fashion-mnist",
            optimizer="locoprop-m",
            out=str(tmp_path / "f"),
            epochs=2,
            batch_size=100,
            limit_train=1000,
            gamma=10.0,
            lr=1e-5,
            progress=False,
        )
    )
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 10
    assert rows[-1]["test_loss"] < rows[0]["test_loss"] - 10


@needs_fashion
def test_official_preset_trains_epoch_zero_with_zero_learning_rate(tmp_path) -> None:
    rows = train(
        TrainConfig(
            dataset="fashion-mnist",
            optimizer="locoprop-m",
            preset="official",
            epochs=2,
            limit_train=1000,
            out=str(tmp_path / "o"),
            progress=False,
        )
    )
    assert rows[1]["lr"] == 0.0 and rows[1]["train_loss"] == rows[0]["train_loss"]
    assert rows[2]["lr"] == pytest.approx(2e-6) and rows[2]["train_loss"] < rows[1]["train_loss"]


# ---- bad input: one line on stderr, a non-zero exit, nothing overwritten ---------------------------


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


BAD = [
    (["--dataset", "cifar"], "dataset: unknown name 'cifar'; valid names are curves, mnist, fashion-mnist"),
    (
        ["--optimizer", "lbfgs"],
        "optimizer: unknown name 'lbfgs'; valid names are sgd, momentum, adam, rmsprop-tf1",
    ),
    (["--batch-size", "0"], "batch-size: expected an integer >= 1, got 0"),
    (["--batch-size", "500"], "batch-size: 500 is larger than the training set (100 examples)"),
    (["--epochs", "0"], "epochs: expected an integer >= 1, got 0"),
    (["--resume"], "resume: no checkpoint at"),
    (["--gamma", "1"], "gamma: only applies to locoprop-s and locoprop-m"),
    (["--inner", "lion", "--optimizer", "locoprop-m"], "inner: unknown name 'lion'"),
    (["--workers", "0", "--optimizer", "locoprop-m"], "workers: expected an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_arguments(tmp_path, capsys, extra: list[str], message: str) -> None:
    args = [
        "train",
        "--optimizer",
        "rmsprop-tf1",
        "--limit-train",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
    ]
    for i in range(0, len(extra), 2):  # later flags win in argparse
        args += extra[i : i + 2]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_missing_and_corrupt_data_dir(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(
        [
            "train",
            "--dataset",
            "mnist",
            "--optimizer",
            "sgd",
            "--data-dir",
            str(empty),
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and str(empty) in err and err.count("\n") == 1
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (corrupt / name).write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header cut short
    code, _, err = run_cli(
        [
            "train",
            "--dataset",
            "mnist",
            "--optimizer",
            "sgd",
            "--data-dir",
            str(corrupt),
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "corrupt" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_out_is_a_file(tmp_path, capsys) -> None:
    target = tmp_path / "file"
    target.write_text("keep me")
    code, _, err = run_cli(["train", "--optimizer", "sgd", "--out", str(target)], capsys)
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"


def test_existing_run_is_not_overwritten_without_resume(tmp_path, tiny, capsys) -> None:
    train(config(tmp_path, epochs=1), data=tiny)
    before = _snapshot(tmp_path / "run")
    code, _, err = run_cli(
        [
            "train",
            "--optimizer",
            "rmsprop-tf1",
            "--out",
            str(tmp_path / "run"),
            "--limit-train",
            "120",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 2 and "already holds a run; pass --resume" in err
    assert _snapshot(tmp_path / "run") == before


def test_checkpoint_from_another_architecture_or_settings(tmp_path, tiny, capsys) -> None:
    train(config(tmp_path, epochs=1), data=tiny)
    before = _snapshot(tmp_path / "run")
    with pytest.raises(
        TrainingError, match=r"resume: .* holds a \[784, 400, .*\] network, this run builds \[784, 1000"
    ):
        train(config(tmp_path, widths=[1000, 500, 250, 30], epochs=2), resume=True, data=tiny)
    with pytest.raises(
        TrainingError, match=r"resume: the checkpoint was made with other settings \(lr differ\)"
    ):
        train(config(tmp_path, epochs=2, lr=1e-3), resume=True, data=tiny)
    assert _snapshot(tmp_path / "run") == before


def test_unreadable_checkpoint(tmp_path, tiny) -> None:
    train(config(tmp_path, epochs=1), data=tiny)
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"not a zip")
    # Changed on purpose: run files are read by one reader, whose error is a RunFolderError
    # (checkpoint.CheckpointError); before, it was re-raised as a TrainingError and said, after
    # NumPy, "If you trust the file you can load it unsafely" (never suggest unpickling).
    with pytest.raises(checkpoint.CheckpointError, match="is not a readable locograd checkpoint") as info:
        train(config(tmp_path, epochs=2), resume=True, data=tiny)
    assert "unsafely" not in str(info.value) and "not an .npz archive" in str(info.value)


def test_checkpoint_round_trip_refuses_pickles(tmp_path) -> None:
    path = tmp_path / "c.npz"
    np.savez(
        path,
        __skeleton__=np.array(json.dumps({"dict": {"x": {"array": "a0"}}})),
        a0=np.array([object()], dtype=object),
    )
    with pytest.raises(checkpoint.CheckpointError, match="not a readable locograd checkpoint"):
        checkpoint.load(str(path))


def test_all_optimizer_names_train(tmp_path, tiny) -> None:
    for name in OPTIMIZERS:
        rows = train(config(tmp_path, name, optimizer=name, epochs=1), data=tiny)
        assert np.isfinite(rows[-1]["train_loss"])


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", ["rmsprop-tf1", "locoprop-m", "kfac"])
def test_training_on_the_gpu_matches_the_cpu(tmp_path, tiny, optimizer: str) -> None:
    cpu = train(config(tmp_path, "cpu", optimizer=optimizer, dtype="float64"), data=tiny)
    gpu = train(config(tmp_path, "gpu", optimizer=optimizer, dtype="float64", device="gpu"), data=tiny)
    for a, b in zip(cpu, gpu, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
