"""Following a job to its end: `Prefer: wait` when the service honours it, polling otherwise.

Every `GET /jobs/{id}` asks the service to hold the answer (`Prefer: wait=N`, RFC 7240,
N ≤ 60). A service that honours it says so with `Preference-Applied`, and the next request
goes out at once: the wait happened server-side. A service that does not answers at once
with `Retry-After`, and the client sleeps that long before asking again. So one client
works against both, and the same code loses nothing when the service learns to wait.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tabpfn_api_client import errors
from tabpfn_api_client._http import HttpCore, parse_retry_after
from tabpfn_api_client.records import Job

MAX_HOLD_S = 60
DEFAULT_POLL_S = 1.0
MIN_POLL_S = 0.05
MAX_POLL_S = 30.0
# Between two held requests that came back early, so a service that ends holds early never
# turns the loop into a busy one.
MIN_SPACING_S = 0.1


def hold_seconds(wait: float) -> int:
    """The N of `Prefer: wait=N`: whole seconds, 1 to 60."""
    return max(1, min(MAX_HOLD_S, math.ceil(wait)))


@dataclass(frozen=True)
class Fetched:
    job: Job
    held: bool
    retry_after: float | None


def fetch(core: HttpCore, timeout: float, job_id: str, wait: float | None) -> Fetched:
    """`GET /jobs/{id}`, asking the service to hold the answer for up to `wait` seconds."""
    headers: dict[str, str] = {}
    request_timeout: httpx.Timeout | None = None
    if wait:
        hold = hold_seconds(wait)
        headers["Prefer"] = f"wait={hold}"
        request_timeout = httpx.Timeout(timeout, read=timeout + hold)
    response = core.request(
        "GET", f"/api/v1/jobs/{job_id}", headers=headers, timeout=request_timeout
    )
    applied = response.headers.get("preference-applied", "")
    return Fetched(
        job=Job.from_json(response.json()),
        held=bool(wait) and "wait" in applied.lower(),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def raise_for_outcome(job: Job) -> Job:
    """The job when it succeeded; JobFailedError or JobCanceledError otherwise."""
    if job.status == "failed":
        code = job.error.code if job.error else "FAILED"
        message = job.error.message if job.error else "The job failed."
        raise errors.JobFailedError(f"Job {job.id} failed: {message}", code=code, job=job)
    if job.status == "canceled":
        raise errors.JobCanceledError(f"Job {job.id} was canceled.", code="CANCELED", job=job)
    return job


def wait(
    core: HttpCore,
    timeout: float,
    job: Job | str,
    *,
    timeout_s: float | None,
    on_update: Callable[[Job], None] | None,
    raise_on_failure: bool,
    max_hold: float = MAX_HOLD_S,
) -> Job:
    """Follow `job` until it is succeeded, failed or canceled (see the module docstring)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    current = job if isinstance(job, Job) else None
    job_id = job.id if isinstance(job, Job) else job
    while True:
        if current is not None:
            if on_update is not None:
                on_update(current)
            if current.is_finished:
                return raise_for_outcome(current) if raise_on_failure else current
        remaining = math.inf if deadline is None else deadline - time.monotonic()
        if remaining <= 0 and current is not None:
            raise errors.WaitTimeoutError(
                f"Job {job_id} is still {current.status} after {timeout_s:g} s; it carries on: "
                "wait for it again, or cancel it.",
                code="WAIT_TIMEOUT",
                job=current,
            )
        started = time.monotonic()
        hold = min(remaining, max_hold)
        fetched = fetch(core, timeout, job_id, hold if hold > 0 else None)
        current = fetched.job
        if current.is_finished:
            continue
        if fetched.held:
            pause = MIN_SPACING_S - (time.monotonic() - started)
        else:
            pause = fetched.retry_after if fetched.retry_after is not None else DEFAULT_POLL_S
            pause = min(max(pause, MIN_POLL_S), MAX_POLL_S)
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - time.monotonic()))
        if pause > 0:
            core.sleep(pause)
