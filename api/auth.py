"""The auth dependency: `Authorization: Bearer tpk_<key id>_<secret>` → the current user.

One indexed query reads the key row with its user; bcrypt runs only when the in-process
cache has not verified this key recently; a revoked key fails on its very next request.
`last_used_at` is written at most once a minute per key, not on every request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update

from api.deps import ContextDep, SessionDep
from shared.errors import Unauthorized
from shared.logs import set_log_context
from shared.models import ApiKey, User
from shared.security import api_keys
from shared.security.api_keys import Verdict
from shared.security.crypto import SecretBox

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class CurrentUser:
    """The authenticated user and the key they used; the TabPFN token is decrypted on demand."""

    user: User
    key: ApiKey
    box: SecretBox

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    def tabpfn_token(self) -> str:
        """Decrypt the user's TabPFN token (only routes that call the upstream need it)."""
        return self.box.decrypt(self.user.tabpfn_token_encrypted)


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
    """Authenticate the request (401 UNAUTHORIZED otherwise)."""
    key_id, secret = _presented_key(request)
    key = (
        session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).unique().scalar_one_or_none()
    )
    if key is None or key.revoked_at is not None:
        raise Unauthorized("The API key is unknown or revoked.")
    verdict = context.hasher.verify(key_id, secret, key.secret_hash)
    if verdict is Verdict.INVALID:
        raise Unauthorized("The API key is unknown or revoked.")
    now = datetime.now(UTC)
    changes: dict[str, object] = {}
    if verdict is Verdict.VALID_REHASH:
        changes["secret_hash"] = key.secret_hash = context.hasher.hash(secret)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        changes["last_used_at"] = now
    if changes:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(**changes))
        session.commit()
    set_log_context(user_id=key.user_id)
    return CurrentUser(user=key.user, key=key, box=context.box)


CurrentUserDep = Annotated[CurrentUser, Depends(current_user)]
