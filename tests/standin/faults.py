"""Authentication, token-prefix switches and injected failures, applied before a route's work."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from typing import Literal

from .config import StandinConfig
from .state import Store
from .wire import HTTPFail, Request, Response, error

# What a route does, which decides the switches that apply to it.
Op = Literal["public", "auth", "prepare", "fit", "submit", "status", "predict", "storage"]

INVALID, UNVERIFIED, OVERQUOTA = "invalid", "unverified", "overquota"
RATELIMITED, FLAKY, SLOW, DROP = "ratelimited", "flaky", "slow", "drop"
FLAKY_FAILURES = 2  # the client retries a 503 once, so 2 make one client call fail
FLAKY_PATHS = frozenset({"/tabpfn/fit", "/tabpfn/submit_fit_job", "/tabpfn/predict"})
SLOW_EXTRA_S = 2.0
# Usage shown for `overquota*` tokens when no usage_limit is configured: the daily pool.
DEFAULT_QUOTA = 50_000_000
QUOTA_OPS = frozenset({"prepare", "fit", "submit", "predict"})
WORK_OPS = frozenset({"fit", "submit", "predict"})


def next_reset_time() -> str:
    """Next UTC midnight, when the real service resets usage pools."""
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0, 0), tzinfo=dt.UTC).isoformat()


def has_prefix(req: Request, prefix: str) -> bool:
    """Whether the request's bearer token selects a switch."""
    return req.token is not None and req.token.startswith(prefix)


def authenticate(req: Request) -> str:
    """The caller's token id, or the 401/403 the real API answers for bad tokens."""
    if not req.token or req.token.startswith(INVALID):
        raise HTTPFail(error(401, "Invalid token", "UNAUTHORIZED"))
    if req.token.startswith(UNVERIFIED):
        raise HTTPFail(error(403, "Email address is not verified", "EMAIL_NOT_VERIFIED"))
    assert req.token_id is not None
    return req.token_id


def usage_limit(cfg: StandinConfig, req: Request, store: Store) -> tuple[int, int]:
    """(current_usage, usage_limit) for the caller; -1 is unlimited, overquota* is exhausted."""
    if has_prefix(req, OVERQUOTA):
        limit = cfg.usage_limit if cfg.usage_limit >= 0 else DEFAULT_QUOTA
        return limit, limit
    assert req.token_id is not None
    return store.usage_of(req.token_id), cfg.usage_limit


class Faults:
    """Per-token switch state (flaky counters) and the rules that turn switches into responses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flaky_seen: dict[tuple[str, str], int] = {}
        # token id -> (start of its rate-limit window, requests counted in it)
        self._windows: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        """Forget flaky counters and rate-limit windows, so a reused token fails again."""
        with self._lock:
            self._flaky_seen.clear()
            self._windows.clear()

    def _rate_limited_for(self, cfg: StandinConfig, owner: str) -> float | None:
        """Seconds left in the owner's full rate-limit window, or None to let it through."""
        limit = cfg.rate_limit
        if limit is None or (limit.token_id is not None and limit.token_id != owner):
            return None
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(owner, (now, 0))
            if now - start >= limit.window_s:
                start, count = now, 0
            if count >= limit.max_requests:
                self._windows[owner] = (start, count)
                return start + limit.window_s - now
            self._windows[owner] = (start, count + 1)
            return None

    def _flaky_hit(self, owner: str, path: str) -> bool:
        with self._lock:
            seen = self._flaky_seen.get((owner, path), 0)
            self._flaky_seen[(owner, path)] = seen + 1
            return seen < FLAKY_FAILURES

    def switch_response(
        self, cfg: StandinConfig, store: Store, req: Request, op: Op
    ) -> Response | None:
        """The response a token switch forces for this request, or None to proceed."""
        if op in WORK_OPS and has_prefix(req, DROP):
            return Response(drop=True)
        if op in QUOTA_OPS:
            current, limit = usage_limit(cfg, req, store)
            if 0 <= limit <= current:
                reset = next_reset_time()
                return error(
                    429,
                    f"Usage limit exceeded: {current} of {limit} credits used. Resets at {reset}.",
                    "USAGE_LIMIT_EXCEEDED",
                    reset_time=reset,
                )
        if op in WORK_OPS and req.token_id is not None:
            left = self._rate_limited_for(cfg, req.token_id)
            if left is not None:
                return error(
                    429,
                    "Rate limit exceeded for this token, retry later",
                    "RATE_LIMITED",
                    headers={"Retry-After": str(max(1, math.ceil(left)))},
                )
        if op in WORK_OPS and has_prefix(req, RATELIMITED):
            return error(
                429,
                "Too many requests, retry later",
                "RATE_LIMITED",
                headers={"Retry-After": "1"},
            )
        if req.path in FLAKY_PATHS and has_prefix(req, FLAKY):
            assert req.token_id is not None
            if self._flaky_hit(req.token_id, req.path):
                return error(503, "Service temporarily unavailable", "SERVICE_UNAVAILABLE")
        return None


def request_latency(cfg: StandinConfig, op: Op) -> float:
    """Fixed delay added to fit, submit_fit_job and predict requests (benchmarks use it)."""
    return cfg.latency_ms / 1000.0 if op in WORK_OPS else 0.0


def fit_work_delay(cfg: StandinConfig, req: Request) -> float:
    """How long a fit takes beyond the baseline's own time, wherever the fit runs."""
    return cfg.fit_delay_s + (SLOW_EXTRA_S if has_prefix(req, SLOW) else 0.0)


def predict_work_delay(cfg: StandinConfig, req: Request) -> float:
    """How long a predict takes beyond the baseline's own time."""
    return cfg.predict_delay_s + (SLOW_EXTRA_S if has_prefix(req, SLOW) else 0.0)
