"""Creating, publishing and canceling jobs (DESIGN §6.1, §6.7, §6.10).

Commit, then publish, then answer 202: the job and its payload are in Postgres before any
message names them. The message only wakes a worker; workers also find due jobs in the
table on their own, so a failed publish (Redis down) delays the job by at most one claim
interval, and the client gets its 202 either way.

A user's unfinished jobs are capped (JOB_MAX_QUEUED_PER_USER): past it, a submission is a
429 TOO_MANY_JOBS, checked before the body is parsed. The count is not locked, so
concurrent submissions of one user can overshoot the cap by at most their number.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth import CurrentUser
from api.body import RawBody
from api.context import AppContext
from api.services import idempotency
from api.services.submissions import FitSubmission, PredictSubmission, RefitSubmission
from shared import metrics
from shared.datasets import parquet
from shared.datasets.store import new_payload
from shared.errors import Conflict, TooManyJobs
from shared.jobs import guards, reuse, transitions
from shared.jobs.dispatch import publish_delivery, publish_job
from shared.jobs.failure import CANCELED_BY_USER, CANCELED_MODEL_DELETED
from shared.logs import log_context
from shared.models import (
    Base,
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelStatus,
    Payload,
    PayloadKind,
)

logger = logging.getLogger(__name__)
# A full backlog drains at the pace of the user's running jobs; look again after this.
TOO_MANY_JOBS_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Created:
    """The job a submission answers with; `replayed` when an earlier request made it."""

    job: Job
    replayed: bool


def begin(
    session: Session,
    context: AppContext,
    user_id: uuid.UUID,
    raw: RawBody,
    *,
    idempotency_key: str | None,
    scope: str,
) -> tuple[idempotency.Idempotency | None, Job | None]:
    """Every submission's first steps once its body is read (the per-user rate limit was
    hit before reading it, `api.body`): the idempotency check, then the cap on unfinished
    jobs (a replayed request still gets its job).

    Returns the request's idempotency record and, for a repeated request, its earlier job."""
    idem = idempotency.from_request(idempotency_key, raw, scope)
    existing = idempotency.replay(session, user_id, idem)
    if existing is None:
        require_room(session, user_id, context.settings.JOB_MAX_QUEUED_PER_USER)
    return idem, existing


def require_room(session: Session, user_id: uuid.UUID, cap: int) -> None:
    """429 TOO_MANY_JOBS when the user already has `cap` queued or running jobs."""
    mine = (
        select(Job.id)
        .where(
            Job.user_id == user_id,
            Job.status.in_(guards.ACTIVE),
            Job.parent_job_id.is_(None),  # a large prediction's chunks count as one job
        )
        .limit(cap)
        .subquery()
    )
    unfinished = session.scalar(select(func.count()).select_from(mine)) or 0
    if unfinished >= cap:
        raise TooManyJobs(
            f"You have {unfinished} unfinished jobs (queued or running), the most one account "
            f"may have at once ({cap}); wait for some to finish, or cancel some, then submit "
            "again.",
            retry_after_s=TOO_MANY_JOBS_RETRY_AFTER_S,
        )


def _new_job(
    context: AppContext,
    *,
    current: CurrentUser,
    kind: JobKind,
    model_id: uuid.UUID,
    payload_id: uuid.UUID,
    params: dict[str, Any],
    callback_url: str | None,
    idem: idempotency.Idempotency | None,
) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4(),
        user_id=current.id,
        kind=kind,
        status=JobStatus.QUEUED,
        model_id=model_id,
        input_payload_id=payload_id,
        params=params,
        attempts=0,
        max_attempts=context.settings.JOB_MAX_ATTEMPTS,
        # run_after comes from the database's clock (a server default), like the claim's.
        callback_url=callback_url,
        idempotency_key=idem.key if idem else None,
        request_hash=idem.request_hash if idem else None,
        created_at=now,
    )


