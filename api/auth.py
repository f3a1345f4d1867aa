"""The auth dependency: `Authorization: Bearer tpk_<key id>_<secret>` → the current user.

One indexed query (a SELECT of the key row's and its user's columns, no ORM objects) reads
what a request needs; bcrypt runs only when the in-process cache has not verified this key
recently; a revoked key fails on its very next request. `last_used_at` is written at most
once a minute per key. The user's ORM row is loaded only by the routes that change it.

Wrong secrets lock out only the client that sent them, and only from that key (429 with
`Retry-After`); the client is the address trusted proxies forwarded (`api.proxies`).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from api.deps import ContextDep, SessionDep
from shared.errors import NotFound, RateLimited, Unauthorized
from shared.logs import set_log_context
from shared.models import ApiKey, User
from shared.security import api_keys
from shared.security.api_keys import Verdict
from shared.security.crypto import SecretBox

LAST_USED_RESOLUTION = timedelta(minutes=1)
# Built once: the statement (and its compiled form) is the same for every request.
_KEY_AND_USER = (
    select(
        ApiKey.id.label("key_row_id"),
        ApiKey.secret_hash,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        User.id,
        User.token_fingerprint,
        User.tabpfn_token_encrypted,
        User.created_at,
        User.updated_at,
    )
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_id == bindparam("key_id"))
)


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated user and the key they used; the TabPFN token is decrypted on demand."""

    id: uuid.UUID
    key_id: str
    token_fingerprint: str
    tabpfn_token_encrypted: str
    created_at: datetime
    updated_at: datetime
    box: SecretBox

    def tabpfn_token(self) -> str:
        """Decrypt the user's TabPFN token (only routes that call the upstream need it)."""
        return self.box.decrypt(self.tabpfn_token_encrypted)

    def load(self, session: Session) -> User:
        """The user's ORM row, for routes that change it."""
        user = session.get(User, self.id)
        if user is None:  # deleted between authentication and now
            raise NotFound("This account no longer exists.")
        return user


def _presented_key(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("Send your API key as `Authorization: Bearer tpk_...`.")
    parsed = api_keys.parse(credentials.strip())
    if parsed is None:
        raise Unauthorized("The API key is malformed; it looks like tpk_<key id>_<secret>.")
    return parsed


def current_user(request: Request, context: ContextDep, session: SessionDep) -> CurrentUser:
    """Authenticate the request (401 UNAUTHORIZED otherwise).

    It uses the request's session, so the route that follows reuses the same pooled
    connection (one checkout, one liveness ping, per request)."""
    key_id, secret = _presented_key(request)
    row = session.execute(_KEY_AND_USER, {"key_id": key_id}).one_or_none()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The API key is unknown or revoked.")
    client = request.client.host if request.client else "unknown"
    verdict = context.hasher.verify(key_id, secret, row.secret_hash, client=client)
    if verdict is Verdict.INVALID:
        raise Unauthorized("The API key is unknown or revoked.")
    if verdict is Verdict.LOCKED_OUT:
        retry_after = math.ceil(context.hasher.lockout_remaining_s(key_id, client))
        raise RateLimited(
            "Too many wrong secrets for this API key from your address; "
            f"retry in {retry_after} s with the right key.",
            retry_after_s=retry_after,
        )
    now = datetime.now(UTC)
    changes: dict[str, object] = {}
    if verdict is Verdict.VALID_REHASH:
        changes["secret_hash"] = context.hasher.hash_new(key_id, secret)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        changes["last_used_at"] = now
    if changes:
        session.execute(update(ApiKey).where(ApiKey.id == row.key_row_id).values(**changes))
        session.commit()
    set_log_context(user_id=row.id)
    return CurrentUser(
        id=row.id,
        key_id=key_id,
        token_fingerprint=row.token_fingerprint,
        tabpfn_token_encrypted=row.tabpfn_token_encrypted,
        created_at=row.created_at,
        updated_at=row.updated_at,
        box=context.box,
    )


CurrentUserDep = Annotated[CurrentUser, Depends(current_user)]
