"""A job's webhook events (the outbox): its outcome, written by its final transition in the
same transaction, and, for callers who ask for it, its start.

A delivery row is created with the job's new state, so an event can never be lost between
"job finished" and "webhook sent": the delivery task (or the sweeper) sends what is pending.

Which events a job's `callback_url` receives is its `callback_events` (in the style of
Replicate's `webhook_events_filter`): `completed` (the default: `job.succeeded`,
`job.failed`, `job.canceled`) and `started` (`job.started`, once, when a worker first
takes the job).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.jobs.schemas import DEFAULT_CALLBACK_EVENTS, job_out
from shared.models import DeliveryStatus, Job, JobStatus, WebhookDelivery

EVENTS = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}
STARTED_EVENT = "job.started"
COMPLETED, STARTED = "completed", "started"
CALLBACK_EVENTS = (COMPLETED, STARTED)


def wanted(job: Job, which: str) -> bool:
    """Whether the job's caller asked for this kind of event."""
    events = job.params.get("callback_events") or DEFAULT_CALLBACK_EVENTS
    return bool(job.callback_url) and which in events


def schedule_event(session: Session, job: Job) -> WebhookDelivery | None:
    """Queue the job's final event for its callback URL, if it has one and wants it."""
    if job.status not in EVENTS or not wanted(job, COMPLETED):
        return None
    return _delivery(session, job, EVENTS[job.status])


def schedule_started(session: Session, job: Job) -> WebhookDelivery | None:
    """Queue `job.started` once per job, for callers who asked for it."""
    if not wanted(job, STARTED):
        return None
    sent = session.scalar(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.job_id == job.id, WebhookDelivery.event == STARTED_EVENT)
        .limit(1)
    )
    if sent is not None:
        return None
    return _delivery(session, job, STARTED_EVENT)


def _delivery(session: Session, job: Job, event: str) -> WebhookDelivery:
    assert job.callback_url is not None
    now = datetime.now(UTC)
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