def create_fit(
    session: Session,
    context: AppContext,
    current: CurrentUser,
    sub: FitSubmission,
    idem: idempotency.Idempotency | None,
) -> Created:
    """Store the training data, a pending model and a queued fit job, in one transaction."""
    payload = new_payload(
        current.id, PayloadKind.FIT_INPUT, parquet.encode(sub.table.columns, sub.target.values)
    )
    config = sub.options.config.model_dump(exclude_defaults=True)
    model = Model(
        id=uuid.uuid4(),
        user_id=current.id,
        name=sub.options.name,
        task=sub.options.task,
        status=ModelStatus.PENDING,
        n_samples=sub.table.n_rows,
        n_features=sub.table.n_cols,
        feature_names=sub.table.names,
        feature_kinds=[kind.value for kind in sub.table.kinds],
        classes=sub.target.classes,
        config=config,
        dataset_id=payload.id,
    )
    params: dict[str, Any] = {
        "fit_key": reuse.fit_key(payload.sha256, sub.options.task.value, config),
        "reuse": sub.options.reuse,
    }
    if sub.options.callback_events is not None:
        params["callback_events"] = sub.options.callback_events
    job = _new_job(
        context,
        current=current,
        kind=JobKind.FIT,
        model_id=model.id,
        payload_id=payload.id,
        params=params,
        callback_url=sub.options.callback_url,
        idem=idem,
    )
    model.fit_job_id = job.id
    return _store_new(session, (payload, model, job), job, current, idem)


def create_predict(
    session: Session,
    context: AppContext,
    *,
    current: CurrentUser,
    model: Model,
    sub: PredictSubmission,
    idem: idempotency.Idempotency | None,
) -> Created:
    """Store the rows to predict and a queued predict job, in one transaction."""
    payload = new_payload(current.id, PayloadKind.PREDICT_INPUT, parquet.encode(sub.table.columns))
    params: dict[str, Any] = {
        "output_type": sub.output_type,
        "quantiles": sub.quantiles,
        "config": sub.options.config.model_dump(exclude_none=True),
        "cache": sub.options.cache,
    }
    if sub.options.callback_events is not None:
        params["callback_events"] = sub.options.callback_events
    job = _new_job(
        context,
        current=current,
        kind=JobKind.PREDICT,
        model_id=model.id,
        payload_id=payload.id,
        params=params,
        callback_url=sub.options.callback_url,
        idem=idem,
    )
    return _store_new(session, (payload, job), job, current, idem)


def create_refit(
    session: Session,
    context: AppContext,
    *,
    current: CurrentUser,
    model: Model,
    sub: RefitSubmission,
    idem: idempotency.Idempotency | None,
) -> Created:
    """A fit job for the model's stored training data; the model stays as it is (and keeps
    serving predictions, if it can) until the refit succeeds."""
    dataset = session.get(Payload, model.dataset_id) if model.dataset_id else None
    if dataset is None:
        raise Conflict(
            f"The training data of model {model.id} is no longer stored; fit a new model.",
            code="DATASET_EXPIRED",
        )
    params: dict[str, Any] = {
        "config": sub.config,
        "fit_key": reuse.fit_key(dataset.sha256, model.task.value, sub.config),
        "reuse": sub.reuse,
        "refit": True,
    }
    if sub.callback_events is not None:
        params["callback_events"] = sub.callback_events
    job = _new_job(
        context,
        current=current,
        kind=JobKind.FIT,
        model_id=model.id,
        payload_id=dataset.id,
        params=params,
        callback_url=sub.callback_url,
        idem=idem,
    )
    session.execute(
        update(Model).where(Model.id == model.id).values(fit_job_id=job.id, updated_at=func.now())
    )
    return _store_new(session, (job,), job, current, idem)


def require_no_fit_running(session: Session, model: Model) -> None:
    """409 while the model's fit (or an earlier refit) has not ended.

    The model's row stays locked until the refit is committed, so two refits racing cannot
    both pass: the second reads the first one's job."""
    fit_job_id = session.scalar(
        select(Model.fit_job_id).where(Model.id == model.id).with_for_update()
    )
    if fit_job_id is None:
        return
    status = session.scalar(select(Job.status).where(Job.id == fit_job_id))
    if status is not None and not JobStatus(status).is_final:
        raise Conflict(
            f"Model {model.id} is being fit (job {fit_job_id}); wait for that job, or "
            "cancel it, before asking for a refit.",
            code="FIT_IN_PROGRESS",
        )


