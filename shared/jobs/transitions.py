"""Every change of a job's state, each a compare-and-set UPDATE (DESIGN §6).

The job row is the state machine::

    queued ──claim──> running (a worker slot holds the lease)
                        │  fit submitted upstream: record_submitted (the slot is given up)
                        ▼
                      running, waiting on the upstream (no lease, `next_check_at` set)
                        │  a status check claims it again (shared.jobs.claims) ...
                        ▼
    succeeded | failed | canceled   <── finish()       (from queued or running)
    queued   <── requeue()            a transient error, or a worker that died before submitting
    queued   <── park_rate_limited()  the upstream's 429: the user's jobs wait, no attempt spent
    running, waiting  <── resume_waiting()   a worker died after the upstream took the fit

The sweeper's recoveries pass `lost_worker=True`: they then also require that the lease
really is expired (a slot may have renewed it since the sweeper read the row) and, except
for `resume_waiting`, that no fit was submitted meanwhile (such a job resumes instead).

Each function matches only while the job is still in the state it expects (and, for a
worker, still holds its lease token), so two writers can never both move a job: the loser
gets None/False and knows its outcome is discarded. The model's status and the outcome
event (`shared.jobs.events`) are written in the caller's transaction; what to publish after
the commit comes back in `Finished`. All times a claim compares with `now()` are set with
the database's clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from shared.jobs.events import schedule_event
from shared.jobs.failure import Failure
from shared.models import Job, JobKind, JobStatus, Model, ModelStatus, User, WebhookDelivery

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
_RETURNING = {"synchronize_session": False, "populate_existing": True}


@dataclass(frozen=True)
class Finished:
    """A job that just ended, and its webhook delivery to publish after the commit."""

    job: Job
    delivery: WebhookDelivery | None


def _error_values(failure: Failure | None) -> dict[str, Any]:
    return {
        "error_code": failure.code.value if failure else None,
        "error_message": failure.message if failure else None,
    }


def finish(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    from_statuses: tuple[JobStatus, ...] = ACTIVE,
    lease_token: uuid.UUID | None = None,
    failure: Failure | None = None,
    result: dict[str, Any] | None = None,
    result_payload_id: uuid.UUID | None = None,
    trace_id: str | None = None,
    timings: dict[str, Any] | None = None,
    train_set_uid: str | None = None,
    lost_worker: bool = False,
) -> Finished | None:
    """End the job if it is still in `from_statuses` (and holds `lease_token`, if given)."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "lease_token": None,
        "lease_expires_at": None,
        "next_check_at": None,
        "updated_at": now,
        **_error_values(failure),
    }
    if result is not None:
        values["result"] = result
    if result_payload_id is not None:
        values["result_payload_id"] = result_payload_id
    if trace_id is not None:
        values["upstream_trace_id"] = trace_id
    if timings is not None:
        values["timings"] = timings
    statement = update(Job).where(Job.id == job_id, Job.status.in_(from_statuses))
    if lease_token is not None:
        statement = statement.where(Job.lease_token == lease_token)
    if lost_worker:
        statement = statement.where(*_LOST_AND_UNSUBMITTED)
    job = session.scalars(
        statement.values(**values).returning(Job), execution_options=_RETURNING
    ).one_or_none()
    if job is None:
        return None
    if job.kind is JobKind.FIT and job.model_id is not None:
        model_values: dict[str, Any] = {"updated_at": now}
        if status is JobStatus.SUCCEEDED:
            model_values.update(
                status=ModelStatus.READY, fitted_at=now, train_set_uid=train_set_uid
            )
        else:
            model_values.update(status=ModelStatus.FAILED)
        session.execute(update(Model).where(Model.id == job.model_id).values(**model_values))
    return Finished(job=job, delivery=schedule_event(session, job))


_LEASE_EXPIRED = Job.lease_expires_at < func.now()
_LOST_AND_UNSUBMITTED = (_LEASE_EXPIRED, Job.upstream_fit_id.is_(None))


def _running(job_id: uuid.UUID, lease_token: uuid.UUID | None) -> Any:
    statement = update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING)
    if lease_token is not None:
        statement = statement.where(Job.lease_token == lease_token)
    return statement


