"""A Redis client with short timeouts: rate limits and caches must fail fast, not hang a request."""

from __future__ import annotations

import redis


def make_redis(url: str) -> redis.Redis:
    """A pooled client; every command gives up after a few seconds."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=3,
        health_check_interval=30,
        decode_responses=False,
    )
