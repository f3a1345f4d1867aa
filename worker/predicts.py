"""Predictions: answered from the cache, split into chunks, or one upstream call in a slot.

A claimed prediction, in order:

1. **Cache.** An identical earlier prediction of the model (same fit, rows and output
   options; `shared.jobs.reuse`) answers it with its stored result, marked `cached`: no
   upstream call. `cache: false` opts out.
2. **Chunks.** Rows over the upstream's per-request limit for this model and output
   (`shared.jobs.chunks`) are split into chunk jobs: one short transaction stores each
   chunk's rows and its child job, and the slot is given up until the last chunk succeeds
   (`worker.merges` then joins their results in row order). Chunks are claimed like any
   job, so they run concurrently within the user's fair share, and a chunk that fails
   transiently is retried alone.
3. **One call.** Otherwise the rows go upstream in one call held in this slot; the job's
   phase follows the call (uploading, predicting, storing).

A small result is stored inline on the job row; a large one (more than
RESULT_INLINE_MAX_ROWS rows) as a Parquet payload, served by `GET /jobs/{id}/result`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sqlalchemy.orm import Session

from shared import metrics
from shared.datasets import parquet
from shared.datasets.store import new_payload, read_payload
from shared.jobs import chunks, results, reuse, waits
from shared.jobs.dispatch import publish_job
from shared.models import Job, JobKind, JobPhase, JobStatus, Model, PayloadKind, Task
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.errors import InputRejected, UpstreamUnavailable
from worker import inputs, outcomes
from worker.leases import HeldLease
from worker.progress import PhaseReporter
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)
# Wake-ups published for a split prediction: enough to reach several worker processes;
# workers also look for due chunks on their own.
_MAX_WAKE_UPS = 8


def predict(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """Answer the prediction from the cache, split it, or run it upstream in this slot."""
    facts = inputs.payload_facts(runtime, job)
    if job.parent_job_id is not None:  # a chunk: planned by its parent, never cached
        _predict_here(runtime, job, lease, facts.cost, key=None)
        return
    if facts.train_set_uid is None:
        raise inputs.ModelGone
    key = reuse.cache_key(facts.train_set_uid, facts.sha256, job.params)
    if job.params.get("cache") is not False and _cached(runtime, job, lease, key):
        return
    account, model = inputs.user_and_model(runtime, job)
    plan = _plan(runtime, job, account, model, facts)
    if len(plan) > 1:
        _split(runtime, job, lease, plan=plan, facts=facts, key=key)
        return
    _predict_here(runtime, job, lease, facts.cost, key=key)


def _cached(runtime: WorkerRuntime, job: Job, lease: HeldLease, key: str) -> bool:
    with runtime.db.session_scope() as session:
        assert job.model_id is not None
        source = reuse.cached_prediction(session, model_id=job.model_id, key=key)
        if source is None or source.result is None:
            return False
        result = {**source.result, "cached": True, "cached_from": str(source.id)}
        payload_id, source_id = source.result_payload_id, source.id
    logger.info("prediction answered from job %s's stored result; no upstream call", source_id)
    outcomes.succeed(
        runtime,
        job,
        lease,
        result=result,
        trace_id=None,
        upstream=None,
        result_payload_id=payload_id,
        cache_key=key,
    )
    return True


def _plan(
    runtime: WorkerRuntime,
    job: Job,
    account: inputs.Account,
    model: Model,
    facts: inputs.PayloadFacts,
) -> list[chunks.Chunk]:
    """The chunks this prediction needs under the upstream's limits (one: no split).

    Without the limits (the service does not answer) rows that may be over them wait and are
    tried again later: sending them whole could earn a permanent refusal for a passing
    outage. More chunks than MAX_PREDICT_CHUNKS (the limits may have shrunk since the
    submission was checked) fail the job, saying how many rows one job may send."""
    limits = runtime.upstream.limits(
        account.token, account.fingerprint, model.config.get("model_path")
    )
    if limits is None:
        if facts.rows > chunks.SAFE_ROWS_WITHOUT_LIMITS:
            raise UpstreamUnavailable(
                "The TabPFN service did not say how many rows one request may carry; "
                "this prediction waits until it does."
            )
        return chunks.plan(facts.rows, facts.rows)
    per_request = chunks.rows_per_request(
        limits,
        n_train_rows=facts.n_train_rows,
        n_cols=facts.cols,
        output_type=str(job.params["output_type"]),
    )
    most = chunks.max_rows_per_job(per_request, str(job.params["output_type"]))
    if facts.rows > most:
        raise InputRejected(
            f"These {facts.rows} rows are more than one prediction may ask for now "
            f"({most}, in requests of at most {per_request} rows); send at most {most} rows "
            "per predict job."
        )
    return chunks.plan(facts.rows, per_request)


def _split(
    runtime: WorkerRuntime,
    job: Job,
    lease: HeldLease,
    *,
    plan: list[chunks.Chunk],
    facts: inputs.PayloadFacts,
    key: str,
) -> None:
    """Store each chunk's rows and its job, and wait (without the slot) for them."""
    with runtime.budget.reserve(facts.cost):
        with runtime.db.session_scope() as session:
            assert job.input_payload_id is not None
            data = read_payload(session, job.input_payload_id)
        if data is None:
            raise inputs.ModelGone
        parts = parquet.split(data, [(chunk.start, chunk.stop) for chunk in plan])
        del data
        with runtime.db.session_scope() as session:
            payloads = [new_payload(job.user_id, PayloadKind.PREDICT_INPUT, part) for part in parts]
            session.add_all(payloads)
            session.flush()  # no ORM relationship orders these inserts before the jobs'
            children = [
                _chunk_job(session, job, chunk, payload.id, fit_id=facts.train_set_uid)
                for chunk, payload in zip(plan, payloads, strict=True)
            ]
            session.flush()
            waiting = waits.await_chunks(
                session, job.id, lease_token=lease.token, chunks_total=len(plan), cache_key=key
            )
            if not waiting:
                session.rollback()
                logger.info("job was canceled or its lease was lost; not splitting it")
                return
    logger.info("prediction of %d rows split into %d chunks", facts.rows, len(plan))
    for child in children[:_MAX_WAKE_UPS]:
        publish_job(runtime.publisher, child, JobKind.PREDICT)


