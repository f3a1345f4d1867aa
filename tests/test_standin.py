"""The stand-in TabPFN server, driven over real HTTP by the unmodified tabpfn-client 0.6.1.

Checking the stand-in against the real client is the point here, so this module imports
tabpfn_client directly (tests/** is exempt from the adapter-only import rule).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tabpfn_client
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split
from tabpfn_client.api_models import (
    DuplicateTrainSetErrorResponse,
    EstimateCostRequest,
    GetFitStatusResponse,
    GetSettingsResponse,
    ModelVersion,
    NotFoundErrorResponse,
    PredictResponse,
    PrepareTrainSetUploadResponse,
    RegressorConfig,
    RegressorPredictParams,
)
from tabpfn_client.client import ClientOptions, ServiceClient
from tabpfn_client.config import Config
from tabpfn_client.errors import RetryableServerError

from tests.standin import DEFAULT_LIMITS, StandinHandle, fit_baseline, start_standin, token_id
from tests.support.standin import StandinProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def inproc_standin() -> Iterator[StandinHandle]:
    """One in-process stand-in, with the client's shared httpx client pointed at it."""
    handle = start_standin()
    saved = (
        ServiceClient.httpx_client,
        ServiceClient._access_token,
        ServiceClient._api_settings,
        Config.is_initialized,
        Config.use_server,
    )
    client = httpx.Client(
        base_url=handle.url,
        timeout=900,
        headers={"Prior-Client-Version": tabpfn_client.__version__},
        follow_redirects=True,
    )
    ServiceClient.httpx_client = client
    ServiceClient.reset_authorization()  # no process-global token: each estimator brings its own
    Config.is_initialized = True
    Config.use_server = True
    try:
        yield handle
    finally:
        (
            ServiceClient.httpx_client,
            ServiceClient._access_token,
            ServiceClient._api_settings,
            Config.is_initialized,
            Config.use_server,
        ) = saved
        client.close()
        handle.stop()


@pytest.fixture
def server(inproc_standin: StandinHandle) -> StandinHandle:
    """The stand-in with startup config and an empty log; the client re-reads its settings."""
    inproc_standin.reset_config()
    inproc_standin.clear_calls()
    inproc_standin.clear_predicts()
    ServiceClient._api_settings = None
    return inproc_standin


