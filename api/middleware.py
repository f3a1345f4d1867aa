"""Pure ASGI middleware: request id, body-size cap and one access log line per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PayloadTooLarge
from shared.logs import log_context

logger = logging.getLogger("api.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
RouteObserver = Callable[[str, str, int, float], None]
# Metric labels must stay bounded: any other method a client invents counts as "other".
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _internal_error_body(request_id: str) -> bytes:
    return json.dumps(
        {
            "code": "INTERNAL_ERROR",
            "message": "An unexpected error occurred; quote request id "
            f"{request_id} when reporting it.",
        }
    ).encode()


def _json_start(status: int, body: bytes) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), or `unmatched`."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


# Where the middleware leaves a request's `_Exchange`, for `allow_upload()` to find it.
_EXCHANGE_KEY = "tabpfn_api.exchange"


class _Exchange:
    """One request's state as the middleware sees it: its id, status and body size.

    `cap` starts at the small-body cap; `allow_upload()` raises it to MAX_UPLOAD_BYTES."""

    def __init__(
        self,
        receive: Receive,
        send: Send,
        request_id: str,
        *,
        declared: int | None,
        cap: int,
        upload_cap: int,
    ) -> None:
        self._receive = receive
        self._send = send
        self.request_id = request_id
        self.declared = declared
        self.cap = cap
        self.upload_cap = upload_cap
        self.status = 500
        self.started = False
        self.received = 0
        self.overflowed = False

    async def receive(self) -> Message:
        # A declared length over the cap is refused before a byte of it is read.
        if self.declared is not None and self.declared > self.cap:
            self._overflow()
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.cap:
                self._overflow()
        return message

    def _overflow(self) -> NoReturn:
        self.overflowed = True
        raise PayloadTooLarge(f"the request body is over its limit of {self.cap} bytes")

    def too_large(self) -> bytes:
        """The 413 answer for the cap this request had when it overflowed."""
        if self.cap >= self.upload_cap:
            message = (
                f"The request body is larger than the limit of {self.cap} bytes "
                "(MAX_UPLOAD_BYTES); send fewer rows per request."
            )
        else:
            message = (
                f"The request body is larger than the limit of {self.cap} bytes for this "
                "endpoint (MAX_SMALL_BODY_BYTES); it takes a small JSON object."
            )
        return json.dumps({"code": "PAYLOAD_TOO_LARGE", "message": message}).encode()

    async def send(self, message: Message) -> None:
        """Pass the app's messages on, with the request id; nothing after an overflow."""
        if not self.overflowed:
            await self.send_now(message)

    async def send_now(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
            message["headers"] = [
                *message.get("headers", []),
                (b"x-request-id", self.request_id.encode()),
            ]
        await self._send(message)

    async def answer(self, status: int, body: bytes) -> None:
        await self.send_now(_json_start(status, body))
        await self._send({"type": "http.response.body", "body": body})


def allow_upload(scope: Scope) -> None:
    """Let this request's body grow to MAX_UPLOAD_BYTES.

    Only the job-creating routes call this, and only once the caller is authenticated:
    every other body stops at the small cap, so no request can make the API hold more than
    a small body before it knows who is asking."""
    exchange = scope.get(_EXCHANGE_KEY)
    if isinstance(exchange, _Exchange):
        exchange.cap = exchange.upload_cap


class RequestContextMiddleware:
    """Give every request an id (honouring a sane `X-Request-ID`), log it, cap its body.

    Every body is capped at `small_body_bytes` unless its route calls `allow_upload()`
    (then MAX_UPLOAD_BYTES). A body over its cap gets 413 whichever route was reading it:
    when the route first reads it if its Content-Length says so (at once if it is over
    MAX_UPLOAD_BYTES), else as soon as the stream passes the cap (what the route then
    answers is dropped, since some parsers turn any read error into a 400). A route that
    never reads its body reads none of it: the server stops taking it off the socket."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        small_body_bytes: int,
        observer: RouteObserver | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.small_body_bytes = min(small_body_bytes, max_body_bytes)
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else None
        declared = _header(scope, b"content-length")
        exchange = _Exchange(
            receive,
            send,
            request_id or uuid.uuid4().hex,
            declared=int(declared) if declared is not None and declared.isdigit() else None,
            cap=self.small_body_bytes,
            upload_cap=self.max_body_bytes,
        )
        scope[_EXCHANGE_KEY] = exchange
        started = time.perf_counter()
        with log_context(request_id=exchange.request_id):
            try:
                await self._serve(scope, exchange)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                logger.info(
                    "%s %s %s %.1fms", scope["method"], route, exchange.status, elapsed * 1000
                )
                if self.observer is not None:
                    method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
                    self.observer(method, route, exchange.status, elapsed)

    async def _serve(self, scope: Scope, exchange: _Exchange) -> None:
        if exchange.declared is not None and exchange.declared > self.max_body_bytes:
            exchange.cap = exchange.upload_cap  # over every cap: say the largest one
            await exchange.answer(413, exchange.too_large())
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as error:
            if exchange.started:
                raise
            if exchange.overflowed:
                await exchange.answer(413, exchange.too_large())
                return
            # Rendered here, inside the request's log context, so the answer and the log
            # line carry the request id the user can quote.
            logger.exception("unhandled error: %s", type(error).__name__)
            await exchange.answer(500, _internal_error_body(exchange.request_id))
            return
        if exchange.overflowed and not exchange.started:
            await exchange.answer(413, exchange.too_large())
