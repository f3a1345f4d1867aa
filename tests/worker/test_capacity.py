"""Capacity and fairness on real parts (the capacity issue's fault tests): many upstream calls
in one process, a whole worker killed with 50 jobs in flight, a worker killed during a long
fit, the per-user backlog cap, the upstream's rate limit, and a backlog that does not hold
up another user."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shared.config import Settings
from tests.support.builders import (
    Account,
    classification_data,
    fit,
    fit_ready,
    predict,
    register,
    wait_for_job,
)
from tests.support.processes import ManagedProcess
from tests.support.servers import PostgresServer
from tests.support.stack import private_stack
from tests.support.standin import StandinProcess, token_id

X, Y, X_TEST, _ = classification_data(n_train=120)


@pytest.fixture
def reset_standin(standin: StandinProcess) -> Iterator[StandinProcess]:
    """Runtime switches changed by a test are undone after it."""
    yield standin
    standin.reset()


def predict_id(client: TestClient, account: Account, model_id: str) -> str:
    job_id: str = predict(client, account, model_id, X_TEST)["id"]
    return job_id


def rows(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def wait_until(condition: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def kill_whole_worker(worker: ManagedProcess) -> None:
    """SIGKILL the worker's main process and every child at once."""
    main = psutil.Process(worker.pid)
    for process in [*main.children(recursive=True), main]:
        process.send_signal(signal.SIGKILL)
    worker.popen.wait(10)


def test_one_process_keeps_many_upstream_calls_in_flight(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    standin: StandinProcess,
) -> None:
    """One worker process with 16 slots: 2 users x 8 predictions of 2 s each overlap upstream
    (they all arrive within the 2 s the first one takes), and all run in that one process."""
    with private_stack(
        postgres, settings, log_dir, tmp_path, WORKER_UPSTREAM_CONCURRENCY=16
    ) as stack:
        worker = stack.start_worker(concurrency=1)
        client = stack.client()
        accounts = [register(client, prefix="slow") for _ in range(2)]
        models = [fit_ready(client, a, X, Y)["model_id"] for a in accounts]
        since = standin.last_seq()
        jobs = [
            (a, predict_id(client, a, m))
            for a, m in zip(accounts, models, strict=True)
            for _ in range(8)
        ]
        for account, job_id in jobs:
            assert wait_for_job(client, account, job_id)["status"] == "succeeded"
    mine = {token_id(a.token) for a in accounts}
    arrivals = [
        c["ts"]
        for c in standin.calls(since)
        if c["path"] == "/tabpfn/predict" and c["token_id"] in mine
    ]
    assert len(arrivals) == 16
    assert max(arrivals) - min(arrivals) < 2.0, "the predictions did not overlap"
    pids = {
        line.split('"process": ')[1].split(",")[0]
        for line in worker.log_text().splitlines()
        if "job started: predict" in line
    }
    assert len(pids) == 1


