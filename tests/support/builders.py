"""Small builders: accounts, datasets, and polling helpers used across the tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes

from tests.support import secrets as secret_registry


def new_token(prefix: str = "tok") -> str:
    """A fresh TabPFN token; its prefix picks the stand-in's behaviour (invalid*, flaky*, …)."""
    return secret_registry.remember(f"{prefix}-{uuid.uuid4().hex}", "TabPFN token")


@dataclass
class Account:
    user_id: str
    api_key: str
    key_id: str
    webhook_secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def register(
    client: TestClient | httpx.Client, token: str | None = None, *, prefix: str = "tok"
) -> Account:
    """POST /auth/setup with a new (or the given) token."""
    token = token or new_token(prefix)
    response = client.post("/api/v1/auth/setup", json={"tabpfn_token": token})
    assert response.status_code == 201, response.text
    body = response.json()
    secret_registry.remember(body["api_key"], "API key")
    secret_registry.remember(body["webhook_secret"], "webhook secret")
    return Account(body["user_id"], body["api_key"], body["key_id"], body["webhook_secret"], token)


def classification_data(
    n_train: int = 400,
) -> tuple[list[list[float]], list[int], list[list[float]], list[int]]:
    """Breast cancer, shuffled with a fixed seed: (X_train, y_train, X_test, y_test)."""
    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    X, y = data.data[order].round(5), data.target[order]
    return X[:n_train].tolist(), y[:n_train].tolist(), X[n_train:].tolist(), y[n_train:].tolist()


def regression_data(n_train: int = 300) -> tuple[list[list[float]], list[float], list[list[float]]]:
    data = load_diabetes()
    X, y = data.data.round(6), data.target
    return X[:n_train].tolist(), y[:n_train].tolist(), X[n_train:].tolist()


def wait_for_job(
    client: TestClient | httpx.Client,
    account: Account,
    job_id: str,
    *,
    timeout: float = 60,
    until: tuple[str, ...] = ("succeeded", "failed", "canceled"),
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until it reaches one of `until`."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in until:
            return body
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {body.get('status')} after {timeout} s: {body}")


def fit(
    client: TestClient,
    account: Account,
    X: list[list[Any]],
    y: list[Any],
    task: str = "classification",
    **extra: Any,
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/models/fit",
        json={"features": X, "target": y, "task": task, **extra},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def predict(
    client: TestClient, account: Account, model_id: str, X: list[list[Any]], **extra: Any
) -> dict[str, Any]:
    """Submit a prediction (202 expected); returns the queued job."""
    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        json={"features": X, **extra},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def fit_ready(
    client: TestClient,
    account: Account,
    X: list[list[Any]],
    y: list[Any],
    task: str = "classification",
    **extra: Any,
) -> dict[str, Any]:
    """Fit and wait until the model is ready; returns the finished fit job."""
    job = wait_for_job(client, account, fit(client, account, X, y, task, **extra)["id"])
    assert job["status"] == "succeeded", job
    return job
