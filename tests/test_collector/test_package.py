"""The collector package's shape: no module imports another that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import collector

PKG = Path(collector.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (at any depth, functions included)."""
    mods = {_module_name(p): p for p in root.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                prefix = base[:len(base) - node.level + 1] if node.level else []
                src = ".".join(prefix + ([node.module] if node.module else []))
                targets = [src] + [f"{src}.{a.name}" for a in node.names]
            for t in targets:
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_collector_modules_import_no_cycle():
    graph = import_graph()
    assert "collector.cli.common" in graph and "collector.storage.store" in graph["collector.cli.common"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_sql_lives_in_store_only():
    """Only store.py (and the schema and migrations) talk to the database in SQL."""
    offenders = []
    for path in PKG.rglob("*.py"):
        if "migrations" in path.parts or path.name in ("store.py", "schema.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                names = {a.name for a in node.names} - {"Engine", "Connection"}
                if names:
                    offenders.append(f"{path.name}: {sorted(names)}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("schema"):
                offenders.append(f"{path.name}: imports the tables")
    assert offenders == []


def test_compare_does_not_depend_on_reports():
    assert "collector.analysis.reports" not in import_graph()["collector.analysis.compare"]
