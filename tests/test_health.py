"""`GET /` and `GET /health` against real engines, and /health naming a failing dependency."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from scripts.engines import free_port
from shared.config import Settings
from tests.support.settings import make_settings


def test_root_describes_the_service(client: TestClient) -> None:
    body = client.get("/").json()
    assert body["name"] == "tabpfn-api"
    assert body["docs"] == "/docs"


def test_health_is_ok_with_both_engines(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_health_names_the_broker_when_redis_is_down(settings: Settings) -> None:
    broken = make_settings(
        DATABASE_URL=settings.DATABASE_URL, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    app = create_app(broken)
    try:
        response = TestClient(app).get("/health")
    finally:
        app.state.context.close()
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "error"}


def test_health_names_the_database_when_postgres_is_down(settings: Settings) -> None:
    broken = make_settings(
        DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        REDIS_URL=settings.REDIS_URL,
    )
    app = create_app(broken)
    try:
        response = TestClient(app).get("/health")
    finally:
        app.state.context.close()
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "error", "broker": "ok"}
