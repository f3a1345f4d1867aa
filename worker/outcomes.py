"""How an attempt ends: recorded with one compare-and-set, then published after the commit.

- success and failure end the job (`transitions.finish`), and the job's webhook event is
  published once the row is committed;
- a transient upstream error puts the job back in the queue with exponential backoff and
  jitter, until `max_attempts`;
- the upstream's rate limit (a 429 with a short Retry-After) parks the user's jobs until the
  window ends, spending no attempt, up to JOB_MAX_RATE_LIMIT_PARKS times;
- every other upstream error fails the job at once with its code.

Each write requires the attempt's lease token: when the job was canceled or taken over
meanwhile, nothing lands and the outcome is discarded (and logged as such).
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from shared import metrics
from shared.datasets import parquet
from shared.datasets.store import new_payload
from shared.jobs import transitions
from shared.jobs.dispatch import publish_delivery, publish_job
from shared.jobs.failure import Failure
from shared.models import Job, JobErrorCode, JobKind, JobStatus, PayloadKind
from shared.tabpfn.errors import FittedModelNotFound, RateLimited, UpstreamError
from worker.leases import HeldLease
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamReport:
    """What the upstream said about the work: its timings, and for a prediction how it ran
    it (`execution_mode`) and whether its cache served it (`cache_outcome`)."""

    timings: dict[str, Any] | None = None
    execution_mode: str | None = None
    cache_outcome: str | None = None


def timings(job: Job, upstream: UpstreamReport | None) -> dict[str, Any]:
    """Where the job's time went: waiting in our queue, running, and the upstream's report."""
    now = datetime.now(UTC)
    started = job.started_at or now
    report = upstream or UpstreamReport()
    values: dict[str, Any] = {
        "queue_wait_s": round(max((started - job.created_at).total_seconds(), 0.0), 3),
        "run_s": round(max((now - started).total_seconds(), 0.0), 3),
        "upstream": report.timings,
    }
    if report.execution_mode is not None:
        values["execution_mode"] = report.execution_mode
    if report.cache_outcome is not None:
        values["cache_outcome"] = report.cache_outcome
    return values


def succeed(
    runtime: WorkerRuntime,
    job: Job,
    lease: HeldLease,
    *,
    result: dict[str, Any],
    trace_id: str | None,
    upstream: UpstreamReport | None,
    table: parquet.Encoded | None = None,
    result_payload_id: uuid.UUID | None = None,
    fit: transitions.FitFacts | None = None,
    cache_key: str | None = None,
) -> bool:
    """Store the result (a large prediction as its own payload, unless it reuses a stored
    one) and end the job; False when the outcome did not land (canceled, lease lost)."""
    with runtime.db.session_scope() as session:
        if table is not None:
            payload = new_payload(job.user_id, PayloadKind.RESULT, table)
            session.add(payload)
            session.flush()
            result_payload_id = payload.id
        finished = transitions.finish(
            session,
            job.id,
            JobStatus.SUCCEEDED,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=lease.token,
            result=result,
            result_payload_id=result_payload_id,
            trace_id=trace_id,
            timings=timings(job, upstream),
            fit=fit,
            cache_key=cache_key,
        )
        if finished is None:
            session.rollback()  # the result payload goes with it
    _after_finish(runtime, job, finished)
    return finished is not None


def fail(
    runtime: WorkerRuntime,
    job: Job,
    lease: HeldLease,
    failure: Failure,
    *,
    trace_id: str | None = None,
    fit_gone: str | None = None,
) -> None:
    """End the job as failed with `failure`. `fit_gone`: the upstream fit that no longer
    exists, so the user's models still on it turn stale."""
    with runtime.db.session_scope() as session:
        finished = transitions.finish(
            session,
            job.id,
            JobStatus.FAILED,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=lease.token,
            failure=failure,
            trace_id=trace_id,
            timings=timings(job, None),
        )
        if finished is not None and fit_gone is not None:
            stale = transitions.mark_stale(session, job.user_id, fit_gone)
            if stale:
                logger.warning("the upstream lost this model's fit: %d model(s) now stale", stale)
    _after_finish(runtime, job, finished)


def _after_finish(runtime: WorkerRuntime, job: Job, finished: transitions.Finished | None) -> None:
    if finished is None:
        discarded(runtime, job)
        return
    done = finished.job
    logger.info("job %s%s", done.status, f" ({done.error_code})" if done.error_code else "")
    metrics.job_finished(done)
    if done.status is JobStatus.SUCCEEDED:
        runtime.events.succeeded(done, done.started_at)
    else:
        runtime.events.failed(done, str(done.error_code))
    for delivery in finished.deliveries:
        publish_delivery(runtime.publisher, runtime.db, delivery.id)


