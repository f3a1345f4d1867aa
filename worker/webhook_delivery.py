"""One webhook delivery attempt, as its own task, never inside a job (DESIGN §8).

2xx within WEBHOOK_TIMEOUT_S is delivered. 410 Gone stops retrying. Anything else (other
statuses, redirects, which are not followed, timeouts, connection errors, a URL that now
resolves to a private address) is recorded and the next attempt is scheduled from
WEBHOOK_RETRY_SCHEDULE_S. The request goes to the address the URL safety check approved.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, or_, update

from shared import metrics
from shared.errors import InvalidCallbackUrl
from shared.jobs.dispatch import publish_delivery
from shared.logs import log_context
from shared.models import DeliveryStatus, Job, User, WebhookDelivery
from shared.security.crypto import SecretBox
from shared.webhooks import signing
from shared.webhooks.urls import CheckedUrl, check_callback_url
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)


def attempt(delivery_id: uuid.UUID) -> None:
    """Claim the pending attempt, POST it, record the outcome, schedule the next if due."""
    runtime = get_runtime()
    claimed = _claim(runtime, delivery_id)
    if claimed is None:
        return
    delivery, secret = claimed
    with log_context(job_id=delivery.job_id):
        code, error = _post(runtime, delivery, secret)
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


def _claim(runtime: WorkerRuntime, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, str] | None:
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
        if delivery is None:
            return None
        job = session.get(Job, delivery.job_id)
        user = session.get(User, job.user_id) if job is not None else None
        if user is None:
            return None
        secret = SecretBox.from_settings(runtime.settings).decrypt(user.webhook_secret_encrypted)
        session.expunge(delivery)
    return delivery, secret


def _post(
    runtime: WorkerRuntime, delivery: WebhookDelivery, secret: str
) -> tuple[int | None, str | None]:
    settings = runtime.settings
    try:
        checked = check_callback_url(
            delivery.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS
        )
    except InvalidCallbackUrl as error:
        return None, f"refused: {error.message}"
    body = json.dumps(delivery.body, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = signing.headers(secret, delivery.message_id, timestamp, body)
    headers["user-agent"] = "tabpfn-api-webhooks/1"
    try:
        with httpx.Client(
            timeout=settings.WEBHOOK_TIMEOUT_S, follow_redirects=False, trust_env=False
        ) as client:
            response = client.post(
                _pinned_url(checked),
                content=body,
                headers={**headers, "host": _host_header(checked)},
                extensions={"sni_hostname": checked.host} if checked.scheme == "https" else {},
            )
    except httpx.TimeoutException:
        return None, f"no answer within {settings.WEBHOOK_TIMEOUT_S:g} s"
    except httpx.HTTPError as error:
        return None, f"connection failed ({type(error).__name__})"
    return response.status_code, None if response.is_success else f"HTTP {response.status_code}"


def _pinned_url(checked: CheckedUrl) -> str:
    """The URL with its host replaced by the checked address (no second DNS lookup)."""
    return str(httpx.URL(checked.url).copy_with(host=checked.address))


def _host_header(checked: CheckedUrl) -> str:
    default = 443 if checked.scheme == "https" else 80
    return checked.host if checked.port == default else f"{checked.host}:{checked.port}"


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
