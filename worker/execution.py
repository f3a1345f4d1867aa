"""Running one job: claim, call the upstream under a live lease, record exactly one outcome.

Redelivery is harmless: a message for a job that is not claimable (already running under
another lease, finished, canceled, or not yet due) is dropped. Transient upstream errors
put the job back in the queue with exponential backoff and jitter, until `max_attempts`;
permanent ones fail it at once with their code.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from shared import metrics
from shared.datasets import parquet
from shared.datasets.store import new_payload, read_payload, release_freed_memory
from shared.jobs import results, transitions
from shared.jobs.dispatch import publish_delivery, publish_job
from shared.logs import log_context
from shared.models import Job, JobKind, JobStatus, Model, PayloadKind, Task, User
from shared.security.crypto import SecretBox
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.errors import RateLimited, UpstreamError
from worker.lease import Lease, claim
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)


class ModelGone(Exception):
    """The job's model was deleted after the job was submitted."""


@dataclass
class Inputs:
    """Everything a job needs, loaded in one short transaction."""

    token: str
    model: Model
    features: Any
    target: Any
    params: dict[str, Any]


def run_job(job_id: uuid.UUID) -> None:
    """Entry point of the `jobs.run_fit` / `jobs.run_predict` tasks."""
    runtime = get_runtime()
    claimed = claim(runtime.db, job_id, runtime.settings)
    if claimed is None:
        logger.info(
            "job %s not claimable (finished, running elsewhere or not due); skipped", job_id
        )
        return
    job, token = claimed
    with log_context(job_id=job.id, attempt=job.attempts, user_id=job.user_id):
        logger.info("job started: %s, attempt %d of %d", job.kind, job.attempts, job.max_attempts)
        metrics.job_started(job)
        _execute(runtime, job, token)


def _execute(runtime: WorkerRuntime, job: Job, lease_token: uuid.UUID) -> None:
    lease = Lease(runtime.db, job.id, lease_token, runtime.settings)
    started = time.monotonic()
    try:
        with lease.kept_alive():
            inputs = _load_inputs(runtime, job)
            if lease.lost.is_set():  # canceled, or recovered by the sweeper: not ours to run
                logger.info("lease lost before the upstream call; not calling it")
                return
            result, table, trace_id, upstream_timings, uid = _call_upstream(runtime, job, inputs)
        timings = _timings(job, started, upstream_timings)
        with runtime.db.session_scope() as session:
            result_payload_id = None
            if table is not None:  # a large prediction, kept apart from the job row
                payload = new_payload(job.user_id, PayloadKind.RESULT, table)
                session.add(payload)
                session.flush()
                result_payload_id = payload.id
            finished = transitions.finish(
                session,
                job.id,
                JobStatus.SUCCEEDED,
                from_statuses=(JobStatus.RUNNING,),
                lease_token=lease_token,
                result=result,
                result_payload_id=result_payload_id,
                trace_id=trace_id,
                timings=timings,
                train_set_uid=uid,
            )
            if finished is None:
                session.rollback()
        _after_finish(runtime, finished, started)
    except UpstreamError as error:
        _on_upstream_error(runtime, job, lease_token, error, started)
    except ModelGone:
        _fail(
            runtime, job, lease_token, ("TABPFN_MODEL_NOT_FOUND", "The model was deleted."), started
        )
    except (OperationalError, InterfaceError) as error:
        # The database went away: nothing can be recorded now. The job keeps its lease,
        # which expires; the sweeper re-queues it once the database is back.
        logger.warning("database unavailable (%s); the job will be recovered", type(error).__name__)
    except SoftTimeLimitExceeded:
        limit = runtime.settings.JOB_TIME_LIMIT_S
        _fail(
            runtime, job, lease_token, ("TIMEOUT", f"The job ran longer than {limit} s."), started
        )
    except Exception:
        logger.exception("job failed with an internal error")
        message = f"An internal error stopped this job; quote job id {job.id} when reporting it."
        _fail(runtime, job, lease_token, ("INTERNAL_ERROR", message), started)


def _load_inputs(runtime: WorkerRuntime, job: Job) -> Inputs:
    with runtime.db.session_scope() as session:
        user = session.get(User, job.user_id)
        model = session.get(Model, job.model_id) if job.model_id else None
        data = read_payload(session, job.input_payload_id) if job.input_payload_id else None
        if user is None or model is None or data is None:
            raise ModelGone
        token = SecretBox.from_settings(runtime.settings).decrypt(user.tabpfn_token_encrypted)
        session.expunge_all()
    features, target = parquet.decode(data)
    del data  # the decoded arrays replace the stored bytes for the rest of the job
    release_freed_memory()
    return Inputs(token=token, model=model, features=features, target=target, params=job.params)


