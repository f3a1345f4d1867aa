"""The whole journey through real parts: setup → fit → poll → predict → poll → result."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.standin.baseline import fit_baseline
from tests.support.builders import (
    classification_data,
    fit_ready,
    register,
    regression_data,
    wait_for_job,
)
from tests.support.processes import ManagedProcess


def test_classification_journey(client: TestClient, worker: ManagedProcess) -> None:
    account = register(client)
    X, y, X_test, y_test = classification_data()
    fit_job = fit_ready(client, account, X, y)
    model_id = fit_job["model_id"]
    assert fit_job["result"]["classes"] == [0, 1]
    assert fit_job["attempts"] == 1

    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        json={"features": X_test, "output_type": "probas"},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/v1/jobs/{response.json()['id']}"
    job = wait_for_job(client, account, response.json()["id"])
    assert job["status"] == "succeeded", job
    probas = np.array(job["result"]["predictions"])
    assert probas.shape == (len(X_test), 2)
    assert np.allclose(probas.sum(axis=1), 1)
    accuracy = float(np.mean(probas.argmax(axis=1) == np.array(y_test)))
    assert accuracy >= 0.9

    expected = fit_baseline(pd.DataFrame(X).rename(columns=str), np.array(y), "classification")
    reference = np.array(expected.predict(pd.DataFrame(X_test).rename(columns=str), "probas", None))
    assert np.allclose(probas, reference, atol=1e-6)


def test_regression_journey_with_quantiles_and_csv(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    X, y, X_test = regression_data()
    model_id = fit_ready(client, account, X, y, "regression", name="diabetes")["model_id"]
    model = client.get(f"/api/v1/models/{model_id}", headers=account.headers).json()
    assert model["status"] == "ready" and model["name"] == "diabetes" and model["n_features"] == 10

    expected = fit_baseline(pd.DataFrame(X).rename(columns=str), np.array(y), "regression")
    for output_type, quantiles in (("mean", None), ("quantiles", [0.1, 0.5, 0.9])):
        body: dict[str, object] = {"features": X_test, "output_type": output_type}
        if quantiles:
            body["quantiles"] = quantiles
        submitted = client.post(
            f"/api/v1/models/{model_id}/predict", json=body, headers=account.headers
        )
        job = wait_for_job(client, account, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        got = np.array(job["result"]["predictions"])
        reference = np.array(
            expected.predict(pd.DataFrame(X_test).rename(columns=str), output_type, quantiles)
        )
        if output_type == "quantiles":
            assert got.shape == (len(X_test), 3)
            assert np.allclose(got, reference.T, atol=1e-6)
        else:
            assert np.allclose(got, reference, atol=1e-6)

    csv = client.get(f"/api/v1/jobs/{job['id']}/result?format=csv", headers=account.headers)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "row,quantile_0.1,quantile_0.5,quantile_0.9"
    assert len(lines) == len(X_test) + 1


def test_preds_with_string_labels_and_a_large_result(app: FastAPI, worker: ManagedProcess) -> None:
    """Above RESULT_INLINE_MAX_ROWS the predictions are stored apart and served by /result."""
    client = TestClient(app, client=("198.51.100.9", 1))
    account = register(client)
    X, y, _, _ = classification_data()
    labels = ["benign" if v else "malignant" for v in y]
    model_id = fit_ready(client, account, X, labels)["model_id"]
    big = (X * 3)[:1100]
    submitted = client.post(
        f"/api/v1/models/{model_id}/predict", json={"features": big}, headers=account.headers
    )
    job = wait_for_job(client, account, submitted.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["inline"] is False and job["result"]["predictions"] is None
    assert job["result"]["n_rows"] == 1100
    result = client.get(f"/api/v1/jobs/{job['id']}/result", headers=account.headers).json()
    assert len(result["predictions"]) == 1100
    assert set(result["predictions"]) <= {"benign", "malignant"}
    truth = ["benign" if v else "malignant" for v in (y * 3)[:1100]]
    assert np.mean(np.array(result["predictions"]) == np.array(truth)) > 0.9


def test_lists_filters_and_pagination(client: TestClient, worker: ManagedProcess) -> None:
    account = register(client)
    X, y, X_test, _ = classification_data(n_train=80)
    model_id = fit_ready(client, account, X, y)["model_id"]
    for _ in range(3):
        submitted = client.post(
            f"/api/v1/models/{model_id}/predict",
            json={"features": X_test[:5]},
            headers=account.headers,
        )
        wait_for_job(client, account, submitted.json()["id"])
    page = client.get("/api/v1/jobs?kind=predict&page_size=2", headers=account.headers).json()
    assert page["total"] == 3 and page["total_pages"] == 2 and len(page["items"]) == 2
    assert all(item["kind"] == "predict" for item in page["items"])
    second = client.get(
        "/api/v1/jobs?kind=predict&page_size=2&page=2", headers=account.headers
    ).json()
    assert len(second["items"]) == 1
    fits = client.get("/api/v1/jobs?kind=fit&status=succeeded", headers=account.headers).json()
    assert fits["total"] == 1
    models = client.get("/api/v1/models", headers=account.headers).json()
    assert models["total"] == 1 and models["items"][0]["id"] == model_id
    usage = client.get("/api/v1/usage", headers=account.headers).json()
    assert usage["jobs"]["succeeded"] == 4 and usage["tabpfn"]["usage_limit"] == -1


def test_idempotent_submission_returns_the_same_job(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    X, y, _, _ = classification_data(n_train=50)
    headers = {**account.headers, "Idempotency-Key": "fit-once"}
    body = {"features": X, "target": y, "task": "classification"}
    first = client.post("/api/v1/models/fit", json=body, headers=headers)
    again = client.post("/api/v1/models/fit", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert client.get("/api/v1/models", headers=account.headers).json()["total"] == 1


def test_multipart_csv_fit_and_predict(client: TestClient, worker: ManagedProcess) -> None:
    account = register(client)
    X, y, X_test, _ = classification_data(n_train=120)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(30)])
    frame["colour"] = ["red" if i % 2 else "blue" for i in range(len(frame))]
    frame["label"] = y
    submitted = client.post(
        "/api/v1/models/fit",
        files={"file": ("train.csv", frame.to_csv(index=False).encode(), "text/csv")},
        data={"task": "classification", "target_column": "label", "config": '{"n_estimators": 2}'},
        headers=account.headers,
    )
    assert submitted.status_code == 202, submitted.text
    fit_job = wait_for_job(client, account, submitted.json()["id"])
    assert fit_job["status"] == "succeeded", fit_job
    model = client.get(f"/api/v1/models/{fit_job['model_id']}", headers=account.headers).json()
    assert model["feature_names"][-1] == "colour" and model["config"] == {"n_estimators": 2}
    test = pd.DataFrame(X_test, columns=[f"f{i}" for i in range(30)])
    test["colour"] = "red"
    buffer = io.BytesIO()
    test.to_parquet(buffer, index=False)
    predicted = client.post(
        f"/api/v1/models/{model['id']}/predict",
        files={"file": ("test.parquet", buffer.getvalue(), "application/octet-stream")},
        data={"output_type": "probas"},
        headers=account.headers,
    )
    assert predicted.status_code == 202, predicted.text
    job = wait_for_job(client, account, predicted.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["classes"] == [0, 1]
    assert len(job["result"]["predictions"]) == len(X_test)


def test_deleting_a_model_cancels_its_queued_jobs(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client, prefix="slow")
    X, y, _, _ = classification_data(n_train=50)
    job = client.post(
        "/api/v1/models/fit",
        json={"features": X, "target": y, "task": "classification"},
        headers=account.headers,
    ).json()
    assert (
        client.delete(f"/api/v1/models/{job['model_id']}", headers=account.headers).status_code
        == 204
    )
    after = wait_for_job(client, account, job["id"])
    assert after["status"] == "canceled" and after["error"]["code"] == "CANCELED"
    assert (
        client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).status_code == 404
    )


def test_the_same_body_in_other_whitespace_or_key_order_is_a_replay(
    client: TestClient, worker: ManagedProcess
) -> None:
    account = register(client)
    X, y, _, _ = classification_data(n_train=50)
    headers = {
        **account.headers,
        "Idempotency-Key": "canonical",
        "Content-Type": "application/json",
    }
    compact = json.dumps({"features": X, "target": y, "task": "classification"})
    spaced = json.dumps({"task": "classification", "target": y, "features": X}, indent=2)
    first = client.post("/api/v1/models/fit", content=compact, headers=headers)
    again = client.post("/api/v1/models/fit", content=spaced, headers=headers)
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]


def _race(client: TestClient, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    """The same request twice, released at the same instant from two threads."""
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def submit() -> None:
        barrier.wait(timeout=10)
        answers.append(client.post("/api/v1/models/fit", json=body, headers=headers))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_concurrent_requests_with_one_idempotency_key_get_one_job(
    client: TestClient, worker: ManagedProcess
) -> None:
    """Both requests pass the replay check before either commits: the loser's INSERT hits
    the unique index, and it answers with the winner's job instead of a 500."""
    X, y, _, _ = classification_data(n_train=50)
    body = {"features": X, "target": y, "task": "classification"}
    for trial in range(4):
        account = register(client)
        headers = {**account.headers, "Idempotency-Key": f"race-{trial}"}
        answers = _race(client, body, headers)
        assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
        assert answers[0].json()["id"] == answers[1].json()["id"]
        listed = client.get("/api/v1/jobs", headers=account.headers).json()
        assert listed["total"] == 1
