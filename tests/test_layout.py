"""The import rules of DESIGN §2: shared/ is below both; the API never imports the worker;
the Python client (client/) talks to the service over HTTP only, so it imports none of the
service's packages, and the service never depends on its client."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE = {"api", "worker", "shared", "scripts", "tests", "bench", "migrations"}
CLIENT = "tabpfn_api_client"
FORBIDDEN = {
    "shared": {"api", "worker", CLIENT},
    "api": {"worker", CLIENT},
    "worker": {"api", CLIENT},
    "client": SERVICE,
}


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


def test_the_client_is_a_distribution_of_its_own() -> None:
    """Installable alone (`pip install ./client`), with its version said once, statically
    (the images read its metadata without building it)."""
    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert project["name"] == "tabpfn-api-client"
    assert "version" not in project.get("dynamic", [])
    assert sorted(d.split(">")[0] for d in project["dependencies"]) == ["httpx", "numpy"]
    version_file = ROOT / "client" / "src" / CLIENT / "_version.py"
    assert f'__version__ = "{project["version"]}"' in version_file.read_text()
    assert (ROOT / "client" / "src" / CLIENT / "py.typed").exists()


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
        "client",
    ]
    assert [name for name in expected if not (ROOT / name).exists()] == []
