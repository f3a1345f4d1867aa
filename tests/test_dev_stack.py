"""`make dev` (scripts/dev.py) on this machine: everything comes up, /health is ok, Flower
answers, and Ctrl-C leaves no process behind. Once with embedded engines (no URLs), once
with the URLs of existing servers."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from scripts.engines import free_port
from shared.config import Settings
from tests.support.processes import BIN, ROOT, child_env


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen[-40:])}")


@pytest.mark.parametrize("engines", ["embedded", "given"])
def test_make_dev_runs_everything_and_stops_cleanly(
    engines: str, settings: Settings, tmp_path: Path
) -> None:
    api_port, flower_port = free_port(), free_port()
    extra = {
        "DEV_DATA_DIR": str(tmp_path / "data"),
        "API_PORT": str(api_port),
        "FLOWER_PORT": str(flower_port),
        "STANDIN": "1",
    }
    env = child_env(None, **extra)
    if engines == "given":
        env.update(DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL)
    dev = subprocess.Popen(
        [str(BIN / "python"), "-m", "scripts.dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_line(dev, "tabpfn-api is running", timeout=120)
        descendants = psutil.Process(dev.pid).children(recursive=True)
        names = {p.name() for p in descendants}
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["checks"] == {"database": "ok", "broker": "ok"}
        assert httpx.get(f"http://127.0.0.1:{flower_port}/", timeout=5).status_code == 200
        available = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/models/available", timeout=5)
        assert available.status_code == 200
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(60)
        finally:
            if dev.stdout is not None:
                dev.stdout.close()
    assert dev.returncode == 0
    time.sleep(0.5)
    left = [p.pid for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left behind: {left}"
    if engines == "embedded":
        assert any("postgres" in name for name in names) and any("redis" in name for name in names)
