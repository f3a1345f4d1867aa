"""Reading request bodies: a submission's JSON or multipart, and the small JSON of other routes.

No body is read before the checks that guard it. A submission's body is read only once the
caller is authenticated (`read_body` depends on the API key): then, and only then, may it
grow to MAX_UPLOAD_BYTES (below that, the middleware stops every body at
MAX_SMALL_BODY_BYTES), and a large one takes an upload slot first (`api/uploads.py`). The
small routes parse their JSON in a dependency that comes after their key check or rate
limit, rather than as a declared body, which FastAPI would read and parse before anything.

Bodies are read on the event loop (network I/O); parsing and validation of submissions then
run in the sync route's thread, off the loop.

A body that is slow to arrive holds nothing it does not need: a large one gives the
request's database connection and admission back (`api.deps.outside_database`) before it
waits for its upload slot and its bytes; a small one does so once it has taken longer than
ARRIVAL_GRACE_S, so the usual body, already on the socket, costs no extra round trip. Every
read has a deadline (SMALL_BODY_READ_TIMEOUT_S for a body up to MAX_SMALL_BODY_BYTES,
UPLOAD_READ_TIMEOUT_S for a larger one): 408 REQUEST_TIMEOUT past it. The routes give the
body's bytes and upload slot back (`RawBody.release`) once they have stored the job, so a
request that then waits with `Prefer: wait` holds neither.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from api.auth import CurrentUser, CurrentUserDep
from api.context import AppContext
from api.deps import ContextDep, SessionDep, outside_database
from api.errors import describe_validation_errors
from api.middleware import allow_upload
from api.uploads import LARGE_BODY_BYTES
from shared.errors import RequestTimeout, UnsupportedMediaType, ValidationFailed

MAX_FORM_FIELDS = 30
# A body still arriving after this long gives the request's database connection back.
ARRIVAL_GRACE_S = 0.05
# Bodies up to MAX_SMALL_BODY_BYTES arrive within this or 408 (larger ones, within
# UPLOAD_READ_TIMEOUT_S).
SMALL_BODY_READ_TIMEOUT_S = 10.0
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
SEND_JSON = "send it with `Content-Type: application/json`"


@dataclass
class RawBody:
    """The bytes of a JSON body, or the fields and file of a multipart form."""

    json_bytes: bytes | None = None
    fields: dict[str, str] = field(default_factory=dict)
    file_bytes: bytes | None = None
    filename: str | None = None
    give_back_slot: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def is_multipart(self) -> bool:
        return self.json_bytes is None

    def release(self) -> None:
        """Drop the bytes and give back the upload slot (the job is stored: nothing reads
        them again). Safe to call more than once."""
        if self.json_bytes is not None:
            self.json_bytes = b""
        self.file_bytes = None
        self.fields = {}
        if self.give_back_slot is not None:
            give_back, self.give_back_slot = self.give_back_slot, None
            give_back()


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(content_type: str) -> bool:
    return content_type in ("", "application/json") or content_type.endswith("+json")


def _unsupported(content_type: str, accepted: str) -> UnsupportedMediaType:
    hint = ""
    if content_type == "application/x-www-form-urlencoded":
        # What `curl -d` sends unless told otherwise, even when the data is JSON.
        hint = " (curl -d sends that unless you add -H 'Content-Type: application/json')"
    return UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported{hint}; {accepted}."
    )


def _is_large(request: Request, multipart: bool) -> bool:
    """Whether the body needs an upload slot: a file (Parquet may decode to many times its
    size), a declared length over LARGE_BODY_BYTES, or no declared length at all."""
    declared = request.headers.get("content-length", "")
    return multipart or not declared.isdigit() or int(declared) > LARGE_BODY_BYTES


async def _count_submission(context: AppContext, user: CurrentUser) -> None:
    """The per-user rate limit of job submissions, before a byte of the body is read (a
    rate-limited user pushes no more uploads through)."""
    await run_in_threadpool(
        context.limiter.hit,
        f"jobs:{user.id}",
        context.settings.RATE_LIMIT_JOBS_PER_MINUTE,
        what="job submissions",
    )


async def read_body(
    request: Request, current: CurrentUserDep, context: ContextDep, session: SessionDep
) -> AsyncIterator[RawBody]:
    """The submission body as sent, read once the caller is authenticated (401 first,
    without reading it) and within its rate limit, through an upload slot when large; 415
    for other content types."""
    content_type = _content_type(request)
    multipart = content_type == "multipart/form-data"
    if not multipart and not _is_json(content_type):
        raise _unsupported(
            content_type,
            f"{SEND_JSON}, or a CSV or Parquet `file` plus form fields as multipart/form-data",
        )
    await _count_submission(context, current)
    allow_upload(request.scope)
    if _is_large(request, multipart):
        raw = await _read_large(request, multipart, context, session, owner=str(current.id))
    else:
        timeout_s, setting = _deadline(request, context)
        raw = await _arrive(
            _read(request, multipart), session, timeout_s=timeout_s, what="body", setting=setting
        )
    try:
        yield raw
    finally:
        raw.release()


def _deadline(request: Request, context: AppContext) -> tuple[float, str | None]:
    """How long a body without an upload slot may take to arrive: SMALL_BODY_READ_TIMEOUT_S
    up to MAX_SMALL_BODY_BYTES, and UPLOAD_READ_TIMEOUT_S for a larger one (up to
    LARGE_BODY_BYTES), so a slow link still gets a megabyte through."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= context.settings.MAX_SMALL_BODY_BYTES:
        return SMALL_BODY_READ_TIMEOUT_S, None
    return context.settings.UPLOAD_READ_TIMEOUT_S, "UPLOAD_READ_TIMEOUT_S"


