"""The public shapes of a Job and a Model (DESIGN §7).

They live in shared/ because the API returns them and the worker sends the same Job as the
`data` of a webhook event, so both always agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.models import Job, JobKind, JobStatus, Model, ModelStatus, Task

API_PREFIX = "/api/v1"


class JobError(BaseModel):
    code: str
    message: str


class JobLinks(BaseModel):
    self: str
    cancel: str
    model: str | None
    result: str | None


class JobOut(BaseModel):
    """A fit or predict job. While `queued` after a failed attempt, `error` is that attempt's."""

    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    model_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    error: JobError | None
    result: dict[str, Any] | None
    callback_url: str | None
    trace_id: str | None
    timings: dict[str, Any] | None
    links: JobLinks


class ModelOut(BaseModel):
    """A model: `pending` until its fit job succeeds, then `ready` for predictions."""

    id: uuid.UUID
    name: str | None
    task: Task
    status: ModelStatus
    n_samples: int
    n_features: int
    feature_names: list[str] | None
    classes: list[Any] | None
    config: dict[str, Any]
    created_at: datetime
    fitted_at: datetime | None
    fit_job_id: uuid.UUID | None


def job_out(job: Job) -> JobOut:
    base = f"{API_PREFIX}/jobs/{job.id}"
    has_result = job.kind is JobKind.PREDICT and job.status is JobStatus.SUCCEEDED
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        model_id=job.model_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=JobError(code=job.error_code, message=job.error_message or "")
        if job.error_code
        else None,
        result=job.result,
        callback_url=job.callback_url,
        trace_id=job.upstream_trace_id,
        timings=job.timings,
        links=JobLinks(
            self=base,
            cancel=f"{base}/cancel",
            model=f"{API_PREFIX}/models/{job.model_id}" if job.model_id else None,
            result=f"{base}/result" if has_result else None,
        ),
    )


def model_out(model: Model) -> ModelOut:
    return ModelOut(
        id=model.id,
        name=model.name,
        task=model.task,
        status=model.status,
        n_samples=model.n_samples,
        n_features=model.n_features,
        feature_names=model.feature_names,
        classes=model.classes,
        config=model.config,
        created_at=model.created_at,
        fitted_at=model.fitted_at,
        fit_job_id=model.fit_job_id,
    )
