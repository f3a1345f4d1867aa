"""Handing jobs and webhook attempts to the broker, after their rows are committed.

A job's message is a nudge: it wakes a worker, which then claims the fairest due work from
the job table (`shared.jobs.claims`), not necessarily the job the message names. Workers
also look for due work every WORKER_CLAIM_INTERVAL_S, so a message that is lost, or never
sent because Redis was down, delays a job by at most that; nothing needs re-publishing.

A webhook attempt's message is the attempt itself: when the broker refuses it, the row is
marked as having no message in flight and the sweeper publishes it as soon as it is due.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update

from shared.db import Database
from shared.models import DeliveryStatus, JobKind, WebhookDelivery
from shared.queue import Publisher, TaskName

JOB_TASKS: dict[JobKind, TaskName] = {
    JobKind.FIT: TaskName.RUN_FIT,
    JobKind.PREDICT: TaskName.RUN_PREDICT,
}


def publish_job(
    publisher: Publisher, job_id: uuid.UUID, kind: JobKind, *, countdown: float = 0
) -> bool:
    """Wake a worker for a queued job (after `countdown` s); True when the broker took it."""
    return publisher.publish(JOB_TASKS[kind], job_id, countdown=countdown)


def publish_delivery(
    publisher: Publisher, database: Database, delivery_id: uuid.UUID, *, countdown: float = 0
) -> bool:
    """Publish a pending webhook attempt; True when the broker took it."""
    if publisher.publish(TaskName.DELIVER_WEBHOOK, delivery_id, countdown=countdown):
        return True
    with database.session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING
            )
            .values(published_at=None)
        )
    return False
