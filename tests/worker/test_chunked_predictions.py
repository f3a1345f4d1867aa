"""Large predictions split under the upstream's per-request limits and merged in row order
(issue 12, point 1), on real parts: the stand-in enforces its lowered test-row limit, so a
prediction that was not split would be refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shared.config import Settings
from tests.standin.baseline import fit_baseline
from tests.support.builders import (
    Account,
    classification_data,
    fit_ready,
    predict,
    register,
    regression_data,
    wait_for_job,
)
from tests.support.processes import ManagedProcess
from tests.support.receiver import running_receiver
from tests.support.standin import StandinProcess, token_id

X, Y, X_TEST, _ = classification_data()


@pytest.fixture
def limited(standin: StandinProcess) -> Iterator[StandinProcess]:
    """The stand-in takes at most 1,000 test rows per request (400 for `full`)."""
    standin.configure(limits={"test_set_max_rows": 1000})
    yield standin
    standin.reset()


def many_rows(n: int, seed: int = 0) -> list[list[float]]:
    """`n` rows like the test set, jittered so no two chunks are alike."""
    rng = np.random.default_rng(seed)
    base = np.array(X_TEST)[rng.integers(0, len(X_TEST), n)]
    rows: list[list[float]] = (base * rng.uniform(0.9, 1.1, base.shape)).round(5).tolist()
    return rows


def predicts_of(standin: StandinProcess, account: Account) -> list[dict[str, Any]]:
    return [p for p in standin.predicts_of(account.token) if p["status"] == 200]


def calls_of(standin: StandinProcess, account: Account, path: str) -> list[dict[str, Any]]:
    mine = token_id(account.token)
    return [c for c in standin.calls() if c["token_id"] == mine and c["path"] == path]


def test_a_5000_row_prediction_runs_as_chunks_and_merges_in_row_order(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    rows = many_rows(5000)
    job = wait_for_job(
        client,
        account,
        predict(client, account, model_id, rows, output_type="probas")["id"],
        timeout=120,
    )
    assert job["status"] == "succeeded", job
    assert job["result"]["n_rows"] == 5000 and job["result"]["chunks"] >= 5
    assert job["progress"]["chunks_total"] == job["progress"]["chunks_done"] >= 5

    requests = predicts_of(limited, account)
    assert len(requests) >= 5
    assert all(p["test_rows"] <= 1000 for p in requests)
    assert sum(p["test_rows"] for p in requests) == 5000

    result = client.get(f"/api/v1/jobs/{job['id']}/result", headers=account.headers)
    probas = np.array(result.json()["predictions"])
    reference = fit_baseline(pd.DataFrame(X).rename(columns=str), np.array(Y), "classification")
    for start in range(0, 5000, 1000):  # the same model on each chunk
        piece = pd.DataFrame(rows[start : start + 1000]).rename(columns=str)
        expected = np.array(reference.predict(piece, "probas", None))
        assert np.allclose(probas[start : start + 1000], expected, atol=1e-6)
    # The chunks are the service's own jobs: the user sees one job.
    listed = client.get("/api/v1/jobs?kind=predict", headers=account.headers).json()
    assert [item["id"] for item in listed["items"]] == [job["id"]]


def test_a_full_regression_output_over_its_400_row_cap_is_split_too(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess
) -> None:
    account = register(client)
    Xr, yr, _ = regression_data()
    model_id = fit_ready(client, account, Xr, yr, "regression")["model_id"]
    rng = np.random.default_rng(1)
    rows = (np.array(Xr)[rng.integers(0, len(Xr), 900)]).tolist()
    job = wait_for_job(
        client,
        account,
        predict(client, account, model_id, rows, output_type="full")["id"],
        timeout=120,
    )
    assert job["status"] == "succeeded", job
    requests = predicts_of(limited, account)
    assert [p["output_type"] for p in requests] == ["full"] * len(requests)
    assert len(requests) == 3 and all(p["test_rows"] <= 400 for p in requests)

    body = client.get(f"/api/v1/jobs/{job['id']}/result", headers=account.headers).json()
    assert len(body["predictions"]) == 900 and body["borders"]
    first = body["predictions"][0]
    assert set(first) >= {"mean", "median", "mode", "quantiles", "logits"}
    means = np.array([row["mean"] for row in body["predictions"]])
    reference = fit_baseline(pd.DataFrame(Xr).rename(columns=str), np.array(yr), "regression")
    expected = reference.predict(pd.DataFrame(rows).rename(columns=str), "mean", None)
    assert np.allclose(means, np.array(expected), atol=1e-6)
    csv = client.get(f"/api/v1/jobs/{job['id']}/result?format=csv", headers=account.headers)
    header = csv.text.splitlines()[0].split(",")
    assert header[:4] == ["row", "mean", "median", "mode"] and "logit_0" in header


def test_a_transient_failure_in_one_chunk_is_retried_alone(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    # tabpfn-client does not retry a refused upload preparation: one chunk's attempt fails.
    limited.configure(
        fail_burst={
            "count": 1,
            "status": 503,
            "path": "/tabpfn/prepare_test_set_upload",
            "token_id": token_id(account.token),
        }
    )
    job = wait_for_job(
        client,
        account,
        predict(client, account, model_id, many_rows(3000, seed=2))["id"],
        timeout=120,
    )
    assert job["status"] == "succeeded", job
    chunks = job["result"]["chunks"]
    assert chunks == 3
    prepares = calls_of(limited, account, "/tabpfn/prepare_test_set_upload")
    assert [c["status"] for c in prepares].count(503) == 1
    assert len(prepares) == chunks + 1  # one retry, of one chunk: not the whole prediction
    assert len(calls_of(limited, account, "/tabpfn/predict")) == chunks


def test_a_permanent_failure_fails_the_job_naming_the_chunks_rows(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    limited.configure(
        fail_burst={
            "count": 1,
            "status": 400,
            "path": "/tabpfn/predict",
            "token_id": token_id(account.token),
        }
    )
    job = wait_for_job(
        client,
        account,
        predict(client, account, model_id, many_rows(3000, seed=3))["id"],
        timeout=120,
    )
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "TABPFN_REJECTED_INPUT"
    assert "rows " in job["error"]["message"] and "of 3)" in job["error"]["message"]


def test_submission_refuses_only_what_no_split_can_serve(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess
) -> None:
    limited.configure(limits={"test_set_max_rows": 1})  # before the API caches the limits
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        json={"features": many_rows(1001, seed=4)},
        headers=account.headers,
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "LIMIT_EXCEEDED" and "1000 rows per predict job" in body["message"]


def test_canceling_a_split_prediction_cancels_its_chunks(
    client: TestClient, worker: ManagedProcess, limited: StandinProcess, settings: Settings
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    limited.configure(predict_delay_s=3)
    with running_receiver() as receiver:
        job = predict(client, account, model_id, many_rows(5000, seed=5), callback_url=receiver.url)
        wait_for_job(client, account, job["id"], until=("running",))
        deadline = time.monotonic() + 60
        while (
            client.get(f"/api/v1/jobs/{job['id']}", headers=account.headers).json()["progress"][
                "chunks_total"
            ]
            is None
        ):
            assert time.monotonic() < deadline, "the prediction was never split"
            time.sleep(0.1)
        canceled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=account.headers)
        assert canceled.status_code == 202, canceled.text
        assert canceled.json()["status"] == "canceled"
        events = [json.loads(r.body)["type"] for r in receiver.wait_for(1)]
        time.sleep(1)  # no second event may follow
        assert events == ["job.canceled"] and len(receiver.requests) == 1
    engine = sa.create_engine(settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            statuses = (
                connection.execute(
                    sa.text("SELECT DISTINCT status FROM jobs WHERE parent_job_id = :id"),
                    {"id": job["id"]},
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert set(statuses) == {"canceled"}
