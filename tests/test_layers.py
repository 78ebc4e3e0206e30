"""The package's layers, read from the source: step packages import only downward, no import circle, the
simulator stays out of production steps, and no module grows past about 300 lines.

Function-level imports count too: a circle closed inside a function still ties two modules to each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top: a module imports its own layer or the ones below, never above (docs/architecture.md).
LAYERS = [
    {"ml.config", "ml.errors", "ml.storage", "ml.progress", "ml.writer_lock", "ml.day_pins"},
    {"ml.privacy", "ml.deploy"},
    {"ml.ingest"},
    {"ml.registry"},
    {"ml.warehouse"},
    {"ml.propensity", "ml.clusters"},
    {"ml.uplift"},
    {"ml.monitoring", "ml.forecasts"},
    {"ml.targeting"},
    {"ml.pipeline", "ml.summary", "ml.forget"},
    {"ml.sim"},
    {"ml.bench", "ml.__main__", "ml.commands"},
]
# The synthetic shop serves as the demo source (SHOP_SOURCE=simulate): the daily landing and the history
# build call it for a missing export day. The only upward imports, and only of the shop itself.
DEMO_SOURCE = {"ml.sim.run", "ml.sim.shop"}
SERVES_THE_DEMO_SOURCE = {"ml.pipeline", "ml.warehouse.history"}
MAX_LINES = 320


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports() -> dict[str, set[str]]:
    """Every ml module and the ml modules it imports, anywhere in its file."""
    graph = {}
    for path in sorted((ROOT / "ml").rglob("*.py")):
        module = module_name(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        graph[module] = imported_ml_modules(path, package)
    return graph


def layer(module: str) -> int:
    """The layer of a module: that of its top-level package or module."""
    top = ".".join(module.split(".")[:2])
    found = [i for i, members in enumerate(LAYERS) if top in members]
    assert found, f"{module} is in no layer: add its package to LAYERS"
    return found[0]


def imported_ml_modules(path: Path, package: str = "ml") -> set[str]:
    """`import ml.x`, `from ml.x import y`, `from ml import x` and `from . import x` / `from .x import y`
    (relative to `package`, the package the file is in)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ml.")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative to the file's package
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{module}" if module else base
            if module == "ml" or (node.level and not node.module):
                found |= {f"{module}.{alias.name}" for alias in node.names}
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
    assert imported_ml_modules(source, "ml.sim") == {"ml.a", "ml.b", "ml.c", "ml.d", "ml.sim.e", "ml.sim.f"}


def test_the_circle_check_finds_a_circle():
    assert circles({"ml.a": {"ml.b"}, "ml.b": {"ml.c"}, "ml.c": {"ml.a"}}) == [["ml.a", "ml.b", "ml.c", "ml.a"]]


def test_step_packages_import_only_downward():
    upward = [
        f"{module} -> {imported}"
        for module, imported_modules in imports().items()
        for imported in imported_modules
        if layer(imported) > layer(module) and not (imported in DEMO_SOURCE and module in SERVES_THE_DEMO_SOURCE)
    ]
    assert upward == []


def test_the_layer_check_finds_an_upward_import():
    assert layer("ml.targeting.plan") > layer("ml.warehouse.builds") > layer("ml.config")
    assert layer("ml.sim.loop") > layer("ml.pipeline")


def test_production_steps_never_import_the_simulator():
    users = {
        module
        for module, imported in imports().items()
        if any(i.startswith(("ml.sim", "ml.bench")) for i in imported - DEMO_SOURCE)
    }
    assert all(layer(module) >= layer("ml.sim") for module in users), users
    demo = {
        module for module, imported in imports().items() if imported & DEMO_SOURCE and layer(module) < layer("ml.sim")
    }
    assert demo == SERVES_THE_DEMO_SOURCE
    dag_imports = set().union(*(imported_ml_modules(path) for path in (ROOT / "dags").glob("*.py")))
    assert dag_imports and not any(i.startswith(("ml.sim", "ml.bench")) for i in dag_imports)


def test_no_module_reaches_into_another_modules_private_names():
    reaches = []
    for path in [*(ROOT / "ml").rglob("*.py"), *(ROOT / "dags").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml"):
                reaches += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert reaches == []


def test_no_module_is_longer_than_about_300_lines():
    long = {
        module_name(p): n for p in (ROOT / "ml").rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
