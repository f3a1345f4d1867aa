"""Per-process worker resources, created after the prefork child starts.

A pooled database connection or HTTP keep-alive socket inherited across `fork()` is shared
by two processes and can hand one child another's response; so the parent creates none,
and each child builds its own in `init_process()` (called from `worker_process_init`). A
child of a worker that consumes the job queues also starts its engine there
(`worker.engine`); a worker that only runs sweeps and webhooks has none.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from prometheus_client import start_http_server

from shared import metrics
from shared.config import Settings, get_settings
from shared.db import Database
from shared.metrics import process_registry
from shared.queue import Publisher
from shared.redis_client import make_redis
from shared.security.crypto import SecretBox
from shared.tabpfn.adapter import TabPFNUpstream
from worker.budget import MemoryBudget
from worker.task_events import TaskEvents

if TYPE_CHECKING:
    from worker.engine import Engine

logger = logging.getLogger(__name__)
_M_ARENA_MAX = -8  # mallopt() parameter number, from glibc's malloc.h


@dataclass
class WorkerRuntime:
    """What a task needs besides its job id."""

    settings: Settings
    db: Database
    publisher: Publisher
    upstream: TabPFNUpstream
    redis: redis.Redis
    box: SecretBox
    budget: MemoryBudget
    events: TaskEvents
    pid: int
    engine: Engine | None = None


_runtime: WorkerRuntime | None = None
# Set in the worker's main process (worker_init) before it forks its children: whether this
# worker consumes a job queue, and so whether each child runs an engine; and the worker's
# node name, which its children's job runs carry in Flower (`worker.task_events`).
runs_jobs = True
hostname: str | None = None


def _limit_malloc_arenas() -> None:
    """Many slot threads make glibc open an allocator arena each, and freed payload memory
    then stays scattered over all of them; two arenas keep the resident size near the data."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)


def init_process(settings: Settings) -> WorkerRuntime:
    """Create this process's engine and broker publisher."""
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    _limit_malloc_arenas()
    concurrency = settings.WORKER_UPSTREAM_CONCURRENCY
    _runtime = WorkerRuntime(
        settings=settings,
        # Slots touch the database briefly (load, record, finish): a few connections serve many.
        db=Database(settings, label="worker", pool_size=2 + concurrency // 8),
        publisher=Publisher(settings),
        upstream=TabPFNUpstream(
            settings.TABPFN_API_URL,
            timeout_s=settings.TABPFN_TIMEOUT_S,
            settings_ttl_s=settings.UPSTREAM_SETTINGS_TTL_S,
            max_connections=max(concurrency * 2, 10),
        ),
        redis=make_redis(settings.REDIS_URL),
        box=SecretBox.from_settings(settings),
        budget=MemoryBudget(settings.WORKER_MEMORY_BUDGET_MB * 1024 * 1024),
        events=TaskEvents(settings, hostname),
        pid=os.getpid(),
    )
    metrics.MEMORY_BUDGET_BYTES.set(_runtime.budget.capacity)
    logger.debug("worker process %s initialised", _runtime.pid)
    return _runtime


def get_runtime() -> WorkerRuntime:
    """This process's runtime; built lazily where no prefork signal ran (or after a fork)."""
    if _runtime is None or _runtime.pid != os.getpid():
        return init_process(get_settings())
    return _runtime


def shutdown_process() -> None:
    """Stop the engine and release connections when the child exits."""
    global _runtime  # noqa: PLW0603
    if _runtime is not None and _runtime.pid == os.getpid():
        busy = 0
        if _runtime.engine is not None:
            _runtime.engine.stop()
            busy = _runtime.engine.in_flight
        _runtime.events.close()
        _runtime.db.dispose()
        _runtime.publisher.close()
        # Calls still in flight keep their connections until the process ends: closing them
        # would fail those calls and re-queue jobs whose work may already be upstream.
        if not busy:
            _runtime.upstream.close()
        _runtime.redis.close()
    _runtime = None


def beat_schedule_path() -> str:
    """Where beat keeps its small schedule file: outside the source tree, one per user."""
    folder = Path(tempfile.gettempdir()) / f"tabpfn-api-beat-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "celerybeat-schedule")


def serve_metrics(port: int) -> None:
    """Prometheus endpoint for this worker host (every child's samples, via the shared dir)."""
    start_http_server(port, registry=process_registry())
    logger.info("worker metrics on :%d/metrics", port)
