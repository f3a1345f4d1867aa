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


@dataclass(frozen=True)
class Account:
    """The job's user as the upstream knows them: the decrypted token and its fingerprint."""

    token: str
    fingerprint: str


@dataclass
class Inputs:
    """A job's token, model and decoded payload."""

    account: Account
    model: Model
    features: Any
    target: Any

    @property
    def token(self) -> str:
        return self.account.token


@dataclass(frozen=True)
class PayloadFacts:
    """What is known of a job's payload without fetching it: its estimated memory cost, its
    shape and content hash, and (for a prediction) the model's upstream fit and size."""

    cost: int
    rows: int
    cols: int
    sha256: str
    train_set_uid: str | None = None
    n_train_rows: int = 0


def payload_facts(runtime: WorkerRuntime, job: Job) -> PayloadFacts:
    """The job's payload, described (nothing is fetched)."""
    with runtime.db.session_scope() as session:
        row = session.execute(
            select(Payload.rows, Payload.cols, Payload.size_bytes, Payload.sha256).where(
                Payload.id == job.input_payload_id
            )
        ).one_or_none()
        if row is None:
            raise ModelGone
        result_cols, train_set_uid, n_train_rows = 0, None, 0
        if job.kind is JobKind.PREDICT:
            model = session.execute(
                select(Model.classes, Model.train_set_uid, Model.n_samples).where(
                    Model.id == job.model_id
                )
            ).one_or_none()
            if model is None:
                raise ModelGone
            result_cols = max(len(model.classes or []), 1) + len(job.params.get("quantiles") or [])
            train_set_uid, n_train_rows = model.train_set_uid, model.n_samples
    return PayloadFacts(
        cost=payload_cost(row.rows, row.cols, row.size_bytes, result_cols=result_cols),
        rows=row.rows,
        cols=row.cols,
        sha256=row.sha256,
        train_set_uid=train_set_uid,
        n_train_rows=n_train_rows,
    )


def cost_of(runtime: WorkerRuntime, job: Job) -> int:
    """The job's estimated peak memory, from its payload's size (nothing is fetched)."""
    return payload_facts(runtime, job).cost


def user_and_model(runtime: WorkerRuntime, job: Job) -> tuple[Account, Model]:
    """The job's user (token and fingerprint) and the job's model."""
    with runtime.db.session_scope() as session:
        return _account_and_model(runtime, session, job.user_id, job.model_id)


def _account_and_model(
    runtime: WorkerRuntime, session: Any, user_id: uuid.UUID, model_id: uuid.UUID | None
) -> tuple[Account, Model]:
    user = session.get(User, user_id)
    model = session.get(Model, model_id) if model_id else None
    if user is None or model is None:
        raise ModelGone
    account = Account(
        token=runtime.box.decrypt(user.tabpfn_token_encrypted),
        fingerprint=user.token_fingerprint,
    )
    session.expunge(model)
    return account, model


def load(runtime: WorkerRuntime, job: Job, cost: int) -> Inputs:
    """Token, model and the decoded payload, in one short transaction."""
    with runtime.db.session_scope() as session:
        account, model = _account_and_model(runtime, session, job.user_id, job.model_id)
        data = read_payload(session, job.input_payload_id) if job.input_payload_id else None
    if data is None:
        raise ModelGone
    features, target = parquet.decode(data)
    del data  # the decoded arrays replace the stored bytes for the rest of the job
    if cost > _TRIM_ABOVE_BYTES:
        release_freed_memory()
    return Inputs(account=account, model=model, features=features, target=target)
