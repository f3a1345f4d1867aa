"""Large uploads take a slot (UPLOAD_SLOTS per process) before their body is read; the rest
wait in line for UPLOAD_SLOT_WAIT_S, then get 503 UPLOADS_BUSY. Small JSON bodies never wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from api.uploads import UploadSlots
from shared.config import Settings
from tests.api.test_auth import other_app
from tests.support.builders import register

CSV = b"a,b,target\n1,2,0\n3,4,1\n5,6,0\n2,2,1\n"
FORM = {"task": "classification", "target_column": "target"}


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _acquire_in_own_loop(slots: UploadSlots, timeout_s: float) -> bool:
    """Wait for a slot on a fresh event loop in this thread, as a second server loop would."""
    return asyncio.run(slots.acquire(timeout_s))


def test_a_freed_slot_goes_to_the_oldest_waiter_whatever_its_loop() -> None:
    slots = UploadSlots(1, wait_s=30)
    assert asyncio.run(slots.acquire(0))
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_acquire_in_own_loop, slots, 60)
        _wait_until(lambda: slots.waiting == 1)
        second = pool.submit(_acquire_in_own_loop, slots, 60)
        _wait_until(lambda: slots.waiting == 2)
        slots.release()  # from a third thread: straight to the first in line
        assert first.result(timeout=30) is True
        assert not second.done() and slots.in_use == 1
        slots.release()
        assert second.result(timeout=30) is True
    slots.release()
    assert slots.in_use == 0 and slots.waiting == 0


def test_a_wait_that_runs_out_holds_nothing() -> None:
    slots = UploadSlots(1, wait_s=30)
    assert asyncio.run(slots.acquire(0))
    assert asyncio.run(slots.acquire(0.05)) is False
    assert slots.in_use == 1 and slots.waiting == 0
    slots.release()
    assert slots.in_use == 0


def test_a_canceled_waiter_gives_back_the_slot_handed_to_it() -> None:
    slots = UploadSlots(1, wait_s=30)

    async def scenario() -> None:
        assert await slots.acquire(0)
        waiter = asyncio.create_task(slots.acquire(60))
        while slots.waiting == 0:
            await asyncio.sleep(0)
        slots.release()  # handed to the waiter...
        waiter.cancel()  # ...which goes away before it runs again
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())
    assert slots.in_use == 0 and slots.waiting == 0
    assert asyncio.run(slots.acquire(0))


def _multipart(data: bytes) -> tuple[bytes, dict[str, str]]:
    request = httpx.Request(
        "POST", "http://api/", files={"file": ("d.csv", data, "text/csv")}, data=FORM
    )
    return request.read(), {"Content-Type": request.headers["Content-Type"]}


@pytest.fixture
def one_slot(settings: Settings) -> Iterator[TestClient]:
    app = other_app(settings, UPLOAD_SLOTS=1, UPLOAD_SLOT_WAIT_S=0.5)
    yield TestClient(app)
    app.state.context.close()


def test_a_second_upload_waits_then_gets_503_while_the_slot_is_held(one_slot: TestClient) -> None:
    client = one_slot
    account = register(client)
    body, headers = _multipart(CSV)
    reading, finish = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        reading.set()  # the body is being read: its request holds the slot
        assert finish.wait(60)
        yield body

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            client.post,
            "/api/v1/models/fit",
            content=slow_body(),
            headers={**account.headers, **headers},
        )
        assert reading.wait(30)
        slots = client.app.state.context.uploads  # type: ignore[attr-defined]
        assert slots.in_use == 1
        busy = client.post(
            "/api/v1/models/fit",
            files={"file": ("d.csv", CSV, "text/csv")},
            data=FORM,
            headers=account.headers,
        )
        small = client.post(
            "/api/v1/models/fit",
            json={"features": [[1.0], [2.0], [3.0]], "target": [0, 1, 0], "task": "classification"},
            headers=account.headers,
        )
        finish.set()
        first = held.result(timeout=60)
    assert busy.status_code == 503, busy.text
    assert busy.json()["code"] == "UPLOADS_BUSY" and int(busy.headers["Retry-After"]) >= 1
    assert small.status_code == 202, small.text  # small JSON never waits for a slot
    assert first.status_code == 202, first.text
    after = client.post(
        "/api/v1/models/fit",
        files={"file": ("d.csv", CSV, "text/csv")},
        data=FORM,
        headers=account.headers,
    )
    assert after.status_code == 202, after.text
    assert slots.in_use == 0
