"""The house rules of docs/architecture.md, checked on every import (module level or inside a function), and
no import cycle among the project's modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("models", "pipelines", "service", "seqcast")
TRAINING = ("pipelines.forecasting.pipeline", "pipelines.forecasting.search", "pipelines.forecasting.training",
            "pipelines.vision.pipeline")  # fmt: skip

# folder or file -> project modules it must not import (prefixes); every project module is under one of them
FORBIDDEN = {
    "models": ("pipelines", "service", "seqcast"),
    "pipelines/forecasting": ("pipelines.vision", "pipelines.store", "service", "seqcast"),
    "pipelines/vision": ("pipelines.forecasting", "pipelines.store", "service", "seqcast"),
    "pipelines/tracking": (
        "pipelines.forecasting",
        "pipelines.vision",
        "pipelines.store",
        "models",
        "service",
        "seqcast",
    ),
    "pipelines/store": ("pipelines.vision", "pipelines.tracking", "models", "service", "seqcast", *TRAINING),
    "pipelines/process.py": ("pipelines.", "models", "service", "seqcast"),
    # the one module outside the task folders that names both tasks: their pyfunc classes, for old versions
    "pipelines/pyfunc_model.py": (
        "pipelines.store",
        "pipelines.retraining",
        "pipelines.tracking",
        "models",
        "service",
        "seqcast",
    ),
    "pipelines/__init__.py": ("pipelines.", "models", "service", "seqcast"),
    "pipelines/retraining": ("pipelines.vision", "service", "seqcast"),
    "pipelines/settings.py": ("pipelines.", "models", "service", "seqcast"),
    "pipelines/seeding.py": ("pipelines.", "models", "service", "seqcast"),
    "pipelines/logs.py": ("pipelines.", "models", "service", "seqcast"),
    "service": ("seqcast", *TRAINING),  # the service reads the registry; it never trains
    "seqcast": (),  # the command line may use everything
}
# folder -> the banned modules it may still import: the tag names, which import nothing (the store names its
# series' source with them)
EXCEPT = {"pipelines/store": ("pipelines.tracking.tags",)}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in PROJECT]


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p.rstrip(".") or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def breaches(folder: str, banned: tuple[str, ...], root: Path = ROOT) -> list[str]:
    target = root / folder
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert files, f"{folder} holds no Python files"
    out = []
    for path in files:
        for line, name in imports(path):
            if _under(name, banned) and not _under(name, EXCEPT.get(folder, ())):
                out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name)."""
    out = {}
    for top in PROJECT:
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _loads_by_name(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
        in ("import_module", "__import__")
        and node.args
    ]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports: ``from a.b import c`` is ``a.b.c`` when that is a module, else
    ``a.b``; ``importlib.import_module("a.b")`` with a literal name counts too."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        names = [name for _, name in imports(path)]
        for call in _loads_by_name(tree):  # the hidden kind: a module loaded by name
            if isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                names.append(call.args[0].value)
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected group of two or more modules, sorted (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_only_what_the_layout_allows(folder):
    assert breaches(folder, FORBIDDEN[folder]) == []


def test_the_check_sees_a_breach(tmp_path):
    (tmp_path / "pipelines" / "vision").mkdir(parents=True)
    (tmp_path / "pipelines" / "vision" / "x.py").write_text(
        "def f():\n    from pipelines.forecasting.data import Series\n"
    )
    assert breaches("pipelines/vision", FORBIDDEN["pipelines/vision"], tmp_path) == [
        "pipelines/vision/x.py:2 imports pipelines.forecasting.data.Series"
    ]


def test_every_project_module_is_under_a_rule():
    ruled = [ROOT / rule for rule in FORBIDDEN]
    loose = [
        str(path.relative_to(ROOT))
        for path in modules().values()
        if not any(path == rule or rule in path.parents for rule in ruled)
    ]
    assert loose == []


def test_no_import_cycles():
    graph = import_graph()
    assert {"models.builders", "pipelines.forecasting.pipeline", "service.app", "seqcast.cli"} <= set(graph)
    assert cycles(graph) == []


def test_modules_are_loaded_by_name_only_literally():
    """A name built at run time (``import_module(f"models.{name}")``) hides an edge from the cycle check."""
    computed = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in modules().values()
        for call in _loads_by_name(ast.parse(path.read_text()))
        if not isinstance(call.args[0], ast.Constant)
    ]
    assert computed == []


def test_the_check_sees_a_cycle(tmp_path):
    """Through a function-level import and a module loaded by name, as the hidden ones were."""
    for top in PROJECT:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / "models" / "a.py").write_text("import importlib\n\nimportlib.import_module('models.b')\n")
    (tmp_path / "models" / "b.py").write_text("def f():\n    from models.a import g\n")
    (tmp_path / "models" / "c.py").write_text("from models import b\n")
    graph = import_graph(tmp_path)
    assert graph["models.c"] == {"models.b"}
    assert cycles(graph) == [["models.a", "models.b"]]
