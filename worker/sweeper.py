"""The sweeper (beat, every SWEEP_INTERVAL_S): the safety net under every other mechanism.

- running jobs whose lease expired (the worker died or stalled): a fit the upstream already
  took resumes waiting on that same fit (no attempt spent, nothing fitted twice), a split
  prediction resumes waiting on its chunks; any other job is re-queued, or failed with
  WORKER_LOST after max_attempts;
- predictions whose chunks have all ended but which still wait are made due for their merge;
- pending webhook attempts whose message seems lost are re-published;
- at most hourly, finished jobs older than RESULT_RETENTION_DAYS and payloads nothing
  references any more are purged.

Queued jobs need no re-publishing: workers find due jobs in the table themselves
(`shared.jobs.claims`), so a lost message costs at most one claim interval.

One sweep runs at a time (a Redis key with a time to live), and every action is a
compare-and-set on the job row, so a sweep racing a worker, a cancel or another sweep
(if the key expired mid-sweep) changes each job at most once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select, update

from shared.jobs import transitions, waits
from shared.jobs.dispatch import publish_delivery, publish_job
from shared.jobs.failure import Failure
from shared.models import (
    DeliveryStatus,
    Job,
    JobErrorCode,
    JobStatus,
    Model,
    Payload,
    WebhookDelivery,
)
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)
BATCH = 500
RETENTION_EVERY_S = 3600
ORPHAN_PAYLOAD_AGE = timedelta(days=1)


def sweep() -> None:
    runtime = get_runtime()
    if not _take_turn(runtime, "sweep", max(runtime.settings.SWEEP_INTERVAL_S * 0.8, 0.5)):
        return
    recover_expired_leases(runtime)
    wake_waiting_predictions(runtime)
    republish_pending_deliveries(runtime)
    if _take_turn(runtime, "retention", RETENTION_EVERY_S):
        purge_expired(runtime)


def _take_turn(runtime: WorkerRuntime, name: str, seconds: float) -> bool:
    """One sweeper at a time across all workers (a Redis key with a time to live)."""
    key = f"tabpfn-api:sweeper:{name}"
    return bool(runtime.redis.set(key, "1", nx=True, px=int(seconds * 1000)))


def recover_expired_leases(runtime: WorkerRuntime) -> int:
    """Recover running jobs whose worker stopped renewing their lease; returns how many."""
    recovered = 0
    with runtime.db.session_scope() as session:
        expired = session.execute(
            select(
                Job.id,
                Job.kind,
                Job.attempts,
                Job.max_attempts,
                Job.lease_token,
                Job.upstream_fit_id,
                Job.chunks_total,
            )
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < func.now())
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
    for row in expired:
        # Whatever the row said when read: a fit submitted since resumes, and every move
        # below requires the lease to be expired still (a stalled slot may have renewed it).
        with runtime.db.session_scope() as session:
            resumed = waits.resume_waiting(
                session, row.id, lease_token=row.lease_token, lost_worker=True
            )
        if resumed or row.upstream_fit_id is not None or row.chunks_total is not None:
            if resumed:
                logger.warning(
                    "job %s: its worker stopped; waiting on its submitted upstream fit again",
                    row.id,
                )
                publish_job(runtime.publisher, row.id, row.kind)
                recovered += 1
            continue
        if row.attempts >= row.max_attempts:
            message = f"The worker running this job stopped, {row.attempts} time(s); giving up."
            with runtime.db.session_scope() as session:
                finished = transitions.finish(
                    session,
                    row.id,
                    JobStatus.FAILED,
                    from_statuses=(JobStatus.RUNNING,),
                    lease_token=row.lease_token,
                    failure=Failure(JobErrorCode.WORKER_LOST, message),
                    lost_worker=True,
                )
            if finished is not None:
                logger.warning("job %s failed: worker lost after %d attempts", row.id, row.attempts)
                runtime.events.failed(finished.job, JobErrorCode.WORKER_LOST.value)
                for delivery in finished.deliveries:
                    publish_delivery(runtime.publisher, runtime.db, delivery.id)
            continue
        with runtime.db.session_scope() as session:
            job = transitions.requeue(
                session,
                row.id,
                delay_s=0,
                lease_token=row.lease_token,
                failure=Failure(
                    JobErrorCode.WORKER_LOST,
                    "The worker running this job stopped; it will run again.",
                ),
                lost_worker=True,
            )
        if job is not None:
            logger.warning(
                "job %s re-queued: its worker stopped (attempt %d)", row.id, row.attempts
            )
            runtime.events.retried(job, JobErrorCode.WORKER_LOST.value)
            publish_job(runtime.publisher, row.id, row.kind)
            recovered += 1
    return recovered


def wake_waiting_predictions(runtime: WorkerRuntime) -> int:
    """Merge predictions whose chunks have all ended but which still wait (a safety net
    under the last chunk's own transition); returns how many were woken."""
    with runtime.db.session_scope() as session:
        woken = waits.wake_waiting_parents(session)
    if woken:
        logger.warning("%d prediction(s) waiting on finished chunks made due", woken)
    return woken


def republish_pending_deliveries(runtime: WorkerRuntime) -> int:
    """Re-send webhook attempts that are due but whose message seems lost."""
    settings = runtime.settings
    now = datetime.now(UTC)
    stale = now - timedelta(
        seconds=max(settings.JOB_REPUBLISH_AFTER_S, settings.WEBHOOK_TIMEOUT_S * 2)
    )
    with runtime.db.session_scope() as session:
        ids = session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at
                <= now - timedelta(seconds=settings.JOB_PUBLISH_GRACE_S),
                or_(WebhookDelivery.published_at.is_(None), WebhookDelivery.published_at < stale),
            )
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if ids:
            session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(published_at=now)
            )
    for delivery_id in ids:
        publish_delivery(runtime.publisher, runtime.db, delivery_id)
    return len(ids)


def purge_expired(runtime: WorkerRuntime) -> tuple[int, int]:
    """Delete finished jobs past retention, then payloads nothing references any more."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=runtime.settings.RESULT_RETENTION_DAYS)
    with runtime.db.session_scope() as session:
        jobs = session.execute(
            delete(Job).where(Job.finished_at.is_not(None), Job.finished_at < cutoff)
        ).rowcount  # type: ignore[attr-defined]
        referenced = or_(
            exists().where(
                or_(Job.input_payload_id == Payload.id, Job.result_payload_id == Payload.id)
            ),
            exists().where(Model.dataset_id == Payload.id),
        )
        payloads = session.execute(
            delete(Payload).where(and_(Payload.created_at < now - ORPHAN_PAYLOAD_AGE, ~referenced))
        ).rowcount  # type: ignore[attr-defined]
    if jobs or payloads:
        logger.info("retention: purged %d job(s) and %d payload(s)", jobs, payloads)
    return int(jobs), int(payloads)
