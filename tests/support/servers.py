"""The PostgreSQL and Redis servers a test session uses: given by URL, or embedded.

`TEST_DATABASE_URL` / `TEST_REDIS_URL` point the suite at existing servers; without them
the session starts throwaway embedded ones. Either way each test database is created fresh
(and dropped at the end), so a run never touches data it did not make.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from scripts.engines import EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]


class PostgresServer:
    """Creates and drops databases on one server."""

    def __init__(self, session_dir: Path) -> None:
        given = os.environ.get("TEST_DATABASE_URL")
        self.embedded: EmbeddedPostgres | None = None
        if given:
            self.base_url = make_url(given).set(drivername="postgresql+psycopg")
        else:
            self.embedded = EmbeddedPostgres(session_dir / "postgres", ephemeral=True)
            self.embedded.start()
            self.base_url = make_url(self.embedded.url("postgres"))
        self.created: list[str] = []

    def url(self, database: str) -> str:
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        url = self.base_url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(url, autocommit=True)

    def create_database(self, prefix: str = "tabpfn_test") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def create_migrated_database(self, prefix: str = "tabpfn_test") -> str:
        """A new database at `alembic upgrade head`."""
        url = self.create_database(prefix)
        command.upgrade(alembic_config(url), "head")
        return url

    def close(self) -> None:
        with self._admin() as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.embedded is not None:
            self.embedded.stop()


def alembic_config(url: str) -> Config:
    """Alembic's config for `url`, leaving the test session's logging alone."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


class RedisServer:
    """The session's broker: given by TEST_REDIS_URL or an embedded redis-server."""

    def __init__(self, session_dir: Path) -> None:
        given = os.environ.get("TEST_REDIS_URL")
        self.embedded: EmbeddedRedis | None = None
        if given:
            self._url = given
        else:
            self.embedded = EmbeddedRedis(session_dir / "redis", persistent=False)
            self.embedded.start()
            self._url = self.embedded.url()

    def url(self) -> str:
        return self._url

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
