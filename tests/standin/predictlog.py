"""The predict log: what each predict asked for and how the stand-in answered it.

The request log (`/_calls`) says that a predict happened; this log says what it was: the test
set's shape, the output options and TabPFN config sent with it, and the execution mode and
cache outcome answered, so tests can check what a service under test forwarded upstream.
Entries are keyed by token id, never the token, and the newest `MAX_PREDICTS` are kept.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_PREDICTS = 100_000


@dataclass
class PredictRecord:
    """One predict whose fitted set and test set were found and readable; status 400 when
    the test set or output options were refused (e.g. over a limit)."""

    fitted_train_set_id: str
    test_set_upload_id: str
    token_id: str
    task: str
    test_rows: int
    test_cols: int
    # As sent in task_config.predict_params / task_config (None when absent).
    output_type: str | None
    quantiles: list[float] | None
    tabpfn_config: dict[str, Any] | None
    status: int = 200
    error: str | None = None
    execution_mode: str | None = None
    cache_outcome: str | None = None
    seq: int = 0
    ts: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """One entry as GET /_predicts returns it."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "fitted_train_set_id": self.fitted_train_set_id,
            "test_set_upload_id": self.test_set_upload_id,
            "token_id": self.token_id,
            "task": self.task,
            "test_rows": self.test_rows,
            "test_cols": self.test_cols,
            "output_type": self.output_type,
            "quantiles": self.quantiles,
            "tabpfn_config": self.tabpfn_config,
            "status": self.status,
            "error": self.error,
            "execution_mode": self.execution_mode,
            "cache_outcome": self.cache_outcome,
        }


class PredictLog:
    """Thread-safe, bounded, append-only list of predict records with increasing `seq`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[PredictRecord] = []
        self._next_seq = 1

    def add(self, record: PredictRecord) -> None:
        """Append a record, numbering it."""
        with self._lock:
            record.seq = self._next_seq
            self._next_seq += 1
            self._records.append(record)
            if len(self._records) > MAX_PREDICTS:
                del self._records[: MAX_PREDICTS // 10]

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Records with seq > since, oldest first."""
        with self._lock:
            return [r.to_json() for r in self._records if r.seq > since]

    def clear(self) -> None:
        """Empty the log; sequence numbers keep increasing so `since` stays meaningful."""
        with self._lock:
            self._records.clear()
