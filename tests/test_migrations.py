"""Migrations: upgrade to head leaves no drift from the models (`alembic check`), and
downgrade to base works."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from tests.support.servers import PostgresServer, alembic_config


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_upgrade(postgres: PostgresServer) -> None:
    url = postgres.create_database("tabpfn_migrations")
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.check(config)  # raises if the models and the migrations disagree
    assert {"users", "api_keys", "models", "jobs", "payloads", "webhook_deliveries"} <= (
        table_names(url)
    )
    command.downgrade(config, "base")
    assert table_names(url) == {"alembic_version"}
    command.upgrade(config, "head")
    command.check(config)
