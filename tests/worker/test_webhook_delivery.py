"""One webhook attempt (worker.webhook_delivery.attempt, what the webhooks.deliver task runs),
run in this process against a database no worker watches: one deadline for the whole attempt,
a bounded read of the answer, every error a recorded failed attempt with the next one
scheduled, IPv6 Host headers, every checked address tried, and signatures for both secrets
while a rotation overlaps."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.main import create_app
from shared.config import Settings
from shared.db import Database
from shared.models import DeliveryStatus, JobStatus, User, WebhookDelivery
from tests.support import secrets as secret_registry
from tests.support.builders import register
from tests.support.receiver import raw_receiver, running_receiver
from tests.support.rows import add_jobs, add_user, db, unit_db
from tests.support.settings import make_settings
from worker import webhook_http
from worker.runtime import WorkerRuntime, init_process, shutdown_process
from worker.webhook_delivery import attempt

__all__ = ["db", "unit_db"]  # fixtures
TIMEOUT_S = 2.0
STATUS_AND_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@contextmanager
def runtime_for(db: Database, settings: Settings, **overrides: Any) -> Iterator[WorkerRuntime]:
    """This process as a worker child on `db` (WEBHOOK_TIMEOUT_S=2 unless overridden)."""
    values: dict[str, Any] = {
        "DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "REDIS_URL": settings.REDIS_URL,
        "WEBHOOK_TIMEOUT_S": TIMEOUT_S,
    }
    built = init_process(make_settings(**{**values, **overrides}))
    try:
        yield built
    finally:
        shutdown_process()


@pytest.fixture
def runtime(db: Database, settings: Settings) -> Iterator[WorkerRuntime]:
    with runtime_for(db, settings) as built:
        yield built


def pending_delivery(
    runtime: WorkerRuntime, url: str, user_id: uuid.UUID | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    """A succeeded job with its first attempt pending; (delivery id, job id)."""
    now = datetime.now(UTC)
    with runtime.db.session_scope() as session:
        if user_id is None:
            secret = "whsec_" + "A" * 32
            user = add_user(session, webhook_secret_encrypted=runtime.box.encrypt(secret))
        else:
            user = session.get_one(User, user_id)
        [job_id] = add_jobs(
            session, user, 1, status=JobStatus.SUCCEEDED, callback_url=url, finished_at=now
        )
        delivery = WebhookDelivery(
            job_id=job_id,
            event="job.succeeded",
            message_id=f"msg_{uuid.uuid4().hex}",
            attempt=1,
            status=DeliveryStatus.PENDING,
            url=url,
            body={"type": "job.succeeded", "timestamp": now.isoformat(), "data": {}},
            next_attempt_at=now,
            published_at=now,
        )
        session.add(delivery)
        session.flush()
        return delivery.id, job_id


def attempts(runtime: WorkerRuntime, job_id: uuid.UUID) -> list[WebhookDelivery]:
    with runtime.db.session_scope() as session:
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.attempt)
        ).all()
        session.expunge_all()
    return list(rows)


def assert_failed_and_rescheduled(runtime: WorkerRuntime, job_id: uuid.UUID) -> str:
    """The first attempt failed, the second is pending on the schedule; the first's error."""
    first, second = attempts(runtime, job_id)
    assert (first.attempt, first.status, first.response_code) == (1, DeliveryStatus.FAILED, None)
    assert (second.attempt, second.status) == (2, DeliveryStatus.PENDING)
    assert second.next_attempt_at is not None and second.next_attempt_at > first.created_at
    assert first.error is not None
    return first.error


def test_a_trickling_answer_fails_at_the_deadline_and_is_retried(runtime: WorkerRuntime) -> None:
    """One byte every 0.5 s: the status line alone takes 8 s, the answer 19 s; each read
    is quick, but the attempt's one deadline (2 s) ends it."""

    def trickle() -> Iterator[bytes]:
        for byte in STATUS_AND_HEAD:
            yield bytes([byte])

    with raw_receiver(trickle, interval_s=0.5) as receiver:
        delivery_id, job_id = pending_delivery(runtime, receiver.url)
        attempt(delivery_id)
        # Recorded while the receiver was still trickling: not only after it finished.
        assert not receiver.wait_for_connection().sent_all
    assert assert_failed_and_rescheduled(runtime, job_id) == "no answer within 2 s"


