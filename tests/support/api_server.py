"""The API as a real process: `uvicorn api.main:app` (DESIGN §3) on a free port.

Tests that need what only a real server shows (many requests at once on one event loop,
a client generated from the served OpenAPI, a shell walkthrough with curl) start one here.
Its log goes to the session's log folder, so the secret scan reads it too.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from scripts.engines import free_port
from shared.config import Settings
from tests.support.processes import BIN, ManagedProcess, child_env


class ApiServer:
    """A uvicorn process serving `api.main:app` with these settings."""

    def __init__(self, settings: Settings, log_dir: Path, *, name: str = "api") -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
        self.process = ManagedProcess(name, args, child_env(settings), log_dir / f"{name}.log")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.process.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.process.stop()
        raise RuntimeError(f"{name} did not answer /health:\n{self.process.tail()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()
