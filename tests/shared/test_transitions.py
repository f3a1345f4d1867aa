"""The job state machine (shared.jobs.transitions), one compare-and-set at a time, against a
real PostgreSQL: who may move a job, and what each move leaves on the row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from shared.db import Database
from shared.jobs import transitions, waits
from shared.jobs.failure import Failure
from shared.jobs.notices import JOB_ENDED_CHANNEL
from shared.models import Job, JobErrorCode, JobStatus, Model, ModelStatus, User, WebhookDelivery
from tests.support.rows import add_jobs, add_model, add_user, db, job, unit_db

__all__ = ["db", "unit_db"]  # fixtures
RATE = Failure(JobErrorCode.TABPFN_RATE_LIMITED, "slow down")


def running_job(database: Database, **values: object) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A running fit job holding a lease: (job id, lease token, user id)."""
    token = uuid.uuid4()
    with database.session_scope() as session:
        user = add_user(session)
        model = add_model(session, user)
        [job_id] = add_jobs(
            session,
            user,
            1,
            status=JobStatus.RUNNING,
            lease_token=token,
            attempts=1,
            model_id=model.id,
            callback_url="http://127.0.0.1:9/hook",
            **values,
        )
        model.fit_job_id = job_id
    return job_id, token, user.id


def test_finish_needs_the_current_lease(db: Database) -> None:
    job_id, token, _ = running_job(db)
    with db.session_scope() as session:
        stale = transitions.finish(
            session,
            job_id,
            JobStatus.SUCCEEDED,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=uuid.uuid4(),
        )
        assert stale is None
        done = transitions.finish(
            session,
            job_id,
            JobStatus.SUCCEEDED,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=token,
            result={"train_set_uid": "fit-1", "n_samples": 4, "n_features": 2, "classes": None},
            fit=transitions.FitFacts(train_set_uid="fit-1", fit_key="k", token_fingerprint="f"),
        )
        assert done is not None and len(done.deliveries) == 1
        assert done.deliveries[0].event == "job.succeeded"
        row = job(session, job_id)
        assert row.status is JobStatus.SUCCEEDED and row.lease_token is None
        model = session.get(Model, row.model_id)
        assert model is not None and model.status is ModelStatus.READY
        assert model.train_set_uid == "fit-1"
        assert (model.fit_key, model.fitted_token_fingerprint) == ("k", "f")
        # A second writer (a cancel, the sweeper) finds nothing to move.
        assert transitions.finish(session, job_id, JobStatus.CANCELED) is None
        deliveries = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
        ).all()
        assert len(deliveries) == 1


def test_a_submitted_fit_waits_without_a_lease_and_resumes_after_a_crash(db: Database) -> None:
    job_id, token, _ = running_job(db)
    with db.session_scope() as session:
        assert waits.record_submitted(
            session,
            job_id,
            lease_token=token,
            upstream_fit_id="fit-9",
            trace_id="t",
            check_in_s=30,
            token_fingerprint="fp",
        )
        row = job(session, job_id)
        assert row.status is JobStatus.RUNNING and row.lease_token is None
        assert row.upstream_fit_id == "fit-9" and row.upstream_submitted_at is not None
        assert row.next_check_at is not None
        assert row.next_check_at > datetime.now(UTC) + timedelta(seconds=20)
        # The lease is gone: the slot that gave it up cannot write any more.
        assert not waits.await_upstream(session, job_id, lease_token=token, check_in_s=1)
    other = uuid.uuid4()
    with db.session_scope() as session:  # a check claims it and waits again...
        session.execute(update(Job).where(Job.id == job_id).values(lease_token=other))
        assert waits.await_upstream(session, job_id, lease_token=other, check_in_s=30)
    with db.session_scope() as session:  # ... another check claims it, then its worker dies
        session.execute(update(Job).where(Job.id == job_id).values(lease_token=other))
        assert waits.resume_waiting(session, job_id, lease_token=other)
        row = job(session, job_id)
        assert row.lease_token is None and row.upstream_fit_id == "fit-9"
        assert row.attempts == 1 and row.next_check_at is not None


def test_a_job_without_a_submitted_fit_cannot_resume_waiting(db: Database) -> None:
    job_id, token, _ = running_job(db)
    with db.session_scope() as session:
        assert not waits.resume_waiting(session, job_id, lease_token=token)


def test_requeue_can_forget_a_fit_the_upstream_lost(db: Database) -> None:
    job_id, token, _ = running_job(
        db, upstream_fit_id="gone", upstream_submitted_at=datetime.now(UTC)
    )
    failure = Failure(JobErrorCode.UPSTREAM_UNAVAILABLE, "lost")
    with db.session_scope() as session:
        requeued = transitions.requeue(
            session,
            job_id,
            delay_s=5,
            lease_token=token,
            failure=failure,
            forget_upstream_fit=True,
        )
        assert requeued is not None
        row = job(session, job_id)
        assert row.status is JobStatus.QUEUED and row.upstream_fit_id is None
        assert row.error_code == "UPSTREAM_UNAVAILABLE" and row.attempts == 1


