"""The API app plus one benchmark-only route: `GET /bench/me?key_id=`, the same lookup and
body as `GET /api/v1/users/me` without authentication, served by the same process through
the same middleware, so the two differ only by the cost of authenticating.

`uvicorn bench.auth_app:app` (the bench builds it from the environment like the real app).
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import select

from api.deps import SessionDep
from api.main import create_app
from api.schemas.auth import UserOut
from shared.errors import NotFound
from shared.models import ApiKey, User


def build() -> FastAPI:
    application = create_app()

    @application.get("/bench/me", response_model=UserOut)
    def bench_me(key_id: str, session: SessionDep) -> UserOut:
        row = session.execute(
            select(User.id, User.created_at, User.updated_at)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_id == key_id)
        ).one_or_none()
        if row is None:
            raise NotFound("no such key")
        return UserOut(
            id=row.id, created_at=row.created_at, updated_at=row.updated_at, current_key_id=key_id
        )

    return application


app = build()
