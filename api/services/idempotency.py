"""`Idempotency-Key` on the requests that create jobs: a retried request gets its job again.

The same key with the same request (its JSON compared canonically: other whitespace or key
order is the same request) within IDEMPOTENCY_WINDOW answers the job the first request
made; with another request, 422 IDEMPOTENCY_KEY_REUSED. The key is unique per user in the
job table, so of two requests racing with one key, the second's INSERT fails and it answers
with the first one's job (`api.services.jobs`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.body import RawBody
from shared.errors import IdempotencyKeyReused, ValidationFailed
from shared.models import Job

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


def from_request(header: str | None, raw: RawBody, scope: str) -> Idempotency | None:
    """The key and a hash of what was sent (byte for byte), scoped to the route."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
    digest = hashlib.sha256(scope.encode())
    if raw.json_bytes is not None:
        digest.update(_canonical_json(raw.json_bytes))
    else:
        for name in sorted(raw.fields):
            digest.update(f"\x00{name}={raw.fields[name]}".encode())
        digest.update(b"\x00file=" + (raw.file_bytes or b""))
    return Idempotency(key=key, request_hash=digest.hexdigest())


def _canonical_json(data: bytes) -> bytes:
    """The same JSON whatever its whitespace and key order, so a client that re-serialises
    its retry is recognised; bytes that are not JSON are hashed as sent (and refused later)."""
    try:
        return orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # not JSON, or nested too deep
        return data


def replay(session: Session, user_id: uuid.UUID, idem: Idempotency | None) -> Job | None:
    """The job an earlier identical request made; 422 if the key came with another body."""
    if idem is None:
        return None
    job = session.scalars(
        select(Job).where(Job.user_id == user_id, Job.idempotency_key == idem.key)
    ).one_or_none()
    if job is None:
        return None
    if job.created_at < datetime.now(UTC) - IDEMPOTENCY_WINDOW:
        job.idempotency_key = None  # expired: the key may name a new job
        session.flush()
        return None
    if job.request_hash != idem.request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request in the last 24 hours; "
            "use a new key for a new request."
        )
    return job
