"""`Annotated` dependency aliases, so routes stay a few lines long.

Dependencies that do no blocking I/O are `async def`: FastAPI runs every plain `def`
dependency in its thread pool, and each hop there costs more than the work itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.admission import Ticket
from api.context import AppContext
from shared.config import Settings
from shared.errors import ServiceUnavailable


async def get_context(request: Request) -> AppContext:
    """The process-wide resources of the app serving this request."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings_dep(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(context: ContextDep) -> AsyncIterator[Session]:
    """One session per request, made once the request is admitted (`api.admission`: never
    more requests in their database phase than the pool has connections). Routes commit
    explicitly: never commit in this teardown, which since FastAPI 0.118 runs after the
    response is sent. `session.info["ticket"]` is the request's admission.

    Async on purpose: making a session does no I/O, so it needs no thread; closing it may
    (returning a connection rolls it back), so that runs in the thread pool."""
    ticket = Ticket(context.admission)
    await take_ticket(ticket)
    try:
        session = context.db.session()
        session.info["ticket"] = ticket
        try:
            yield session
        finally:
            await run_in_threadpool(session.close)
    finally:
        ticket.release()


SessionDep = Annotated[Session, Depends(get_session)]

# A request waits this long at most for its turn at the database, then gets 503.
ADMISSION_WAIT_S = 15.0


async def take_ticket(ticket: Ticket, timeout_s: float = ADMISSION_WAIT_S) -> None:
    """The request's admission to the database, or 503 SERVICE_UNAVAILABLE when every
    connection stays busy for `timeout_s`."""
    try:
        await ticket.take(timeout_s)
    except TimeoutError:
        raise ServiceUnavailable(
            "The service is busy: every database connection of this process stayed in use; "
            "retry in a few seconds.",
            retry_after_s=2,
        ) from None


@asynccontextmanager
async def outside_database(session: Session) -> AsyncIterator[None]:
    """The request's connection and admission given back while the block waits on something
    else (a body arriving, an upload slot), then its admission taken again. A block that
    raises ends the request, which needs the database no more: no admission is taken."""
    await run_in_threadpool(session.commit)  # ends the transaction: the connection goes back
    ticket: Ticket = session.info["ticket"]
    ticket.release()
    yield
    await take_ticket(ticket)


def done_with_database(session: Session) -> None:
    """Close the request's session and give its admission back, for a route whose remaining
    work (serialising a large result) needs neither. Call from the route's thread."""
    ticket: Ticket = session.info["ticket"]
    session.close()
    ticket.release()
