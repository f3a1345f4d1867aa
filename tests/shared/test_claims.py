"""The fair claim (shared.jobs.claims) against a real PostgreSQL: round-robin across users,
the per-user cap, status checks, parked users, exclusivity, and lease renewal."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from shared.db import Database
from shared.jobs import claims
from shared.models import Job, JobStatus, User
from tests.support.rows import add_jobs, add_user, db, job, unit_db

__all__ = ["db", "unit_db"]  # fixtures


def claim(database: Database, limit: int, cap: int = 8) -> claims.Claimed:
    with database.session_scope() as session:
        return claims.claim(session, limit=limit, max_running_per_user=cap, lease_s=30)


def owners(claimed: claims.Claimed) -> list[uuid.UUID]:
    return [c.job.user_id for c in claimed.claims]


def test_another_users_first_job_comes_before_a_long_backlog(db: Database) -> None:
    """1,000 jobs queued by one user, then one by another: the other's job is in the very
    next claim of two (turn 1 for both users), not behind the backlog."""
    with db.session_scope() as session:
        backlog, newcomer = add_user(session), add_user(session)
        add_jobs(session, backlog, 1000, created_at=datetime.now(UTC) - timedelta(hours=1))
        [theirs] = add_jobs(session, newcomer, 1)
    claimed = claim(db, limit=2)
    assert sorted(owners(claimed)) == sorted([backlog.id, newcomer.id])
    first = next(c for c in claimed.claims if c.job.id == theirs)
    assert first.job.status is JobStatus.RUNNING and first.job.attempts == 1
    assert first.lease_token is not None and not first.is_status_check
    # A user with fewer jobs in slots goes first, however old the other's backlog is.
    with db.session_scope() as session:
        [second] = add_jobs(session, newcomer, 1)
        session.execute(update(Job).where(Job.id == theirs).values(status=JobStatus.SUCCEEDED))
    assert [c.job.id for c in claim(db, limit=1).claims] == [second]


def test_users_take_turns_oldest_first(db: Database) -> None:
    with db.session_scope() as session:
        users = [add_user(session) for _ in range(3)]
        for offset, user in enumerate(users):
            add_jobs(session, user, 5, created_at=datetime.now(UTC) + timedelta(seconds=offset))
    claimed = claim(db, limit=6)
    assert sorted(owners(claimed)) == sorted([u.id for u in users] * 2)
    # Within a turn the user with the oldest job goes first.
    with db.session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.status == JobStatus.RUNNING)
            .values(status=JobStatus.SUCCEEDED, lease_token=None)
        )
    assert sorted(owners(claim(db, limit=2))) == sorted([users[0].id, users[1].id])


def test_the_cap_counts_jobs_in_slots_not_fits_waiting_upstream(db: Database) -> None:
    """Jobs uploading, submitting or predicting count; submitted fits, waiting or being
    checked on, do not."""
    with db.session_scope() as session:
        user = add_user(session)
        add_jobs(session, user, 2, status=JobStatus.RUNNING, lease_token=uuid.uuid4(), attempts=1)
        add_jobs(
            session,
            user,
            2,
            status=JobStatus.RUNNING,
            upstream_fit_id="f",
            attempts=1,
            lease_token=uuid.uuid4(),
        )
        add_jobs(
            session,
            user,
            5,
            status=JobStatus.RUNNING,
            upstream_fit_id="f",
            attempts=1,
            next_check_at=datetime.now(UTC) + timedelta(hours=1),
        )
        queued = add_jobs(session, user, 5)
    claimed = claim(db, limit=10, cap=3)
    assert [c.job.id for c in claimed.claims] == queued[:1]
    assert claim(db, limit=10, cap=3).claims == []


def test_due_status_checks_are_claimed_first_and_not_capped(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session_scope() as session:
        user = add_user(session)
        waiting = {"status": JobStatus.RUNNING, "upstream_fit_id": "fit", "attempts": 1}
        due = add_jobs(session, user, 4, next_check_at=now - timedelta(seconds=1), **waiting)
        add_jobs(session, user, 1, next_check_at=now + timedelta(seconds=30), **waiting)
        queued = add_jobs(session, user, 1)
    claimed = claim(db, limit=10, cap=2)
    checks = [c for c in claimed.claims if c.is_status_check]
    assert sorted(c.job.id for c in checks) == sorted(due)
    assert all(c.job.attempts == 1 for c in checks)  # a check is no new attempt
    # Slots doing status checks do not count towards the cap: the queued job runs too.
    assert queued[0] in {c.job.id for c in claimed.claims}
    assert claimed.next_due_in_s is not None and 25 < claimed.next_due_in_s <= 30


def test_parked_users_and_future_jobs_wait(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session_scope() as session:
        parked = add_user(session, upstream_parked_until=now + timedelta(seconds=60))
        free = add_user(session)
        add_jobs(session, parked, 3)
        later = add_jobs(session, free, 1, run_after=now + timedelta(seconds=10))
        [now_due] = add_jobs(session, free, 1)
    claimed = claim(db, limit=10)
    assert [c.job.id for c in claimed.claims] == [now_due]
    assert claimed.next_due_in_s is not None and 5 < claimed.next_due_in_s <= 10
    with db.session_scope() as session:
        session.execute(update(User).where(User.id == parked.id).values(upstream_parked_until=None))
        session.execute(update(Job).where(Job.id == later[0]).values(run_after=now))
    assert len(claim(db, limit=10).claims) == 4


def test_concurrent_claims_never_take_a_job_twice(db: Database) -> None:
    with db.session_scope() as session:
        users = [add_user(session) for _ in range(10)]
        for user in users:
            add_jobs(session, user, 20)
    taken: list[uuid.UUID] = []
    lock = threading.Lock()

    def claimer() -> None:
        while True:
            got = claim(db, limit=7, cap=100).claims
            if not got:
                return
            with lock:
                taken.extend(c.job.id for c in got)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(taken) == 200 and len(set(taken)) == 200


def test_renewal_keeps_only_leases_still_held(db: Database) -> None:
    with db.session_scope() as session:
        user = add_user(session)
        add_jobs(session, user, 3)
    held = claim(db, limit=3).claims
    canceled = held[0]
    with db.session_scope() as session:
        session.execute(
            update(Job).where(Job.id == canceled.job.id).values(status=JobStatus.CANCELED)
        )
        kept = claims.renew(session, [c.lease_token for c in held], lease_s=30)
        assert kept == {c.lease_token for c in held[1:]}
        assert job(session, held[1].job.id).lease_expires_at is not None


def test_checks_leave_room_for_queued_work_and_skip_parked_users(db: Database) -> None:
    now = datetime.now(UTC)
    waiting = {"status": JobStatus.RUNNING, "upstream_fit_id": "fit", "attempts": 1}
    with db.session_scope() as session:
        busy_user, newcomer = add_user(session), add_user(session)
        parked = add_user(session, upstream_parked_until=now + timedelta(minutes=1))
        add_jobs(session, busy_user, 20, next_check_at=now - timedelta(seconds=1), **waiting)
        held_back = add_jobs(
            session, parked, 3, next_check_at=now - timedelta(seconds=1), **waiting
        )
        queued = add_jobs(session, newcomer, 4)
    claimed = claim(db, limit=8)
    checks = [c for c in claimed.claims if c.is_status_check]
    assert len(checks) == 4  # half the batch
    assert {c.job.id for c in claimed.claims if not c.is_status_check} == set(queued)
    assert not {c.job.id for c in checks} & set(held_back)
    # With nothing queued, checks fill the whole batch; the parked user's still wait.
    rest = claim(db, limit=30).claims
    assert len(rest) == 16 and not {c.job.id for c in rest} & set(held_back)
