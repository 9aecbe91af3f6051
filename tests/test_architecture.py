"""The direction of imports (docs/ARCHITECTURE.md): core ← curator_model ← stages ← app, and no cycles.

Every ``import`` in the product packages is read from the source (function-level imports included, since
lazy imports are still dependencies), so a new import that points the wrong way or closes a cycle between
two packages fails here, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PRODUCT = ("curation", "stages", "curator_model", "shadow_model")
#: what each layer may import besides itself; anything not listed is forbidden
ALLOWED = {
    "core": {"core"},
    "curator_model": {"core", "curator_model"},
    "stages": {"core", "curator_model", "stages"},
    "app": {"core", "curator_model", "stages", "app"},
}


def layer(module: str) -> str:
    if module == "curation.core" or module.startswith("curation.core."):
        return "core"
    if module.split(".")[0] in ("curator_model", "stages"):
        return module.split(".")[0]
    return "app"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a product module in ``path`` (or in ``source``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # ``from package import module`` imports the module itself
            targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found += [(t, node.lineno) for t in targets if t.split(".")[0] in PRODUCT]
    return found


def product_files() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (REPO / pkg).rglob("*.py"))


def package_of(module: str) -> str:
    """The Python package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    path = REPO / Path(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def direction_violations(edges: list[tuple[str, str, str]]) -> list[str]:
    """``edges``: (importing module, imported module, where). The imports that point the wrong way."""
    return [
        f"{where}: {src} ({layer(src)}) imports {dst} ({layer(dst)})"
        for src, dst, where in edges
        if layer(dst) not in ALLOWED[layer(src)]
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def import_edges() -> list[tuple[str, str, str]]:
    return [
        (module_name(p), target, f"{p.relative_to(REPO)}:{line}")
        for p in product_files()
        for target, line in project_imports(p)
    ]


def test_imports_point_from_the_app_down_to_the_core():
    edges = import_edges()
    assert len(edges) > 100  # the scan sees the project's imports
    assert direction_violations(edges) == []


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in import_edges():
        a, b = package_of(src), package_of(dst)
        if a != b:
            graph.setdefault(a, set()).add(b)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_checks_fail_on_a_wrong_import_and_on_a_cycle():
    wrong = [
        ("curation.core.schema", "stages.masks", "x.py:1"),
        ("curator_model.train", "stages.curate", "y.py:2"),
        ("stages.masks", "curation.pipeline", "z.py:3"),
        ("curation.pipeline", "stages.masks", "ok.py:4"),
    ]
    assert [v.split(":")[0] for v in direction_violations(wrong)] == ["x.py", "y.py", "z.py"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}}) is None


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("from . import base", "stages.sources.base"),
        ("from .base import Source", "stages.sources.base"),
        ("from ..masks import MasksAndLayers", "stages.masks"),
    ],
)
def test_relative_imports_are_resolved(relative, expected):
    assert [t for t, _ in project_imports(REPO / "stages" / "sources" / "coco.py", relative)] == [expected]


def test_nothing_outside_the_tests_imports_them():
    """The benchmarks, examples and dev data builders stand on the product (and devdata), never on tests/:
    a benchmark must not break because a test file moved."""
    offenders = []
    for folder in ("bench", "examples", "devdata", *PRODUCT):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                offenders += [f"{path.relative_to(REPO)}:{node.lineno}" for n in names if n.split(".")[0] == "tests"]
    assert offenders == []
