"""The client's tests need the API at a real URL: the CLI runs as a subprocess, and the
client is a plain HTTP client. So the session's settings are served by a real uvicorn on a
free port (its log joins the session's, for the secret scan), with the session's worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.engines import free_port
from shared.config import Settings
from tabpfn_api_client import Client
from tests.support import secrets as secret_registry
from tests.support.builders import new_token
from tests.support.processes import BIN, ManagedProcess, child_env


@pytest.fixture(scope="session")
def api_url(settings: Settings, log_dir: Path, worker: ManagedProcess) -> Iterator[str]:
    """`uvicorn api.main:app` on 127.0.0.1, as DESIGN §3 runs it; its base URL."""
    port = free_port()
    args = [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess("client-api", args, child_env(settings), log_dir / "client-api.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.popen.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"the API did not start:\n{process.tail()}")
        time.sleep(0.2)
    yield url
    process.stop()


@pytest.fixture
def api_key(api_url: str) -> str:
    """A new user's API key, made through the client's own `setup`."""
    with Client(api_url) as anonymous:
        result = anonymous.setup(new_token())
    secret_registry.remember(result.webhook_secret, "webhook secret")
    return secret_registry.remember(result.api_key, "API key")


@pytest.fixture
def remote(api_url: str, api_key: str) -> Iterator[Client]:
    """A client of the real API, as that new user."""
    with Client(api_url, api_key) as client:
        yield client
