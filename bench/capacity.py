"""Capacity: one user's burst of fits on a slow upstream, and a second user who must not wait
behind it; then a burst of slow predictions, which hold a worker slot for their whole call.
The service's default `WORKER_UPSTREAM_CONCURRENCY` beside 1, in the same run.

Against the stand-in, each fit takes FIT_S seconds upstream (submitted, then pending), with 2
worker processes. User A submits FITS small fits (100×10) from 8 connections; user B submits
one fit 1 s after A's first. Reported per run:

- concurrency: the upstream's busy seconds (the sum of A's fit durations in the stand-in's
  fit log) divided by the drain time (A's first submission to A's last `succeeded`).
  Target ≥ 32;
- drain time divided by FITS × FIT_S (1.0 would be one fit at a time);
- B's submit → `succeeded` (seen by polling every 50 ms) divided by FIT_S. Target ≤ 2;
- the peak resident memory (VmHWM) of each worker process. Target: the default's peak at
  most 1.5× the baseline's (payload memory beyond that is what WORKER_MEMORY_BUDGET_MB caps;
  these fits use almost none of it).

Predictions: USERS users each submit PREDICTS_PER_USER predictions of PREDICT_S seconds
upstream; reported are the calls in flight (the stand-in's busy seconds over the drain time)
and the drain time.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from bench.harness import BenchStack, register, wait_for_job
from bench.workers import _fit_json, _status_kib
from tests.support.standin import token_id

FITS = 200
FIT_S = 2.0
# The stand-in's `retry_in_secs` answer: its default, tabpfn-client's own floor.
POLL_HINT_S = 0.3
PROCESSES = 2
RUNS = (("baseline", 1), ("default", 32))
USERS, PREDICTS_PER_USER, PREDICT_S = 4, 16, 2.0


def _drain_s(stack: BenchStack, ids: list[str]) -> float:
    """Wait until every job succeeded (read from the job rows, so that checking costs the API
    nothing), then the time from the first submission to the last success."""
    engine = sa.create_engine(stack.settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            while True:
                done, succeeded, first, last = connection.execute(
                    sa.text(
                        "SELECT count(finished_at), count(*) FILTER (WHERE status = 'succeeded'),"
                        " min(created_at), max(finished_at) FROM jobs "
                        "WHERE id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": ids},
                ).one()
                connection.rollback()
                if done == len(ids):
                    assert succeeded == len(ids), f"{len(ids) - succeeded} job(s) did not succeed"
                    return float((last - first).total_seconds())
                time.sleep(0.2)
    finally:
        engine.dispose()


def _phases(stack: BenchStack, job_id: str) -> dict[str, float]:
    """Where a job's time went: queued, claimed until the upstream took the fit, then
    waiting on the fit until the job succeeded."""
    engine = sa.create_engine(stack.settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            queued, submitting, waiting = connection.execute(
                sa.text(
                    "SELECT extract(epoch FROM started_at - created_at), "
                    "extract(epoch FROM upstream_submitted_at - started_at), "
                    "extract(epoch FROM finished_at - upstream_submitted_at) "
                    "FROM jobs WHERE id = CAST(:id AS uuid)"
                ),
                {"id": job_id},
            ).one()
    finally:
        engine.dispose()
    return {
        # created_at is the API host's clock, started_at the database's: clamp their skew.
        "queued": round(max(float(queued), 0.0), 2),
        "submitting": round(float(submitting), 2),
        "upstream": round(float(waiting), 2),
    }


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _postgres_cpu_s(stack: BenchStack) -> float:
    """The benchmark's PostgreSQL: its postmaster and every backend still running."""
    data_dir = str(stack.postgres.data_dir)
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        if data_dir in " ".join(process.info["cmdline"] or []):
            for member in [process, *process.children()]:
                total += _cpu_s(member.pid)
    return total


