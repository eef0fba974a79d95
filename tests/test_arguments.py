"""Names are normalised in one place, and every argument is checked before any work starts.

Issue 11, kinds 4 and 5.  Each test states what the code did before.  A bad
argument gives ONE line naming it, exit status 2 on the command line, and
nothing on disk; a name is accepted in any case, with surrounding spaces and
with ``_`` for ``-`` (or the reverse), and everything after the entry sees its
one canonical spelling.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import locograd as lg
from locograd import cli, data
from locograd.bench import run as bench_run
from locograd.data import DataError, read_mnist_npz, write_idx
from locograd.data.registry import IDX_NAMES
from locograd.experiments import TrainConfig, TrainingError, autoencoder, settings
from locograd.experiments.config import ConfigError, canonical_names, resolve
from locograd.experiments.models import CURVES_SIZES, MNIST_SIZES
from locograd.experiments.optimizers import default
from locograd.experiments.tasks import AUTOENCODER, CLASSIFIER
from locograd.optim import schedules
from locograd.validators import canonical_choice, integer_list, output_file, output_folder
from locograd.verify import run_checks

pytestmark = pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")

SMALL = ["--limit-train", "40", "--epochs", "1", "--batch-size", "20", "--no-progress"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, *needles: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def write_mnist(folder: Path, n_train: int, n_test: int) -> Path:
    """The four IDX files of a small MNIST-format set (random pixels, labels 0-9)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    ]
    for base, array in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / base, array)
    return folder


# ---- kind 4: one normaliser ------------------------------------------------------------------


def test_canonical_choice_ignores_case_spaces_and_separators() -> None:
    """The shared normaliser: the spelling of ``choices`` comes back; an unknown name lists the valid ones."""
    assert canonical_choice("optimizer", " LocoProp_M ", ("sgd", "locoprop-m")) == "locoprop-m"
    assert canonical_choice("inner", "RMSProp-TF1", ("rmsprop", "rmsprop_tf1")) == "rmsprop_tf1"
    with pytest.raises(
        ValueError, match=r"^optimizer: unknown name 'lbfgs'; valid names are sgd, locoprop-m$"
    ):
        canonical_choice("optimizer", "lbfgs", ("sgd", "locoprop-m"))
    with pytest.raises(ValueError, match="optimizer: expected one of sgd, locoprop-m, got int 3"):
        canonical_choice("optimizer", 3, ("sgd", "locoprop-m"))


@pytest.mark.parametrize("spelling", ["CURVES", " curves ", "Curves"])
def test_a_curves_spelling_gets_the_curves_model_defaults_and_data(spelling: str) -> None:
    """Before: ``dataset="CURVES"`` read the data as CURVES but the model and defaults as MNIST's
    (784-1000-...-784 autoencoder, lr 1e-5, 10 epochs of batch 1000): a silent wrong run."""
    curves_lr, mnist_lr = (default("rmsprop-tf1", "lr", family) for family in ("curves", "mnist"))
    assert curves_lr != mnist_lr  # else this test could not tell the two apart
    config = TrainConfig(dataset=spelling, optimizer="rmsprop-tf1")
    assert config.dataset == "curves"
    resolved = resolve(config).settings
    assert (resolved["dataset"], resolved["lr"], resolved["epochs"], resolved["batch_size"]) == (
        "curves",
        curves_lr,
        5,
        200,
    )
    assert autoencoder(spelling).sizes == CURVES_SIZES
    assert settings("rmsprop-tf1", spelling)["lr"] == curves_lr
    # negative control: an MNIST-format set keeps the MNIST model and defaults
    assert resolve(TrainConfig(dataset="MNIST", optimizer="rmsprop-tf1")).settings["lr"] == mnist_lr
    assert autoencoder(" Fashion_MNIST").sizes == MNIST_SIZES


def test_an_unknown_data_set_has_no_model() -> None:
    """Before: ``autoencoder("cifar")`` (any name but "curves") returned the MNIST autoencoder."""
    with pytest.raises(ValueError, match="dataset: unknown name 'cifar'; valid names are curves, mnist"):
        autoencoder("cifar")


