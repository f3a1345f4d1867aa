"""Nothing accepted is lost, whatever crashes: each fault from the jobs issue, on real parts.

Killed workers, duplicated messages, a broker that is down, upstream bursts, quotas and rate
limits, cancellation before and during a run, time limits and a database restart. (The
capacity faults, such as a worker killed with many fits upstream, are in test_capacity.py.)
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from shared.config import Settings
from shared.queue import Publisher, TaskName
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
from tests.support.stack import Stack, private_stack
from tests.support.standin import StandinProcess, token_id

X, Y, X_TEST, _ = classification_data(n_train=120)


@pytest.fixture
def stack(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> Iterator[Stack]:
    with private_stack(postgres, settings, log_dir, tmp_path) as built:
        yield built


def upstream_calls(
    standin: StandinProcess, account: Account, path: str, since: int = 0
) -> list[dict[str, Any]]:
    mine = token_id(account.token)
    return [c for c in standin.calls(since) if c["token_id"] == mine and c["path"] == path]


def wait_for_inflight(
    standin: StandinProcess, account: Account, path: str, since: int
) -> dict[str, Any]:
    """Until the stand-in is answering this account's `path` (logged, no status yet)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for call in upstream_calls(standin, account, path, since):
            if call["status"] is None:
                return call
        time.sleep(0.02)
    raise TimeoutError(f"{path} never reached the upstream")


def wait_for_pending_fit(standin: StandinProcess, account: Account) -> dict[str, Any]:
    """Until this account has a fit running upstream (submitted, not finished)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in standin.fits_of(account.token):
            if entry["status"] == "pending":
                return entry
        time.sleep(0.02)
    raise TimeoutError("no fit reached the upstream")


def kill_children(worker: ManagedProcess) -> list[int]:
    children = psutil.Process(worker.pid).children()
    for child in children:
        child.send_signal(signal.SIGKILL)
    return [child.pid for child in children]


def test_worker_killed_mid_call_still_succeeds(stack: Stack, standin: StandinProcess) -> None:
    """SIGKILL of the worker process while a prediction it holds runs upstream: the lease
    expires, the sweeper re-queues the job, the next attempt succeeds (attempts == 2)."""
    worker = stack.start_worker(concurrency=1)
    stack.start_beat()
    client = stack.client()
    account = register(client, prefix="slow")
    model_id = fit_ready(client, account, X, Y)["model_id"]
    since = standin.last_seq()
    job = predict(client, account, model_id, X_TEST)
    wait_for_inflight(standin, account, "/tabpfn/predict", since)
    assert kill_children(worker)
    finished = wait_for_job(client, account, job["id"], timeout=90)
    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 2
    assert finished["error"] is None
    assert len(finished["result"]["predictions"]) == len(X_TEST)


def test_worker_lost_too_often_fails_with_worker_lost(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    standin: StandinProcess,
) -> None:
    with private_stack(postgres, settings, log_dir, tmp_path, JOB_MAX_ATTEMPTS=1) as stack:
        worker = stack.start_worker(concurrency=1)
        stack.start_beat()
        client = stack.client()
        account = register(client, prefix="slow")
        model_id = fit_ready(client, account, X, Y)["model_id"]
        since = standin.last_seq()
        job = predict(client, account, model_id, X_TEST)
        wait_for_inflight(standin, account, "/tabpfn/predict", since)
        kill_children(worker)
        finished = wait_for_job(client, account, job["id"], timeout=60)
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "WORKER_LOST"
    assert finished["attempts"] == 1


def test_a_duplicate_message_runs_the_job_once(
    client: TestClient, settings: Settings, worker: ManagedProcess, standin: StandinProcess
) -> None:
    """The same message delivered again (and again) while the fit runs upstream: messages
    only wake workers, the job row decides; one upstream fit, one result."""
    account = register(client, prefix="slow")
    since = standin.last_seq()
    job = fit(client, account, X, Y)
    wait_for_pending_fit(standin, account)
    publisher = Publisher(settings)
    try:
        for _ in range(3):
            assert publisher.publish(TaskName.RUN_FIT, job["id"])
    finally:
        publisher.close()
    finished = wait_for_job(client, account, job["id"])
    assert finished["status"] == "succeeded" and finished["attempts"] == 1
    assert len(upstream_calls(standin, account, "/tabpfn/submit_fit_job", since)) == 1
    assert [f["id"] for f in standin.fits_of(account.token)] == [
        finished["result"]["train_set_uid"]
    ]


def test_submission_while_redis_is_down_is_accepted_and_runs(
    stack: Stack, standin: StandinProcess
) -> None:
    """The broker only carries wake-ups: with Redis down, a submission is still accepted,
    and the worker finds the job in the table and runs it without waiting for Redis."""
    stack.start_worker(concurrency=1)
    client = stack.client()
    account = register(client)
    port = stack.redis.port
    stack.redis.stop()
    try:
        response = client.post(
            "/api/v1/models/fit",
            json={"features": X, "target": Y, "task": "classification"},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["status"] == "queued"
        finished = wait_for_job(client, account, job["id"], timeout=60)
        assert finished["status"] == "succeeded", finished
    finally:
        stack.redis.start(port=port)


def test_a_burst_of_5xx_is_retried_until_it_succeeds(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    """Two 503s on the submit (tabpfn-client never retries a submit: it could fit twice),
    each retried by us with backoff; the third attempt's fit is the only one upstream."""
    account = register(client, prefix="flaky")
    since = standin.last_seq()
    finished = wait_for_job(client, account, fit(client, account, X, Y)["id"])
    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 3
    calls = upstream_calls(standin, account, "/tabpfn/submit_fit_job", since)
    assert [c["status"] for c in calls] == [503, 503, 200]
    assert len(standin.fits_of(account.token)) == 1


