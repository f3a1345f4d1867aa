"""Bad input gets a clear 4xx with a code and a message that says what to fix, never a 500.

Each case builds one request against a small world (two users, ready models of both tasks,
a failed model, a finished job) and names the status and code it must get.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings
from tests.support.bombs import (
    csv_quoted_header,
    csv_rows_then_garbage,
    csv_wide_header,
    nested_json,
    parquet_bomb,
    parquet_list_column,
    parquet_text_bomb,
)
from tests.support.builders import (
    Account,
    classification_data,
    fit,
    fit_ready,
    register,
    regression_data,
    wait_for_job,
)
from tests.support.processes import ManagedProcess
from tests.support.settings import make_settings
from tests.support.standin import StandinProcess

X, Y, X_TEST, _ = classification_data(n_train=60)
RX, RY, RX_TEST = regression_data(n_train=60)


@dataclass
class World:
    owner: Account
    other: Account
    quota: Account
    classifier: str
    regressor: str
    failed_model: str
    finished_job: str
    failed_job: str


@pytest.fixture(scope="module")
def world(app: FastAPI, worker: ManagedProcess) -> World:
    client = TestClient(app, client=("198.51.100.1", 1))
    owner, other = register(client), register(client)
    classifier = fit_ready(client, owner, X, Y)
    regressor = fit_ready(client, owner, RX, RY, "regression")
    quota = register(client, prefix="overquota")
    failed = wait_for_job(client, quota, fit(client, quota, X, Y)["id"])
    assert failed["status"] == "failed"
    return World(
        owner=owner,
        other=other,
        quota=quota,
        classifier=classifier["model_id"],
        regressor=regressor["model_id"],
        failed_model=failed["model_id"],
        finished_job=classifier["id"],
        failed_job=failed["id"],
    )


Send = Callable[[TestClient, World], httpx.Response]


def post_fit(body: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        all_headers = {**world.owner.headers, **(headers or {})}
        if raw is not None:
            return client.post("/api/v1/models/fit", content=raw, headers=all_headers)
        return client.post("/api/v1/models/fit", json=body, headers=all_headers)

    return send


def post_fit_strict(body: Any) -> Send:
    """As post_fit, to an app that refuses private callback URLs (the session's allows them)."""

    def send(client: TestClient, world: World) -> httpx.Response:
        strict: TestClient = world.__dict__["strict"]
        return strict.post("/api/v1/models/fit", json=body, headers=world.owner.headers)

    return send


def fit_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "features": [[1.0, "a"], [2.0, "b"], [3.0, "a"]],
        "target": [0, 1, 0],
        "task": "classification",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def post_predict(body: Any, model: str = "classifier", as_user: str = "owner") -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        model_id = getattr(world, model, model)
        account = getattr(world, as_user)
        return client.post(f"/api/v1/models/{model_id}/predict", json=body, headers=account.headers)

    return send


def get(path: str, as_user: str = "owner") -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        account = getattr(world, as_user)
        return client.get(path.format(w=world), headers=account.headers)

    return send


def cancel(job: str) -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        return client.post(
            f"/api/v1/jobs/{getattr(world, job)}/cancel", headers=world.owner.headers
        )

    return send


def multipart(path: str, files: dict[str, Any] | None, data: dict[str, str]) -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        url = path.format(w=world)
        if files is None:  # httpx sends fields alone urlencoded; (None, value) keeps multipart
            fields = {name: (None, value) for name, value in data.items()}
            return client.post(url, files=fields, headers=world.owner.headers)
        return client.post(url, files=files, data=data, headers=world.owner.headers)

    return send


def predict_on_pending_model(client: TestClient, world: World) -> httpx.Response:
    slow = register(client, prefix="slow")
    pending = fit(client, slow, X, Y)
    return client.post(
        f"/api/v1/models/{pending['model_id']}/predict",
        json={"features": X_TEST[:2]},
        headers=slow.headers,
    )


def reuse_idempotency_key(client: TestClient, world: World) -> httpx.Response:
    headers = {**world.owner.headers, "Idempotency-Key": "bad-requests-reuse"}
    first = client.post("/api/v1/models/fit", json=fit_body(), headers=headers)
    assert first.status_code == 202
    return client.post("/api/v1/models/fit", json=fit_body(target=[1, 0, 1]), headers=headers)


def with_standin_limits(limits: dict[str, int], body: dict[str, Any]) -> Send:
    def send(client: TestClient, world: World) -> httpx.Response:
        standin: StandinProcess = world.__dict__["standin"]
        standin.configure(limits=limits)
        try:
            fresh = register(client)  # a new account: its limits are not cached yet
            return client.post("/api/v1/models/fit", json=body, headers=fresh.headers)
        finally:
            standin.reset()

    return send


def send_raw(
    method: str, path: str, content: bytes, content_type: str, as_user: str | None = "owner"
) -> Send:
    """`content` as is, with this Content-Type (and the user's key unless `as_user` is None)."""

    def send(client: TestClient, world: World) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if as_user is not None:
            headers |= getattr(world, as_user).headers
        return client.request(method, path.format(w=world), content=content, headers=headers)

    return send


def upload_with_standin_limits(limits: dict[str, int], name: str, content: bytes) -> Send:
    """A fit upload from a fresh account while the stand-in has these limits."""

    def send(client: TestClient, world: World) -> httpx.Response:
        standin: StandinProcess = world.__dict__["standin"]
        standin.configure(limits=limits)
        try:
            fresh = register(client)
            return client.post(
                "/api/v1/models/fit",
                files={"file": (name, content, "application/octet-stream")},
                data={"task": "classification", "target_column": "target"},
                headers=fresh.headers,
            )
        finally:
            standin.reset()

    return send


# What `curl -d '{...}'` sends without -H 'Content-Type: application/json'.
FORM_URLENCODED = "application/x-www-form-urlencoded"
OVERSIZE = b'{"tabpfn_token": "' + b"x" * 64 * 1024 + b'"}'
ROW_BOMB = parquet_bomb(2_000_000, 2)  # 2 M rows in ~10 KB; the stand-in takes 1 M
EXPANSION_BOMB = parquet_bomb(900_000, 3)  # within the limits; 21.6 MB decoded from ~13 KB
PREDICT_BOMB = parquet_bomb(300_000, 30)  # over 200,000 rows, a split's job; 9 M cells, a bomb
CSV_RAGGED = b"a,b,target\n1,2,0\n3,4,5,1\n5,6,0\n"
CSV_OK = b"a,b,target\n1,2,0\n3,4,1\n5,6,0\n"
TEXT_BOMB = parquet_text_bomb(50_000, 20_000)  # ~10 KB on disk, 1 GB as plain text
DEEP_SETUP = ('{"nested": ' + nested_json(600) + ', "tabpfn_token": "x"}').encode()
DEEP_FIT = (
    '{"task": "classification", "features": [[1], [2]], "target": [0, 1], "name": '
    + nested_json(300, '"a"')
    + "}"
).encode()
DEEP_CONFIG = {
    "task": "classification",
    "features": [[1.0], [2.0]],
    "target": [0, 1],
    "config": {"inference_config": {"a": json.loads(nested_json(200, "1"))}},
}

CASES: list[tuple[str, Send, int, str, str]] = [
    (
        "a Parquet file repeating one long text (a bomb its footer does not show)",
        multipart(
            "/api/v1/models/fit",
            {"file": ("bomb.parquet", TEXT_BOMB, "application/octet-stream")},
            {"task": "classification", "target_column": "target"},
        ),
        413,
        "PAYLOAD_TOO_LARGE",
        "long texts",
    ),
    (
        "a Parquet column of lists",
        multipart(
            "/api/v1/models/fit",
            {"file": ("lists.parquet", parquet_list_column(), "application/octet-stream")},
            {"task": "classification", "target_column": "target"},
        ),
        400,
        "VALIDATION_ERROR",
        "one number or one text",
    ),
    (
        "a CSV header whose quoted newline hides its width",
        upload_with_standin_limits({"max_cols": 50}, "wide.csv", csv_quoted_header(60)),
        400,
        "LIMIT_EXCEEDED",
        "columns",
    ),
    (
        "a setup body nested 600 levels deep holding a NUL",
        send_raw("POST", "/api/v1/auth/setup", DEEP_SETUP, "application/json", as_user=None),
        400,
        "VALIDATION_ERROR",
        "NUL",
    ),
    (
        "a fit body nested 300 levels deep with an Idempotency-Key",
        post_fit(None, raw=DEEP_FIT, headers={"Idempotency-Key": "deep-nesting"}),
        400,
        "VALIDATION_ERROR",
        "name",
    ),
    (
        "an inference_config nested 200 levels deep",
        post_fit(DEEP_CONFIG),
        400,
        "VALIDATION_ERROR",
        "inference_config",
    ),
    # (name, request, status, code, a word the message must contain)
    (
        "body is not JSON",
        post_fit(None, raw=b"{features: oops"),
        400,
        "VALIDATION_ERROR",
        "valid JSON",
    ),
    ("body is a JSON array", post_fit(None, raw=b"[1, 2]"), 400, "VALIDATION_ERROR", "object"),
    (
        "NaN in the body",
        post_fit(None, raw=b'{"features": [[NaN]], "target": [1], "task": "regression"}'),
        400,
        "VALIDATION_ERROR",
        "null",
    ),
    ("features missing", post_fit(fit_body(features=...)), 400, "VALIDATION_ERROR", "features"),
    ("target missing", post_fit(fit_body(target=...)), 400, "VALIDATION_ERROR", "target"),
    ("task missing", post_fit(fit_body(task=...)), 400, "VALIDATION_ERROR", "task"),
    ("unknown task", post_fit(fit_body(task="clustering")), 400, "VALIDATION_ERROR", "task"),
    ("no rows", post_fit(fit_body(features=[], target=[])), 400, "VALIDATION_ERROR", "empty"),
    (
        "ragged rows",
        post_fit(fit_body(features=[[1.0, 2.0], [3.0], [4.0, 5.0]])),
        400,
        "VALIDATION_ERROR",
        "features[1]",
    ),
    (
        "a row that is not an array",
        post_fit(fit_body(features=[[1.0, "a"], 5, [2.0, "b"]])),
        400,
        "VALIDATION_ERROR",
        "features[1]",
    ),
    (
        "a boolean cell",
        post_fit(fit_body(features=[[1.0, True], [2.0, "b"], [3.0, "a"]])),
        400,
        "VALIDATION_ERROR",
        "features[0][1]",
    ),
    (
        "an object cell",
        post_fit(fit_body(features=[[1.0, {"x": 1}], [2.0, "b"], [3.0, "a"]])),
        400,
        "VALIDATION_ERROR",
        "features[0][1]",
    ),
    (
        "numbers and strings in one column",
        post_fit(fit_body(features=[[1.0, "a"], ["x", "b"], [3.0, "a"]])),
        400,
        "VALIDATION_ERROR",
        "column 0",
    ),
    (
        "an infinite number",
        post_fit(
            None,
            raw=b'{"features": [[1e999], [1], [2]], "target": [0, 1, 0], "task": "classification"}',
        ),
        400,
        "VALIDATION_ERROR",
        "finite",
    ),
    (
        "target shorter than the rows",
        post_fit(fit_body(target=[0, 1])),
        400,
        "VALIDATION_ERROR",
        "3 rows",
    ),
    (
        "a missing label",
        post_fit(fit_body(target=[0, None, 1])),
        400,
        "VALIDATION_ERROR",
        "target[1]",
    ),
    (
        "one class only",
        post_fit(fit_body(target=[1, 1, 1])),
        400,
        "VALIDATION_ERROR",
        "single class",
    ),
    (
        "text target for regression",
        post_fit(fit_body(task="regression", target=["a", "b", "c"])),
        400,
        "VALIDATION_ERROR",
        "regression",
    ),
    ("unknown field", post_fit(fit_body(colour="red")), 400, "VALIDATION_ERROR", "colour"),
    (
        "unknown config option",
        post_fit(fit_body(config={"n_estimator": 4})),
        400,
        "VALIDATION_ERROR",
        "n_estimator",
    ),
    (
        "unknown model_path",
        post_fit(fit_body(config={"model_path": "v9_turbo"})),
        400,
        "VALIDATION_ERROR",
        "model_path",
    ),
    (
        "n_estimators of zero",
        post_fit(fit_body(config={"n_estimators": 0})),
        400,
        "VALIDATION_ERROR",
        "n_estimators",
    ),
    (
        "feature_names of the wrong length",
        post_fit(fit_body(feature_names=["only"])),
        400,
        "VALIDATION_ERROR",
        "feature_names",
    ),
    (
        "repeated feature_names",
        post_fit(fit_body(feature_names=["a", "a"])),
        400,
        "VALIDATION_ERROR",
        "repeats",
    ),
    (
        "categorical index out of range",
        post_fit(fit_body(config={"categorical_features_indices": [7]})),
        400,
        "VALIDATION_ERROR",
        "categorical_features_indices",
    ),
    (
        "ftp callback",
        post_fit(fit_body(callback_url="ftp://example.com/hook")),
        400,
        "INVALID_CALLBACK_URL",
        "http",
    ),
    (
        "a line break in callback_url",
        post_fit(fit_body(callback_url="http://127.0.0.1:9/ho\nok")),
        400,
        "INVALID_CALLBACK_URL",
        "control characters",
    ),
    (
        "a control character in callback_url",
        post_fit(fit_body(callback_url="http://127.0.0.1:9/hook\u0001")),
        400,
        "INVALID_CALLBACK_URL",
        "control characters",
    ),
    (
        "an unclosed IPv6 bracket in callback_url",
        post_fit(fit_body(callback_url="http://[::1/")),
        400,
        "INVALID_CALLBACK_URL",
        "not a valid URL",
    ),
    *[
        (
            f"an IPv6 callback_url embedding IPv4 ({form})",
            post_fit_strict(fit_body(callback_url=url)),
            400,
            "INVALID_CALLBACK_URL",
            "IPv4",
        )
        for form, url in [
            ("NAT64", "http://[64:ff9b::808:808]/hook"),
            ("6to4", "http://[2002:808:808::1]/hook"),
            ("Teredo", "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/hook"),
            ("IPv4-compatible", "http://[::8.8.8.8]/hook"),
            ("SIIT", "http://[::ffff:0:8.8.8.8]/hook"),
        ]
    ],
    (
        "more columns than TabPFN allows",
        with_standin_limits({"max_cols": 1}, fit_body()),
        400,
        "LIMIT_EXCEEDED",
        "columns",
    ),
    (
        "more classes than TabPFN allows",
        with_standin_limits({"max_classes": 2}, fit_body(target=[0, 1, 2])),
        400,
        "LIMIT_EXCEEDED",
        "classes",
    ),
    (
        "more rows than TabPFN allows",
        with_standin_limits({"train_set_max_rows": 2}, fit_body()),
        400,
        "LIMIT_EXCEEDED",
        "rows",
    ),
    (
        "plain text body",
        post_fit(None, raw=b"a,b", headers={"Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "application/json",
    ),
    # bodies: their size and content type, and uploads over the limits
    (
        "curl -d JSON to setup (form-urlencoded)",
        send_raw("POST", "/api/v1/auth/setup", b'{"tabpfn_token": "abc"}', FORM_URLENCODED, None),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type: application/json",
    ),
    (
        "curl -d JSON to fit (form-urlencoded)",
        send_raw("POST", "/api/v1/models/fit", json.dumps(fit_body()).encode(), FORM_URLENCODED),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type: application/json",
    ),
    (
        "an oversize body to setup",
        send_raw("POST", "/api/v1/auth/setup", OVERSIZE, "application/json", None),
        413,
        "PAYLOAD_TOO_LARGE",
        "MAX_SMALL_BODY_BYTES",
    ),
    (
        "an oversize body to create a key",
        send_raw("POST", "/api/v1/auth/keys", OVERSIZE, "application/json"),
        413,
        "PAYLOAD_TOO_LARGE",
        "MAX_SMALL_BODY_BYTES",
    ),
    (
        "an oversize body to replace the TabPFN token",
        send_raw("PUT", "/api/v1/auth/tabpfn-token", OVERSIZE, "application/json"),
        413,
        "PAYLOAD_TOO_LARGE",
        "MAX_SMALL_BODY_BYTES",
    ),
    (
        "an oversize body to create a key, without a key",
        send_raw("POST", "/api/v1/auth/keys", OVERSIZE, "application/json", None),
        401,
        "UNAUTHORIZED",
        "API key",
    ),
    (
        "a Parquet row bomb",
        multipart(
            "/api/v1/models/fit",
            {"file": ("bomb.parquet", ROW_BOMB, "application/octet-stream")},
            {"task": "regression", "target_column": "c1"},
        ),
        400,
        "LIMIT_EXCEEDED",
        "training rows",
    ),
    (
        "a Parquet decompression bomb",
        multipart(
            "/api/v1/models/fit",
            {"file": ("bomb.parquet", EXPANSION_BOMB, "application/octet-stream")},
            {"task": "regression", "target_column": "c2"},
        ),
        413,
        "PAYLOAD_TOO_LARGE",
        "times its size",
    ),
    (
        # More rows than one upstream request takes is fine (the worker splits them); a file
        # that would decode to 256 times its size is not.
        "a Parquet row bomb to predict",
        multipart(
            "/api/v1/models/{w.classifier}/predict",
            {"file": ("bomb.parquet", PREDICT_BOMB, "application/octet-stream")},
            {},
        ),
        413,
        "PAYLOAD_TOO_LARGE",
        "times its size",
    ),
    (
        "a CSV header wider than the limit",
        multipart(
            "/api/v1/models/fit",
            {"file": ("wide.csv", csv_wide_header(5000), "text/csv")},
            {"task": "classification", "target_column": "target"},
        ),
        400,
        "LIMIT_EXCEEDED",
        "columns",
    ),
    (
        "a CSV with more rows than the limit",
        upload_with_standin_limits(
            {"train_set_max_rows": 5}, "rows.csv", csv_rows_then_garbage(20)
        ),
        400,
        "LIMIT_EXCEEDED",
        "training rows",
    ),
    (
        "JSON over the column limit, a bad cell inside",
        with_standin_limits(
            {"max_cols": 1}, fit_body(features=[[1.0, True], [2.0, "b"], [3.0, "a"]])
        ),
        400,
        "LIMIT_EXCEEDED",
        "columns",
    ),
    (
        "JSON over the row limit, a ragged row inside",
        with_standin_limits(
            {"train_set_max_rows": 2}, fit_body(features=[[1.0, "a"], [2.0], [3.0, "a"]])
        ),
        400,
        "LIMIT_EXCEEDED",
        "rows",
    ),
    (
        "multipart without a file",
        multipart(
            "/api/v1/models/fit", None, {"task": "classification", "target_column": "target"}
        ),
        400,
        "VALIDATION_ERROR",
        "file",
    ),
    (
        "multipart without target_column",
        multipart(
            "/api/v1/models/fit",
            {"file": ("d.csv", CSV_OK, "text/csv")},
            {"task": "classification"},
        ),
        400,
        "VALIDATION_ERROR",
        "target_column",
    ),
    (
        "target_column not in the file",
        multipart(
            "/api/v1/models/fit",
            {"file": ("d.csv", CSV_OK, "text/csv")},
            {"task": "classification", "target_column": "label"},
        ),
        400,
        "VALIDATION_ERROR",
        "label",
    ),
    (
        "ragged CSV",
        multipart(
            "/api/v1/models/fit",
            {"file": ("d.csv", CSV_RAGGED, "text/csv")},
            {"task": "classification", "target_column": "target"},
        ),
        400,
        "VALIDATION_ERROR",
        "CSV",
    ),
    (
        "reused Idempotency-Key with another body",
        reuse_idempotency_key,
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "Idempotency-Key",
    ),
    (
        "a cell holding an array (whole table)",
        post_fit(fit_body(features=[[[1, 2]], [[3, 4]], [[5, 6]]])),
        400,
        "VALIDATION_ERROR",
        "features[0][0]",
    ),
    (
        "a cell holding an array (one column)",
        post_fit(fit_body(features=[[[5, 2], 3], [[5, 2], 4], [[1, 1], 2]])),
        400,
        "VALIDATION_ERROR",
        "array",
    ),
    (
        "a ragged target",
        post_fit(fit_body(target=[[1], [2, 3], [1]])),
        400,
        "VALIDATION_ERROR",
        "target[0]",
    ),
    (
        "a NUL character in a label",
        post_fit(fit_body(target=["a", "b\u0000", "a"])),
        400,
        "VALIDATION_ERROR",
        "NUL",
    ),
    (
        "a NUL character in a name",
        post_fit(fit_body(name="model\u0000")),
        400,
        "VALIDATION_ERROR",
        "NUL",
    ),
    (
        "a NUL character in a feature name",
        post_fit(fit_body(feature_names=["a", "b\u0000"])),
        400,
        "VALIDATION_ERROR",
        "NUL",
    ),
    (
        "a header-only CSV",
        multipart(
            "/api/v1/models/fit",
            {"file": ("d.csv", b"a,target\n", "text/csv")},
            {"task": "classification", "target_column": "target"},
        ),
        400,
        "VALIDATION_ERROR",
        "empty",
    ),
    (
        "a page past any data",
        get("/api/v1/jobs?page=1000000000000000000"),
        400,
        "VALIDATION_ERROR",
        "page",
    ),
    # predictions
    (
        "predict on an unknown model",
        post_predict({"features": X_TEST[:2]}, model="8f4f3c1e-0000-4000-8000-000000000000"),
        404,
        "NOT_FOUND",
        "model",
    ),
    (
        "predict on another user's model",
        post_predict({"features": X_TEST[:2]}, as_user="other"),
        403,
        "FORBIDDEN",
        "another user",
    ),
    (
        "predict with a malformed model id",
        post_predict({"features": X_TEST[:2]}, model="not-a-uuid"),
        400,
        "VALIDATION_ERROR",
        "model_id",
    ),
    (
        "predict on a model still fitting",
        predict_on_pending_model,
        409,
        "MODEL_NOT_READY",
        "still being fit",
    ),
    (
        "predict on a model whose fit failed",
        post_predict({"features": X_TEST[:2]}, model="failed_model", as_user="quota"),
        409,
        "MODEL_NOT_READY",
        "failed",
    ),
    (
        "predict with too few columns",
        post_predict({"features": [row[:5] for row in X_TEST[:2]]}),
        400,
        "FEATURE_COUNT_MISMATCH",
        "30",
    ),
    (
        "probas from a regressor",
        post_predict({"features": RX_TEST[:2], "output_type": "probas"}, model="regressor"),
        400,
        "VALIDATION_ERROR",
        "regression",
    ),
    (
        "mean from a classifier",
        post_predict({"features": X_TEST[:2], "output_type": "mean"}),
        400,
        "VALIDATION_ERROR",
        "classification",
    ),
    (
        "a quantile of 1.5",
        post_predict(
            {"features": RX_TEST[:2], "output_type": "quantiles", "quantiles": [0.5, 1.5]},
            model="regressor",
        ),
        400,
        "VALIDATION_ERROR",
        "quantile",
    ),
    (
        "text in a numeric column",
        post_predict({"features": [["x", *X_TEST[0][1:]]]}),
        400,
        "VALIDATION_ERROR",
        "column 0",
    ),
    # jobs
    (
        "an unknown job",
        get("/api/v1/jobs/8f4f3c1e-0000-4000-8000-000000000000"),
        404,
        "NOT_FOUND",
        "job",
    ),
    (
        "another user's job",
        get("/api/v1/jobs/{w.finished_job}", as_user="other"),
        403,
        "FORBIDDEN",
        "another user",
    ),
    ("cancel a finished job", cancel("finished_job"), 409, "JOB_FINISHED", "already ended"),
    (
        "the result of a failed job",
        get("/api/v1/jobs/{w.failed_job}/result", as_user="quota"),
        409,
        "JOB_NOT_SUCCEEDED",
        "failed",
    ),
    (
        "a result in an unknown format",
        get("/api/v1/jobs/{w.finished_job}/result?format=xml"),
        400,
        "VALIDATION_ERROR",
        "format",
    ),
    ("a page of 1000", get("/api/v1/jobs?page_size=1000"), 400, "VALIDATION_ERROR", "page_size"),
    (
        "an unknown status filter",
        get("/api/v1/jobs?status=lost"),
        400,
        "VALIDATION_ERROR",
        "status",
    ),
    (
        "a fit result as CSV",
        get("/api/v1/jobs/{w.finished_job}/result?format=csv"),
        400,
        "VALIDATION_ERROR",
        "JSON",
    ),
]


@pytest.fixture(scope="module")
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """The session's database with WEBHOOK_ALLOW_PRIVATE_URLS=false."""
    app = create_app(
        make_settings(
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
            WEBHOOK_ALLOW_PRIVATE_URLS=False,
        )
    )
    yield TestClient(app, client=("198.51.100.2", 1))
    app.state.context.close()


@pytest.fixture(scope="module")
def world_with_standin(world: World, standin: StandinProcess, strict_client: TestClient) -> World:
    world.__dict__["standin"] = standin
    world.__dict__["strict"] = strict_client
    return world


@pytest.mark.parametrize(
    ("name", "send", "status", "code", "word"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_request(
    client: TestClient,
    world_with_standin: World,
    name: str,
    send: Send,
    status: int,
    code: str,
    word: str,
) -> None:
    response = send(client, world_with_standin)
    assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == code, body
    assert word.lower() in body["message"].lower(), body["message"]


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.fixture
def small_app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(
        make_settings(
            DATABASE_URL=settings.DATABASE_URL,
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
            MAX_UPLOAD_BYTES=2048,
        )
    )
    yield app
    app.state.context.close()


def test_oversize_upload_is_413(small_app: FastAPI) -> None:
    client = TestClient(small_app)
    account = register(client)
    big = {
        "features": [[float(i)] * 20 for i in range(50)],
        "target": [i % 2 for i in range(50)],
        "task": "classification",
    }
    declared = client.post("/api/v1/models/fit", json=big, headers=account.headers)
    assert declared.status_code == 413 and declared.json()["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:
        data = json.dumps(big).encode()
        for start in range(0, len(data), 512):
            yield data[start : start + 512]

    streamed = client.post(
        "/api/v1/models/fit",
        content=chunks(),
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413 and "MAX_UPLOAD_BYTES" in streamed.json()["message"]


def test_unauthenticated_submission_is_401(client: TestClient) -> None:
    response = client.post("/api/v1/models/fit", json=fit_body())
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def test_a_body_streamed_past_the_cap_is_413_on_every_route(small_app: FastAPI) -> None:
    """Routes whose body FastAPI parses itself answer 413 too, not a generic 400."""
    client = TestClient(small_app)

    def chunks() -> Iterator[bytes]:
        yield b'{"tabpfn_token": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = client.post(
        "/api/v1/auth/setup", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "body",
    [
        {"tabpfn_token": "has spaces in it"},
        {"tabpfn_token": "tok-\u0000-nul-inside"},
        {"tabpfn_token": "a-valid-looking-token", "key_name": "bad\u0000"},
    ],
)
def test_odd_setup_bodies_are_400(client: TestClient, body: dict[str, str]) -> None:
    response = client.post("/api/v1/auth/setup", json=body)
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
