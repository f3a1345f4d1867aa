"""Handing jobs and webhook attempts to the broker, after their rows are committed.

When the broker refuses (Redis down), the row is marked as having no message in flight,
so the sweeper publishes it as soon as it is due instead of waiting JOB_REPUBLISH_AFTER_S.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update

from shared.db import Database
from shared.jobs.transitions import mark_unpublished
from shared.models import DeliveryStatus, JobKind, WebhookDelivery
from shared.queue import Publisher, TaskName


def publish_job(
    publisher: Publisher,
    database: Database,
    job_id: uuid.UUID,
    kind: JobKind,
    *,
    countdown: float = 0,
) -> bool:
    """Publish a queued job's task; True when the broker took it."""
    task = TaskName.RUN_FIT if kind is JobKind.FIT else TaskName.RUN_PREDICT
    if publisher.publish(task, job_id, countdown=countdown):
        return True
    with database.session_scope() as session:
        mark_unpublished(session, job_id)
    return False


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
