"""The package's layering: data flows one way, and no module imports one above it.

The layers, bottom to top (a module may import its own layer's siblings only where
the list below says so, and anything below):

    errors -> backend -> validators -> data, transfer, linalg, testing, autodiff
      -> bregman, layers, losses -> network -> locoprop -> _fast -> optim
      -> experiments, verify, study -> bench -> cli -> __main__

``errors``, ``validators`` and ``_fast`` are the private helper modules, placed where their
imports put them.  ``_fast`` is the private package of fused fast paths (the in-place
first-order kernels, the lean BackProp pass, the fused local solve): the fused solve builds on
``locoprop``'s problems, and only ``optim`` reaches ``_fast``, through its explicit hooks, so the
modules the tutorials teach from (network, locoprop, layers, ...) never import it.  The test reads
every module's ``import`` statements with ``ast`` (nothing is imported), so it also catches imports
inside functions.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "locograd"

LAYERS: list[set[str]] = [
    {"errors"},
    {"backend"},
    {"validators"},
    {"data", "transfer", "linalg", "testing", "autodiff"},
    {"bregman", "layers", "losses"},
    {"network"},
    {"locoprop"},
    {"_fast"},
    {"optim"},
    {"experiments", "verify", "study"},
    {"bench"},
    {"cli"},
    {"__main__"},
]
"""Bottom to top; the package's ``__init__`` (which re-exports) is not a layer."""

SIBLING_IMPORTS = {
    ("bregman", "transfer"),
    ("layers", "transfer"),
    ("losses", "bregman"),
    ("losses", "transfer"),
    ("study", "experiments"),
}
"""Imports within one layer that the data flow allows (transfer sits below the three that use it;
the study runs experiments). Everything else within a layer is refused."""


def _level(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"locograd.{name} is in no layer of this test; add it to LAYERS")


def _unit(path: pathlib.Path, package: pathlib.Path) -> str:
    """The top-level unit of a module file: ``locograd/optim/kfac.py`` -> ``optim``."""
    return path.relative_to(package).parts[0].removesuffix(".py")


def _imports(path: pathlib.Path, package: pathlib.Path) -> list[tuple[str, int]]:
    """``(unit imported, line)`` for every locograd import in ``path`` (relative or absolute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(package).parts) - 1  # folders between the package and the file
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1  # "from . import" stays in the file's folder
                parts = list(path.relative_to(package).parts[:depth])
                if up > len(parts):
                    raise AssertionError(f"{path}: relative import above the package")
                base = parts[: len(parts) - up]
                if node.module:
                    target = [*base, *node.module.split(".")]
                    found.append((target[0] if target else "", node.lineno))
                else:
                    for alias in node.names:
                        target = [*base, alias.name]
                        found.append((target[0], node.lineno))
            elif node.module and (node.module == "locograd" or node.module.startswith("locograd.")):
                parts = node.module.split(".")[1:]
                if parts:
                    found.append((parts[0], node.lineno))
                else:
                    found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("locograd."):
                    found.append((alias.name.split(".")[1], node.lineno))
    return found


def _violations(package: pathlib.Path) -> list[str]:
    """Every import in ``package`` that goes up a layer, or sideways where not allowed."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "__init__.py":
            continue
        unit = _unit(path, package)
        for target, line in _imports(path, package):
            if target in ("", unit, "__version__", "__init__"):
                continue  # within the unit itself, or the package's version string
            if _level(target) > _level(unit) or (
                _level(target) == _level(unit) and (unit, target) not in SIBLING_IMPORTS
            ):
                bad.append(f"{path.relative_to(package.parent)}:{line}: {unit} imports {target}")
    return bad


def test_no_module_imports_one_above_it() -> None:
    assert len(list(PACKAGE.rglob("*.py"))) > 20
    assert _violations(PACKAGE) == []


def test_every_module_is_in_a_layer() -> None:
    units = {_unit(p, PACKAGE) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    for unit in units:
        _level(unit)


def test_the_check_fails_on_an_upward_import(tmp_path: pathlib.Path) -> None:
    """Negative control: a network module importing the optimizers, a data module importing the
    experiments and the command line, and layers importing its sibling losses are all reported."""
    fake = tmp_path / "locograd"
    (fake / "data").mkdir(parents=True)
    (fake / "network.py").write_text("from .optim import sgd\n")
    (fake / "layers.py").write_text("from . import losses\n")
    (fake / "data" / "extra.py").write_text("from ..experiments import train\nimport locograd.cli\n")
    assert _violations(fake) == [
        "locograd/data/extra.py:1: data imports experiments",
        "locograd/data/extra.py:2: data imports cli",
        "locograd/layers.py:1: layers imports losses",
        "locograd/network.py:1: network imports optim",
    ]
