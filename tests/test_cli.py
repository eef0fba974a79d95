"""The command line: `locograd info`, `locograd demo`, `python -m locograd`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from locograd import cli


def test_info_prints_versions_backends_blas_and_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for field in ("locograd", "numpy", "backends", "blas", "gpu"):
        assert f"\n{field}" in f"\n{out}"


def test_demo_checks_gradients(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    tape_err = float(out.split("hand-written vs tape gradients: max relative error ")[1].split()[0])
    vjp_err = float(out.split("dot-product test (check_vjp): max relative error ")[1].split()[0])
    assert tape_err <= 1e-10 and vjp_err <= 1e-6


@pytest.mark.gpu
def test_demo_on_the_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--device", "gpu"]) == 0
    assert "on gpu" in capsys.readouterr().out


def test_python_dash_m_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locograd", "info"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("locograd")


def test_unknown_subcommand_exits_nonzero() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_verify_passes_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "first step = BackProp (M, plain GD)" in out and "FAIL" not in out
    assert "10 passed, 0 failed" in out


@pytest.mark.parametrize("inject", ["dl-dy", "f-of-shifted-pre-activation"])
def test_verify_fails_visibly_when_an_identity_breaks(
    capsys: pytest.CaptureFixture[str], inject: str
) -> None:
    assert cli.main(["verify", "--trials", "2", "--inject", inject]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("first step = BackProp (M, plain GD)"))
    assert " FAIL " in row and row.endswith("section 4.1")  # each row names where docs/math.md explains it


def test_bench_takes_its_own_options_and_names_itself_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--quick", "--kinds", "backprop,frobnicate"]) == 2
    # the one wording of every name check (before: "unknown step kinds ['frobnicate']; valid: ...")
    assert "locograd bench: error: kinds: unknown name 'frobnicate'; valid names are backprop" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0 and "usage: locograd bench" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--optimizer", "sgd", "--epochs", "abc"],
        ["verify", "--trials", "x"],
        ["demo", "--seed", "1.5"],
    ],
)
def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """Before: argparse printed its whole usage text (several lines) above the error."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "invalid" in err and "--help)" in err


def test_sweep_is_not_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """``sweep`` is gone (``locograd study`` does its job): an unknown command, refused in one line."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--optimizer", "sgd", "--grid", "lr=0.1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'sweep'" in err
    with pytest.raises(SystemExit) as exc:  # negative control: a known command parses past its name
        cli.main(["study", "--no-such-option"])
    assert "invalid choice" not in capsys.readouterr().err


def test_verify_refuses_zero_trials(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "locograd: error: max() arg is an empty sequence"."""
    assert cli.main(["verify", "--trials", "0"]) == 2
    assert capsys.readouterr().err == "locograd: error: trials: expected an integer >= 1, got 0\n"


def test_the_help_reads_as_plain_text_and_its_examples_parse(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` shows no RST backquotes and no retired subcommand; every example it gives is a
    command line the parser accepts (checked without running it)."""
    import shlex

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "sweep" not in out and "examples:" in out
    examples = [line.split("#")[0].strip() for line in cli.EXAMPLES.splitlines()[1:]]
    parser = cli.build_parser()
    runnable = [e for e in examples if "SUBCOMMAND" not in e]
    assert len(runnable) >= 4
    for example in runnable:
        parser.parse_args(shlex.split(example)[1:])
    with pytest.raises(SystemExit):  # the control: a wrong example would be caught
        parser.parse_args(shlex.split("locograd train --no-such-option")[1:])
