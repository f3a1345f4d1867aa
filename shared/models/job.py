"""Jobs: the row is the state machine; a Celery message only carries its id (DESIGN §6)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, CreatedAtMixin, new_id, str_enum
from shared.models.enums import JobKind, JobPhase, JobStatus


class Job(CreatedAtMixin, Base):
    """One fit or predict; claimed by compare-and-set with a lease, finished exactly once."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Due queued jobs (the claim), running jobs by lease (the sweeper).
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
        # A user's unfinished jobs, oldest first: the fair claim walks the users and reads
        # each one's queued jobs through it; submission counts them.
        Index(
            "ix_jobs_unfinished_status_user_id",
            "status",
            "user_id",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        # Jobs in worker slots doing real work, per user: the fair claim's cap counts them.
        Index(
            "ix_jobs_in_slot_user_id",
            "user_id",
            postgresql_where=text(
                "status = 'running' AND lease_token IS NOT NULL AND upstream_fit_id IS NULL"
            ),
        ),
        # Fits waiting on the upstream, by when they are checked next.
        Index(
            "ix_jobs_awaiting_upstream_next_check_at",
            "next_check_at",
            postgresql_where=text("status = 'running' AND lease_token IS NULL"),
        ),
        # Earlier identical predictions of a model, for the prediction cache.
        Index(
            "ix_jobs_succeeded_model_id_cache_key",
            "model_id",
            "cache_key",
            postgresql_where=text("status = 'succeeded' AND cache_key IS NOT NULL"),
        ),
        Index(
            "uq_jobs_user_id_idempotency_key",
            "user_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[JobKind] = mapped_column(str_enum(JobKind))
    status: Mapped[JobStatus] = mapped_column(str_enum(JobStatus))
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    input_payload_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payloads.id", ondelete="SET NULL"), index=True
    )
    params: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    result_payload_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payloads.id", ondelete="SET NULL"), index=True
    )
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Held by the worker slot doing something for the job right now; NULL while queued and
    # while a submitted fit waits on the upstream (see `next_check_at`).
    lease_token: Mapped[uuid.UUID | None]
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # Set by the database's clock, like the claim that compares it with now(): a host whose
    # clock runs ahead must not make a fresh job look "not due yet".
    run_after: Mapped[datetime] = mapped_column(server_default=func.now())
    # The upstream's id of this job's fit, committed as soon as the upstream accepted it: a
    # worker that dies afterwards is replaced by one that waits on the same fit.
    upstream_fit_id: Mapped[str | None] = mapped_column(String(64))
    upstream_submitted_at: Mapped[datetime | None]
    # While a submitted fit runs upstream: when a worker checks its status next.
    next_check_at: Mapped[datetime | None]
    # Upstream 429s that sent the job back to wait; they cost no attempt, but are bounded.
    rate_limit_parks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_url: Mapped[str | None] = mapped_column(Text)
    # A large prediction runs as chunks: child jobs (hidden from the user) of its parent,
    # each claimed, retried and leased like any job; the parent waits without a lease and
    # merges their results once `chunks_done` reaches `chunks_total`.
    parent_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    chunk_index: Mapped[int | None] = mapped_column(Integer)
    chunks_total: Mapped[int | None] = mapped_column(Integer)
    chunks_done: Mapped[int | None] = mapped_column(Integer)
    # What the worker is doing for a running job (progress); NULL while queued.
    phase: Mapped[JobPhase | None] = mapped_column(str_enum(JobPhase))
    # A succeeded prediction's identity (model fit, rows, output options): a later identical
    # prediction is answered from its result (`shared.jobs.reuse`).
    cache_key: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    upstream_trace_id: Mapped[str | None] = mapped_column(String(100))
    timings: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
