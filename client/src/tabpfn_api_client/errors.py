"""Every error the client raises, in one hierarchy.

```
TabPFNAPIError                    code, message, status, details, request_id
├── APIStatusError                the service answered an error status ({"code", "message"})
│   ├── BadRequestError           400  VALIDATION_ERROR, LIMIT_EXCEEDED, FEATURE_COUNT_MISMATCH, …
│   ├── AuthenticationError       401  UNAUTHORIZED
│   ├── PermissionDeniedError     403  FORBIDDEN
│   ├── NotFoundError             404  NOT_FOUND
│   ├── ConflictError             409  MODEL_NOT_READY, JOB_FINISHED, JOB_NOT_SUCCEEDED, …
│   ├── PayloadTooLargeError      413  PAYLOAD_TOO_LARGE
│   ├── UnsupportedMediaTypeError 415  UNSUPPORTED_MEDIA_TYPE
│   ├── UnprocessableError        422  IDEMPOTENCY_KEY_REUSED
│   ├── RateLimitError            429  RATE_LIMITED, TOO_MANY_JOBS (`retry_after`)
│   ├── ServiceUnavailableError   503  UPSTREAM_UNAVAILABLE, SERVICE_UNAVAILABLE (`retry_after`)
│   └── ServerError               other 5xx
├── APIConnectionError            the service could not be reached (code CONNECTION_ERROR)
├── MissingAPIKeyError            no key given, in TABPFN_API_KEY or the CLI's config (NO_API_KEY)
└── JobError                      a job did not end as asked (`job`)
    ├── JobFailedError            the job failed: `code` is the job's error code (TIMEOUT, …)
    ├── JobCanceledError          the job was canceled (code CANCELED)
    └── WaitTimeoutError          still unfinished when the wait ran out (code WAIT_TIMEOUT)
```

429 and 503 are retried (honouring `Retry-After`) before they are raised; the exception is
what remains after the last attempt. Messages are the service's own sentences, which say
what to fix; no error ever holds the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tabpfn_api_client.records import Job


class TabPFNAPIError(Exception):
    """The base of every error this package raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class APIStatusError(TabPFNAPIError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        details: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details, request_id=request_id)
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the request or its data is invalid; the message names the field, row or column."""


class AuthenticationError(APIStatusError):
    """401: missing, unknown or revoked API key."""


class PermissionDeniedError(APIStatusError):
    """403: another user's model or job."""


class NotFoundError(APIStatusError):
    """404: no such model, job, key or route."""


class ConflictError(APIStatusError):
    """409: the resource is not in a state that allows this (a model not ready, a job ended)."""


class PayloadTooLargeError(APIStatusError):
    """413: the body is larger than the service takes."""


class UnsupportedMediaTypeError(APIStatusError):
    """415: neither JSON nor multipart."""


class UnprocessableError(APIStatusError):
    """422: an Idempotency-Key reused with another body."""


class RateLimitError(APIStatusError):
    """429: too many requests or too many unfinished jobs, after the client's retries."""


class ServiceUnavailableError(APIStatusError):
    """503: the service or the TabPFN service is unavailable, after the client's retries."""


class ServerError(APIStatusError):
    """Another 5xx: a bug or an outage; quote `request_id` when reporting it."""


class APIConnectionError(TabPFNAPIError):
    """The service could not be reached (connection refused, DNS, timeout), after retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="CONNECTION_ERROR")


class MissingAPIKeyError(TabPFNAPIError):
    """An endpoint that needs an API key was called without one; nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="NO_API_KEY")


class JobError(TabPFNAPIError):
    """A job did not end as the caller needed; `job` is its last known state."""

    def __init__(self, message: str, *, code: str, job: Job) -> None:
        super().__init__(message, code=code)
        self.job = job


class JobFailedError(JobError):
    """The job failed; `code` is its error code (TABPFN_QUOTA_EXCEEDED, TIMEOUT, …)."""


class JobCanceledError(JobError):
    """The job was canceled."""


class WaitTimeoutError(JobError):
    """The job was still queued or running when the wait ran out; it carries on server-side."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(status: int) -> type[APIStatusError]:
    """The exception class for an error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIStatusError
