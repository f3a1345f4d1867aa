"""`Prefer: wait`: how many held requests one API process carries, and what waiting saves
a client over polling, each beside its baseline in the same run.

- **Held requests.** One uvicorn process (the default pool of 10 + 10 connections, the
  thread pool's 40 threads) and no worker, so the jobs stay queued and every `GET /jobs/{id}`
  with `Prefer: wait=60` is held its full time (a waiter whose time runs out asks again, so
  the level holds). The waiters are added in steps of LEVELS; at each level: the API's
  resident memory, and the latency of other requests made meanwhile (`GET /api/v1/users/me`,
  which takes a pooled connection and a thread) against the same requests with nobody
  waiting. Waiters join STEP at a time, so each level is reached and read before the
  earliest waiters' time runs out.
- **Submit → result.** A short prediction (20 rows) on a fitted model, with the prediction
  cache off: submitted with `Prefer: wait=60` (one request, usually), against submitted
  plainly and polled every 100 ms (what a client without it does), alternating, REPEATS
  each.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from typing import Any

import httpx
import numpy as np
import psutil

from bench.harness import BenchStack, register

LEVELS = (250, 500, 1000, 2000)
STEP = 25
PROBES = 40
REPEATS = 15
POLL_S = 0.1
LATENCY_MS = 100


def _fit_body(rows: int = 100, cols: int = 10, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols)).round(4)
    y = (X[:, 0] > 0).astype(int)
    return {"task": "classification", "features": X.tolist(), "target": y.tolist()}


def _rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 1e6, 1)


async def _probe(http: httpx.AsyncClient, headers: dict[str, str]) -> float:
    """Median latency (ms) of PROBES plain requests, one after another."""
    took = []
    for _ in range(PROBES):
        started = time.perf_counter()
        response = await http.get("/api/v1/users/me", headers=headers)
        response.raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(took), 2)


def _waiters(api: str, pid: int) -> int:
    text = httpx.get(f"{api}/metrics", timeout=60).text
    # With PROMETHEUS_MULTIPROC_DIR set the series has a pid label; without, none.
    found = re.search(rf'^tabpfn_api_prefer_waiters(?:\{{pid="{pid}"\}})? ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


async def _held(api: str, pid: int) -> list[dict[str, Any]]:
    key = await asyncio.to_thread(register, api, f"bench-prefer-{uuid.uuid4().hex}")
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=max(LEVELS) + 50, max_keepalive_connections=0)
    rows: list[dict[str, Any]] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=api, timeout=120, limits=limits) as http:
        jobs = []
        for seed in range(10):
            fitted = await http.post(
                "/api/v1/models/fit", json=_fit_body(seed=seed), headers=headers
            )
            jobs.append(fitted.json()["id"])
        rows.append(
            {"waiters": 0, "rss_mb": _rss_mb(pid), "other_p50_ms": await _probe(http, headers)}
        )

        async def hold(job_id: str) -> None:
            held = {**headers, "Prefer": "wait=60"}
            while not stop.is_set():
                (await http.get(f"/api/v1/jobs/{job_id}", headers=held)).raise_for_status()

        tasks: list[asyncio.Task[None]] = []
        for level in LEVELS:
            while len(tasks) < level:
                tasks += [
                    asyncio.create_task(hold(jobs[len(tasks) % len(jobs)])) for _ in range(STEP)
                ]
                deadline = time.monotonic() + 60
                while await asyncio.to_thread(_waiters, api, pid) < len(tasks) * 0.95:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {_waiters(api, pid)} of {len(tasks)} held")
                    await asyncio.sleep(0.1)
            held_now = await asyncio.to_thread(_waiters, api, pid)
            rows.append(
                {
                    "waiters": held_now,
                    "rss_mb": _rss_mb(pid),
                    "other_p50_ms": await _probe(http, headers),
                }
            )
            print(f"[bench] prefer: {rows[-1]}", flush=True)
        stop.set()
        for job_id in jobs:  # ends every held request at once (NOTIFY)
            await http.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
        await asyncio.gather(*tasks, return_exceptions=True)
    return rows


def _submit_to_result(api: str, key: str, model_id: str, *, prefer: bool, seed: int) -> float:
    rng = np.random.default_rng(seed)
    body = {"features": rng.normal(size=(20, 10)).round(4).tolist(), "cache": False}
    headers = {"Authorization": f"Bearer {key}", **({"Prefer": "wait=60"} if prefer else {})}
    with httpx.Client(base_url=api, timeout=120) as http:
        started = time.perf_counter()
        job = http.post(f"/api/v1/models/{model_id}/predict", json=body, headers=headers).json()
        while job["status"] not in ("succeeded", "failed", "canceled"):
            if not prefer:
                time.sleep(POLL_S)
            job = http.get(f"/api/v1/jobs/{job['id']}", headers=headers).json()
        elapsed = time.perf_counter() - started
    assert job["status"] == "succeeded", job
    return elapsed


def run() -> dict[str, Any]:
    held: list[dict[str, Any]] = []
    # One user holds them all here, so the per-user share is lifted to the process's cap.
    stack = BenchStack(
        PREFER_WAIT_MAX_WAITERS=max(LEVELS) * 2, PREFER_WAIT_MAX_WAITERS_PER_USER=max(LEVELS) * 2
    )
    try:
        api = stack.serve("api.main:app", name="api")
        pid = stack.processes[-1].pid
        held = asyncio.run(_held(api, pid))
    finally:
        stack.close()
    stack = BenchStack(latency_ms=LATENCY_MS)
    waited: list[float] = []
    polled: list[float] = []
    try:
        api = stack.serve("api.main:app", name="api")
        stack.worker(2, "prefer-worker")
        key = register(api, f"bench-prefer-{uuid.uuid4().hex}")
        fitted = httpx.post(
            f"{api}/api/v1/models/fit",
            json=_fit_body(),
            headers={"Authorization": f"Bearer {key}", "Prefer": "wait=60"},
            timeout=120,
        ).json()
        model_id = fitted["model_id"]
        _submit_to_result(api, key, model_id, prefer=True, seed=0)  # warm-up
        for seed in range(1, REPEATS + 1):
            waited.append(_submit_to_result(api, key, model_id, prefer=True, seed=seed))
            polled.append(_submit_to_result(api, key, model_id, prefer=False, seed=seed))
    finally:
        stack.close()
    return {
        "held": held,
        "step": STEP,
        "probes": PROBES,
        "latency_ms": LATENCY_MS,
        "repeats": REPEATS,
        "poll_s": POLL_S,
        "waited_s": round(statistics.median(waited), 3),
        "polled_s": round(statistics.median(polled), 3),
        "waited_p90_s": round(sorted(waited)[int(len(waited) * 0.9) - 1], 3),
        "polled_p90_s": round(sorted(polled)[int(len(polled) * 0.9) - 1], 3),
    }
