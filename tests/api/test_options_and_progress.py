"""Every TabPFN option of tabpfn-client 0.6.1 reaches the upstream, and every job reports
its progress (issue 12, points 5 and 6), checked against what the stand-in received."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.config import Settings
from tests.support.builders import (
    Account,
    classification_data,
    fit,
    fit_ready,
    predict,
    register,
    regression_data,
    wait_for_job,
)
from tests.support.processes import ManagedProcess
from tests.support.receiver import running_receiver
from tests.support.servers import PostgresServer
from tests.support.stack import private_stack
from tests.support.standin import StandinProcess

X, Y, X_TEST, _ = classification_data()


@pytest.fixture
def quick_thinking(standin: StandinProcess) -> Iterator[StandinProcess]:
    standin.configure(thinking_fit_delay_s=0.2)
    yield standin
    standin.reset()


def test_thinking_options_reach_the_upstream(
    client: TestClient, worker: ManagedProcess, quick_thinking: StandinProcess
) -> None:
    account = register(client)
    config = {"thinking_effort": "high", "thinking_timeout_s": 600, "thinking_metric": "roc_auc"}
    job = fit_ready(client, account, X, Y, config=config)
    [sent] = quick_thinking.fits_of(account.token)
    assert "thinking" in sent["tabpfn_systems"]
    thinking = sent["thinking_config"]
    assert (thinking["effort"], thinking["timeout_secs"], thinking["metric"]) == (
        "high",
        600,
        "roc_auc",
    )
    prediction = wait_for_job(
        client, account, predict(client, account, job["model_id"], X_TEST)["id"]
    )
    assert prediction["upstream"]["execution_mode"] == "thinking"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"thinking_effort": "extreme"}, "thinking_effort"),
        ({"thinking_effort": "medium", "thinking_timeout_s": 2401}, "thinking_timeout_s"),
        ({"thinking_timeout_s": 60}, "set thinking_effort too"),
        ({"thinking_effort": "medium", "paper_version": True}, "paper_version"),
        ({"fit_mode": "fit_everything"}, "fit_mode"),
    ],
)
def test_thinking_and_fit_options_are_checked_at_submission(
    client: TestClient, config: dict[str, Any], fragment: str
) -> None:
    account = register(client)
    response = client.post(
        "/api/v1/models/fit",
        json={"features": X[:20], "target": Y[:20], "task": "classification", "config": config},
        headers=account.headers,
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]


def test_fit_with_cache_is_reported_by_the_upstream(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y, config={"fit_mode": "fit_with_cache"})["model_id"]
    job = wait_for_job(client, account, predict(client, account, model_id, X_TEST)["id"])
    assert job["upstream"]["execution_mode"] == "cache"
    assert job["upstream"]["cache_outcome"] == "hit"
    assert job["upstream"]["timings"]


def test_the_main_regression_output_is_one_object_per_row(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    Xr, yr, Xr_test = regression_data()
    model_id = fit_ready(client, account, Xr, yr, "regression")["model_id"]
    job = wait_for_job(
        client,
        account,
        predict(client, account, model_id, Xr_test[:10], output_type="main", quantiles=[0.5])["id"],
    )
    assert job["status"] == "succeeded", job
    rows = job["result"]["predictions"]
    assert len(rows) == 10 and set(rows[0]) == {"mean", "median", "mode", "quantiles"}
    assert len(rows[0]["quantiles"]) == 1


def test_available_models_are_described_with_the_upstreams_own_options(
    client: TestClient,
) -> None:
    body = client.get("/api/v1/models/available").json()
    assert "v3.5_default" in body["classification"] and "v2.5_quantiles" in body["regression"]
    for name in body["classification"] + body["regression"]:
        assert body["descriptions"][name]["description"]
    assert body["descriptions"]["v3.5-fast_default"]["fast"] is True
    assert body["descriptions"]["v3.5_default"]["family"] == "v3.5"
    assert body["thinking_efforts"] == ["medium", "high"]
    assert body["thinking_timeout_max_s"] == 2400
    assert "fit_with_cache" in body["fit_modes"]
    assert set(body["predictions"]["regression"]["output_types"]) >= {"full", "main"}
    assert body["predictions"]["classification"]["output_types"][0] == "preds"


def phases_seen(client: TestClient, account: Account, job_id: str) -> list[str | None]:
    """Every distinct phase polling saw, in order, until the job ended."""
    seen: list[str | None] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
        phase = body["progress"]["phase"]
        if not seen or seen[-1] != phase:
            seen.append(phase)
        if body["status"] in ("succeeded", "failed", "canceled"):
            return seen
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not end; phases so far {seen}")


def test_a_running_jobs_progress_moves_through_its_phases(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    standin.configure(
        path_delays={
            "/tabpfn/prepare_train_set_upload": 1.5,
            "/tabpfn/prepare_test_set_upload": 1.5,
        },
        fit_delay_s=2,
        predict_delay_s=2,
    )
    try:
        fit_phases = phases_seen(client, account, fit(client, account, X, Y)["id"])
        model_id = client.get("/api/v1/models", headers=account.headers).json()["items"][0]["id"]
        predict_phases = phases_seen(
            client, account, predict(client, account, model_id, X_TEST)["id"]
        )
    finally:
        standin.reset()
    assert [p for p in fit_phases if p in ("uploading", "fitting")] == ["uploading", "fitting"]
    assert fit_phases[-1] is None
    assert [p for p in predict_phases if p in ("uploading", "predicting")] == [
        "uploading",
        "predicting",
    ]


def test_queued_jobs_know_their_place_and_when_to_poll(
    postgres: PostgresServer, settings: Settings, log_dir: Path, tmp_path: Path
) -> None:
    with private_stack(postgres, settings, log_dir, tmp_path) as stack:  # no worker runs
        client = stack.client()
        account = register(client)
        jobs = [fit(client, account, X[:30], Y[:30]) for _ in range(3)]
        positions = []
        for job in jobs:
            response = client.get(f"/api/v1/jobs/{job['id']}", headers=account.headers)
            assert 1 <= int(response.headers["retry-after"]) <= 30
            positions.append(response.json()["progress"])
    assert [p["queue_position"] for p in positions] == [1, 2, 3]
    assert {p["phase"] for p in positions} == {"queued"}


def test_job_started_is_sent_to_callers_who_ask_for_it(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    with running_receiver() as receiver:
        asked = fit(
            client,
            account,
            X,
            Y,
            callback_url=receiver.url,
            callback_events=["started", "completed"],
        )
        assert asked["callback_events"] == ["started", "completed"]
        wait_for_job(client, account, asked["id"])
        events = [json.loads(r.body)["type"] for r in receiver.wait_for(2)]
        assert events == ["job.started", "job.succeeded"]
        default = fit(client, account, X, Y, callback_url=receiver.url, reuse=False)
        wait_for_job(client, account, default["id"])
        receiver.wait_for(3)
        time.sleep(1)  # a job.started would have come before the outcome
        later = [json.loads(r.body) for r in receiver.requests[2:]]
    assert [(e["type"], e["data"]["id"]) for e in later] == [("job.succeeded", default["id"])]


def test_multipart_submissions_take_callback_events_and_the_opt_outs(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    csv = "a,b,label\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(40))
    response = client.post(
        "/api/v1/models/fit",
        files={"file": ("train.csv", csv.encode(), "text/csv")},
        data={
            "task": "classification",
            "target_column": "label",
            "callback_events": "started,completed",
            "reuse": "false",
        },
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["callback_events"] == ["started", "completed"]
    bad = client.post(
        "/api/v1/models/fit",
        files={"file": ("train.csv", csv.encode(), "text/csv")},
        data={"task": "classification", "target_column": "label", "callback_events": "finished"},
        headers=account.headers,
    )
    assert bad.status_code == 400 and "callback_events" in bad.json()["message"]


def test_the_schema_names_the_callback_events_the_service_sends() -> None:
    from typing import get_args

    from api.schemas.jobs import CallbackEvent
    from shared.jobs.events import CALLBACK_EVENTS

    assert set(get_args(CallbackEvent)) == set(CALLBACK_EVENTS)
