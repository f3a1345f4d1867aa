"""Admission to the database phase (api.admission): never more tickets out than the pool
has connections, handed on in order, and a waiter that gives up passes its turn on."""

from __future__ import annotations

import asyncio

from api.admission import Admission, Ticket


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
