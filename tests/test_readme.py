"""The README's Python blocks run, in order, in one namespace, as a reader copies them (Sybil parses
the Markdown), so the README cannot drift from the library."""

from __future__ import annotations

import pathlib

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

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
