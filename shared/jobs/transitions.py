"""Job state transitions, each a compare-and-set UPDATE (DESIGN §6).

Every way a job ends (worker success or failure, user cancel, sweeper giving up on a lost
worker) goes through `finish()`: one conditional UPDATE that only matches while the job is
still in an expected state (and, for a worker, still holds its lease), then the model's
status and the webhook outbox row, all in the caller's transaction. Two writers can never
both finish a job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from shared.models import Job, JobKind, JobStatus, Model, ModelStatus, WebhookDelivery
from shared.webhooks.outbox import schedule_event

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Finished:
    """A job that just ended, and its webhook delivery to publish after the commit."""

    job: Job
    delivery: WebhookDelivery | None


def finish(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    from_statuses: tuple[JobStatus, ...] = ACTIVE,
    lease_token: uuid.UUID | None = None,
    error: tuple[str, str] | None = None,
    result: dict[str, Any] | None = None,
    result_payload_id: uuid.UUID | None = None,
    trace_id: str | None = None,
    timings: dict[str, Any] | None = None,
    train_set_uid: str | None = None,
) -> Finished | None:
    """End the job if it is still in `from_statuses` (and holds `lease_token`, if given)."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "lease_token": None,
        "lease_expires_at": None,
        "error_code": error[0] if error else None,
        "error_message": error[1] if error else None,
        "updated_at": now,
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
    job = session.scalars(
        statement.values(**values).returning(Job),
        execution_options={"synchronize_session": False, "populate_existing": True},
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


def requeue(
    session: Session,
    job_id: uuid.UUID,
    *,
    delay_s: float,
    lease_token: uuid.UUID | None,
    error: tuple[str, str] | None,
) -> Job | None:
    """Put a running job back in the queue to run again after `delay_s` (a retry)."""
    run_after = func.now() + timedelta(seconds=delay_s)  # the database's clock, as the claim's
    statement = update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING)
    if lease_token is not None:
        statement = statement.where(Job.lease_token == lease_token)
    return session.scalars(
        statement.values(
            status=JobStatus.QUEUED,
            run_after=run_after,
            # The retry message is published with this countdown; the sweeper re-publishes
            # only if it has not been consumed long after this time.
            published_at=run_after,
            lease_token=None,
            lease_expires_at=None,
            error_code=error[0] if error else None,
            error_message=error[1] if error else None,
            updated_at=func.now(),
        ).returning(Job),
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).one_or_none()


def mark_unpublished(session: Session, job_id: uuid.UUID) -> None:
    """Record that a queued job has no message in the broker, so the sweeper publishes it
    as soon as it is due (rather than after JOB_REPUBLISH_AFTER_S)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(published_at=None)
    )