def _one_run(stack: BenchStack, api: str, label: str, concurrency: int) -> dict[str, Any]:
    worker = stack.worker(
        PROCESSES, f"capacity-{label}", {"WORKER_UPSTREAM_CONCURRENCY": str(concurrency)}
    )
    api_pid = next(p.pid for p in stack.processes if p.name == "api")
    cpu_before = {
        "api": _cpu_s(api_pid),
        "standin": _cpu_s(stack.standin.popen.pid),
        "postgres": _postgres_cpu_s(stack),
    }
    try:
        token_a, token_b = f"bench-cap-a-{uuid.uuid4().hex}", f"bench-cap-b-{uuid.uuid4().hex}"
        key_a, key_b = register(api, token_a), register(api, token_b)
        body = _fit_json(100, 10, 0)
        for key in (key_a, key_b):  # verify each key once (bcrypt) before the clock starts
            httpx.get(f"{api}/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
        b_result: dict[str, float] = {}
        b_job: dict[str, str] = {}
        started = threading.Event()

        def second_user() -> None:
            started.wait()
            time.sleep(1.0)
            t0 = time.perf_counter()
            response = httpx.post(
                f"{api}/api/v1/models/fit",
                json=body,
                headers={"Authorization": f"Bearer {key_b}"},
                timeout=60,
            )
            job = wait_for_job(api, key_b, response.json()["id"], poll_s=0.05)
            assert job["status"] == "succeeded", job
            b_result["seconds"] = time.perf_counter() - t0
            b_job["id"] = job["id"]

        b_thread = threading.Thread(target=second_user)
        b_thread.start()

        def submit(_: int) -> str:
            response = client.post("/api/v1/models/fit", json=body)
            response.raise_for_status()
            started.set()
            job_id: str = response.json()["id"]
            return job_id

        with (
            httpx.Client(
                base_url=api, headers={"Authorization": f"Bearer {key_a}"}, timeout=60
            ) as client,
            ThreadPoolExecutor(8) as pool,
        ):
            ids = list(pool.map(submit, range(FITS)))
        drain = _drain_s(stack, ids)
        b_thread.join(timeout=600)
        phases = _phases(stack, b_job["id"])
        fits = [f for f in stack.standin.fits() if f["token_id"] == token_id(token_a)]
        busy = sum(f["finished"] - f["submitted"] for f in fits)
        children = psutil.Process(worker.pid).children()
        peaks = [round(_status_kib(child, "VmHWM") * 1024 / 1e6, 1) for child in children]
        cpu = {
            "workers": round(sum(_cpu_s(child.pid) for child in children), 1),
            "api": round(_cpu_s(api_pid) - cpu_before["api"], 1),
            "standin": round(_cpu_s(stack.standin.popen.pid) - cpu_before["standin"], 1),
            "postgres": round(_postgres_cpu_s(stack) - cpu_before["postgres"], 1),
        }
    finally:
        stack.stop(worker)
    return {
        "run": label,
        "upstream_concurrency": concurrency,
        "upstream_fits": len(fits),
        "busy_s": round(busy, 1),
        "drain_s": round(drain, 2),
        "concurrency": round(busy / drain, 1),
        "drain_vs_serial": round(drain / (FITS * FIT_S), 3),
        "second_user_s": round(b_result["seconds"], 2),
        "second_user_ratio": round(b_result["seconds"] / FIT_S, 2),
        "second_user_phases_s": phases,
        "peak_rss_mb": peaks,
        "cpu_s": cpu,
    }


def _predict_run(stack: BenchStack, api: str, label: str, concurrency: int) -> dict[str, Any]:
    worker = stack.worker(
        PROCESSES, f"capacity-predict-{label}", {"WORKER_UPSTREAM_CONCURRENCY": str(concurrency)}
    )
    try:
        keys = [register(api, f"bench-cap-p-{uuid.uuid4().hex}") for _ in range(USERS)]
        fit_body = _fit_json(100, 10, 0)
        models = []
        for key in keys:
            response = httpx.post(
                f"{api}/api/v1/models/fit",
                json=fit_body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            models.append(wait_for_job(api, key, response.json()["id"], poll_s=0.1)["model_id"])
        # The same rows each time: `cache: false`, so every prediction goes upstream.
        rows_body = {"features": fit_body["features"][:20], "cache": False}
        since = stack.standin.last_seq()

        def submit(index: int) -> str:
            key, model = keys[index % USERS], models[index % USERS]
            response = httpx.post(
                f"{api}/api/v1/models/{model}/predict",
                json=rows_body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            response.raise_for_status()
            job_id: str = response.json()["id"]
            return job_id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(USERS * PREDICTS_PER_USER)))
        drain = _drain_s(stack, ids)
        calls = [c for c in stack.standin.calls(since) if c["path"] == "/tabpfn/predict"]
        busy = sum(c["done"] - c["ts"] for c in calls)
        children = psutil.Process(worker.pid).children()
        peaks = [round(_status_kib(child, "VmHWM") * 1024 / 1e6, 1) for child in children]
    finally:
        stack.stop(worker)
    return {
        "run": label,
        "upstream_concurrency": concurrency,
        "predictions": len(ids),
        "busy_s": round(busy, 1),
        "drain_s": round(drain, 2),
        "concurrency": round(busy / drain, 1),
        "peak_rss_mb": peaks,
    }


def run() -> dict[str, Any]:
    stack = BenchStack(
        standin_args=(
            "--fit-delay-s",
            str(FIT_S),
            "--fit-poll-hint-s",
            str(POLL_HINT_S),
            "--predict-delay-s",
            str(PREDICT_S),
        )
    )
    try:
        api = stack.serve("api.main:app", name="api")
        rows = [_one_run(stack, api, label, concurrency) for label, concurrency in RUNS]
        predict_rows = [_predict_run(stack, api, label, concurrency) for label, concurrency in RUNS]
    finally:
        stack.close()
    baseline_peak, default_peak = max(rows[0]["peak_rss_mb"]), max(rows[1]["peak_rss_mb"])
    return {
        "fits": FITS,
        "fit_s": FIT_S,
        "poll_hint_s": POLL_HINT_S,
        "processes": PROCESSES,
        "rows": rows,
        "predict": {
            "users": USERS,
            "per_user": PREDICTS_PER_USER,
            "predict_s": PREDICT_S,
            "rows": predict_rows,
        },
        "rss_ratio": round(default_peak / baseline_peak, 2),
        "target_concurrency": 32,
        "target_second_user_ratio": 2.0,
        "target_rss_ratio": 1.5,
    }
