"""`GET /metrics`: Prometheus text whose job and webhook counters move during a journey; the
worker's series reach the API through the shared multi-process folder."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from scripts.engines import free_port
from shared.config import Settings
from tests.support.builders import classification_data, fit, register, wait_for_job
from tests.support.processes import BIN, ManagedProcess, child_env, start_worker
from tests.support.receiver import running_receiver
from tests.support.servers import PostgresServer
from tests.support.stack import private_stack


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
    assert moved("tabpfn_api_upstream_call_duration_seconds_count", operation="submit_fit") >= 1
    assert moved("tabpfn_api_upstream_call_duration_seconds_count", operation="fit_status") >= 1
    assert moved("tabpfn_api_upstream_errors_total", code="TABPFN_QUOTA_EXCEEDED") >= 1
    assert moved("tabpfn_api_job_queue_wait_seconds_count", kind="fit") >= 1
    assert moved("tabpfn_api_http_requests_total", route="/api/v1/models/fit", status="202") >= 2
    assert sample(after, "tabpfn_api_queue_depth", queue="fit") >= 0
    assert "tabpfn_api_jobs{" in after
    assert 'tabpfn_api_jobs_running{phase="awaiting_upstream"}' in after
    # The worker's engines: one in-flight gauge and one budget per live process.
    assert sample(after, "tabpfn_api_worker_upstream_in_flight") >= 0
    assert 'tabpfn_api_worker_upstream_in_flight{pid="' in after
    budgets = [
        line
        for line in after.splitlines()
        if line.startswith("tabpfn_api_worker_memory_budget_bytes{")
    ]
    assert any(float(b.rsplit(" ", 1)[1]) == 1024 * 1024 * 1024 for b in budgets)
    assert "tabpfn_api_worker_memory_budget_in_use_bytes{" in after
    assert account.api_key not in after and account.token not in after


def test_metrics_add_up_across_uvicorn_workers(
    settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    """Two uvicorn worker processes sharing one multi-process folder report one total."""
    port = free_port()
    env = child_env(settings, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    args = [
        str(BIN / "uvicorn"),
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    api = ManagedProcess("uvicorn-2-workers", args, env, log_dir / "uvicorn-2-workers.log")
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, api.tail()
                time.sleep(0.2)
        for _ in range(100):
            with httpx.Client() as fresh:  # a new connection each time, spread over both workers
                fresh.get(url + "/")
        text = httpx.get(url + "/metrics", timeout=5).text
    finally:
        api.stop()
    writers = {path.stem.rsplit("_", 1)[-1] for path in tmp_path.glob("counter_*.db")}
    assert len(writers) >= 2, "both uvicorn workers should have served requests"
    served = sample(text, "tabpfn_api_http_requests_total", route="/", status="200")
    assert served >= 101  # the readiness probe(s) and the hundred, whichever worker took them


def test_a_worker_host_serves_its_own_metrics(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    """With WORKER_METRICS_PORT, a worker's main process exposes its children's series."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with private_stack(postgres, settings, log_dir, tmp_path) as stack:
        worker = start_worker(
            stack.settings,
            log_dir,
            name="metrics-worker",
            concurrency=1,
            extra_env={
                "WORKER_METRICS_PORT": str(port),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
        )
        stack.processes.append(worker)
        client = stack.client()
        account = register(client)
        X, y, _, _ = classification_data(n_train=60)
        assert (
            wait_for_job(client, account, fit(client, account, X, y)["id"])["status"] == "succeeded"
        )
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert (
        sample(response.text, "tabpfn_api_jobs_finished_total", kind="fit", status="succeeded") == 1
    )


def test_invented_http_methods_share_one_label(client: TestClient) -> None:
    client.request("BREW", "/")
    text = client.get("/metrics").text
    assert 'method="BREW"' not in text
    assert sample(text, "tabpfn_api_http_requests_total", method="other") >= 1
