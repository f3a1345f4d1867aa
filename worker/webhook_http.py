"""One webhook POST under a single wall-clock deadline, reading no more than the status line.

httpx's timeouts apply to each read and each write, so a receiver that trickles its answer a
byte at a time holds a delivery for as long as it likes, and a response is read whole. Here
every step (connect, TLS handshake, sending, reading the status line) runs against one
`Deadline` (the caller's DNS lookup runs against it too), every socket operation gets only
the time left, and at most MAX_ANSWER_BYTES of the answer are read before the connection is
closed: the status code is all a delivery needs.

The request goes to the addresses the URL check approved, in turn. An address that refuses
the connection or its TLS handshake is skipped (each gets a fair share of the time left);
once the request has been sent, no other address is tried, so a receiver never gets one
attempt twice. The TLS certificate is checked against the URL's host name, as httpx would.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import time
from dataclasses import dataclass

import httpx

from shared.webhooks.urls import CheckedUrl

MAX_ANSWER_BYTES = 4096
_SEND_CHUNK = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")


class DeadlinePassed(Exception):
    """The attempt's time ran out."""


class InvalidAnswer(Exception):
    """The receiver answered something that is not an HTTP/1.x status line."""


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock that a whole attempt must finish by."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left; DeadlinePassed when there are none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlinePassed
        return left


def post(checked: CheckedUrl, headers: dict[str, str], body: bytes, deadline: Deadline) -> int:
    """POST `body` to the first checked address that takes the connection; its status code.

    Raises DeadlinePassed, InvalidAnswer, or the OSError of the last address tried.
    """
    request = _request(checked, headers, body)
    last_error: OSError | None = None
    for index, address in enumerate(checked.addresses):
        try:
            connection = _connect(checked, address, deadline, len(checked.addresses) - index)
        except OSError as error:  # refused, unreachable, timed out or TLS failed: next one
            last_error = error
            continue
        try:
            _send(connection, request, deadline)
            return _read_status(connection, deadline)
        except TimeoutError:
            raise DeadlinePassed from None
        finally:
            connection.close()
    deadline.remaining()  # the time ran out while connecting: say so
    raise last_error or OSError("no address to connect to")


def _request(checked: CheckedUrl, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"POST {checked.target} HTTP/1.1",
        f"host: {checked.host_header}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"content-length: {len(body)}",
        "connection: close",
    ]
    # Every part was checked: the target and host by the URL check (no spaces or control
    # characters), the header values are ours.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _connect(checked: CheckedUrl, address: str, deadline: Deadline, untried: int) -> socket.socket:
    """A connection to `address` (TLS for https), within a fair share of the time left."""
    sock = socket.create_connection((address, checked.port), timeout=deadline.remaining() / untried)
    try:
        if checked.scheme == "https":
            # The handshake as a whole is bounded by the socket timeout (CPython's SSL calls
            # count one deadline across their retries), a fair share of what is left: a
            # stalled handshake must leave the other addresses their turn.
            sock.settimeout(deadline.remaining() / untried)
            return _tls_context().wrap_socket(sock, server_hostname=checked.host)
    except BaseException:
        sock.close()
        raise
    return sock


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi's roots), built once per process."""
    return httpx.create_ssl_context(trust_env=False)


def _send(connection: socket.socket, request: bytes, deadline: Deadline) -> None:
    """`sendall`, but each send waits only for the time left (sendall's timeout is per call
    on TLS sockets)."""
    view = memoryview(request)
    while view:
        connection.settimeout(deadline.remaining())
        sent = connection.send(view[:_SEND_CHUNK])
        view = view[sent:]


def _read_status(connection: socket.socket, deadline: Deadline) -> int:
    """The final status code, reading at most MAX_ANSWER_BYTES; the rest is never read."""
    answer = b""
    received = 0
    while True:
        code, answer = _final_status(answer)
        if code is not None:
            return code
        if received >= MAX_ANSWER_BYTES:
            raise InvalidAnswer(f"no status line within the first {MAX_ANSWER_BYTES} bytes")
        connection.settimeout(deadline.remaining())
        chunk = connection.recv(MAX_ANSWER_BYTES - received)
        if not chunk:
            raise InvalidAnswer("the connection was closed before a status line")
        received += len(chunk)
        answer += chunk


def _final_status(answer: bytes) -> tuple[int | None, bytes]:
    """The final status code once its line has arrived, skipping informational (1xx) answers
    (blank lines before a status line are tolerated, and a head may end with bare LFs);
    returns what is left to parse."""
    while True:
        answer = answer.lstrip(b"\r\n")
        line_end = answer.find(b"\n")
        if line_end < 0:
            return None, answer
        match = _STATUS_LINE.fullmatch(answer[: line_end + 1])
        if match is None:
            raise InvalidAnswer("the answer is not HTTP/1.x")
        code = int(match.group(1))
        if code >= 200:
            return code, answer
        if code == 101:  # switching protocols: no HTTP answer will follow
            raise InvalidAnswer("the receiver switched protocols")
        head_end = _end_of_head(answer)
        if head_end < 0:
            return None, answer
        answer = answer[head_end:]


def _end_of_head(answer: bytes) -> int:
    """Where an answer's head ends (after its blank line), or -1 while it has not."""
    ends = [
        found + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (found := answer.find(mark)) >= 0
    ]
    return min(ends) if ends else -1
