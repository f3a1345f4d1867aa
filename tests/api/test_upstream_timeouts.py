"""The API never waits long on the TabPFN service: its own calls (the token check at setup and
on a token change, usage) give up after TABPFN_API_TIMEOUT_S with 503 UPSTREAM_UNAVAILABLE,
and /health keeps answering meanwhile (issue 10, point 6)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings
from tests.support.builders import new_token, register
from tests.support.settings import make_settings
from tests.support.standin import StandinProcess

HANG_S = 6.0


@pytest.fixture
def impatient(settings: Settings) -> Iterator[TestClient]:
    """An app whose upstream calls wait at most 1 s (the session's own waits 60)."""
    values = {name: getattr(settings, name) for name in ("DATABASE_URL", "REDIS_URL")}
    app = create_app(
        make_settings(**values, TABPFN_API_URL=settings.TABPFN_API_URL, TABPFN_API_TIMEOUT_S=1.0)
    )
    try:
        yield TestClient(app, client=("198.51.100.7", 40000))
    finally:
        app.state.context.close()


@pytest.fixture
def hanging(standin: StandinProcess) -> Iterator[StandinProcess]:
    standin.configure(path_delays={"/protected/": HANG_S, "/get_api_usage/": HANG_S})
    yield standin
    standin.reset()


def test_a_hanging_upstream_costs_a_setup_seconds_not_the_api(
    impatient: TestClient, hanging: StandinProcess
) -> None:
    health: list[int] = []

    def probe() -> None:
        time.sleep(0.3)
        health.append(impatient.get("/health").status_code)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    response = impatient.post("/api/v1/auth/setup", json={"tabpfn_token": new_token()})
    elapsed = time.monotonic() - started
    prober.join(timeout=10)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < HANG_S - 1  # gave up at its own timeout, not the upstream's pace
    assert health == [200]


def test_token_change_and_usage_give_up_too(impatient: TestClient, standin: StandinProcess) -> None:
    account = register(impatient)
    standin.configure(path_delays={"/protected/": HANG_S, "/get_api_usage/": HANG_S})
    try:
        started = time.monotonic()
        changed = impatient.put(
            "/api/v1/auth/tabpfn-token",
            json={"tabpfn_token": new_token()},
            headers=account.headers,
        )
        usage = impatient.get("/api/v1/usage", headers=account.headers)
        elapsed = time.monotonic() - started
    finally:
        standin.reset()
    assert changed.status_code == 503 and changed.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert usage.status_code == 200 and usage.json()["tabpfn"] is None
    assert elapsed < 2 * HANG_S - 2
