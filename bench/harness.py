"""The stack a benchmark runs on: embedded PostgreSQL (durable, fsync on) and Redis, the
stand-in TabPFN server with a fixed latency, the API under uvicorn, and Celery workers —
the same processes and commands as production, on this machine."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from alembic import command

from scripts.engines import EmbeddedPostgres, EmbeddedRedis, free_port
from shared.config import Settings
from tests.support.processes import BIN, ManagedProcess, child_env, start_worker
from tests.support.servers import alembic_config
from tests.support.settings import make_settings
from tests.support.standin import StandinProcess


class BenchStack:
    """Everything a benchmark needs; `close()` stops it all and removes its data."""

    def __init__(
        self, *, latency_ms: float = 0.0, standin_args: tuple[str, ...] = (), **overrides: Any
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tabpfn-bench-"))
        self.logs = self.root / "logs"
        self.postgres = EmbeddedPostgres(self.root / "postgres")
        self.postgres.start()
        self.postgres.create_database("bench")
        self.redis = EmbeddedRedis(self.root / "redis", persistent=False)
        self.redis.start()
        self.standin = StandinProcess(self.logs, "--latency-ms", str(latency_ms), *standin_args)
        values: dict[str, Any] = {
            "DATABASE_URL": self.postgres.url("bench"),
            "REDIS_URL": self.redis.url(),
            "TABPFN_API_URL": self.standin.url,
            "ENVIRONMENT": "production",
            "LOG_FORMAT": "json",
            "BCRYPT_ROUNDS": 12,
            "RATE_LIMIT_JOBS_PER_MINUTE": 1_000_000,
            "RATE_LIMIT_SETUP_PER_MINUTE": 1_000_000,
            "JOB_LEASE_S": 60.0,
            "JOB_HEARTBEAT_S": 15.0,
            "SWEEP_INTERVAL_S": 15.0,
            "MAX_UPLOAD_BYTES": 512 * 1024 * 1024,
            "DB_POOL_SIZE": 10,
            "BEAT_SCHEDULE_FILE": str(self.root / "beat-schedule"),
        }
        values.update(overrides)
        self.settings: Settings = make_settings(**values)
        command.upgrade(alembic_config(self.settings.DATABASE_URL), "head")
        self.processes: list[ManagedProcess] = []

    def serve(
        self,
        app: str,
        *,
        name: str,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> str:
        """Run `uvicorn <app>` (one process, as DESIGN §3) and return its base URL; `cwd`
        serves it from another checkout (e.g. the code a change started from)."""
        port = free_port()
        args = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
        env = child_env(self.settings, **(extra_env or {}))
        log = self.logs / f"{name}.log"
        process = ManagedProcess(name, args, env, log, **({"cwd": cwd} if cwd else {}))
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code in (200, 404):
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not start:\n{process.tail()}")

    def worker(
        self, concurrency: int, name: str, extra_env: dict[str, str] | None = None
    ) -> ManagedProcess:
        process = start_worker(
            self.settings, self.logs, name=name, concurrency=concurrency, extra_env=extra_env
        )
        self.processes.append(process)
        return process

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        self.processes.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.standin.close()
        self.redis.stop()
        self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def register(api_url: str, token: str) -> str:
    """A user and its API key."""
    response = httpx.post(f"{api_url}/api/v1/auth/setup", json={"tabpfn_token": token}, timeout=30)
    response.raise_for_status()
    key: str = response.json()["api_key"]
    return key


def wait_for_job(
    api_url: str, key: str, job_id: str, *, poll_s: float = 0.01, timeout: float = 600
) -> dict[str, Any]:
    """Poll like a client would, returning the finished job."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                return job
            time.sleep(poll_s)
    raise TimeoutError(job_id)
