"""Logging, set up once per process: text or JSON lines, with request/job context on every line.

Context (request id, user id, job id, attempt) lives in contextvars, so a request's or a
job's whole life can be followed by grepping one id across API and worker logs.

Secrets never belong in a log line; `redact()` is a last line of defence that masks
anything shaped like one of our API keys, webhook secrets or a bearer header.
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
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"log_{name}", default=None) for name in CONTEXT_FIELDS
}

_SECRET_SHAPES = re.compile(
    r"(tpk_[A-Za-z0-9]+_[A-Za-z0-9_\-]+|whsec_[A-Za-z0-9+/=]+|(?i:bearer)\s+[^\s\"',]+)"
)
_configured_label: str | None = None


def redact(text: str) -> str:
    """Mask substrings shaped like our API keys, webhook secrets and bearer credentials."""
    return _SECRET_SHAPES.sub("[REDACTED]", text)


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Attach context fields (e.g. job_id, attempt) to every log line inside the block."""
    tokens = []
    for name, value in values.items():
        if name not in _context:
            raise ValueError(f"unknown log context field {name!r}")
        tokens.append((name, _context[name].set(None if value is None else str(value))))
    try:
        yield
    finally:
        for name, token in reversed(tokens):
            _context[name].reset(token)


def set_log_context(**values: object) -> None:
    """Set context fields for the rest of the current context (e.g. a request's user id)."""
    for name, value in values.items():
        _context[name].set(None if value is None else str(value))


def current_context() -> dict[str, str]:
    """The context fields that are set right now."""
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


class TextFormatter(logging.Formatter):
    """`time LEVEL [logger] message key=value...`, redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(name)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={value}" for key, value in current_context().items())
        return redact(f"{line} {context}" if context else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the context fields, redacted."""

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
        return redact(json.dumps(entry, default=str))


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
    for noisy in ("httpx", "httpcore", "urllib3", "tabpfn_client", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured_label = label
    logging.getLogger(__name__).debug("logging configured for %s", label)
