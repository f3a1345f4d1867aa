"""What a job needs from the database: the user's token, the model, and the payload.

Loaded in short transactions of their own, never held open across an upstream call. The
payload's size is read first, so the memory budget is reserved before a byte is fetched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shared.datasets import parquet
from shared.datasets.store import read_payload, release_freed_memory
from shared.models import Job, JobKind, Model, Payload, User
from worker.budget import payload_cost
from worker.runtime import WorkerRuntime

# Below this, handing freed memory back to the OS costs more than it saves.
_TRIM_ABOVE_BYTES = 32 * 1024 * 1024


class ModelGone(Exception):
    """The job's model (or its user, or its data) was deleted after the job was submitted."""


@dataclass
class Inputs:
    """A job's token, model and decoded payload."""

    token: str
    model: Model
    features: Any
    target: Any


def cost_of(runtime: WorkerRuntime, job: Job) -> int:
    """The job's estimated peak memory, from its payload's size (nothing is fetched)."""
    with runtime.db.session_scope() as session:
        row = session.execute(
            select(Payload.rows, Payload.cols, Payload.size_bytes).where(
                Payload.id == job.input_payload_id
            )
        ).one_or_none()
        if row is None:
            raise ModelGone
        result_cols = 0
        if job.kind is JobKind.PREDICT:
            classes = session.scalar(select(Model.classes).where(Model.id == job.model_id))
            result_cols = max(len(classes or []), 1) + len(job.params.get("quantiles") or [])
    return payload_cost(row.rows, row.cols, row.size_bytes, result_cols=result_cols)


def user_and_model(runtime: WorkerRuntime, job: Job) -> tuple[str, Model]:
    """The decrypted TabPFN token of the job's user, and the job's model."""
    with runtime.db.session_scope() as session:
        return _token_and_model(runtime, session, job.user_id, job.model_id)


def _token_and_model(
    runtime: WorkerRuntime, session: Any, user_id: uuid.UUID, model_id: uuid.UUID | None
) -> tuple[str, Model]:
    user = session.get(User, user_id)
    model = session.get(Model, model_id) if model_id else None
    if user is None or model is None:
        raise ModelGone
    token = runtime.box.decrypt(user.tabpfn_token_encrypted)
    session.expunge(model)
    return token, model


def load(runtime: WorkerRuntime, job: Job, cost: int) -> Inputs:
    """Token, model and the decoded payload, in one short transaction."""
    with runtime.db.session_scope() as session:
        token, model = _token_and_model(runtime, session, job.user_id, job.model_id)
        data = read_payload(session, job.input_payload_id) if job.input_payload_id else None
    if data is None:
        raise ModelGone
    features, target = parquet.decode(data)
    del data  # the decoded arrays replace the stored bytes for the rest of the job
    if cost > _TRIM_ABOVE_BYTES:
        release_freed_memory()
    return Inputs(token=token, model=model, features=features, target=target)