@pytest.fixture
def api(server: StandinHandle) -> Iterator[httpx.Client]:
    """A raw HTTP client for status codes, headers and bodies the estimators hide."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def cancer() -> Split:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    return x_train, x_test, y_train, y_test


def new_token(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def opts(token: str) -> ClientOptions:
    return ClientOptions(headers={"Authorization": f"Bearer {token}"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def paths(calls: list[dict[str, Any]]) -> list[str]:
    """Request-log paths with upload ids collapsed, e.g. PUT /_storage/x_train/0."""
    out = []
    for call in calls:
        path = call["path"]
        if path.startswith("/_storage/"):
            _, _, _, name, chunk = path.split("/")
            path = f"/_storage/{name}/{chunk}"
        out.append(f"{call['method']} {path}")
    return out


def test_settings_validate_and_cover_every_model_version(
    server: StandinHandle, api: httpx.Client
) -> None:
    settings = GetSettingsResponse.model_validate(api.get("/tabpfn/get_settings").json())
    assert set(ModelVersion) <= set(settings.model_limits)
    assert settings.default_model_version == ModelVersion.V3
    assert settings.max_model_limit.model_dump() == dict(DEFAULT_LIMITS)
    assert settings.async_settings.use_above_trainset_size_bytes == 52_428_800

    server.configure(limits={"max_cols": 7})
    settings = GetSettingsResponse.model_validate(api.get("/tabpfn/get_settings").json())
    assert {limit.max_cols for limit in settings.model_limits.values()} == {7}


def test_breast_cancer_classification(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, y_test = cancer
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    clf.fit(x_train, y_train)
    preds = clf.predict(x_test)
    probas = clf.predict_proba(x_test)

    assert (preds == y_test).mean() >= 0.9
    assert probas.shape == (len(x_test), 2)
    np.testing.assert_allclose(probas.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[probas.argmax(axis=1)], preds)
    # The stand-in answers exactly what the exported baseline computes on the same data.
    baseline = fit_baseline(pd.DataFrame(x_train), y_train, "classification")
    np.testing.assert_allclose(probas, np.asarray(baseline.predict(pd.DataFrame(x_test), "probas")))
    assert clf._last_meta["classes"] == [0, 1]


def test_string_labels_and_text_features_round_trip(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, _ = cancer
    labels = np.array(["malignant", "benign"])

    def frame(x: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(x[:, :5], columns=[f"num{i}" for i in range(5)])
        df["size"] = np.where(x[:, 0] > 14, "large", "small")
        return df

    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    clf.fit(frame(x_train), labels[y_train])
    preds = clf.predict(frame(x_test))
    probas = clf.predict_proba(frame(x_test))

    assert list(clf.classes_) == ["benign", "malignant"]
    assert set(preds) <= {"benign", "malignant"}
    assert all(isinstance(p, str) for p in preds)
    baseline = fit_baseline(frame(x_train), labels[y_train], "classification")
    assert list(preds) == baseline.predict(frame(x_test), "preds")
    np.testing.assert_allclose(probas, np.asarray(baseline.predict(frame(x_test), "probas")))
    np.testing.assert_array_equal(clf.classes_[probas.argmax(axis=1)], preds)


def test_regression_outputs(server: StandinHandle) -> None:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train = x[:300], x[300:340], y[:300]
    reg = tabpfn_client.TabPFNRegressor(client_options=opts(new_token()))
    reg.fit(x_train, y_train)
    baseline = fit_baseline(pd.DataFrame(x_train), y_train, "regression")

    mean = reg.predict(x_test)
    assert isinstance(mean, np.ndarray)
    np.testing.assert_allclose(mean, np.asarray(baseline.predict(pd.DataFrame(x_test), "mean")))
    np.testing.assert_allclose(reg.predict(x_test, output_type="median"), mean)

    quantiles = reg.predict(x_test, output_type="quantiles", quantiles=[0.1, 0.5, 0.9])
    assert isinstance(quantiles, list)
    assert [q.shape for q in quantiles] == [(40,)] * 3
    assert np.all(quantiles[0] < quantiles[1])
    assert np.all(quantiles[1] < quantiles[2])
    np.testing.assert_allclose(quantiles[1], mean)
    assert len(reg.predict(x_test, output_type="quantiles")) == 9  # default quantiles

    main = reg.predict(x_test, output_type="main")
    assert isinstance(main, dict)
    assert set(main) == {"mean", "median", "mode", "quantiles"}
    assert main["quantiles"].shape == (9, 40)

    # Without the optional tabpfn/torch packages the client warns it cannot build `criterion`.
    with pytest.warns(UserWarning, match="Optional dependencies"):
        full = reg.predict(x_test[:10], output_type="full")
    assert isinstance(full, dict)
    assert set(full) <= {"mean", "median", "mode", "quantiles", "logits", "borders"}
    assert full["logits"].shape == (10, len(full["borders"]) - 1)


def test_multi_chunk_upload_reassembles(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, _ = cancer
    server.configure(chunks=3)
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    probas = clf.fit(x_train, y_train).predict_proba(x_test)

    puts = sorted(p for p in paths(server.calls()) if p.startswith("PUT"))
    assert puts == [
        f"PUT /_storage/{name}/{i}" for name in ("x_test", "x_train", "y_train") for i in range(3)
    ]
    baseline = fit_baseline(pd.DataFrame(x_train), y_train, "classification")
    np.testing.assert_allclose(probas, np.asarray(baseline.predict(pd.DataFrame(x_test), "probas")))


def test_async_api_mode_and_pending_fit_mode(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, y_test = cancer
    clf = tabpfn_client.TabPFNClassifier(api_mode="async", client_options=opts(new_token()))
    clf.fit(x_train, y_train)
    assert (clf.predict(x_test) == y_test).mean() >= 0.9
    fit_calls = [p for p in paths(server.calls()) if "fit" in p]
    assert fit_calls[0] == "POST /tabpfn/submit_fit_job"
    assert len(fit_calls) >= 2
    assert set(fit_calls[1:]) == {"POST /tabpfn/get_fit_status"}

    server.clear_calls()
    server.configure(fit_mode="pending")
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    clf.fit(x_train, y_train)
    fit_calls = [p for p in paths(server.calls()) if "fit" in p]
    assert fit_calls[0] == "POST /tabpfn/fit"
    assert fit_calls[1:].count("POST /tabpfn/get_fit_status") >= 2  # pending at least once
    assert clf.fit_timings_ is not None
    assert clf.fit_timings_["elapsed_s"] >= 0


def test_pending_fit_status_body_and_failed_fit(server: StandinHandle, api: httpx.Client) -> None:
    server.configure(fit_mode="pending")
    token = new_token()
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    y = np.array([1, 1, 1, 1])  # one class: the fit fails on the server, not in the client
    with pytest.raises(RuntimeError, match=r"Fit \S+ failed: y has a single class"):
        tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x, y)
    fit_call = next(c for c in server.calls() if c["path"] == "/tabpfn/fit")
    assert fit_call["status"] == 200  # the failure arrives as status=failed on a poll
    polls = [c for c in server.calls() if c["path"] == "/tabpfn/get_fit_status"]
    assert len(polls) >= 2

    unknown = api.post(
        "/tabpfn/get_fit_status",
        json={"fitted_train_set_id": str(uuid.uuid4())},
        headers=bearer(token),
    )
    assert unknown.status_code == 404
    NotFoundErrorResponse.model_validate(unknown.json())


def test_sync_fit_with_bad_data_is_400_invalid_input(server: StandinHandle) -> None:
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(RuntimeError, match=r"HTTP 400.*single class.*Report trace ID"):
        tabpfn_client.TabPFNClassifier(client_options=opts(new_token())).fit(x, np.ones(4))


def test_dedup_skips_the_second_upload(server: StandinHandle, cancer: Split) -> None:
    x_train, _, y_train, _ = cancer
    token = new_token()
    first = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    server.clear_calls()
    second = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)

    assert paths(server.calls()) == [
        "POST /tabpfn/prepare_train_set_upload",
        "POST /tabpfn/fit",
    ]
    assert [c["status"] for c in server.calls()] == [409, 200]
    assert first.model_id_ != second.model_id_  # a new fit job every time, no fit dedup
    # Another account uploading the same bytes gets no dedup hit.
    server.clear_calls()
    tabpfn_client.TabPFNClassifier(client_options=opts(new_token())).fit(x_train, y_train)
    assert any(p.startswith("PUT") for p in paths(server.calls()))


def test_duplicate_train_set_body_validates(server: StandinHandle, api: httpx.Client) -> None:
    token = new_token()
    body = {
        "x_train_info": {"format": "parquet", "hash": "xh"},
        "y_train_info": {"format": "parquet", "hash": "yh"},
    }
    first = PrepareTrainSetUploadResponse.model_validate(
        api.post("/tabpfn/prepare_train_set_upload", json=body, headers=bearer(token)).json()
    )
    for info in (first.x_train_info, first.y_train_info):
        assert info.required_headers == {"Content-Type": "application/octet-stream"}
        assert api.put(info.signed_urls[0], content=b"bytes").status_code == 200
    again = api.post("/tabpfn/prepare_train_set_upload", json=body, headers=bearer(token))
    assert again.status_code == 409
    dup = DuplicateTrainSetErrorResponse.model_validate(again.json())
    assert dup.train_set_upload_id == first.train_set_upload_id
    assert dup.error_code == "DUPLICATE_TRAIN_SET_UPLOAD"
    forced = api.post(
        "/tabpfn/prepare_train_set_upload",
        json={**body, "force_reupload": True},
        headers=bearer(token),
    )
    assert forced.status_code == 200


def test_fitted_model_is_private_to_its_token(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, _ = cancer
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    clf.fit(x_train, y_train)
    clf.client_options.headers["Authorization"] = f"Bearer {new_token()}"
    with pytest.raises(tabpfn_client.FittedModelNotFoundError, match="Report trace ID"):
        clf.predict(x_test)


def test_deleted_model_is_not_found(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, x_test, y_train, _ = cancer
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    deleted = api.delete(
        "/delete_dataset/", params={"dataset_uid": str(clf.model_id_)}, headers=bearer(token)
    )
    assert deleted.json() == {"deleted_dataset_uids": [str(clf.model_id_)]}
    with pytest.raises(tabpfn_client.FittedModelNotFoundError):
        clf.predict(x_test)


def test_token_checks(server: StandinHandle, api: httpx.Client) -> None:
    assert ServiceClient.is_auth_token_outdated(new_token()) is True
    assert ServiceClient.is_auth_token_outdated(new_token("invalid")) is False
    assert ServiceClient.is_auth_token_outdated(new_token("unverified")) is None

    for headers in ({}, {"Authorization": "Bearer"}, bearer(new_token("invalid"))):
        resp = api.post("/tabpfn/prepare_train_set_upload", json={}, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["message"] == "Invalid token"
        uuid.UUID(resp.json()["trace_id"])
    resp = api.post("/get_api_usage/", headers=bearer(new_token("unverified")))
    assert resp.status_code == 403


def test_overquota_is_429_without_retry_after(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, _, y_train, _ = cancer
    token = new_token("overquota")
    with pytest.raises(RuntimeError, match=r"HTTP 429\] Usage limit exceeded"):
        tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)

    resp = api.post("/tabpfn/predict", json={}, headers=bearer(token))
    assert resp.status_code == 429
    assert "retry-after" not in resp.headers
    body = resp.json()
    assert body["error_code"] == "USAGE_LIMIT_EXCEEDED"
    assert body["reset_time"].endswith("T00:00:00+00:00")
    assert f"Resets at {body['reset_time']}." in body["message"]
    usage = ServiceClient.get_api_usage(token)
    assert usage["current_usage"] == usage["usage_limit"] > 0


def test_usage_limit_is_enforced_from_metered_usage(server: StandinHandle, cancer: Split) -> None:
    x_train, _, y_train, _ = cancer
    server.configure(usage_limit=1)
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(token))
    clf.fit(x_train, y_train)  # usage 0 < 1 lets this one through
    with pytest.raises(RuntimeError, match="HTTP 429"):
        clf.fit(x_train, y_train)


def test_ratelimited_is_429_with_retry_after(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, _, y_train, _ = cancer
    token = new_token("ratelimited")
    resp = api.post("/tabpfn/fit", json={}, headers=bearer(token))
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["error_code"] == "RATE_LIMITED"
    # The client raises a plain RuntimeError: only the message tells it from a quota 429.
    with pytest.raises(RuntimeError, match=r"Fail to call fit: \[HTTP 429\] Too many requests"):
        tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)


def test_flaky_fails_one_client_call_then_succeeds(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, _ = cancer
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token("flaky")))
    with pytest.raises(RetryableServerError, match=r"HTTP 503"):
        clf.fit(x_train, y_train)
    clf.fit(x_train, y_train)
    with pytest.raises(RetryableServerError):
        clf.predict(x_test)
    assert len(clf.predict(x_test)) == len(x_test)
    statuses = [c["status"] for c in server.calls() if c["path"] == "/tabpfn/fit"]
    assert statuses == [503, 503, 200]


def test_drop_closes_the_connection(server: StandinHandle, cancer: Split) -> None:
    x_train, _, y_train, _ = cancer
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token("drop")))
    with pytest.raises(httpx.RemoteProtocolError):
        clf.fit(x_train, y_train)
    fits = [c for c in server.calls() if c["path"] == "/tabpfn/fit"]
    assert [c["status"] for c in fits] == [None, None]  # the client retried once


def test_slow_token_adds_two_seconds_to_fit(server: StandinHandle) -> None:
    x = pd.DataFrame({"a": np.arange(20.0)})
    y = np.arange(20) % 2
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token("slow")))
    started = time.monotonic()
    clf.fit(x, y)
    assert time.monotonic() - started >= 2.0


def test_latency_does_not_serialize_requests(server: StandinHandle) -> None:
    server.configure(latency_ms=500)
    statuses: list[int] = []

    def call() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            statuses.append(client.post("/tabpfn/fit", json={}, headers=bearer("t")).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert statuses == [422] * 8
    assert 0.5 <= elapsed < 1.5


def test_get_api_usage_shape_and_metering(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, _ = cancer
    token = new_token()
    before = ServiceClient.get_api_usage(token)
    assert set(before) == {"current_usage", "usage_limit", "reset_time"}
    assert before["current_usage"] == 0
    assert before["usage_limit"] == -1
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    clf.predict(x_test)
    after = ServiceClient.get_api_usage(token)["current_usage"]
    assert after == x_train.size + x_test.size


def test_request_log_shows_token_ids_and_bare_storage_puts(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, x_test, y_train, _ = cancer
    token = new_token()
    tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train).predict(x_test)

    calls = api.get("/_calls").json()["calls"]
    assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)
    assert {
        c["token_id"] for c in calls if c["path"].startswith("/tabpfn/") and c["method"] == "POST"
    } == {token_id(token)}
    puts = [c for c in calls if c["method"] == "PUT"]
    assert len(puts) == 3
    assert all(c["token_id"] is None and c["status"] == 200 for c in puts)
    assert not any(c["path"].startswith(("/_admin", "/_calls")) for c in calls)
    assert token not in str(calls)

    last = calls[-1]["seq"]
    api.get("/")
    assert [c["path"] for c in api.get("/_calls", params={"since": last}).json()["calls"]] == ["/"]
    assert api.delete("/_calls").status_code == 200
    assert api.get("/_calls").json() == {"calls": []}


def test_predict_response_validates_and_column_mismatch_is_400(
    server: StandinHandle, cancer: Split
) -> None:
    x_train, x_test, y_train, _ = cancer
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(new_token()))
    clf.fit(x_train, y_train)
    with pytest.raises(RuntimeError, match=r"HTTP 400\] X_test has 5 columns"):
        clf.predict(x_test[:, :5])


def test_admin_config_and_bursts(server: StandinHandle, cancer: Split, api: httpx.Client) -> None:
    x_train, x_test, y_train, _ = cancer
    config = api.get("/_admin/config").json()
    assert config["chunks"] == 1
    assert config["fit_mode"] == "sync"
    updated = api.post("/_admin/config", json={"latency_ms": 5, "limits": {"max_classes": 3}})
    assert updated.json()["latency_ms"] == 5
    assert updated.json()["limits"]["max_classes"] == 3
    assert updated.json()["limits"]["max_cols"] == 2000
    assert api.post("/_admin/config", json={"chunks": 0}).status_code == 400
    assert api.post("/_admin/config", json={"bogus": 1}).status_code == 400
    assert api.delete("/_admin/config").json() == config

    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    api.post(
        "/_admin/config",
        json={"fail_burst": {"count": 2, "status": 503, "path": "/tabpfn/predict"}},
    )
    with pytest.raises(RetryableServerError, match="Injected failure"):
        clf.predict(x_test)
    assert api.get("/_admin/config").json()["fail_burst"] is None
    clf.predict(x_test)

    server.clear_calls()
    api.post(
        "/_admin/config",
        json={"drop_burst": {"count": 1, "path": None, "token_id": token_id(token)}},
    )
    clf.fit(x_train, y_train)  # the client retries a dropped fit once
    fits = [c["status"] for c in server.calls() if c["path"] == "/tabpfn/fit"]
    assert fits == [None, 200]


def test_estimate_cost_and_unknown_routes(server: StandinHandle, api: httpx.Client) -> None:
    req = EstimateCostRequest(train_rows=100, raw_columns=10, test_rows=50)
    quote = ServiceClient.estimate_cost(req, access_token=new_token())
    assert quote.estimated_cost == 1500
    assert api.get("/no/such/route").status_code == 404
    assert api.get("/no/such/route").json()["message"] == "Not found"
    assert api.get("/tabpfn/fit").status_code == 405
    assert api.get("/retrieve_greeting_messages/").json() == {"messages": []}
    assert api.get("/").json() == {}


def test_predict_body_validates_against_client_models(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, x_test, y_train, _ = cancer
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    clf.predict(x_test)
    test_put = next(c for c in server.calls() if c["path"].endswith("/x_test/0"))
    test_id = test_put["path"].split("/")[2]
    resp = api.post(
        "/tabpfn/predict",
        headers=bearer(token),
        json={
            "test_set_upload_id": test_id,
            "fitted_train_set_id": str(clf.model_id_),
            "task_config": {"task": "classification", "predict_params": {"output_type": "probas"}},
        },
    )
    parsed = PredictResponse.model_validate(resp.json())
    assert parsed.metadata.test_set_num_rows == len(x_test)
    status = api.post(
        "/tabpfn/get_fit_status",
        json={"fitted_train_set_id": str(clf.model_id_)},
        headers=bearer(token),
    )
    assert GetFitStatusResponse.model_validate(status.json()).status == "completed"


def test_cli_announces_url_and_never_logs_tokens() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standin", "--port", "0", "--chunks", "2", "--access-log"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    token = new_token()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("STANDIN_READY http://127.0.0.1:")
        url = line.split()[1]
        with httpx.Client(base_url=url, timeout=30) as client:
            body = {
                "x_train_info": {"format": "parquet"},
                "y_train_info": {"format": "parquet"},
            }
            resp = client.post("/tabpfn/prepare_train_set_upload", json=body, headers=bearer(token))
            assert len(resp.json()["x_train_info"]["signed_urls"]) == 2
            assert resp.json()["x_train_info"]["signed_urls"][0].startswith(url)
            client.get("/protected/", headers=bearer("invalid" + token))
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "POST /tabpfn/prepare_train_set_upload 200" in err
    assert token not in out + err


# --- TabPFN options: what fits and predicts ask for, Thinking, fit_with_cache, lost fits ----


def upload_train(api: httpx.Client, token: str, x: pd.DataFrame, y: pd.Series) -> str:
    """Upload a train set over raw HTTP (no dedup hashes), returning its upload id."""
    body = {"x_train_info": {"format": "parquet"}, "y_train_info": {"format": "parquet"}}
    prepared = api.post("/tabpfn/prepare_train_set_upload", json=body, headers=bearer(token))
    assert prepared.status_code == 200, prepared.text
    for name, frame_ in (("x_train_info", x), ("y_train_info", y.to_frame())):
        [url] = prepared.json()[name]["signed_urls"]
        assert api.put(url, content=frame_.to_parquet(index=False)).status_code == 200
    return str(prepared.json()["train_set_upload_id"])


def fit_body(upload_id: str, task: str = "classification", **extra: Any) -> dict[str, Any]:
    return {"train_set_upload_id": upload_id, "task_config": {"task": task}, **extra}


def small_classification() -> tuple[pd.DataFrame, pd.Series]:
    x = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    return x, pd.Series(np.arange(20) % 2, name="y")


THINKING = ["preprocessing", "text", "thinking"]


def test_fit_log_records_what_each_fit_asked_for(server: StandinHandle, cancer: Split) -> None:
    x_train, _, y_train, _ = cancer
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(
        n_estimators=4, text_handling="simple", client_options=opts(token)
    ).fit(x_train, y_train)
    x, y = load_diabetes(return_X_y=True)
    reg = tabpfn_client.TabPFNRegressor(
        paper_version=True, api_mode="async", client_options=opts(token)
    ).fit(x[:100, :4], y[:100])
    server.configure(fit_mode="pending")  # /tabpfn/fit answers pending: still a sync-API fit
    pending = tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)

    log = {f["id"]: f for f in server.fits() if f["token_id"] == token_id(token)}
    first, second, third = (
        log[str(clf.model_id_)],
        log[str(reg.model_id_)],
        log[str(pending.model_id_)],
    )
    assert first["mode"] == "sync" and first["task"] == "classification"
    assert first["tabpfn_config"]["n_estimators"] == 4
    assert first["tabpfn_systems"] == ["preprocessing", "text"]
    assert first["text_handling"] == "simple" and first["thinking_config"] is None
    assert (first["train_rows"], first["train_cols"]) == x_train.shape
    assert second["mode"] == "async" and second["task"] == "regression"
    assert second["tabpfn_systems"] == []  # the paper version runs without the systems
    assert second["text_handling"] is None  # "advanced" is the default, so not sent
    assert (second["train_rows"], second["train_cols"]) == (100, 4)
    assert third["mode"] == "sync" and third["status"] == "completed"
    assert not any(f["forgotten"] for f in log.values())


def test_predict_log_records_each_predict_and_is_an_admin_route(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, x_test, y_train, _ = cancer
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(n_estimators=3, client_options=opts(token))
    clf.fit(x_train, y_train).predict_proba(x_test)
    with pytest.raises(RuntimeError, match="HTTP 400"):
        clf.predict(x_test[:7, :5])
    x, y = load_diabetes(return_X_y=True)
    reg = tabpfn_client.TabPFNRegressor(client_options=opts(token)).fit(x[:200], y[:200])
    reg.predict(x[200:210], output_type="quantiles", quantiles=[0.25, 0.75])

    before = server.calls()
    entries = [
        p for p in api.get("/_predicts").json()["predicts"] if p["token_id"] == token_id(token)
    ]
    assert [p["status"] for p in entries] == [200, 400, 200]
    probas, refused, quantiles = entries
    assert probas["fitted_train_set_id"] == str(clf.model_id_)
    assert (probas["test_rows"], probas["test_cols"]) == x_test.shape
    assert probas["output_type"] == "probas" and probas["quantiles"] is None
    assert probas["tabpfn_config"]["n_estimators"] == 3
    assert (probas["execution_mode"], probas["cache_outcome"]) == ("standard", "not_requested")
    assert (refused["test_rows"], refused["test_cols"]) == (7, 5)
    assert "X_test has 5 columns" in refused["error"] and refused["execution_mode"] is None
    assert quantiles["task"] == "regression" and quantiles["fitted_train_set_id"] == str(
        reg.model_id_
    )
    assert quantiles["output_type"] == "quantiles" and quantiles["quantiles"] == [0.25, 0.75]
    assert server.calls() == before  # reading the predict log is not itself logged
    assert token not in str(entries)

    since = entries[-1]["seq"]
    assert api.get("/_predicts", params={"since": since}).json() == {"predicts": []}
    assert api.get("/_predicts", params={"since": "x"}).status_code == 400
    assert api.delete("/_predicts").status_code == 200
    assert server.predicts() == []


def test_thinking_fit_through_the_client(server: StandinHandle, cancer: Split) -> None:
    x_train, x_test, y_train, y_test = cancer
    server.configure(thinking_fit_delay_s=0.3, fit_delay_s=0.1)
    token = new_token()
    clf = tabpfn_client.TabPFNClassifier(
        thinking_effort="high", thinking_timeout_s=600, client_options=opts(token)
    ).fit(x_train, y_train)
    assert (clf.predict(x_test) == y_test).mean() >= 0.9
    assert clf._last_meta["execution_mode"] == "thinking"
    assert clf._last_meta["cache_outcome"] == "not_requested"
    assert clf.fit_timings_ is not None and clf.fit_timings_["fit_s"] >= 0.4
    [fit] = [f for f in server.fits() if f["token_id"] == token_id(token)]
    assert fit["tabpfn_systems"] == THINKING
    assert fit["thinking_config"] == {"effort": "high", "timeout_secs": 600}
    assert fit["thinking_s"] == 0.3

    # thinking_mode=True without an effort sends an empty config: the service's default.
    reg = tabpfn_client.TabPFNRegressor(
        thinking_mode=True, api_mode="async", client_options=opts(token)
    )
    x, y = load_diabetes(return_X_y=True)
    reg.fit(x[:100], y[:100]).predict(x[100:110])
    assert reg._last_meta["execution_mode"] == "thinking"
    async_fit = next(f for f in server.fits() if f["id"] == str(reg.model_id_))
    assert async_fit["mode"] == "async" and async_fit["thinking_config"] == {}
    assert [p["execution_mode"] for p in server.predicts()] == ["thinking", "thinking"]


def test_thinking_budget_caps_the_search_and_the_fit_still_completes(
    server: StandinHandle, cancer: Split
) -> None:
    x_train, x_test, y_train, _ = cancer
    server.configure(thinking_fit_delay_s=600)  # far past any test's patience
    clf = tabpfn_client.TabPFNClassifier(
        thinking_mode=True, thinking_timeout_s=0.2, client_options=opts(new_token())
    )
    clf.fit(x_train, y_train)
    [fit] = [f for f in server.fits() if f["id"] == str(clf.model_id_)]
    assert fit["status"] == "completed" and fit["thinking_s"] == 0.2
    assert len(clf.predict(x_test)) == len(x_test)


@pytest.mark.parametrize("route", ["/tabpfn/fit", "/tabpfn/submit_fit_job"])
def test_fit_options_are_validated_like_the_hosted_service(
    server: StandinHandle, api: httpx.Client, route: str
) -> None:
    server.configure(thinking_fit_delay_s=0)
    token = new_token()
    upload = upload_train(api, token, *small_classification())
    refused = {
        "effort": fit_body(upload, tabpfn_systems=THINKING, thinking_config={"effort": "low"}),
        "timeout_secs": fit_body(
            upload, tabpfn_systems=THINKING, thinking_config={"timeout_secs": 0}
        ),
        "must be a positive": fit_body(
            upload, tabpfn_systems=THINKING, thinking_config={"timeout_secs": "60"}
        ),
        "maximum of 2400": fit_body(
            upload, tabpfn_systems=THINKING, thinking_config={"timeout_secs": 2401}
        ),
        "tabpfn_systems=[]": fit_body(
            upload, tabpfn_systems=[], thinking_config={"effort": "medium"}
        ),
        "'thinking' is not in tabpfn_systems": fit_body(
            upload, tabpfn_systems=["preprocessing"], thinking_config={"effort": "medium"}
        ),
        "Unknown thinking_config": fit_body(
            upload, tabpfn_systems=THINKING, thinking_config={"budget": 3}
        ),
        "cannot be combined": fit_body(
            upload, tabpfn_systems=THINKING, thinking_config={"group_col": "a", "time_col": "b"}
        ),
        "Unknown tabpfn_systems": fit_body(upload, tabpfn_systems=["preprocessing", "magic"]),
        "text_handling": fit_body(upload, text_handling="fancy"),
        "fit_mode": {
            "train_set_upload_id": upload,
            "task_config": {"task": "classification", "tabpfn_config": {"fit_mode": "eager"}},
        },
    }
    for fragment, body in refused.items():
        resp = api.post(route, json=body, headers=bearer(token))
        assert resp.status_code == 400, (fragment, resp.text)
        assert resp.json()["error_code"] == "INVALID_INPUT"
        assert fragment in resp.json()["message"], resp.json()["message"]
    assert (
        api.post(
            route, json=fit_body(upload, tabpfn_systems="thinking"), headers=bearer(token)
        ).status_code
        == 422
    )
    assert server.fits() == [f for f in server.fits() if f["token_id"] != token_id(token)]

    accepted = [
        fit_body(upload, tabpfn_systems=THINKING),  # no config: the default effort
        fit_body(upload, tabpfn_systems=THINKING, thinking_config={"timeout_secs": 2400}),
        fit_body(
            upload,
            tabpfn_systems=THINKING,
            thinking_config={"effort": "high", "metric": "roc_auc", "group_col": ["a"]},
        ),
        fit_body(upload, tabpfn_systems=[], text_handling="advanced"),
    ]
    for body in accepted:
        resp = api.post(route, json=body, headers=bearer(token))
        assert resp.status_code == 200, resp.text
    logged = [f["thinking_config"] for f in server.fits() if f["token_id"] == token_id(token)]
    assert logged == [body.get("thinking_config") for body in accepted]


def test_thinking_fit_quota_is_a_429_naming_it(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, _, y_train, _ = cancer
    server.configure(thinking_fit_quota=1, thinking_fit_delay_s=0)
    token = new_token()

    def thinker(**extra: Any) -> Any:
        return tabpfn_client.TabPFNClassifier(
            thinking_mode=True, client_options=opts(token), **extra
        )

    thinker().fit(x_train, y_train)
    with pytest.raises(RuntimeError, match=r"fit: \[HTTP 429\] Thinking-fit quota exceeded"):
        thinker().fit(x_train, y_train)
    with pytest.raises(RuntimeError, match=r"\[HTTP 429\] Thinking-fit quota"):
        thinker(api_mode="async").fit(x_train, y_train)
    # Standard fits draw on another pool, and other tokens have their own thinking quota.
    tabpfn_client.TabPFNClassifier(client_options=opts(token)).fit(x_train, y_train)
    tabpfn_client.TabPFNClassifier(thinking_mode=True, client_options=opts(new_token())).fit(
        x_train, y_train
    )

    upload = upload_train(api, token, *small_classification())
    resp = api.post(
        "/tabpfn/fit", json=fit_body(upload, tabpfn_systems=THINKING), headers=bearer(token)
    )
    assert resp.status_code == 429 and "retry-after" not in resp.headers
    body = resp.json()
    assert body["error_code"] == "USAGE_LIMIT_EXCEEDED" and body["quota"] == "thinking_fit"
    assert body["reset_time"].endswith("-01T00:00:00+00:00")  # the monthly pool
    assert f"1 of 1 thinking fits used. Resets at {body['reset_time']}." in body["message"]
    mine = [f for f in server.fits() if f["token_id"] == token_id(token)]
    assert len(mine) == 2  # the refused fits never ran


def test_a_failed_thinking_fit_costs_no_thinking_quota(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, _, y_train, _ = cancer
    server.configure(thinking_fit_quota=1, thinking_fit_delay_s=0)
    token = new_token()
    one_class = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]}), np.ones(4)
    for api_mode in ("sync", "async"):
        with pytest.raises(RuntimeError, match="single class"):
            tabpfn_client.TabPFNClassifier(
                thinking_mode=True, api_mode=api_mode, client_options=opts(token)
            ).fit(*one_class)
    tabpfn_client.TabPFNClassifier(thinking_mode=True, client_options=opts(token)).fit(
        x_train, y_train
    )
    upload = upload_train(api, token, *small_classification())
    resp = api.post(
        "/tabpfn/submit_fit_job",
        json=fit_body(upload, tabpfn_systems=THINKING),
        headers=bearer(token),
    )
    assert resp.status_code == 429  # now the one unit is spent


def test_fit_with_cache_predictions_report_a_cache_hit(server: StandinHandle) -> None:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train = x[:200], x[200:230], y[:200]
    server.configure(thinking_fit_delay_s=0)
    token = new_token()
    cached = tabpfn_client.TabPFNRegressor(fit_mode="fit_with_cache", client_options=opts(token))
    standard = tabpfn_client.TabPFNRegressor(client_options=opts(token))
    both = tabpfn_client.TabPFNRegressor(
        fit_mode="fit_with_cache", thinking_mode=True, client_options=opts(token)
    )
    seen = {}
    for name, reg in (("cached", cached), ("standard", standard), ("both", both)):
        reg.fit(x_train, y_train)
        first = reg.predict(x_test)
        seen[name] = (reg._last_meta["execution_mode"], reg._last_meta["cache_outcome"])
        reg.predict(x_test, output_type="median")  # a later predict reports the same
        assert (reg._last_meta["execution_mode"], reg._last_meta["cache_outcome"]) == seen[name]
        assert set(reg._last_timings) == {
            "test_set_transform_queue_wait_s",
            "test_set_transform_s",
            "predict_queue_wait_s",
            "predict_s",
        }
        baseline = fit_baseline(pd.DataFrame(x_train), y_train, "regression")
        np.testing.assert_allclose(
            first, np.asarray(baseline.predict(pd.DataFrame(x_test), "mean"))
        )
    assert seen == {
        "cached": ("cache", "hit"),
        "standard": ("standard", "not_requested"),
        "both": ("thinking", "fallback"),
    }
    [fit] = [f for f in server.fits() if f["id"] == str(cached.model_id_)]
    assert fit["tabpfn_config"]["fit_mode"] == "fit_with_cache"
    outcomes = [(p["execution_mode"], p["cache_outcome"]) for p in server.predicts()]
    assert outcomes == [seen["cached"]] * 2 + [seen["standard"]] * 2 + [seen["both"]] * 2


def test_full_and_main_outputs_parse_through_the_service_client(server: StandinHandle) -> None:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train = x[:300], x[300:320], y[:300]
    token = new_token()
    reg = tabpfn_client.TabPFNRegressor(client_options=opts(token)).fit(x_train, y_train)
    baseline = fit_baseline(pd.DataFrame(x_train), y_train, "regression")

    def predict(output_type: str, rows: np.ndarray) -> Any:
        return ServiceClient.predict(
            fitted_train_set_id=reg.model_id_,
            x_test=rows,
            task_config=RegressorConfig(
                predict_params=RegressorPredictParams(
                    output_type=output_type, quantiles=[0.25, 0.5, 0.75]
                )
            ),
            client_options=opts(token),
        )

    main = predict("main", x_test)
    assert set(main.y_pred) == {"mean", "median", "mode", "quantiles"}
    assert main.metadata["task"] == "regression" and main.metadata["test_set_num_rows"] == 20
    mean = np.asarray(baseline.predict(pd.DataFrame(x_test), "mean"))
    for key in ("mean", "median", "mode"):
        np.testing.assert_allclose(main.y_pred[key], mean)
    assert main.y_pred["quantiles"].shape == (3, 20)  # rows on axis 1
    np.testing.assert_allclose(main.y_pred["quantiles"][1], mean)

    full = predict("full", x_test)
    assert set(full.y_pred) == {"mean", "median", "mode", "quantiles", "logits", "borders"}
    assert full.y_pred["quantiles"].shape == (3, 20)
    borders = full.y_pred["borders"]
    assert borders.ndim == 1 and np.all(np.diff(borders) > 0)  # one grid for every row
    assert full.y_pred["logits"].shape == (20, len(borders) - 1)  # rows on axis 0
    mass = np.exp(np.nan_to_num(full.y_pred["logits"], nan=-np.inf))  # null: no mass
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, atol=1e-6)
    # One full request covers only what it covers: halves merge to the same answer.
    halves = [predict("full", part).y_pred for part in (x_test[:10], x_test[10:])]
    for half in halves:
        np.testing.assert_array_equal(half["borders"], borders)
    np.testing.assert_allclose(np.concatenate([h["logits"] for h in halves]), full.y_pred["logits"])


def test_full_output_row_cap_applies_to_full_only(server: StandinHandle) -> None:
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train = x[:300], x[300:312], y[:300]
    server.configure(limits={"test_set_max_rows_w_full_regression_output": 5})
    token = new_token()
    reg = tabpfn_client.TabPFNRegressor(client_options=opts(token)).fit(x_train, y_train)

    def predict(output_type: str) -> Any:
        return ServiceClient.predict(
            fitted_train_set_id=reg.model_id_,
            x_test=x_test,
            task_config=RegressorConfig(
                predict_params=RegressorPredictParams(output_type=output_type)
            ),
            client_options=opts(token),
        )

    with pytest.raises(RuntimeError, match=r"HTTP 400\] Test rows 12 exceed 5 for full"):
        predict("full")
    for output_type in ("main", "quantiles", "mean", "median", "mode"):
        assert predict(output_type).metadata["test_set_num_rows"] == 12
    # The estimator splits a full output over the cap by itself, and merges the parts.
    server.clear_calls()
    with pytest.warns(UserWarning, match="Optional dependencies"):
        full = reg.predict(x_test, output_type="full")
    assert full["logits"].shape[0] == 12 and full["quantiles"].shape[1] == 12
    fulls = [p for p in server.predicts() if p["output_type"] == "full"]
    assert [(p["status"], p["test_rows"]) for p in fulls] == [
        (400, 12),
        (200, 5),
        (200, 5),
        (200, 2),
    ]


def test_forgotten_fits_are_not_found_while_usage_and_logs_stay(
    server: StandinHandle, cancer: Split, api: httpx.Client
) -> None:
    x_train, x_test, y_train, _ = cancer
    lost, kept = new_token(), new_token()
    lost_clf = tabpfn_client.TabPFNClassifier(client_options=opts(lost)).fit(x_train, y_train)
    kept_clf = tabpfn_client.TabPFNClassifier(client_options=opts(kept)).fit(x_train, y_train)
    lost_clf.predict(x_test)
    usage = ServiceClient.get_api_usage(lost)["current_usage"]
    test_put = next(c for c in server.calls() if c["path"].endswith("/x_test/0"))
    calls = len(server.calls())

    forgotten = api.delete("/_admin/fits", params={"token_id": token_id(lost)})
    assert forgotten.json() == {"forgotten_fitted_train_set_ids": [str(lost_clf.model_id_)]}
    with pytest.raises(tabpfn_client.FittedModelNotFoundError):
        lost_clf.predict(x_test)
    # The predict route itself answers 404 too, for a test set uploaded before the loss.
    resp = api.post(
        "/tabpfn/predict",
        headers=bearer(lost),
        json={
            "fitted_train_set_id": str(lost_clf.model_id_),
            "test_set_upload_id": test_put["path"].split("/")[2],
            "task_config": {"task": "classification"},
        },
    )
    assert resp.status_code == 404 and resp.json()["error_code"] == "NOT_FOUND"
    assert len(kept_clf.predict(x_test)) == len(x_test)
    assert ServiceClient.get_api_usage(lost)["current_usage"] == usage
    assert len(server.calls()) > calls  # the request log kept its entries
    states = {f["id"]: f["forgotten"] for f in server.fits()}
    assert states[str(lost_clf.model_id_)] is True
    assert states[str(kept_clf.model_id_)] is False

    server.clear_calls()
    lost_clf.fit(x_train, y_train)  # a refit: the train upload is still there
    assert paths(server.calls()) == ["POST /tabpfn/prepare_train_set_upload", "POST /tabpfn/fit"]
    assert len(lost_clf.predict(x_test)) == len(x_test)

    everything = api.delete("/_admin/fits").json()["forgotten_fitted_train_set_ids"]
    assert {str(lost_clf.model_id_), str(kept_clf.model_id_)} <= set(everything)
    with pytest.raises(tabpfn_client.FittedModelNotFoundError):
        kept_clf.predict(x_test)


def test_fit_timings_report_each_stage(server: StandinHandle, cancer: Split) -> None:
    x_train, _, y_train, _ = cancer
    server.configure(fit_delay_s=0.2)
    stages = {"elapsed_s", "queue_wait_s", "train_set_transform_s", "fit_s"}
    for api_mode in ("sync", "async"):
        clf = tabpfn_client.TabPFNClassifier(api_mode=api_mode, client_options=opts(new_token()))
        timings = clf.fit(x_train, y_train).fit_timings_
        assert timings is not None and set(timings) == stages, api_mode
        assert timings["elapsed_s"] >= 0.2
        # Where the fit's time went: loading and fitting the baseline, then the delay's rest.
        assert timings["train_set_transform_s"] + timings["fit_s"] >= 0.199


def test_admin_config_has_the_thinking_fields(api: httpx.Client) -> None:
    config = api.get("/_admin/config").json()
    assert config["thinking_fit_delay_s"] == 2.0
    assert config["thinking_fit_quota"] == -1
    assert config["thinking_max_timeout_s"] == 2400.0
    updated = api.post(
        "/_admin/config", json={"thinking_fit_quota": 3, "thinking_max_timeout_s": 60}
    ).json()
    assert (updated["thinking_fit_quota"], updated["thinking_max_timeout_s"]) == (3, 60.0)
    for bad in (
        {"thinking_fit_quota": -2},
        {"thinking_max_timeout_s": 0},
        {"thinking_fit_delay_s": -1},
        {"thinking_fit_quota": 1.5},
    ):
        resp = api.post("/_admin/config", json=bad)
        assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_CONFIG", bad


def test_standin_process_helpers_and_thinking_flags(log_dir: Path) -> None:
    process = StandinProcess(
        log_dir / "standin-thinking", "--thinking-fit-quota", "1", "--thinking-fit-delay-s", "0"
    )
    token = new_token()
    try:
        with httpx.Client(base_url=process.url, timeout=30) as api:
            x, y = small_classification()
            upload = upload_train(api, token, x, y)
            body = fit_body(upload, tabpfn_systems=THINKING, thinking_config={"effort": "high"})
            fitted = api.post("/tabpfn/fit", json=body, headers=bearer(token)).json()
            assert api.post("/tabpfn/fit", json=body, headers=bearer(token)).status_code == 429
            fitted_id = fitted["fitted_train_set_id"]
            test = api.post(
                "/tabpfn/prepare_test_set_upload",
                json={"fitted_train_set_id": fitted_id, "x_test_info": {"format": "parquet"}},
                headers=bearer(token),
            ).json()
            [url] = test["x_test_info"]["signed_urls"]
            api.put(url, content=x.head(6).to_parquet(index=False))
            predicted = api.post(
                "/tabpfn/predict",
                json={
                    "fitted_train_set_id": fitted_id,
                    "test_set_upload_id": test["test_set_upload_id"],
                    "task_config": {"task": "classification", "tabpfn_config": {"n_estimators": 2}},
                },
                headers=bearer(token),
            ).json()
        assert predicted["metadata"]["execution_mode"] == "thinking"
        [fit] = process.fits_of(token)
        assert fit["thinking_config"] == {"effort": "high"} and fit["thinking_s"] == 0.0
        [logged] = process.predicts_of(token)
        assert logged["tabpfn_config"] == {"n_estimators": 2} and logged["test_rows"] == 6
        assert process.predicts_of(new_token()) == []
        assert process.predicts(since=logged["seq"]) == []
        assert process.forget_fits(token) == [fitted_id]
        assert process.fits_of(token)[0]["forgotten"] is True
        assert process.forget_fits() == []
    finally:
        process.close()