@pytest.mark.parametrize(
    ("field", "given", "canonical"),
    [
        ("optimizer", "RMSProp_TF1", "rmsprop-tf1"),
        ("optimizer", "locoprop_m", "locoprop-m"),
        ("inner", "RMSProp-TF1", "rmsprop_tf1"),
        ("solver", "GD", "gd"),
        ("device", " CPU", "cpu"),
        ("dtype", "Float64", "float64"),
    ],
)
def test_every_name_of_a_run_is_normalised_when_the_config_is_made(
    field: str, given: str, canonical: str
) -> None:
    """Before: each of these was refused (``optimizer: unknown name 'RMSProp'``, ``device: expected one
    of ('cpu', 'gpu'), got 'CPU'``, ...), each by its own comparison with the exact spelling."""
    extra = {"optimizer": "locoprop-m"} if field in ("inner", "solver") else {}
    config = TrainConfig(**{**extra, field: given})
    assert getattr(config, field) == canonical
    assert resolve(config).settings[field] == canonical


def test_the_preset_name_is_normalised() -> None:
    """Before: ``preset="Official"`` was ``preset: unknown name 'Official'; valid presets are official``."""
    config = TrainConfig(preset="Official")
    assert config.preset == "official" and resolve(config).settings["preset"] == "official"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dataset", "cifar", "dataset: unknown name 'cifar'; valid names are curves, mnist, fashion-mnist"),
        ("optimizer", "lbfgs", "optimizer: unknown name 'lbfgs'; valid names are sgd, momentum"),
        ("device", "tpu", "device: unknown name 'tpu'; valid names are cpu, gpu"),
        ("dtype", "float16", "dtype: unknown name 'float16'; valid names are float32, float64"),
        ("solver", "newton", "solver: unknown name 'newton'; valid names are gd, exact"),
        ("inner", "lion", "inner: unknown name 'lion'; valid names are sgd"),
        ("preset", "released", "preset: unknown name 'released'; valid names are official"),
    ],
)
def test_unknown_names_are_refused_when_the_config_is_made(field: str, value: str, message: str) -> None:
    """One wording for every name (before: four wordings, and ``dataset`` only when the data loaded)."""
    with pytest.raises(ConfigError, match=message) as info:
        TrainConfig(**{field: value})
    assert isinstance(info.value, ValueError) and isinstance(info.value, TrainingError)


def test_canonical_names_sees_fields_changed_after_construction() -> None:
    """``resolve`` normalises again, so a field set after the config was made is seen canonically too."""
    config = TrainConfig()
    config.dataset = "CURVES"
    config.optimizer = "ADAM"
    names = canonical_names(config)
    assert (names["dataset"], names["optimizer"]) == ("curves", "adam")
    assert resolve(config).settings["lr"] == 3e-3


