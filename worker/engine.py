"""A worker process's engine: many upstream calls in flight, claimed fairly from the job table.

Each prefork child that consumes the job queues runs one Engine (started after the fork):

- a pool of WORKER_UPSTREAM_CONCURRENCY *slot* threads, each running one claimed piece of
  work at a time (`worker.execution`);
- a *dispatcher* thread that claims work whenever a slot is free (`shared.jobs.claims`):
  woken by a job message (the Celery task only nudges it), by a slot that finished, when
  the next retry or status check is due, and at least every WORKER_CLAIM_INTERVAL_S;
- the *lease keeper*, one heartbeat thread renewing every lease the process holds.

Why threads: tabpfn-client is synchronous (httpx), and a slot spends its time waiting on the
network, with the GIL released. The prefork pool still isolates crashes: a child that dies
takes only its own slots with it; their leases expire and the sweeper recovers the jobs. No
token is ever process-global: each call carries its user's token in its own headers.

A warm shutdown stops claiming, gives the slots up to JOB_LEASE_S to finish, then hands back
what has not reached the upstream yet (a submitted fit waits on the upstream again; other
jobs return to the queue with their attempt given back), so the next worker takes them at
once. Work whose upstream call is under way is not handed back, which could run it twice:
its lease expires, and the sweeper recovers the job.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from shared import metrics
from shared.jobs import claims, waits
from shared.jobs.claims import Claim
from worker import execution
from worker.leases import HeldLease, LeaseKeeper
from worker.runtime import WorkerRuntime, get_runtime

logger = logging.getLogger(__name__)

# At most this many claims per round, so that under a burst several processes (and cores)
# share the work instead of the first to wake taking every due job.
CLAIM_BATCH = 8
# After a full batch, the pause that lets other processes claim before this one goes again.
_YIELD_S = 0.005


class Engine:
    """Up to `concurrency` pieces of work in flight in this process."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.concurrency = self.settings.WORKER_UPSTREAM_CONCURRENCY
        self.leases = LeaseKeeper(runtime.db, self.settings)
        self._slots = ThreadPoolExecutor(self.concurrency, thread_name_prefix="upstream-slot")
        self._busy = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)

    @property
    def in_flight(self) -> int:
        """Slots doing work right now."""
        return self._busy

    def start(self) -> None:
        self.leases.start()
        self._dispatcher.start()
        logger.info("engine started: %d upstream slots", self.concurrency)

    def nudge(self) -> None:
        """Look for due work now (a job message arrived)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, let running work finish for a while, hand back the rest."""
        self._stopping.set()
        self._wake.set()
        self._dispatcher.join(timeout=10)
        deadline = time.monotonic() + self.settings.JOB_LEASE_S
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(timeout=max(deadline - time.monotonic(), 0.01))
        left = [lease for lease in self.leases.held() if lease.give_up_unstarted()]
        for lease in left:
            self._hand_back(lease)
        self.leases.stop()
        self._slots.shutdown(wait=False, cancel_futures=True)
        logger.info("engine stopped; %d unstarted piece(s) of work handed back", len(left))

    def _hand_back(self, lease: HeldLease) -> None:
        lease.lost.set()  # whatever the slot still does must not write an outcome
        try:
            with self.runtime.db.session_scope() as session:
                waits.release_unstarted(session, lease.job_id, lease_token=lease.token)
        except Exception as error:  # its lease will expire and the sweeper recovers it
            logger.warning("could not hand back job %s: %s", lease.job_id, type(error).__name__)

    # -- dispatching ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        wait = 0.0
        while not self._stopping.is_set():
            self._wake.wait(timeout=wait)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                wait = self._claim_round()
            except Exception:  # the dispatcher must outlive any bug in one round
                logger.exception("claim round failed")
                wait = self.settings.WORKER_CLAIM_INTERVAL_S

    def _claim_round(self) -> float:
        """Claim what the free slots can take; returns how long to sleep before the next."""
        interval = self.settings.WORKER_CLAIM_INTERVAL_S
        free = self.concurrency - self._busy
        if free <= 0:
            return interval  # a finishing slot wakes the dispatcher
        limit = min(free, CLAIM_BATCH)
        try:
            with self.runtime.db.session_scope() as session:
                claimed = claims.claim(
                    session,
                    limit=limit,
                    max_running_per_user=self.settings.JOB_MAX_RUNNING_PER_USER,
                    lease_s=self.settings.JOB_LEASE_S,
                )
        except Exception as error:  # the database is away: look again at the next round
            logger.warning("claiming work failed: %s", type(error).__name__)
            return interval
        for claim in claimed.claims:
            self._start(claim)
        if len(claimed.claims) == limit:
            return _YIELD_S  # there may be more
        if claimed.next_due_in_s is None:
            return interval
        return min(interval, max(claimed.next_due_in_s, 0.01))

    def _start(self, claim: Claim) -> None:
        lease = self.leases.hold(claim.job.id, claim.lease_token)
        if self._stopping.is_set():  # claimed while the engine stops: give it back at once
            self.leases.drop(lease)
            self._hand_back(lease)
            return
        with self._lock:
            self._busy += 1
            metrics.UPSTREAM_IN_FLIGHT.set(self._busy)
        try:
            self._slots.submit(self._run, claim, lease)
        except RuntimeError:  # the pool shut down meanwhile: nothing will run it
            self._finished(lease)
            self._hand_back(lease)
            return

    def _run(self, claim: Claim, lease: HeldLease) -> None:
        try:
            execution.run(self.runtime, claim, lease)
        finally:
            self._finished(lease)

    def _finished(self, lease: HeldLease) -> None:
        self.leases.drop(lease)
        with self._lock:
            self._busy -= 1
            metrics.UPSTREAM_IN_FLIGHT.set(self._busy)
            self._idle.notify_all()
        self._wake.set()


def current() -> Engine:
    """This process's engine, started on first use (after a fork: the child's own)."""
    runtime = get_runtime()
    if runtime.engine is None:
        runtime.engine = Engine(runtime)
        runtime.engine.start()
    return runtime.engine
