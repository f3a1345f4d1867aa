"""Signed webhooks with retries: verified with the official `standardwebhooks` library, retried
on failure, stopped by 410, never redirected, refused for private addresses, and never in
the way of a job's own outcome."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from api.main import create_app
from shared.config import Settings
from tests.support.builders import Account, classification_data, fit, register, wait_for_job
from tests.support.processes import ManagedProcess
from tests.support.receiver import Receiver, running_receiver
from tests.support.servers import PostgresServer
from tests.support.settings import make_settings
from tests.support.stack import private_stack

X, Y, X_TEST, _ = classification_data(n_train=80)


def deliveries(client: TestClient, account: Account, job_id: str) -> list[dict[str, object]]:
    response = client.get(f"/api/v1/jobs/{job_id}/deliveries", headers=account.headers)
    assert response.status_code == 200
    items: list[dict[str, object]] = response.json()["items"]
    return items


def wait_for_deliveries(
    client: TestClient, account: Account, job_id: str, done: int, timeout: float = 30
) -> list[dict[str, object]]:
    """Until `done` attempts have a final status (delivered or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = deliveries(client, account, job_id)
        if sum(1 for d in items if d["status"] != "pending") >= done:
            return items
        time.sleep(0.1)
    raise TimeoutError(f"deliveries of {job_id}: {deliveries(client, account, job_id)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def test_deliveries_verify_with_the_official_library(
    client: TestClient, worker: ManagedProcess, receiver: Receiver
) -> None:
    account = register(client)
    job = fit(client, account, X, Y, callback_url=receiver.url)
    finished = wait_for_job(client, account, job["id"])
    assert finished["status"] == "succeeded"
    request = receiver.wait_for(1)[0]
    payload = Webhook(account.webhook_secret).verify(request.body, request.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
    assert payload["data"]["result"]["classes"] == [0, 1]
    items = wait_for_deliveries(client, account, job["id"], 1)
    assert [(d["attempt"], d["status"], d["response_code"]) for d in items] == [
        (1, "delivered", 200)
    ]
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(register(client).webhook_secret).verify(request.body, request.headers)


def test_a_failing_receiver_gets_exactly_one_success_after_two_failures(
    client: TestClient, worker: ManagedProcess
) -> None:
    with running_receiver(script=[500, 503]) as receiver:
        account = register(client)
        job = fit(client, account, X, Y, callback_url=receiver.url)
        items = wait_for_deliveries(client, account, job["id"], 3)
        requests = receiver.wait_for(3)
        time.sleep(1.5)  # longer than the rest of the test schedule: nothing more may arrive
        assert len(receiver.requests) == 3
    assert [(d["attempt"], d["status"], d["response_code"]) for d in items] == [
        (1, "failed", 500),
        (2, "failed", 503),
        (3, "delivered", 200),
    ]
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one event, three attempts
    assert [r.answered for r in requests].count(200) == 1


def test_410_gone_stops_retries(client: TestClient, worker: ManagedProcess) -> None:
    with running_receiver(script=[410]) as receiver:
        account = register(client)
        job = fit(client, account, X, Y, callback_url=receiver.url)
        items = wait_for_deliveries(client, account, job["id"], 1)
        time.sleep(2.5)  # past the whole test retry schedule
        assert len(receiver.requests) == 1
    assert [(d["status"], d["response_code"]) for d in deliveries(client, account, job["id"])] == [
        ("failed", 410)
    ]
    assert items[0]["error"] == "HTTP 410"


def test_redirects_are_not_followed(client: TestClient, worker: ManagedProcess) -> None:
    with running_receiver(script=[302], default=302) as receiver:
        account = register(client)
        job = fit(client, account, X, Y, callback_url=receiver.url)
        items = wait_for_deliveries(client, account, job["id"], 1)
        assert all(r.path == "/hook" for r in receiver.requests)
    assert items[0]["response_code"] == 302 and items[0]["status"] == "failed"


def test_a_slow_receiver_never_holds_up_the_job(client: TestClient, worker: ManagedProcess) -> None:
    with running_receiver(stall_s=5) as receiver:
        account = register(client)
        job = fit(client, account, X, Y, callback_url=receiver.url)
        finished = wait_for_job(client, account, job["id"])
        assert finished["status"] == "succeeded"
        assert receiver.started.wait(10)
        # The job is final while the receiver still has not answered.
        assert receiver.requests == []
        items = wait_for_deliveries(client, account, job["id"], 1, timeout=20)
    assert items[0]["status"] == "failed" and "no answer within" in str(items[0]["error"])


def test_failed_and_canceled_jobs_are_announced_too(
    client: TestClient, worker: ManagedProcess, receiver: Receiver
) -> None:
    quota = register(client, prefix="overquota")
    failed = fit(client, quota, X, Y, callback_url=receiver.url)
    assert wait_for_job(client, quota, failed["id"])["status"] == "failed"
    slow = register(client, prefix="slow")
    running = fit(client, slow, X, Y, callback_url=receiver.url)
    assert (
        client.post(f"/api/v1/jobs/{running['id']}/cancel", headers=slow.headers).status_code == 202
    )
    events = sorted(json.loads(r.body)["type"] for r in receiver.wait_for(2))
    assert events == ["job.canceled", "job.failed"]


@pytest.fixture
def strict_app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(
        make_settings(
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
            WEBHOOK_ALLOW_PRIVATE_URLS=False,
        )
    )
    yield app
    app.state.context.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://metadata.google.internal/computeMetadata",
        "file:///etc/passwd",
        "gopher://example.com/",
    ],
)
def test_private_and_odd_callback_urls_are_refused(strict_app: FastAPI, url: str) -> None:
    client = TestClient(strict_app)
    account = register(client)
    response = client.post(
        "/api/v1/models/fit",
        json={"features": X, "target": Y, "task": "classification", "callback_url": url},
        headers=account.headers,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_CALLBACK_URL"


def test_the_address_is_checked_again_at_delivery(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """A URL accepted at submission that is private at delivery time is refused by the worker."""
    with private_stack(
        postgres, settings, log_dir, tmp_path, WEBHOOK_ALLOW_PRIVATE_URLS=False
    ) as stack:
        lenient = create_app(stack.settings.model_copy(update={"WEBHOOK_ALLOW_PRIVATE_URLS": True}))
        try:
            stack.start_worker()
            client = TestClient(lenient)
            account = register(client)
            job = fit(client, account, X, Y, callback_url=receiver.url)
            assert wait_for_job(client, account, job["id"])["status"] == "succeeded"
            items = wait_for_deliveries(client, account, job["id"], 1)
        finally:
            lenient.state.context.close()
    assert items[0]["status"] == "failed" and str(items[0]["error"]).startswith("refused:")
    assert receiver.requests == []


def test_a_refused_callback_does_not_reveal_what_a_name_resolves_to() -> None:
    from shared.errors import InvalidCallbackUrl
    from shared.webhooks.urls import check_callback_url

    with pytest.raises(InvalidCallbackUrl) as raised:
        check_callback_url("http://localhost:8080/hook", allow_private=False)
    assert "127.0.0.1" not in raised.value.message and "::1" not in raised.value.message
    for embedded in ("http://[64:ff9b::a00:1]/hook", "http://[2002:a00:1::1]/hook"):
        with pytest.raises(InvalidCallbackUrl):
            check_callback_url(embedded, allow_private=False)
