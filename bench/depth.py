"""Server-side depth: a large prediction split into concurrent chunks, and the prediction
cache, each beside its baseline in the same run.

- **Chunked prediction.** The stand-in takes at most LIMIT test rows per request and answers
  each predict request after LATENCY_S. A ROWS-row prediction through the service (submit the
  JSON body, poll every 50 ms until `succeeded`, download the result) against the same rows
  sent by the unmodified tabpfn-client itself as ROWS / LIMIT requests one after another
  (what a user of the client must do today). Target: the service ≤ 0.5× the direct time.
- **Prediction cache.** The same prediction submitted again (answered from the stored
  result) against its first, uncached run, at ROWS rows and at SMALL_ROWS rows.

Both sides fit on the same data first; the clocks cover predictions only.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import tabpfn_client
from tabpfn_client.client import ServiceClient
from tabpfn_client.config import Config

from bench.harness import BenchStack, register, wait_for_job

ROWS, LIMIT, LATENCY_S = 50_000, 10_000, 0.5
SMALL_ROWS = 1_000
TRAIN_ROWS, COLS = 500, 20
REPEATS = 3
TARGET_RATIO = 0.5


def _data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(TRAIN_ROWS, COLS)).round(5)
    y = (X[:, 0] + rng.normal(scale=0.5, size=TRAIN_ROWS) > 0).astype(int)
    return X, y, rng.normal(size=(ROWS, COLS)).round(5)


def _direct_s(url: str, X: Any, y: Any, X_test: Any) -> float:
    """The unmodified client: one fit, then the test rows in LIMIT-row requests, in turn."""
    ServiceClient.httpx_client = httpx.Client(
        base_url=url,
        timeout=900,
        headers={"Prior-Client-Version": tabpfn_client.__version__},
        follow_redirects=True,
    )
    ServiceClient.base_url = url
    ServiceClient._api_settings = None
    Config.is_initialized = True
    Config.use_server = True
    tabpfn_client.set_access_token(f"bench-depth-direct-{uuid.uuid4().hex}")
    classifier = tabpfn_client.TabPFNClassifier().fit(X, y)
    started = time.perf_counter()
    parts = [
        classifier.predict_proba(X_test[start : start + LIMIT])
        for start in range(0, len(X_test), LIMIT)
    ]
    elapsed = time.perf_counter() - started
    assert sum(len(part) for part in parts) == len(X_test)
    return elapsed


class _Service:
    """One user of the service with one fitted model."""

    def __init__(self, api: str, X: Any, y: Any) -> None:
        self.api = api
        self.key = register(api, f"bench-depth-{uuid.uuid4().hex}")
        self.headers = {"Authorization": f"Bearer {self.key}"}
        body = {"task": "classification", "features": X.tolist(), "target": y.tolist()}
        response = httpx.post(f"{api}/api/v1/models/fit", json=body, headers=self.headers)
        response.raise_for_status()
        job = wait_for_job(api, self.key, response.json()["id"], poll_s=0.05)
        assert job["status"] == "succeeded", job
        self.model_id = job["model_id"]

    def predict_s(
        self, body: bytes, content_type: str = "application/json"
    ) -> tuple[float, dict[str, Any]]:
        """Submit → `succeeded` → result downloaded, as a client sees it."""
        headers = {**self.headers, "Content-Type": content_type}
        started = time.perf_counter()
        response = httpx.post(
            f"{self.api}/api/v1/models/{self.model_id}/predict",
            content=body,
            headers=headers,
            timeout=300,
        )
        response.raise_for_status()
        job = wait_for_job(self.api, self.key, response.json()["id"], poll_s=0.05)
        assert job["status"] == "succeeded", job
        result = httpx.get(
            f"{self.api}/api/v1/jobs/{job['id']}/result", headers=self.headers, timeout=300
        )
        result.raise_for_status()
        elapsed = time.perf_counter() - started
        assert len(result.json()["predictions"]) == job["result"]["n_rows"]
        return elapsed, job


def _body(rows: Any) -> bytes:
    return json.dumps({"features": rows.tolist(), "output_type": "probas"}).encode()


def _parquet_body(rows: Any) -> tuple[bytes, str]:
    """The rows as a Parquet upload (what the Python client sends for large data)."""
    buffer = io.BytesIO()
    pd.DataFrame(rows, columns=[str(i) for i in range(rows.shape[1])]).to_parquet(buffer)
    request = httpx.Request(
        "POST",
        "http://x/",
        files={"file": ("rows.parquet", buffer.getvalue())},
        data={"output_type": "probas"},
    )
    return request.read(), request.headers["content-type"]


def run() -> dict[str, Any]:
    stack = BenchStack(
        latency_ms=LATENCY_S * 1000,
        standin_args=("--limit", f"test_set_max_rows={LIMIT}"),
        RESULT_INLINE_MAX_ROWS=1000,
    )
    X, y, X_test = _data()
    try:
        api = stack.serve("api.main:app", name="api")
        stack.worker(2, "depth-worker")
        _direct_s(stack.standin.url, X, y, X_test[:LIMIT])  # warm-up
        direct = statistics.median(
            _direct_s(stack.standin.url, X, y, X_test) for _ in range(REPEATS)
        )
        chunked, cached, small, small_cached, as_parquet = [], [], [], [], []
        for repeat in range(REPEATS):
            service = _Service(api, X, y)  # a fresh user: nothing cached upstream or here
            if repeat == 0:
                service.predict_s(_body(X_test[:100]))  # warm-up
            rows = X_test + repeat * 1e-5  # other rows each repeat: no cache across repeats
            elapsed, job = service.predict_s(_body(rows))
            assert not job["cached"], job
            assert job["result"]["chunks"] == ROWS // LIMIT, job
            chunked.append(elapsed)
            elapsed, job = service.predict_s(_body(rows))
            assert job["cached"], job
            cached.append(elapsed)
            elapsed, job = service.predict_s(*_parquet_body(rows + 1e-6))
            assert not job["cached"], job
            as_parquet.append(elapsed)
            elapsed, job = service.predict_s(_body(rows[:SMALL_ROWS]))
            assert not job["cached"], job
            small.append(elapsed)
            elapsed, job = service.predict_s(_body(rows[:SMALL_ROWS]))
            assert job["cached"], job
            small_cached.append(elapsed)
    finally:
        stack.close()
    service_s = statistics.median(chunked)
    return {
        "rows": ROWS,
        "limit": LIMIT,
        "latency_s": LATENCY_S,
        "repeats": REPEATS,
        "direct_sequential_s": round(direct, 3),
        "service_s": round(service_s, 3),
        "ratio": round(service_s / direct, 3),
        "parquet_s": round(statistics.median(as_parquet), 3),
        "parquet_ratio": round(statistics.median(as_parquet) / direct, 3),
        "target_ratio": TARGET_RATIO,
        "cached_s": round(statistics.median(cached), 3),
        "small_rows": SMALL_ROWS,
        "small_uncached_s": round(statistics.median(small), 3),
        "small_cached_s": round(statistics.median(small_cached), 3),
    }
