"""Admission to the database phase (api.admission): never more tickets out than the pool
has connections, handed on in order, and a waiter that gives up passes its turn on."""

from __future__ import annotations

import asyncio

import pytest

from api.admission import Admission, Ticket
from api.deps import take_ticket
from shared.errors import ServiceUnavailable


def test_tickets_are_bounded_and_handed_on_in_order() -> None:
    async def scenario() -> list[str]:
        admission = Admission(2)
        order: list[str] = []
        first, second = Ticket(admission), Ticket(admission)
        await first.take()
        await second.take()
        assert admission.free == 0

        async def later(name: str) -> None:
            ticket = Ticket(admission)
            await ticket.take()
            order.append(name)
            ticket.release()

        waiting = [asyncio.create_task(later(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0.05)
        assert order == []  # all three wait: no ticket is free
        first.release()
        first.release()  # a second release of one ticket gives nothing back
        await asyncio.gather(*waiting)
        second.release()
        assert admission.free == 2
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    async def scenario() -> int:
        admission = Admission(1)
        held = Ticket(admission)
        await held.take()
        quitter = asyncio.create_task(Ticket(admission).take())
        patient_ticket = Ticket(admission)
        patient = asyncio.create_task(patient_ticket.take())
        await asyncio.sleep(0.05)
        quitter.cancel()
        held.release()
        await patient
        assert patient_ticket.held
        patient_ticket.release()
        return admission.free

    assert asyncio.run(scenario()) == 1


def test_a_ticket_not_free_in_time_is_a_timeout_and_passes_nothing_on() -> None:
    async def scenario() -> int:
        admission = Admission(1)
        held = Ticket(admission)
        await held.take()
        late = Ticket(admission)
        with pytest.raises(TimeoutError):
            await late.take(0.05)
        assert not late.held
        held.release()
        return admission.free

    assert asyncio.run(scenario()) == 1


def test_a_full_admission_answers_503_after_the_wait() -> None:
    async def scenario() -> None:
        admission = Admission(1)
        await Ticket(admission).take()
        with pytest.raises(ServiceUnavailable) as refused:
            await take_ticket(Ticket(admission), timeout_s=0.05)
        assert refused.value.status_code == 503
        assert refused.value.headers == {"Retry-After": "2"}

    asyncio.run(scenario())
