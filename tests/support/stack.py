"""A private stack for tests that break things: its own database, its own Redis (which the
test may stop and restart), its own API app, worker(s) and beat.

Nothing of it is shared with the session stack, so the session's sweeper never touches its
jobs and its faults never reach other tests.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from scripts.engines import EmbeddedRedis
from shared.config import Settings
from tests.support.processes import ManagedProcess, start_beat, start_worker
from tests.support.servers import PostgresServer
from tests.support.settings import make_settings

_counter = itertools.count(1)


@dataclass
class Stack:
    settings: Settings
    app: FastAPI
    redis: EmbeddedRedis
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def client(self) -> TestClient:
        return TestClient(self.app, client=(f"192.0.2.{next(_counter) % 250 + 1}", 40000))

    def start_worker(
        self, *, concurrency: int = 1, name: str | None = None, queues: str | None = None
    ) -> ManagedProcess:
        process = start_worker(
            self.settings,
            self.log_dir,
            name=name or f"worker{next(_counter)}",
            concurrency=concurrency,
            queues=queues,
        )
        self.processes.append(process)
        return process

    def start_beat(self) -> ManagedProcess:
        process = start_beat(self.settings, self.log_dir, name=f"beat{next(_counter)}")
        self.processes.append(process)
        return process


@contextlib.contextmanager
def private_stack(
    postgres: PostgresServer, base: Settings, log_dir: Path, tmp_path: Path, **overrides: Any
) -> Iterator[Stack]:
    """A fresh database and Redis with an app on them; every process stopped at the end."""
    redis = EmbeddedRedis(tmp_path / "redis", persistent=True)
    redis.start()
    values: dict[str, Any] = {
        "DATABASE_URL": postgres.create_migrated_database("tabpfn_stack"),
        "REDIS_URL": redis.url(),
        "TABPFN_API_URL": base.TABPFN_API_URL,
        "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    values.update(overrides)
    settings = make_settings(**values)
    app = create_app(settings)
    stack = Stack(settings=settings, app=app, redis=redis, log_dir=log_dir)
    try:
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop()
        app.state.context.close()
        redis.stop()
