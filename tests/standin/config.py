"""Runtime configuration of the stand-in: limits, delays, fit mode and fault bursts."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Every ModelVersion value tabpfn-client 0.6.1 knows: the client indexes `model_limits` by the
# version it derives from `model_path`, so a missing key makes it raise before any request.
MODEL_VERSIONS: tuple[str, ...] = ("v2", "v2.5", "v2.6", "v3", "v3.5", "v3.5-fast")
DEFAULT_MODEL_VERSION = "v3"

# Production numbers (docs.priorlabs.ai, v3), so client-side pre-flight checks behave as live.
DEFAULT_LIMITS: Mapping[str, int] = {
    "train_set_max_rows": 1_000_000,
    "train_set_max_cells": 100_000_000,
    "train_set_max_upload_cells": 100_000_000,
    "test_set_max_rows": 200_000,
    "max_classes": 160,
    "max_cols": 2000,
    "test_set_max_rows_w_full_regression_output": 400,
    "predict_row_pairs_budget": 250_000 * 1_000_000,
    "test_set_max_cells": 100_000_000,
}
DATASET_MAX_SIZE_BYTES = 5_368_709_120
ASYNC_USE_ABOVE_TRAINSET_SIZE_BYTES = 52_428_800
ASYNC_POLL_TIMEOUT_SECS = 7200.0

FitMode = Literal["sync", "pending"]
FIT_MODES: tuple[FitMode, ...] = ("sync", "pending")

FIT_PATHS = frozenset({"/tabpfn/fit", "/tabpfn/submit_fit_job"})
# tabpfn-client floors the hint at 0.3 s; the stand-in's default is that floor.
DEFAULT_FIT_POLL_HINT_S = 0.3
# A Thinking fit searches for longer than a standard one; the stand-in adds this much.
DEFAULT_THINKING_FIT_DELAY_S = 2.0
# The largest thinking_config.timeout_secs accepted (the budget the service issue names).
DEFAULT_THINKING_MAX_TIMEOUT_S = 2400.0
PREDICT_PATHS = frozenset({"/tabpfn/predict"})


class ConfigError(ValueError):
    """A malformed configuration value; the admin route answers it with HTTP 400."""


@dataclass(frozen=True)
class Burst:
    """The next `count` requests matching `path`/`token_id` fail with `status` (or are dropped)."""

    count: int
    status: int = 503
    path: str | None = None
    token_id: str | None = None

    def matches(self, path: str, token_id: str | None) -> bool:
        """Whether a request is hit: `path` None means fit+predict, a trailing "/" a prefix."""
        if self.token_id is not None and self.token_id != token_id:
            return False
        if self.path is None:
            return path in FIT_PATHS or path in PREDICT_PATHS
        if self.path.endswith("/") and path.startswith(self.path):
            return True
        return path == self.path

    def to_json(self) -> dict[str, Any]:
        """JSON form as shown by GET /_admin/config."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RateLimit:
    """A per-token rate limit on work requests (fit, submit_fit_job, predict), as the hosted
    service applies one: at most `max_requests` per fixed window of `window_s` seconds that
    starts at a token's first request; past it, 429 with the seconds left in `Retry-After`.
    `token_id` limits only that token (None: every token)."""

    max_requests: int
    window_s: float
    token_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form as shown by GET /_admin/config."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StandinConfig:
    """One immutable snapshot of the runtime configuration; updates build a new one."""

    latency_ms: float = 0.0
    fit_delay_s: float = 0.0
    predict_delay_s: float = 0.0
    chunks: int = 1
    fit_mode: FitMode = "sync"
    usage_limit: int = -1
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    fail_burst: Burst | None = None
    drop_burst: Burst | None = None
    fit_poll_hint_s: float = DEFAULT_FIT_POLL_HINT_S
    rate_limit: RateLimit | None = None
    # Seconds added to every request of a path (a hanging service, e.g. {"/protected/": 30}).
    path_delays: Mapping[str, float] = field(default_factory=dict)
    # Added to a Thinking fit's delay, capped by its thinking_config.timeout_secs.
    thinking_fit_delay_s: float = DEFAULT_THINKING_FIT_DELAY_S
    # Thinking fits each token may start before a 429 (-1 is unlimited), like the hosted
    # service's monthly thinking-fit pool.
    thinking_fit_quota: int = -1
    thinking_max_timeout_s: float = DEFAULT_THINKING_MAX_TIMEOUT_S

    def to_json(self) -> dict[str, Any]:
        """JSON form as served by the admin routes."""
        return {
            "latency_ms": self.latency_ms,
            "fit_delay_s": self.fit_delay_s,
            "predict_delay_s": self.predict_delay_s,
            "chunks": self.chunks,
            "fit_mode": self.fit_mode,
            "usage_limit": self.usage_limit,
            "limits": dict(self.limits),
            "fail_burst": self.fail_burst.to_json() if self.fail_burst else None,
            "drop_burst": self.drop_burst.to_json() if self.drop_burst else None,
            "fit_poll_hint_s": self.fit_poll_hint_s,
            "rate_limit": self.rate_limit.to_json() if self.rate_limit else None,
            "path_delays": dict(self.path_delays),
            "thinking_fit_delay_s": self.thinking_fit_delay_s,
            "thinking_fit_quota": self.thinking_fit_quota,
            "thinking_max_timeout_s": self.thinking_max_timeout_s,
        }

    def updated(self, update: Mapping[str, Any]) -> StandinConfig:
        """A validated copy with `update` applied; `limits` merges, other fields replace."""
        unknown = set(update) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"Unknown config field(s): {sorted(unknown)}")
        changes: dict[str, Any] = {
            name: check(name, update[name])
            for name, check in SCALAR_FIELDS.items()
            if name in update
        }
        if "fit_mode" in update:
            mode = update["fit_mode"]
            if mode not in FIT_MODES:
                raise ConfigError(f"fit_mode must be one of {list(FIT_MODES)}")
            changes["fit_mode"] = mode
        if "limits" in update:
            changes["limits"] = _merged_limits(self.limits, update["limits"])
        if "fail_burst" in update:
            changes["fail_burst"] = _burst(update["fail_burst"], with_status=True)
        if "drop_burst" in update:
            changes["drop_burst"] = _burst(update["drop_burst"], with_status=False)
        if "rate_limit" in update:
            changes["rate_limit"] = _rate_limit(update["rate_limit"])
        if "path_delays" in update:
            changes["path_delays"] = _path_delays(update["path_delays"])
        return dataclasses.replace(self, **changes)