def test_the_command_line_takes_any_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``--device CPU`` / ``--dtype FLOAT64`` / ``--solver GD`` failed in argparse
    ("invalid choice"), ``--optimizer LocoProp_M`` / ``--inner RMSPROP_TF1`` in the library, and
    ``--dataset CURVES`` trained the MNIST autoencoder on CURVES data."""
    out = tmp_path / "r"
    code, stdout, err = run_cli(
        [
            "train",
            "--optimizer",
            "LocoProp_M",
            "--dataset",
            "CURVES",
            "--device",
            "CPU",
            "--dtype",
            "FLOAT64",
            "--solver",
            "GD",
            "--inner",
            "RMSPROP-TF1",
            "--steps",
            "2",
            *SMALL,
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    assert stdout.splitlines()[-1].startswith("locoprop-m on curves:")
    meta = json.loads((out / "config.json").read_text())
    assert meta["sizes"] == CURVES_SIZES
    s = meta["settings"]
    assert (s["optimizer"], s["dataset"], s["dtype"], s["device"], s["solver"], s["inner"]) == (
        "locoprop-m",
        "curves",
        "float64",
        "cpu",
        "gd",
        "rmsprop_tf1",
    )


def test_library_names_are_normalised_in_one_place() -> None:
    """Before: ``MLP(..., ["Tanh"], ...)``, ``optim.get("Adam")``, ``transfer.get("Leaky-ReLU")``, the loss
    ``"Sigmoid-Cross-Entropy"``, ``fisher="Empirical"`` and ``grafting="Adam"`` were refused ("unknown
    name" or "expected one of"); now the one normaliser (``validators.canonical_choice``) maps them to the
    table's spelling, and unknown names keep one wording.  (LocoProp's variant and solver are settings
    objects now, ``locoprop.M(...)`` and ``locoprop.GD(...)``: no name to spell.)"""
    import locograd as lg
    from locograd import losses, optim, transfer

    net = lg.MLP([3, 2, 3], [" Tanh", "SIGMOID"], "Sigmoid-Cross-Entropy")
    assert [t.name for t in net.transfers] == [
        "tanh",
        "sigmoid",
    ] and net.loss_fn.name == "sigmoid_cross_entropy"
    assert optim.get("Adam").name == "adam" and optim.get("RMSProp-TF1").name == "rmsprop_tf1"
    assert transfer.get("Leaky-ReLU").name == "leaky_relu"
    assert losses.get("softmax-cross-entropy").name == "softmax_cross_entropy"
    net2 = lg.MLP([3, 2, 3], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    assert optim.KFAC(net2, fisher="Empirical").fisher == "empirical"
    assert optim.Shampoo(net2, grafting="Adam").grafting == "adam"
    for lookup, message in [
        (lambda: transfer.get("gelu"), "transfer: unknown name 'gelu'; valid names are identity"),
        (lambda: optim.get("lamb"), "optimizer: unknown name 'lamb'; valid names are sgd"),
        (lambda: losses.get("hinge"), "loss: unknown name 'hinge'; valid names are"),
    ]:
        with pytest.raises(ValueError, match=message):
            lookup()


def test_compare_and_bench_names_are_normalised() -> None:
    """Before: ``--optimizers SGD,Adam`` and ``--kinds LocoProp-M`` were refused."""
    from locograd.experiments.optimizers import check_name

    assert [check_name(n) for n in "SGD, Adam".split(",")] == ["sgd", "adam"]
    args = bench_run.build_parser().parse_args(
        ["--quick", "--kinds", "BackProp,LocoProp-M", "--device", "CPU"]
    )
    assert bench_run.check_args(args) == ["backprop", "locoprop_m"] and args.device == "cpu"


# ---- kind 5: schedules and the official preset --------------------------------------------------


def test_the_released_schedule_stays_at_zero_past_its_end() -> None:
    """Before: epoch 100 of ``warmup_linear_decay(1e-5, 5, 100)`` gave -1.05e-7 and epoch 150
    -5.3e-6 (a negative learning rate climbs the loss); now the rate stays at its final 0, as in
    PyTorch's LinearLR and optax's linear_schedule."""
    s = schedules.warmup_linear_decay(1e-5, warmup=5, total=100)
    assert s(98) == pytest.approx(1e-5 / 95) and s(99) == 0.0
    assert s(100) == 0.0 and s(150) == 0.0
    assert (s.total, s.epochs) == (100, 99)
    c = schedules.cosine(1.0, total=10, final=0.1)
    assert c(10) == pytest.approx(0.1) and c(25) == pytest.approx(0.1) and c.epochs == 10
    assert schedules.constant(0.3).epochs is None


@pytest.mark.parametrize("epoch", [-1, 1.5, True, "3"])
def test_a_schedule_refuses_an_epoch_that_is_not_a_count(epoch: object) -> None:
    """Before: epoch -1 gave -2e-6 (warmup) and cosine silently clamped -3 to 0."""
    for s in (schedules.warmup_linear_decay(1e-5), schedules.cosine(1.0, 10), schedules.constant(1.0)):
        with pytest.raises(ValueError, match="epoch: expected an integer >= 0, got"):
            s(epoch)  # type: ignore[arg-type]


def test_the_official_preset_refuses_epochs_past_its_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--preset official --epochs 150`` was accepted and trained with a negative learning
    rate from epoch 101 on; the refusal names the schedule's length."""
    with pytest.raises(ConfigError, match="reaches 0 after 99 epochs; expected at most 99, got 150"):
        resolve(TrainConfig(preset="official", epochs=150))
    assert resolve(TrainConfig(preset="official", epochs=99)).settings["epochs"] == 99  # the released run
    code, _, err = run_cli(
        ["train", "--preset", "official", "--epochs", "150", "--out", str(tmp_path / "o"), "--no-progress"],
        capsys,
    )
    assert code == 2 and not (tmp_path / "o").exists()
    assert_one_line(err, "epochs: the official preset's learning-rate schedule", "at most 99, got 150")


