"""The client's own logic, with scripted answers (httpx.MockTransport): retries and
Retry-After, one Idempotency-Key across a call's retries, errors mapped to exceptions,
waiting with `Prefer: wait` or by polling, and tolerance of fields it does not know.
The service itself is exercised in test_client.py and test_estimators.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from tabpfn_api_client import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    JobCanceledError,
    JobFailedError,
    MissingAPIKeyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TabPFNAPIError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    WaitTimeoutError,
)
from tabpfn_api_client._http import parse_retry_after

Handler = Callable[[httpx.Request], httpx.Response]
JOB_ID = "8d7f7a52-5b7e-4c38-9a55-1b2f0f0b8e11"


def job_json(status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "kind": "predict",
        "status": status,
        "model_id": "0b8b4d3e-8f3c-4c1e-b0f6-0d2a3c4d5e6f",
        "created_at": "2025-01-02T03:04:05Z",
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "max_attempts": 3,
        "error": None,
        "result": None,
        "callback_url": None,
        "links": {"self": f"/api/v1/jobs/{JOB_ID}"},
        **extra,
    }


class Script:
    """Answers in order, and every request seen."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[[Handler], Client]]:
    made: list[Client] = []

    def build(handler: Handler, **options: Any) -> Client:
        client = Client(
            "http://service.test",
            "tpk_test_secret",
            transport=httpx.MockTransport(handler),
            sleep=sleeps.append,
            **options,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def error(status: int, code: str, message: str = "what to fix", **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"code": code, "message": message, "details": {"field": "x"}},
        headers={"X-Request-ID": "req-1", **headers},
    )


# Retries ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_its_retry_after_with_the_same_idempotency_key(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(
        error(429, "RATE_LIMITED", **{"Retry-After": "2"}),
        error(503, "UPSTREAM_UNAVAILABLE", **{"Retry-After": "1"}),
        httpx.Response(202, json=job_json()),
    )
    job = make_client(script).predict("m", [[1.0, 2.0]])
    assert job.id == JOB_ID
    assert sleeps == [2.0, 1.0]
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    assert {request.content for request in script.requests} == {script.requests[0].content}


def test_each_job_creating_call_has_its_own_key_unless_given_one(
    make_client: Callable[..., Client],
) -> None:
    script = Script(httpx.Response(202, json=job_json()))
    client = make_client(script)
    client.fit([[1.0], [2.0]], [0, 1])
    client.fit([[1.0], [2.0]], [0, 1])
    client.predict("m", [[1.0]], idempotency_key="nightly-1")
    keys = [request.headers["Idempotency-Key"] for request in script.requests]
    assert keys[0] != keys[1]
    assert keys[2] == "nightly-1"


def test_a_dropped_connection_is_retried_for_a_job_with_its_key(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(httpx.ReadError("reset"), httpx.Response(202, json=job_json()))
    make_client(script).fit_file(b"a,b\n1,0\n2,1\n", target_column="b")
    assert len(script.requests) == 2 and len(sleeps) == 1
    first, second = script.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.content == second.content  # the same multipart bytes, boundary included


def test_a_dropped_connection_is_not_retried_for_a_post_without_a_key(
    make_client: Callable[..., Client],
) -> None:
    script = Script(httpx.ReadError("reset"), httpx.Response(201, json={}))
    with pytest.raises(APIConnectionError) as caught:
        make_client(script).create_key("ci")
    assert len(script.requests) == 1
    assert caught.value.code == "CONNECTION_ERROR"


def test_a_refused_connection_is_retried_then_raised(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        make_client(script, max_retries=2).me()
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_retries_are_bounded(make_client: Callable[..., Client], sleeps: list[float]) -> None:
    script = Script(error(503, "SERVICE_UNAVAILABLE"))
    with pytest.raises(ServiceUnavailableError) as caught:
        make_client(script, max_retries=2).usage()
    assert len(script.requests) == 3
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)  # backoff without Retry-After
    assert caught.value.status == 503


def test_a_retry_after_longer_than_the_limit_is_raised_at_once(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(error(429, "TOO_MANY_JOBS", **{"Retry-After": "3600"}))
    with pytest.raises(RateLimitError) as caught:
        make_client(script, max_retry_wait=60).predict("m", [[1.0]])
    assert len(script.requests) == 1 and sleeps == []
    assert caught.value.retry_after == 3600
    assert caught.value.code == "TOO_MANY_JOBS"


def test_other_errors_are_not_retried(make_client: Callable[..., Client]) -> None:
    script = Script(error(500, "INTERNAL_ERROR"))
    with pytest.raises(ServerError):
        make_client(script).me()
    assert len(script.requests) == 1


def test_retry_after_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0


# Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "FEATURE_COUNT_MISMATCH", BadRequestError),
        (401, "UNAUTHORIZED", AuthenticationError),
        (403, "FORBIDDEN", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "MODEL_NOT_READY", ConflictError),
        (413, "PAYLOAD_TOO_LARGE", PayloadTooLargeError),
        (415, "UNSUPPORTED_MEDIA_TYPE", UnsupportedMediaTypeError),
        (422, "IDEMPOTENCY_KEY_REUSED", UnprocessableError),
        (500, "INTERNAL_ERROR", ServerError),
    ],
)
def test_error_statuses_become_their_exceptions(
    make_client: Callable[..., Client], status: int, code: str, cls: type[TabPFNAPIError]
) -> None:
    script = Script(error(status, code, "Column 3 is text; send numbers."))
    with pytest.raises(cls) as caught:
        make_client(script).get_model("m")
    raised = caught.value
    assert isinstance(raised, TabPFNAPIError)
    assert (raised.code, raised.status) == (code, status)
    assert raised.message == "Column 3 is text; send numbers."
    assert raised.details == {"field": "x"}
    assert raised.request_id == "req-1"
    assert str(raised) == f"HTTP {status} {code}: Column 3 is text; send numbers."
    assert "tpk_test_secret" not in repr(raised) + str(raised)


