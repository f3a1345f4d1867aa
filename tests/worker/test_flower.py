"""Flower for operators: behind basic auth outside development, refusing to start without it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from scripts.engines import free_port
from shared.config import Settings
from tests.support.processes import BIN, ROOT, ManagedProcess, child_env


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
