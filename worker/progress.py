"""Recording a running job's phase as its upstream call moves on (`progress.phase`).

The adapter reports each phase when the call makes the request that starts it (uploading,
fitting, predicting; see `shared.tabpfn.adapter`); a `PhaseReporter` writes it to the job
row under the slot's lease, once per change, in a short transaction of its own. Progress
is informative: a write that fails is logged and the call goes on.
"""

from __future__ import annotations

import logging

from shared.jobs import waits
from shared.models import Job, JobPhase
from worker.leases import HeldLease
from worker.runtime import WorkerRuntime

logger = logging.getLogger(__name__)


class PhaseReporter:
    """The `on_phase` callback of one upstream call: writes changes of the job's phase."""

    def __init__(
        self,
        runtime: WorkerRuntime,
        job: Job,
        lease: HeldLease,
        *,
        current: JobPhase | None,
        skip: frozenset[JobPhase] = frozenset(),
    ) -> None:
        self.runtime = runtime
        self.job_id = job.id
        self.lease = lease
        self.current = current
        # Phases a later transition records anyway (a fit's `fitting` comes with its
        # submission's own write): not worth a statement of their own.
        self.skip = skip

    def __call__(self, phase: JobPhase) -> None:
        if phase == self.current or phase in self.skip or self.lease.lost.is_set():
            return
        self.current = phase
        try:
            with self.runtime.db.session_scope() as session:
                waits.set_phase(session, self.job_id, lease_token=self.lease.token, phase=phase)
        except Exception as error:
            logger.warning("could not record phase %s: %s", phase, type(error).__name__)
