"""Webhook receivers for tests: one that records every request and answers from a script
(on IPv4 or IPv6 loopback), and a raw one that answers slowly or endlessly at the socket level
and records how much of its answer went out."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers the n-th request with `script[n]` (then `default`); may stall first."""

    url: str
    script: list[int] = field(default_factory=list)
    default: int = 200
    stall_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            index = len(self.requests)
        return self.script[index] if index < len(self.script) else self.default

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        raise TimeoutError(f"the receiver got {len(self.requests)} request(s), not {count}")


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def running_receiver(host: str = "127.0.0.1", **options: object) -> Iterator[Receiver]:
    """A receiver on a free port of `host` (127.0.0.1, or ::1), stopped afterwards."""
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert receiver is not None
            receiver.started.set()
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.next_status()
            if receiver.stall_s:
                time.sleep(receiver.stall_s)
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), body, status)
                )
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = (_IPv6Server if ":" in host else ThreadingHTTPServer)((host, 0), Handler)
    url_host = f"[{host}]" if ":" in host else host
    receiver = Receiver(url=f"http://{url_host}:{server.server_address[1]}/hook", **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class RawConnection:
    """What one connection to a RawReceiver got: bytes of the answer sent, and whether all."""

    sent: int = 0
    sent_all: bool = False
    ended: threading.Event = field(default_factory=threading.Event)


@dataclass
class RawReceiver:
    url: str
    connections: list[RawConnection] = field(default_factory=list)

    def wait_for_connection(self, index: int = 0, timeout: float = 30) -> RawConnection:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.connections) > index:
                return self.connections[index]
            time.sleep(0.05)
        raise TimeoutError(f"the raw receiver got {len(self.connections)} connection(s)")


@contextmanager
def raw_receiver(
    answer: Callable[[], Iterator[bytes]], interval_s: float = 0.0
) -> Iterator[RawReceiver]:
    """A TCP server on 127.0.0.1 that reads each request whole, then sends the pieces of
    `answer()` `interval_s` apart, until the client goes away or the test ends."""
    stopping = threading.Event()
    receiver: RawReceiver | None = None

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            assert receiver is not None
            connection = RawConnection()
            receiver.connections.append(connection)
            try:
                _read_request(self.request)
                for piece in answer():
                    if stopping.wait(interval_s):
                        return
                    self.request.sendall(piece)
                    connection.sent += len(piece)
                connection.sent_all = True
            except OSError:
                pass  # the client closed the connection before the answer was whole
            finally:
                connection.ended.set()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = RawReceiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


def _read_request(sock: socket.socket) -> None:
    """Read one request's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed before its request was whole")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed before its request was whole")
        body += chunk