async def _read_large(
    request: Request, multipart: bool, context: AppContext, session: Session, *, owner: str
) -> RawBody:
    """A large body, read through an upload slot, outside the database: waiting for the
    slot and the bytes holds no connection and no admission."""
    give_back: Callable[[], None] | None = None
    try:
        async with outside_database(session):
            give_back = await context.uploads.take(owner)
            timeout_s = context.settings.UPLOAD_READ_TIMEOUT_S
            try:
                async with asyncio.timeout(timeout_s):
                    raw = await _read(request, multipart)
            except TimeoutError:
                raise _too_slow("upload", timeout_s, "UPLOAD_READ_TIMEOUT_S") from None
    except BaseException:
        if give_back is not None:
            give_back()
        raise
    raw.give_back_slot = give_back
    return raw


async def _arrive(
    reading: Coroutine[Any, Any, T],
    session: Session | None,
    *,
    timeout_s: float,
    what: str,
    setting: str | None = None,
) -> T:
    """`reading` within `timeout_s` (408 otherwise). If it has not finished within
    ARRIVAL_GRACE_S, the request's database connection and admission are given back while
    it goes on (the task is awaited, never restarted: no byte read is lost)."""
    task = asyncio.ensure_future(reading)
    try:
        await asyncio.wait((task,), timeout=min(ARRIVAL_GRACE_S, timeout_s))
        if task.done():
            return task.result()
        outside = contextlib.nullcontext() if session is None else outside_database(session)
        async with outside:
            await asyncio.wait((task,), timeout=timeout_s - ARRIVAL_GRACE_S)
            if not task.done():
                raise _too_slow(what, timeout_s, setting)
            # Inside the block: a read that failed raises here, before being admitted again.
            return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _too_slow(what: str, timeout_s: float, setting: str | None = None) -> RequestTimeout:
    if setting is None:
        return RequestTimeout(f"The {what} did not arrive within {timeout_s:g} s; send it again.")
    return RequestTimeout(
        f"The {what} did not arrive within {timeout_s:g} s ({setting}); send it again, or in "
        "smaller parts."
    )


