"""Every error leaves the API as {"code", "message"}: unknown routes, wrong methods, huge bodies."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_unknown_route_is_404_not_found(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "NOT_FOUND"
    assert "/api/v1/nothing-here" in body["message"]


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    generated = client.get("/")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = client.get("/", headers={"X-Request-ID": "trace-abc-123"})
    assert echoed.headers["x-request-id"] == "trace-abc-123"
    refused = client.get("/", headers={"X-Request-ID": "bad id with spaces"})
    assert refused.headers["x-request-id"] != "bad id with spaces"