def _insert(session: Session, *rows: Base) -> None:
    """INSERT the rows in this order with plain Core statements.

    The submission path is hot and its rows are new and final: the unit of work's
    bookkeeping costs more than the inserts themselves (and does not order unrelated
    tables). The objects stay transient, ready to be rendered in the response."""
    connection = session.connection()
    for row in rows:
        mapper = inspect(type(row))
        values = {
            column.key: value
            for attribute in mapper.column_attrs
            for column in attribute.columns
            if (value := getattr(row, attribute.key)) is not None
        }
        connection.execute(insert(cast(Table, mapper.local_table)), values)


def _store_new(
    session: Session,
    rows: tuple[Base, ...],
    job: Job,
    current: CurrentUser,
    idem: idempotency.Idempotency | None,
) -> Created:
    """Insert and commit; a concurrent request with the same Idempotency-Key that committed
    first makes our INSERT (or commit) fail, and then its job is the answer."""
    try:
        _insert(session, *rows)
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = idempotency.replay(session, current.id, idem)
        if existing is not None:
            return Created(existing, replayed=True)
        # Otherwise a row this job references went away meanwhile.
        raise Conflict(
            "The model (or the account) was deleted while this request was processed.",
            code="MODEL_DELETED",
        ) from None
    metrics.JOBS_CREATED.labels(job.kind.value).inc()
    with log_context(job_id=job.id):
        logger.info("%s job accepted for model %s", job.kind, job.model_id)
    return Created(job, replayed=False)


def publish(context: AppContext, job: Job) -> None:
    """Wake a worker for the job; when the broker is down, workers find it on their own."""
    if not publish_job(context.publisher, job.id, job.kind):
        logger.warning(
            "job %s accepted; the broker is unavailable, a worker will find it by itself", job.id
        )


def require_ready(model: Model) -> None:
    """Predictions need a fitted model."""
    if model.status is ModelStatus.READY:
        return
    if model.status is ModelStatus.PENDING:
        message = (
            f"Model {model.id} is still being fit; poll its fit job and predict once it succeeded."
        )
    elif model.status is ModelStatus.STALE:
        message = (
            f"Model {model.id} is stale: the TabPFN service no longer has its fit. Refit it "
            f"with POST /api/v1/models/{model.id}/refit (its data is stored), then predict."
        )
    else:
        message = f"Model {model.id} failed to fit; see its fit job's error and fit again."
    raise Conflict(message, code="MODEL_NOT_READY")


def cancel(session: Session, context: AppContext, job: Job) -> Job:
    """Cancel a queued or running job (a running job's result will be discarded)."""
    if JobStatus(job.status).is_final:
        raise Conflict(f"Job {job.id} already ended ({job.status}).", code="JOB_FINISHED")
    finished = transitions.finish(session, job.id, JobStatus.CANCELED, failure=CANCELED_BY_USER)
    if finished is None:  # it ended between our read and the update
        session.rollback()
        session.refresh(job)
        raise Conflict(f"Job {job.id} already ended ({job.status}).", code="JOB_FINISHED")
    session.commit()
    with log_context(job_id=job.id):
        logger.info("job canceled by the user")
    metrics.job_finished(finished.job)
    for delivery in finished.deliveries:
        publish_delivery(context.publisher, context.db, delivery.id)
    return finished.job


def cancel_model_jobs(
    session: Session, context: AppContext, model_id: uuid.UUID
) -> list[uuid.UUID]:
    """Cancel every unfinished job of a model (before deleting it); returns delivery ids."""
    deliveries: list[uuid.UUID] = []
    job_ids = session.scalars(
        select(Job.id).where(
            Job.model_id == model_id,
            Job.status.in_(guards.ACTIVE),
            Job.parent_job_id.is_(None),  # a parent's cancel cancels its chunks
        )
    ).all()
    for job_id in job_ids:
        finished = transitions.finish(
            session, job_id, JobStatus.CANCELED, failure=CANCELED_MODEL_DELETED
        )
        if finished is not None:
            deliveries += [delivery.id for delivery in finished.deliveries]
    return deliveries
