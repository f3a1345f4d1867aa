"""Bare FastAPI endpoints: the floor a service of the same shape can reach on this machine.

`POST /bare/fit` parses a JSON body and inserts one row; `GET /bare/me` finds an API key row
by its key id (the same indexed query the auth dependency makes) and returns a body shaped
like `GET /api/v1/users/me`, without authentication. Served with the same uvicorn command.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Body, FastAPI, HTTPException, status
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=10)
with engine.begin() as connection:
    connection.execute(
        text("CREATE TABLE IF NOT EXISTS bench_rows (id uuid PRIMARY KEY, created_at timestamptz)")
    )

app = FastAPI()


@app.post("/bare/fit", status_code=status.HTTP_202_ACCEPTED)
def bare_fit(body: dict[str, Any] = Body(...)) -> dict[str, str]:
    row_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO bench_rows (id, created_at) VALUES (:id, :now)"),
            {"id": row_id, "now": datetime.now(UTC)},
        )
    return {"id": str(row_id), "status": "queued"}


@app.get("/bare/me")
def bare_me(key_id: str) -> dict[str, str]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT users.id, users.created_at, users.updated_at FROM api_keys "
                "JOIN users ON users.id = api_keys.user_id WHERE api_keys.key_id = :key_id"
            ),
            {"key_id": key_id},
        ).one_or_none()
    if row is None:
        raise HTTPException(404)
    return {
        "id": str(row.id),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "current_key_id": key_id,
    }