async def _read(request: Request, multipart: bool) -> RawBody:
    if not multipart:
        return RawBody(json_bytes=await request.body())
    form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    try:
        raw = RawBody()
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise ValidationFailed(f"Unexpected file field {key!r}; send it as `file`.")
                raw.file_bytes = await value.read()
                raw.filename = value.filename
            else:
                if "\x00" in value or "\x00" in key:
                    raise ValidationFailed(f"Form field {key!r} holds the NUL character.")
                raw.fields[key] = value
        return raw
    finally:
        await form.close()


async def read_small_json(
    request: Request, model: type[ModelT], session: Session | None = None
) -> ModelT:
    """A small JSON body (the middleware stops it at MAX_SMALL_BODY_BYTES) as `model`,
    within SMALL_BODY_READ_TIMEOUT_S; `session`, the request's, is left while it is slow.

    Routes call this from a dependency that runs after their key check or rate limit."""
    content_type = _content_type(request)
    if not _is_json(content_type):
        raise _unsupported(content_type, SEND_JSON)
    data = await _arrive(request.body(), session, timeout_s=SMALL_BODY_READ_TIMEOUT_S, what="body")
    body = parse_json_object(data)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        message, details = describe_validation_errors(list(error.errors()))
        raise ValidationFailed(message, details=details) from None


async def read_optional_json(
    request: Request, current: CurrentUserDep, context: ContextDep, session: SessionDep
) -> RawBody:
    """A small, optional JSON body (a refit's), read once the caller is authenticated and
    within the submission rate limit; the middleware stops it at MAX_SMALL_BODY_BYTES."""
    content_type = _content_type(request)
    if not _is_json(content_type):
        raise _unsupported(content_type, SEND_JSON)
    await _count_submission(context, current)
    data = await _arrive(request.body(), session, timeout_s=SMALL_BODY_READ_TIMEOUT_S, what="body")
    return RawBody(json_bytes=data)


RawBodyDep = Annotated[RawBody, Depends(read_body)]
OptionalJsonDep = Annotated[RawBody, Depends(read_optional_json)]


_NON_JSON_CONSTANTS = (b"NaN", b"Infinity", b"-Infinity")


def loads(data: bytes | str, what: str = "The body") -> Any:
    """Strict JSON (orjson: several times faster than the standard library on large bodies).

    NaN and Infinity are refused, as are numbers too large to be finite and strings holding
    the NUL character (PostgreSQL cannot store it); the message says where."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raw = data.encode() if isinstance(data, str) else data
        where = f"line {error.lineno}, column {error.colno}"
        if raw[error.pos : error.pos + 9].startswith(_NON_JSON_CONSTANTS):
            problem = "NaN and Infinity are not JSON; send null for a missing value"
        elif "infinity" in error.msg:
            problem = "a number is too large to be finite; send a finite number or null"
        else:
            problem = error.msg
        raise ValidationFailed(f"{what} is not valid JSON: {problem} ({where}).") from None
    raw = data.encode() if isinstance(data, str) else data
    if b"\\u0000" in raw and _holds_nul(parsed):
        raise ValidationFailed(
            f"{what} holds a string with the NUL character (\\u0000); remove it."
        )
    return parsed


def _holds_nul(value: Any) -> bool:
    """Whether any string in a parsed document (keys included) contains NUL. A walk with
    its own stack: orjson accepts nesting a thousand levels deep, past Python's recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return False


def parse_json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying where it stops being valid JSON."""
    if not data.strip():
        raise ValidationFailed("The request body is empty; send a JSON object.")
    parsed = loads(data)
    if not isinstance(parsed, dict):
        raise ValidationFailed("The body must be a JSON object.")
    return parsed


def form_json(fields: dict[str, str], name: str) -> Any:
    """A form field that carries JSON (e.g. `config`, `feature_names`); absent → None."""
    if name not in fields or fields[name].strip() == "":
        return None
    return loads(fields[name], what=f"Form field {name!r}")
