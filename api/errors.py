"""Exception handlers: every error leaves the API as `{"code", "message", "details"?}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import AppError

# The codes of errors the framework raises (404 for an unknown route, 405, ...).
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}
FALLBACK_CODE = "HTTP_ERROR"


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    """`("body", "features", 3)` -> `features[3]`; the `body` prefix says nothing to a user."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "request"


def describe_validation_errors(errors: list[Any]) -> tuple[str, list[dict[str, str]]]:
    """A sentence for the first problem and a list of all, without echoing input values
    (a rejected body may hold a token)."""
    details = [
        {"field": _location(tuple(err.get("loc", ()))), "problem": str(err.get("msg", "invalid"))}
        for err in errors
    ]
    if not details:
        return "The request is invalid.", details
    first = details[0]
    more = f" ({len(details) - 1} more problem(s) in details)" if len(details) > 1 else ""
    return f"{first['field']}: {first['problem']}{more}.", details


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code, exc.code, exc.message, details=exc.details, headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, details = describe_validation_errors(list(exc.errors()))
    return error_response(400, "VALIDATION_ERROR", message, details=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, FALLBACK_CODE)
    if exc.status_code == 404:
        message = f"No resource at {request.method} {request.url.path}; see /docs for the API."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


def register_error_handlers(app: FastAPI) -> None:
    """Route every exception type to its renderer."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions are rendered by RequestContextMiddleware, inside the log context.
