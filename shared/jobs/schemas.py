"""The public shapes of a Job and a Model (DESIGN §7).

They live in shared/ because the API returns them and the worker sends the same Job as the
`data` of a webhook event, so both always agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.jobs.result_schemas import JobResult, result_of
from shared.models import (
    Job,
    JobErrorCode,
    JobKind,
    JobPhase,
    JobStatus,
    Model,
    ModelStatus,
    Task,
)

API_PREFIX = "/api/v1"
# Which webhook events a job sends when its caller names none (shared.jobs.events).
DEFAULT_CALLBACK_EVENTS = ("completed",)


class JobError(BaseModel):
    """Why the job failed or was canceled (or, while it is queued again, why its last
    attempt did not succeed)."""

    code: JobErrorCode
    message: str


class JobLinks(BaseModel):
    self: str
    cancel: str
    model: str | None
    result: str | None


class Progress(BaseModel):
    """Where an unfinished job stands. `phase` is null once the job has ended."""

    phase: JobPhase | None = Field(
        description="queued, uploading, fitting (the upstream fits), predicting (also while "
        "a large prediction's chunks run) or storing."
    )
    chunks_done: int | None = Field(
        default=None, description="A prediction split into chunks: how many are done."
    )
    chunks_total: int | None = Field(
        default=None, description="A prediction split into chunks: how many there are."
    )
    queue_position: int | None = Field(
        default=None,
        description="While queued: 1 when this is the next of your jobs to start, 2 after "
        "that one, ... (jobs of all users take turns; see the docs on fairness).",
    )


class UpstreamFacts(BaseModel):
    """What the TabPFN service reported about the work, where it reports it."""

    timings: dict[str, Any] | None = Field(
        default=None, description="The service's own timings of the fit or prediction, seconds."
    )
    execution_mode: str | None = Field(
        default=None, description="How the service ran a prediction: standard, thinking, cache."
    )
    cache_outcome: str | None = Field(
        default=None,
        description="For a model fit with fit_mode=fit_with_cache: hit, miss, fallback; "
        "not_requested otherwise.",
    )


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
    result: JobResult | None = Field(
        description="Once the job succeeded: a fit's summary (`kind: fit`) or the "
        "predictions (`kind: predict`, typed by `output_type`)."
    )
    callback_url: str | None
    callback_events: list[str]
    trace_id: str | None
    timings: dict[str, Any] | None
    progress: Progress
    upstream: UpstreamFacts | None
    reused_from: uuid.UUID | None = Field(
        description="A fit that reused the upstream fit of this earlier model of yours "
        "(same data, task and options, same TabPFN token): no upstream call was made."
    )
    cached: bool = Field(
        description="A prediction answered from an identical earlier prediction's stored "
        "result: no upstream call was made."
    )
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


def progress_of(job: Job, queue_position: int | None = None) -> Progress:
    """A job's progress; `queue_position` is computed by the caller (it costs a query)."""
    status = JobStatus(job.status)
    if status is JobStatus.QUEUED:
        return Progress(phase=JobPhase.QUEUED, queue_position=queue_position)
    return Progress(
        phase=job.phase if status is JobStatus.RUNNING else None,
        chunks_done=job.chunks_done,
        chunks_total=job.chunks_total,
    )


def _upstream(job: Job) -> UpstreamFacts | None:
    timings = job.timings or {}
    facts = UpstreamFacts(
        timings=timings.get("upstream"),
        execution_mode=timings.get("execution_mode"),
        cache_outcome=timings.get("cache_outcome"),
    )
    return facts if facts.model_dump(exclude_none=True) else None


def job_out(job: Job, *, queue_position: int | None = None) -> JobOut:
    base = f"{API_PREFIX}/jobs/{job.id}"
    has_result = job.kind is JobKind.PREDICT and job.status is JobStatus.SUCCEEDED
    result = job.result or {}
    reused_from = result.get("reused_from")
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
        result=result_of(job.kind, job.result) if job.result is not None else None,
        callback_url=job.callback_url,
        callback_events=list(job.params.get("callback_events") or DEFAULT_CALLBACK_EVENTS),
        trace_id=job.upstream_trace_id,
        timings=job.timings,
        progress=progress_of(job, queue_position),
        upstream=_upstream(job),
        reused_from=uuid.UUID(reused_from) if reused_from else None,
        cached=bool(result.get("cached")),
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
