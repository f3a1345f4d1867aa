"""Every change of a job's state, each a compare-and-set UPDATE (DESIGN §6).

The job row is the state machine::

    queued ──claim──> running (a worker slot holds the lease)
                        │  it may wait without a slot: a fit the upstream took, a prediction
                        │  split into chunks (`shared.jobs.waits`); a claim takes it again ...
                        ▼
    succeeded | failed | canceled   <── finish()       (from queued or running)
    queued   <── requeue()            a transient error, or a worker that died before submitting
    queued   <── park_rate_limited()  the upstream's 429: the user's jobs wait, no attempt spent

A chunk of a split prediction ends like any job; its end counts towards its parent (the
last success makes the parent due for its merge) or, failed for good, fails the parent,
naming the chunk's rows, and cancels the other chunks, in the same transaction. A parent
that ends otherwise than by success cancels its chunks.

The sweeper's recoveries pass `lost_worker=True`: they then also require that the lease
really is expired (a slot may have renewed it since the sweeper read the row) and, except
for `resume_waiting`, that the job does not wait without a slot (a submitted fit, a
prediction waiting on its chunks): such a job resumes instead.

Each function matches only while the job is still in the state it expects (and, for a
worker, still holds its lease token), so two writers can never both move a job: the loser
gets None/False and knows its outcome is discarded. The model's status and the outcome
event (`shared.jobs.events`) are written in the caller's transaction, and so is the NOTIFY
that announces a job's end (`shared.jobs.notices`); what to publish after the commit comes
back in `Finished`. All times a claim compares with `now()` are set with
the database's clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from shared.jobs.chunks import Chunk
from shared.jobs.events import schedule_event
from shared.jobs.failure import CHUNK_SIBLING_ENDED, Failure
from shared.jobs.guards import ACTIVE, LOST_AND_UNSUBMITTED, RETURNING, running
from shared.jobs.notices import announce_end
from shared.models import (
    Job,
    JobErrorCode,
    JobKind,
    JobStatus,
    Model,
    ModelStatus,
    User,
    WebhookDelivery,
)


@dataclass(frozen=True)
class Finished:
    """A job that just ended, and the webhook deliveries to publish after the commit (its
    own, and its parent's when a failed chunk ended the prediction it belongs to)."""

    job: Job
    deliveries: tuple[WebhookDelivery, ...] = ()


@dataclass(frozen=True)
class FitFacts:
    """What a model records when its fit succeeds: the upstream fit, what it was made from
    (`shared.jobs.reuse.fit_key`), under which token, and the options of a refit."""

    train_set_uid: str
    fit_key: str | None = None
    token_fingerprint: str | None = None
    config: dict[str, Any] | None = None


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
    fit: FitFacts | None = None,
    cache_key: str | None = None,
    lost_worker: bool = False,
) -> Finished | None:
    """End the job if it is still in `from_statuses` (and holds `lease_token`, if given).

    A fit's model follows (ready with `fit`, or failed; a failed refit leaves the model as
    it was). A chunk's end counts towards its parent, or ends it; a parent's end (other than
    success) cancels its chunks."""
    _lock_parent_first(session, job_id)
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "lease_token": None,
        "lease_expires_at": None,
        "next_check_at": None,
        "phase": None,
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
    if cache_key is not None:
        values["cache_key"] = cache_key
    statement = update(Job).where(Job.id == job_id, Job.status.in_(from_statuses))
    if lease_token is not None:
        statement = statement.where(Job.lease_token == lease_token)
    if lost_worker:
        statement = statement.where(*LOST_AND_UNSUBMITTED)
    job = session.scalars(
        statement.values(**values).returning(Job), execution_options=RETURNING
    ).one_or_none()
    if job is None:
        return None
    if job.kind is JobKind.FIT and job.model_id is not None:
        _update_model(session, job, status, fit, now)
    return Finished(job=job, deliveries=tuple(_consequences(session, job, status)))


def _consequences(session: Session, job: Job, status: JobStatus) -> list[WebhookDelivery]:
    """What an end sets off: a chunk counts towards its parent (or ends it); a parent's
    end other than success cancels its chunks and, like any job a user sees, is announced
    (NOTIFY, for `Prefer: wait`); the webhook event is scheduled."""
    deliveries: list[WebhookDelivery] = []
    if job.parent_job_id is not None:
        deliveries += _chunk_ended(session, job, status)
    else:
        if job.chunks_total is not None and status is not JobStatus.SUCCEEDED:
            _cancel_chunks(session, job.id)
        announce_end(session, job.id)
    delivery = schedule_event(session, job)
    if delivery is not None:
        deliveries.insert(0, delivery)
    return deliveries


