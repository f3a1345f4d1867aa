"""The errors users can see. Each carries its HTTP status and its `code`; one handler renders
them as `{"code", "message", "details"?}`.

Hierarchy::

    AppError                      500 INTERNAL_ERROR (base; never raised for user input)
    ├── ValidationFailed          400 VALIDATION_ERROR (bad body, bad data, names row/column)
    ├── TabPFNTokenRejected       400 TABPFN_TOKEN_INVALID / TABPFN_EMAIL_UNVERIFIED
    ├── InvalidCallbackUrl        400 INVALID_CALLBACK_URL
    ├── Unauthorized              401 UNAUTHORIZED (with WWW-Authenticate: Bearer)
    ├── Forbidden                 403 FORBIDDEN (another user's model or job)
    ├── NotFound                  404 NOT_FOUND
    ├── Conflict                  409 MODEL_NOT_READY, JOB_FINISHED, JOB_NOT_SUCCEEDED, ...
    ├── RequestTimeout            408 REQUEST_TIMEOUT (a body that did not arrive in time)
    ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType      415 UNSUPPORTED_MEDIA_TYPE
    ├── IdempotencyKeyReused      422 IDEMPOTENCY_KEY_REUSED
    ├── RateLimited               429 RATE_LIMITED (with Retry-After)
    ├── TooManyJobs               429 TOO_MANY_JOBS (the user's unfinished jobs are at the cap)
    ├── TooManyUploads            429 TOO_MANY_UPLOADS (the user's uploads in progress here)
    └── ServiceUnavailable        503 UPSTREAM_UNAVAILABLE / SERVICE_UNAVAILABLE (with Retry-After)

Errors from the TabPFN service itself are typed separately in `shared.tabpfn.errors`; the
API maps the few it meets synchronously (token checks) onto these.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An error with a status, a stable code and a sentence that says what to fix."""

    status_code: ClassVar[int] = 500
    default_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers or {}


class ValidationFailed(AppError):
    status_code = 400
    default_code = "VALIDATION_ERROR"


class TabPFNTokenRejected(AppError):
    status_code = 400
    default_code = "TABPFN_TOKEN_INVALID"


class InvalidCallbackUrl(AppError):
    status_code = 400
    default_code = "INVALID_CALLBACK_URL"


class Unauthorized(AppError):
    status_code = 401
    default_code = "UNAUTHORIZED"

    def __init__(self, message: str = "A valid API key is required.") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    default_code = "FORBIDDEN"


class NotFound(AppError):
    status_code = 404
    default_code = "NOT_FOUND"


class Conflict(AppError):
    status_code = 409
    default_code = "CONFLICT"


class RequestTimeout(AppError):
    status_code = 408
    default_code = "REQUEST_TIMEOUT"


class PayloadTooLarge(AppError):
    status_code = 413
    default_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(AppError):
    status_code = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"


class IdempotencyKeyReused(AppError):
    status_code = 422
    default_code = "IDEMPOTENCY_KEY_REUSED"


class RateLimited(AppError):
    status_code = 429
    default_code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})


class TooManyJobs(RateLimited):
    default_code = "TOO_MANY_JOBS"


class TooManyUploads(RateLimited):
    default_code = "TOO_MANY_UPLOADS"


class ServiceUnavailable(AppError):
    status_code = 503
    default_code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after_s))})