def _chunk_job(
    session: Session,
    parent: Job,
    chunk: chunks.Chunk,
    payload_id: uuid.UUID,
    *,
    fit_id: str | None,
) -> uuid.UUID:
    """One chunk's job; it takes its parent's place in the user's queue, and predicts from
    the fit its parent started with (a refit meanwhile must not mix two fits in one
    result)."""
    child = Job(
        id=uuid.uuid4(),
        user_id=parent.user_id,
        kind=JobKind.PREDICT,
        status=JobStatus.QUEUED,
        model_id=parent.model_id,
        input_payload_id=payload_id,
        params={
            **parent.params,
            "rows": [chunk.start, chunk.stop],
            "train_set_uid": fit_id,
            "cache": False,
            "callback_events": [],
        },
        parent_job_id=parent.id,
        chunk_index=chunk.index,
        attempts=0,
        max_attempts=parent.max_attempts,
        created_at=parent.created_at,
    )
    session.add(child)
    return child.id


def _predict_here(
    runtime: WorkerRuntime, job: Job, lease: HeldLease, cost: int, *, key: str | None
) -> None:
    """The rows go upstream in one call; the result is stored with the job."""
    with runtime.budget.reserve(cost):
        loaded = inputs.load(runtime, job, cost)
        model = loaded.model
        fit_id = job.params.get("train_set_uid") or model.train_set_uid
        if not fit_id:
            raise inputs.ModelGone
        config = TabPFNConfig.model_validate({**model.config, **job.params.get("config", {})})
        output_type = str(job.params["output_type"])
        quantiles = job.params.get("quantiles")
        settings = runtime.settings
        if not lease.start_call():  # canceled, taken over or handed back: not ours to run
            logger.info("lease lost before the upstream call; not calling it")
            return
        reporter = PhaseReporter(runtime, job, lease, current=JobPhase.UPLOADING)
        started = time.monotonic()
        predicted = runtime.upstream.predict(
            loaded.token,
            fit_id,
            Task(model.task),
            loaded.features,
            output_type=output_type,
            quantiles=quantiles,
            config=config,
            timeout_s=min(settings.TABPFN_TIMEOUT_S, settings.JOB_TIME_LIMIT_S),
            on_phase=reporter,
        )
        metrics.upstream_call("predict", time.monotonic() - started, None)
        del loaded
        large = len(predicted.predictions) > settings.RESULT_INLINE_MAX_ROWS
        if large:  # encoding and storing a large result takes a moment of its own
            reporter(JobPhase.STORING)
        result, table = result_of(
            runtime,
            predicted.predictions,
            extras=predicted.extras,
            output_type=output_type,
            model=model,
            quantiles=quantiles,
            # A chunk's rows are always stored as a table: the merge streams the tables.
            inline_max_rows=0 if job.parent_job_id is not None else None,
        )
        outcomes.succeed(
            runtime,
            job,
            lease,
            result=result,
            table=table,
            trace_id=predicted.trace_id,
            upstream=outcomes.UpstreamReport(
                timings=predicted.timings,
                execution_mode=predicted.execution_mode,
                cache_outcome=predicted.cache_outcome,
            ),
            cache_key=key,
        )


def result_of(
    runtime: WorkerRuntime,
    predictions: list[Any],
    *,
    extras: dict[str, Any],
    output_type: str,
    model: Model,
    quantiles: list[float] | None,
    inline_max_rows: int | None = None,
) -> tuple[dict[str, Any], parquet.Encoded | None]:
    """The job's result, and the table to store when it has more than `inline_max_rows`
    rows (default RESULT_INLINE_MAX_ROWS) to keep inline."""
    classes = model.classes if output_type == "probas" else None
    limit = runtime.settings.RESULT_INLINE_MAX_ROWS if inline_max_rows is None else inline_max_rows
    inline = len(predictions) <= limit
    result: dict[str, Any] = {
        "output_type": output_type,
        "n_rows": len(predictions),
        "classes": classes,
        "quantiles": quantiles if output_type in results.WITH_QUANTILES else None,
        "inline": inline,
        "predictions": predictions if inline else None,
    }
    result.update(results.extras_entry(extras))
    if inline:
        return result, None
    frame = results.to_frame(predictions, output_type, classes, quantiles)
    return result, parquet.encode({str(name): frame[name].to_numpy() for name in frame.columns})
