"""The container setup as documented (issue 10, point 8): an empty PROMETHEUS_MULTIPROC_DIR,
as `.env.example` copied into compose gives, means unset (metrics stay in the process, no
file lands in the working directory), and compose publishes Flower on loopback only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT, child_env

SCRIPT = """
import shared.metrics as m
m.JOBS_CREATED.labels("fit").inc()
m.UPSTREAM_IN_FLIGHT.set(3)
print(m.multiprocess_enabled())
"""


def test_an_empty_multiprocess_dir_writes_nothing_to_the_working_directory(
    tmp_path: Path,
) -> None:
    env = child_env(None, PROMETHEUS_MULTIPROC_DIR="", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_env_example_leaves_the_multiprocess_dir_to_the_images() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert not [line for line in lines if line.startswith("PROMETHEUS_MULTIPROC_DIR=")]


def test_compose_publishes_flower_on_loopback_only() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    published = [line.strip() for line in compose.splitlines() if "5555:5555" in line]
    assert published == ['- "127.0.0.1:5555:5555"']
