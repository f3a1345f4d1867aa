"""The per-process memory budget for job payloads (WORKER_MEMORY_BUDGET_MB).

Many jobs are in flight in one process, and each decodes its payload, hands it to
tabpfn-client (which serialises it again) and holds its result. The budget caps the bytes of
all of that at once: a job reserves its estimated cost before it fetches anything, and
waits for room when the budget is full. Nothing is refused:

- reservations are granted first come, first served, so a large job is not starved by a
  stream of small ones that keep slipping past it;
- a job larger than the whole budget is clamped to the budget: it runs when nothing else
  holds any of it, alone.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from shared import metrics

# tabpfn-client needs about 5x the raw float64 size on top of a table it holds (pandas to
# Arrow, a growing Parquet buffer, a copy of it; measured in docs/benchmarks.md), and the
# worker holds the decoded table besides: 6x in all.
_IN_FLIGHT_COPIES = 6
_FLOAT_BYTES = 8


def payload_cost(rows: int, cols: int, stored_bytes: int, *, result_cols: int = 0) -> int:
    """Estimated peak bytes of one job: its stored Parquet, the table and the client's copies,
    and (for predictions) the result it builds."""
    table = rows * cols * _FLOAT_BYTES * _IN_FLIGHT_COPIES
    # Predictions travel as Python lists (~4x a float64 each) and as a Parquet result.
    result = rows * result_cols * _FLOAT_BYTES * 4
    return stored_bytes + table + result


class MemoryBudget:
    """A byte semaphore that grants reservations in order of arrival."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._used = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        """Bytes reserved right now."""
        return self._used

    @property
    def waiting(self) -> int:
        """Reservations waiting for room."""
        return len(self._waiting)

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[int]:
        """Hold `nbytes` (at most the whole budget) for the duration of the block."""
        amount = max(0, min(nbytes, self.capacity))
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            try:
                while self._waiting[0] is not ticket or self._used + amount > self.capacity:
                    self._changed.wait()
            except BaseException:
                self._waiting.remove(ticket)
                self._changed.notify_all()
                raise
            self._waiting.popleft()
            self._used += amount
            metrics.MEMORY_BUDGET_IN_USE.set(self._used)
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield amount
        finally:
            with self._changed:
                self._used -= amount
                metrics.MEMORY_BUDGET_IN_USE.set(self._used)
                self._changed.notify_all()
