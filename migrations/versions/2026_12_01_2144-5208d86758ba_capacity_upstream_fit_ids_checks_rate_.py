"""Capacity: upstream fit ids, status checks and rate-limit parks; job messages become nudges.

Jobs keep the upstream fit id as soon as the upstream accepts a fit, and when its status is
checked next; users keep how long the upstream's rate limit parks their jobs. Workers find
due jobs in this table, so `jobs.published_at` (the sweeper's re-publishing mark) goes.
Stop the old workers before upgrading: they write `published_at`.

Revision ID: 5208d86758ba
Revises: c9ecb4046991
Create Date: 2026-12-01 21:44:08.771720+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5208d86758ba"
down_revision: str | None = "c9ecb4046991"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("upstream_fit_id", sa.String(length=64), nullable=True))
    op.add_column(
        "jobs", sa.Column("upstream_submitted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("jobs", sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs", sa.Column("rate_limit_parks", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_index(
        "ix_jobs_awaiting_upstream_next_check_at",
        "jobs",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running' AND lease_token IS NULL"),
    )
    op.create_index(
        "ix_jobs_in_slot_user_id",
        "jobs",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text(
            "status = 'running' AND lease_token IS NOT NULL AND upstream_fit_id IS NULL"
        ),
    )
    op.create_index(
        "ix_jobs_unfinished_status_user_id",
        "jobs",
        ["status", "user_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_column("jobs", "published_at")
    op.add_column(
        "users", sa.Column("upstream_parked_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("users", "upstream_parked_until")
    op.add_column(
        "jobs",
        sa.Column(
            "published_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            autoincrement=False,
            nullable=True,
        ),
    )
    op.drop_index(
        "ix_jobs_in_slot_user_id",
        table_name="jobs",
        postgresql_where=sa.text(
            "status = 'running' AND lease_token IS NOT NULL AND upstream_fit_id IS NULL"
        ),
    )
    op.drop_index(
        "ix_jobs_unfinished_status_user_id",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_index(
        "ix_jobs_awaiting_upstream_next_check_at",
        table_name="jobs",
        postgresql_where=sa.text("status = 'running' AND lease_token IS NULL"),
    )
    op.drop_column("jobs", "rate_limit_parks")
    op.drop_column("jobs", "next_check_at")
    op.drop_column("jobs", "upstream_submitted_at")
    op.drop_column("jobs", "upstream_fit_id")