def test_an_exhausted_quota_fails_at_once(client: TestClient, worker: ManagedProcess) -> None:
    account = register(client, prefix="overquota")
    finished = wait_for_job(client, account, fit(client, account, X, Y)["id"])
    assert finished["status"] == "failed"
    assert finished["attempts"] == 1
    assert finished["error"]["code"] == "TABPFN_QUOTA_EXCEEDED"
    assert "Resets at" in finished["error"]["message"]
    assert finished["trace_id"]
    model = client.get(f"/api/v1/models/{finished['model_id']}", headers=account.headers).json()
    assert model["status"] == "failed"


def test_a_token_that_is_rate_limited_forever_still_ends(
    client: TestClient, settings: Settings, worker: ManagedProcess
) -> None:
    """Every request of a `ratelimited*` token is a 429 with Retry-After: 1. Each one parks the
    job without spending an attempt, JOB_MAX_RATE_LIMIT_PARKS times, then it fails."""
    account = register(client, prefix="ratelimited")
    finished = wait_for_job(client, account, fit(client, account, X, Y)["id"], timeout=60)
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "TABPFN_RATE_LIMITED"
    assert (
        f"after waiting {settings.JOB_MAX_RATE_LIMIT_PARKS} times" in finished["error"]["message"]
    )
    assert finished["attempts"] == 1


def test_canceling_a_queued_job_never_calls_the_upstream(
    stack: Stack, standin: StandinProcess
) -> None:
    client = stack.client()
    account = register(client)
    since = standin.last_seq()
    job = fit(client, account, X, Y)
    canceled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=account.headers)
    assert canceled.status_code == 202
    assert canceled.json()["status"] == "canceled"
    stack.start_worker(concurrency=1)  # now consumes the message and looks for work
    # A later job of the same user runs: the worker has looked at the table meanwhile.
    later = wait_for_job(client, account, fit(client, account, X[:50], Y[:50])["id"])
    assert later["status"] == "succeeded"
    after = client.get(f"/api/v1/jobs/{job['id']}", headers=account.headers).json()
    assert after["status"] == "canceled" and after["error"]["code"] == "CANCELED"
    assert after["attempts"] == 0
    [only_fit] = standin.fits_of(account.token)
    assert only_fit["id"] == later["result"]["train_set_uid"]
    submits = upstream_calls(standin, account, "/tabpfn/submit_fit_job", since)
    assert len(submits) == 1


