"""HTTP throughput beside endpoints of the same shape without the work under test, in one run.

- auth: `GET /api/v1/users/me` (API key: one indexed query, bcrypt cached) against
  `GET /bench/me` (the same lookup and body, no authentication) served by the same process
  through the same middleware. Target: ≥ 0.7× the throughput. The bare-FastAPI floor
  (`GET /bare/me`, no middleware, no ORM) is measured too, for context.
- submission: `POST /api/v1/models/fit` with a 100×10 body (validate, store as Parquet,
  insert payload/model/job, publish to Redis) against `POST /bare/fit` (parse the same body,
  insert one row). Target: ≥ 0.5× the throughput.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from bench.harness import BenchStack, register
from bench.loadgen import LoadResult, encode_request, run_load

WARMUP = 200
TOTAL = 3000
SUBMISSIONS = 1500
CONCURRENCY = 8


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _row(name: str, result: LoadResult) -> dict[str, Any]:
    ok = sum(count for status, count in result.statuses.items() if status < 300)
    return {
        "name": name,
        "requests": result.requests,
        "ok": ok,
        "throughput_rps": round(result.throughput, 1),
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
    }


def _measure(url: str, request: bytes, total: int) -> LoadResult:
    run_load(_port(url), lambda _: request, total=WARMUP, concurrency=CONCURRENCY)
    return run_load(_port(url), lambda _: request, total=total, concurrency=CONCURRENCY)


def run() -> dict[str, Any]:
    # No worker drains the submissions: the per-user backlog cap must not refuse them.
    stack = BenchStack(JOB_MAX_QUEUED_PER_USER=1_000_000)
    try:
        api = stack.serve("bench.auth_app:app", name="api")
        bare = stack.serve("bench.baseline_app:app", name="bare")
        key = register(api, "bench-throughput-token")
        key_id = key.split("_")[1]
        auth = {"Authorization": f"Bearer {key}"}

        me = _measure(api, encode_request("GET", "/api/v1/users/me", headers=auth), TOTAL)
        unauthenticated = _measure(api, encode_request("GET", f"/bench/me?key_id={key_id}"), TOTAL)
        bare_me = _measure(bare, encode_request("GET", f"/bare/me?key_id={key_id}"), TOTAL)

        rng = np.random.default_rng(0)
        body = json.dumps(
            {
                "task": "classification",
                "features": rng.normal(size=(100, 10)).round(4).tolist(),
                "target": rng.integers(0, 2, size=100).tolist(),
            }
        ).encode()
        json_headers = {"Content-Type": "application/json"}
        submit = _measure(
            api,
            encode_request("POST", "/api/v1/models/fit", body, {**auth, **json_headers}),
            SUBMISSIONS,
        )
        bare_submit = _measure(
            bare, encode_request("POST", "/bare/fit", body, json_headers), SUBMISSIONS
        )
    finally:
        stack.close()
    return {
        "auth": {
            "service": _row("GET /api/v1/users/me (API key)", me),
            "baseline": _row("GET /bench/me (same app and lookup, no auth)", unauthenticated),
            "floor": _row("GET /bare/me (bare FastAPI, same query)", bare_me),
            "ratio": round(me.throughput / unauthenticated.throughput, 3),
            "target": 0.7,
        },
        "submission": {
            "service": _row("POST /api/v1/models/fit (100x10)", submit),
            "baseline": _row("POST /bare/fit (same body, one row)", bare_submit),
            "ratio": round(submit.throughput / bare_submit.throughput, 3),
            "target": 0.5,
        },
    }
