"""`Prefer: wait=N` (RFC 7240) on the job-creating POSTs and `GET /jobs/{id}`, against the
API under uvicorn: held answers, what they hold (no connection, no thread), and how they
are woken (Postgres NOTIFY at the end's commit, a re-check when a notice is missed, a
listener that reconnects).

The `quiet` API processes run on a database of their own that no worker serves, so their
jobs stay queued until the test ends them (a cancel, which notifies; or a bare UPDATE,
which does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from api.prefer import requested_wait
from shared.config import Settings
from tests.api.test_upload_slots import CSV as UPLOAD_CSV
from tests.api.test_upload_slots import FORM as UPLOAD_FORM
from tests.support.api_server import ApiServer
from tests.support.builders import Account, classification_data, register
from tests.support.processes import ManagedProcess
from tests.support.servers import PostgresServer
from tests.support.settings import make_settings

WAITERS = 60  # more than the thread pool's 40 threads and the pool's 2 connections


def test_the_prefer_header_is_read_as_rfc_7240_says() -> None:
    assert requested_wait(["wait=10"]) == 10
    assert requested_wait(["wait"]) == 60
    assert requested_wait(["wait=600"]) == 60
    assert requested_wait(["respond-async, wait=5"]) == 5
    assert requested_wait(["handling=lenient", 'WAIT="7"; foo=bar']) == 7
    assert requested_wait(["wait=soon"]) is None  # not understood: ignored
    assert requested_wait(["wait=0"]) is None
    assert requested_wait(["return=minimal"]) is None
    assert requested_wait([]) is None


def _fit_body(n: int = 60) -> dict[str, Any]:
    X, y, _, _ = classification_data(n_train=n)
    return {"task": "classification", "features": X, "target": y}


def test_a_predict_with_prefer_wait_returns_the_finished_job_in_one_request(
    api_server: ApiServer, worker: ManagedProcess
) -> None:
    with httpx.Client(base_url=api_server.url, timeout=120) as http:
        account = register(http)
        fitted = http.post(
            "/api/v1/models/fit",
            json=_fit_body(),
            headers={**account.headers, "Prefer": "wait=60"},
        )
        assert fitted.status_code == 200, fitted.text
        assert fitted.json()["status"] == "succeeded"
        assert fitted.headers["preference-applied"] == "wait=60"
        _, _, X_test, _ = classification_data(n_train=60)
        predicted = http.post(
            f"/api/v1/models/{fitted.json()['model_id']}/predict",
            json={"features": X_test[:5], "output_type": "probas"},
            headers={**account.headers, "Prefer": "wait=10"},
        )
    assert predicted.status_code == 200, predicted.text
    assert predicted.headers["preference-applied"] == "wait=10"
    assert "retry-after" not in predicted.headers
    job = predicted.json()
    assert job["status"] == "succeeded"
    assert job["result"]["kind"] == "predict" and len(job["result"]["predictions"]) == 5


def test_a_short_wait_on_a_slow_job_answers_it_unfinished(
    api_server: ApiServer, worker: ManagedProcess
) -> None:
    """The stand-in holds a `slow` token's predictions for 2 s more: `wait=1` cannot see
    the end; the usual 202 comes back, saying the preference was applied."""
    with httpx.Client(base_url=api_server.url, timeout=120) as http:
        account = register(http, prefix="slow")
        fitted = http.post(
            "/api/v1/models/fit", json=_fit_body(), headers={**account.headers, "Prefer": "wait"}
        )
        assert fitted.json()["status"] == "succeeded", fitted.text
        _, _, X_test, _ = classification_data(n_train=60)
        submitted = http.post(
            f"/api/v1/models/{fitted.json()['model_id']}/predict",
            json={"features": X_test[:3]},
            headers={**account.headers, "Prefer": "wait=1"},
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["preference-applied"] == "wait=1"
        assert int(submitted.headers["retry-after"]) >= 1
        assert submitted.json()["status"] in ("queued", "running")
        polled = http.get(
            f"/api/v1/jobs/{submitted.json()['id']}",
            headers={**account.headers, "Prefer": "wait=60"},
        )
    assert polled.status_code == 200 and polled.json()["status"] == "succeeded", polled.text
    assert polled.headers["preference-applied"] == "wait=60"


# Quiet processes: a database no worker serves ----------------------------------------------


@dataclass
class Quiet:
    """An API process on a database without workers, and a direct connection to it."""

    server: ApiServer
    database_url: str

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        url = make_url(self.database_url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as db:
            cursor = db.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def waiters(self) -> int:
        text = httpx.get(f"{self.server.url}/metrics", timeout=60).text
        found = re.search(
            rf'^tabpfn_api_prefer_waiters\{{pid="{self.server.pid}"\}} ([0-9.]+)$', text, re.M
        )
        return int(float(found.group(1))) if found else 0

    def wait_for_waiters(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.waiters() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.waiters()} waiters, never {count}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def quiet_database(postgres: PostgresServer) -> str:
    return postgres.create_migrated_database("tabpfn_quiet")


def _quiet(
    settings: Settings, database_url: str, log_dir: Path, name: str, **values: Any
) -> Iterator[Quiet]:
    quiet_settings = make_settings(
        DATABASE_URL=database_url,
        REDIS_URL=settings.REDIS_URL,
        TABPFN_API_URL=settings.TABPFN_API_URL,
        **values,
    )
    server = ApiServer(quiet_settings, log_dir, name=name)
    yield Quiet(server, database_url)
    server.stop()


@pytest.fixture(scope="module")
def notified(settings: Settings, quiet_database: str, log_dir: Path) -> Iterator[Quiet]:
    """One pooled connection (and as many overflow), no re-check within a test's time:
    only a NOTIFY can wake its waiters."""
    yield from _quiet(
        settings,
        quiet_database,
        log_dir,
        "api-notified",
        DB_POOL_SIZE=1,
        PREFER_WAIT_RECHECK_S=3600,
        PREFER_WAIT_MAX_WAITERS=WAITERS,
    )


@pytest.fixture(scope="module")
def rechecking(settings: Settings, quiet_database: str, log_dir: Path) -> Iterator[Quiet]:
    yield from _quiet(
        settings,
        quiet_database,
        log_dir,
        "api-rechecking",
        PREFER_WAIT_RECHECK_S=0.3,
        PREFER_WAIT_MAX_WAITERS_PER_USER=2,
    )


def _queued_fits(http: httpx.Client, account: Account, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = http.post("/api/v1/models/fit", json=_fit_body(20), headers=account.headers)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def _wait_on(url: str, account: Account, job_ids: list[str]) -> list[httpx.Response]:
    headers = {**account.headers, "Prefer": "wait=45"}
    limits = httpx.Limits(max_connections=len(job_ids) + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        return await asyncio.gather(
            *(http.get(f"/api/v1/jobs/{i}", headers=headers) for i in job_ids)
        )


def test_many_waiters_hold_no_connection_and_no_thread(notified: Quiet) -> None:
    """60 held requests, sent all at once, on a process with 2 database connections and
    40 pool threads: all are held, other requests are still answered while they wait, the
    61st wait is refused (answered at once), and each cancel wakes exactly its job's
    waiters, through NOTIFY alone."""
    with httpx.Client(base_url=notified.server.url, timeout=60) as http:
        account = register(http)
        jobs = _queued_fits(http, account, 3)

        async def scenario() -> None:
            waiting = {
                job_id: asyncio.create_task(
                    _wait_on(notified.server.url, account, [job_id] * (WAITERS // 3))
                )
                for job_id in jobs
            }
            await asyncio.to_thread(notified.wait_for_waiters, WAITERS)
            async with httpx.AsyncClient(base_url=notified.server.url, timeout=60) as other:
                me = await other.get("/api/v1/users/me", headers=account.headers)
                polled = await other.get(f"/api/v1/jobs/{jobs[0]}", headers=account.headers)
                fitted = await other.post(
                    "/api/v1/models/fit", json=_fit_body(20), headers=account.headers
                )
                refused = await other.get(
                    f"/api/v1/jobs/{jobs[0]}", headers={**account.headers, "Prefer": "wait=45"}
                )
            assert me.status_code == 200 and polled.status_code == 200
            assert fitted.status_code == 202, fitted.text
            assert refused.status_code == 200 and refused.json()["status"] == "queued"
            assert "preference-applied" not in refused.headers
            assert not any(task.done() for task in waiting.values())

            for index, job_id in enumerate(jobs):
                canceled = await asyncio.to_thread(
                    http.post, f"/api/v1/jobs/{job_id}/cancel", headers=account.headers
                )
                assert canceled.status_code == 202, canceled.text
                answers = await waiting[job_id]
                assert {a.status_code for a in answers} == {200}
                assert {a.json()["status"] for a in answers} == {"canceled"}
                assert {a.headers["preference-applied"] for a in answers} == {"wait=45"}
                assert not any(waiting[later].done() for later in jobs[index + 1 :])

        asyncio.run(scenario())
    assert notified.waiters() == 0


def test_a_missed_notification_is_caught_by_the_recheck(rechecking: Quiet) -> None:
    """The job ends by a bare UPDATE (no NOTIFY): the periodic re-check still answers."""
    with httpx.Client(base_url=rechecking.server.url, timeout=60) as http:
        account = register(http)
        [job_id] = _queued_fits(http, account, 1)

        async def scenario() -> list[httpx.Response]:
            waiting = asyncio.create_task(_wait_on(rechecking.server.url, account, [job_id]))
            await asyncio.to_thread(rechecking.wait_for_waiters, 1)
            rechecking.sql(
                "UPDATE jobs SET status = 'canceled', finished_at = now() WHERE id = %s",
                uuid.UUID(job_id),
            )
            return await waiting

        [answer] = asyncio.run(scenario())
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"


def test_the_listener_reconnects_after_its_connection_drops(notified: Quiet) -> None:
    with httpx.Client(base_url=notified.server.url, timeout=60) as http:
        account = register(http)
        [job_id] = _queued_fits(http, account, 1)
        log = notified.server.process

        async def scenario() -> list[httpx.Response]:
            waiting = asyncio.create_task(_wait_on(notified.server.url, account, [job_id]))
            await asyncio.to_thread(notified.wait_for_waiters, 1)
            connected = log.log_text().count("job-ended listener connected")
            killed = notified.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name "
                "= 'tabpfn-api.api-listener' AND datname = current_database()"
            )
            assert killed, "no listener connection to drop"
            await asyncio.to_thread(
                _wait_for, lambda: log.log_text().count("job-ended listener connected") > connected
            )
            canceled = await asyncio.to_thread(
                http.post, f"/api/v1/jobs/{job_id}/cancel", headers=account.headers
            )
            assert canceled.status_code == 202
            return await waiting

        [answer] = asyncio.run(scenario())
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"
    assert "lost its connection" in notified.server.process.log_text()


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        time.sleep(0.1)


def test_one_user_holds_at_most_their_share_of_the_waits(rechecking: Quiet) -> None:
    """PREFER_WAIT_MAX_WAITERS_PER_USER is 2: Alice's third wait is answered at once, and
    Bob, another user, still waits."""
    url = rechecking.server.url
    with httpx.Client(base_url=url, timeout=60) as http:
        alice, bob = register(http), register(http)
        [alices_job] = _queued_fits(http, alice, 1)
        [bobs_job] = _queued_fits(http, bob, 1)

        async def scenario() -> tuple[httpx.Response, list[httpx.Response], httpx.Response]:
            alice_waits = asyncio.create_task(_wait_on(url, alice, [alices_job] * 2))
            await asyncio.to_thread(rechecking.wait_for_waiters, 2)
            async with httpx.AsyncClient(base_url=url, timeout=120) as other:
                refused = await other.get(
                    f"/api/v1/jobs/{alices_job}", headers={**alice.headers, "Prefer": "wait=45"}
                )
                bob_waits = asyncio.create_task(_wait_on(url, bob, [bobs_job]))
                await asyncio.to_thread(rechecking.wait_for_waiters, 3)
                for job_id, account in ((alices_job, alice), (bobs_job, bob)):
                    canceled = await other.post(
                        f"/api/v1/jobs/{job_id}/cancel", headers=account.headers
                    )
                    assert canceled.status_code == 202, canceled.text
            [bobs] = await bob_waits
            return refused, await alice_waits, bobs

        refused, alices, bobs = asyncio.run(scenario())
    assert refused.status_code == 200 and refused.json()["status"] == "queued"
    assert "preference-applied" not in refused.headers
    assert "Prefer" in refused.headers["vary"]  # the header changes the answer
    for held in [*alices, bobs]:
        assert held.status_code == 200 and held.json()["status"] == "canceled", held.text
        assert held.headers["preference-applied"] == "wait=45"


def _prefer_waits(quiet: Quiet, outcome: str) -> float:
    text = httpx.get(f"{quiet.server.url}/metrics", timeout=60).text
    found = re.findall(
        rf'^tabpfn_api_prefer_waits_total\{{[^}}]*outcome="{outcome}"[^}}]*\}} ([0-9.e+]+)$',
        text,
        re.M,
    )
    return sum(float(value) for value in found)


def test_a_client_that_goes_away_ends_its_wait(notified: Quiet) -> None:
    """A held request whose client disconnects stops waiting at once rather than holding
    its place (and a waiter of the process's cap) for the rest of its N seconds."""
    with httpx.Client(base_url=notified.server.url, timeout=60) as http:
        account = register(http)
        [job_id] = _queued_fits(http, account, 1)
        before = _prefer_waits(notified, "disconnected")

        async def scenario() -> None:
            waiting = asyncio.create_task(_wait_on(notified.server.url, account, [job_id]))
            await asyncio.to_thread(notified.wait_for_waiters, 1)
            waiting.cancel()  # closes the connection
            with contextlib.suppress(asyncio.CancelledError):
                await waiting

        asyncio.run(scenario())
        _wait_for(lambda: notified.waiters() == 0, timeout=20)  # its wait was for 45 s
        assert _prefer_waits(notified, "disconnected") == before + 1
        assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=account.headers).is_success


