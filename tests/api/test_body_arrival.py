"""A body still arriving after a moment gives the request's database admission back, takes
it again once the body is in, and does not wait to be admitted again when the read fails."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.orm import Session

from api.admission import Admission, Ticket
from api.body import ARRIVAL_GRACE_S, _arrive
from shared.errors import PayloadTooLarge


async def _arrives_later(result: bytes | Exception) -> bytes:
    await asyncio.sleep(ARRIVAL_GRACE_S * 4)
    if isinstance(result, Exception):
        raise result
    return result


def _holds(ticket: Ticket) -> bool:
    """Whether `ticket` is held now (a call, so mypy does not keep an earlier narrowing)."""
    return ticket.held


async def _slow_read_holding_the_only_ticket(
    result: bytes | Exception,
) -> tuple[Admission, Ticket, asyncio.Task[bytes]]:
    """An admission of one ticket, taken by a request whose body arrives (or fails) after
    the grace; its read is under way."""
    admission = Admission(1)
    mine = Ticket(admission)
    await mine.take()
    session = Session()  # bound to nothing: committing it is a no-op
    session.info["ticket"] = mine
    reading = asyncio.create_task(
        _arrive(_arrives_later(result), session, timeout_s=30, what="body")
    )
    return admission, mine, reading


def test_a_slow_body_lends_its_admission_and_takes_it_back() -> None:
    async def scenario() -> None:
        admission, mine, reading = await _slow_read_holding_the_only_ticket(b"{}")
        other = Ticket(admission)
        await other.take(30)  # only possible while the body is still arriving
        assert not mine.held
        other.release()
        assert await reading == b"{}"
        assert _holds(mine) and admission.free == 0

    asyncio.run(scenario())


def test_a_failed_read_raises_its_own_error_without_waiting_for_admission() -> None:
    """Another request holds the only ticket: the failed read's error comes through as it
    is, not as the 503 of an admission it no longer needs."""

    async def scenario() -> None:
        admission, mine, reading = await _slow_read_holding_the_only_ticket(
            PayloadTooLarge("too large")
        )
        other = Ticket(admission)
        await other.take(30)
        with pytest.raises(PayloadTooLarge):
            await reading
        assert not mine.held
        other.release()
        assert admission.free == 1

    asyncio.run(scenario())
