"""Per-process worker resources, created after the prefork child starts.

A pooled database connection or HTTP keep-alive socket inherited across `fork()` is shared
by two processes and can hand one child another's response; so the parent creates none,
and each child builds its own in `init_process()` (called from `worker_process_init`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis
from prometheus_client import start_http_server

from shared.config import Settings, get_settings
from shared.db import Database
from shared.metrics import process_registry
from shared.queue import Publisher
from shared.redis_client import make_redis
from shared.tabpfn.adapter import TabPFNUpstream

logger = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """What a task needs besides its job id."""

    settings: Settings
    db: Database
    publisher: Publisher
    upstream: TabPFNUpstream
    redis: redis.Redis
    pid: int


_runtime: WorkerRuntime | None = None


def init_process(settings: Settings) -> WorkerRuntime:
    """Create this process's engine and broker publisher."""
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    _runtime = WorkerRuntime(
        settings=settings,
        db=Database(settings, label="worker", pool_size=2),
        publisher=Publisher(settings),
        upstream=TabPFNUpstream(
            settings.TABPFN_API_URL,
            timeout_s=settings.TABPFN_TIMEOUT_S,
            settings_ttl_s=settings.UPSTREAM_SETTINGS_TTL_S,
        ),
        redis=make_redis(settings.REDIS_URL),
        pid=os.getpid(),
    )
    logger.debug("worker process %s initialised", _runtime.pid)
    return _runtime


def get_runtime() -> WorkerRuntime:
    """This process's runtime; built lazily where no prefork signal ran (or after a fork)."""
    if _runtime is None or _runtime.pid != os.getpid():
        return init_process(get_settings())
    return _runtime


def shutdown_process() -> None:
    """Release connections when the child exits."""
    global _runtime  # noqa: PLW0603
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.db.dispose()
        _runtime.publisher.close()
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
