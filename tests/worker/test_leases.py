"""The leases of one worker process (worker.leases): a slot and a shutdown never both win a
lease, and a slot stuck for longer than any work may take gives its job up."""

from __future__ import annotations

import time
import uuid

from scripts.engines import free_port
from shared.db import Database
from tests.support.settings import make_settings
from worker.leases import HeldLease, LeaseKeeper


def test_a_started_call_is_never_handed_back_and_a_handed_back_one_never_starts() -> None:
    calling = HeldLease(uuid.uuid4(), uuid.uuid4())
    assert calling.start_call()
    assert not calling.give_up_unstarted() and not calling.lost.is_set()
    handed_back = HeldLease(uuid.uuid4(), uuid.uuid4())
    assert handed_back.give_up_unstarted() and handed_back.lost.is_set()
    assert not handed_back.start_call() and not handed_back.calling.is_set()


def test_a_lease_held_longer_than_any_work_may_take_is_given_up() -> None:
    settings = make_settings(
        DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        JOB_TIME_LIMIT_S=10,
        JOB_LEASE_S=4.0,
    )
    database = Database(settings, label="test")
    keeper = LeaseKeeper(database, settings)
    try:
        stuck = HeldLease(uuid.uuid4(), uuid.uuid4(), held_since=time.monotonic() - 15)
        keeper._held[stuck.token] = stuck
        # Nothing is left to renew, so the unreachable database is never asked.
        assert keeper.renew_now()
        assert stuck.lost.is_set()
    finally:
        database.dispose()
