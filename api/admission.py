"""Admission to the database phase of a request: never more at once than the pool serves.

A request's session keeps its pooled connection across the thread-pool hops of its
dependencies and route (the API-key check, the ownership check, the route: one checkout
per request, `api/auth.py`). Without a bound, a burst of more requests than the thread
pool has threads could deadlock for the pool's timeout: every thread blocked waiting for a
connection, every connection held by a request waiting for a thread. Requests that held
their answer with `Prefer: wait` and ran out of time together come back together, so the
burst is not hypothetical.

So a request takes a ticket before its session is made (`api.deps.get_session`) and
gives it back after the session is closed; at most `capacity` tickets exist, the engine's
most connections less one (kept for `/health` and `/metrics`, which bypass admission), so an
admitted request always gets its connection. A request gives its ticket back, and its
connection, whenever it waits on something else: while its body arrives (`api.body`), while
it waits for its job (`api.prefer`). A request that finds no ticket within
ADMISSION_WAIT_S gets 503 rather than waiting without end. Waiting for a
ticket is an asyncio future, holding no thread and no connection. `api.prefer.hold()`
gives the ticket back while it waits for a job and takes one again to re-read it.

Tickets are handed over with `call_soon_threadsafe`, so any event loop works (uvicorn's,
and the test client's, which makes a loop per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque


class Admission:
    """At most `capacity` requests in their database phase; the others wait, in order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._lock = threading.Lock()
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, timeout_s: float | None = None) -> None:
        """A ticket, waiting in order; TimeoutError after `timeout_s` (None: no limit)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiting.append((loop, future))
        try:
            async with asyncio.timeout(timeout_s):
                await future
        except (asyncio.CancelledError, TimeoutError):
            with self._lock:
                queued = (loop, future) in self._waiting
                if queued:
                    self._waiting.remove((loop, future))
            if not queued and future.done() and not future.cancelled():
                self.release()  # granted just as it was canceled: pass the ticket on
            raise

    def release(self) -> None:
        """Give a ticket back: to the longest waiter, or to the pool of free ones."""
        with self._lock:
            while self._waiting:
                loop, future = self._waiting.popleft()
                with contextlib.suppress(RuntimeError):  # that request's loop has closed
                    loop.call_soon_threadsafe(self._grant, future)
                    return
            self._free += 1

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.done():  # canceled meanwhile: the next waiter gets the ticket
            self.release()
        else:
            future.set_result(None)


class Ticket:
    """One request's admission, given back at most once however often `release` is called."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.held = False

    async def take(self, timeout_s: float | None = None) -> None:
        if not self.held:
            await self.admission.acquire(timeout_s)
            self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.admission.release()
