"""`Client` against the real stack (API under uvicorn, Celery worker, stand-in TabPFN): every
endpoint through its typed method, and the service's errors as the client's exceptions."""

from __future__ import annotations

import csv
import io

import pytest
from sklearn.datasets import make_classification

from tabpfn_api_client import (
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from tests.support import secrets as secret_registry
from tests.support.builders import classification_data, new_token
from tests.support.processes import ROOT

IRIS_CSV = ROOT / "docs" / "examples" / "iris.csv"
IRIS_PARQUET = ROOT / "docs" / "examples" / "iris.parquet"


def test_service_endpoints(api_url: str) -> None:
    with Client(api_url) as client:
        assert client.health().status == "ok"
        available = client.available_models()
        assert set(available) == {"classification", "regression"}
        assert all(available.values())
        catalogue = client.catalogue()
        assert "full" in catalogue["predictions"]["regression"]["output_types"]


def test_account_endpoints(api_url: str, remote: Client) -> None:
    me = remote.me()
    keys = remote.list_keys()
    assert keys.total == 1 and keys.items[0].key_id == me.current_key_id
    extra = remote.create_key("ci")
    secret_registry.remember(extra.api_key, "API key")
    assert extra.key.name == "ci" and extra.api_key.startswith("tpk_")
    assert "tpk_" not in repr(extra)
    with Client(api_url, extra.api_key) as second:
        assert second.me().id == me.id
        remote.revoke_key(extra.key.key_id)
        with pytest.raises(AuthenticationError) as caught:
            second.me()
    assert caught.value.code == "UNAUTHORIZED"
    secret = secret_registry.remember(remote.rotate_webhook_secret(), "webhook secret")
    assert secret.startswith("whsec_")
    assert remote.replace_tabpfn_token(new_token()).id == me.id
    usage = remote.usage()
    assert usage.jobs.get("queued") == 0


def test_fit_wait_predict_and_results(remote: Client) -> None:
    X, y, X_test, _ = classification_data(n_train=120)
    job = remote.fit(X, y, name="client-journey", wait=30)
    assert job.kind == "fit" and job.model_id
    done = remote.wait(job, timeout=120)
    assert done.status == "succeeded" and done.result is not None
    model = remote.get_model(done.model_id or "")
    assert (model.status, model.n_features, model.name) == ("ready", 30, "client-journey")
    assert model.classes == [0, 1]

    predicted = remote.wait(remote.predict(model.id, X_test[:5], output_type="probas"))
    prediction = remote.prediction(predicted)
    assert prediction.output_type == "probas" and prediction.classes == [0, 1]
    assert prediction.to_numpy().shape == (5, 2)
    assert remote.job_result(predicted.id) == prediction
    table = list(csv.reader(io.StringIO(remote.job_result_file(predicted.id).decode())))
    assert table[0] == ["row", "proba_0", "proba_1"] and len(table) == 6

    listed = remote.list_jobs(kind="predict")
    assert [j.id for j in listed.items] == [predicted.id]
    assert remote.list_models(status="ready").items[0].id == model.id
    assert remote.list_deliveries(predicted.id).total == 0
    with pytest.raises(ConflictError) as finished:
        remote.cancel_job(predicted.id)
    assert finished.value.code == "JOB_FINISHED"
    with pytest.raises(BadRequestError) as mismatch:
        remote.predict(model.id, [[1.0, 2.0]])
    assert mismatch.value.code == "FEATURE_COUNT_MISMATCH"
    refit = remote.wait(remote.refit(model.id, config={"n_estimators": 2}), timeout=120)
    assert refit.status == "succeeded" and refit.kind == "fit"
    assert remote.get_model(model.id).config == {"n_estimators": 2}
    remote.delete_model(model.id)
    with pytest.raises(NotFoundError):
        remote.get_model(model.id)


def test_a_large_prediction_is_downloaded(remote: Client) -> None:
    """Above RESULT_INLINE_MAX_ROWS (1000) the job holds no predictions: they come from
    /result."""
    X, y = make_classification(n_samples=1300, n_features=4, random_state=0)
    model_id = remote.wait(remote.fit(X[:200], y[:200])).model_id or ""
    job = remote.wait(remote.predict(model_id, X[200:]))
    assert job.result is not None and job.result.get("predictions") is None
    assert len(remote.prediction(job).predictions) == 1100


def test_files_in_and_out(remote: Client) -> None:
    fit = remote.wait(remote.fit_file(IRIS_CSV, target_column="species"))
    model = remote.get_model(fit.model_id or "")
    assert model.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert model.classes == ["setosa", "versicolor", "virginica"]
    parquet = remote.wait(remote.fit_file(IRIS_PARQUET.read_bytes(), target_column="species"))
    assert parquet.status == "succeeded"
    rows = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
    job = remote.wait(remote.predict_file(model.id, rows))
    assert remote.prediction(job).predictions == ["setosa"]


def test_an_idempotency_key_gives_the_same_job(remote: Client) -> None:
    X, y, _, _ = classification_data(n_train=50)
    first = remote.fit(X, y, idempotency_key="client-test-key")
    again = remote.fit(X, y, idempotency_key="client-test-key")
    assert again.id == first.id
    with pytest.raises(UnprocessableError) as caught:
        remote.fit(X[:40], y[:40], idempotency_key="client-test-key")
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    remote.wait(first)


def test_another_users_model_is_forbidden(api_url: str, remote: Client) -> None:
    X, y, _, _ = classification_data(n_train=50)
    model_id = remote.fit(X, y).model_id or ""
    with Client(api_url) as anonymous:
        other = anonymous.setup(new_token())
    secret_registry.remember(other.api_key, "API key")
    secret_registry.remember(other.webhook_secret, "webhook secret")
    with Client(api_url, other.api_key) as stranger:
        with pytest.raises(PermissionDeniedError) as caught:
            stranger.get_model(model_id)
        assert caught.value.code == "FORBIDDEN"
        stranger.delete_me()
        with pytest.raises(AuthenticationError):
            stranger.me()
