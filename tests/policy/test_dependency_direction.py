"""Imports point one way: the tools depend on the pack and the program, never the reverse.

- `policy/` (the pack) imports only the standard library and `pulumi_policy`, so the Pulumi CLI runs it with
  nothing but policy/requirements.txt installed, and it is the one home of the security facts.
- `components/` (the program) imports neither its checks nor its tools.
- `tools/` imports both; `tools/policy_run.py` is the one place where the pack meets the offline runner.
- No module of the pack or the tools imports itself back through others.

The imports are read from the source with ast (nothing is imported), including imports inside functions,
so a loop cannot hide behind an import order that happens to work today.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# This repository's packages, and which of them each scanned one may import besides itself.
FIRST_PARTY = {"policy", "components", "tools", "apps", "tests", "benchmarks"}
MAY_IMPORT = {
    "policy": set(),
    "components": set(),
    "tools": {"policy", "components"},
}
# The packages whose modules must not import each other in a loop.
LOOP_FREE = ("policy", "tools")
# What the pack may import beyond the standard library: the rule API that policy/requirements.txt installs.
PACK_DEPENDENCIES = {"pulumi_policy"}

Graph = Mapping[str, set[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


@cache
def scanned_sources() -> dict[str, Path]:
    """Module name -> file, for every module of the packages in MAY_IMPORT (the pack's own venv left out)."""
    sources = {}
    for package in MAY_IMPORT:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "venv" not in path.relative_to(REPO_ROOT).parts:
                sources[module_name(path)] = path
    return sources


def imported_names(module: str, path: Path) -> Iterable[str]:
    """Every dotted name `module` imports, relative imports resolved; `from x import y` gives `x.y`."""
    package = module if is_package(path) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]  # each level past the first goes one package up
                base = f"{anchor}.{base}" if base else anchor
            elif module.startswith("policy.") and base.split(".")[0] == "rules":
                base = f"policy.{base}"  # policy/__main__.py puts policy/ on sys.path to import its rules
            yield from (f"{base}.{alias.name}" for alias in node.names)


def resolve(name: str, known: Mapping[str, Path]) -> str:
    """The longest known module `name` is or lies in; else `name` itself."""
    parts = name.split(".")
    candidates = (".".join(parts[:end]) for end in range(len(parts), 0, -1))
    return next((candidate for candidate in candidates if candidate in known), name)


@cache
def import_graph() -> dict[str, set[str]]:
    """Scanned module -> the names it imports (resolved to scanned modules where they are one)."""
    sources = scanned_sources()
    return {
        module: {resolve(name, sources) for name in imported_names(module, path)} - {module}
        for module, path in sources.items()
    }


def find_cycle(graph: Graph) -> list[str]:
    """One import loop as [a, b, ..., a], or [] when the graph has none (edges to unknown nodes ignored)."""
    visiting: list[str] = []
    finished: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in finished or node not in graph:
            return []
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        finished.add(node)
        return []

    return next((cycle for cycle in map(visit, sorted(graph)) if cycle), [])


def top_level(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_is_read_from_the_source():
    # Guards the checks below against passing on an empty or misread graph.
    graph = import_graph()
    assert "tools.policy_run" in graph["tools.plan"]
    assert "policy.rules" in graph["tools.policy_run"]
    assert "policy.rules.base" in graph["policy.rules.stack_wide"]  # a relative import
    assert "policy.rules" in graph["policy.__main__"]  # the pack's own entry point


def test_the_pack_imports_only_the_standard_library_and_pulumi_policy():
    allowed = set(sys.stdlib_module_names) | PACK_DEPENDENCIES | {"policy"}
    outside = sorted(
        f"{module} imports {name}"
        for module, names in import_graph().items()
        if top_level(module) == "policy"
        for name in names
        if top_level(name) not in allowed
    )
    assert outside == [], "the pack must run with only policy/requirements.txt installed"


def test_packages_import_only_the_packages_below_them():
    upward = sorted(
        f"{module} imports {name}"
        for module, names in import_graph().items()
        for name in names
        if top_level(name) in FIRST_PARTY - {top_level(module)} - MAY_IMPORT[top_level(module)]
    )
    assert upward == [], "dependencies point tools -> policy and tools -> components only"


def test_no_module_of_the_pack_or_the_tools_imports_itself_back():
    # With the layering above, a loop through these modules could only run inside policy/ and tools/.
    # (components/ has its own: config.py imports platform_checks.py inside a function.)
    pack_and_tools = {module: names for module, names in import_graph().items() if top_level(module) in LOOP_FREE}
    assert find_cycle(pack_and_tools) == []


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "outside"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_the_cycle_finder_reports_a_loop_and_only_a_loop(graph, cycle):
    assert find_cycle(graph) == cycle
