"""Database access: one labelled engine per process and the session helpers around it.

The API creates its engine when the app is built; the worker creates its own after the
prefork child starts (`worker_process_init`), because a pooled connection must never be
shared across a fork. The boundary owns the transaction: a request or a task commits;
services only add and flush.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings


class Database:
    """An engine plus its session factory, labelled with the process that owns it."""

    def __init__(self, settings: Settings, *, label: str, pool_size: int | None = None) -> None:
        self.label = label
        self.engine: Engine = create_engine(
            settings.DATABASE_URL,
            pool_size=pool_size or settings.DB_POOL_SIZE,
            max_overflow=pool_size or settings.DB_POOL_SIZE,
            pool_pre_ping=True,
            pool_recycle=1800,
            # Statement parameters hold user data and secrets; keep them out of error text.
            hide_parameters=True,
            connect_args={"application_name": f"tabpfn-api.{label}", "connect_timeout": 5},
        )
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        """A new session; the caller closes it (use it as a context manager)."""
        return self.sessionmaker()

    @contextlib.contextmanager
    def session_scope(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection (process shutdown)."""
        self.engine.dispose()