def test_a_huge_answer_is_not_read(runtime: WorkerRuntime) -> None:
    """A 2xx status line counts at once; the 128 MiB body behind it is never read."""
    size = 128 * 1024 * 1024
    chunk = bytes(64 * 1024)

    def flood() -> Iterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
        for _ in range(size // len(chunk)):
            yield chunk

    with raw_receiver(flood) as receiver:
        delivery_id, job_id = pending_delivery(runtime, receiver.url)
        attempt(delivery_id)
        connection = receiver.wait_for_connection()
        assert connection.ended.wait(60)
    assert not connection.sent_all and connection.sent < size
    [only] = attempts(runtime, job_id)
    assert (only.status, only.response_code) == (DeliveryStatus.DELIVERED, 200)


@pytest.mark.parametrize(
    "url", ["http://[::1/", "http://127.0.0.1:9/ho\nok", "http://127.0.0.1:99999/hook"]
)
def test_a_url_that_cannot_be_requested_is_a_failed_attempt(
    runtime: WorkerRuntime, url: str
) -> None:
    """Stored before the submission check was strict: refused, recorded, retried on schedule."""
    delivery_id, job_id = pending_delivery(runtime, url)
    attempt(delivery_id)
    assert assert_failed_and_rescheduled(runtime, job_id).startswith("refused: ")


def test_an_unexpected_error_is_a_failed_attempt(runtime: WorkerRuntime) -> None:
    """Here the user's webhook secret cannot be decrypted: the attempt still ends recorded."""
    delivery_id, job_id = pending_delivery(runtime, "http://127.0.0.1:9/hook")
    with runtime.db.session_scope() as session:
        user = session.scalars(select(User)).one()
        user.webhook_secret_encrypted = "not-decryptable"
    attempt(delivery_id)
    error = assert_failed_and_rescheduled(runtime, job_id)
    assert error == "internal error (DecryptionFailed)"


def test_an_ipv6_host_is_bracketed_in_the_host_header(runtime: WorkerRuntime) -> None:
    with running_receiver(host="::1") as receiver:
        delivery_id, job_id = pending_delivery(runtime, receiver.url)
        attempt(delivery_id)
        [request] = receiver.wait_for(1)
    port = receiver.url.split("]:")[1].split("/")[0]
    assert request.headers["host"] == f"[::1]:{port}"
    assert attempts(runtime, job_id)[0].status is DeliveryStatus.DELIVERED


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that no public root signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_an_untrusted_certificate_is_a_failed_attempt(
    runtime: WorkerRuntime, tmp_path: Path
) -> None:
    """https goes through TLS with the certificate checked (here: signed by no known root)."""
    context = self_signed_tls(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with connection, contextlib.suppress(OSError):
                context.wrap_socket(connection, server_side=True).close()

        threading.Thread(target=serve, daemon=True).start()
        port = listener.getsockname()[1]
        delivery_id, job_id = pending_delivery(runtime, f"https://127.0.0.1:{port}/hook")
        attempt(delivery_id)
    error = assert_failed_and_rescheduled(runtime, job_id)
    assert error == "connection failed (SSLCertVerificationError)"


def test_each_checked_address_is_tried_in_turn() -> None:
    """The receiver listens on 127.0.0.1 only: ::1 refuses, and the POST goes to the next."""
    from shared.webhooks.urls import check_callback_url

    with running_receiver() as receiver:
        checked = check_callback_url(receiver.url, allow_private=True)
        both = type(checked)(**{**checked.__dict__, "addresses": ("::1", "127.0.0.1")})
        code = webhook_http.post(both, {}, b"{}", webhook_http.Deadline.after(10))
        assert code == 200 and len(receiver.wait_for(1)) == 1


def test_both_secrets_sign_until_the_rotation_overlap_ends(
    db: Database, settings: Settings
) -> None:
    """A receiver holding the old secret and one holding the new both verify a delivery made
    after `POST /auth/webhook-secret`; once the overlap ended, only the new one does."""
    app = create_app(
        make_settings(
            DATABASE_URL=db.engine.url.render_as_string(hide_password=False),
            REDIS_URL=settings.REDIS_URL,
            TABPFN_API_URL=settings.TABPFN_API_URL,
        )
    )
    try:
        client = TestClient(app)
        account = register(client)
        rotated = client.post("/api/v1/auth/webhook-secret", headers=account.headers)
        assert rotated.status_code == 201
        new = secret_registry.remember(rotated.json()["webhook_secret"], "webhook secret")
    finally:
        app.state.context.close()
    old = account.webhook_secret
    user_id = uuid.UUID(account.user_id)

    with running_receiver() as receiver:
        with runtime_for(db, settings, WEBHOOK_SECRET_OVERLAP_S=3600) as runtime:
            attempt(pending_delivery(runtime, receiver.url, user_id)[0])
        during = receiver.wait_for(1)[0]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):
            assert Webhook(secret).verify(during.body, during.headers)["type"] == "job.succeeded"

        with runtime_for(db, settings, WEBHOOK_SECRET_OVERLAP_S=1) as runtime:
            with runtime.db.session_scope() as session:
                rotated_at = session.get_one(User, user_id).webhook_secret_rotated_at
            assert rotated_at is not None
            while datetime.now(UTC) <= rotated_at + timedelta(seconds=1.2):
                time.sleep(0.1)  # until the short overlap has ended
            attempt(pending_delivery(runtime, receiver.url, user_id)[0])
        after = receiver.wait_for(2)[1]
        assert Webhook(new).verify(after.body, after.headers)["type"] == "job.succeeded"
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(after.body, after.headers)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b"HTTP/1.1 204 No Content\r\n", 204),
        (b"\r\nHTTP/1.1 200 OK\r\n", 200),  # a blank line before the status line
        (b"HTTP/1.1 100 Continue\n\nHTTP/1.1 202 Accepted\n", 202),  # bare LFs
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 410 Gone\r\n", 410),
    ],
)
def test_the_status_line_is_read_as_receivers_send_it(answer: bytes, code: int) -> None:
    assert webhook_http._final_status(answer)[0] == code


def test_switching_protocols_is_not_an_answer() -> None:
    with pytest.raises(webhook_http.InvalidAnswer):
        webhook_http._final_status(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
