"""The last step of a prediction that ran as chunks: their results joined in row order.

Claimed like a status check once its last chunk succeeded (`shared.jobs.transitions`): the
slot reads every chunk's result, concatenates them in chunk order (each is one entry per
row, `shared.tabpfn.outputs`), and stores the whole as the prediction's result. The chunks'
own stored rows and results are then deleted: the merged result replaces them. A crash
during the merge loses nothing: the job resumes waiting, and the next merge starts over.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from shared.datasets import parquet
from shared.datasets.store import read_payload
from shared.jobs import results
from shared.models import Job, JobPhase, JobStatus, Payload
from worker import inputs, outcomes, predicts
from worker.leases import HeldLease
from worker.progress import PhaseReporter
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


def merge(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """Join the chunks' results into the job's result and end it."""
    PhaseReporter(runtime, job, lease, current=JobPhase.PREDICTING)(JobPhase.STORING)
    _, model = inputs.user_and_model(runtime, job)
    rows: list[Any] = []
    extras: dict[str, Any] = {}
    report = outcomes.UpstreamReport()
    with runtime.db.session_scope() as session:
        chunks = session.scalars(
            select(Job).where(Job.parent_job_id == job.id).order_by(Job.chunk_index)
        ).all()
        done = [chunk for chunk in chunks if chunk.status is JobStatus.SUCCEEDED]
        if len(done) != job.chunks_total or len(done) != len(chunks):
            raise RuntimeError(f"merge found {len(done)} succeeded chunks of {job.chunks_total}")
        for chunk in done:
            rows += _rows_of(session, chunk)
        first = done[0]
        extras = {key: value for key, value in (first.result or {}).items() if key == "borders"}
        timings = first.timings or {}
        report = outcomes.UpstreamReport(
            timings={"requests": len(done)},
            execution_mode=timings.get("execution_mode"),
            cache_outcome=timings.get("cache_outcome"),
        )
        chunk_payloads = [
            payload_id
            for chunk in done
            for payload_id in (chunk.input_payload_id, chunk.result_payload_id)
            if payload_id is not None
        ]
    output_type = str(job.params["output_type"])
    result, table = predicts.result_of(
        runtime,
        rows,
        extras=extras,
        output_type=output_type,
        model=model,
        quantiles=job.params.get("quantiles"),
    )
    result["chunks"] = len(done)
    outcomes.succeed(
        runtime, job, lease, result=result, table=table, trace_id=None, upstream=report
    )
    _drop_chunk_payloads(runtime, job.id, chunk_payloads)


def _rows_of(session: Any, chunk: Job) -> list[Any]:
    result = chunk.result or {}
    if result.get("inline", True):
        return list(result.get("predictions") or [])
    data = read_payload(session, chunk.result_payload_id) if chunk.result_payload_id else None
    if data is None:
        raise RuntimeError(f"the result of chunk {chunk.chunk_index} is no longer stored")
    return results.to_rows(parquet.read_frame(data), str(result["output_type"]))


def _drop_chunk_payloads(
    runtime: WorkerRuntime, parent_id: uuid.UUID, payload_ids: list[uuid.UUID]
) -> None:
    """The merged result replaces the chunks' rows and results (best effort: retention
    deletes what is left)."""
    if not payload_ids:
        return
    try:
        with runtime.db.session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.parent_job_id == parent_id)
                .values(input_payload_id=None, result_payload_id=None)
            )
            session.execute(delete(Payload).where(Payload.id.in_(payload_ids)))
    except Exception as error:
        logger.warning("could not delete the chunks' payloads: %s", type(error).__name__)
