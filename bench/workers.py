"""Worker scaling and worker memory.

- scaling: the same batch of small fits drained by 1, 2, 4 and 8 worker processes with
  0.5 s of upstream latency per fit call, one upstream slot per process
  (`WORKER_UPSTREAM_CONCURRENCY=1`, and a per-user cap that does not bind), so that it
  measures what processes add, as before the capacity work. Target: ≥ 6× the jobs/s of one
  process at eight. (Slots per process are measured by the capacity benchmark.)
- memory: the peak resident memory a worker process adds for a 50k×100 fit, beside the raw
  float64 size of the data and beside the unmodified client fitting the same matrix in a
  fresh process. Target: ≤ 4× the raw size above the idle worker.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import sqlalchemy as sa

from bench.harness import BenchStack, register, wait_for_job
from tests.support.processes import ROOT

BATCH = 48
PROCESSES = [1, 2, 4, 8]
MEMORY_ROWS, MEMORY_COLS = 50_000, 100


def _fit_json(rows: int, cols: int, seed: int) -> dict[str, Any]:
    """A fit of random data. Batches send the same body many times: `reuse: false`, so each
    is fitted upstream, as the benchmarks measure (fit reuse would answer most at once)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols)).round(4)
    return {
        "task": "classification",
        "features": X.tolist(),
        "target": (X[:, 0] > 0).astype(int).tolist(),
        "reuse": False,
    }


def _drain_seconds(stack: BenchStack, job_ids: list[str]) -> float:
    """From the batch's first start to its last finish, read from the job rows."""
    engine = sa.create_engine(stack.settings.DATABASE_URL)
    try:
        with engine.connect() as connection:
            while True:
                done, first, last = connection.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE status = 'succeeded'), min(started_at), "
                        "max(finished_at) FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": job_ids},
                ).one()
                if done == len(job_ids):
                    return float((last - first).total_seconds())
                time.sleep(0.2)
    finally:
        engine.dispose()


def scaling() -> dict[str, Any]:
    stack = BenchStack(latency_ms=500, JOB_MAX_RUNNING_PER_USER=1000)
    results: list[dict[str, Any]] = []
    try:
        api = stack.serve("api.main:app", name="api")
        key = register(api, f"bench-scaling-{uuid.uuid4().hex}")
        auth = {"Authorization": f"Bearer {key}"}
        body = _fit_json(100, 10, 0)
        with httpx.Client(base_url=api, headers=auth, timeout=60) as client:
            for processes in PROCESSES:
                ids = [
                    client.post("/api/v1/models/fit", json=body).json()["id"] for _ in range(BATCH)
                ]
                worker = stack.worker(
                    processes, f"scale-{processes}", {"WORKER_UPSTREAM_CONCURRENCY": "1"}
                )
                seconds = _drain_seconds(stack, ids)
                stack.stop(worker)
                results.append(
                    {
                        "processes": processes,
                        "jobs": BATCH,
                        "seconds": round(seconds, 2),
                        "jobs_per_s": round(BATCH / seconds, 2),
                    }
                )
    finally:
        stack.close()
    base = results[0]["jobs_per_s"]
    for row in results:
        row["speedup"] = round(row["jobs_per_s"] / base, 2)
    return {"upstream_latency_s": 0.5, "rows": results, "target_speedup_at_8": 6.0}


def _child(worker_pid: int) -> psutil.Process:
    children = psutil.Process(worker_pid).children()
    assert len(children) == 1, children
    return children[0]


def _status_kib(process: psutil.Process, field: str) -> int:
    for line in open(f"/proc/{process.pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


DIRECT_SCRIPT = textwrap.dedent(
    """
    import sys, uuid, httpx, numpy as np, tabpfn_client
    from tabpfn_client.client import ServiceClient
    from tabpfn_client.config import Config
    def kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    url, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ServiceClient.httpx_client = httpx.Client(base_url=url, timeout=900, follow_redirects=True,
        headers={"Prior-Client-Version": tabpfn_client.__version__})
    Config.is_initialized = True; Config.use_server = True
    tabpfn_client.set_access_token("bench-memory-" + uuid.uuid4().hex)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, cols)); y = (X[:, 0] > 0).astype(int)
    tabpfn_client.TabPFNClassifier().fit(X[:50], y[:50])
    idle = kib("VmRSS")
    tabpfn_client.TabPFNClassifier().fit(X, y)
    print(idle, kib("VmHWM"))
    """
)


def memory() -> dict[str, Any]:
    stack = BenchStack()
    try:
        api = stack.serve("api.main:app", name="api")
        worker = stack.worker(1, "memory-worker")
        key = register(api, f"bench-memory-{uuid.uuid4().hex}")
        auth = {"Authorization": f"Bearer {key}"}
        warm = httpx.post(
            f"{api}/api/v1/models/fit", json=_fit_json(200, 10, 1), headers=auth, timeout=60
        )
        wait_for_job(api, key, warm.json()["id"])
        child = _child(worker.pid)
        idle_kib = _status_kib(child, "VmRSS")

        rng = np.random.default_rng(0)
        X = rng.normal(size=(MEMORY_ROWS, MEMORY_COLS))
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(MEMORY_COLS)])
        frame["label"] = (X[:, 0] > 0).astype(int)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        response = httpx.post(
            f"{api}/api/v1/models/fit",
            headers=auth,
            timeout=300,
            files={"file": ("big.parquet", buffer.getvalue())},
            data={"task": "classification", "target_column": "label"},
        )
        response.raise_for_status()
        job = wait_for_job(api, key, response.json()["id"], poll_s=0.2)
        assert job["status"] == "succeeded", job
        peak_kib = _status_kib(child, "VmHWM")

        direct = subprocess.run(
            [
                sys.executable,
                "-c",
                DIRECT_SCRIPT,
                stack.standin.url,
                str(MEMORY_ROWS),
                str(MEMORY_COLS),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        direct_idle, direct_peak = (int(v) for v in direct.stdout.split())
    finally:
        stack.close()
    raw_mb = MEMORY_ROWS * MEMORY_COLS * 8 / 1e6
    added_mb = (peak_kib - idle_kib) * 1024 / 1e6
    direct_added_mb = (direct_peak - direct_idle) * 1024 / 1e6
    return {
        "rows": MEMORY_ROWS,
        "cols": MEMORY_COLS,
        "raw_float64_mb": round(raw_mb, 1),
        "worker_idle_mb": round(idle_kib * 1024 / 1e6, 1),
        "worker_peak_mb": round(peak_kib * 1024 / 1e6, 1),
        "worker_added_mb": round(added_mb, 1),
        "worker_ratio": round(added_mb / raw_mb, 2),
        "direct_added_mb": round(direct_added_mb, 1),
        "direct_ratio": round(direct_added_mb / raw_mb, 2),
        "target_ratio": 4.0,
    }
