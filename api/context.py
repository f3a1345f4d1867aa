"""The API process's long-lived resources, built once by `create_app()` and shared by routes."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from api.admission import Admission
from api.job_waiters import JobWaiters
from api.uploads import UploadSlots
from shared.config import Settings
from shared.db import Database
from shared.queue import Publisher
from shared.ratelimit import RateLimiter
from shared.redis_client import make_redis
from shared.security.api_keys import KeyHasher
from shared.security.crypto import SecretBox
from shared.tabpfn.adapter import TabPFNUpstream


@dataclass
class AppContext:
    """Settings plus the engine, Redis, publisher, crypto, upstream and the `Prefer: wait`
    waiters of this process."""

    settings: Settings
    db: Database
    redis: redis.Redis
    publisher: Publisher
    limiter: RateLimiter
    box: SecretBox
    hasher: KeyHasher
    upstream: TabPFNUpstream
    uploads: UploadSlots
    waiters: JobWaiters
    admission: Admission

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        client = make_redis(settings.REDIS_URL)
        box = SecretBox.from_settings(settings)
        return cls(
            settings=settings,
            db=Database(settings, label="api"),
            redis=client,
            publisher=Publisher(settings),
            limiter=RateLimiter(client),
            box=box,
            hasher=KeyHasher(
                box.peppers, rounds=settings.BCRYPT_ROUNDS, cache_ttl_s=settings.API_KEY_CACHE_TTL_S
            ),
            # Only short calls run on API threads (token checks, usage, limits): a hanging
            # upstream must cost a request seconds, never the thread pool.
            upstream=TabPFNUpstream(
                settings.TABPFN_API_URL,
                timeout_s=settings.TABPFN_API_TIMEOUT_S,
                settings_ttl_s=settings.UPSTREAM_SETTINGS_TTL_S,
            ),
            uploads=UploadSlots(
                settings.UPLOAD_SLOTS,
                settings.UPLOAD_SLOT_WAIT_S,
                per_owner=settings.UPLOAD_SLOTS_PER_USER,
            ),
            # The engine's most connections (pool plus as many overflow, shared.db), less
            # one kept for /health and /metrics, which bypass admission.
            admission=Admission(max(2 * settings.DB_POOL_SIZE - 1, 1)),
            waiters=JobWaiters(
                settings.DATABASE_URL,
                max_waiters=settings.PREFER_WAIT_MAX_WAITERS,
                max_per_owner=settings.PREFER_WAIT_MAX_WAITERS_PER_USER,
                recheck_s=settings.PREFER_WAIT_RECHECK_S,
            ),
        )

    def close(self) -> None:
        """Release every connection (app shutdown)."""
        self.waiters.close()
        self.db.dispose()
        self.redis.close()
        self.publisher.close()
        self.upstream.close()
