"""An ASGI wrapper that measures how much of a request body the app reads.

The TestClient hands an app the whole body in one message, so reading any of it reads all
of it. `MeteredBody` stands where the server would: it gives the app the body in small
pieces, one per `receive()`, as a socket would, and counts the bytes the app took.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class MeteredBody:
    """Wraps `app`; after each request, `pulled` is the number of body bytes it read."""

    def __init__(self, app: ASGIApp, chunk: int = 1024) -> None:
        self.app = app
        self.chunk = chunk
        self.pulled = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.pulled = 0
        pending = bytearray()
        loaded = finished = False

        async def metered() -> Message:
            nonlocal loaded, finished
            if not loaded:
                loaded = True
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return message
                    pending.extend(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
            if finished:  # the body has been read: what comes now is the disconnect
                return await receive()
            piece = bytes(pending[: self.chunk])
            del pending[: self.chunk]
            self.pulled += len(piece)
            finished = not pending
            return {"type": "http.request", "body": piece, "more_body": not finished}

        await self.app(scope, metered, send)