def test_a_run_config_refuses_a_run_longer_than_its_schedule() -> None:
    """The same check where the schedule is built (the run's configuration owns it, not the
    optimizer), for a RunConfig changed by hand (before: none)."""
    run = resolve(TrainConfig(preset="official"))
    assert run.schedule is not None and run.schedule.epochs == 99  # 99 epochs: fine
    with pytest.raises(
        ConfigError, match=r"schedule \(warmup 5, linear decay to 0 at epoch 99\) ends after 99"
    ):
        run.with_epochs(100)
    with pytest.raises(ConfigError, match=r"epochs: expected 99 like settings\['epochs'\], got 98"):
        dataclasses.replace(run, epochs=98)  # the two must agree
    assert resolve(TrainConfig(optimizer="adam")).schedule is None  # a constant rate: no schedule


def test_the_official_preset_brings_its_optimizer_and_data_set() -> None:
    """Before: ``TrainConfig(preset="official")`` resolved to rmsprop-tf1 (the BackProp baseline) on
    curves, and the command line required ``--optimizer``."""
    resolved = resolve(TrainConfig(preset="official")).settings
    assert (resolved["optimizer"], resolved["dataset"], resolved["preset"]) == (
        "locoprop-m",
        "mnist",
        "official",
    )
    assert (
        resolve(TrainConfig(preset="official", optimizer="rmsprop-tf1")).settings["optimizer"]
        == "rmsprop-tf1"
    )
    assert (
        resolve(TrainConfig(preset="official", dataset="fashion-mnist")).settings["dataset"]
        == "fashion-mnist"
    )
    with pytest.raises(
        ConfigError, match=r"dataset: the official preset .* runs on mnist or fashion-mnist, got 'curves'"
    ):
        resolve(TrainConfig(preset="official", dataset="curves"))
    # negative control: without a preset the defaults stay rmsprop-tf1 on curves
    plain = resolve(TrainConfig()).settings
    assert (plain["optimizer"], plain["dataset"]) == ("rmsprop-tf1", "curves")


