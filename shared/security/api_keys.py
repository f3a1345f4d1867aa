"""API keys `tpk_<key id>_<secret>`: one indexed lookup by key id, one bcrypt check.

The secret is peppered (HMAC with a key derived from SECRET_KEY) before bcrypt, so a
database dump alone is not enough to test guesses. bcrypt is slow on purpose, so a short
in-process cache remembers keys it verified; the cache never decides whether a key is
revoked: the key's row is read on every request and a revoked row wins at once.

Wrong secrets are counted per key id and client (`shared.security.lockout`): past the limit,
that client's guesses for that key are refused without bcrypt. A secret this process has
already verified (or issued) for the key's current hash is never refused that way, so even a
guesser at the owner's own address does not lock the owner out once the key is known here:
matching a remembered SHA-256 of a 256-bit random secret is as strong a proof as bcrypt.

After a SECRET_KEY rotation the old pepper is among the fallbacks; a key verified with it
is re-hashed under the current pepper on its first use.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from passlib.hash import bcrypt as _bcrypt

from shared.security.lockout import Lockout

PREFIX = "tpk"
_KEY_ID_BYTES = 8
_SECRET_BYTES = 32
_CACHE_SIZE = 10_000
# Wrong secrets for one key id from one client within a minute before that client's further
# attempts are refused without running bcrypt: guessing costs this process almost nothing
# instead of 250 ms each.
_FAILURES_PER_MINUTE = 10
_FAILURE_WINDOW_S = 60.0
# Wrong secrets per key from all clients together, per minute (about 15 s of bcrypt).
_GUESSES_PER_KEY_PER_MINUTE = 60
_ALL_CLIENTS = "*"


class Verdict(Enum):
    INVALID = "invalid"
    LOCKED_OUT = "too many wrong secrets for this key from this client"
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
        self._lockout = Lockout(limit=_FAILURES_PER_MINUTE, window_s=_FAILURE_WINDOW_S)
        # Wrong secrets for one key from every client together: a ceiling on the bcrypt work
        # (and on the threads waiting for it) that guessers spread over many addresses can
        # cause. Only secrets this process has not seen right are refused past it.
        self._budget = Lockout(limit=_GUESSES_PER_KEY_PER_MINUTE, window_s=_FAILURE_WINDOW_S)

    def hash(self, secret: str) -> str:
        """The stored form of a new key's secret (under the current pepper)."""
        return str(_bcrypt.using(rounds=self.rounds).hash(_peppered(secret, self.peppers[0])))

    def hash_new(self, key_id: str, secret: str) -> str:
        """`hash()` for a key being issued, remembered as known here (not as freshly verified:
        its first use still runs bcrypt, but no guesser can lock its owner out of it)."""
        stored_hash = self.hash(secret)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        self._remember(key_id, digest, stored_hash, -math.inf)
        return stored_hash

    def verify(self, key_id: str, secret: str, stored_hash: str, *, client: str) -> Verdict:
        """Whether `secret` matches; bcrypt runs at most once per key per cache period, and
        never for a client locked out of this key by its own wrong secrets."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if self._cached(key_id, digest, stored_hash):
            return Verdict.VALID
        known = self._known(key_id, digest, stored_hash)
        # Checked before waiting for the key's gate, so a locked-out guesser never queues
        # in front of the owner's bcrypt, nor holds a thread waiting for it.
        if not known and self._refused(key_id, client):
            return Verdict.LOCKED_OUT
        with self._lock:
            gate = self._in_flight.setdefault(key_id, threading.Lock())
            if len(self._in_flight) > _CACHE_SIZE:
                self._in_flight = {key_id: gate}
        with gate:
            if self._cached(key_id, digest, stored_hash):
                return Verdict.VALID
            if not known and self._refused(key_id, client):
                return Verdict.LOCKED_OUT
            verdict = self._verify_slowly(key_id, secret, digest, stored_hash)
            if verdict is Verdict.INVALID:
                self._lockout.fail(key_id, client)
                self._budget.fail(key_id, _ALL_CLIENTS)
            return verdict

    def _refused(self, key_id: str, client: str) -> bool:
        """An unknown secret is not checked while its client, or all clients together, have
        guessed wrong too often for this key."""
        return bool(
            self._lockout.remaining_s(key_id, client)
            or self._budget.remaining_s(key_id, _ALL_CLIENTS)
        )

    def lockout_remaining_s(self, key_id: str, client: str) -> float:
        """How long `client` stays locked out of `key_id` (0 when it is not)."""
        return max(
            self._lockout.remaining_s(key_id, client),
            self._budget.remaining_s(key_id, _ALL_CLIENTS),
        )

    def _entry(self, key_id: str, digest: str, stored_hash: str) -> float | None:
        """When this secret was last verified for this hash (None: never, or another one)."""
        with self._lock:
            entry = self._verified.get(key_id)
        if entry is None:
            return None
        known_digest, known_hash, verified_at = entry
        if hmac.compare_digest(known_digest, digest) and known_hash == stored_hash:
            return verified_at
        return None

    def _cached(self, key_id: str, digest: str, stored_hash: str) -> bool:
        verified_at = self._entry(key_id, digest, stored_hash)
        return verified_at is not None and time.monotonic() - verified_at < self.cache_ttl_s

    def _known(self, key_id: str, digest: str, stored_hash: str) -> bool:
        """The right secret for this hash, verified or issued here at any time (a stale cache
        entry still proves it; entries go only with revocation or the bounded cache)."""
        return self._entry(key_id, digest, stored_hash) is not None

    def _remember(self, key_id: str, digest: str, stored_hash: str, verified_at: float) -> None:
        with self._lock:
            self._verified[key_id] = (digest, stored_hash, verified_at)
            self._verified.move_to_end(key_id)
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)

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
        self._remember(key_id, digest, stored_hash, now)
        return Verdict.VALID

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (revocation in this process)."""
        with self._lock:
            self._verified.pop(key_id, None)
