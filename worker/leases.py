"""The leases a worker process holds, renewed together by one heartbeat thread.

Every piece of work a slot holds (a job being uploaded, submitted or predicted, or a status
check of a submitted fit) has a lease: a token and an expiry on the job row. One thread per
process renews all of them in a single UPDATE every JOB_HEARTBEAT_S, so a process with 32
calls in flight costs the database one statement per beat, not 32.

A lease is *lost* when a renewal no longer matches its row (the job was canceled, or the
sweeper gave it to another worker after this one stalled), when renewals have failed for
longer than the lease lasts (the database was unreachable, so a recovery may already have
taken the job), or when its slot has held it for longer than any piece of work may take
(JOB_TIME_LIMIT_S plus a lease: the slot is stuck, so its lease is left to expire and the
sweeper hands the job to another worker). A slot whose lease is lost does not start an
upstream call, and its final write, which requires the token, cannot land anyway. A call
already under way completes upstream; its result is discarded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from shared.config import Settings
from shared.db import Database
from shared.jobs import claims

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLease:
    """One job's lease, as its slot sees it.

    `calling` is set once the slot has started the upstream call that creates work there (a
    submit or a prediction): from then on, handing the job back could make it run twice.
    The slot's "start the call" and a shutdown's "hand it back" decide under one lock, so
    exactly one of them wins."""

    job_id: uuid.UUID
    token: uuid.UUID
    lost: threading.Event = field(default_factory=threading.Event, compare=False)
    calling: threading.Event = field(default_factory=threading.Event, compare=False)
    held_since: float = field(default_factory=time.monotonic, compare=False)
    _decide: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def start_call(self) -> bool:
        """Before the upstream call: True if the lease is still ours, and it now stays so."""
        with self._decide:
            if self.lost.is_set():
                return False
            self.calling.set()
            return True

    def give_up_unstarted(self) -> bool:
        """For a hand-back: True (and the lease is now lost) if no call has started."""
        with self._decide:
            if self.calling.is_set():
                return False
            self.lost.set()
            return True


class LeaseKeeper:
    """Holds this process's leases and keeps them alive."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._held: dict[uuid.UUID, HeldLease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: uuid.UUID, token: uuid.UUID) -> HeldLease:
        lease = HeldLease(job_id, token)
        with self._lock:
            self._held[token] = lease
        return lease

    def drop(self, lease: HeldLease) -> None:
        with self._lock:
            self._held.pop(lease.token, None)

    def held(self) -> list[HeldLease]:
        with self._lock:
            return list(self._held.values())

    def renew_now(self) -> bool:
        """Renew every held lease once; False when the database could not be reached."""
        longest = self.settings.JOB_TIME_LIMIT_S + self.settings.JOB_LEASE_S
        held = []
        for lease in self.held():
            if time.monotonic() - lease.held_since <= longest:
                held.append(lease)
            elif not lease.lost.is_set():
                logger.error(
                    "a slot has held job %s for over %d s; leaving it to the sweeper",
                    lease.job_id,
                    longest,
                )
                lease.lost.set()
        held = [lease for lease in held if not lease.lost.is_set()]
        if not held:
            return True
        try:
            with self.database.session_scope() as session:
                kept = claims.renew(
                    session, [lease.token for lease in held], lease_s=self.settings.JOB_LEASE_S
                )
        except Exception as error:  # a database blip: try again at the next beat
            logger.warning("lease renewal failed: %s", type(error).__name__)
            return False
        for lease in held:
            if lease.token not in kept and not lease.lost.is_set():
                logger.info(
                    "lease of job %s lost (canceled or taken over); its outcome will be discarded",
                    lease.job_id,
                )
                lease.lost.set()
        return True

    def _beat(self) -> None:
        renewed_at = time.monotonic()
        while not self._stop.wait(self.settings.JOB_HEARTBEAT_S):
            if self.renew_now():
                renewed_at = time.monotonic()
            elif time.monotonic() - renewed_at > self.settings.JOB_LEASE_S:
                # Unrenewed past their length, the leases may already belong to recovery
                # attempts: none of this process's work may write an outcome or call out.
                logger.warning("leases expired while the database was unreachable")
                for lease in self.held():
                    lease.lost.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
