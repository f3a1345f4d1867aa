"""Choosing the next work fairly, claiming it under a lease, and keeping leases alive.

Workers do not take jobs in the order their messages arrive: the job table is the queue
(a message only wakes a worker, see `shared.jobs.dispatch`). A claim takes, in one short
transaction:

1. due status checks of fits waiting on the upstream (and merges of predictions whose
   chunks are all done), oldest due first, up to half the batch (rounded down: a round for
   one free slot serves queued jobs first). A check is one cheap request, so it is not held
   back by any per-user cap;
2. due queued jobs, round-robin across users: each user's jobs are numbered oldest first,
   and a job's *turn* is its number plus the jobs its user already has in worker slots
   (uploading, submitting or predicting; a slot doing a status check does not count).
   Jobs are taken by turn, then age, and only while the turn is within
   `JOB_MAX_RUNNING_PER_USER`. One user's backlog of a thousand jobs therefore never
   stands in front of another user's first job, and no user holds more slots than the cap.
   Users the upstream rate-limited (`users.upstream_parked_until`) are skipped, for their
   checks too. Each user's jobs are read through a LATERAL index scan that stops at the
   cap, so a claim costs the same behind one user's thousand queued jobs as behind none;
3. more due checks, when queued jobs left room in the batch.

Claims from every worker process are serialised by one transaction-scoped advisory lock,
so the per-user counts a claim reads cannot change under it and the cap holds exactly;
the transaction takes milliseconds. Each claimed row gets a fresh lease token from the
database; every later write of that attempt requires it (`shared.jobs.transitions`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, extract, func, or_, select, text, update
from sqlalchemy.orm import Session

from shared.models import Job, JobPhase, JobStatus, User

# Any constant works; this one spells "tabpfn-claim" to whoever reads pg_locks.
CLAIM_LOCK_KEY = 0x7461_6266_6E63_6C6D
_RETURNING = {"synchronize_session": False, "populate_existing": True}


@dataclass(frozen=True)
class Claim:
    """One piece of work a worker slot now holds: a job and the lease token proving it."""

    job: Job
    lease_token: uuid.UUID

    @property
    def is_status_check(self) -> bool:
        """The fit is already upstream; this slot only asks how it is doing."""
        return self.job.upstream_fit_id is not None

    @property
    def is_merge(self) -> bool:
        """Every chunk of this large prediction is done; this slot merges their results."""
        return self.job.chunks_total is not None


@dataclass(frozen=True)
class Claimed:
    """What one claim took, and (when it took less than asked) when more becomes due."""

    claims: list[Claim]
    next_due_in_s: float | None


def claim(session: Session, *, limit: int, max_running_per_user: int, lease_s: float) -> Claimed:
    """Claim up to `limit` pieces of work; the caller commits."""
    if limit <= 0:
        return Claimed([], None)
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
    lease = {
        "lease_token": func.gen_random_uuid(),
        "lease_expires_at": func.now() + timedelta(seconds=lease_s),
        "heartbeat_at": func.now(),
        "updated_at": func.now(),
    }
    claims = _claim_checks(session, limit // 2, lease)
    claims += _claim_queued(session, limit - len(claims), max_running_per_user, lease)
    if len(claims) < limit:
        claims += _claim_checks(session, limit - len(claims), lease)
    next_due = _next_due_in(session) if len(claims) < limit else None
    return Claimed(claims, next_due)


def _not_parked() -> ColumnElement[bool]:
    return or_(User.upstream_parked_until.is_(None), User.upstream_parked_until <= func.now())


def _claim_checks(
    session: Session, limit: int, lease: Mapping[str, ColumnElement[Any]]
) -> list[Claim]:
    if limit <= 0:
        return []
    due = (
        select(Job.id)
        .join(User, User.id == Job.user_id)
        .where(
            Job.status == JobStatus.RUNNING,
            Job.lease_token.is_(None),
            Job.next_check_at <= func.now(),
            _not_parked(),
        )
        .order_by(Job.next_check_at)
        .limit(limit)
        .with_for_update(of=Job, skip_locked=True)
        # A CTE is evaluated once: as an IN (subquery) PostgreSQL may re-run the LIMIT and
        # SKIP LOCKED scan and take more rows than asked.
        .cte("due_checks")
    )
    jobs = session.scalars(
        update(Job)
        .where(Job.id == due.c.id, Job.lease_token.is_(None))
        .values(**lease)
        .returning(Job),
        execution_options=_RETURNING,
    ).all()
    return [_claim_of(job) for job in jobs]


# Queued jobs to claim next, fairly (see the module docstring). Written as SQL because the
# two scans that keep it cheap read best in it: `waiting` walks the distinct users with
# queued jobs through the partial index of unfinished jobs (one probe per user, where
# DISTINCT would read every queued row), and the LATERAL reads each eligible user's oldest
# due jobs only up to the room the cap leaves. Rows another transaction holds (a cancel, a
# model deletion) are skipped, not waited for: every worker's claims queue behind this one.
_FAIR_QUEUED = text(
    """
    WITH RECURSIVE waiting(user_id) AS (
        (SELECT user_id FROM jobs WHERE status = 'queued' ORDER BY user_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.user_id FROM jobs j
                WHERE j.status = 'queued' AND j.user_id > w.user_id
                ORDER BY j.user_id LIMIT 1)
        FROM waiting w WHERE w.user_id IS NOT NULL
    ),
    busy AS (
        SELECT user_id, count(*) AS n FROM jobs
        WHERE status = 'running' AND lease_token IS NOT NULL AND upstream_fit_id IS NULL
        GROUP BY user_id
    ),
    eligible AS (
        SELECT w.user_id, coalesce(b.n, 0) AS n
        FROM waiting w
        JOIN users u ON u.id = w.user_id
        LEFT JOIN busy b ON b.user_id = w.user_id
        WHERE (u.upstream_parked_until IS NULL OR u.upstream_parked_until <= now())
          AND coalesce(b.n, 0) < :cap
    ),
    picked AS (
        SELECT mine.id, e.n + mine.rank AS turn, mine.created_at
        FROM eligible e
        CROSS JOIN LATERAL (
            SELECT j.id, j.created_at,
                   row_number() OVER (ORDER BY j.created_at, j.id) AS rank
            FROM jobs j
            WHERE j.status = 'queued' AND j.user_id = e.user_id AND j.run_after <= now()
            ORDER BY j.created_at, j.id
            LIMIT :cap - e.n
        ) mine
        ORDER BY turn, mine.created_at
        LIMIT :limit
    )
    SELECT jobs.id FROM jobs JOIN picked ON picked.id = jobs.id
    WHERE jobs.status = 'queued'
    FOR UPDATE OF jobs SKIP LOCKED
    """
)


def _claim_queued(
    session: Session, limit: int, cap: int, lease: Mapping[str, ColumnElement[Any]]
) -> list[Claim]:
    if limit <= 0:
        return []
    ids = session.scalars(_FAIR_QUEUED, {"cap": cap, "limit": limit}).all()
    if not ids:
        return []
    jobs = session.scalars(
        update(Job)
        .where(Job.id.in_(ids))
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, func.now()),
            # A slot starts by loading the data and uploading it (the upstream call then
            # reports its own phases, `worker.progress`).
            phase=JobPhase.UPLOADING,
            **lease,
        )
        .returning(Job),
        execution_options=_RETURNING,
    ).all()
    return [_claim_of(job) for job in jobs]


def _claim_of(job: Job) -> Claim:
    assert job.lease_token is not None
    return Claim(job=job, lease_token=job.lease_token)


def _next_due_in(session: Session) -> float | None:
    """Seconds until the next queued job or status check becomes due (None: nothing waits).

    Jobs that are due but held back (their user is at the cap, or parked) are not counted:
    a slot freeing up wakes the worker that holds it, and parks end on a job's run_after."""
    soonest = func.least(
        select(func.min(Job.run_after))
        .where(Job.status == JobStatus.QUEUED, Job.run_after > func.now())
        .scalar_subquery(),
        select(func.min(Job.next_check_at))
        .where(
            and_(
                Job.status == JobStatus.RUNNING,
                Job.lease_token.is_(None),
                Job.next_check_at > func.now(),
            )
        )
        .scalar_subquery(),
    )
    seconds = session.scalar(select(extract("epoch", soonest - func.now())))
    return None if seconds is None else max(float(seconds), 0.0)


def renew(session: Session, lease_tokens: list[uuid.UUID], *, lease_s: float) -> set[uuid.UUID]:
    """Extend these leases; returns the tokens still held (a missing one was canceled, taken
    over after a stall, or finished meanwhile)."""
    if not lease_tokens:
        return set()
    renewed = session.scalars(
        update(Job)
        .where(Job.lease_token.in_(lease_tokens), Job.status == JobStatus.RUNNING)
        .values(
            lease_expires_at=func.now() + timedelta(seconds=lease_s),
            heartbeat_at=func.now(),
        )
        .returning(Job.lease_token)
    ).all()
    return {token for token in renewed if token is not None}
