"""The sweeper (beat, every SWEEP_INTERVAL_S): the safety net under every other mechanism.

- queued jobs whose message never left (publish failed: Redis was down) are published;
  queued jobs whose message seems lost (Redis restarted without its data) are re-published
  when the queue holds fewer messages than there are due jobs;
- running jobs whose lease expired (the worker died or stalled) are re-queued, or failed
  with WORKER_LOST after max_attempts;
- pending webhook attempts whose message seems lost are re-published;
- at most hourly, finished jobs older than RESULT_RETENTION_DAYS and payloads nothing
  references any more are purged.

One sweep runs at a time (a Redis key with a time to live), and every action is a
compare-and-set on the job row, so a sweep racing a worker, a cancel or another sweep
(if the key expired mid-sweep) changes each job at most once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from shared.jobs import transitions
from shared.jobs.dispatch import publish_delivery, publish_job
from shared.models import (
    DeliveryStatus,
    Job,
    JobKind,
    JobStatus,
    Model,
    Payload,
    WebhookDelivery,
)
from shared.queue import TASK_QUEUES, TaskName
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)
BATCH = 500
RETENTION_EVERY_S = 3600
ORPHAN_PAYLOAD_AGE = timedelta(days=1)


def sweep() -> None:
    runtime = get_runtime()
    if not _take_turn(runtime, "sweep", max(runtime.settings.SWEEP_INTERVAL_S * 0.8, 0.5)):
        return
    republish_queued_jobs(runtime)
    recover_expired_leases(runtime)
    republish_pending_deliveries(runtime)
    if _take_turn(runtime, "retention", RETENTION_EVERY_S):
        purge_expired(runtime)


def _take_turn(runtime: WorkerRuntime, name: str, seconds: float) -> bool:
    """One sweeper at a time across all workers (a Redis key with a time to live)."""
    key = f"tabpfn-api:sweeper:{name}"
    return bool(runtime.redis.set(key, "1", nx=True, px=int(seconds * 1000)))


def _task_for(kind: JobKind) -> TaskName:
    return TaskName.RUN_FIT if kind is JobKind.FIT else TaskName.RUN_PREDICT


def republish_queued_jobs(runtime: WorkerRuntime) -> int:
    """Publish due queued jobs that have no message in flight; returns how many."""
    settings = runtime.settings
    # The database's clock, like run_after and published_at themselves.
    due = func.now() - timedelta(seconds=settings.JOB_PUBLISH_GRACE_S)
    stale = func.now() - timedelta(seconds=settings.JOB_REPUBLISH_AFTER_S)
    with runtime.db.session_scope() as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.published_at)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.run_after <= due,
                or_(Job.published_at.is_(None), Job.published_at < stale),
            )
            .order_by(Job.run_after)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        chosen = [(row.id, row.kind) for row in rows if row.published_at is None]
        stale_rows = [(row.id, row.kind) for row in rows if row.published_at is not None]
        if stale_rows:
            chosen += _likely_lost(runtime, _due_counts(session, due), stale_rows)
        if not chosen:
            return 0
        session.execute(
            update(Job)
            .where(Job.id.in_([job_id for job_id, _ in chosen]))
            .values(published_at=func.now())
        )
    failed = [
        job_id for job_id, kind in chosen if not runtime.publisher.publish(_task_for(kind), job_id)
    ]
    if failed:
        with runtime.db.session_scope() as session:
            session.execute(update(Job).where(Job.id.in_(failed)).values(published_at=None))
    logger.info("sweeper published %d queued job(s)", len(chosen) - len(failed))
    return len(chosen) - len(failed)


def _due_counts(session: Session, due: ColumnElement[datetime]) -> dict[JobKind, int]:
    """How many queued jobs of each kind are due (what the queues should hold)."""
    counts = session.execute(
        select(Job.kind, func.count())
        .where(Job.status == JobStatus.QUEUED, Job.run_after <= due)
        .group_by(Job.kind)
    ).all()
    return {kind: int(count) for kind, count in counts}


def _likely_lost(
    runtime: WorkerRuntime,
    due_counts: dict[JobKind, int],
    stale_rows: list[tuple[uuid.UUID, JobKind]],
) -> list[tuple[uuid.UUID, JobKind]]:
    """Stale jobs of a kind whose queue holds fewer messages than it has due jobs."""
    lost: list[tuple[uuid.UUID, JobKind]] = []
    for kind in JobKind:
        queue = TASK_QUEUES[_task_for(kind)].value
        try:
            waiting = int(runtime.redis.llen(queue))
        except Exception:  # Redis down: publishing would fail anyway
            return []
        missing = due_counts.get(kind, 0) - waiting
        if missing > 0:
            lost += [row for row in stale_rows if row[1] is kind][:missing]
    return lost


def recover_expired_leases(runtime: WorkerRuntime) -> int:
    """Re-queue (or fail with WORKER_LOST) running jobs whose worker stopped renewing."""
    recovered = 0
    with runtime.db.session_scope() as session:
        expired = session.execute(
            select(Job.id, Job.kind, Job.attempts, Job.max_attempts, Job.lease_token)
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < func.now())
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
    for row in expired:
        if row.attempts >= row.max_attempts:
            with runtime.db.session_scope() as session:
                finished = transitions.finish(
                    session,
                    row.id,
                    JobStatus.FAILED,
                    from_statuses=(JobStatus.RUNNING,),
                    lease_token=row.lease_token,
                    error=(
                        "WORKER_LOST",
                        f"The worker running this job stopped, {row.attempts} time(s); giving up.",
                    ),
                )
            if finished is not None:
                logger.warning("job %s failed: worker lost after %d attempts", row.id, row.attempts)
                if finished.delivery is not None:
                    publish_delivery(runtime.publisher, runtime.db, finished.delivery.id)
            continue
        with runtime.db.session_scope() as session:
            job = transitions.requeue(
                session,
                row.id,
                delay_s=0,
                lease_token=row.lease_token,
                error=("WORKER_LOST", "The worker running this job stopped; it will run again."),
            )
        if job is not None:
            logger.warning(
                "job %s re-queued: its worker stopped (attempt %d)", row.id, row.attempts
            )
            publish_job(runtime.publisher, runtime.db, row.id, row.kind)
            recovered += 1
    return recovered


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
