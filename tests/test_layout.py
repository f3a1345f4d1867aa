"""The import rules of DESIGN §2: shared/ is below both; the API never imports the worker."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"shared": {"api", "worker"}, "api": {"worker"}, "worker": {"api"}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (bad := imported_top_levels(path) & FORBIDDEN[package])
    ]
    assert offenders == []


def test_only_the_adapter_imports_tabpfn_client() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in ("api", "worker", "shared")
        for path in (ROOT / package).rglob("*.py")
        if "tabpfn_client" in imported_top_levels(path)
    )
    assert importers == ["shared/tabpfn/adapter.py"]


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Guard the guard: a file that imports worker is reported."""
    module = tmp_path / "bad.py"
    module.write_text("from worker.tasks import sweep\nimport api.main\n")
    assert imported_top_levels(module) >= {"worker", "api"}


def test_layout_has_every_top_level_entry() -> None:
    expected = [
        "api",
        "worker",
        "shared",
        "tests",
        "migrations",
        "alembic.ini",
        "pyproject.toml",
        "Dockerfile.api",
        "Dockerfile.worker",
        "docker-compose.yml",
        ".env.example",
        "README.md",
        "Makefile",
        ".ci/run",
        "docs",
        "uv.lock",
    ]
    assert [name for name in expected if not (ROOT / name).exists()] == []
