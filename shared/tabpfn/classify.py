"""Classifying a failed upstream response by what it said, not by the client's message text.

tabpfn-client reduces HTTP errors to strings; the adapter's response hook records the last
failed response of a call (`CallRecord`), and `by_status` turns it into a typed error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.tabpfn import errors

_TRACE_SUFFIX = re.compile(r"\s*Report trace ID: [^\s.]+\.?")
# A 429 whose Retry-After is longer than this is a quota, not a burst limit.
_MAX_RATE_LIMIT_WAIT_S = 300.0


@dataclass
class CallRecord:
    """The last failed upstream response seen by this thread during one adapter call."""

    status: int | None = None
    retry_after: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


def by_status(record: CallRecord, message: str, trace: str | None) -> errors.UpstreamError:
    status = record.status or 0
    if status in (401, 403):
        return errors.TokenInvalid(
            "The TabPFN service rejected the stored TabPFN token; update it with "
            "PUT /api/v1/auth/tabpfn-token.",
            trace_id=trace,
        )
    if status == 429:
        retry_after = seconds(record.retry_after)
        if retry_after is not None and retry_after <= _MAX_RATE_LIMIT_WAIT_S:
            return errors.RateLimited(
                f"The TabPFN service is rate limiting this account: {message}",
                retry_after_s=retry_after,
                trace_id=trace,
            )
        reset = record.body.get("reset_time")
        return errors.QuotaExceeded(
            f"The TabPFN usage quota of this account is exhausted: {message}",
            reset_time=str(reset) if reset else None,
            trace_id=trace,
        )
    if status == 408 or status >= 500:
        return errors.UpstreamUnavailable(
            f"The TabPFN service failed (HTTP {status}): {message}", trace_id=trace
        )
    if status == 426:
        return errors.UpstreamUnavailable(
            f"The TabPFN service no longer accepts this tabpfn-client version: {message}",
            trace_id=trace,
        )
    return errors.InputRejected(
        f"The TabPFN service rejected the data (HTTP {status}): {message}", trace_id=trace
    )


def upstream_message(error: Exception, record: CallRecord) -> str:
    """The service's own sentence when it gave one, else the client's, minus the trace id."""
    raw = record.body.get("message") or record.body.get("detail") or str(error)
    return _TRACE_SUFFIX.sub("", str(raw)).strip().rstrip(".") or type(error).__name__


def seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