def test_train_with_the_official_preset_needs_no_optimizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``locograd train --preset official`` failed with "the following arguments are
    required: --optimizer", and without ``--dataset`` it ran on CURVES."""
    folder = write_mnist(tmp_path / "mnist", n_train=1000, n_test=20)
    out = tmp_path / "o"
    code, stdout, err = run_cli(
        [
            "train",
            "--preset",
            "official",
            "--data-dir",
            str(folder),
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    assert stdout.splitlines()[-1].startswith("locoprop-m on mnist: epoch 1")
    meta = json.loads((out / "config.json").read_text())
    assert meta["sizes"] == MNIST_SIZES
    assert (meta["settings"]["optimizer"], meta["settings"]["dataset"], meta["settings"]["preset"]) == (
        "locoprop-m",
        "mnist",
        "official",
    )


def test_train_without_optimizer_or_preset_says_what_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Still required without a preset; the message names both ways (before: argparse's usage text
    and "the following arguments are required: --optimizer")."""
    code, _, err = run_cli(["train", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and not (tmp_path / "x").exists()
    assert_one_line(err, "optimizer: expected --optimizer NAME with NAME one of sgd", "or --preset official")


# ---- kind 5: every argument before any work ----------------------------------------------------


BAD_TRAIN = [
    (["--optimizer", "rmsprop-tf1", "--seed", "-1"], "seed: expected an integer >= 0, got -1"),
    (["--optimizer", "rmsprop-tf1", "--limit-train", "0"], "limit-train: expected an integer >= 1, got 0"),
    (["--optimizer", "rmsprop-tf1", "--epochs", "-3"], "epochs: expected an integer >= 1, got -3"),
    (["--optimizer", "rmsprop-tf1", "--threads", "-1"], "threads: expected an integer >= 0, got -1"),
    (["--optimizer", "rmsprop-tf1", "--lr", "nan"], "lr: expected a finite number > 0, got nan"),
    (["--optimizer", "rmsprop-tf1", "--lr", "inf"], "lr: expected a finite number > 0, got inf"),
    (["--optimizer", "locoprop-m", "--gamma", "nan"], "gamma: expected a finite number > 0, got nan"),
    (["--optimizer", "locoprop-m", "--eta", "0"], "eta: expected a finite number > 0, got 0.0"),
    (["--optimizer", "locoprop-m", "--steps", "0"], "steps: expected an integer >= 1, got 0"),
    (["--optimizer", "kfac", "--damping", "-1"], "damping: expected a finite number > 0, got -1.0"),
    (["--optimizer", "shampoo", "--damping", "inf"], "damping: expected a finite number > 0, got inf"),
    (["--optimizer", "rmsprop-tf1", "--data-dir", "/no/such/folder"], "data-dir: curves is generated"),
    (
        ["--optimizer", "rmsprop-tf1", "--dataset", "mnist", "--data-dir", "/no/such/folder"],
        "data-dir: /no/such/folder does not exist",
    ),
    (
        ["--optimizer", "rmsprop-tf1", "--device", "tpu"],
        "device: unknown name 'tpu'; valid names are cpu, gpu",
    ),
    (["--optimizer", "rmsprop-tf1", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["--optimizer", "adam", "--preset", "official"], "preset official: the released configuration"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_TRAIN)
def test_bad_train_arguments_are_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """Before: ``--data-dir`` that does not exist was ignored for curves (the run trained), ``--seed -1``
    and ``--limit-train 0`` were found only when the data loaded, ``--damping inf`` named ``eps``,
    gamma's wording differed, and argparse errors came with the whole usage text."""
    out = tmp_path / "r"
    code, _, err = run_cli(["train", *SMALL, "--out", str(out), *extra], capsys)
    assert code == 2 and not out.exists()
    assert_one_line(err, message)


def test_an_out_folder_under_a_file_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``[Errno 20] Not a directory`` from os.makedirs, after the data had loaded."""
    (tmp_path / "file").write_text("keep")
    code, _, err = run_cli(
        ["train", "--optimizer", "sgd", *SMALL, "--out", str(tmp_path / "file" / "run")], capsys
    )
    assert code == 2 and (tmp_path / "file").read_text() == "keep"
    assert_one_line(err, f"out: {tmp_path / 'file'} is a file, so the folder")
    with pytest.raises(ValueError, match="is a file, expected a folder"):
        output_folder("out", str(tmp_path / "file"))


def test_the_api_checks_the_optimizer_numbers() -> None:
    """Before: ``settings(..., lr=nan)`` returned a dict holding NaN; the optimizer refused it only
    when built, after the data had loaded."""
    with pytest.raises(ValueError, match="lr: expected a finite number > 0, got nan"):
        settings("sgd", "curves", lr=float("nan"))
    with pytest.raises(ValueError, match=r"steps: expected an integer >= 1, got 1\.5"):
        settings("locoprop-m", "curves", steps=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="workers: expected an integer >= 1, got 0"):
        resolve(TrainConfig(workers=0))
    with pytest.raises(ConfigError, match="progress: expected True or False"):
        resolve(TrainConfig(progress="no"))  # type: ignore[arg-type]


def test_compare_checks_every_optimizer_before_the_first_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--optimizers locoprop-m,rmsprop-tf1 --gamma 1`` trained locoprop-m, then refused rmsprop-tf1;
    ``--optimizers sgd,SGD`` said SGD was unknown."""
    out = tmp_path / "c"
    code, _, err = run_cli(
        ["compare", "--optimizers", "locoprop-m,rmsprop-tf1", "--gamma", "1", *SMALL, "--out", str(out)],
        capsys,
    )
    assert code == 2 and not out.exists()
    assert_one_line(err, "gamma: only applies to locoprop-s and locoprop-m, not to 'rmsprop-tf1'")
    code, _, err = run_cli(["compare", "--optimizers", "sgd,SGD", *SMALL, "--out", str(out)], capsys)
    assert code == 2 and not out.exists()
    assert_one_line(err, "optimizers: a name is repeated in sgd,sgd")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "{tmp}"], "out: {tmp} is a folder, expected a file name"),
        (
            ["--out", "{tmp}/file/report.json"],
            "out: {tmp}/file is a file, so {tmp}/file/report.json cannot be written",
        ),
        (
            ["--scaling", "--scaling-batches", "abc"],
            "scaling-batches: expected comma-separated integers >= 1, got 'abc'",
        ),
        (
            ["--scaling", "--scaling-batches", "4,0"],
            "scaling-batches: expected comma-separated integers >= 1, got '4,0'",
        ),
        (
            ["--scaling", "--scaling-widths", "1,x"],
            "scaling-widths: expected comma-separated integers >= 1, got '1,x'",
        ),
        (
            ["--scaling-widths", "1,x"],
            "scaling-widths: only applies with --scaling; add --scaling or drop it",
        ),
        (["--timeout", "0"], "timeout: expected a finite number > 0, got 0.0"),
        (["--timeout", "nan"], "timeout: expected a finite number > 0, got nan"),
        (["--kinds", ""], "kinds: expected comma-separated step kinds"),
        (["--kinds", "backprop,frobnicate"], "kinds: unknown name 'frobnicate'; valid names are backprop"),
        (["--kinds", "backprop,BackProp"], "kinds: a step kind is repeated"),
        (["--repeats", "0"], "repeats: expected an integer >= 1, got 0"),
        (["--device", "tpu"], "device: unknown name 'tpu'; valid names are cpu, gpu"),
        (["--threads", "x"], "argument --threads: invalid int value: 'x'"),
    ],
)
def test_bench_checks_every_option_before_running(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    message: str,
) -> None:
    """Before: a bad ``--out`` or ``--scaling-batches`` failed with a traceback after the whole run
    (``IsADirectoryError``, ``invalid literal for int()``, ``ZeroDivisionError``), ``--timeout nan``
    after the first worker, ``--kinds ""`` ran nothing and exited 0."""
    (tmp_path / "file").write_text("keep")

    def no_worker(*_: object) -> dict[str, object]:
        raise AssertionError("a worker started before the options were checked")

    monkeypatch.setattr(bench_run, "run_worker", no_worker)
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    code, _, err = run_cli(["bench", "--quick", "--no-torch", *options], capsys)
    assert code == 2
    assert_one_line(err, "locograd bench: error: ", message.replace("{tmp}", str(tmp_path)))
    assert (tmp_path / "file").read_text() == "keep"


