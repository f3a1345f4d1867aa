"""API memory under hostile bodies (issue 10): the API process's peak RSS while it serves

- 8 concurrent 60 MiB bodies without an API key, to setup, to create a key and to fit;
- 8 concurrent Parquet bombs from an authenticated user: 10 M rows in ~140 KiB, 40 M rows
  in ~540 KiB, a decompression bomb within the stand-in's limits (900 k x 50 zeros), and
  the largest table a small file may decode to (1 M cells in ~5 KiB, decoded and accepted:
  what an upload just under the decompression guard still costs);

each beside the idle API's RSS measured just before, in the same run. The API is one real
uvicorn process, a fresh one for each scenario; its RSS is sampled with psutil every few milliseconds, and its kernel
high-water mark (VmHWM, reset before each scenario) catches what sampling misses. Target:
under +200 MB over the idle API.

With `BENCH_API_BASELINE_ROOT` set to a checkout of other code (e.g. the commit this work
started from), the same scenarios also run against that code, `BENCH_API_BASELINE_CONCURRENCY`
requests at a time (default 1: the starting code may take GBs per request).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import BenchStack, register
from tests.support.bombs import parquet_bomb, parquet_text_bomb

MIB = 1024 * 1024
BODY_MIB = 60
CONCURRENCY = 8
TARGET_ADDED_MB = 200
SAMPLE_S = 0.005
Send = Callable[[httpx.Client], httpx.Response]


def _hostile_json(size: int) -> Iterator[bytes]:
    """A JSON object of `size` bytes that is costly to parse: tens of millions of zeros."""
    head, tail = b'{"tabpfn_token": "bench-hostile", "key_name": [0', b"]}"
    left = size - len(head) - len(tail)
    yield head
    piece = b",0" * (MIB // 2)
    while left > 0:
        chunk = piece[: min(left, len(piece))]
        if len(chunk) % 2:  # keep the array well formed: ",0" pairs only
            chunk = chunk[:-1] + b" "
        yield chunk
        left -= len(chunk)
    yield tail


def _post_big(path: str) -> Send:
    size = BODY_MIB * MIB

    def send(client: httpx.Client) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Length": str(size)}
        return client.post(path, content=_hostile_json(size), headers=headers)

    return send


def _upload(content: bytes, target: str, key: str) -> Send:
    def send(client: httpx.Client) -> httpx.Response:
        return client.post(
            "/api/v1/models/fit",
            files={"file": ("bomb.parquet", content, "application/octet-stream")},
            data={"task": "regression", "target_column": target},
            headers={"Authorization": f"Bearer {key}"},
        )

    return send


class _Peak:
    """The process's peak RSS from now until `stop()`: sampled, and from the kernel."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.kernel = _reset_high_water(process.pid)
        self.sampled = process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self.sampled = max(self.sampled, self.process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        high_water = _status_bytes(self.process.pid, "VmHWM") if self.kernel else 0
        return max(self.sampled, high_water)


def _reset_high_water(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _mb(n_bytes: int) -> float:
    return round(n_bytes / 1e6, 1)


def _scenario(
    api: str, process: psutil.Process, name: str, send: Send, concurrency: int
) -> dict[str, Any]:
    time.sleep(1.0)  # let the previous scenario's memory settle
    idle = process.memory_info().rss
    peak = _Peak(process)
    started = time.monotonic()

    def one(_: int) -> str:
        with httpx.Client(base_url=api, timeout=600) as client:
            try:
                response = send(client)
            except httpx.HTTPError as error:
                return type(error).__name__
        try:
            code = response.json().get("code", "") if response.status_code >= 400 else ""
        except ValueError:
            code = "(not JSON)"
        return f"{response.status_code} {code}".strip()

    with ThreadPoolExecutor(concurrency) as pool:
        answers = Counter(pool.map(one, range(concurrency)))
    seconds = time.monotonic() - started
    time.sleep(0.5)
    top = peak.stop()
    after = process.memory_info().rss
    row = {
        "scenario": name,
        "requests": concurrency,
        "answers": dict(answers),
        "seconds": round(seconds, 2),
        "idle_mb": _mb(idle),
        "peak_mb": _mb(top),
        "added_mb": _mb(top - idle),
        "after_mb": _mb(after),
    }
    print(f"[bench] api-memory {row}", flush=True)
    return row


def _scenarios() -> list[tuple[str, Callable[[str], Send]]]:
    """(name, the request given an API key) for every scenario."""
    bombs = [
        ("Parquet bomb: 10 M rows", parquet_bomb(10_000_000, 3), "c2"),
        ("Parquet bomb: 40 M rows", parquet_bomb(40_000_000, 3), "c2"),
        ("Parquet decompression bomb: 900 k x 50 zeros", parquet_bomb(900_000, 50), "c49"),
        # One 20 KB text over 50,000 rows, dictionary-encoded: 1 GB as plain text.
        ("Parquet text bomb: 50 k rows x 20 KB text", parquet_text_bomb(50_000, 20_000), "target"),
        # One million cells: the most a small file may decode to (EXPANSION_FLOOR_BYTES).
        ("Parquet just under the guard: 250 k x 4 zeros", parquet_bomb(250_000, 4), "c3"),
    ]
    unauthenticated = [
        (f"{BODY_MIB} MiB body, no key: POST {path}", _post_big(f"/api/v1{path}"))
        for path in ("/auth/setup", "/auth/keys", "/models/fit")
    ]
    return [
        *((name, lambda _key, send=send: send) for name, send in unauthenticated),
        *(
            (
                f"{name} ({len(content) // 1024} KiB)",
                lambda key, content=content, target=target: _upload(content, target, key),
            )
            for name, content, target in bombs
        ),
    ]


def _warm_up(api: str, key: str) -> None:
    """One request down every path the scenarios take, so that first-use imports and caches
    count as idle, not as the cost of the scenario."""
    small = b"a,b,target\n1,2,0.5\n3,4,1.5\n5,6,2.5\n"
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=60) as client:
        client.post("/api/v1/auth/setup", json={})
        client.post("/api/v1/auth/keys", json={}, headers=auth)
        client.post("/api/v1/models/fit", json={})
        client.post(
            "/api/v1/models/fit",
            files={"file": ("d.csv", small, "text/csv")},
            data={"task": "regression", "target_column": "target"},
            headers=auth,
        )
        _upload(parquet_bomb(1000, 3), "c2", key)(client)


def _measure(stack: BenchStack, root: Path | None, concurrency: int, label: str) -> list[Any]:
    """Each scenario on a fresh API process: what one scenario leaves allocated (Python
    and the allocators keep freed memory) must not hide the next one's peak."""
    rows, key = [], ""
    for index, (name, request_for) in enumerate(_scenarios()):
        api = stack.serve("api.main:app", name=f"api-{label}-{index}", cwd=root)
        process = psutil.Process(stack.processes[-1].pid)
        key = key or register(api, f"bench-api-memory-{uuid.uuid4().hex}")
        _warm_up(api, key)
        rows.append(_scenario(api, process, name, request_for(key), concurrency))
        stack.stop(stack.processes[-1])
    return rows


def run() -> dict[str, Any]:
    # One user sends all eight bombs: their share of upload slots is raised to all of them,
    # so that every bomb reaches the checks before decoding (by default a user holds 2).
    stack = BenchStack(
        MAX_UPLOAD_BYTES=100 * MIB, JOB_MAX_QUEUED_PER_USER=100_000, UPLOAD_SLOTS_PER_USER=8
    )
    try:
        results: dict[str, Any] = {
            "concurrency": CONCURRENCY,
            "body_mib": BODY_MIB,
            "target_added_mb": TARGET_ADDED_MB,
            "upload_slots": stack.settings.UPLOAD_SLOTS,
            "rows": _measure(stack, None, CONCURRENCY, "current"),
        }
        baseline = os.environ.get("BENCH_API_BASELINE_ROOT")
        if baseline:
            concurrency = int(os.environ.get("BENCH_API_BASELINE_CONCURRENCY", "1"))
            results["baseline"] = {
                "root": baseline,
                "concurrency": concurrency,
                "rows": _measure(stack, Path(baseline), concurrency, "baseline"),
            }
        return results
    finally:
        stack.close()
