"""The container setup as documented (issue 10, point 8): an empty PROMETHEUS_MULTIPROC_DIR,
as `.env.example` copied into compose gives, means unset (metrics stay in the process, no
file lands in the working directory), compose publishes Flower on loopback only, and the
Dockerfiles and compose say what test_container_path.py runs: an unprivileged user, the
images' env, the documented commands. (That test runs them.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.container import Dockerfile
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


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker"])
def test_the_images_run_as_an_unprivileged_user_with_their_env(name: str) -> None:
    image = Dockerfile.read(name)
    assert image.user and image.user not in ("root", "0")
    text = (ROOT / name).read_text()
    assert f"useradd --create-home --uid 10001 {image.user}" in text
    assert image.workdir == "/app"
    # Metrics go to a folder of the user's (compose mounts a tmpfs there per container), and
    # uvicorn trusts no proxy unless the deployment names one (api/proxies.py).
    assert image.env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert f"mkdir -p /tmp/metrics && chown {image.user} /tmp/metrics" in text
    assert image.env["FORWARDED_ALLOW_IPS"] == ""
    assert image.env["PATH"].startswith(image.env["UV_PROJECT_ENVIRONMENT"] + "/bin:")
    assert image.copies == Dockerfile.read("Dockerfile.api").copies


def test_the_images_run_the_documented_commands() -> None:
    """DESIGN §3, minus `uv run` (the images put their virtualenv first on PATH)."""
    assert Dockerfile.read("Dockerfile.api").cmd == [
        "uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"
    ]  # fmt: skip
    worker = ["celery", "-A", "worker.celery_app", "worker", "--loglevel=INFO"]
    assert Dockerfile.read("Dockerfile.worker").cmd == worker
    compose = (ROOT / "docker-compose.yml").read_text()
    # Each worker service runs the image's command with only its queues and concurrency added.
    commands = [json.loads(found) for found in re.findall(r"command: (\[[^\]]*\])", compose)]
    workers = [command for command in commands if command[: len(worker)] == worker]
    assert len(workers) == 3
    for command in workers:
        added = command[len(worker) :]
        assert added[:2] == ["-Q", added[1]] and all(
            option.startswith("--concurrency=") for option in added[2:]
        ), command
    for command in (["alembic", "upgrade", "head"], ["celery", "-A", "worker.celery_app", "beat"]):
        assert command in commands


def test_compose_gives_each_container_its_metrics_folder_and_the_proxy_setting() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    anchor = compose.split("x-worker-image:")[0]
    assert "env_file: .env" in anchor and "- /tmp/metrics" in anchor
    api = compose.split("\n  api:\n")[1].split("\n  worker:\n")[0]
    assert "FORWARDED_ALLOW_IPS: ${FORWARDED_ALLOW_IPS:-}" in api
