"""Wrong API-key secrets counted per key id *and* client, so a guesser locks out only itself.

A known key id lets anyone send guesses, and each guess costs a bcrypt (about 250 ms of CPU
at the default cost). After `limit` wrong secrets within `window_s` from one client for one
key, that client's further guesses for that key are refused without hashing. Counting per
key id alone (as before) let ten guesses a minute from anywhere lock the owner out too.

A client is its address, except that an IPv6 client counts as its /64: one host usually
holds a whole /64, and counting each of its 2^64 addresses apart would count nothing.

Memory is bounded: past `max_entries` the oldest entries are dropped (expired ones first).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict


def client_group(address: str) -> str:
    """The unit guesses are counted by: an IPv4 address, an IPv6 /64, or the raw value."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class Lockout:
    """Failure counts per (key id, client group) in fixed windows."""

    def __init__(self, *, limit: int, window_s: float, max_entries: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_entries = max_entries
        self._counts: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def remaining_s(self, key_id: str, client: str) -> float:
        """Seconds this client stays locked out of this key (0 when it may try)."""
        with self._lock:
            count, since = self._counts.get((key_id, client_group(client)), (0, 0.0))
        left = self.window_s - (time.monotonic() - since)
        return left if count >= self.limit and left > 0 else 0.0

    def fail(self, key_id: str, client: str) -> None:
        """Count one wrong secret from this client for this key."""
        now = time.monotonic()
        entry = (key_id, client_group(client))
        with self._lock:
            count, since = self._counts.pop(entry, (0, now))
            if now - since >= self.window_s:
                count, since = 0, now
            self._counts[entry] = (count + 1, since)
            self._trim(now)

    def _trim(self, now: float) -> None:
        if len(self._counts) <= self.max_entries:
            return
        for entry, (_, since) in list(self._counts.items()):
            if now - since >= self.window_s:
                del self._counts[entry]
        while len(self._counts) > self.max_entries:
            self._counts.popitem(last=False)
