"""The README's Python blocks run, in order, in one namespace, as a reader copies them (Sybil parses
the Markdown), so the README cannot drift from the library."""

from __future__ import annotations

import pathlib
import sys

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from . import background

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _examples(path: pathlib.Path) -> list:
    document = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()]).parse(path)
    return list(document)


def test_every_python_block_of_the_readme_runs() -> None:
    examples = _examples(ROOT / "README.md")
    assert len(examples) >= 3, "the README shows the library in Python blocks"
    for example in examples:
        example.evaluate()


def test_a_block_that_fails_is_caught(tmp_path: pathlib.Path) -> None:
    """Negative control: a block that uses a name never defined (the README once used ``epoch``)."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport locograd\n```\n\n```python\nrate = schedule(epoch)\n```\n", encoding="utf-8"
    )
    examples = _examples(page)
    examples[0].evaluate()
    with pytest.raises(NameError, match="schedule"):
        examples[1].evaluate()


def _shell_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each ``bash`` block of a Markdown text: the marker comment before it, and its lines."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "```bash":
            body = []
            for following in lines[i + 1 :]:
                if following.strip() == "```":
                    break
                body.append(following)
            before = next((b.strip() for b in reversed(lines[:i]) if b.strip()), "")
            blocks.append((before, body))
    return blocks


def _locograd_commands(body: list[str]) -> list[list[str]]:
    """The ``locograd ...`` commands of a block's lines (after ``&&``, without comments), split as a shell would."""
    import shlex

    commands = []
    for line in body:
        for part in line.split("#")[0].split("&&"):
            words = shlex.split(part)
            if words[:1] == ["locograd"]:
                commands.append(words[1:])
    return commands


def _check_arguments(args: list[str]) -> None:
    """Parse a command line with the CLI's own parser (the benchmark has its own), running nothing."""
    from locograd import cli
    from locograd.bench.run import build_parser, check_args

    if args[:1] == ["bench"]:
        check_args(build_parser("locograd bench").parse_args(args[1:]))
    else:
        cli.build_parser().parse_args(args)


def test_every_shell_block_says_whether_it_runs_and_its_commands_parse() -> None:
    blocks = _shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    for before, body in blocks:
        assert before == "<!-- test-command -->" or before.startswith(
            ("<!-- readme-test: run", "<!-- readme-test: skip, ")
        ), f"a bash block without a readme-test marker: {body[0]!r}"
        for args in _locograd_commands(body):
            _check_arguments(args)


def test_a_command_the_cli_refuses_is_caught() -> None:
    """Negative control: a README line with an option the CLI does not have."""
    (args,) = _locograd_commands(["locograd train --epochs 3 --no-such-option   # a typo"])
    with pytest.raises(SystemExit):
        _check_arguments(args)


def _quick_start_commands() -> list[list[str]]:
    """The ``locograd`` commands of the README's blocks marked ``run``."""
    runs = [
        body
        for before, body in _shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
        if before.startswith("<!-- readme-test: run")
    ]
    return [args for body in runs for args in _locograd_commands(body)]


def _main_job() -> background.Job:
    """The quick start's main job, ``locograd compare`` with no arguments, in a fresh folder (the
    first marked command; the test below fails, not collection, where the README holds another)."""
    commands = _quick_start_commands() or [["compare"]]
    args = [sys.executable, "-m", "locograd", *commands[0], "--no-progress"]
    return background.Job(args, env=background.python_env(ROOT))


background.JOBS["main-job"] = _main_job


@pytest.mark.background("main-job")
def test_the_quick_starts_main_job_runs() -> None:
    """The blocks marked ``run``: the main job, ``locograd compare`` (under 3 minutes on 2 cores), run
    in the background from the end of collection on (:mod:`tests.background`)."""
    assert _quick_start_commands() == [["compare"]]
    job = background.finished("main-job")
    done, _ = job.result()
    assert done.returncode == 0, done.stderr[-2000:]
    assert job.folder is not None and (job.folder / "runs" / "compare" / "summary.json").is_file()
    reading = done.stdout.splitlines()[-2]  # what the README says the main job shows, as it printed it
    logistic, tanh = reading.split("; tanh: ")
    assert "adam ahead by" in logistic and "locoprop-m sits on the plateau" in logistic, reading
    assert "locoprop-m ahead by" in tanh and "plateau" not in tanh, reading
    assert logistic.count("beyond the seed spread") == 1 and tanh.count("beyond the seed spread") == 1, (
        reading
    )