def test_path_and_list_validators() -> None:
    assert integer_list("widths", " 1, 2 ", minimum=1) == [1, 2]
    with pytest.raises(ValueError, match="widths: expected comma-separated integers >= 1, got '1,,2'"):
        integer_list("widths", "1,,2", minimum=1)
    with pytest.raises(ValueError, match="out: expected a file path, got ''"):
        output_file("out", "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": 0}, "trials: expected an integer >= 1, got 0"),
        ({"trials": -2}, "trials: expected an integer >= 1, got -2"),
        ({"seed": -1}, "seed: expected an integer >= 0, got -1"),
        ({"inject": "everything"}, "inject: unknown name 'everything'; valid names are none"),
    ],
)
def test_verify_checks_its_arguments_first(kwargs: dict[str, object], message: str) -> None:
    """Before: ``trials=0`` failed with "max() arg is an empty sequence" and ``seed=-1`` with NumPy's
    "expected non-negative integer"."""
    with pytest.raises(ValueError, match=message):
        run_checks(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--trials", "0"], "locograd: error: trials: expected an integer >= 1, got 0"),
        (["verify", "--seed", "-1"], "locograd: error: seed: expected an integer >= 0, got -1"),
        (["demo", "--seed", "-1"], "locograd: error: seed: expected an integer >= 0, got -1"),
        (["demo", "--device", "tpu"], "locograd: error: device: unknown name 'tpu'"),
        (
            ["verify", "--trials", "many"],
            "locograd verify: error: argument --trials: invalid int value: 'many'",
        ),
    ],
)
def test_verify_and_demo_on_the_command_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert_one_line(err, message)


