"""The sweeper's lease recovery (worker.sweeper) on a database no worker watches: a fit the
upstream already took resumes waiting, anything else runs again or ends WORKER_LOST."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.config import Settings
from shared.db import Database
from shared.models import JobStatus
from tests.support.rows import add_jobs, add_user, db, job, unit_db
from tests.support.settings import make_settings
from worker.runtime import WorkerRuntime, init_process, shutdown_process
from worker.sweeper import recover_expired_leases

__all__ = ["db", "unit_db"]  # fixtures
EXPIRED = datetime.now(UTC) - timedelta(minutes=5)


@pytest.fixture
def runtime(db: Database, settings: Settings) -> Iterator[WorkerRuntime]:
    url = db.engine.url.render_as_string(hide_password=False)
    built = init_process(make_settings(DATABASE_URL=url, REDIS_URL=settings.REDIS_URL))
    yield built
    shutdown_process()


def running(database: Database, **values: object) -> uuid.UUID:
    """A running job whose lease expired five minutes ago (unless `values` say otherwise)."""
    row: dict[str, object] = {
        "status": JobStatus.RUNNING,
        "attempts": 1,
        "lease_token": uuid.uuid4(),
        "lease_expires_at": EXPIRED,
    }
    row.update(values)
    with database.session_scope() as session:
        [job_id] = add_jobs(session, add_user(session), 1, **row)
    return job_id


def test_a_submitted_fit_resumes_waiting_on_the_same_fit(
    runtime: WorkerRuntime, db: Database
) -> None:
    job_id = running(db, upstream_fit_id="fit-1", upstream_submitted_at=EXPIRED)
    assert recover_expired_leases(runtime) == 1
    with db.session_scope() as session:
        row = job(session, job_id)
        assert row.status is JobStatus.RUNNING and row.lease_token is None
        assert row.upstream_fit_id == "fit-1" and row.attempts == 1
        assert row.next_check_at is not None and row.error_code is None


def test_other_work_runs_again_then_fails_worker_lost(runtime: WorkerRuntime, db: Database) -> None:
    again = running(db)
    last = running(db, attempts=3, callback_url="http://127.0.0.1:9/hook")
    alive = running(db, lease_expires_at=datetime.now(UTC) + timedelta(minutes=5))
    assert recover_expired_leases(runtime) == 1
    with db.session_scope() as session:
        requeued = job(session, again)
        assert requeued.status is JobStatus.QUEUED and requeued.error_code == "WORKER_LOST"
        failed = job(session, last)
        assert failed.status is JobStatus.FAILED and failed.error_code == "WORKER_LOST"
        assert job(session, alive).status is JobStatus.RUNNING
