"""Depth: chunked predictions, fit reuse and prediction cache, stale models, progress.

Jobs gain their parent (a large prediction's chunks are child jobs), chunk counters, the
phase a running job is in, and a prediction's cache key; models gain what they were fitted
from (`fit_key`) and under which token (its fingerprint), for fit reuse. Model status gains
`stale` (a VARCHAR, no DDL needed).

Revision ID: 9b87517e7e44
Revises: e9fe04d1cdb2
Create Date: 2026-12-02 05:28:34.982567+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b87517e7e44"
down_revision: str | None = "e9fe04d1cdb2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("parent_job_id", sa.Uuid(), nullable=True))
    op.add_column("jobs", sa.Column("chunk_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("chunks_total", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("chunks_done", sa.Integer(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "phase",
            sa.Enum(
                "queued",
                "uploading",
                "fitting",
                "predicting",
                "storing",
                name="jobphase",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
    )
    op.add_column("jobs", sa.Column("cache_key", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_jobs_parent_job_id"), "jobs", ["parent_job_id"], unique=False)
    op.create_index(
        "ix_jobs_succeeded_model_id_cache_key",
        "jobs",
        ["model_id", "cache_key"],
        unique=False,
        postgresql_where=sa.text("status = 'succeeded' AND cache_key IS NOT NULL"),
    )
    op.create_foreign_key(
        op.f("fk_jobs_parent_job_id_jobs"),
        "jobs",
        "jobs",
        ["parent_job_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.add_column("models", sa.Column("fit_key", sa.String(length=64), nullable=True))
    op.add_column(
        "models", sa.Column("fitted_token_fingerprint", sa.String(length=64), nullable=True)
    )
    op.create_index(
        "ix_models_ready_user_id_fit_key",
        "models",
        ["user_id", "fit_key"],
        unique=False,
        postgresql_where=sa.text("status = 'ready' AND fit_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_models_ready_user_id_fit_key",
        table_name="models",
        postgresql_where=sa.text("status = 'ready' AND fit_key IS NOT NULL"),
    )
    op.drop_column("models", "fitted_token_fingerprint")
    op.drop_column("models", "fit_key")
    op.drop_constraint(op.f("fk_jobs_parent_job_id_jobs"), "jobs", type_="foreignkey")
    op.drop_index(
        "ix_jobs_succeeded_model_id_cache_key",
        table_name="jobs",
        postgresql_where=sa.text("status = 'succeeded' AND cache_key IS NOT NULL"),
    )
    op.drop_index(op.f("ix_jobs_parent_job_id"), table_name="jobs")
    op.drop_column("jobs", "cache_key")
    op.drop_column("jobs", "phase")
    op.drop_column("jobs", "chunks_done")
    op.drop_column("jobs", "chunks_total")
    op.drop_column("jobs", "chunk_index")
    op.drop_column("jobs", "parent_job_id")
