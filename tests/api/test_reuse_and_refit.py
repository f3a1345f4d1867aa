"""Fit reuse, the prediction cache, stale models and refit (issue 12, points 2–4), counted
in the stand-in's own fit and predict logs: "no upstream call" is what the upstream saw."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.builders import (
    Account,
    classification_data,
    fit,
    fit_ready,
    new_token,
    predict,
    register,
    wait_for_job,
)
from tests.support.processes import ManagedProcess
from tests.support.standin import StandinProcess

X, Y, X_TEST, _ = classification_data()


def model(client: TestClient, account: Account, model_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/models/{model_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def predicted(client: TestClient, account: Account, model_id: str, **extra: Any) -> dict[str, Any]:
    return wait_for_job(client, account, predict(client, account, model_id, X_TEST, **extra)["id"])


def test_an_identical_fit_reuses_the_upstream_fit_and_reuse_false_fits_again(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    first = fit_ready(client, account, X, Y, config={"n_estimators": 4})
    assert first["reused_from"] is None
    assert len(standin.fits_of(account.token)) == 1

    # Same data, task and options, other key order: no upstream call at all.
    second = fit_ready(client, account, X, Y, config={"n_estimators": 4}, name="again")
    assert second["reused_from"] == first["model_id"]
    assert second["result"]["reused_from"] == first["model_id"]
    assert second["result"]["train_set_uid"] == first["result"]["train_set_uid"]
    assert len(standin.fits_of(account.token)) == 1
    assert model(client, account, second["model_id"])["status"] == "ready"
    assert predicted(client, account, second["model_id"])["status"] == "succeeded"

    # Other options, or an explicit opt-out: fitted upstream.
    fit_ready(client, account, X, Y, config={"n_estimators": 8})
    opted_out = fit_ready(client, account, X, Y, config={"n_estimators": 4}, reuse=False)
    assert opted_out["reused_from"] is None
    assert len(standin.fits_of(account.token)) == 3


def test_a_fit_under_another_token_is_not_reused(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    fit_ready(client, account, X, Y)
    replacement = new_token()
    response = client.put(
        "/api/v1/auth/tabpfn-token", json={"tabpfn_token": replacement}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["models_may_need_refit"] == 1
    again = fit_ready(client, account, X, Y)
    assert again["reused_from"] is None
    assert len(standin.fits_of(replacement)) == 1


def test_an_identical_prediction_is_served_from_the_cache_and_cache_false_calls_again(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    first = predicted(client, account, model_id, output_type="probas")
    assert first["status"] == "succeeded" and first["cached"] is False
    assert len(standin.predicts_of(account.token)) == 1

    second = predicted(client, account, model_id, output_type="probas")
    assert second["status"] == "succeeded" and second["cached"] is True
    assert second["result"]["predictions"] == first["result"]["predictions"]
    assert second["result"]["cached_from"] == first["id"]
    assert len(standin.predicts_of(account.token)) == 1

    other_output = predicted(client, account, model_id, output_type="preds")
    assert other_output["cached"] is False
    opted_out = predicted(client, account, model_id, output_type="probas", cache=False)
    assert opted_out["cached"] is False
    assert len(standin.predicts_of(account.token)) == 3


def test_a_lost_fit_makes_the_model_stale_and_a_refit_makes_it_ready(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    first = fit_ready(client, account, X, Y)
    model_id = first["model_id"]
    standin.forget_fits(account.token)  # as after an upstream restart or expiry

    lost = predicted(client, account, model_id)
    assert lost["status"] == "failed"
    assert lost["error"]["code"] == "TABPFN_MODEL_NOT_FOUND"
    assert f"/api/v1/models/{model_id}/refit" in lost["error"]["message"]
    assert model(client, account, model_id)["status"] == "stale"
    refused = client.post(
        f"/api/v1/models/{model_id}/predict", json={"features": X_TEST}, headers=account.headers
    )
    assert refused.status_code == 409 and refused.json()["code"] == "MODEL_NOT_READY"
    assert "refit" in refused.json()["message"]

    response = client.post(f"/api/v1/models/{model_id}/refit", headers=account.headers)
    assert response.status_code == 202, response.text
    refit = wait_for_job(client, account, response.json()["id"])
    assert refit["status"] == "succeeded", refit
    assert refit["kind"] == "fit" and refit["model_id"] == model_id
    assert refit["result"]["train_set_uid"] != first["result"]["train_set_uid"]
    ready = model(client, account, model_id)
    assert ready["status"] == "ready" and ready["fit_job_id"] == refit["id"]
    assert predicted(client, account, model_id)["status"] == "succeeded"
    # The service fitted the stored training data again: a second fit upstream.
    assert len(standin.fits_of(account.token)) == 2


def test_a_refit_can_change_options_and_is_refused_while_a_fit_runs(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    standin.configure(fit_delay_s=3)  # the refit is still running when the second comes
    try:
        response = client.post(
            f"/api/v1/models/{model_id}/refit",
            json={"config": {"n_estimators": 2, "fit_mode": "fit_with_cache"}},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
        busy = client.post(f"/api/v1/models/{model_id}/refit", headers=account.headers)
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "FIT_IN_PROGRESS"
        refit = wait_for_job(client, account, response.json()["id"])
    finally:
        standin.reset()
    assert refit["status"] == "succeeded", refit
    assert model(client, account, model_id)["config"] == {
        "n_estimators": 2,
        "fit_mode": "fit_with_cache",
    }
    sent = standin.fits_of(account.token)[-1]["tabpfn_config"]
    assert sent["n_estimators"] == 2 and sent["fit_mode"] == "fit_with_cache"
    bad = client.post(
        f"/api/v1/models/{model_id}/refit",
        json={"config": {"thinking_effort": "extreme"}},
        headers=account.headers,
    )
    assert bad.status_code == 400 and "thinking_effort" in bad.json()["message"]


def test_a_refit_answers_no_prediction_from_the_cache_of_the_old_fit(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    assert predicted(client, account, model_id)["cached"] is False
    assert predicted(client, account, model_id)["cached"] is True
    response = client.post(f"/api/v1/models/{model_id}/refit", headers=account.headers)
    assert wait_for_job(client, account, response.json()["id"])["status"] == "succeeded"
    after = predicted(client, account, model_id)
    assert after["status"] == "succeeded" and after["cached"] is False
    assert len(standin.predicts_of(account.token)) == 2


def test_a_refit_that_fails_leaves_a_ready_model_ready(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    model_id = fit_ready(client, account, X, Y)["model_id"]
    standin.configure(thinking_fit_quota=0)
    try:
        response = client.post(
            f"/api/v1/models/{model_id}/refit",
            json={"config": {"thinking_effort": "medium"}},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
        refit = wait_for_job(client, account, response.json()["id"])
    finally:
        standin.reset()
    assert refit["status"] == "failed" and refit["error"]["code"] == "TABPFN_QUOTA_EXCEEDED"
    assert model(client, account, model_id)["status"] == "ready"
    assert predicted(client, account, model_id)["status"] == "succeeded"


def test_fits_in_flight_are_not_reused_before_they_are_ready(
    client: TestClient, worker: ManagedProcess, standin: StandinProcess
) -> None:
    account = register(client)
    standin.configure(fit_delay_s=2)  # the first is still fitting when the second starts
    try:
        jobs = [fit(client, account, X, Y)["id"] for _ in range(2)]
        finished = [wait_for_job(client, account, job_id) for job_id in jobs]
    finally:
        standin.reset()
    assert [job["status"] for job in finished] == ["succeeded", "succeeded"]
    assert [job["reused_from"] for job in finished] == [None, None]
    assert len(standin.fits_of(account.token)) == 2