def discarded(runtime: WorkerRuntime, job: Job) -> None:
    """This attempt's outcome did not land: the job was canceled or taken over meanwhile."""
    logger.info("job was canceled or its lease was lost; this attempt's outcome is discarded")
    try:  # only to tell Flower; the job row is already right
        with runtime.db.session_scope() as session:
            status = session.scalar(select(Job.status).where(Job.id == job.id))
    except SQLAlchemyError:
        return
    if status is JobStatus.CANCELED:
        runtime.events.revoked(job)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    cap = min(max_s, base_s * 2 ** max(attempt - 1, 0))
    return float(cap / 2 + random.uniform(0, cap / 2))  # noqa: S311 - jitter, not cryptography


def upstream_error(
    runtime: WorkerRuntime, job: Job, lease: HeldLease, error: UpstreamError, operation: str
) -> None:
    """Retry, park or fail after an upstream error of a submit or predict call."""
    failure = Failure(error.job_error_code, error.message)
    if isinstance(error, RateLimited):
        _park(runtime, job, lease, error, failure)
        return
    if isinstance(error, FittedModelNotFound) and job.kind is JobKind.PREDICT:
        message = (
            f"{error.message} The model is now stale: refit it with "
            f"POST /api/v1/models/{job.model_id}/refit (no new upload needed)."
        )
        gone = Failure(JobErrorCode.TABPFN_MODEL_NOT_FOUND, message)
        fail(runtime, job, lease, gone, trace_id=error.trace_id, fit_gone=error.fit_id)
        return
    retryable = error.transient and job.attempts < job.max_attempts
    logger.warning(
        "upstream error %s (%s) in %s%s",
        error.job_error_code,
        type(error).__name__,
        operation,
        "; will retry" if retryable else "",
    )
    if not retryable:
        fail(runtime, job, lease, failure, trace_id=error.trace_id)
        return
    settings = runtime.settings
    delay = backoff_delay(job.attempts, settings.JOB_RETRY_BASE_S, settings.JOB_RETRY_MAX_S)
    requeue(runtime, job, lease, failure, delay_s=delay)


def requeue(
    runtime: WorkerRuntime,
    job: Job,
    lease: HeldLease,
    failure: Failure,
    *,
    delay_s: float,
    forget_upstream_fit: bool = False,
) -> None:
    """Run the job again after `delay_s` (a new attempt), waking a worker when it is due."""
    with runtime.db.session_scope() as session:
        requeued = transitions.requeue(
            session,
            job.id,
            delay_s=delay_s,
            lease_token=lease.token,
            failure=failure,
            forget_upstream_fit=forget_upstream_fit,
        )
    if requeued is None:
        logger.info("job changed meanwhile (canceled?); retry not scheduled")
        return
    metrics.JOB_RETRIES.labels(job.kind.value, failure.code.value).inc()
    runtime.events.retried(job, failure.code.value)
    publish_job(runtime.publisher, job.id, job.kind, countdown=delay_s)
    logger.info("retry scheduled in %.1f s", delay_s)


def _park(
    runtime: WorkerRuntime, job: Job, lease: HeldLease, error: RateLimited, failure: Failure
) -> None:
    limit = runtime.settings.JOB_MAX_RATE_LIMIT_PARKS
    if job.rate_limit_parks >= limit:
        logger.warning("rate limited %d times; giving up", job.rate_limit_parks)
        message = f"{error.message} (still refused after waiting {limit} times)"
        fail(runtime, job, lease, Failure(JobErrorCode.TABPFN_RATE_LIMITED, message))
        return
    wait = max(error.retry_after_s, 0.1)
    with runtime.db.session_scope() as session:
        parked = transitions.park_rate_limited(
            session, job, lease_token=lease.token, wait_s=wait, failure=failure
        )
    if parked is None:
        logger.info("job changed meanwhile (canceled?); not parked")
        return
    metrics.JOB_RETRIES.labels(job.kind.value, failure.code.value).inc()
    runtime.events.retried(job, failure.code.value)
    publish_job(runtime.publisher, job.id, job.kind, countdown=wait)
    logger.info("upstream rate limit: this user's jobs wait %.1f s", wait)
