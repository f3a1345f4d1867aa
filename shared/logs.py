"""Logging, set up once per process: text or JSON lines, with request/job context on every line.

Context (request id, user id, job id, attempt) lives in contextvars, so a request's or a
job's whole life can be followed by grepping one id across API and worker logs.

Secrets never belong in a log line; `redact()` is a last line of defence that masks
anything shaped like one of our API keys, webhook secrets or a bearer header, and the
`DETAIL:` line of PostgreSQL errors: it quotes row values ("Key (token_fingerprint)=(…)
already exists"), and psycopg and SQLAlchemy carry it into every exception's text.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("request_id", "user_id", "job_id", "attempt")
# One dict per scope. A context copied into a worker thread (FastAPI runs sync dependencies
# and routes in a thread pool) shares the dict, so a field set there (the user id, found by
# the auth dependency) reaches every later line of the request.
_scope: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_scope", default=None
)

_SECRET_SHAPES = re.compile(
    r"(tpk_[A-Za-z0-9]+_[A-Za-z0-9_\-]+|whsec_[A-Za-z0-9+/=]+|(?i:bearer)\s+[^\s\"',]+)"
)
# To the end of the line: the values follow on it. (In a repr the newlines are escaped, so
# the rest of that one-line text goes too: better too much than a value.)
_POSTGRES_DETAIL = re.compile(r"DETAIL:[^\n]*")
_configured_label: str | None = None


def redact(text: str) -> str:
    """Mask substrings shaped like our API keys, webhook secrets and bearer credentials, and
    PostgreSQL `DETAIL:` lines (row values)."""
    return _SECRET_SHAPES.sub("[REDACTED]", _POSTGRES_DETAIL.sub("DETAIL: [REDACTED]", text))


def _checked(values: dict[str, object]) -> dict[str, str]:
    unknown = set(values) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s) {sorted(unknown)}")
    return {name: str(value) for name, value in values.items() if value is not None}


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Attach context fields (e.g. job_id, attempt) to every log line inside the block."""
    token = _scope.set({**(_scope.get() or {}), **_checked(values)})
    try:
        yield
    finally:
        _scope.reset(token)


def set_log_context(**values: object) -> None:
    """Add fields to the current scope, visible to the rest of it (even across threads)."""
    scope = _scope.get()
    if scope is None:
        _scope.set(_checked(values))
    else:
        scope.update(_checked(values))


def current_context() -> dict[str, str]:
    """The context fields that are set right now."""
    return dict(_scope.get() or {})


class TextFormatter(logging.Formatter):
    """`time LEVEL [logger] message key=value...`, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(name)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={value}" for key, value in current_context().items())
        return redact(f"{line} {context}" if context else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the context fields, each text redacted before it is
    encoded (in the encoded line a traceback's newlines are gone)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            **current_context(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        redacted = {k: redact(v) if isinstance(v, str) else v for k, v in entry.items()}
        return json.dumps(redacted, default=str)


def setup_logging(level: str, fmt: str, *, label: str) -> None:
    """Configure the root logger once per process; later calls only adjust the level."""
    global _configured_label  # noqa: PLW0603 - one configuration per process is the point
    root = logging.getLogger()
    root.setLevel(level)
    if _configured_label is not None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.handlers[:] = [handler]
    # Route uvicorn's and Celery's loggers through the same handler; our request middleware
    # writes the access line (with the request id), so uvicorn's own is switched off.
    for name in ("uvicorn", "uvicorn.error", "celery", "celery.task", "celery.worker"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "tabpfn_client", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured_label = label
    logging.getLogger(__name__).debug("logging configured for %s", label)
