"""No request makes the API read more than a small body before it knows who is asking.

Every route but the two that create jobs reads at most MAX_SMALL_BODY_BYTES (then 413);
those two read nothing before the API key is checked. The auth routes check their key or
rate limit before they parse their body. Bodies are measured where the server would hand
them over (`MeteredBody`), so "read" means read, not merely answered.
"""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Route

from shared.config import Settings
from tests.api.test_auth import other_app
from tests.support.builders import register
from tests.support.metered import MeteredBody

BIG = 1024 * 1024
SMALL_CAP = 16 * 1024  # MAX_SMALL_BODY_BYTES's default, which the session's app runs with
SUBMISSIONS = {("POST", "/api/v1/models/fit"), ("POST", "/api/v1/models/{model_id}/predict")}


# Routes left out of the OpenAPI document.
UNDOCUMENTED = [("GET", "/metrics")]


def _endpoints(app: FastAPI) -> list[tuple[str, str]]:
    """Every endpoint: the OpenAPI document's, the documentation pages, the undocumented."""
    found = [
        (method.upper(), path)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    ]
    for route in app.routes:  # the routers' routes are not listed here, only the app's own
        if isinstance(route, Route) and route.methods:
            found += [(method, route.path) for method in sorted(route.methods - {"HEAD"})]
    return found + UNDOCUMENTED


def _concrete(path: str) -> str:
    """A path template with its parameters filled in (ids that exist nowhere)."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: "0123456789abcdef" if m.group(1) == "key_id" else str(uuid.uuid4()),
        path,
    )


@pytest.fixture(scope="module")
def metered(app: FastAPI) -> tuple[MeteredBody, TestClient]:
    wrapper = MeteredBody(app)
    return wrapper, TestClient(wrapper, client=("198.51.100.40", 1))


def test_the_route_list_covers_the_api(app: FastAPI) -> None:
    endpoints = _endpoints(app)
    assert set(endpoints) >= SUBMISSIONS
    assert ("POST", "/api/v1/auth/setup") in endpoints and len(endpoints) >= 20


@pytest.mark.parametrize("declared", [True, False], ids=["Content-Length", "chunked"])
@pytest.mark.parametrize("authenticated", [True, False], ids=["with a key", "without a key"])
def test_no_route_reads_more_than_the_small_cap(
    app: FastAPI, metered: tuple[MeteredBody, TestClient], authenticated: bool, declared: bool
) -> None:
    """A declared length over the cap is refused before a byte is read; a body of unknown
    length is read up to the cap."""
    wrapper, client = metered
    data = b'{"tabpfn_token": "' + b"x" * BIG + b'"}'
    read: dict[str, int] = {}
    for method, path in _endpoints(app):
        if (method, path) in SUBMISSIONS:
            continue
        # A fresh account each time: one of these routes deletes it.
        headers = {"Content-Type": "application/json"}
        if authenticated:
            headers |= register(client).headers
        body = data if declared else iter([data])  # a generator is sent chunked
        response = client.request(method, _concrete(path), content=body, headers=headers)
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        read[f"{method} {path}"] = wrapper.pulled
    too_much = {name: n for name, n in read.items() if n > SMALL_CAP + wrapper.chunk}
    assert not too_much, f"read past the {SMALL_CAP}-byte cap: {too_much}"
    if not declared:  # the meter sees what is read
        assert read["POST /api/v1/auth/setup"] > SMALL_CAP
    assert app.state.context.settings.MAX_SMALL_BODY_BYTES == SMALL_CAP


def test_submissions_read_no_byte_before_the_key_is_checked(
    metered: tuple[MeteredBody, TestClient],
) -> None:
    wrapper, client = metered
    for _, path in sorted(SUBMISSIONS):
        for headers in ({}, {"Authorization": "Bearer tpk_0123456789abcdef_wrongsecret"}):
            response = client.post(
                _concrete(path),
                content=b"x" * BIG,
                headers={**headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 401, response.text
            assert wrapper.pulled == 0, f"{path} read {wrapper.pulled} bytes before the key"


def test_an_authenticated_submission_may_send_more_than_the_small_cap(
    app: FastAPI, metered: tuple[MeteredBody, TestClient]
) -> None:
    wrapper, client = metered
    account = register(client)
    rows = [[float(i), float(i % 7), float(i % 3)] for i in range(4000)]
    body = {"features": rows, "target": [i % 2 for i in range(4000)], "task": "classification"}
    response = client.post("/api/v1/models/fit", json=body, headers=account.headers)
    assert response.status_code == 202, response.text
    assert wrapper.pulled > SMALL_CAP


def test_setup_rate_limit_comes_before_the_body_is_parsed(settings: Settings) -> None:
    """Past the limit, even a body that is not JSON gets 429: it was never parsed. (Three
    tries, since the limit's one-minute window may turn over between two of them.)"""
    app = other_app(settings, RATE_LIMIT_SETUP_PER_MINUTE=1)
    try:
        client = TestClient(app, client=("203.0.113.91", 5000))
        answers = [
            client.post(
                "/api/v1/auth/setup",
                content=b'{"tabpfn_token": oops',
                headers={"Content-Type": "application/json"},
            )
            for _ in range(3)
        ]
    finally:
        app.state.context.close()
    codes = [answer.json()["code"] for answer in answers]
    assert "RATE_LIMITED" in codes, codes
    assert set(codes) <= {"RATE_LIMITED", "VALIDATION_ERROR"}, codes


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/v1/auth/keys"), ("PUT", "/api/v1/auth/tabpfn-token")]
)
def test_key_routes_check_the_key_before_the_body(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(
        method, path, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHORIZED"
