"""Requests waiting for a job to end (`Prefer: wait`), woken without holding anything.

A waiting request is an asyncio future and nothing else: no database connection, no
thread-pool thread. One listener thread per API process holds one dedicated connection
(outside the pool) that LISTENs on `shared.jobs.notices.JOB_ENDED_CHANNEL`; when a job's
final transition commits, Postgres sends its id, and the thread resolves the futures waiting
on it (`call_soon_threadsafe`, so any event loop works: uvicorn's, or a test client's).

Notifications can be missed: the listener may be reconnecting when one is sent. So, while
anyone waits, the thread also re-checks every `PREFER_WAIT_RECHECK_S` with one query for
all waited-on jobs (on its own connection), and once right after every (re)connect; a job
that ended, or no longer exists, wakes its waiters. A missed notification thus costs at
most one re-check interval. The connection uses TCP keepalives, so a silently dead network
is noticed in seconds rather than minutes; any error closes it and the thread reconnects
with a capped backoff. Waiters keep their own deadline, so a lost listener never holds a
request past its N seconds.

The thread starts on the first wait (a process nobody asks to wait opens no extra
connection) and stops with the app. At most `PREFER_WAIT_MAX_WAITERS` requests wait per
process, and at most `PREFER_WAIT_MAX_WAITERS_PER_USER` of one user's (so no one user's
loop of waits takes them all); past either, `register` says no and the request is answered
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, create_engine, select
from sqlalchemy.pool import NullPool

from shared import metrics
from shared.jobs.guards import ACTIVE
from shared.jobs.notices import JOB_ENDED_CHANNEL
from shared.models import Job

logger = logging.getLogger(__name__)
# How often the listener thread looks up from the socket to see whether it must stop.
_STOP_POLL_S = 1.0
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.5, 5.0
# Dead peers are noticed by the kernel within about idle + interval × count seconds.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


@dataclass(eq=False)
class Waiter:
    """One request waiting for one job; resolved (True) when the job ended."""

    job_id: uuid.UUID
    owner: uuid.UUID
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


class JobWaiters:
    """The waiters of one API process, and the listener thread that wakes them."""

    def __init__(
        self, database_url: str, *, max_waiters: int, max_per_owner: int, recheck_s: float
    ) -> None:
        self.max_waiters = max_waiters
        self.max_per_owner = max_per_owner
        self.recheck_s = recheck_s
        self._engine = create_engine(
            database_url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={
                "application_name": "tabpfn-api.api-listener",
                "connect_timeout": 5,
                **_KEEPALIVES,
            },
        )
        self._lock = threading.Lock()
        self._waiting: dict[uuid.UUID, set[Waiter]] = {}
        self._count = 0
        self._per_owner: dict[uuid.UUID, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connects = 0  # how many times the listener connected (tests, metrics)

    @property
    def count(self) -> int:
        return self._count

    @contextlib.contextmanager
    def register(self, job_id: uuid.UUID, owner: uuid.UUID) -> Iterator[Waiter | None]:
        """A waiter for `job_id` while the block runs, or None when the process, or `owner`
        (the job's user), is at its cap (the caller then answers without waiting)."""
        waiter = self._add(job_id, owner)
        try:
            yield waiter
        finally:
            if waiter is not None:
                self._remove(waiter)

    def _add(self, job_id: uuid.UUID, owner: uuid.UUID) -> Waiter | None:
        loop = asyncio.get_running_loop()
        with self._lock:
            owned = self._per_owner.get(owner, 0)
            if self._count >= self.max_waiters or owned >= self.max_per_owner:
                metrics.PREFER_WAITS.labels("refused").inc()
                return None
            waiter = Waiter(job_id, owner, loop, loop.create_future())
            self._waiting.setdefault(job_id, set()).add(waiter)
            self._per_owner[owner] = owned + 1
            self._count += 1
            metrics.PREFER_WAITERS.set(self._count)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._listen, name="job-ended-listener", daemon=True
                )
                self._thread.start()
        return waiter

    def _remove(self, waiter: Waiter) -> None:
        with self._lock:
            others = self._waiting.get(waiter.job_id)
            if others is not None and waiter in others:
                others.discard(waiter)
                if not others:
                    del self._waiting[waiter.job_id]
                owned = self._per_owner.pop(waiter.owner) - 1
                if owned:
                    self._per_owner[waiter.owner] = owned
                self._count -= 1
                metrics.PREFER_WAITERS.set(self._count)

    @staticmethod
    async def wait(waiter: Waiter, timeout_s: float) -> bool:
        """Whether the job ended within `timeout_s` (False: the time ran out)."""
        try:
            ended = await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
        except TimeoutError:
            metrics.PREFER_WAITS.labels("timed_out").inc()
            return False
        metrics.PREFER_WAITS.labels("ended").inc()
        return ended

    def wake(self, job_id: uuid.UUID) -> None:
        """Resolve every waiter of `job_id` (from any thread)."""
        with self._lock:
            waiters = list(self._waiting.get(job_id, ()))
        for waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that request's loop has closed
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    def close(self) -> None:
        """Stop the listener (app shutdown); waiters still pending run out their time."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=_STOP_POLL_S * 5)
        self._engine.dispose()

    # The listener thread -------------------------------------------------------------------

    def _listen(self) -> None:
        backoff = _BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                with self._engine.connect() as connection:
                    self._serve(connection.execution_options(isolation_level="AUTOCOMMIT"))
                return  # stopped
            except Exception as error:
                if self._stop.is_set():
                    return
                logger.warning(
                    "job-ended listener lost its connection (%s); reconnecting in %.1f s",
                    type(error).__name__,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def _serve(self, connection: Connection) -> None:
        driver = connection.connection.driver_connection
        assert driver is not None
        # No notify handler: psycopg keeps the notices that arrive while the re-check query
        # runs and notifies() below yields them (with a handler, it would warn and may miss).
        driver.execute(f"LISTEN {JOB_ENDED_CHANNEL}")
        self.connects += 1
        metrics.JOB_LISTENER_CONNECTS.inc()
        logger.info("job-ended listener connected (connection %d)", self.connects)
        self._recheck(connection)  # whatever ended while nobody listened
        next_check = time.monotonic() + self.recheck_s
        while not self._stop.is_set():
            timeout = max(0.0, min(next_check - time.monotonic(), _STOP_POLL_S))
            for notice in driver.notifies(timeout=timeout):
                self._wake_payload(notice.payload)
            if time.monotonic() >= next_check:
                self._recheck(connection)
                next_check = time.monotonic() + self.recheck_s

    def _wake_payload(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.wake(uuid.UUID(payload))

    def _recheck(self, connection: Connection) -> None:
        """Wake the waiters of every waited-on job that ended or is gone (one query)."""
        with self._lock:
            job_ids = list(self._waiting)
        if not job_ids:
            return
        active = set(
            connection.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.status.in_(ACTIVE)))
        )
        for job_id in job_ids:
            if job_id not in active:
                self.wake(job_id)


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(True)