def test_a_rate_limit_parks_the_user_and_gives_the_attempt_back(db: Database) -> None:
    job_id, token, user_id = running_job(db)
    with db.session_scope() as session:
        parked = transitions.park_rate_limited(
            session, job(session, job_id), lease_token=token, wait_s=2.0, failure=RATE
        )
        assert parked is not None
        row = job(session, job_id)
        assert row.status is JobStatus.QUEUED and row.attempts == 0
        assert row.rate_limit_parks == 1 and row.error_code == "TABPFN_RATE_LIMITED"
        user = session.scalars(
            select(User).where(User.id == user_id).execution_options(populate_existing=True)
        ).one()
        assert user.upstream_parked_until is not None
        assert abs((user.upstream_parked_until - row.run_after).total_seconds()) < 0.5
    # A shorter window later never shortens the park.
    second, token2 = uuid.uuid4(), uuid.uuid4()
    with db.session_scope() as session:
        owner = session.get(User, user_id)
        assert owner is not None
        add_jobs(
            session, owner, 1, id=second, status=JobStatus.RUNNING, lease_token=token2, attempts=1
        )
        until = owner.upstream_parked_until
        transitions.park_rate_limited(
            session, job(session, second), lease_token=token2, wait_s=0.1, failure=RATE
        )
        session.refresh(owner)
        assert owner.upstream_parked_until == until


def test_a_worker_shutting_down_hands_work_back(db: Database) -> None:
    fresh, token, _ = running_job(db)
    waiting, token2, _ = running_job(db, upstream_fit_id="fit-2")
    with db.session_scope() as session:
        assert waits.release_unstarted(session, fresh, lease_token=token)
        assert waits.release_unstarted(session, waiting, lease_token=token2)
        back = job(session, fresh)
        assert back.status is JobStatus.QUEUED and back.attempts == 0
        still = job(session, waiting)
        assert still.status is JobStatus.RUNNING and still.lease_token is None
        assert still.next_check_at is not None


def test_the_sweeper_moves_only_jobs_whose_lease_really_expired(db: Database) -> None:
    """The sweeper read the row while the lease had lapsed; the slot has renewed it since,
    or submitted its fit: the recovery must not land."""
    failure = Failure(JobErrorCode.WORKER_LOST, "lost")
    renewed, token, _ = running_job(db, lease_expires_at=datetime.now(UTC) + timedelta(minutes=1))
    submitted, token2, _ = running_job(
        db, lease_expires_at=datetime.now(UTC) - timedelta(minutes=1), upstream_fit_id="fit-3"
    )
    with db.session_scope() as session:
        for job_id, lease in ((renewed, token), (submitted, token2)):
            assert (
                transitions.requeue(
                    session,
                    job_id,
                    delay_s=0,
                    lease_token=lease,
                    failure=failure,
                    lost_worker=True,
                )
                is None
            )
            assert (
                transitions.finish(
                    session,
                    job_id,
                    JobStatus.FAILED,
                    lease_token=lease,
                    failure=failure,
                    lost_worker=True,
                )
                is None
            )
        assert not waits.resume_waiting(session, renewed, lease_token=token, lost_worker=True)
        assert waits.resume_waiting(session, submitted, lease_token=token2, lost_worker=True)
        assert job(session, renewed).status is JobStatus.RUNNING


def test_an_end_is_announced_at_commit_and_only_then(db: Database) -> None:
    """finish() queues a NOTIFY with the job id (for `Prefer: wait`): delivered when its
    transaction commits, never for one rolled back, never for a chunk."""
    listener = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    driver = listener.connection.driver_connection
    assert driver is not None
    driver.execute(f"LISTEN {JOB_ENDED_CHANNEL}")
    rolled_back, _, _ = running_job(db)
    committed, _, user_id = running_job(db)
    with db.session_scope() as session:
        [chunk] = add_jobs(
            session,
            session.get(User, user_id),  # type: ignore[arg-type]
            1,
            status=JobStatus.RUNNING,
            parent_job_id=committed,
            chunk_index=0,
        )
    with db.sessionmaker() as session:
        assert transitions.finish(session, rolled_back, JobStatus.CANCELED) is not None
        session.rollback()
    with db.session_scope() as session:
        assert transitions.finish(session, chunk, JobStatus.SUCCEEDED) is not None
        assert transitions.finish(session, committed, JobStatus.CANCELED) is not None
    heard = [notice.payload for notice in driver.notifies(timeout=2)]
    listener.close()
    assert heard == [str(committed)]
