"""Claiming a job (compare-and-set) and keeping its lease alive while the upstream works.

A claimed job holds a random lease token and an expiry. A heartbeat thread pushes the
expiry forward. If a renewal matches no row (the job was canceled, or the sweeper gave the
lease to another attempt after this worker stalled), or renewals fail for longer than the
lease lasts, `lost` is set: the worker then does not start the upstream call, and its final
write, which requires the token, cannot land anyway. A call already under way when the lease
is lost still completes upstream (it cannot be interrupted); its result is discarded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import func, update

from shared.config import Settings
from shared.db import Database
from shared.models import Job, JobStatus

logger = logging.getLogger(__name__)


def claim(
    database: Database, job_id: uuid.UUID, settings: Settings
) -> tuple[Job, uuid.UUID] | None:
    """Move a due, queued job to running under a new lease; None if it is not claimable."""
    token = uuid.uuid4()
    with database.session_scope() as session:
        job = session.scalars(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == JobStatus.QUEUED,
                Job.run_after <= func.now(),
                Job.attempts < Job.max_attempts,
            )
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                lease_token=token,
                lease_expires_at=func.now() + timedelta(seconds=settings.JOB_LEASE_S),
                heartbeat_at=func.now(),
                started_at=func.coalesce(Job.started_at, func.now()),
                updated_at=func.now(),
            )
            .returning(Job),
            execution_options={"synchronize_session": False, "populate_existing": True},
        ).one_or_none()
    return (job, token) if job is not None else None


class Lease:
    """The heartbeat of one claimed job."""

    def __init__(
        self, database: Database, job_id: uuid.UUID, token: uuid.UUID, settings: Settings
    ) -> None:
        self.database = database
        self.job_id = job_id
        self.token = token
        self.settings = settings
        self.lost = threading.Event()
        self._stop = threading.Event()

    def renew(self) -> bool:
        """Extend the lease; False when the job is no longer ours."""
        with self.database.session_scope() as session:
            renewed = session.execute(
                update(Job)
                .where(
                    Job.id == self.job_id,
                    Job.lease_token == self.token,
                    Job.status == JobStatus.RUNNING,
                )
                .values(
                    lease_expires_at=func.now() + timedelta(seconds=self.settings.JOB_LEASE_S),
                    heartbeat_at=func.now(),
                )
            )
        return bool(renewed.rowcount)  # type: ignore[attr-defined]

    def _beat(self) -> None:
        renewed_at = time.monotonic()
        while not self._stop.wait(self.settings.JOB_HEARTBEAT_S):
            try:
                if not self.renew():
                    logger.info("lease lost (job canceled or taken over); result will be discarded")
                    self.lost.set()
                    return
                renewed_at = time.monotonic()
            except Exception as error:  # a database blip: try again at the next beat
                logger.warning("lease renewal failed: %s", type(error).__name__)
                if time.monotonic() - renewed_at > self.settings.JOB_LEASE_S:
                    # Unrenewed past its length, the lease may already belong to a recovery
                    # attempt: this one must not write an outcome or start upstream work.
                    logger.warning("lease expired while the database was unreachable")
                    self.lost.set()
                    return

    @contextmanager
    def kept_alive(self) -> Iterator[Lease]:
        """Renew the lease in the background for the duration of the block."""
        thread = threading.Thread(target=self._beat, name=f"lease-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)