def _lock_parent_first(session: Session, job_id: uuid.UUID) -> None:
    """A chunk's end writes its parent's row after its own, and a parent's end writes its
    chunks' rows after its own: taking the parent's row lock first whenever a chunk ends
    keeps every path in one order (parent, then chunks), so two of them never deadlock."""
    parent_id = session.scalar(select(Job.parent_job_id).where(Job.id == job_id))
    if parent_id is not None:
        session.execute(select(Job.id).where(Job.id == parent_id).with_for_update())


def _update_model(
    session: Session, job: Job, status: JobStatus, fit: FitFacts | None, now: datetime
) -> None:
    values: dict[str, Any] = {"updated_at": now}
    if status is JobStatus.SUCCEEDED:
        assert fit is not None, "a fit succeeds with its FitFacts"
        values.update(
            status=ModelStatus.READY,
            fitted_at=now,
            train_set_uid=fit.train_set_uid,
            fit_key=fit.fit_key,
            fitted_token_fingerprint=fit.token_fingerprint,
        )
        if fit.config is not None:
            values["config"] = fit.config
    elif job.params.get("refit"):
        return  # a refit that did not succeed leaves the model as it was
    else:
        values["status"] = ModelStatus.FAILED
    # Only while this job is still the model's fit: an older refit ending late never
    # overwrites what a newer one did.
    session.execute(
        update(Model).where(Model.id == job.model_id, Model.fit_job_id == job.id).values(**values)
    )


def _chunk_ended(session: Session, chunk: Job, status: JobStatus) -> list[WebhookDelivery]:
    """A chunk ended: one more done (the last one makes its parent due for the merge), or
    the whole prediction fails, naming the chunk's rows."""
    assert chunk.parent_job_id is not None
    if status is JobStatus.SUCCEEDED:
        done = Job.chunks_done + 1
        session.execute(
            update(Job)
            .where(Job.id == chunk.parent_job_id, Job.status == JobStatus.RUNNING)
            .values(
                chunks_done=done,
                next_check_at=case((done >= Job.chunks_total, func.now()), else_=None),
                updated_at=func.now(),
            )
        )
        return []
    if status is not JobStatus.FAILED:
        return []  # canceled along with its parent
    total = session.scalar(select(Job.chunks_total).where(Job.id == chunk.parent_job_id))
    start, stop = chunk.params.get("rows") or (0, 0)
    where = Chunk(chunk.chunk_index or 0, int(start), int(stop)).describe(total or 0)
    failure = Failure(
        JobErrorCode(chunk.error_code or JobErrorCode.INTERNAL_ERROR),
        f"The prediction of {where} failed: {chunk.error_message or 'no reason given'}",
    )
    ended = finish(
        session,
        chunk.parent_job_id,
        JobStatus.FAILED,
        from_statuses=(JobStatus.RUNNING,),
        failure=failure,
    )
    return list(ended.deliveries) if ended is not None else []


def _cancel_chunks(session: Session, parent_id: uuid.UUID) -> None:
    """End every unfinished chunk of a prediction that ended; a slot running one loses its
    lease, so whatever it still does is discarded."""
    session.execute(
        update(Job)
        .where(Job.parent_job_id == parent_id, Job.status.in_(ACTIVE))
        .values(
            status=JobStatus.CANCELED,
            finished_at=func.now(),
            lease_token=None,
            lease_expires_at=None,
            next_check_at=None,
            phase=None,
            updated_at=func.now(),
            **_error_values(CHUNK_SIBLING_ENDED),
        )
    )


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
        "phase": None,
        "updated_at": func.now(),
        **_error_values(failure),
    }
    if forget_upstream_fit:
        values.update(upstream_fit_id=None, upstream_submitted_at=None)
    statement = running(job_id, lease_token)
    if lost_worker:
        statement = statement.where(*LOST_AND_UNSUBMITTED)
    return session.scalars(
        statement.values(**values).returning(Job), execution_options=RETURNING
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
        running(job.id, lease_token)
        .values(
            status=JobStatus.QUEUED,
            run_after=until,
            attempts=func.greatest(Job.attempts - 1, 0),
            rate_limit_parks=Job.rate_limit_parks + 1,
            lease_token=None,
            lease_expires_at=None,
            phase=None,
            updated_at=func.now(),
            **_error_values(failure),
        )
        .returning(Job),
        execution_options=RETURNING,
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


def mark_stale(session: Session, user_id: uuid.UUID, fit_id: str) -> int:
    """The upstream no longer has the fit `fit_id`: every ready model of the user still on
    it (the model predicted with, and any that reused its fit) is `stale` (a refit makes it
    ready again); a model refit meanwhile is on another fit, and stays as it is. Returns how
    many."""
    marked = session.execute(
        update(Model)
        .where(
            Model.user_id == user_id,
            Model.train_set_uid == fit_id,
            Model.status == ModelStatus.READY,
        )
        .values(status=ModelStatus.STALE, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(marked.rowcount)  # type: ignore[attr-defined]