def test_the_whole_worker_killed_with_50_jobs_in_flight_loses_nothing(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    reset_standin: StandinProcess,
) -> None:
    """50 fits of 5 users, 12 s each upstream; the worker (main process and children) is
    SIGKILLed while they are in flight. All 50 succeed on a new worker, and every fit whose
    upstream id was committed before the kill ends with that same fit: none is fitted again."""
    reset_standin.configure(fit_delay_s=12)
    with private_stack(postgres, settings, log_dir, tmp_path) as stack:
        client = stack.client()
        accounts = [register(client) for _ in range(5)]
        jobs = [
            (a, fit(client, a, X[: 60 + i], Y[: 60 + i])["id"]) for a in accounts for i in range(10)
        ]
        worker = stack.start_worker(concurrency=2)  # all 50 are queued: they start together
        stack.start_beat()
        ids = [job_id for _, job_id in jobs]
        count_sql = (
            "SELECT count(*) FILTER (WHERE status = 'running'), "
            "count(*) FILTER (WHERE status = 'queued'), count(upstream_fit_id) "
            "FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
        )

        def in_flight() -> bool:
            # Every job claimed, most of them running and half submitted. On a loaded
            # machine the first fits may already be done by then: they count as submitted.
            running, queued, submitted = rows(stack.settings, count_sql, ids=ids)[0]
            return bool(queued == 0 and running >= 25 and submitted >= 25)

        wait_until(in_flight, what="50 jobs in flight")
        kill_whole_worker(worker)
        committed = dict(
            rows(
                stack.settings,
                "SELECT id::text, upstream_fit_id FROM jobs "
                "WHERE id = ANY(CAST(:ids AS uuid[])) AND upstream_fit_id IS NOT NULL",
                ids=ids,
            )
        )
        stack.start_worker(concurrency=2)
        finished = {job_id: wait_for_job(client, a, job_id, timeout=120) for a, job_id in jobs}
    assert all(job["status"] == "succeeded" for job in finished.values()), finished
    assert len(committed) >= 25
    for job_id, fit_id in committed.items():
        assert finished[job_id]["result"]["train_set_uid"] == fit_id
        assert finished[job_id]["attempts"] == 1
    fits = [f for a in accounts for f in reset_standin.fits_of(a.token)]
    # Jobs without a committed fit id may have fitted twice (if the kill fell between the
    # upstream's answer and our commit); the others fitted exactly once.
    assert 50 <= len(fits) <= 50 + (50 - len(committed))
    used = {job["result"]["train_set_uid"] for job in finished.values()}
    assert len(used) == 50 and used <= {f["id"] for f in fits}


def test_a_worker_killed_during_a_long_fit_waits_on_the_same_fit(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    reset_standin: StandinProcess,
) -> None:
    """A 6 s fit upstream; the worker is SIGKILLed while it runs; a new worker finishes the
    job from the same upstream fit: one fit upstream, one attempt."""
    reset_standin.configure(fit_delay_s=6)
    with private_stack(postgres, settings, log_dir, tmp_path) as stack:
        worker = stack.start_worker(concurrency=1)
        stack.start_beat()
        client = stack.client()
        account = register(client)
        job_id = fit(client, account, X, Y)["id"]
        submitted_sql = "SELECT upstream_fit_id FROM jobs WHERE id = CAST(:id AS uuid)"
        wait_until(
            lambda: rows(stack.settings, submitted_sql, id=job_id)[0][0] is not None,
            what="the fit to be submitted",
        )
        assert reset_standin.fits_of(account.token)[0]["status"] == "pending"
        kill_whole_worker(worker)
        stack.start_worker(concurrency=1)
        finished = wait_for_job(client, account, job_id, timeout=60)
    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 1
    [only] = reset_standin.fits_of(account.token)
    assert finished["result"]["train_set_uid"] == only["id"]