def requeue(
    session: Session,
    job_id: uuid.UUID,
    *,
    delay_s: float,
    lease_token: uuid.UUID | None,
    failure: Failure | None,
    forget_upstream_fit: bool = False,
    lost_worker: bool = False,
) -> Job | None:
    """Put a running job back in the queue to run again after `delay_s` (a retry).

    `forget_upstream_fit` drops a submitted fit the upstream no longer knows, so the next
    attempt fits afresh instead of waiting on it."""
    values: dict[str, Any] = {
        "status": JobStatus.QUEUED,
        "run_after": func.now() + timedelta(seconds=delay_s),
        "lease_token": None,
        "lease_expires_at": None,
        "next_check_at": None,
        "updated_at": func.now(),
        **_error_values(failure),
    }
    if forget_upstream_fit:
        values.update(upstream_fit_id=None, upstream_submitted_at=None)
    statement = _running(job_id, lease_token)
    if lost_worker:
        statement = statement.where(*_LOST_AND_UNSUBMITTED)
    return session.scalars(
        statement.values(**values).returning(Job), execution_options=_RETURNING
    ).one_or_none()


def park_rate_limited(
    session: Session,
    job: Job,
    *,
    lease_token: uuid.UUID,
    wait_s: float,
    failure: Failure,
) -> Job | None:
    """The upstream refused the user's token for `wait_s`: this job and every other due job
    of the user wait until then, holding no worker slot.

    The attempt is given back (the job did nothing wrong), and the park is counted so a
    token that is refused forever still ends (`rate_limit_parks`)."""
    until = func.now() + timedelta(seconds=wait_s)
    parked = session.scalars(
        _running(job.id, lease_token)
        .values(
            status=JobStatus.QUEUED,
            run_after=until,
            attempts=func.greatest(Job.attempts - 1, 0),
            rate_limit_parks=Job.rate_limit_parks + 1,
            lease_token=None,
            lease_expires_at=None,
            updated_at=func.now(),
            **_error_values(failure),
        )
        .returning(Job),
        execution_options=_RETURNING,
    ).one_or_none()
    if parked is not None:
        session.execute(
            update(User)
            .where(User.id == job.user_id)
            .values(
                upstream_parked_until=func.greatest(
                    func.coalesce(User.upstream_parked_until, until), until
                )
            )
        )
    return parked


def record_submitted(
    session: Session,
    job_id: uuid.UUID,
    *,
    lease_token: uuid.UUID,
    upstream_fit_id: str,
    trace_id: str,
    check_in_s: float,
) -> bool:
    """The upstream accepted the fit: keep its id, so that no later attempt fits it again,
    and give up the slot until its status is checked, `check_in_s` from now."""
    recorded = session.execute(
        _running(job_id, lease_token).values(
            upstream_fit_id=upstream_fit_id,
            upstream_submitted_at=func.now(),
            upstream_trace_id=trace_id,
            lease_token=None,
            lease_expires_at=None,
            next_check_at=func.now() + timedelta(seconds=check_in_s),
            updated_at=func.now(),
        )
    )
    return bool(recorded.rowcount)  # type: ignore[attr-defined]


def await_upstream(
    session: Session, job_id: uuid.UUID, *, lease_token: uuid.UUID, check_in_s: float
) -> bool:
    """Give up the slot while the upstream fits; the status is checked after `check_in_s`."""
    released = session.execute(
        _running(job_id, lease_token).values(
            lease_token=None,
            lease_expires_at=None,
            next_check_at=func.now() + timedelta(seconds=check_in_s),
            updated_at=func.now(),
        )
    )
    return bool(released.rowcount)  # type: ignore[attr-defined]


def resume_waiting(
    session: Session, job_id: uuid.UUID, *, lease_token: uuid.UUID, lost_worker: bool = False
) -> bool:
    """A worker died while it held a submitted fit: wait on that same fit, checked now."""
    statement = _running(job_id, lease_token).where(Job.upstream_fit_id.is_not(None))
    if lost_worker:
        statement = statement.where(_LEASE_EXPIRED)
    resumed = session.execute(
        statement.values(
            lease_token=None,
            lease_expires_at=None,
            next_check_at=func.now(),
            updated_at=func.now(),
        )
    )
    return bool(resumed.rowcount)  # type: ignore[attr-defined]


def release_unstarted(session: Session, job_id: uuid.UUID, *, lease_token: uuid.UUID) -> bool:
    """A worker shutting down hands back a job it claimed but did not work on: a submitted
    fit waits on the upstream again, any other job goes back to the queue, attempt returned."""
    if resume_waiting(session, job_id, lease_token=lease_token):
        return True
    released = session.execute(
        _running(job_id, lease_token).values(
            status=JobStatus.QUEUED,
            attempts=func.greatest(Job.attempts - 1, 0),
            lease_token=None,
            lease_expires_at=None,
            updated_at=func.now(),
        )
    )
    return bool(released.rowcount)  # type: ignore[attr-defined]
