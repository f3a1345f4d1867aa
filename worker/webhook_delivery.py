"""One webhook delivery attempt, as its own task, never inside a job (DESIGN §8).

A 2xx status line within WEBHOOK_TIMEOUT_S is delivered: one wall-clock deadline covers the
DNS lookup, connecting, TLS, sending and the status line, and no more than a few KiB of the
answer are read (`worker.webhook_http`). 410 Gone stops retrying. Anything else (other
statuses, redirects, which are not followed, the deadline, connection errors, a URL that now
resolves to a private address, and any unexpected error) is recorded as a failed attempt and
the next one is scheduled from WEBHOOK_RETRY_SCHEDULE_S: a claimed attempt always ends
recorded, never stays pending to be re-published forever. The request goes to the addresses
the URL safety check approved. For WEBHOOK_SECRET_OVERLAP_S after a secret rotation the
delivery is signed with the new and the previous secret.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update

from shared import metrics
from shared.errors import InvalidCallbackUrl
from shared.jobs.dispatch import publish_delivery
from shared.logs import log_context
from shared.models import DeliveryStatus, Job, User, WebhookDelivery
from shared.security.crypto import DecryptionFailed
from shared.webhooks import signing
from shared.webhooks.urls import ResolveTimeout, check_callback_url
from worker import webhook_http
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)


def attempt(delivery_id: uuid.UUID) -> None:
    """Claim the pending attempt, POST it, record the outcome, schedule the next if due."""
    runtime = get_runtime()
    delivery = _claim(runtime, delivery_id)
    if delivery is None:
        return
    with log_context(job_id=delivery.job_id):
        try:
            code, error = _post(runtime, delivery, _signing_secrets(runtime, delivery))
        except Exception as unexpected:
            # Whatever it was, this attempt failed and the next one is due on the schedule.
            logger.exception("webhook attempt failed unexpectedly")
            code, error = None, f"internal error ({type(unexpected).__name__})"
        outcome = "delivered" if code is not None and 200 <= code < 300 else "failed"
        if code == 410:
            outcome = "gone"
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        logger.info(
            "webhook %s attempt %d: %s",
            delivery.event,
            delivery.attempt,
            f"HTTP {code}" if code is not None else error,
        )
        next_delivery = _record(runtime, delivery, code, error, outcome)
        if next_delivery is not None and next_delivery.next_attempt_at is not None:
            delay = max(0.0, (next_delivery.next_attempt_at - datetime.now(UTC)).total_seconds())
            publish_delivery(runtime.publisher, runtime.db, next_delivery.id, countdown=delay)


def _claim(runtime: WorkerRuntime, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """Mark the attempt as in flight so a duplicate message cannot send it twice."""
    in_flight = timedelta(seconds=runtime.settings.WEBHOOK_TIMEOUT_S + 30)
    with runtime.db.session_scope() as session:
        delivery = session.scalars(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                or_(
                    WebhookDelivery.attempted_at.is_(None),
                    WebhookDelivery.attempted_at < func.now() - in_flight,
                ),
            )
            .values(attempted_at=func.now())
            .returning(WebhookDelivery),
            execution_options={"synchronize_session": False, "populate_existing": True},
        ).one_or_none()
        if delivery is not None:
            session.expunge(delivery)
    return delivery


def _signing_secrets(runtime: WorkerRuntime, delivery: WebhookDelivery) -> list[str]:
    """The user's secret, and the previous one while the rotation overlap lasts."""
    settings = runtime.settings
    overlap_since = datetime.now(UTC) - timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_S)
    with runtime.db.session_scope() as session:
        user = session.scalars(
            select(User).join(Job, Job.user_id == User.id).where(Job.id == delivery.job_id)
        ).one()
        secrets = [runtime.box.decrypt(user.webhook_secret_encrypted)]
        rotated_at = user.webhook_secret_rotated_at
        previous = user.previous_webhook_secret_encrypted
        if previous is not None and rotated_at is not None and rotated_at > overlap_since:
            # An unreadable previous secret (its SECRET_KEY removed) only ends the overlap early.
            with contextlib.suppress(DecryptionFailed):
                secrets.append(runtime.box.decrypt(previous))
    return secrets


def _post(
    runtime: WorkerRuntime, delivery: WebhookDelivery, secrets: list[str]
) -> tuple[int | None, str | None]:
    """One POST under one deadline; the status code, or None and what went wrong."""
    timeout_s = runtime.settings.WEBHOOK_TIMEOUT_S
    deadline = webhook_http.Deadline.after(timeout_s)
    no_answer = f"no answer within {timeout_s:g} s"
    try:
        checked = check_callback_url(
            delivery.url,
            allow_private=runtime.settings.WEBHOOK_ALLOW_PRIVATE_URLS,
            timeout_s=deadline.remaining(),
        )
    except ResolveTimeout:
        return None, no_answer
    except InvalidCallbackUrl as error:
        return None, f"refused: {error.message}"
    body = json.dumps(delivery.body, separators=(",", ":")).encode()
    headers = signing.headers(secrets, delivery.message_id, int(time.time()), body)
    headers["user-agent"] = "tabpfn-api-webhooks/1"
    try:
        code = webhook_http.post(checked, headers, body, deadline)
    except webhook_http.DeadlinePassed:
        return None, no_answer
    except webhook_http.InvalidAnswer as error:
        return None, f"invalid answer: {error}"
    except OSError as error:
        return None, f"connection failed ({type(error).__name__})"
    return code, None if 200 <= code < 300 else f"HTTP {code}"


def _record(
    runtime: WorkerRuntime,
    delivery: WebhookDelivery,
    code: int | None,
    error: str | None,
    outcome: str,
) -> WebhookDelivery | None:
    """Store this attempt's outcome; returns the next scheduled attempt, if any."""
    now = datetime.now(UTC)
    schedule = runtime.settings.WEBHOOK_RETRY_SCHEDULE_S
    delivered = outcome == "delivered"
    with runtime.db.session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(
                status=DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED,
                response_code=code,
                error=error,
                delivered_at=now if delivered else None,
            )
        )
        if delivered or outcome == "gone" or delivery.attempt > len(schedule):
            return None
        next_at = now + timedelta(seconds=schedule[delivery.attempt - 1])
        following = WebhookDelivery(
            job_id=delivery.job_id,
            event=delivery.event,
            message_id=delivery.message_id,
            attempt=delivery.attempt + 1,
            status=DeliveryStatus.PENDING,
            url=delivery.url,
            body=delivery.body,
            next_attempt_at=next_at,
            published_at=next_at,
        )
        session.add(following)
        session.flush()
        session.expunge(following)
    return following
