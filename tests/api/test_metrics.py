"""`GET /metrics`: Prometheus text whose job and webhook counters move during a journey; the
worker's series reach the API through the shared multi-process folder."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.support.builders import classification_data, fit, register, wait_for_job
from tests.support.processes import ManagedProcess
from tests.support.receiver import running_receiver


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_counters_move_during_the_journey(client: TestClient, worker: ManagedProcess) -> None:
    before = client.get("/metrics").text
    X, y, _, _ = classification_data(n_train=60)
    with running_receiver() as receiver:
        account = register(client)
        job = fit(client, account, X, y, callback_url=receiver.url)
        assert wait_for_job(client, account, job["id"])["status"] == "succeeded"
        receiver.wait_for(1)
        quota = register(client, prefix="overquota")
        assert wait_for_job(client, quota, fit(client, quota, X, y)["id"])["status"] == "failed"
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("tabpfn_api_jobs_created_total", kind="fit") >= 2
    assert moved("tabpfn_api_jobs_finished_total", kind="fit", status="succeeded") >= 1
    assert (
        moved("tabpfn_api_jobs_finished_total", status="failed", error_code="TABPFN_QUOTA_EXCEEDED")
        >= 1
    )
    assert moved("tabpfn_api_webhook_deliveries_total", outcome="delivered") >= 1
    assert moved("tabpfn_api_upstream_call_duration_seconds_count", operation="fit") >= 1
    assert moved("tabpfn_api_upstream_errors_total", code="TABPFN_QUOTA_EXCEEDED") >= 1
    assert moved("tabpfn_api_job_queue_wait_seconds_count", kind="fit") >= 1
    assert moved("tabpfn_api_http_requests_total", route="/api/v1/models/fit", status="202") >= 2
    assert sample(after, "tabpfn_api_queue_depth", queue="fit") >= 0
    assert "tabpfn_api_jobs{" in after
    assert account.api_key not in after and account.token not in after