def test_an_error_without_a_json_body_keeps_its_status(make_client: Callable[..., Client]) -> None:
    script = Script(httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(ServerError) as caught:
        make_client(script).me()
    assert caught.value.code == "HTTP_502"
    assert "Bad gateway" in caught.value.message


def test_no_key_means_no_request(make_client: Callable[..., Client], monkeypatch: Any) -> None:
    monkeypatch.delenv("TABPFN_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-config-dir")
    script = Script(httpx.Response(200, json={}))
    client = Client("http://service.test", transport=httpx.MockTransport(script))
    with pytest.raises(MissingAPIKeyError) as caught:
        client.list_models()
    assert caught.value.code == "NO_API_KEY"
    assert script.requests == []
    client.close()


def test_the_key_is_sent_as_a_bearer_token_and_never_shown(
    make_client: Callable[..., Client],
) -> None:
    script = Script(httpx.Response(200, json={"id": "u", "current_key_id": "k"}))
    client = make_client(script)
    client.me()
    assert script.requests[0].headers["Authorization"] == "Bearer tpk_test_secret"
    assert "tpk_test_secret" not in repr(client)


# Waiting ------------------------------------------------------------------------------------


def test_waiting_uses_prefer_wait_when_the_service_honours_it(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(
        httpx.Response(200, json=job_json("running"), headers={"Preference-Applied": "wait=60"}),
        httpx.Response(
            200,
            json=job_json("succeeded", result={"output_type": "preds", "predictions": [1]}),
            headers={"Preference-Applied": "wait=60"},
        ),
    )
    seen: list[str] = []
    job = make_client(script).wait(JOB_ID, on_update=lambda j: seen.append(j.status))
    assert job.status == "succeeded"
    assert seen == ["running", "succeeded"]
    assert [r.headers["Prefer"] for r in script.requests] == ["wait=60", "wait=60"]
    assert all(s <= 0.1 for s in sleeps)  # no polling pause: the service held the answers


def test_waiting_polls_at_retry_after_when_the_service_does_not_hold(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    script = Script(
        httpx.Response(200, json=job_json("queued"), headers={"Retry-After": "1"}),
        httpx.Response(200, json=job_json("running"), headers={"Retry-After": "2"}),
        httpx.Response(200, json=job_json("succeeded")),
    )
    client = make_client(script)
    job = client.wait(client.predict("m", [[1.0]], wait=10))
    assert job.status == "succeeded"
    assert script.requests[0].headers["Prefer"] == "wait=10"
    assert [r.method for r in script.requests] == ["POST", "GET", "GET"]
    assert sleeps == [2.0]


def test_a_failed_job_raises_with_its_code(make_client: Callable[..., Client]) -> None:
    failed = job_json("failed", error={"code": "TABPFN_QUOTA_EXCEEDED", "message": "Out."})
    script = Script(httpx.Response(200, json=failed))
    client = make_client(script)
    with pytest.raises(JobFailedError) as caught:
        client.wait(JOB_ID)
    assert caught.value.code == "TABPFN_QUOTA_EXCEEDED"
    assert caught.value.job.status == "failed"
    assert client.wait(JOB_ID, raise_on_failure=False).error is not None


def test_a_canceled_job_raises(make_client: Callable[..., Client]) -> None:
    script = Script(httpx.Response(200, json=job_json("canceled")))
    with pytest.raises(JobCanceledError):
        make_client(script).wait(JOB_ID)


def test_waiting_gives_up_after_its_timeout(make_client: Callable[..., Client]) -> None:
    script = Script(httpx.Response(200, json=job_json("running"), headers={"Retry-After": "0"}))
    client = Client("http://service.test", "tpk_test_secret", transport=httpx.MockTransport(script))
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait(JOB_ID, timeout=0.3)
    assert caught.value.job.status == "running"
    client.close()


# Tolerance --------------------------------------------------------------------------------


def test_fields_and_values_the_client_does_not_know_are_kept(
    make_client: Callable[..., Client],
) -> None:
    future = job_json(
        "running",
        progress={"phase": "predicting", "chunks_done": 1, "chunks_total": 3},
        cached=False,
        reused_from=None,
        something_new={"a": 1},
    )
    model = {"id": "m", "task": "classification", "status": "stale", "brand_new": True}
    script = Script(httpx.Response(200, json=future), httpx.Response(200, json=model))
    client = make_client(script)
    job = client.get_job(JOB_ID)
    assert job.progress == {"phase": "predicting", "chunks_done": 1, "chunks_total": 3}
    assert job.raw["something_new"] == {"a": 1}
    assert job.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    fetched = client.get_model("m")
    assert fetched.status == "stale"
    assert fetched.raw["brand_new"] is True


def test_a_health_check_reports_a_degraded_service_without_raising(
    make_client: Callable[..., Client], sleeps: list[float]
) -> None:
    body = {"status": "degraded", "checks": {"database": "ok", "broker": "error"}}
    script = Script(httpx.Response(503, json=body))
    health = make_client(script).health()
    assert health.checks["broker"] == "error"
    assert sleeps == []
    assert "Authorization" not in script.requests[0].headers


def test_a_json_body_is_compact_strict_json(make_client: Callable[..., Client]) -> None:
    script = Script(httpx.Response(202, json=job_json()))
    make_client(script).fit([[1.0, None], [float("nan"), 2.0]], ["a", "b"], name="n")
    body = json.loads(script.requests[0].content)
    assert body == {
        "task": "classification",
        "features": [[1.0, None], [None, 2.0]],
        "target": ["a", "b"],
        "name": "n",
    }
