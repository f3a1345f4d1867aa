"""Pure ASGI middleware: request id, body-size cap and one access log line per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PayloadTooLarge
from shared.logs import log_context

logger = logging.getLogger("api.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
RouteObserver = Callable[[str, str, int, float], None]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _internal_error_body(request_id: str) -> Message:
    body = json.dumps(
        {
            "code": "INTERNAL_ERROR",
            "message": "An unexpected error occurred; quote request id "
            f"{request_id} when reporting it.",
        }
    ).encode()
    return {"type": "http.response.body", "body": body}


def _internal_error_start(request_id: str) -> Message:
    body = _internal_error_body(request_id)["body"]
    return {
        "type": "http.response.start",
        "status": 500,
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


class RequestContextMiddleware:
    """Give every request an id (honouring a sane `X-Request-ID`), log it, cap its body."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, observer: RouteObserver | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        status = 500
        response_started = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, self._capped(scope, receive), send_with_id)
            except Exception as error:
                # Rendered here, inside the request's log context, so the answer and the
                # log line carry the request id the user can quote.
                logger.exception("unhandled error: %s", type(error).__name__)
                if response_started:
                    raise
                await send_with_id(_internal_error_start(request_id))
                await send_with_id(_internal_error_body(request_id))
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                logger.info("%s %s %s %.1fms", scope["method"], route, status, elapsed * 1000)
                if self.observer is not None:
                    self.observer(scope["method"], route, status, elapsed)

    def _capped(self, scope: Scope, receive: Receive) -> Receive:
        """Refuse a body over the cap: by Content-Length at once, else while it streams in."""
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        too_large = PayloadTooLarge(
            f"The request body is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES); "
            "send fewer rows per request."
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:

            async def refuse() -> Message:
                raise too_large

            return refuse
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        return counting_receive
