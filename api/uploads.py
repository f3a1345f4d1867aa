"""Upload slots: at most UPLOAD_SLOTS large request bodies read and decoded at once per process.

A large body (a file upload, a body declared over `LARGE_BODY_BYTES`, or one of unknown
length) takes a slot before its first byte is read and keeps it until the route has decoded
and stored it (`RawBody.release`; at the latest, until the response is sent, so a request
that then waits with `Prefer: wait` holds no slot). So N concurrent uploads cost at most
UPLOAD_SLOTS bodies (and their decoded tables) of memory, not N. A request that finds every
slot taken waits, in arrival order, up to UPLOAD_SLOT_WAIT_S: a burst of a client's
parallel uploads mostly gets through, and the wait costs next to nothing, since a body
nobody reads stays on the socket (the server stops reading a connection past 64 KiB); it
waits holding no database connection (`api.body`). After that it gets 503 UPLOADS_BUSY
with Retry-After: 503 rather than 429, because the server is busy, not this client over a
rate.

One user holds at most UPLOAD_SLOTS_PER_USER slots of a process (429 TOO_MANY_UPLOADS past
that, at once): a user trickling several slow uploads cannot take every slot. A body must
arrive within UPLOAD_READ_TIMEOUT_S of taking its slot (408 REQUEST_TIMEOUT otherwise), so
no slot is held for longer than that by a body that never ends.

Thread-safe and not bound to one event loop: a slot freed on one thread or loop is handed
straight to the oldest waiter, wherever it waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from shared.errors import ServiceUnavailable, TooManyUploads

# JSON bodies up to this size are parsed without a slot: JSON grows a few times in memory,
# not by orders of magnitude, and small submissions should not queue behind uploads.
LARGE_BODY_BYTES = 1024 * 1024
BUSY_RETRY_AFTER_S = 5


class _Waiter:
    """One request waiting for a slot; its future is set when a slot is handed to it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def grant(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class UploadSlots:
    """A counting semaphore with a bounded wait, usable from any thread or event loop."""

    def __init__(self, size: int, wait_s: float, *, per_owner: int | None = None) -> None:
        self.size = size
        self.wait_s = wait_s
        self.per_owner = per_owner or size
        self._lock = threading.Lock()
        self._free = size
        self._waiters: deque[_Waiter] = deque()
        self._held: dict[str, int] = {}

    @property
    def in_use(self) -> int:
        with self._lock:
            return self.size - self._free

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    async def acquire(self, timeout_s: float) -> bool:
        """Take a slot, waiting at most `timeout_s`; False when none came free in time."""
        with self._lock:
            if self._free > 0 and not self._waiters:  # no overtaking those who wait
                self._free -= 1
                return True
            waiter = _Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
        try:
            await asyncio.wait((waiter.future,), timeout=timeout_s)
        except BaseException:  # canceled (the client went away): give back what came
            if not self._withdraw(waiter):
                self.release()
            raise
        return not self._withdraw(waiter)

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Stop waiting: True if the waiter was still in line (it holds no slot), False if
        a slot was handed to it meanwhile (it holds one)."""
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return True
            return False

    def release(self) -> None:
        """Free a slot: straight to the oldest waiter if there is one."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                try:
                    waiter.loop.call_soon_threadsafe(waiter.grant)
                    return
                except RuntimeError:  # its loop is closed: nobody is waiting there any more
                    continue
            self._free += 1

    def _count(self, owner: str) -> bool:
        """Count one more slot for `owner`; False when it already holds its share."""
        with self._lock:
            held = self._held.get(owner, 0)
            if held >= self.per_owner:
                return False
            self._held[owner] = held + 1
            return True

    def _uncount(self, owner: str) -> None:
        with self._lock:
            held = self._held.get(owner, 0) - 1
            if held > 0:
                self._held[owner] = held
            else:
                self._held.pop(owner, None)

    async def take(self, owner: str = "") -> Callable[[], None]:
        """A slot, and the function that gives it back (calling it twice frees it once):
        429 TOO_MANY_UPLOADS when `owner` already holds its share, 503 UPLOADS_BUSY when
        none came free within UPLOAD_SLOT_WAIT_S."""
        if not self._count(owner):
            raise TooManyUploads(
                f"You already have {self.per_owner} uploads in progress on this server; "
                "wait for one to finish.",
                retry_after_s=BUSY_RETRY_AFTER_S,
            )
        try:
            if not await self.acquire(self.wait_s):
                raise ServiceUnavailable(
                    f"This server is already receiving {self.size} large uploads; retry in a "
                    "few seconds.",
                    code="UPLOADS_BUSY",
                    retry_after_s=BUSY_RETRY_AFTER_S,
                )
        except BaseException:
            self._uncount(owner)
            raise
        held = True

        def give_back() -> None:
            nonlocal held
            with self._lock:
                if not held:
                    return
                held = False
            self.release()
            self._uncount(owner)

        return give_back
