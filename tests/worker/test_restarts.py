"""Restarts are prompt (issue 10, point 9): jobs whose messages Redis lost run as soon as a
worker starts, not JOB_REPUBLISH_AFTER_S later, and without beat.

Workers claim due jobs from the table when they start and every WORKER_CLAIM_INTERVAL_S;
a message only wakes them sooner. So jobs committed while no worker runs, whose messages
then vanish with Redis's data, are found by the first worker that starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.config import Settings
from shared.queue import QueueName
from tests.support.builders import (
    classification_data,
    fit,
    fit_ready,
    predict,
    register,
    wait_for_job,
)
from tests.support.servers import PostgresServer
from tests.support.stack import Stack, private_stack

X, Y, X_TEST, _ = classification_data(n_train=80)
# Far beyond the test's patience: a job found only by a re-publish would time the test out.
REPUBLISH_AFTER_S = 3600.0
PATIENCE_S = 120.0


@pytest.fixture
def stack(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> Iterator[Stack]:
    with private_stack(
        postgres, settings, log_dir, tmp_path, JOB_REPUBLISH_AFTER_S=REPUBLISH_AFTER_S
    ) as built:
        yield built


def test_jobs_whose_messages_redis_lost_run_when_a_worker_starts(stack: Stack) -> None:
    client = stack.client()
    first, second = register(client), register(client)
    stack.start_worker(concurrency=1)
    model_id = fit_ready(client, first, X, Y)["model_id"]
    for process in stack.processes:
        process.stop()
    stack.processes.clear()

    queued = [
        (first, fit(client, first, X, Y)["id"]),
        (first, predict(client, first, model_id, X_TEST)["id"]),
        (second, fit(client, second, X, Y)["id"]),
        (second, fit(client, second, X, Y)["id"]),
    ]
    broker = redis.Redis.from_url(stack.redis.url())
    try:
        assert broker.llen(QueueName.FIT.value) >= 3  # published: the wake-ups exist...
        broker.flushall()  # ...until Redis loses its data
        assert broker.llen(QueueName.FIT.value) == 0
        assert broker.llen(QueueName.PREDICT.value) == 0
    finally:
        broker.close()
    for account, job_id in queued:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
        assert job["status"] == "queued"

    stack.start_worker(concurrency=1)  # no beat: nothing re-publishes anything
    for account, job_id in queued:
        finished = wait_for_job(client, account, job_id, timeout=PATIENCE_S)
        assert finished["status"] == "succeeded", finished
