"""Each run of a job as a Celery task of its own, so Flower shows what really happened to it.

A job's message only wakes an engine (`worker.tasks`): the Celery task of the message always
succeeds at once, whatever then happens to the job, and the job may well run in another
process. So the engine reports each *attempt* of a job through Celery's own task events,
as if it were a task:

- task id `<job id>-attempt-<n>`, name `job.fit` or `job.predict`, the job id as its only
  argument and the attempt as a keyword (Flower's search finds a job by its id);
- `task-received` and `task-started` when a worker slot starts the attempt;
- `task-succeeded`, `task-failed` (the job's error code, never its message: it may quote the
  user's data), `task-retried` (requeued or parked, a later attempt follows) or
  `task-revoked` (canceled while a worker held it), from whichever process records that
  outcome: a fit is often finished by another process than the one that submitted it.

A fit canceled while it waits on the upstream (no worker holds it then) stays `STARTED` in
Flower: no worker sees that cancel. Its job row says canceled.

Events are best effort and never hold a job up: `emit` puts them on a bounded queue that one
sender thread per process publishes, and they are dropped while the broker is away.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from celery import Celery

from shared.config import Settings
from shared.models import JobKind
from shared.queue import celery_config

logger = logging.getLogger(__name__)

TASK_NAMES = {JobKind.FIT: "job.fit", JobKind.PREDICT: "job.predict"}
_CAPACITY = 10_000
_STOP: tuple[str, dict[str, Any]] = ("", {})


class JobRun(Protocol):
    """What names a run: a job row (or a row read by the sweeper)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def kind(self) -> JobKind: ...
    @property
    def attempts(self) -> int: ...


def task_id(job_id: uuid.UUID, attempt: int) -> str:
    """The Flower task id of one attempt of a job."""
    return f"{job_id}-attempt-{attempt}"


class TaskEvents:
    """This process's reporter of job runs as Celery task events."""

    def __init__(self, settings: Settings, hostname: str | None) -> None:
        self.app = Celery("tabpfn-api-events", set_as_current=False)
        self.app.conf.update(celery_config(settings))
        self.hostname = hostname or f"tabpfn-api@{socket.gethostname()}"
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(_CAPACITY)
        self.dropped = 0
        self._dropped_lock = threading.Lock()
        self._thread = threading.Thread(target=self._send_all, name="task-events", daemon=True)
        self._thread.start()

    def started(self, job: JobRun) -> None:
        """A worker slot starts this attempt (it claimed the job)."""
        run = task_id(job.id, job.attempts)
        self.emit(
            "task-received",
            uuid=run,
            root_id=run,
            name=TASK_NAMES[job.kind],
            args=repr([str(job.id)]),
            kwargs=repr({"attempt": job.attempts}),
            retries=max(job.attempts - 1, 0),
        )
        self.emit("task-started", uuid=run)

    def succeeded(self, job: JobRun, started_at: datetime | None) -> None:
        runtime = (datetime.now(UTC) - started_at).total_seconds() if started_at else 0.0
        self.emit(
            "task-succeeded",
            uuid=task_id(job.id, job.attempts),
            result=repr(f"job {job.id} succeeded"),
            runtime=max(runtime, 0.0),
        )

    def failed(self, job: JobRun, code: str) -> None:
        self.emit(
            "task-failed",
            uuid=task_id(job.id, job.attempts),
            exception=f"JobFailed({code!r})",
            traceback=f"job {job.id} failed with {code}; GET /api/v1/jobs/{job.id} says why",
        )

    def retried(self, job: JobRun, code: str) -> None:
        self.emit(
            "task-retried",
            uuid=task_id(job.id, job.attempts),
            exception=f"JobRetried({code!r})",
            traceback=f"job {job.id} is queued again after {code}",
        )

    def revoked(self, job: JobRun) -> None:
        self.emit(
            "task-revoked",
            uuid=task_id(job.id, job.attempts),
            terminated=False,
            signum=None,
            expired=False,
        )

    def emit(self, event_type: str, **fields: Any) -> None:
        """Queue one event (stamped now); dropped when the queue is full."""
        try:
            self._queue.put_nowait((event_type, {**fields, "timestamp": time.time()}))
        except queue.Full:
            self._drop()

    def _drop(self) -> None:
        """Count a lost event (from a slot thread or the sender: under a lock)."""
        with self._dropped_lock:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to `timeout` s), then stop the sender."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _send_all(self) -> None:
        dispatcher: Any = None
        failing = False
        while True:
            event_type, fields = self._queue.get()
            if not event_type:
                break
            try:
                if dispatcher is None:
                    dispatcher = self.app.events.Dispatcher(
                        self.app.connection_for_write(),
                        hostname=self.hostname,
                        buffer_while_offline=False,
                    )
                dispatcher.send(event_type, **fields)
                failing = False
            except Exception as error:  # the broker is away: this event is lost, not the job
                self._drop()
                if not failing:  # once per outage, not once per event
                    logger.warning("task events not sent: %s", type(error).__name__)
                failing = True
                with contextlib.suppress(Exception):
                    dispatcher.connection.close()
                dispatcher = None
        if dispatcher is not None:
            with contextlib.suppress(Exception):
                dispatcher.connection.close()
