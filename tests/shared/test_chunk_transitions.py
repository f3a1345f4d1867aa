"""A split prediction's state machine, one compare-and-set at a time, against a real
PostgreSQL: the parent waits on its chunks, the last success makes it due, a failed chunk
fails it naming its rows, its end cancels the others, and stale marks only the lost fit."""

from __future__ import annotations

import uuid

from shared.db import Database
from shared.jobs import guards, transitions, waits
from shared.jobs.failure import Failure
from shared.models import JobErrorCode, JobKind, JobStatus, Model, ModelStatus
from tests.support.rows import add_jobs, add_model, add_user, db, job, unit_db

__all__ = ["db", "unit_db"]  # fixtures
BROKEN = Failure(JobErrorCode.TABPFN_REJECTED_INPUT, "the service refused the rows")


def split_prediction(database: Database, n_chunks: int = 3) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A prediction waiting on `n_chunks` running chunks of 100 rows: (parent, chunks)."""
    token = uuid.uuid4()
    with database.session_scope() as session:
        user = add_user(session)
        model = add_model(session, user)
        [parent] = add_jobs(
            session,
            user,
            1,
            kind=JobKind.PREDICT,
            status=JobStatus.RUNNING,
            lease_token=token,
            attempts=1,
            model_id=model.id,
            callback_url="http://127.0.0.1:9/hook",
            params={"output_type": "preds"},
        )
        assert waits.await_chunks(
            session, parent, lease_token=token, chunks_total=n_chunks, cache_key="key"
        )
        chunks = [
            add_jobs(
                session,
                user,
                1,
                kind=JobKind.PREDICT,
                status=JobStatus.RUNNING,
                lease_token=uuid.uuid4(),
                attempts=1,
                model_id=model.id,
                parent_job_id=parent,
                chunk_index=index,
                params={"output_type": "preds", "rows": [index * 100, (index + 1) * 100]},
            )[0]
            for index in range(n_chunks)
        ]
    return parent, chunks


def end_chunk(database: Database, chunk_id: uuid.UUID, status: JobStatus) -> list[str]:
    """End a chunk as its slot would; returns the events its end scheduled."""
    with database.session_scope() as session:
        lease = job(session, chunk_id).lease_token
        ended = transitions.finish(
            session,
            chunk_id,
            status,
            from_statuses=(JobStatus.RUNNING,),
            lease_token=lease,
            failure=BROKEN if status is JobStatus.FAILED else None,
            result={"n_rows": 100} if status is JobStatus.SUCCEEDED else None,
        )
        assert ended is not None
        return [delivery.event for delivery in ended.deliveries]


def test_the_parent_waits_without_a_lease_until_its_last_chunk_succeeds(db: Database) -> None:
    parent, chunks = split_prediction(db)
    with db.session_scope() as session:
        waiting = job(session, parent)
        assert waiting.status is JobStatus.RUNNING and waiting.lease_token is None
        assert (waiting.chunks_total, waiting.chunks_done, waiting.next_check_at) == (3, 0, None)
        assert waiting.cache_key == "key"
    for chunk in chunks[:2]:
        assert end_chunk(db, chunk, JobStatus.SUCCEEDED) == []
    with db.session_scope() as session:
        assert job(session, parent).chunks_done == 2
        assert job(session, parent).next_check_at is None
    end_chunk(db, chunks[2], JobStatus.SUCCEEDED)
    with db.session_scope() as session:
        done = job(session, parent)
        assert done.chunks_done == 3 and done.next_check_at is not None  # due for its merge


def test_a_failed_chunk_fails_the_prediction_naming_its_rows_and_cancels_the_rest(
    db: Database,
) -> None:
    parent, chunks = split_prediction(db)
    end_chunk(db, chunks[0], JobStatus.SUCCEEDED)
    events = end_chunk(db, chunks[1], JobStatus.FAILED)
    assert events == ["job.failed"]  # the parent's, to its callback; chunks have none
    with db.session_scope() as session:
        failed = job(session, parent)
        assert failed.status is JobStatus.FAILED
        assert failed.error_code == "TABPFN_REJECTED_INPUT"
        assert failed.error_message is not None
        assert "rows 100–199 (chunk 2 of 3)" in failed.error_message
        assert "the service refused the rows" in failed.error_message
        last = job(session, chunks[2])
        assert last.status is JobStatus.CANCELED and last.lease_token is None
        assert job(session, chunks[0]).status is JobStatus.SUCCEEDED


def test_canceling_the_prediction_cancels_its_chunks(db: Database) -> None:
    parent, chunks = split_prediction(db)
    with db.session_scope() as session:
        ended = transitions.finish(session, parent, JobStatus.CANCELED)
        assert ended is not None and [d.event for d in ended.deliveries] == ["job.canceled"]
    with db.session_scope() as session:
        assert {job(session, chunk).status for chunk in chunks} == {JobStatus.CANCELED}
        # A slot still running a chunk finds its lease gone: its outcome cannot land.
        assert (
            transitions.finish(
                session, chunks[0], JobStatus.SUCCEEDED, from_statuses=(JobStatus.RUNNING,)
            )
            is None
        )


def test_the_sweeper_wakes_a_prediction_whose_chunks_all_ended(db: Database) -> None:
    parent, chunks = split_prediction(db, n_chunks=2)
    with db.session_scope() as session:
        assert waits.wake_waiting_parents(session) == 0  # chunks still run
        for chunk in chunks:  # ended without the parent hearing of it
            session.execute(guards.running(chunk, None).values(status=JobStatus.SUCCEEDED))
        assert waits.wake_waiting_parents(session) == 1
        assert job(session, parent).next_check_at is not None


def test_a_merge_interrupted_by_a_crash_resumes_waiting(db: Database) -> None:
    parent, chunks = split_prediction(db, n_chunks=1)
    end_chunk(db, chunks[0], JobStatus.SUCCEEDED)
    merging = uuid.uuid4()
    with db.session_scope() as session:  # a merge claimed it, then its worker died
        session.execute(guards.running(parent, None).values(lease_token=merging))
        assert waits.resume_waiting(session, parent, lease_token=merging)
        resumed = job(session, parent)
        assert resumed.lease_token is None and resumed.next_check_at is not None


def test_stale_marks_only_the_models_still_on_the_lost_fit(db: Database) -> None:
    with db.session_scope() as session:
        user = add_user(session)
        # The model that lost its fit, one that reused that fit, and one refit since.
        models = [add_model(session, user) for _ in range(3)]
        stranger = add_model(session, add_user(session))
        for model, fit in zip(models, ("fit-gone", "fit-gone", "fit-new"), strict=True):
            model.status, model.train_set_uid = ModelStatus.READY, fit
        stranger.status, stranger.train_set_uid = ModelStatus.READY, "fit-gone"
        session.flush()
        assert transitions.mark_stale(session, user.id, "fit-gone") == 2
        statuses = [
            session.get(Model, model.id, populate_existing=True).status  # type: ignore[union-attr]
            for model in (*models, stranger)
        ]
    assert statuses == [ModelStatus.STALE, ModelStatus.STALE, ModelStatus.READY, ModelStatus.READY]
