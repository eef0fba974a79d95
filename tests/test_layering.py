"""The package's layering: data flows one way, and no module imports one above it.

The layers, bottom to top (a module may import its own layer's siblings only where
the list below says so, and anything below):

    errors, tutorial -> backend -> validators -> data, transfer, linalg, testing, autodiff
      -> bregman, losses -> nn -> locoprop -> _fast -> optim
      -> experiments, verify, study -> bench -> cli -> __main__

``errors``, ``validators`` and ``_fast`` are the private helper modules, placed where their
imports put them; ``tutorial`` (what the lessons share: fast mode, figures) imports nothing of the
package, so it sits at the bottom.  ``_fast`` is the private package of fused fast paths (the in-place
first-order kernels, the lean BackProp pass, the fused local solve): the fused solve builds on
``locoprop``'s problems, and only ``optim`` reaches ``_fast``, through its explicit hooks, so the
modules the tutorials teach from (nn, locoprop, bregman, ...) never import it.  The test reads
every module's ``import`` statements with ``ast`` (nothing is imported), so it also catches imports
inside functions.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "locograd"

LAYERS: list[set[str]] = [
    {"errors", "tutorial"},
    {"backend"},
    {"validators"},
    {"data", "transfer", "linalg", "testing", "autodiff"},
    {"bregman", "losses"},
    {"nn"},
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
    ("losses", "bregman"),
    ("losses", "transfer"),
    ("study", "experiments"),
}
"""Imports within one layer that the data flow allows (transfer sits below the two that use it;
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
    """Negative control: a layer module importing the optimizers, a data module importing the
    experiments and the command line, and bregman importing its sibling losses are all reported."""
    fake = tmp_path / "locograd"
    (fake / "data").mkdir(parents=True)
    (fake / "nn").mkdir()
    (fake / "nn" / "dense.py").write_text("from ..optim import sgd\n")
    (fake / "bregman.py").write_text("from . import losses\n")
    (fake / "data" / "extra.py").write_text("from ..experiments import train\nimport locograd.cli\n")
    assert _violations(fake) == [
        "locograd/bregman.py:1: bregman imports losses",
        "locograd/data/extra.py:1: data imports experiments",
        "locograd/data/extra.py:2: data imports cli",
        "locograd/nn/dense.py:1: nn imports optim",
    ]


def _module_name(path: pathlib.Path, package: pathlib.Path) -> str:
    """``locograd/experiments/compare.py`` -> ``experiments.compare``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(parts: list[str], package: pathlib.Path) -> str | None:
    """The module a dotted path inside the package names (a file or a package), or ``None``."""
    if not parts:
        return None
    folder = package.joinpath(*parts)
    if folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file():
        return ".".join(parts)
    return None


def _module_imports(path: pathlib.Path, package: pathlib.Path) -> list[tuple[str, int]]:
    """``(module imported, line)`` for every import of a module of the package, at module granularity.

    ``from .compare import x`` names ``compare``; ``from . import runfolder`` names ``runfolder``;
    ``from ..nn import MLP`` names the ``nn`` package (its ``__init__``).  Imports inside functions count.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(package)
    folder = list(
        rel.parts[:-1]
    )  # a package's __init__ and a plain module both import relative to their folder
    found = []
    for node in ast.walk(tree):
        names: list[tuple[list[str], list[str]]] = []
        if isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:
                if node.level - 1 > len(folder):
                    raise AssertionError(f"{path}: relative import above the package")
                names.append(
                    ([*folder[: len(folder) - (node.level - 1)], *module], [a.name for a in node.names])
                )
            elif module[:1] == ["locograd"]:
                names.append((module[1:], [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("locograd."):
                    names.append((alias.name.split(".")[1:], []))
        for target, aliases in names:
            resolved = [_resolve([*target, a], package) for a in aliases]
            if aliases and all(resolved):
                found.extend((str(r), node.lineno) for r in resolved)
            else:
                module = _resolve(target, package)
                if module:
                    found.append((module, node.lineno))
    return found


def _circles(package: pathlib.Path) -> list[str]:
    """Every import circle among the package's modules, as ``"a -> b -> c -> a"`` (one per strongly
    connected group, from its alphabetically first module).  The top-level ``__init__``, which
    re-exports the public names, is left out, as in the layering."""
    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if path == package / "__init__.py":
            continue
        name = _module_name(path, package)
        graph.setdefault(name, set()).update(t for t, _ in _module_imports(path, package) if t and t != name)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    circles = []
    for group in sorted(groups):
        members = set(group)
        path = [group[0]]
        while True:  # walk inside the group until the path closes
            nxt = min(w for w in graph[path[-1]] if w in members)
            if nxt in path:
                circles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
                break
            path.append(nxt)
    return circles


def test_no_import_circle_inside_the_package() -> None:
    assert _circles(PACKAGE) == []


def test_the_circle_check_finds_a_circle_inside_one_package(tmp_path: pathlib.Path) -> None:
    """Negative control: checkpoint -> compare -> training -> checkpoint inside ``experiments``
    (the layering test allows all three, one unit) is reported; a one-way chain is not."""
    fake = tmp_path / "locograd"
    (fake / "experiments").mkdir(parents=True)
    (fake / "experiments" / "__init__.py").write_text("from .training import train\n")
    (fake / "experiments" / "checkpoint.py").write_text("def save():\n    from .compare import table\n")
    (fake / "experiments" / "compare.py").write_text("from . import training\n")
    (fake / "experiments" / "training.py").write_text("from locograd.experiments.checkpoint import save\n")
    (fake / "experiments" / "loop.py").write_text("from .training import train\n")
    assert _violations(fake) == []
    assert _circles(fake) == [
        "experiments.checkpoint -> experiments.compare -> experiments.training -> experiments.checkpoint"
    ]
    (fake / "experiments" / "training.py").write_text("import numpy\n")
    assert _circles(fake) == []