def _non_negative_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number")
    return float(value)


def _positive_number(name: str, value: Any) -> float:
    number = _non_negative_number(name, value)
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number")
    return number


def _unlimited_or_count(name: str, value: Any) -> int:
    return _int_in(value, name, -1, None)


# Fields whose update is one value checked on its own; the rest are checked in `updated`.
SCALAR_FIELDS: Mapping[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative_number,
    "fit_delay_s": _non_negative_number,
    "predict_delay_s": _non_negative_number,
    "fit_poll_hint_s": _non_negative_number,
    "thinking_fit_delay_s": _non_negative_number,
    "thinking_max_timeout_s": _positive_number,
    "chunks": lambda name, value: _int_in(value, name, 1, 10_000),
    "usage_limit": _unlimited_or_count,
    "thinking_fit_quota": _unlimited_or_count,
}


def _int_in(value: Any, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be between {low} and {high if high else 'infinity'}")
    return value


def _merged_limits(current: Mapping[str, int], update: Any) -> dict[str, int]:
    if not isinstance(update, Mapping):
        raise ConfigError("limits must be an object")
    merged = dict(current)
    for key, value in update.items():
        if key not in DEFAULT_LIMITS:
            raise ConfigError(f"Unknown limit {key!r}; known: {sorted(DEFAULT_LIMITS)}")
        merged[key] = _int_in(value, f"limits.{key}", 1, None)
    return merged


def _burst(value: Any, *, with_status: bool) -> Burst | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("a burst must be an object or null")
    allowed = (
        {"count", "status", "path", "token_id"} if with_status else {"count", "path", "token_id"}
    )
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"Unknown burst field(s): {sorted(unknown)}")
    count = _int_in(value.get("count", 1), "count", 0, None)
    status = _int_in(value.get("status", 503), "status", 400, 599) if with_status else 0
    path = value.get("path")
    token = value.get("token_id")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ConfigError("burst path must be null or start with '/'")
    if token is not None and not isinstance(token, str):
        raise ConfigError("burst token_id must be null or a string")
    return Burst(count=count, status=status, path=path, token_id=token) if count else None


def _path_delays(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping) or not all(
        isinstance(path, str) and path.startswith("/") for path in value
    ):
        raise ConfigError("path_delays must map paths starting with '/' to seconds")
    return {path: _non_negative_number(f"path_delays[{path!r}]", s) for path, s in value.items()}


def _rate_limit(value: Any) -> RateLimit | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("rate_limit must be an object or null")
    unknown = set(value) - {"max_requests", "window_s", "token_id"}
    if unknown:
        raise ConfigError(f"Unknown rate_limit field(s): {sorted(unknown)}")
    token = value.get("token_id")
    if token is not None and not isinstance(token, str):
        raise ConfigError("rate_limit token_id must be null or a string")
    window = _non_negative_number("rate_limit.window_s", value.get("window_s", 1.0))
    if window <= 0:
        raise ConfigError("rate_limit.window_s must be positive")
    return RateLimit(
        max_requests=_int_in(value.get("max_requests", 1), "rate_limit.max_requests", 0, None),
        window_s=window,
        token_id=token,
    )


class ConfigStore:
    """Thread-safe holder of the current config and of the startup defaults it resets to."""

    def __init__(self, defaults: StandinConfig) -> None:
        self._lock = threading.Lock()
        self._defaults = defaults
        self._current = defaults

    def get(self) -> StandinConfig:
        """The current snapshot; immutable, so callers read it without the lock."""
        with self._lock:
            return self._current

    def update(self, update: Mapping[str, Any]) -> StandinConfig:
        """Apply a partial update atomically and return the new snapshot."""
        with self._lock:
            self._current = self._current.updated(update)
            return self._current

    def reset(self) -> StandinConfig:
        """Go back to the startup configuration."""
        with self._lock:
            self._current = self._defaults
            return self._current

    def take_burst(
        self, kind: Literal["fail", "drop"], path: str, token: str | None
    ) -> Burst | None:
        """Consume one request of a matching burst, so exactly `count` requests are hit."""
        with self._lock:
            burst = self._current.fail_burst if kind == "fail" else self._current.drop_burst
            if burst is None or not burst.matches(path, token):
                return None
            left = dataclasses.replace(burst, count=burst.count - 1) if burst.count > 1 else None
            if kind == "fail":
                self._current = dataclasses.replace(self._current, fail_burst=left)
            else:
                self._current = dataclasses.replace(self._current, drop_burst=left)
            return burst
