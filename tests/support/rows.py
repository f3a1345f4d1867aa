"""Rows written straight into a private database, for unit tests of the job state machine.

Those tests use a database no worker watches (`unit_db`), so nothing but the test touches
their jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from shared.db import Database
from shared.models import Job, JobKind, JobStatus, Model, ModelStatus, Task, User
from tests.support.servers import PostgresServer
from tests.support.settings import make_settings


@pytest.fixture(scope="module")
def unit_db(postgres: PostgresServer) -> Iterator[Database]:
    """A migrated database of the module's own."""
    settings = make_settings(
        DATABASE_URL=postgres.create_migrated_database("tabpfn_unit"),
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    database = Database(settings, label="unit-test")
    yield database
    database.dispose()


@pytest.fixture
def db(unit_db: Database) -> Database:
    """The module's database, emptied: claims look at every user's jobs."""
    with unit_db.session_scope() as session:
        session.execute(text("TRUNCATE users, api_keys, models, payloads, jobs CASCADE"))
    return unit_db


def add_user(session: Session, **values: Any) -> User:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "token_fingerprint": uuid.uuid4().hex,
        "tabpfn_token_encrypted": "not-used",
        "webhook_secret_encrypted": "not-used",
    }
    user = User(**{**row, **values})
    session.add(user)
    session.flush()
    return user


def add_model(session: Session, user: User) -> Model:
    model = Model(
        id=uuid.uuid4(),
        user_id=user.id,
        task=Task.CLASSIFICATION,
        status=ModelStatus.PENDING,
        n_samples=10,
        n_features=2,
        feature_kinds=["numeric", "numeric"],
        config={},
    )
    session.add(model)
    session.flush()
    return model


def job_values(user: User, **values: Any) -> dict[str, Any]:
    """The columns of a queued fit job of `user`, overridden by `values`."""
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": user.id,
        "kind": JobKind.FIT,
        "status": JobStatus.QUEUED,
        "params": {},
        "attempts": 0,
        "max_attempts": 3,
        "created_at": datetime.now(UTC),
        "run_after": datetime.now(UTC) - timedelta(seconds=1),
    }
    row.update(values)
    return row


def add_jobs(session: Session, user: User, count: int, **values: Any) -> list[uuid.UUID]:
    """`count` jobs in one INSERT, created a microsecond apart (oldest first)."""
    start = values.pop("created_at", datetime.now(UTC))
    rows = [
        job_values(user, created_at=start + timedelta(microseconds=i), **values)
        for i in range(count)
    ]
    session.execute(insert(Job), rows)
    session.flush()
    return [row["id"] for row in rows]


def job(session: Session, job_id: uuid.UUID) -> Job:
    """The job as the database has it now."""
    return session.scalars(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).one()
