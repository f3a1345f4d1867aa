"""Every error `code` the API answers with, its status, and true examples for the OpenAPI.

`ErrorCode` is the enum of `ErrorBody.code`; `CATALOGUE` says for each code which status
carries it, when, and a message the API really sends (examples are chosen per status, so a
401 never shows a validation error). `error_responses(*codes)` builds a route's `responses=`
from the codes it can answer, grouped by status. A test scans the code base for codes
(`code="..."`, `default_code = ...`, the handlers' tables) and fails on any missing here.

A job's own failure (`Job.error.code`) is another enum, `shared.models.JobErrorCode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    BAD_REQUEST = "BAD_REQUEST"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    FEATURE_COUNT_MISMATCH = "FEATURE_COUNT_MISMATCH"
    INVALID_CALLBACK_URL = "INVALID_CALLBACK_URL"
    TABPFN_TOKEN_INVALID = "TABPFN_TOKEN_INVALID"  # noqa: S105 - a code, not a secret
    TABPFN_EMAIL_UNVERIFIED = "TABPFN_EMAIL_UNVERIFIED"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    CONFLICT = "CONFLICT"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    JOB_FINISHED = "JOB_FINISHED"
    JOB_NOT_SUCCEEDED = "JOB_NOT_SUCCEEDED"
    TOKEN_IN_USE = "TOKEN_IN_USE"  # noqa: S105 - a code, not a secret
    MODEL_DELETED = "MODEL_DELETED"
    RESULT_EXPIRED = "RESULT_EXPIRED"
    FIT_IN_PROGRESS = "FIT_IN_PROGRESS"
    DATASET_EXPIRED = "DATASET_EXPIRED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_JOBS = "TOO_MANY_JOBS"
    TOO_MANY_UPLOADS = "TOO_MANY_UPLOADS"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    UPLOADS_BUSY = "UPLOADS_BUSY"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    HTTP_ERROR = "HTTP_ERROR"


@dataclass(frozen=True)
class CodeInfo:
    status: int
    when: str
    example: str


_C = ErrorCode
CATALOGUE: dict[ErrorCode, CodeInfo] = {
    _C.VALIDATION_ERROR: CodeInfo(
        400,
        "A malformed body, option, header, path or query parameter, or data cell; the message "
        "names the field, row or column.",
        "features[3]: row 3 has 4 values, expected 5.",
    ),
    _C.BAD_REQUEST: CodeInfo(400, "A request the server could not read.", "Bad Request"),
    _C.LIMIT_EXCEEDED: CodeInfo(
        400,
        "The data is larger than TabPFN takes (rows, columns, cells, classes).",
        "The number of training rows is 2000000, above the TabPFN limit of 1000000; subsample "
        "the rows.",
    ),
    _C.FEATURE_COUNT_MISMATCH: CodeInfo(
        400,
        "Predict rows with another number of columns than the fit.",
        "The features have 3 columns but model 5e0f... was fit on 4; send the same columns in "
        "the same order.",
    ),
    _C.INVALID_CALLBACK_URL: CodeInfo(
        400,
        "A callback URL that is not http(s), or not public.",
        "callback_url resolves to a private, loopback, link-local, IPv4-embedding IPv6 or "
        "otherwise non-public address; use a public URL.",
    ),
    _C.TABPFN_TOKEN_INVALID: CodeInfo(
        400,
        "The TabPFN service rejected the token.",
        "The TabPFN service rejected this token; create one at "
        "https://platform.priorlabs.ai/account/api-keys.",
    ),
    _C.TABPFN_EMAIL_UNVERIFIED: CodeInfo(
        400,
        "The token's TabPFN account has not verified its email address.",
        "The TabPFN account of this token has not verified its email address; verify it at "
        "https://platform.priorlabs.ai and try again.",
    ),
    _C.UNAUTHORIZED: CodeInfo(
        401,
        "A missing, malformed, unknown or revoked API key (with `WWW-Authenticate: Bearer`).",
        "Send your API key as `Authorization: Bearer tpk_...`.",
    ),
    _C.FORBIDDEN: CodeInfo(
        403,
        "Another user's model or job.",
        "The job 0b7c6f1e-3d0a-4c55-9a51-5be8f1f1c0de belongs to another user.",
    ),
    _C.NOT_FOUND: CodeInfo(
        404,
        "No such model, job, key or route.",
        "No job with id 0b7c6f1e-3d0a-4c55-9a51-5be8f1f1c0de.",
    ),
    _C.METHOD_NOT_ALLOWED: CodeInfo(
        405, "A method the route does not take.", "PATCH is not allowed on /api/v1/jobs."
    ),
    _C.NOT_ACCEPTABLE: CodeInfo(406, "An unsatisfiable Accept header.", "Not Acceptable"),
    _C.CONFLICT: CodeInfo(409, "A state conflict without a more specific code.", "Conflict"),
    _C.MODEL_NOT_READY: CodeInfo(
        409,
        "Predicting with a model that is pending, failed or stale.",
        "Model 5e0f... is still being fit; poll its fit job and predict once it succeeded.",
    ),
    _C.JOB_FINISHED: CodeInfo(
        409, "Canceling a job that already ended.", "Job 0b7c... already ended (succeeded)."
    ),
    _C.JOB_NOT_SUCCEEDED: CodeInfo(
        409,
        "Downloading the result of a job that has not succeeded.",
        "Job 0b7c... is running; its result exists once it has succeeded.",
    ),
    _C.TOKEN_IN_USE: CodeInfo(
        409,
        "A new TabPFN token that another account of this service already uses.",
        "This TabPFN token already belongs to another account of this service.",
    ),
    _C.MODEL_DELETED: CodeInfo(
        409,
        "The model was deleted while the request ran.",
        "The model (or the account) was deleted while this request was processed.",
    ),
    _C.RESULT_EXPIRED: CodeInfo(
        409,
        "The result is no longer stored (retention).",
        "The result of job 0b7c... is no longer stored.",
    ),
    _C.FIT_IN_PROGRESS: CodeInfo(
        409,
        "A refit while the model's fit or an earlier refit runs.",
        "Model 5e0f... is being fit (job 0b7c...); wait for that job, or cancel it, before "
        "asking for a refit.",
    ),
    _C.DATASET_EXPIRED: CodeInfo(
        409,
        "A refit of a model whose training data is no longer stored.",
        "The training data of model 5e0f... is no longer stored; fit a new model.",
    ),
    _C.PAYLOAD_TOO_LARGE: CodeInfo(
        413,
        "The body is over the size cap (MAX_UPLOAD_BYTES).",
        "The request body is larger than the limit of 104857600 bytes (MAX_UPLOAD_BYTES); "
        "send fewer rows per request.",
    ),
    _C.UNSUPPORTED_MEDIA_TYPE: CodeInfo(
        415,
        "A body that is neither JSON nor multipart/form-data.",
        "Content-Type 'text/plain' is not supported; send application/json or "
        "multipart/form-data (a CSV or Parquet `file` plus form fields).",
    ),
    _C.IDEMPOTENCY_KEY_REUSED: CodeInfo(
        422,
        "An Idempotency-Key sent again within 24 h with another request.",
        "This Idempotency-Key was used with a different request in the last 24 hours; use a "
        "new key for a new request.",
    ),
    _C.RATE_LIMITED: CodeInfo(
        429,
        "Too many requests (setups per address, submissions per user); `Retry-After` says "
        "when to try again.",
        "Too many job submissions: the limit is 120 per 60 s; retry in 12 s.",
    ),
    _C.TOO_MANY_JOBS: CodeInfo(
        429,
        "The user already has JOB_MAX_QUEUED_PER_USER unfinished jobs (`Retry-After`).",
        "You have 1000 unfinished jobs (queued or running), the most one account may have at "
        "once (1000); wait for some to finish, or cancel some, then submit again.",
    ),
    _C.TOO_MANY_UPLOADS: CodeInfo(
        429,
        "The user already has UPLOAD_SLOTS_PER_USER large uploads in progress on this API "
        "process (`Retry-After`).",
        "You already have 2 uploads in progress on this server; wait for one to finish.",
    ),
    _C.REQUEST_TIMEOUT: CodeInfo(
        408,
        "A body did not arrive in time: one up to MAX_SMALL_BODY_BYTES within 10 s, a larger "
        "one within UPLOAD_READ_TIMEOUT_S (of taking its upload slot, for a large upload).",
        "The upload did not arrive within 120 s (UPLOAD_READ_TIMEOUT_S); send it again, or in "
        "smaller parts.",
    ),
    _C.UPLOADS_BUSY: CodeInfo(
        503,
        "This API process is already reading UPLOAD_SLOTS large uploads and none finished "
        "within UPLOAD_SLOT_WAIT_S (`Retry-After`).",
        "This server is already receiving 4 large uploads; retry in a few seconds.",
    ),
    _C.INTERNAL_ERROR: CodeInfo(
        500,
        "A bug; the message has the request id to quote.",
        "An unexpected error occurred; quote request id 5f0c2b... when reporting it.",
    ),
    _C.UPSTREAM_UNAVAILABLE: CodeInfo(
        503,
        "The TabPFN service could not be reached to check a token (`Retry-After`).",
        "The TabPFN service cannot be reached to check the token; try again shortly.",
    ),
    _C.SERVICE_UNAVAILABLE: CodeInfo(
        503,
        "The service cannot answer right now, e.g. every database connection of this API "
        "process stayed busy for 15 s (`Retry-After`).",
        "The service is busy: every database connection of this process stayed in use; "
        "retry in a few seconds.",
    ),
    _C.HTTP_ERROR: CodeInfo(
        400, "Any other HTTP error raised by the framework (its status says which).", "Error"
    ),
}

ERROR_CODE_DESCRIPTION = "The error, stable across releases:\n\n" + "\n".join(
    f"- `{code}` ({info.status}): {info.when}" for code, info in CATALOGUE.items()
)


class ErrorBody(BaseModel):
    """Every error: a stable code, a sentence saying what to fix, sometimes details."""

    code: ErrorCode = Field(description=ERROR_CODE_DESCRIPTION)
    message: str = Field(description="What went wrong and what to do about it.")
    details: Any | None = Field(
        default=None,
        description="For VALIDATION_ERROR: every problem, as `{field, problem}` objects.",
    )


# Headers some error statuses carry.
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send an API key.",
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
_STATUS_TEXT = {
    400: "The request is invalid",
    401: "No valid API key",
    403: "Not yours",
    404: "Not found",
    408: "The upload did not arrive in time",
    409: "Not possible in the resource's current state",
    413: "The body is too large",
    415: "Unsupported body type",
    422: "Idempotency-Key reused with another request",
    429: "Too many requests",
    500: "Unexpected error",
    503: "Unavailable right now",
}


def error_response(*codes: ErrorCode) -> dict[str, Any]:
    """The OpenAPI response of one status carrying `codes` (all of that status)."""
    statuses = {CATALOGUE[code].status for code in codes}
    assert len(statuses) == 1, f"{codes} mix statuses {statuses}"
    status = statuses.pop()
    listing = "; ".join(f"`{code}`: {CATALOGUE[code].when}" for code in codes)
    entry: dict[str, Any] = {
        "model": ErrorBody,
        "description": f"{_STATUS_TEXT.get(status, 'Error')}. {listing}",
        "content": {
            "application/json": {
                "examples": {
                    code.value: {
                        "summary": CATALOGUE[code].when.split(";")[0].split(" (")[0],
                        "value": {"code": code.value, "message": CATALOGUE[code].example},
                    }
                    for code in codes
                }
            }
        },
    }
    if status in _STATUS_HEADERS:
        entry["headers"] = _STATUS_HEADERS[status]
    return entry


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """A route's error responses: `codes` grouped by their status, each with true examples."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(CATALOGUE[code].status, []).append(code)
    return {status: error_response(*group) for status, group in sorted(by_status.items())}


# What most routes share. A key's wrong secrets from one address are refused for a while
# (429 RATE_LIMITED), on every route that takes a key; and a route that takes a key uses
# the database, which answers 503 when the process's connections stay busy (api.admission).
AUTH = (ErrorCode.UNAUTHORIZED, ErrorCode.RATE_LIMITED, ErrorCode.SERVICE_UNAVAILABLE)
OWNED = (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND)
INVALID = (ErrorCode.VALIDATION_ERROR,)
SUBMISSION = (
    ErrorCode.VALIDATION_ERROR,
    ErrorCode.LIMIT_EXCEEDED,
    ErrorCode.INVALID_CALLBACK_URL,
    *AUTH,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.IDEMPOTENCY_KEY_REUSED,
    ErrorCode.TOO_MANY_JOBS,
    ErrorCode.TOO_MANY_UPLOADS,
    ErrorCode.REQUEST_TIMEOUT,
    ErrorCode.UPLOADS_BUSY,
)
