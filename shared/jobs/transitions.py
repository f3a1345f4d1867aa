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

    running, waiting on its chunks  <── await_chunks()   a large prediction became child jobs;
                        │  the last chunk to succeed makes it due; a merge claims it again
                        ▼
    succeeded (merged) | failed (a chunk failed for good: the others are canceled)

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

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from shared.jobs.chunks import Chunk
from shared.jobs.events import schedule_event
from shared.jobs.failure import CHUNK_SIBLING_ENDED, Failure
from shared.jobs.notices import announce_end
from shared.models import (
    Job,
    JobErrorCode,
    JobKind,
    JobPhase,
    JobStatus,
    Model,
    ModelStatus,
    User,
    WebhookDelivery,
)

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
_RETURNING = {"synchronize_session": False, "populate_existing": True}


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
        statement = statement.where(*_LOST_AND_UNSUBMITTED)
    job = session.scalars(
        statement.values(**values).returning(Job), execution_options=_RETURNING
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


_LEASE_EXPIRED = Job.lease_expires_at < func.now()
# Jobs that wait without a slot: a fit the upstream took, a prediction waiting on chunks.
_WAITS_WITHOUT_SLOT = or_(Job.upstream_fit_id.is_not(None), Job.chunks_total.is_not(None))
_LOST_AND_UNSUBMITTED = (_LEASE_EXPIRED, ~_WAITS_WITHOUT_SLOT)


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
        "phase": None,
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
            phase=None,
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
    token_fingerprint: str,
) -> bool:
    """The upstream accepted the fit: keep its id, so that no later attempt fits it again,
    and give up the slot until its status is checked, `check_in_s` from now.

    The fingerprint of the token that made the fit is kept too: the model records it when
    the fit succeeds, and only a fit under the same token may reuse it later."""
    recorded = session.execute(
        _running(job_id, lease_token).values(
            upstream_fit_id=upstream_fit_id,
            upstream_submitted_at=func.now(),
            upstream_trace_id=trace_id,
            params=Job.params.op("||")(
                func.jsonb_build_object("token_fingerprint", token_fingerprint)
            ),
            phase=JobPhase.FITTING,
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
    """A worker died while it held a submitted fit (or a prediction waiting on its chunks,
    while merging them): wait on that same fit, checked now (merge again once every chunk
    is done)."""
    statement = _running(job_id, lease_token).where(_WAITS_WITHOUT_SLOT)
    if lost_worker:
        statement = statement.where(_LEASE_EXPIRED)
    resumed = session.execute(
        statement.values(
            lease_token=None,
            lease_expires_at=None,
            next_check_at=case(
                (
                    or_(Job.chunks_total.is_(None), Job.chunks_done >= Job.chunks_total),
                    func.now(),
                ),
                else_=None,
            ),
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
            phase=None,
            updated_at=func.now(),
        )
    )
    return bool(released.rowcount)  # type: ignore[attr-defined]


def set_phase(
    session: Session, job_id: uuid.UUID, *, lease_token: uuid.UUID, phase: JobPhase
) -> bool:
    """Record what the slot holding the job does now (progress only; no state changes)."""
    changed = session.execute(
        _running(job_id, lease_token)
        .values(phase=phase)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def await_chunks(
    session: Session,
    job_id: uuid.UUID,
    *,
    lease_token: uuid.UUID,
    chunks_total: int,
    cache_key: str | None,
) -> bool:
    """A large prediction became `chunks_total` chunk jobs: give up the slot until the last
    of them succeeds (which makes this job due for its merge). Its cache key is kept now
    (it only counts once the job has succeeded)."""
    waiting = session.execute(
        _running(job_id, lease_token).values(
            cache_key=cache_key,
            lease_token=None,
            lease_expires_at=None,
            next_check_at=None,
            chunks_total=chunks_total,
            chunks_done=0,
            phase=JobPhase.PREDICTING,
            updated_at=func.now(),
        )
    )
    return bool(waiting.rowcount)  # type: ignore[attr-defined]


def mark_stale(session: Session, model_id: uuid.UUID) -> int:
    """The upstream no longer has this model's fit: it, and every ready model of the same
    user on the same fit (a reused fit), is `stale` (a refit makes it ready again); returns
    how many."""
    gone = select(Model.user_id, Model.train_set_uid).where(Model.id == model_id).cte("gone")
    marked = session.execute(
        update(Model)
        .where(
            Model.user_id == gone.c.user_id,
            Model.train_set_uid == gone.c.train_set_uid,
            Model.status == ModelStatus.READY,
        )
        .values(status=ModelStatus.STALE, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(marked.rowcount)  # type: ignore[attr-defined]


def wake_waiting_parents(session: Session) -> int:
    """Make due every prediction waiting on chunks none of which is unfinished any more (a
    safety net: the last chunk's own transition normally does this); returns how many."""
    chunk = aliased(Job)
    unfinished = (
        select(chunk.id).where(chunk.parent_job_id == Job.id, chunk.status.in_(ACTIVE)).exists()
    )
    woken = session.execute(
        update(Job)
        .where(
            Job.status == JobStatus.RUNNING,
            Job.lease_token.is_(None),
            Job.chunks_total.is_not(None),
            Job.next_check_at.is_(None),
            ~unfinished,
        )
        .values(next_check_at=func.now(), updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(woken.rowcount)  # type: ignore[attr-defined]
