"""Flower for operators: behind basic auth outside development, refusing to start without it,
and showing each run of a job as a task with its true outcome (issue 10, point 10)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from scripts.engines import free_port
from shared.config import Settings
from tests.support.builders import classification_data, fit, register, wait_for_job
from tests.support.processes import BIN, ROOT, ManagedProcess, child_env

AUTH = ("ops", "s3cret-pass")


def wait_until_up(url: str, process: ManagedProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, process.tail()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(process.tail())


def test_flower_requires_credentials(settings: Settings, log_dir: Path) -> None:
    port = free_port()
    env = child_env(settings, ENVIRONMENT="production", FLOWER_BASIC_AUTH="ops:s3cret-pass")
    args = [
        str(BIN / "celery"),
        "-A",
        "worker.celery_app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
    ]
    flower = ManagedProcess("flower", args, env, log_dir / "flower.log")
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, flower)
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "s3cret-pass"), timeout=5).status_code == 200
    finally:
        flower.stop()


def test_flower_will_not_start_unprotected_outside_development(settings: Settings) -> None:
    result = subprocess.run(
        [str(BIN / "celery"), "-A", "worker.celery_app", "flower", f"--port={free_port()}"],
        cwd=ROOT,
        env=child_env(settings, ENVIRONMENT="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr and "Traceback" not in result.stderr


def flower_tasks(url: str, search: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{url}api/tasks", params={"search": search}, auth=AUTH, timeout=10)
    response.raise_for_status()
    tasks: dict[str, dict[str, Any]] = response.json()
    return tasks


def wait_for_run(
    url: str, job_id: str, state: str, *, attempt: int = 1, timeout: float = 60
) -> dict[str, Any]:
    """Until Flower lists that run of the job in `state`; returns every task the job's id
    finds (its runs and the messages that woke a worker for it)."""
    deadline = time.monotonic() + timeout
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        found = flower_tasks(url, job_id)
        if found.get(f"{job_id}-attempt-{attempt}", {}).get("state") == state:
            return found
        time.sleep(0.3)
    raise TimeoutError(f"Flower never showed job {job_id} as {state}: {found}")


@pytest.fixture
def flower(settings: Settings, log_dir: Path, worker: ManagedProcess) -> Iterator[str]:
    """Flower on the session's broker, listening to events (it has heard the worker)."""
    port = free_port()
    env = child_env(settings, FLOWER_BASIC_AUTH=":".join(AUTH))
    args = [str(BIN / "celery"), "-A", "worker.celery_app", "flower", f"--port={port}"]
    process = ManagedProcess(
        "flower-jobs", [*args, "--address=127.0.0.1"], env, log_dir / "flower-jobs.log"
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, process)
        deadline = time.monotonic() + 60
        while not any(
            name.startswith("session-worker@")
            for name in httpx.get(f"{url}api/workers?status=true", auth=AUTH, timeout=10).json()
        ):
            assert time.monotonic() < deadline, "Flower never heard the worker's heartbeat"
            time.sleep(0.3)
        yield url
    finally:
        process.stop()


def test_flower_shows_each_job_run_with_its_true_state(client: TestClient, flower: str) -> None:
    """Found by its job id: a job the stand-in refuses is a FAILURE with its error code, a job
    that works is a SUCCESS, each retried attempt a RETRY; the message that only woke a worker
    is not listed at all (a SUCCESS beside a failed job would lie)."""
    X, y, _, _ = classification_data(n_train=40)
    good, refused = register(client), register(client, prefix="overquota")
    flaky = register(client, prefix="flaky")  # two 503s on the submit, then it works
    good_job, refused_job = fit(client, good, X, y)["id"], fit(client, refused, X, y)["id"]
    flaky_job = fit(client, flaky, X, y)["id"]
    assert wait_for_job(client, refused, refused_job)["status"] == "failed"
    assert wait_for_job(client, good, good_job)["status"] == "succeeded"
    assert wait_for_job(client, flaky, flaky_job)["attempts"] == 3

    found = wait_for_run(flower, refused_job, "FAILURE")
    run = found[f"{refused_job}-attempt-1"]
    assert run["name"] == "job.fit"
    assert refused_job in run["args"] and "'attempt': 1" in run["kwargs"]
    assert "TABPFN_QUOTA_EXCEEDED" in run["exception"]
    assert run["worker"].startswith("session-worker@")
    assert run["started"] and run["received"]
    assert {task["name"] for task in found.values()} == {"job.fit"}
    assert {task["state"] for task in found.values()} == {"FAILURE"}

    run = wait_for_run(flower, good_job, "SUCCESS")[f"{good_job}-attempt-1"]
    assert run["name"] == "job.fit" and run["worker"].startswith("session-worker@")
    assert run["runtime"] is not None and run["runtime"] >= 0

    found = wait_for_run(flower, flaky_job, "SUCCESS", attempt=3)
    for attempt in (1, 2):
        retried = found[f"{flaky_job}-attempt-{attempt}"]
        assert retried["state"] == "RETRY" and "UPSTREAM_UNAVAILABLE" in retried["exception"]