def test_canceling_a_running_job_discards_its_result(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    """Canceled while its fit runs upstream: the job is canceled at once, nobody checks on
    the fit any more, and its completion upstream changes nothing."""
    account = register(client, prefix="slow")
    since = standin.last_seq()
    job = fit(client, account, X, Y)
    pending = wait_for_pending_fit(standin, account)
    canceled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=account.headers).json()
    assert canceled["status"] == "canceled"
    deadline = time.monotonic() + 30
    while (
        next(f for f in standin.fits_of(account.token) if f["id"] == pending["id"])["status"]
        == "pending"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    checks = len(upstream_calls(standin, account, "/tabpfn/get_fit_status", since))
    time.sleep(1.5)  # several of the stand-in's 0.3 s poll hints
    assert len(upstream_calls(standin, account, "/tabpfn/get_fit_status", since)) <= checks + 1
    after = client.get(f"/api/v1/jobs/{job['id']}", headers=account.headers).json()
    assert after["status"] == "canceled" and after["result"] is None
    model = client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()
    assert model["status"] == "failed"


def test_users_in_several_worker_processes_keep_their_own_tokens(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    """Four users at once through the real prefork worker (2 children): every upstream
    request carries its own user's token, and nothing carries a token it should not."""
    accounts = [register(client, prefix="slow") for _ in range(4)]  # 2 s fits: they overlap
    since = standin.last_seq()
    fits = [fit(client, a, X, Y) for a in accounts]
    models = [
        wait_for_job(client, a, f["id"])["model_id"] for a, f in zip(accounts, fits, strict=True)
    ]
    predictions = [
        client.post(
            f"/api/v1/models/{m}/predict", json={"features": X_TEST}, headers=a.headers
        ).json()["id"]
        for a, m in zip(accounts, models, strict=True)
    ]
    for account, job_id in zip(accounts, predictions, strict=True):
        assert wait_for_job(client, account, job_id)["status"] == "succeeded"
    calls = standin.calls(since)
    ids = {token_id(a.token) for a in accounts}
    work = [
        c
        for c in calls
        if c["path"]
        in ("/tabpfn/submit_fit_job", "/tabpfn/predict", "/tabpfn/prepare_test_set_upload")
    ]
    assert len(work) == 12 and {c["token_id"] for c in work} == ids
    for account, model_id in zip(accounts, models, strict=True):
        model = client.get(f"/api/v1/models/{model_id}", headers=account.headers).json()
        [fit_log] = standin.fits_of(account.token)
        assert fit_log["token_id"] == token_id(account.token) and model["status"] == "ready"
    assert all(c["token_id"] is None for c in calls if c["method"] == "PUT")


def test_an_attempt_past_the_time_limit_fails_with_timeout_and_no_retry(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    standin: StandinProcess,
) -> None:
    """A fit still pending upstream JOB_TIME_LIMIT_S after its submission fails TIMEOUT, at
    once (refitting would spend the user's quota on a fit that would time out again)."""
    with private_stack(postgres, settings, log_dir, tmp_path, JOB_TIME_LIMIT_S=10) as stack:
        stack.start_worker(concurrency=1)
        client = stack.client()
        account = register(client)
        standin.configure(fit_delay_s=14)
        try:
            finished = wait_for_job(client, account, fit(client, account, X, Y)["id"], timeout=60)
        finally:
            standin.reset()
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "TIMEOUT"
    assert finished["attempts"] == 1
    assert len(standin.fits_of(account.token)) == 1


def test_a_lease_that_cannot_be_renewed_for_its_length_counts_as_lost(settings: Settings) -> None:
    """A worker cut off from the database gives up its work once its leases have run out."""
    import uuid

    from scripts.engines import free_port
    from shared.db import Database
    from tests.support.settings import make_settings
    from worker.leases import LeaseKeeper

    unreachable = make_settings(
        DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        REDIS_URL=settings.REDIS_URL,
        JOB_LEASE_S=1.0,
        JOB_HEARTBEAT_S=0.2,
    )
    database = Database(unreachable, label="test")
    keeper = LeaseKeeper(database, unreachable)
    leases = [keeper.hold(uuid.uuid4(), uuid.uuid4()) for _ in range(3)]
    keeper.start()
    try:
        assert all(lease.lost.wait(timeout=10) for lease in leases)
    finally:
        keeper.stop()
        database.dispose()


def test_postgres_restarting_mid_job_loses_nothing(
    postgres: PostgresServer,
    settings: Settings,
    log_dir: Path,
    tmp_path: Path,
    standin: StandinProcess,
) -> None:
    """Postgres stops while a fit runs upstream and comes back: the job still succeeds."""
    from alembic import command

    from scripts.engines import EmbeddedPostgres
    from tests.support.servers import alembic_config

    database = EmbeddedPostgres(tmp_path / "own-postgres", ephemeral=True)
    database.start()
    try:
        database.create_database("jobs")
        url = database.url("jobs")
        command.upgrade(alembic_config(url), "head")
        with private_stack(postgres, settings, log_dir, tmp_path, DATABASE_URL=url) as stack:
            stack.start_worker(concurrency=1)
            stack.start_beat()
            client = stack.client()
            account = register(client, prefix="slow")
            job = fit(client, account, X, Y)
            wait_for_pending_fit(standin, account)
            port = database.port
            database.stop_keeping_data()
            time.sleep(3)
            database.start(port=port)
            finished = wait_for_job(client, account, job["id"], timeout=90)
    finally:
        database.stop()
    assert finished["status"] == "succeeded", finished
