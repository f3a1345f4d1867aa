"""Request/response values and JSON helpers shared by all stand-in route handlers."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def token_id(token: str) -> str:
    """Short, non-reversible id of a bearer token, so logs and stores never hold the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def new_id() -> str:
    """A fresh UUID string: the client parses every id the server hands out as a UUID."""
    return str(uuid.uuid4())


@dataclass
class Request:
    """One parsed HTTP request; `token` is the bearer token and is never logged or stored."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    host_url: str
    token: str | None = None
    token_id: str | None = None
    # Ids of the uploads and fitted sets this request names or creates, for the request log.
    refs: list[str] = field(default_factory=list)

    @property
    def owner(self) -> str:
        """The authenticated caller's token id (routes that need it run after authentication)."""
        if self.token_id is None:
            raise HTTPFail(error(401, "Invalid token", "UNAUTHORIZED"))
        return self.token_id

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 422 when it is not one."""
        try:
            parsed = json.loads(self.body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPFail(error(422, "Request body is not valid JSON")) from exc
        if not isinstance(parsed, dict):
            raise HTTPFail(error(422, "Request body must be a JSON object"))
        return parsed


@dataclass
class Response:
    """What to answer; `drop` closes the connection without answering at all."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def encode(self) -> bytes:
        """The body bytes; JSON is strict (no NaN/Infinity) because the client parses it."""
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body, allow_nan=False).encode("utf-8")


class HTTPFail(Exception):
    """Raised anywhere in a handler to answer with `response` right away."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def ok(body: Any) -> Response:
    """A 200 JSON response."""
    return Response(status=200, body=body)


def error(
    status: int,
    message: str,
    error_code: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An error body shaped like the real API's: message, optional error_code, and a trace_id."""
    body: dict[str, Any] = {"message": message}
    if error_code is not None:
        body["error_code"] = error_code
    body.update(extra)
    body["trace_id"] = new_id()
    return Response(status=status, body=body, headers=dict(headers or {}))


def not_found(what: str) -> HTTPFail:
    """404 NOT_FOUND; on prepare_test_set_upload the client raises FittedModelNotFoundError."""
    return HTTPFail(error(404, f"{what} not found", "NOT_FOUND"))


def invalid_input(message: str) -> HTTPFail:
    """A 400 for data the baseline cannot fit or predict on."""
    return HTTPFail(error(400, message, "INVALID_INPUT"))


def field_str(body: Mapping[str, Any], name: str) -> str:
    """A required string field, or a 422."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise HTTPFail(error(422, f"Field {name!r} is required and must be a string"))
    return value


def field_uuid(body: Mapping[str, Any], name: str) -> str:
    """A required UUID field in canonical form, or a 422."""
    raw = field_str(body, name)
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise HTTPFail(error(422, f"Field {name!r} must be a UUID")) from exc


def field_obj(body: Mapping[str, Any], name: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON-object field ({} when optional and absent), or a 422."""
    value = body.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise HTTPFail(error(422, f"Field {name!r} must be an object"))
    return value
