"""When to poll an unfinished job again (`Retry-After`), and where a queued job stands.

A constant would be wrong both ways: a prediction finishes in about a second, a Thinking
fit in up to forty minutes. The hint follows the job's phase and what recent jobs took:

- queued: the user's recent run time of this kind, times how many of their own jobs are
  ahead of it per running slot they may hold (jobs of all users take turns);
- a fit waiting on the upstream: until the worker checks its status next (it knows when);
- a prediction waiting on its chunks: the chunks still to run, by the recent run time;
- anything else running: what recent jobs of this kind took, minus what this one has run.

Always between 1 and `MAX_RETRY_AFTER_S` seconds. Recent run times are read once per user
and kind every `_RECENT_TTL_S` per process (one small indexed query).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from datetime import UTC, datetime

from fastapi import Response
from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from shared.models import Job, JobKind, JobStatus

MAX_RETRY_AFTER_S = 30
_DEFAULT_RUN_S = {JobKind.FIT: 5.0, JobKind.PREDICT: 1.0}
_RECENT_JOBS = 20
_RECENT_TTL_S = 30.0
_recent: dict[tuple[uuid.UUID, JobKind], tuple[float, float]] = {}
_recent_lock = threading.Lock()


def set_poll_headers(
    response: Response, session: Session, job: Job, *, running_cap: int
) -> int | None:
    """`Retry-After` while the job has not ended (none once it has); returns the job's
    queue position while it is queued."""
    if JobStatus(job.status).is_final:
        if "Retry-After" in response.headers:
            del response.headers["Retry-After"]
        return None
    position = queue_position(session, job)
    response.headers["Retry-After"] = str(
        retry_after_s(session, job, queue_position=position, running_cap=running_cap)
    )
    return position


def queue_position(session: Session, job: Job) -> int | None:
    """1 when the job is the next of its user's queued jobs to start, 2 after that one, ...
    A large prediction's queued chunks ahead count one each: each starts in turn."""
    if job.status is not JobStatus.QUEUED:
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.user_id == job.user_id,
            Job.status == JobStatus.QUEUED,
            (Job.created_at < job.created_at)
            | ((Job.created_at == job.created_at) & (Job.id < job.id)),
        )
    )
    return int(ahead or 0) + 1


def recent_run_s(session: Session, user_id: uuid.UUID, kind: JobKind) -> float:
    """The mean run time of the user's latest succeeded jobs of this kind (a default
    before there are any)."""
    now = time.monotonic()
    with _recent_lock:
        cached = _recent.get((user_id, kind))
    if cached is not None and now - cached[0] < _RECENT_TTL_S:
        return cached[1]
    latest = (
        select(cast(Job.timings["run_s"].astext, Float).label("run_s"))
        .where(
            Job.user_id == user_id,
            Job.kind == kind,
            Job.status == JobStatus.SUCCEEDED,
            Job.parent_job_id.is_(None),
        )
        .order_by(Job.created_at.desc())
        .limit(_RECENT_JOBS)
        .subquery()
    )
    mean = session.scalar(select(func.avg(latest.c.run_s)))
    value = float(mean) if mean is not None else _DEFAULT_RUN_S[kind]
    with _recent_lock:
        if len(_recent) > 10_000:
            _recent.clear()
        _recent[(user_id, kind)] = (now, value)
    return value


def retry_after_s(
    session: Session, job: Job, *, queue_position: int | None, running_cap: int
) -> int:
    """Seconds until polling this unfinished job again is worth it."""
    now = datetime.now(UTC)
    if job.status is JobStatus.RUNNING and job.next_check_at is not None:
        return _clamp((job.next_check_at - now).total_seconds())
    typical = recent_run_s(session, job.user_id, job.kind)
    if job.status is JobStatus.QUEUED:
        rounds = math.ceil((queue_position or 1) / max(running_cap, 1))
        return _clamp(rounds * typical)
    if job.chunks_total is not None:
        left = job.chunks_total - (job.chunks_done or 0)
        return _clamp(math.ceil(left / max(running_cap, 1)) * typical)
    elapsed = (now - job.started_at).total_seconds() if job.started_at else 0.0
    return _clamp(typical - elapsed)


def _clamp(seconds: float) -> int:
    return int(min(max(math.ceil(seconds), 1), MAX_RETRY_AFTER_S))
