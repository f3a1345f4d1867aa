"""Large uploads take a slot (UPLOAD_SLOTS per process) before their body is read; the rest
wait in line for UPLOAD_SLOT_WAIT_S, then get 503 UPLOADS_BUSY. Small JSON bodies never wait.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from api.uploads import UploadSlots
from scripts.engines import free_port
from shared.config import Settings
from tests.api.test_auth import other_app
from tests.support import secrets as secret_registry
from tests.support.builders import new_token, register
from tests.support.processes import child_env, start_api

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


def _held_upload(
    client: TestClient, headers: dict[str, str], finish: threading.Event, reading: threading.Event
) -> Callable[[], httpx.Response]:
    """An upload whose body stalls (holding its slot) until `finish` is set."""
    body, form_headers = _multipart(CSV)

    def slow_body() -> Iterator[bytes]:
        reading.set()
        finish.wait(60)
        yield body

    return lambda: client.post(
        "/api/v1/models/fit", content=slow_body(), headers={**headers, **form_headers}
    )


def test_one_user_cannot_hold_every_upload_slot(settings: Settings) -> None:
    app = other_app(settings, UPLOAD_SLOTS=4, UPLOAD_SLOTS_PER_USER=1, UPLOAD_SLOT_WAIT_S=0.5)
    client = TestClient(app)
    try:
        hog, other = register(client), register(client)
        reading, finish = threading.Event(), threading.Event()
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(_held_upload(client, hog.headers, finish, reading))
            assert reading.wait(30)
            refused = client.post(
                "/api/v1/models/fit",
                files={"file": ("d.csv", CSV, "text/csv")},
                data=FORM,
                headers=hog.headers,
            )
            served = client.post(
                "/api/v1/models/fit",
                files={"file": ("d.csv", CSV, "text/csv")},
                data=FORM,
                headers=other.headers,
            )
            finish.set()
            assert held.result(timeout=60).status_code == 202
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "TOO_MANY_UPLOADS" and refused.headers["Retry-After"]
        assert served.status_code == 202, served.text
    finally:
        app.state.context.close()


def test_an_upload_that_does_not_arrive_in_time_frees_its_slot(
    settings: Settings, log_dir: Path
) -> None:
    """Against a real uvicorn (the test client feeds bodies in a way no socket does): a body
    that stalls after its first bytes gets 408 once UPLOAD_READ_TIMEOUT_S passes, and the
    slot serves the next upload."""
    port = free_port()
    env = child_env(settings, UPLOAD_SLOTS="1", UPLOAD_READ_TIMEOUT_S="1", FORWARDED_ALLOW_IPS="")
    api = start_api(env, log_dir, name="api-upload-deadline", port=port)
    try:
        base = f"http://127.0.0.1:{port}"
        key = httpx.post(f"{base}/api/v1/auth/setup", json={"tabpfn_token": new_token()}).json()[
            "api_key"
        ]
        secret_registry.remember(key, "API key")
        body, headers = _multipart(CSV)
        head = (
            f"POST /api/v1/models/fit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: {headers['Content-Type']}\r\n"
            f"Content-Length: {len(body) + 100_000}\r\n\r\n"
        ).encode()
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            stalled.sendall(head + body[:50])  # ...and then nothing more
            answer = b""
            while b"REQUEST_TIMEOUT" not in answer and (chunk := stalled.recv(4096)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"REQUEST_TIMEOUT" in answer and time.monotonic() - started < 20
        after = httpx.post(
            f"{base}/api/v1/models/fit",
            files={"file": ("d.csv", CSV, "text/csv")},
            data=FORM,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert after.status_code == 202, after.text
    finally:
        api.stop()


def test_a_taken_slot_is_given_back_once_however_often_it_is_released() -> None:
    slots = UploadSlots(2, wait_s=0, per_owner=1)

    async def scenario() -> None:
        give_back = await slots.take("alice")
        give_back()
        give_back()  # a second call frees nothing more
        assert slots.in_use == 0
        first = await slots.take("alice")
        other = await slots.take("bob")
        assert slots.in_use == 2
        first()
        other()

    asyncio.run(scenario())
    assert slots.in_use == 0 and slots.waiting == 0
