"""A job's outcome event (the webhook outbox), written by its final transition in the same
transaction.

A delivery row is created with the job's new state, so an event can never be lost between
"job finished" and "webhook sent": the delivery task (or the sweeper) sends what is pending.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from shared.jobs.schemas import job_out
from shared.models import DeliveryStatus, Job, JobStatus, WebhookDelivery

EVENTS = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}


def schedule_event(session: Session, job: Job) -> WebhookDelivery | None:
    """Queue the job's final event for its callback URL, if it has one."""
    if not job.callback_url or job.status not in EVENTS:
        return None
    now = datetime.now(UTC)
    event = EVENTS[job.status]
    delivery = WebhookDelivery(
        job_id=job.id,
        event=event,
        message_id=f"msg_{uuid.uuid4().hex}",
        attempt=1,
        status=DeliveryStatus.PENDING,
        url=job.callback_url,
        body={
            "type": event,
            "timestamp": now.isoformat(),
            "data": job_out(job).model_dump(mode="json"),
        },
        next_attempt_at=now,
        published_at=now,
    )
    session.add(delivery)
    return delivery