def test_a_waiting_upload_gives_back_its_slot(notified: Quiet) -> None:
    """One user may hold two upload slots; three uploads sent one after another, each then
    waiting for its job, are all held: a stored job gives its body and slot back before
    the wait."""
    url = notified.server.url
    with httpx.Client(base_url=url, timeout=60) as http:
        account = register(http)

        async def scenario() -> list[httpx.Response]:
            headers = {**account.headers, "Prefer": "wait=45"}
            uploads: list[asyncio.Task[httpx.Response]] = []
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                for held in range(1, 4):
                    uploads.append(
                        asyncio.create_task(
                            client.post(
                                "/api/v1/models/fit",
                                files={"file": ("d.csv", UPLOAD_CSV, "text/csv")},
                                data=UPLOAD_FORM,
                                headers=headers,
                            )
                        )
                    )
                    await asyncio.to_thread(
                        _wait_for,
                        lambda held=held: (
                            notified.waiters() >= held or any(t.done() for t in uploads)
                        ),
                    )
                    early = [task.result().text for task in uploads if task.done()]
                    assert early == [], early
                queued = await client.get(
                    "/api/v1/jobs", params={"status": "queued"}, headers=account.headers
                )
                for job in queued.json()["items"]:
                    await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=account.headers)
                return await asyncio.gather(*uploads)

        answers = asyncio.run(scenario())
    assert [answer.status_code for answer in answers] == [200] * 3
    assert {answer.json()["status"] for answer in answers} == {"canceled"}


