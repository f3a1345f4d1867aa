"""The last step of a prediction that ran as chunks: their results joined in row order.

Claimed like a status check once its last chunk succeeded (`shared.jobs.transitions`). Each
chunk stored its rows as a Parquet table (`worker.predicts`), so the merge streams: it reads
one chunk's table at a time and appends it to the merged table (Arrow's writer, the column
types unified first), holding the memory reserved for the prediction, never every chunk at
once. A result small enough to keep inline becomes JSON rows instead. The chunks' tables
are deleted once the merged result has landed, and only then.

A crash during the merge loses nothing: the job resumes waiting, and the next merge starts
over. Every merge counts as an attempt of the job, so a merge that keeps failing (or
killing its worker) ends the job with INTERNAL_ERROR after `max_attempts` rather than
looping.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import delete, select, update

from shared.datasets import parquet
from shared.datasets.store import read_payload
from shared.jobs import results
from shared.jobs.failure import Failure
from shared.models import Job, JobErrorCode, JobPhase, JobStatus, Payload
from worker import inputs, outcomes
from worker.leases import HeldLease
from worker.predicts import result_of
from worker.progress import PhaseReporter
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Chunk:
    """What the merge needs of one succeeded chunk."""

    index: int
    rows: int
    table_id: uuid.UUID | None
    result: dict[str, Any]
    timings: dict[str, Any]


def merge(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> None:
    """Join the chunks' results into the job's result and end it."""
    if not _count_attempt(runtime, job, lease):
        return
    facts = inputs.payload_facts(runtime, job)
    with runtime.budget.reserve(facts.cost):
        PhaseReporter(runtime, job, lease, current=JobPhase.PREDICTING)(JobPhase.STORING)
        _, model = inputs.user_and_model(runtime, job)
        chunks = _chunks(runtime, job)
        n_rows = sum(chunk.rows for chunk in chunks)
        output_type = str(job.params["output_type"])
        quantiles = job.params.get("quantiles")
        extras = results.extras_of(chunks[0].result)
        if n_rows <= runtime.settings.RESULT_INLINE_MAX_ROWS:
            rows = [row for chunk in chunks for row in _rows(runtime, chunk, output_type)]
            result, table = result_of(
                runtime,
                rows,
                extras=extras,
                output_type=output_type,
                model=model,
                quantiles=quantiles,
            )
        else:
            table = _streamed(runtime, chunks)
            result = {
                "output_type": output_type,
                "n_rows": n_rows,
                "classes": model.classes if output_type == "probas" else None,
                "quantiles": quantiles if output_type in results.WITH_QUANTILES else None,
                "inline": False,
                "predictions": None,
                **results.extras_entry(extras),
            }
        result["chunks"] = len(chunks)
        first = chunks[0].timings
        report = outcomes.UpstreamReport(
            execution_mode=first.get("execution_mode"), cache_outcome=first.get("cache_outcome")
        )
        landed = outcomes.succeed(
            runtime, job, lease, result=result, table=table, trace_id=None, upstream=report
        )
    if landed:
        _drop_chunk_tables(runtime, job.id, [c.table_id for c in chunks if c.table_id])


def _count_attempt(runtime: WorkerRuntime, job: Job, lease: HeldLease) -> bool:
    """Count this merge as an attempt; past `max_attempts`, end the job instead."""
    with runtime.db.session_scope() as session:
        attempts = session.scalar(
            update(Job)
            .where(Job.id == job.id, Job.lease_token == lease.token)
            .values(attempts=Job.attempts + 1)
            .returning(Job.attempts)
        )
    if attempts is None:
        return False  # canceled or taken over meanwhile
    if attempts <= job.max_attempts:
        return True
    message = (
        f"Merging the results of this prediction's chunks failed {attempts - 1} time(s); "
        f"quote job id {job.id} when reporting it."
    )
    outcomes.fail(runtime, job, lease, Failure(JobErrorCode.INTERNAL_ERROR, message))
    return False


def _chunks(runtime: WorkerRuntime, job: Job) -> list[_Chunk]:
    with runtime.db.session_scope() as session:
        rows = session.execute(
            select(
                Job.chunk_index,
                Job.status,
                Job.result,
                Job.result_payload_id,
                Job.timings,
            )
            .where(Job.parent_job_id == job.id)
            .order_by(Job.chunk_index)
        ).all()
    done = [row for row in rows if row.status is JobStatus.SUCCEEDED and row.result]
    if not done or len(done) != job.chunks_total or len(done) != len(rows):
        raise RuntimeError(f"merge found {len(done)} succeeded chunks of {job.chunks_total}")
    return [
        _Chunk(
            index=row.chunk_index or 0,
            rows=int(row.result.get("n_rows") or 0),
            table_id=row.result_payload_id,
            result=row.result,
            timings=row.timings or {},
        )
        for row in done
    ]


def _table_bytes(runtime: WorkerRuntime, chunk: _Chunk) -> bytes:
    with runtime.db.session_scope() as session:
        data = read_payload(session, chunk.table_id) if chunk.table_id else None
    if data is None:
        raise RuntimeError(f"the result of chunk {chunk.index} is no longer stored")
    return data


def _rows(runtime: WorkerRuntime, chunk: _Chunk, output_type: str) -> list[Any]:
    if chunk.result.get("inline"):
        return list(chunk.result.get("predictions") or [])
    return results.to_rows(parquet.read_frame(_table_bytes(runtime, chunk)), output_type)


def _streamed(runtime: WorkerRuntime, chunks: list[_Chunk]) -> parquet.Encoded:
    """The chunks' tables appended in order into one table, one chunk in memory at a time."""
    schemas = [pq.read_schema(pa.BufferReader(_table_bytes(runtime, c))) for c in chunks]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, compression="zstd", compression_level=1) as writer:
        for chunk in chunks:
            table = pq.read_table(pa.BufferReader(_table_bytes(runtime, chunk)))
            writer.write_table(table.cast(schema))
            del table
    data = sink.getvalue().to_pybytes()
    return parquet.Encoded(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        rows=sum(chunk.rows for chunk in chunks),
        cols=len(schema),
    )


def _drop_chunk_tables(
    runtime: WorkerRuntime, parent_id: uuid.UUID, payload_ids: list[uuid.UUID]
) -> None:
    """The merged result replaces the chunks' tables, and their rows (best effort: retention
    deletes what is left)."""
    try:
        with runtime.db.session_scope() as session:
            inputs_of = select(Job.input_payload_id).where(
                Job.parent_job_id == parent_id, Job.input_payload_id.is_not(None)
            )
            payload_ids = payload_ids + [i for i in session.scalars(inputs_of).all() if i]
            session.execute(
                update(Job)
                .where(Job.parent_job_id == parent_id)
                .values(input_payload_id=None, result_payload_id=None)
            )
            if payload_ids:
                session.execute(delete(Payload).where(Payload.id.in_(payload_ids)))
    except Exception as error:
        logger.warning("could not delete the chunks' tables: %s", type(error).__name__)
