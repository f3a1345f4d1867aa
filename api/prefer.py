"""`Prefer: wait[=N]` (RFC 7240 §4.3): hold the answer until the job ends or N seconds pass.

On `POST /models/fit`, `POST /models/{id}/predict`, `POST /models/{id}/refit` and
`GET /jobs/{id}`. The route does its usual (synchronous) work in the thread pool and
renders the job; when the client asked to wait and the job has not ended, `hold()`:

1. registers a waiter for the job (`api.job_waiters`; none past PREFER_WAIT_MAX_WAITERS, or
   PREFER_WAIT_MAX_WAITERS_PER_USER of the job's user: then the usual answer goes out at
   once, without `Preference-Applied`);
2. reads the job's status once more and closes the request's session, so the connection
   goes back to the pool and the request's admission (`api.admission`) to the next request
   (an end that committed between the route's read and the registration is seen here);
3. awaits the waiter for at most N seconds: a future, holding no thread and no connection
   (and no upload slot or body: the submitting routes gave those back); a client that
   disconnects meanwhile ends the wait, and nothing more is done for it;
4. is admitted again, reads the job and answers it: 200 when it ended, else the route's usual status
   (202 for the POSTs) with a fresh `Retry-After`.

The answers these routes return carry `Vary: Prefer`: the header changes what comes back
(error answers do not depend on it).

`Preference-Applied: wait=N` says the preference was honoured (N after clamping: a bare
`wait`, or any N above 60, means 60). A value that is not a number is ignored, as RFC 7240
asks of preferences a server does not understand; `wait=0` means do not wait.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.admission import Ticket
from api.context import AppContext
from api.deps import take_ticket
from api.job_waiters import Waiter
from api.services.polling import set_poll_headers
from shared import metrics
from shared.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from shared.jobs.schemas import JobOut, job_out
from shared.models import Job, JobStatus

MAX_WAIT_S = 60
PREFER_DESCRIPTION = (
    "`wait=N` (RFC 7240): hold the answer until the job has ended or N seconds have passed "
    f"(at most {MAX_WAIT_S}; a bare `wait` means {MAX_WAIT_S}). A job that ended is answered "
    "200; otherwise the usual status. `Preference-Applied: wait=N` says it was honoured."
)


def requested_wait(values: list[str]) -> int | None:
    """N from the `Prefer` header(s), clamped to MAX_WAIT_S; None when not asked for."""
    for value in values:
        for preference in value.split(","):
            name, has_value, argument = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            if not has_value:
                return MAX_WAIT_S
            digits = argument.strip().strip('"')
            if not digits.isascii() or not digits.isdigit():
                return None  # not understood: ignored
            significant = digits.lstrip("0")
            # More than three digits is past MAX_WAIT_S whatever they are; never int() them all.
            seconds = MAX_WAIT_S if len(significant) > 3 else int(significant or "0")
            return min(seconds, MAX_WAIT_S) or None
    return None


@dataclass(frozen=True)
class WaitRequest:
    """What `Prefer` asked of a request: wait at most `seconds` (None: do not wait); the
    request itself, to notice a client that goes away while it waits."""

    seconds: int | None
    request: Request


async def prefer_wait(
    request: Request,
    response: Response,
    prefer: Annotated[str | None, Header(alias="Prefer", description=PREFER_DESCRIPTION)] = None,
) -> WaitRequest:
    """The wait the client asked for (the parameter documents the header; every `Prefer`
    header line is read)."""
    del prefer
    response.headers["Vary"] = "Prefer"
    return WaitRequest(requested_wait(request.headers.getlist("prefer")), request)


PreferWaitDep = Annotated[WaitRequest, Depends(prefer_wait)]


def polled(session: Session, context: AppContext, response: Response, job: Job) -> JobOut:
    """The job as a poll answers it: with `Retry-After` while it has not ended."""
    position = set_poll_headers(
        response, session, job, running_cap=context.settings.JOB_MAX_RUNNING_PER_USER
    )
    return job_out(job, queue_position=position)


def reread(session: Session, context: AppContext, response: Response, job: Job) -> JobOut:
    """The job as it is now (after a wait)."""
    current = session.get(Job, job.id, populate_existing=True)
    if current is None:  # deleted while the request waited
        raise NotFound(f"No job with id {job.id}.")
    return polled(session, context, response, current)


def _ended_then_release(session: Session, job: Job) -> bool:
    """Whether the job has ended (or is gone); the session's connection is given back (and
    the request's admission, after this returns)."""
    try:
        status = session.scalar(select(Job.status).where(Job.id == job.id))
        return status is None or JobStatus(status).is_final
    finally:
        session.close()


async def hold(
    rendered: JobOut,
    job: Job,
    *,
    wait: WaitRequest,
    response: Response,
    session: Session,
    context: AppContext,
) -> JobOut:
    """The answer to a request that may have asked to wait (see the module docstring)."""
    wait_s = wait.seconds
    if wait_s is None:
        return rendered
    if rendered.status.is_final:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
        response.status_code = 200
        return rendered
    with context.waiters.register(job.id, job.user_id) as waiter:
        if waiter is None:
            return rendered  # this process, or this user, holds all the waits it may: answer now
        response.headers["Preference-Applied"] = f"wait={wait_s}"
        ended = await run_in_threadpool(_ended_then_release, session, job)
        ticket: Ticket = session.info["ticket"]
        ticket.release()
        if not ended and not await _wait_while_connected(context, waiter, wait):
            return rendered  # the client has gone: nobody reads the answer
    try:
        await take_ticket(ticket)
    except ServiceUnavailable:
        # The job exists (a POST stored it): its usual answer, with where to poll, rather
        # than a 503 that would invite a client to submit it again.
        return rendered
    current = await run_in_threadpool(reread, session, context, response, job)
    if current.status.is_final:
        response.status_code = 200
    return current


async def _wait_while_connected(context: AppContext, waiter: Waiter, wait: WaitRequest) -> bool:
    """Wait for the job as `wait` asks; False when the client disconnected first, or sent
    a body over its cap (a GET's unread body, seen by the watch: the middleware answers 413)."""
    assert wait.seconds is not None
    watching = asyncio.ensure_future(_until_disconnected(wait.request))
    waiting = asyncio.ensure_future(context.waiters.wait(waiter, wait.seconds))
    try:
        done, _ = await asyncio.wait((waiting, watching), return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            return True
        failure = watching.exception()
        if isinstance(failure, PayloadTooLarge):  # a body over its cap: 413 now, not after
            return False
        if failure is not None:  # the server would not say: wait unwatched
            await waiting
            return True
        metrics.PREFER_WAITS.labels("disconnected").inc()
        return False
    finally:
        for task in (waiting, watching):
            task.cancel()
        await asyncio.gather(waiting, watching, return_exceptions=True)


# Between two messages from the server that are not the disconnect (a server that sends
# them), the watch pauses this long, so it never spins.
_WATCH_PAUSE_S = 1.0


async def _until_disconnected(request: Request) -> None:
    """Return when the client disconnects. The body has been read (or there is none), so
    the next ASGI message is the disconnect: one await, no polling."""
    while True:
        started = time.monotonic()
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(max(0.0, _WATCH_PAUSE_S - (time.monotonic() - started)))
