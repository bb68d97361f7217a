"""The package's import graph (every import, module level and inside functions): no cycle,
no import pointing up the flow, and no module leaning on too many package siblings."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).parents[1] / "pytest_plmtransfer"
#: the flow, top to bottom: a module may import its own tier or a lower one, never a higher one
TIERS = {
    "plugin": 4,
    "testing": 4,
    "hookspecs": 4,
    "report": 3,
    "run": 3,
    "judge": 2,
    "plan": 2,
    "options": 1,
    "results": 1,
    "measure": 1,
    "models": 1,
    "tasks": 1,
    "infra": 0,
    "": 0,  # the package's __init__ (its version)
}
MAX_SIBLINGS = 8
#: the places where the stages meet, allowed more (and no more than they have today)
COMPOSITION_ROOTS = {
    "plugin": 12,  # the pytest entry point: each hook hands over to one stage
    "run.stages": 17,  # builds every stage of a process from its options
    "report.cli": 10,  # one subcommand per report, merge and scaffold
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        if not name.startswith("benchmarks"):  # the shipped suite: test files, imported by pytest
            found[name] = path
    return found


def _imports(tree: ast.AST, typing_only: bool = False):
    """(import node, whether it sits under ``if TYPE_CHECKING:``) for every import of a module,
    at module level and inside functions."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        under = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        yield from _imports(node, typing_only or under)


def import_graph() -> nx.DiGraph:
    """Module -> module edges; ``runtime`` is False for an import made for type checkers only."""
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, typing_only in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*filter(None, base), *([node.module] if node.module else [])])
                elif (node.module or "").startswith("pytest_plmtransfer"):
                    module = (node.module or "").removeprefix("pytest_plmtransfer").lstrip(".")
                else:
                    continue
                # `from package import name`: the submodule when name is one, else the package
                package_module = importlib.import_module(f"pytest_plmtransfer.{module}".rstrip("."))
                targets = [
                    f"{module}.{a.name}".lstrip(".")
                    if inspect.ismodule(getattr(package_module, a.name, None))
                    else module
                    for a in node.names
                ]
            else:
                targets = [a.name.removeprefix("pytest_plmtransfer").lstrip(".") for a in node.names]
                targets = [t for t, a in zip(targets, node.names) if a.name.startswith("pytest_plmtransfer")]
            for target in targets:
                if target != name and target in modules:
                    runtime = graph.edges[name, target]["runtime"] if graph.has_edge(name, target) else False
                    graph.add_edge(name, target, runtime=runtime or not typing_only)
    return graph


def _tier(module: str) -> int:
    return TIERS[module.split(".")[0]]


def test_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in sorted(cycles, key=len))


def test_imports_point_down_the_flow():
    upward = [(a, b) for a, b in import_graph().edges if _tier(b) > _tier(a)]
    assert not upward, "imports pointing up the flow:\n" + "\n".join(f"{a} -> {b}" for a, b in sorted(upward))


def test_no_module_leans_on_more_than_a_few_siblings():
    """Counted: what a module imports to run, beside infra/ (the package's own standard library:
    errors, locks, atomic writes, hashing); imports for type checkers only are not dependencies."""
    graph = import_graph()
    leans = {m: sorted(t for t in graph.successors(m) if graph.edges[m, t]["runtime"] and _tier(t) > 0) for m in graph}
    heavy = {m: found for m, found in leans.items() if len(found) > COMPOSITION_ROOTS.get(m, MAX_SIBLINGS)}
    assert not heavy, "\n".join(f"{m} imports {len(d)}: {', '.join(d)}" for m, d in sorted(heavy.items()))


@pytest.mark.parametrize("tier", sorted(set(TIERS) - {""}))
def test_every_top_level_name_is_placed_in_the_flow(tier):
    assert (PACKAGE / tier).is_dir() or (PACKAGE / f"{tier}.py").is_file()
