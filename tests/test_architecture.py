"""The package's shape: no import cycles among its modules, no source file over 600 lines.

Layers import downward only (STYLE.md, principle 13): a shared helper moves down to the lowest
module that needs it. An import inside a function counts like one at the top of the module (a
lazy import hides a cycle, it does not open it); an import under ``if TYPE_CHECKING:`` does
not count. A name imported from a package's ``__init__`` is followed to the submodule that
defines it, so a re-exporting ``__init__`` makes no cycle by itself.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import histoexpr

SRC = Path(histoexpr.__file__).resolve().parent
MAX_LINES = 600


# ----------------------------------------------------------------------------- the graph


def _modname(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of every import of ``path`` (function-level ones
    included, ``TYPE_CHECKING`` blocks excluded); relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _modname(root, path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:  # the else branch runs
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {imported module of the package: line of the first such import}; package
    ``__init__`` modules are not nodes (names they re-export lead to their defining module)."""
    files = {_modname(root, p): p for p in sorted(root.rglob("*.py"))}
    inits = {m for m, p in files.items() if p.name == "__init__.py"}
    raw = {m: _imports(root, p) for m, p in files.items()}
    reexport = {(m, name): mod for m in inits for mod, names, _ in raw[m]
                if mod in files and mod != m for name in names}

    def resolve(mod: str, name: str | None, depth: int = 0) -> str | None:
        if name and f"{mod}.{name}" in files:
            return f"{mod}.{name}"
        if name and (mod, name) in reexport and depth < 10:
            return resolve(reexport[(mod, name)], None, depth + 1)
        return mod if mod in files else None

    graph: dict[str, dict[str, int]] = {m: {} for m in files if m not in inits}
    for m, edges in graph.items():
        for mod, names, line in raw[m]:
            for target in [resolve(mod, n) for n in names] or [resolve(mod, None)]:
                if target and target != m and target not in inits:
                    edges.setdefault(target, line)
    return graph


def _reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one
    module, shortest from the component's first module."""
    reach = {m: _reachable(graph, m) for m in graph}
    done: set[str] = set()
    cycles = []
    for m in sorted(graph):
        if m in done or m not in reach[m]:
            continue
        comp = {n for n in reach[m] if m in reach[n]}
        done |= comp
        # breadth-first from m back to m, inside the component
        prev: dict[str, str] = {}
        frontier = [m]
        while m not in prev:
            nxt = []
            for a in frontier:
                for b in sorted(graph[a]):
                    if b in comp and b not in prev:
                        prev[b] = a
                        nxt.append(b)
            frontier = nxt
        path = [m]
        while True:
            path.append(prev[path[-1]])
            if path[-1] == m:
                break
        cycles.append(path[::-1])
    return cycles


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    steps = [f"{a} imports {b} (line {graph[a][b]})" for a, b in pairwise(cycle)]
    return "import cycle: " + "; ".join(steps)


# ----------------------------------------------------------------------------- the tests


def test_no_import_cycles():
    graph = import_graph(SRC)
    assert len(graph) > 50  # the package was found and parsed
    cycles = import_cycles(graph)
    assert not cycles, (
        "move the shared names down to a module both can import (a lazy import inside a "
        "function still counts):\n" + "\n".join(_describe(graph, c) for c in cycles))


def test_no_source_file_over_600_lines():
    long = {str(p.relative_to(SRC.parent)): n for p in sorted(SRC.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines; split them by concern: {long}"


def test_the_cycle_check_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .sub.b import B\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import B\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import B\n    return B\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nB = 1\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n")
    (pkg / "d.py").write_text("from . import c\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b": 2}  # followed through the re-exporting __init__
    assert graph["pkg.c"] == {}  # TYPE_CHECKING only
    cycles = import_cycles(graph)
    assert cycles == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    assert _describe(graph, cycles[0]) == (
        "import cycle: pkg.a imports pkg.sub.b (line 2); pkg.sub.b imports pkg.a (line 1)")
