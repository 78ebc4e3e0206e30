"""The package's layers, read from the source: no import circle, and the simulator stays out of production steps.

Function-level imports count too: a circle closed inside a function still ties two modules to each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The synthetic shop and what reads its hidden truth: production steps never need them.
SIMULATOR = {"ml.simulate", "ml.policy_truth", "ml.loop", "ml.bench"}
# Who may import them: each other, the CLI, and the two places the demo source (SHOP_SOURCE=simulate) is served.
MAY_USE_SIMULATOR = SIMULATOR | {"ml.__main__", "ml.pipeline", "ml.history"}


def imports() -> dict[str, set[str]]:
    """Every ml module and the ml modules it imports, anywhere in its file."""
    graph = {}
    for path in sorted((ROOT / "ml").glob("*.py")):
        graph[f"ml.{path.stem}"] = imported_ml_modules(path)
    return graph


def imported_ml_modules(path: Path) -> set[str]:
    """`import ml.x`, `from ml.x import y`, `from ml import x` and `from . import x` / `from .x import y`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ml.")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: inside the ml package
                module = f"ml.{module}" if module else "ml"
            if module == "ml":
                found |= {f"ml.{alias.name}" for alias in node.names}
            elif module.startswith("ml."):
                found.add(module)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles, each as the path that closes it (depth-first search, one per back edge)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                found.append([*path[path.index(child) :], child])
            elif child not in state:
                visit(child, [*path, child])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_two_modules_import_each_other_directly_or_round_a_loop():
    graph = imports()
    assert len(graph) > 30
    assert circles(graph) == []


def test_the_checks_read_every_form_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import ml.a\nfrom ml.b import x\nfrom ml import c, d\nfrom . import e\nfrom .f import g\n")
    assert imported_ml_modules(source) == {"ml.a", "ml.b", "ml.c", "ml.d", "ml.e", "ml.f"}


def test_the_circle_check_finds_a_circle():
    assert circles({"ml.a": {"ml.b"}, "ml.b": {"ml.c"}, "ml.c": {"ml.a"}}) == [["ml.a", "ml.b", "ml.c", "ml.a"]]


def test_production_steps_never_import_the_simulator():
    users = {module for module, imported in imports().items() if imported & SIMULATOR}
    assert users <= MAY_USE_SIMULATOR, users - MAY_USE_SIMULATOR
    dag_imports = set().union(*(imported_ml_modules(path) for path in (ROOT / "dags").glob("*.py")))
    assert dag_imports and not dag_imports & SIMULATOR
