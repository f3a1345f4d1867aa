"""End to end: submit a fit and poll until `succeeded`, beside calling tabpfn-client
directly on the same data, against the stand-in with a fixed upstream latency.

Two direct baselines: the client's default for small data (a synchronous `/tabpfn/fit`,
the floor of any caller), and the client in async mode — submit, then poll the status
following `retry_in_secs` — which is the protocol the service always uses (so that a long
fit never holds a connection or a worker). Target: ≤ 1.2× the direct call and ≤ 100 ms
added, at the median, stated against each. Both sides use a fresh TabPFN token per
repetition, so the stand-in's upload deduplication never helps either; the service's
fresh API key is used once before the clock starts, as a client's key would be.
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

LATENCY_MS = 250
SIZES = [(1_000, 20), (10_000, 100)]
REPEATS = 7


def _data(rows: int, cols: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(rows + cols)
    X = rng.normal(size=(rows, cols)).round(5)
    y = (X[:, 0] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return X, y


def _direct_fit(
    url: str, X: np.ndarray[Any, Any], y: np.ndarray[Any, Any], api_mode: str = "auto"
) -> float:
    """The floor: the unmodified client, in this process, with a token of its own."""
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
    tabpfn_client.set_access_token(f"bench-direct-{uuid.uuid4().hex}")
    started = time.perf_counter()
    tabpfn_client.TabPFNClassifier(api_mode=api_mode).fit(X, y)
    return time.perf_counter() - started


def _service_fit(api: str, body: bytes, headers: dict[str, str]) -> float:
    key = register(api, f"bench-e2e-{uuid.uuid4().hex}")
    # A client reuses its key: verify it once (bcrypt, then cached) before the clock starts.
    httpx.get(
        f"{api}/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}
    ).raise_for_status()
    auth = {"Authorization": f"Bearer {key}", **headers}
    started = time.perf_counter()
    response = httpx.post(f"{api}/api/v1/models/fit", content=body, headers=auth, timeout=300)
    response.raise_for_status()
    job = wait_for_job(api, key, response.json()["id"])
    elapsed = time.perf_counter() - started
    assert job["status"] == "succeeded", job
    return elapsed


def _multipart(X: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["label"] = y
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    request = httpx.Request(
        "POST",
        "http://x/",
        files={"file": ("train.parquet", buffer.getvalue())},
        data={"task": "classification", "target_column": "label"},
    )
    return request.read(), {"Content-Type": request.headers["content-type"]}


def run() -> dict[str, Any]:
    stack = BenchStack(latency_ms=LATENCY_MS)
    rows: list[dict[str, Any]] = []
    try:
        api = stack.serve("api.main:app", name="api")
        stack.worker(1, "e2e-worker")
        for n_rows, n_cols in SIZES:
            X, y = _data(n_rows, n_cols)
            json_body = json.dumps(
                {"task": "classification", "features": X.tolist(), "target": y.tolist()}
            ).encode()
            parquet_body, parquet_headers = _multipart(X, y)
            bodies = {
                "JSON": (json_body, {"Content-Type": "application/json"}),
                "Parquet upload": (parquet_body, parquet_headers),
            }
            _service_fit(api, *bodies["JSON"])  # warm-up: imports, pools, caches
            _direct_fit(stack.standin.url, X, y)
            direct = statistics.median(_direct_fit(stack.standin.url, X, y) for _ in range(REPEATS))
            _direct_fit(stack.standin.url, X, y, "async")
            direct_async = statistics.median(
                _direct_fit(stack.standin.url, X, y, "async") for _ in range(REPEATS)
            )
            for label, (body, headers) in bodies.items():
                service = statistics.median(
                    _service_fit(api, body, headers) for _ in range(REPEATS)
                )
                rows.append(
                    {
                        "size": f"{n_rows}x{n_cols}",
                        "body": label,
                        "body_mb": round(len(body) / 1e6, 2),
                        "direct_s": round(direct, 3),
                        "service_s": round(service, 3),
                        "ratio": round(service / direct, 3),
                        "added_ms": round((service - direct) * 1000, 1),
                        "direct_async_s": round(direct_async, 3),
                        "ratio_async": round(service / direct_async, 3),
                        "added_async_ms": round((service - direct_async) * 1000, 1),
                    }
                )
    finally:
        stack.close()
    return {
        "latency_ms": LATENCY_MS,
        "repeats": REPEATS,
        "rows": rows,
        "target_ratio": 1.2,
        "target_added_ms": 100,
    }
