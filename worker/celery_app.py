"""The Celery app the CLI loads: `celery -A worker.celery_app worker|beat|flower`.

Configured in the open (DESIGN §6.2): explicit queues, late acks, prefetch 1, requeue on a
lost worker, time limits below the Redis visibility timeout, no result backend (Postgres is
the result store). Per-process resources (database engine, TabPFN HTTP client, and the
engine that holds many upstream calls) are created after the prefork child starts, never
inherited from the parent.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, signals

from shared.config import ConfigError, get_settings
from shared.logs import setup_logging
from shared.queue import JOB_QUEUES, QueueName, TaskName, celery_config
from worker import engine, runtime

settings = get_settings()


def _require_flower_auth() -> None:
    """Flower shows every task and can revoke them: outside development it needs a password."""
    running_flower = "flower" in sys.argv[1:]
    if running_flower and not settings.is_development and settings.FLOWER_BASIC_AUTH is None:
        raise ConfigError(
            "Configuration error: FLOWER_BASIC_AUTH (user:password) must be set to run Flower "
            "outside development."
        )


_require_flower_auth()

app = Celery("tabpfn-api")
app.conf.update(celery_config(settings))
app.conf.update(
    include=["worker.tasks"],
    beat_schedule={
        "sweep": {
            "task": TaskName.SWEEP.value,
            "schedule": settings.SWEEP_INTERVAL_S,
            # A sweep that waited longer than its interval is superseded by the next one.
            "options": {"queue": QueueName.MAINTENANCE.value, "expires": settings.SWEEP_INTERVAL_S},
        }
    },
    # Beat's schedule state is tiny and rebuilt from the config; keep it out of the tree.
    beat_schedule_filename=settings.BEAT_SCHEDULE_FILE or runtime.beat_schedule_path(),
)


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Use our log format in every Celery process (connecting this stops Celery's own setup)."""
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, label="worker")


@signals.worker_init.connect
def _init_worker(sender: Any = None, **_: Any) -> None:
    """In the main process, before the children fork: serve metrics (WORKER_METRICS_PORT),
    and note whether this worker consumes a job queue (`-Q webhooks` or `-Q maintenance` does not,
    and then its children run no engine) and its node name (for the job runs in Flower)."""
    if settings.WORKER_METRICS_PORT is not None:
        runtime.serve_metrics(settings.WORKER_METRICS_PORT)
    if sender is not None:
        runtime.hostname = sender.hostname
        consumed = set(sender.app.amqp.queues.consume_from)
        runtime.runs_jobs = bool(consumed & {queue.value for queue in JOB_QUEUES})


@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """Each prefork child gets a fresh database engine and upstream HTTP client, and (in a
    worker of the job queues) its engine of upstream slots."""
    runtime.init_process(settings)
    if runtime.runs_jobs:
        engine.current()


@signals.worker_process_shutdown.connect
def _shutdown_worker_process(**_: Any) -> None:
    runtime.shutdown_process()