def _raw_request(url: str, path: str, headers: dict[str, str], length: int) -> socket.socket:
    """A connection with a POST's head sent and none of its `length`-byte body."""
    address = httpx.URL(url)
    connection = socket.create_connection((address.host, address.port or 80), timeout=60)
    lines = [f"POST {path} HTTP/1.1", f"Host: {address.host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {length}", "", ""]
    connection.sendall("\r\n".join(lines).encode())
    return connection


def _raw_answer(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_slow_body_holds_no_database_connection(notified: Quiet) -> None:
    """The process admits one request at a time to its database (DB_POOL_SIZE 1). Two
    submissions send their heads and part of their bodies, then stall: other requests
    are still answered meanwhile; the one that finishes its body is accepted, and the one
    that never does is answered 408 after SMALL_BODY_READ_TIMEOUT_S."""
    url = notified.server.url
    body = json.dumps(_fit_body(20)).encode()
    with httpx.Client(base_url=url, timeout=60) as http:
        account = register(http)
        slow = _raw_request(url, "/api/v1/models/fit", account.headers, len(body))
        stalled = _raw_request(url, "/api/v1/models/fit", account.headers, len(body))
        with slow, stalled:
            slow.sendall(body[:10])
            stalled.sendall(body[:10])
            time.sleep(1)  # both authenticated and waiting for the rest of their bodies
            me = http.get("/api/v1/users/me", headers=account.headers)
            assert me.status_code == 200, me.text
            slow.sendall(body[10:])
            accepted = _raw_answer(slow)
            timed_out = _raw_answer(stalled)
        assert accepted.startswith(b"HTTP/1.1 202"), accepted[:300]
        assert timed_out.startswith(b"HTTP/1.1 408"), timed_out[:300]
        assert b"REQUEST_TIMEOUT" in timed_out
        job_id = json.loads(accepted.split(b"\r\n\r\n", 1)[1])["id"]
        assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=account.headers).is_success


def test_a_wait_with_a_body_over_its_cap_is_answered_413_at_once(
    settings: Settings, notified: Quiet
) -> None:
    """`GET /jobs/{id}` reads no body, so a body sent with it is first read by the wait's
    disconnect watch. Over the small-body cap, that is a 413 now, not after the 45 s wait
    (the client here gives up after 20 s). Declared by Content-Length, and streamed."""
    oversize = b"x" * (settings.MAX_SMALL_BODY_BYTES + 1)  # the quiet process's too

    def streamed() -> Iterator[bytes]:
        yield oversize

    with httpx.Client(base_url=notified.server.url, timeout=20) as http:
        account = register(http)
        [job_id] = _queued_fits(http, account, 1)
        headers = {**account.headers, "Prefer": "wait=45"}
        for content in (oversize, streamed()):
            answer = http.request("GET", f"/api/v1/jobs/{job_id}", content=content, headers=headers)
            assert answer.status_code == 413, answer.text
            assert answer.json()["code"] == "PAYLOAD_TOO_LARGE"
        _wait_for(lambda: notified.waiters() == 0, timeout=10)
        assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=account.headers).is_success
