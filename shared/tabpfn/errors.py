"""Typed errors from the TabPFN service, each mapped to a job error code.

Hierarchy::

    UpstreamError                 base; carries `trace_id` (the upstream's, for support)
    ├── TokenInvalid              TABPFN_TOKEN_INVALID    permanent (401/403 on a call)
    ├── QuotaExceeded             TABPFN_QUOTA_EXCEEDED   permanent until `reset_time`
    ├── RateLimited               TABPFN_RATE_LIMITED     transient, after `retry_after_s`
    ├── InputRejected             TABPFN_REJECTED_INPUT   permanent (upstream 4xx on data)
    ├── FittedModelNotFound       TABPFN_MODEL_NOT_FOUND  permanent (deleted or another account)
    ├── UpstreamTimeout           TIMEOUT                 permanent (async fit past its deadline)
    └── UpstreamUnavailable       UPSTREAM_UNAVAILABLE    transient (connection, timeout, 408/5xx)

`transient` says whether retrying the same call later can succeed; the worker retries only
those, with backoff. Messages never contain a token.
"""

from __future__ import annotations

from typing import ClassVar

from shared.models.enums import JobErrorCode


class UpstreamError(Exception):
    """An error the TabPFN service (or the way to it) reported."""

    job_error_code: ClassVar[JobErrorCode] = JobErrorCode.UPSTREAM_UNAVAILABLE
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, trace_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.trace_id = trace_id


class TokenInvalid(UpstreamError):
    job_error_code = JobErrorCode.TABPFN_TOKEN_INVALID


class QuotaExceeded(UpstreamError):
    job_error_code = JobErrorCode.TABPFN_QUOTA_EXCEEDED

    def __init__(
        self, message: str, *, reset_time: str | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(message, trace_id=trace_id)
        self.reset_time = reset_time


class RateLimited(UpstreamError):
    job_error_code = JobErrorCode.TABPFN_RATE_LIMITED
    transient = True

    def __init__(self, message: str, *, retry_after_s: float, trace_id: str | None = None) -> None:
        super().__init__(message, trace_id=trace_id)
        self.retry_after_s = retry_after_s


class InputRejected(UpstreamError):
    job_error_code = JobErrorCode.TABPFN_REJECTED_INPUT


class FittedModelNotFound(UpstreamError):
    """`fit_id`: the upstream fit that is gone (None when the call named none)."""

    job_error_code = JobErrorCode.TABPFN_MODEL_NOT_FOUND

    def __init__(
        self, message: str, *, fit_id: str | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(message, trace_id=trace_id)
        self.fit_id = fit_id


class UpstreamTimeout(UpstreamError):
    job_error_code = JobErrorCode.TIMEOUT


class UpstreamUnavailable(UpstreamError):
    job_error_code = JobErrorCode.UPSTREAM_UNAVAILABLE
    transient = True
