"""The layers import only downward, and no two modules import each other.

The order is the README's ("Code layout"): a module may import its own layer and
the layers below it, never one above. Every import counts, including imports
inside functions and under TYPE_CHECKING: a deferred import still ties the lower
layer to the upper one, which is what makes a codebase hard to read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deerid"

# Lowest first. Same-layer imports are allowed; the domain stays free of the database,
# and the adapters (tasks, api, cli, report) are the only ones that know Celery/FastAPI/Typer.
LAYERS: list[tuple[str, ...]] = [
    ("core", "errors"),
    ("domain",),
    ("db",),
    ("ingest", "embed"),
    ("store",),
    ("export", "registry", "reid", "evaluation"),
    ("dispatch", "app"),
    ("pipeline", "training"),
    ("tasks", "report"),
    ("api", "cli", "__main__"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every deerid module `path` imports, anywhere in the file."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from deerid.embed import backbones` imports a module, not only a name
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "deerid" or name.startswith("deerid.")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.parts}
    edges = {}
    for name, path in modules.items():
        edges[name] = {i for i in imports_of(path) if i in modules and i != name}
    return edges


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for importer, imported in sorted(edges.items()):
        low = layer(importer)
        for target in sorted(imported):
            high = layer(target)
            if low in RANK and high in RANK and RANK[high] > RANK[low]:
                found.append(f"{importer} imports {target} ({low} is below {high})")
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            # a package's __init__ re-exporting its own modules is not a cycle between modules
            if len(component) > 1 and not _package_and_its_modules(component):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _package_and_its_modules(component: list[str]) -> bool:
    shortest = min(component, key=len)
    return all(m == shortest or m.startswith(shortest + ".") for m in component) and len(component) == 2


def test_every_top_level_module_has_a_layer() -> None:
    tops = {layer(name) for name in graph()} - {None}
    assert tops <= set(RANK), f"give these a layer in LAYERS and the README: {sorted(tops - set(RANK))}"


def test_no_layer_imports_one_above_it() -> None:
    assert upward_imports(graph()) == []


def test_no_two_modules_import_each_other() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    ("importer", "target"),
    [("deerid.store.deer", "deerid.api.schemas"), ("deerid.domain.matching", "deerid.db.tables")],
)
def test_an_upward_import_is_caught(importer: str, target: str) -> None:
    """The checker itself: a planted upward import must be reported."""
    edges = graph()
    edges[importer] = {*edges.get(importer, set()), target}
    assert any(line.startswith(f"{importer} imports {target}") for line in upward_imports(edges))


def test_a_cycle_is_caught() -> None:
    edges = graph()
    edges["deerid.core.paths"] = {*edges["deerid.core.paths"], "deerid.core.files"}
    edges["deerid.core.files"] = {*edges["deerid.core.files"], "deerid.core.paths"}
    assert ["deerid.core.files", "deerid.core.paths"] in cycles(edges)
