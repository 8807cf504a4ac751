"""The house rules of docs/architecture.md, checked on every import (module level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("models", "pipelines", "service", "seqcast")
TRAINING = ("pipelines.forecasting.pipeline", "pipelines.forecasting.search", "pipelines.forecasting.training",
            "pipelines.vision.pipeline")  # fmt: skip

# folder -> project modules it must not import (prefixes)
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
    "pipelines/retraining": ("pipelines.vision", "service", "seqcast"),
    "pipelines/settings.py": ("pipelines.", "models", "service", "seqcast"),
    "pipelines/seeding.py": ("pipelines.", "models", "service", "seqcast"),
    "service": ("seqcast", *TRAINING),  # the service reads the registry; it never trains
}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in PROJECT]


def breaches(folder: str, banned: tuple[str, ...], root: Path = ROOT) -> list[str]:
    target = root / folder
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert files, f"{folder} holds no Python files"
    out = []
    for path in files:
        for line, name in imports(path):
            if any(name == b.rstrip(".") or name.startswith(b if b.endswith(".") else b + ".") for b in banned):
                out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


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
