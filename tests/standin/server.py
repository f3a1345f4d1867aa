"""HTTP/1.1 keep-alive server (stdlib, one thread per connection) and the in-process handle."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from .config import ConfigStore, StandinConfig
from .context import Context
from .faults import Faults
from .routes import dispatch
from .state import Store
from .wire import Request, Response, error, token_id

MAX_BODY_BYTES = 8 * 1024**3


def _bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None when absent or empty."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tabpfn-standin/0.1"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 300.0
    # Headers and body leave in two writes; with Nagle's algorithm the body then waits for
    # the client's delayed ACK of the headers (40 ms on Linux), a stall no real service has.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._standin().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._standin().untrack(self.connection)

    def _standin(self) -> StandinServer:
        assert isinstance(self.server, StandinServer)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib log: an access line is written by `_serve` when enabled."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._write(error(400, "Malformed request body"))
            return
        path, _, query = self.path.partition("?")
        auth = self.headers.get("Authorization")
        token = _bearer(auth)
        # A non-bearer Authorization header still gets an id: the log shows it reached us.
        credential = token or auth or None
        req = Request(
            method=self.command,
            path=path,
            query=dict(parse_qsl(query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            host_url=f"http://{self.headers.get('Host') or self._standin().authority}",
            token=token,
            token_id=token_id(credential) if credential else None,
        )
        response = dispatch(self._standin().ctx, req)
        if self._standin().ctx.access_log:
            status = "dropped" if response.drop else str(response.status)
            sys.stderr.write(f"standin: {self.command} {path} {status}\n")
        if response.drop:
            # Close without a byte of response: the client sees RemoteProtocolError.
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        try:
            data = response.encode()
        except ValueError:  # NaN/Infinity in a body: answer 500 rather than invalid JSON
            response = error(500, "Response is not valid JSON", "INTERNAL")
            data = response.encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # The stdlib dispatches on do_<METHOD>; every method goes through the same router.
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815


class StandinServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so `stop()` can close them promptly."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, host: str, port: int, ctx: Context) -> None:
        self.ctx = ctx
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn(): a reverse DNS lookup can stall without a network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def authority(self) -> str:
        """host:port that clients reach; a wildcard bind is advertised as loopback."""
        host = self.server_name if self.server_name not in ("0.0.0.0", "") else "127.0.0.1"
        return f"{host}:{self.server_port}"

    def track(self, conn: socket.socket) -> None:
        """Remember an open connection and the thread serving it."""
        with self._conns_lock:
            self._conns[conn] = threading.current_thread()

    def untrack(self, conn: socket.socket) -> None:
        """Forget a connection once its handler is done."""
        with self._conns_lock:
            self._conns.pop(conn, None)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut down open keep-alive connections and wait for their threads to end."""
        with self._conns_lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Peers hanging up is routine; anything else gets one line, never a request dump."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            sys.stderr.write(f"standin: connection error: {type(exc).__name__}\n")


class StandinHandle:
    """A running stand-in: its base URL, direct access to its state, and `stop()`."""

    def __init__(self, server: StandinServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.ctx = server.ctx
        self.host = server.server_name
        self.port = server.server_port
        self.url = f"http://{server.authority}"

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log, as GET /_calls returns it."""
        return self.ctx.store.calls(since)

    def fits(self) -> list[dict[str, Any]]:
        """The fit log, as GET /_fits returns it."""
        return self.ctx.store.fits()

    def predicts(self, since: int = 0) -> list[dict[str, Any]]:
        """The predict log, as GET /_predicts returns it."""
        return self.ctx.store.predict_log.entries(since)

    def clear_predicts(self) -> None:
        """Empty the predict log, as DELETE /_predicts does."""
        self.ctx.store.predict_log.clear()

    def forget_fits(self, token_id: str | None = None) -> list[str]:
        """Lose the fitted sets (all, or one token id's), as DELETE /_admin/fits does."""
        return self.ctx.store.forget_fits(token_id)

    def clear_calls(self) -> None:
        """Empty the request log."""
        self.ctx.store.clear_calls()

    def configure(self, **update: Any) -> dict[str, Any]:
        """Partially update the runtime config, as POST /_admin/config does."""
        return self.ctx.config.update(update).to_json()

    def reset_config(self) -> dict[str, Any]:
        """Restore the startup config, as DELETE /_admin/config does."""
        return self.ctx.config.reset().to_json()

    def reset_state(self) -> None:
        """Forget all datasets, usage, flaky counters and logs, as DELETE /_admin/state does."""
        self.ctx.store.reset()
        self.ctx.faults.reset()

    def stop(self) -> None:
        """Stop serving, close open connections and release the port."""
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> StandinHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    config: StandinConfig | None = None,
    *,
    access_log: bool = False,
) -> StandinServer:
    """Bind a stand-in server (port 0 picks a free port) without starting to serve."""
    ctx = Context(ConfigStore(config or StandinConfig()), Store(), Faults(), access_log)
    return StandinServer(host, port, ctx)


def start_standin(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    access_log: bool = False,
    **config: Any,
) -> StandinHandle:
    """Serve a stand-in in a background thread; `config` takes the POST /_admin/config fields."""
    server = make_server(host, port, StandinConfig().updated(config), access_log=access_log)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = "standin-server"
    thread.start()
    return StandinHandle(server, thread)
