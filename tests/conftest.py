"""Session fixtures: real PostgreSQL, real Redis, the stand-in TabPFN server over HTTP, a real
Celery worker and beat, and the API app built from test settings.

Isolation: every test makes its own users (unique TabPFN tokens), and every query is scoped
to a user, so tests never see each other's data. Tests that break things (stop Redis, kill
workers) build a private stack with its own database and broker (`tests/support/stack.py`).
"""

from __future__ import annotations

import os
import tempfile

# Prometheus picks its multi-process mode when first imported: set the folder before any
# project import. The API (this process) and every worker child write there.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tabpfn-api-metrics-"))

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings
from shared.logs import JsonFormatter, setup_logging
from tests.support import secrets as secret_registry
from tests.support.api_server import ApiServer
from tests.support.processes import ManagedProcess, start_beat, start_worker
from tests.support.servers import PostgresServer, RedisServer
from tests.support.settings import make_settings
from tests.support.standin import StandinProcess

_session_dir: Path | None = None
_client_ips = itertools.count(1)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch space for the session: engine data and every process's log."""
    global _session_dir  # noqa: PLW0603 - read by pytest_sessionfinish for the secret scan
    _session_dir = tmp_path_factory.mktemp("session")
    (_session_dir / "logs").mkdir()
    return _session_dir


@pytest.fixture(scope="session")
def log_dir(session_dir: Path) -> Path:
    return session_dir / "logs"


@pytest.fixture(scope="session")
def postgres(session_dir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(session_dir)
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(session_dir)
    yield server
    server.close()


@pytest.fixture(scope="session")
def database_url(postgres: PostgresServer) -> str:
    """The session's database, migrated to head."""
    return postgres.create_migrated_database()


@pytest.fixture(scope="session")
def standin(log_dir: Path) -> Iterator[StandinProcess]:
    process = StandinProcess(log_dir)
    yield process
    process.close()


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_server: RedisServer, standin: StandinProcess, session_dir: Path
) -> Settings:
    return make_settings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_server.url(),
        TABPFN_API_URL=standin.url,
        BEAT_SCHEDULE_FILE=str(session_dir / "celerybeat-schedule"),
    )


@pytest.fixture(scope="session")
def api_log(log_dir: Path) -> Iterator[Path]:
    """Everything this (API) process logs also goes to api.log, for the secret scan."""
    path = log_dir / "api.log"
    # Configure the process's logging first: a later setup must not drop this handler.
    setup_logging("INFO", "json", label="api")
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()


@pytest.fixture(scope="session")
def app(settings: Settings, api_log: Path) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.context.close()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    """A client with its own address, so per-client rate limits never cross tests."""
    n = next(_client_ips)
    return TestClient(app, client=(f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", 40000))


@pytest.fixture(scope="session")
def worker(settings: Settings, log_dir: Path) -> Iterator[ManagedProcess]:
    """One real Celery worker (prefork, 2 children) for the whole session."""
    process = start_worker(settings, log_dir, name="session-worker", concurrency=2)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_server(settings: Settings, log_dir: Path) -> Iterator[ApiServer]:
    """The API under uvicorn on the session's database, broker and stand-in."""
    server = ApiServer(settings, log_dir, name="session-api")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def beat(settings: Settings, log_dir: Path) -> Iterator[ManagedProcess]:
    process = start_beat(settings, log_dir, name="session-beat")
    yield process
    process.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any token, key or secret handed out in it reached a log file."""
    if _session_dir is None:
        return
    leaks = secret_registry.leaks_in(_session_dir / "logs")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_sep("=", "SECRETS FOUND IN LOGS", red=True)
            for leak in sorted(set(leaks)):
                reporter.write_line(leak)
    elif reporter is not None:
        reporter.write_line(
            f"secret scan: {secret_registry.count()} secrets, none in the session's logs"
        )
