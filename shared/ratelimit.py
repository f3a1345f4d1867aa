"""Fixed-window rate limits in Redis, shared by every API process.

When Redis is unreachable the limit is skipped (and logged): refusing every submission
because the limiter is down would turn a Redis outage into an API outage, while the jobs
themselves are safe in Postgres.
"""

from __future__ import annotations

import logging
import time

import redis

from shared.errors import RateLimited

logger = logging.getLogger(__name__)


class RateLimiter:
    """`hit(bucket, limit)` counts one request and raises RateLimited past the limit."""

    def __init__(self, client: redis.Redis, *, prefix: str = "tabpfn-api:rl") -> None:
        self.client = client
        self.prefix = prefix

    def hit(self, bucket: str, limit: int, *, window_s: int = 60, what: str = "requests") -> None:
        now = time.time()
        window = int(now // window_s)
        key = f"{self.prefix}:{bucket}:{window}"
        try:
            pipeline = self.client.pipeline()
            pipeline.incr(key)
            pipeline.expire(key, window_s + 1)
            count = int(pipeline.execute()[0])
        except redis.RedisError as error:
            kind = bucket.split(":", maxsplit=1)[0]
            logger.warning(
                "rate limit %s skipped: Redis unavailable (%s)", kind, type(error).__name__
            )
            return
        if count > limit:
            retry_after = int((window + 1) * window_s - now) + 1
            raise RateLimited(
                f"Too many {what}: the limit is {limit} per {window_s} s; "
                f"retry in {retry_after} s.",
                retry_after_s=retry_after,
            )