def _call_upstream(
    runtime: WorkerRuntime, job: Job, inputs: Inputs
) -> tuple[dict[str, Any], parquet.Encoded | None, str, dict[str, Any] | None, str | None]:
    """Fit or predict; returns (result, large-result table, trace id, timings, train_set_uid)."""
    model = inputs.model
    task = Task(model.task)
    config = TabPFNConfig.model_validate({**model.config, **inputs.params.get("config", {})})
    call_started = time.monotonic()
    if job.kind is JobKind.FIT:
        fitted = runtime.upstream.fit(inputs.token, inputs.features, inputs.target, task, config)
        metrics.upstream_call("fit", time.monotonic() - call_started, None)
        result = {
            "train_set_uid": fitted.train_set_uid,
            "n_samples": model.n_samples,
            "n_features": model.n_features,
            "classes": model.classes,
        }
        return result, None, fitted.trace_id, fitted.timings, fitted.train_set_uid
    if not model.train_set_uid:
        raise ModelGone
    output_type = str(inputs.params["output_type"])
    quantiles = inputs.params.get("quantiles")
    predicted = runtime.upstream.predict(
        inputs.token,
        model.train_set_uid,
        task,
        inputs.features,
        output_type=output_type,
        quantiles=quantiles,
        config=config,
    )
    metrics.upstream_call("predict", time.monotonic() - call_started, None)
    result, table = _predict_result(runtime, predicted.predictions, output_type, model, quantiles)
    return result, table, predicted.trace_id, predicted.timings, None


def _predict_result(
    runtime: WorkerRuntime,
    predictions: list[Any],
    output_type: str,
    model: Model,
    quantiles: list[float] | None,
) -> tuple[dict[str, Any], parquet.Encoded | None]:
    classes = model.classes if output_type == "probas" else None
    inline = len(predictions) <= runtime.settings.RESULT_INLINE_MAX_ROWS
    result: dict[str, Any] = {
        "output_type": output_type,
        "n_rows": len(predictions),
        "classes": classes,
        "quantiles": quantiles if output_type == "quantiles" else None,
        "inline": inline,
        "predictions": predictions if inline else None,
    }
    if inline:
        return result, None
    frame = results.to_frame(predictions, output_type, classes, quantiles)
    return result, parquet.encode({str(name): frame[name].to_numpy() for name in frame.columns})


def _timings(job: Job, started: float, upstream: dict[str, Any] | None) -> dict[str, Any]:
    first_start = job.started_at or datetime.now(UTC)
    return {
        "queue_wait_s": round((first_start - job.created_at).total_seconds(), 3),
        "run_s": round(time.monotonic() - started, 3),
        "upstream": upstream,
    }


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    cap = min(max_s, base_s * 2 ** max(attempt - 1, 0))
    return float(cap / 2 + random.uniform(0, cap / 2))  # noqa: S311 - jitter, not cryptography


def _on_upstream_error(
    runtime: WorkerRuntime, job: Job, lease_token: uuid.UUID, error: UpstreamError, started: float
) -> None:
    metrics.upstream_call(job.kind.value, time.monotonic() - started, error.job_error_code)
    settings = runtime.settings
    retryable = error.transient and job.attempts < job.max_attempts
    logger.warning(
        "upstream error %s (%s)%s",
        error.job_error_code,
        type(error).__name__,
        "; will retry" if retryable else "",
    )
    if not retryable:
        _fail(
            runtime,
            job,
            lease_token,
            (error.job_error_code, error.message),
            started,
            trace_id=error.trace_id,
        )
        return
    delay = backoff_delay(job.attempts, settings.JOB_RETRY_BASE_S, settings.JOB_RETRY_MAX_S)
    if isinstance(error, RateLimited):
        delay = max(delay, error.retry_after_s)
    with runtime.db.session_scope() as session:
        requeued = transitions.requeue(
            session,
            job.id,
            delay_s=delay,
            lease_token=lease_token,
            error=(error.job_error_code, error.message),
        )
    if requeued is None:
        logger.info("job changed while failing (canceled?); retry not scheduled")
        return
    metrics.JOB_RETRIES.labels(job.kind.value, error.job_error_code).inc()
    publish_job(runtime.publisher, runtime.db, job.id, job.kind, countdown=delay)
    logger.info("retry scheduled in %.1f s", delay)


def _fail(
    runtime: WorkerRuntime,
    job: Job,
    lease_token: uuid.UUID,
    error: tuple[str, str],
    started: float,
    *,
    trace_id: str | None = None,
) -> None:
    with runtime.db.session_scope() as session:
        finished = transitions.finish(
            session,
            job.id,
            JobStatus.FAILED,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=lease_token,
            error=error,
            trace_id=trace_id,
            timings=_timings(job, started, None),
        )
    _after_finish(runtime, finished, started)


def _after_finish(
    runtime: WorkerRuntime, finished: transitions.Finished | None, started: float
) -> None:
    if finished is None:
        logger.info("job was canceled or its lease was lost; this attempt's outcome is discarded")
        return
    job = finished.job
    logger.info("job %s%s", job.status, f" ({job.error_code})" if job.error_code else "")
    metrics.job_finished(job)
    if finished.delivery is not None:
        publish_delivery(runtime.publisher, runtime.db, finished.delivery.id)
