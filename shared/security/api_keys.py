"""API keys `tpk_<key id>_<secret>`: one indexed lookup by key id, one bcrypt check.

The secret is peppered (HMAC with a key derived from SECRET_KEY) before bcrypt, so a
database dump alone is not enough to test guesses. bcrypt is slow on purpose, so a short
in-process cache remembers keys it verified; the cache never decides whether a key is
revoked: the key's row is read on every request and a revoked row wins at once.

After a SECRET_KEY rotation the old pepper is among the fallbacks; a key verified with it
is re-hashed under the current pepper on its first use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from passlib.hash import bcrypt as _bcrypt

PREFIX = "tpk"
_KEY_ID_BYTES = 8
_SECRET_BYTES = 32
_CACHE_SIZE = 10_000
# Wrong secrets for one key id within a minute before further attempts are refused without
# running bcrypt: guessing costs this process almost nothing instead of 250 ms each.
_FAILURES_PER_MINUTE = 10


class Verdict(Enum):
    INVALID = "invalid"
    VALID = "valid"
    VALID_REHASH = "valid, hashed under a fallback secret"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """What the user sends: `tpk_<key id>_<secret>`."""
        return f"{PREFIX}_{self.key_id}_{self.secret}"


def generate() -> NewKey:
    return NewKey(
        key_id=secrets.token_hex(_KEY_ID_BYTES), secret=secrets.token_urlsafe(_SECRET_BYTES)
    )


def parse(presented: str) -> tuple[str, str] | None:
    """(key id, secret) from `tpk_<key id>_<secret>`, or None when it is not shaped like one."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 2 * _KEY_ID_BYTES or not secret or len(secret) > 128:
        return None
    if not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def _peppered(secret: str, pepper: bytes) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


class KeyHasher:
    """bcrypt over the peppered secret, with a cache of recent successful verifications."""

    def __init__(self, peppers: list[bytes], *, rounds: int, cache_ttl_s: float) -> None:
        self.peppers = peppers
        self.rounds = rounds
        self.cache_ttl_s = cache_ttl_s
        self._verified: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self._lock = threading.Lock()
        # One bcrypt per key at a time: concurrent first requests wait for the first one's
        # verdict instead of each paying for their own.
        self._in_flight: dict[str, threading.Lock] = {}
        self._failures: dict[str, tuple[int, float]] = {}

    def hash(self, secret: str) -> str:
        """The stored form of a new key's secret (under the current pepper)."""
        return str(_bcrypt.using(rounds=self.rounds).hash(_peppered(secret, self.peppers[0])))

    def verify(self, key_id: str, secret: str, stored_hash: str) -> Verdict:
        """Whether `secret` matches; bcrypt runs at most once per key per cache period."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if self._cached(key_id, digest, stored_hash):
            return Verdict.VALID
        with self._lock:
            gate = self._in_flight.setdefault(key_id, threading.Lock())
            if len(self._in_flight) > _CACHE_SIZE:
                self._in_flight = {key_id: gate}
        with gate:
            if self._cached(key_id, digest, stored_hash):
                return Verdict.VALID
            if self._failing(key_id):
                return Verdict.INVALID
            verdict = self._verify_slowly(key_id, secret, digest, stored_hash)
            if verdict is Verdict.INVALID:
                self._count_failure(key_id)
            return verdict

    def _failing(self, key_id: str) -> bool:
        with self._lock:
            count, since = self._failures.get(key_id, (0, 0.0))
        return count >= _FAILURES_PER_MINUTE and time.monotonic() - since < 60

    def _count_failure(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            count, since = self._failures.get(key_id, (0, now))
            if now - since >= 60:
                count, since = 0, now
            self._failures[key_id] = (count + 1, since)
            if len(self._failures) > _CACHE_SIZE:
                self._failures = {key_id: self._failures[key_id]}

    def _cached(self, key_id: str, digest: str, stored_hash: str) -> bool:
        with self._lock:
            cached = self._verified.get(key_id)
        if cached is None:
            return False
        cached_digest, cached_hash, verified_at = cached
        fresh = time.monotonic() - verified_at < self.cache_ttl_s
        return fresh and hmac.compare_digest(cached_digest, digest) and cached_hash == stored_hash

    def _verify_slowly(self, key_id: str, secret: str, digest: str, stored_hash: str) -> Verdict:
        now = time.monotonic()
        matched = next(
            (
                i
                for i, p in enumerate(self.peppers)
                if _bcrypt.verify(_peppered(secret, p), stored_hash)
            ),
            None,
        )
        if matched is None:
            return Verdict.INVALID
        if matched > 0:
            # Hashed under a retired SECRET_KEY: the caller stores a fresh hash (and the
            # cache only learns the new hash once it is stored).
            return Verdict.VALID_REHASH
        with self._lock:
            self._verified[key_id] = (digest, stored_hash, now)
            self._verified.move_to_end(key_id)
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return Verdict.VALID

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (revocation in this process)."""
        with self._lock:
            self._verified.pop(key_id, None)
