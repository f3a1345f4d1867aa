"""One HTTP request to the service, with bounded retries and errors mapped to exceptions.

What is retried, and why that is safe:

- 429 and 503: the service refused the request before doing anything, so sending it again
  is harmless. The wait is the answer's `Retry-After` (seconds or an HTTP date), or an
  exponential backoff with jitter when it has none; a `Retry-After` longer than
  `max_retry_wait` is not waited out but raised at once, so no call sleeps for minutes.
- A connection that could not be opened: nothing reached the service.
- Any other transport failure (a reset, a read timeout) only when a repeat cannot do
  anything twice: reads, deletes, and job-creating POSTs that carry an `Idempotency-Key`
  (the service answers a repeated key with the job the first attempt made).

Everything else is raised as the matching `errors` class after the first answer.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import httpx

from tabpfn_api_client import errors
from tabpfn_api_client._version import __version__

RETRY_STATUSES = frozenset({429, 503})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
Sleep = Callable[[float], None]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, … capped at 8 s."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0**attempt)
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security


def error_from_response(response: httpx.Response) -> errors.APIStatusError:
    """The exception for an error answer: its `code` and `message`, or the status alone."""
    code, message, details = f"HTTP_{response.status_code}", "", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        code = body["code"]
        message = str(body.get("message", ""))
        details = body.get("details")
    if not message:
        text = response.text.strip().splitlines()
        message = text[0][:300] if text else (response.reason_phrase or "no message")
    cls = errors.error_class(response.status_code)
    return cls(
        message,
        code=code,
        status=response.status_code,
        details=details,
        request_id=response.headers.get("x-request-id"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


class HttpCore:
    """The client's HTTP connection pool and the retry loop around every request."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.max_retries = max(0, max_retries)
        self.max_retry_wait = max_retry_wait
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"tabpfn-api-client/{__version__}"},
        )

    def close(self) -> None:
        self.http.close()

    def _auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            raise errors.MissingAPIKeyError(
                "This call needs an API key: pass api_key=, set TABPFN_API_KEY, or run "
                "`tabpfn-api setup`. (A pickled estimator never carries its key.)"
            )
        return {"Authorization": f"Bearer {self.api_key}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: httpx.Timeout | float | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request (retrying as the module docstring says) and return its answer.

        Error statuses raise, except those in `accept`, which are returned as answers."""
        sent_headers = dict(headers or {})
        if auth:
            sent_headers.update(self._auth_headers())
        replay_safe = method in ("GET", "HEAD", "PUT", "DELETE") or (
            "Idempotency-Key" in sent_headers
        )
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self.http.request(
                    method,
                    path,
                    json=json,
                    content=content,
                    headers=sent_headers,
                    params=query,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as error:
                retryable = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                if last or not (retryable or replay_safe):
                    raise errors.APIConnectionError(
                        f"{method} {self.base_url}{path} failed: {type(error).__name__}: {error}"
                    ) from None
                self.sleep(backoff(attempt))
                continue
            if response.status_code in accept or response.status_code < 400:
                return response
            if response.status_code in RETRY_STATUSES and not last:
                delay = parse_retry_after(response.headers.get("retry-after"))
                if delay is None:
                    delay = backoff(attempt)
                if delay <= self.max_retry_wait:
                    self.sleep(delay)
                    continue
            raise error_from_response(response)
        raise AssertionError("unreachable: the last attempt returns or raises")
