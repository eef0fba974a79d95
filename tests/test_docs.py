"""The project's own maths notes, ``docs/math.md``, name the tests that check each identity: every
name it gives must be a test of this suite, so the notes cannot drift from the tests."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cited_tests(text: str) -> set[str]:
    """The test names a document cites in backquotes (``test_...``)."""
    return set(re.findall(r"`(test_[a-z0-9_]+)`", text))


def defined_tests() -> set[str]:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    return set(re.findall(r"^(?:async )?def (test_[a-z0-9_]+)", source, flags=re.MULTILINE))


def test_every_test_that_docs_math_cites_exists() -> None:
    cited = cited_tests((ROOT / "docs" / "math.md").read_text(encoding="utf-8"))
    assert len(cited) >= 20, "docs/math.md names the tests of its identities"
    assert sorted(cited - defined_tests()) == []


def test_a_citation_of_a_missing_test_is_caught() -> None:
    """Negative control: a made-up name is reported."""
    cited = cited_tests("see `test_first_step_equals_backprop_plain_gd` and `test_no_such_identity`")
    assert sorted(cited - defined_tests()) == ["test_no_such_identity"]


def test_nothing_cites_notes_outside_the_repository() -> None:
    """Docstrings, tests and tutorials cite ``docs/math.md``, the project's own notes."""
    stale = []
    for folder in ("locograd", "tests", "tutorials"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name != "test_docs.py" and ("LOCOPROP.md" in text or "math notes" in text):
                stale.append(str(path.relative_to(ROOT)))
    assert stale == []
