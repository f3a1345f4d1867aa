"""Transitions of a running job that gives its slot up without ending: it waits.

    running (a slot holds the lease)
      │ record_submitted: the upstream took the fit; checked again after a while
      │ await_upstream:   a status check found it pending; checked again later
      │ await_chunks:     a large prediction became chunk jobs; due when the last succeeds
      ▼
    running, waiting (no lease; `next_check_at` says when a claim takes it again)
      ▲ resume_waiting:   its worker died (the sweeper), or shut down (release_unstarted)

A waiting job is claimed again like any due work (`shared.jobs.claims`). `set_phase`
records what a slot does meanwhile (progress only). Every write is a compare-and-set
(`shared.jobs.guards`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from shared.jobs.guards import ACTIVE, LEASE_EXPIRED, WAITS_WITHOUT_SLOT, running
from shared.models import Job, JobPhase, JobStatus


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
        running(job_id, lease_token).values(
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
        running(job_id, lease_token).values(
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
    statement = running(job_id, lease_token).where(WAITS_WITHOUT_SLOT)
    if lost_worker:
        statement = statement.where(LEASE_EXPIRED)
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
        running(job_id, lease_token).values(
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
        running(job_id, lease_token)
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
        running(job_id, lease_token).values(
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
