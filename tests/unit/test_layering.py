"""The packages' layering, read from every import statement (parsed, never run).

reference_sim at the bottom; sandbox above it; the judge (judge/) above both; the features (features/)
on the reference alone; the agents above the judge and the features; the task benchmark (taskbench/) and
graph/ on top.  No library code imports benchmarks/ or
tests/, the harness shipped into the sandbox imports the standard library, numpy and itself only, and
no package's modules import each other in a circle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("reference_sim", "sandbox", "judge", "features", "agents", "taskbench", "graph")
NEVER_IMPORTED = ("benchmarks", "tests")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "reference_sim": ("sandbox", "judge", "features", "agents", "taskbench", "graph"),
    "sandbox": ("judge", "features", "agents", "taskbench", "graph"),
    "judge": ("features", "agents", "taskbench", "graph"),
    "features": ("sandbox", "judge", "agents", "taskbench", "graph"),
    "agents": ("taskbench", "graph"),
    "taskbench": ("graph",),
}
"""Per package, the packages its modules must not import."""
HARNESS = "judge.harness"
NO_CIRCLES = PACKAGES


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root`` by dotted name."""
    return {module_name(p, root): p for package in packages for p in sorted((root / package).rglob("*.py"))}


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import in the file, relative ones resolved; ``from X import y``
    names the submodule ``X.y`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in known else target), node.lineno


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, list[tuple[str, int]]]:
    known = library_modules(root, packages)
    return {name: list(imports(name, path, known)) for name, path in known.items()}


def top(module: str) -> str:
    return module.partition(".")[0]


def layering_problems(graph: Mapping[str, list[tuple[str, int]]]) -> list[str]:
    """Each import that breaks a rule: ``module:line imports target (why)``."""
    problems = []
    for name, found in graph.items():
        for target, line in found:
            if top(target) in NEVER_IMPORTED:
                problems.append(f"{name}:{line} imports {target} (library code never imports {top(target)}/)")
            elif top(target) in FORBIDDEN.get(top(name), ()):
                problems.append(f"{name}:{line} imports {target} ({top(name)} is below {top(target)})")
            elif (name == HARNESS or name.startswith(HARNESS + ".")) and not (
                    target == HARNESS or target.startswith(HARNESS + ".") or top(target) == "numpy"
                    or top(target) in sys.stdlib_module_names or target == "__future__"):
                problems.append(f"{name}:{line} imports {target} (the harness ships with the stdlib and numpy only)")
    return problems


def circles(graph: Mapping[str, list[tuple[str, int]]], package: str) -> list[list[str]]:
    """The import circles among ``package``'s modules (each strongly connected group of two or more, sorted)."""
    inside = {name: sorted({t for t, _ in found if t in graph and top(t) == package and t != name})
              for name, found in graph.items() if top(name) == package}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in inside[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(inside):
        if node not in index:
            visit(node)
    return sorted(groups)


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, int]]]:
    return import_graph(REPO_ROOT)


def test_every_package_is_scanned(graph: dict[str, list[tuple[str, int]]]) -> None:
    assert {top(name) for name in graph} == set(PACKAGES)
    assert {"judge.verifier", "judge.harness.harness", "taskbench.suite", "agents.coder"} <= set(graph)


def test_no_package_imports_one_above_it_or_benchmarks_or_tests(graph: dict[str, list[tuple[str, int]]]) -> None:
    assert layering_problems(graph) == []


@pytest.mark.parametrize("package", NO_CIRCLES)
def test_no_import_circle_inside(graph: dict[str, list[tuple[str, int]]], package: str) -> None:
    assert circles(graph, package) == []


@pytest.mark.parametrize(("file", "text", "problem"), [
    ("judge/compare.py", "from agents import planner\n",
     "judge.compare:1 imports agents.planner (judge is below agents)"),
    ("agents/coder.py", "import taskbench.suite\n",
     "agents.coder:1 imports taskbench.suite (agents is below taskbench)"),
    ("sandbox/base.py", "from judge import verifier\n",
     "sandbox.base:1 imports judge.verifier (sandbox is below judge)"),
    ("reference_sim/engine.py", "from sandbox import base\n",
     "reference_sim.engine:1 imports sandbox.base (reference_sim is below sandbox)"),
    ("taskbench/table2.py", "from benchmarks.bench_reference import side_by_side\n",
     "taskbench.table2:1 imports benchmarks.bench_reference (library code never imports benchmarks/)"),
    ("graph/run.py", "from tests import helpers\n", "graph.run:1 imports tests (library code never imports tests/)"),
    ("judge/harness/wire.py", "def f():\n    from reference_sim import contract\n",
     "judge.harness.wire:2 imports reference_sim.contract (the harness ships with the stdlib and numpy only)"),
])
def test_a_bad_import_is_named(tmp_path: Path, file: str, text: str, problem: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "judge" / "harness").mkdir()
    (tmp_path / "judge" / "harness" / "__init__.py").write_text("")
    for module in ("judge/verifier.py", "agents/planner.py", "sandbox/base.py", "reference_sim/contract.py"):
        (tmp_path / module).write_text("")
    (tmp_path / file).write_text(text)
    assert layering_problems(import_graph(tmp_path)) == [problem]


def test_a_circle_is_found(tmp_path: Path) -> None:
    (tmp_path / "taskbench").mkdir()
    (tmp_path / "taskbench" / "__init__.py").write_text("")
    (tmp_path / "taskbench" / "suite.py").write_text("def tasks():\n    from taskbench import probes\n")
    (tmp_path / "taskbench" / "probes.py").write_text("from .suite import tasks\n")
    (tmp_path / "taskbench" / "cli.py").write_text("from . import probes, suite\n")
    graph = import_graph(tmp_path, ("taskbench",))
    assert circles(graph, "taskbench") == [["taskbench.probes", "taskbench.suite"]]
