"""Accounts: trade a TabPFN token for an API key, manage keys, rotate secrets, delete.

Routes call these with the request's session and commit afterwards.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.context import AppContext
from shared.errors import Conflict, NotFound, ServiceUnavailable, TabPFNTokenRejected
from shared.jobs import reuse
from shared.models import ApiKey, Model, ModelStatus, User
from shared.security import api_keys
from shared.security.crypto import DecryptionFailed
from shared.tabpfn.errors import UpstreamError
from shared.tabpfn.types import TokenStatus

logger = logging.getLogger(__name__)


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def verify_with_upstream(context: AppContext, token: str) -> None:
    """Raise the matching 400/503 unless the TabPFN service accepts `token`."""
    try:
        status = context.upstream.verify_token(token)
    except UpstreamError as error:
        logger.warning("token check failed: %s", type(error).__name__)
        raise ServiceUnavailable(
            "The TabPFN service cannot be reached to check the token; try again shortly.",
            code="UPSTREAM_UNAVAILABLE",
            retry_after_s=30,
        ) from None
    if status is TokenStatus.UNVERIFIED:
        raise TabPFNTokenRejected(
            "The TabPFN account of this token has not verified its email address; verify it "
            "at https://platform.priorlabs.ai and try again.",
            code="TABPFN_EMAIL_UNVERIFIED",
        )
    if status is TokenStatus.INVALID:
        raise TabPFNTokenRejected(
            "The TabPFN service rejected this token; create one at "
            "https://platform.priorlabs.ai/account/api-keys."
        )


def find_user_by_token(session: Session, context: AppContext, token: str) -> User | None:
    """The user owning `token`, by fingerprint (current or fallback key): no decryption scan."""
    fingerprints = context.box.fingerprints(token)
    return session.execute(
        select(User).where(User.token_fingerprint.in_(fingerprints))
    ).scalar_one_or_none()


def issue_key(
    session: Session, context: AppContext, user_id: uuid.UUID, name: str | None
) -> tuple[ApiKey, str]:
    """A new key row; returns it with the full key, which is never stored."""
    new = api_keys.generate()
    key = ApiKey(
        user_id=user_id,
        key_id=new.key_id,
        secret_hash=context.hasher.hash_new(new.key_id, new.secret),
        name=name,
    )
    session.add(key)
    session.flush()
    return key, new.token


def setup(
    session: Session, context: AppContext, token: str, key_name: str | None
) -> tuple[User, ApiKey, str, str]:
    """Verify the token, find or create its user, issue a key.

    Returns the user, the key row, the full API key and the webhook secret."""
    verify_with_upstream(context, token)
    user = find_user_by_token(session, context, token)
    if user is None:
        webhook_secret = new_webhook_secret()
        user = User(
            token_fingerprint=context.box.fingerprint(token),
            tabpfn_token_encrypted=context.box.encrypt(token),
            webhook_secret_encrypted=context.box.encrypt(webhook_secret),
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError:  # the same token set up concurrently: use that user
            session.rollback()
            user = find_user_by_token(session, context, token)
            if user is None:
                raise
    else:
        _refresh_after_rotation(session, context, user, token)
    webhook_secret = context.box.decrypt(user.webhook_secret_encrypted)
    key, full_key = issue_key(session, context, user.id, key_name)
    return user, key, full_key, webhook_secret


def _refresh_after_rotation(session: Session, context: AppContext, user: User, token: str) -> None:
    """A user found through a fallback key is moved to the current key on the way."""
    current = context.box.fingerprint(token)
    if user.token_fingerprint != current:
        reuse.refingerprint(session, user.id, user.token_fingerprint, current)
        user.token_fingerprint = current
        user.tabpfn_token_encrypted = context.box.encrypt(token)
        user.webhook_secret_encrypted = context.box.reencrypt(user.webhook_secret_encrypted)
        if user.previous_webhook_secret_encrypted is not None:
            user.previous_webhook_secret_encrypted = context.box.reencrypt(
                user.previous_webhook_secret_encrypted
            )


def replace_token(session: Session, context: AppContext, user: User, token: str) -> None:
    """Re-verify and store a new TabPFN token for this user."""
    verify_with_upstream(context, token)
    owner = find_user_by_token(session, context, token)
    if owner is not None and owner.id != user.id:
        raise Conflict(
            "This TabPFN token already belongs to another account of this service.",
            code="TOKEN_IN_USE",
        )
    user.token_fingerprint = context.box.fingerprint(token)
    user.tabpfn_token_encrypted = context.box.encrypt(token)
    user.updated_at = datetime.now(UTC)


def models_fitted_under_other_tokens(session: Session, user: User) -> int:
    """The user's usable models (ready or stale) whose fit was made under another token."""
    count = session.scalar(
        select(func.count())
        .select_from(Model)
        .where(
            Model.user_id == user.id,
            Model.status.in_((ModelStatus.READY, ModelStatus.STALE)),
            or_(
                Model.fitted_token_fingerprint.is_(None),
                Model.fitted_token_fingerprint != user.token_fingerprint,
            ),
        )
    )
    return int(count or 0)


def rotate_webhook_secret(context: AppContext, user: User) -> str:
    """A new signing secret; the one it replaces keeps signing during the overlap."""
    secret = new_webhook_secret()
    now = datetime.now(UTC)
    try:
        previous: str | None = context.box.reencrypt(user.webhook_secret_encrypted)
    except DecryptionFailed:  # unreadable (its SECRET_KEY is gone): nothing to overlap with
        previous = None
    user.previous_webhook_secret_encrypted = previous
    user.webhook_secret_encrypted = context.box.encrypt(secret)
    user.webhook_secret_rotated_at = now
    user.updated_at = now
    return secret


def revoke_key(session: Session, context: AppContext, user_id: uuid.UUID, key_id: str) -> None:
    key = (
        session.execute(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.user_id == user_id))
        .unique()
        .scalar_one_or_none()
    )
    if key is None:
        raise NotFound(f"No API key with id {key_id} on your account.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    context.hasher.forget(key_id)


def delete_user(session: Session, context: AppContext, user_id: uuid.UUID) -> None:
    """Hard-delete the user; the database cascades to keys, models, jobs, payloads, deliveries."""
    key_ids = session.scalars(select(ApiKey.key_id).where(ApiKey.user_id == user_id)).all()
    session.execute(delete(User).where(User.id == user_id))
    for key_id in key_ids:
        context.hasher.forget(key_id)