def test_a_user_past_the_backlog_cap_gets_429_and_loses_nothing(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    with private_stack(postgres, settings, log_dir, tmp_path, JOB_MAX_QUEUED_PER_USER=5) as stack:
        client = stack.client()
        account, other = register(client), register(client)
        body = {"features": X, "target": Y, "task": "classification"}
        headers = {**account.headers, "Idempotency-Key": "first"}
        accepted = [client.post("/api/v1/models/fit", json=body, headers=headers).json()["id"]]
        for _ in range(4):
            response = client.post("/api/v1/models/fit", json=body, headers=account.headers)
            assert response.status_code == 202
            accepted.append(response.json()["id"])
        refused = client.post("/api/v1/models/fit", json=body, headers=account.headers)
        assert refused.status_code == 429
        assert refused.json()["code"] == "TOO_MANY_JOBS"
        assert "5 unfinished jobs" in refused.json()["message"]
        assert "(5)" in refused.json()["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        replay = client.post("/api/v1/models/fit", json=body, headers=headers)
        assert replay.status_code == 202 and replay.json()["id"] == accepted[0]
        assert client.post("/api/v1/models/fit", json=body, headers=other.headers).is_success
        stack.start_worker(concurrency=1)
        for job_id in accepted:
            assert wait_for_job(client, account, job_id)["status"] == "succeeded"
        listed = client.get("/api/v1/jobs", headers=account.headers).json()
        assert listed["total"] == 5
        again = client.post("/api/v1/models/fit", json=body, headers=account.headers)
        assert again.status_code == 202


def test_an_upstream_rate_limit_parks_one_user_while_others_flow(
    client: TestClient, worker: ManagedProcess, reset_standin: StandinProcess
) -> None:
    """The upstream takes 2 work requests per 2 s window from user A's token and answers 429
    with the seconds left in Retry-After. A's jobs wait for the window without spending
    attempts and all succeed; B's jobs, submitted meanwhile, finish first."""
    limited, free = register(client), register(client)
    reset_standin.configure(
        rate_limit={"max_requests": 2, "window_s": 2.0, "token_id": token_id(limited.token)}
    )
    since = reset_standin.last_seq()
    a_jobs = [fit(client, limited, X[: 60 + i], Y[: 60 + i])["id"] for i in range(6)]
    time.sleep(0.3)
    b_jobs = [fit(client, free, X[: 60 + i], Y[: 60 + i])["id"] for i in range(2)]
    a_done = [wait_for_job(client, limited, j, timeout=90) for j in a_jobs]
    b_done = [wait_for_job(client, free, j) for j in b_jobs]
    assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in a_done + b_done)
    refusals = [
        c
        for c in reset_standin.calls(since)
        if c["token_id"] == token_id(limited.token) and c["status"] == 429
    ]
    assert refusals, "the rate limit never hit"
    last_a = max(datetime.fromisoformat(j["finished_at"]) for j in a_done)
    assert all(datetime.fromisoformat(j["finished_at"]) < last_a for j in b_done)


def test_a_backlog_does_not_hold_up_another_users_job(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    """One process with 4 slots, a cap that lets user A fill them all, and 20 slow
    predictions queued by A: B's one prediction takes the first slot that frees up."""
    with private_stack(
        postgres,
        settings,
        log_dir,
        tmp_path,
        WORKER_UPSTREAM_CONCURRENCY=4,
        JOB_MAX_RUNNING_PER_USER=100,
    ) as stack:
        stack.start_worker(concurrency=1)
        client = stack.client()
        a, b = register(client, prefix="slow"), register(client)
        a_model = fit_ready(client, a, X, Y)["model_id"]
        b_model = fit_ready(client, b, X, Y)["model_id"]
        a_jobs = [predict_id(client, a, a_model) for _ in range(20)]
        running_sql = (
            "SELECT count(*) FROM jobs WHERE status = 'running' AND id = ANY(CAST(:ids AS uuid[]))"
        )
        wait_until(lambda: rows(stack.settings, running_sql, ids=a_jobs)[0][0] == 4)
        b_job = predict_id(client, b, b_model)
        assert wait_for_job(client, b, b_job)["status"] == "succeeded"
        for job_id in a_jobs:
            wait_for_job(client, a, job_id, timeout=120)
        starts = dict(
            rows(
                stack.settings,
                "SELECT id::text, started_at FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))",
                ids=[*a_jobs, b_job],
            )
        )
        [b_created] = rows(
            stack.settings, "SELECT created_at FROM jobs WHERE id = CAST(:id AS uuid)", id=b_job
        )[0]
    later_a = [starts[j] for j in a_jobs if starts[j] > b_created]
    assert later_a, "A's backlog should still have been queued when B submitted"
    assert starts[b_job] <= min(later_a)


def test_a_worker_of_other_queues_runs_no_engine(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    """`-Q maintenance,webhooks` (compose's worker-ops) must not claim jobs."""
    with private_stack(postgres, settings, log_dir, tmp_path) as stack:
        ops = stack.start_worker(concurrency=1, queues="maintenance,webhooks")
        jobs = stack.start_worker(concurrency=1)
        jobs.wait_for_log("engine started", timeout=30)
        client = stack.client()
        account = register(client)
        job_id = fit(client, account, X, Y)["id"]
        assert wait_for_job(client, account, job_id)["status"] == "succeeded"
    assert "engine started" not in ops.log_text()
    assert job_id not in ops.log_text()
    assert str(uuid.UUID(job_id)) in jobs.log_text()