# ---- kind 5: empty data and files that are not what they are named -------------------------------


@pytest.mark.parametrize("task", [AUTOENCODER, CLASSIFIER])
def test_evaluating_a_split_refuses_zero_rows(task) -> None:
    """Before: ``ZeroDivisionError: float division by zero`` (then in ``mean_loss``, now a task's ``evaluate``)."""
    net = lg.MLP(
        [3, 4, 3],
        ["tanh", "softmax" if task is CLASSIFIER else "sigmoid"],
        "softmax_cross_entropy" if task is CLASSIFIER else "sigmoid_cross_entropy",
    )
    labels = np.zeros(5, dtype=np.int64)
    with pytest.raises(
        ValueError, match=r"x: expected at least one row to average the loss over, got shape \(0, 3\)"
    ):
        task.evaluate(net, net.init(), np.zeros((0, 3)), labels[:0])
    assert np.isfinite(
        task.evaluate(net, net.init(), np.full((5, 3), 0.5), labels)["loss"]
    )  # negative control: 5 rows


def test_a_data_set_with_an_empty_split_is_refused() -> None:
    """Before: an empty test split was accepted and training failed after epoch 0's row was due
    (``ZeroDivisionError``), with the run folder already made."""
    x = np.zeros((4, 784), np.float32)
    with pytest.raises(DataError, match="toy: x_test has no rows"):
        data.Dataset("toy", x, None, x[:0], None, source="hand")
    with pytest.raises(DataError, match="toy: x_train has no rows"):
        data.Dataset("toy", x[:0], None, x, None, source="hand")


def test_an_mnist_file_with_no_images_is_refused(tmp_path: Path) -> None:
    """Before: a test file of 0 images loaded, and the first evaluation divided by zero."""
    folder = write_mnist(tmp_path / "m", n_train=3, n_test=0)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: holds no images") as info:
        data.load("mnist", data_dir=folder)
    assert str(info.value).count("\n") == 0


def test_a_text_file_named_npz_never_suggests_unpickling(tmp_path: Path) -> None:
    """Before: "not a readable .npz archive (This file contains pickled (object) data. If you trust
    the file you can load it unsafely using the `allow_pickle=` keyword argument or `pickle.load()`.)"."""
    text = tmp_path / "mnist.npz"
    text.write_text("hello, I am text\n")
    for load in (lambda: read_mnist_npz(text), lambda: data.load("mnist", data_dir=text)):
        with pytest.raises(DataError) as info:
            load()
        message = str(info.value)
        assert message.startswith(f"{text}: not an .npz archive") and "\n" not in message
        assert "unsafe" not in message and "allow_pickle" not in message and "pickle.load" not in message


def test_curves_refuses_a_data_dir() -> None:
    """Before: ``load("curves", data_dir="/no/such")`` ignored the folder (a mistyped --dataset ran on CURVES)."""
    with pytest.raises(DataError, match="data_dir: curves is generated, not read from files"):
        data.load("curves", data_dir="/no/such", limit_train=2)
    assert data.load(" CURVES ", limit_train=2).name == "curves"  # negative control
