"""Thread-safe in-memory store of uploads, fitted sets, usage and the request log."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .baseline import BaselineModel
from .options import FitOptions
from .predictlog import PredictLog

FitState = Literal["pending", "completed", "failed"]
# The request and fit logs keep the newest entries only, so long benchmark runs stay bounded.
MAX_CALLS = 100_000
MAX_FITS = 100_000


@dataclass
class FileSlot:
    """One uploaded file, received as `n_chunks` PUTs to signed URLs."""

    n_chunks: int
    hash: str | None
    chunks: dict[int, bytes] = field(default_factory=dict)

    def complete(self) -> bool:
        """All chunks arrived (re-PUTs of a chunk overwrite it, as on GCS)."""
        return len(self.chunks) == self.n_chunks

    def data(self) -> bytes:
        """The file reassembled in chunk-index order."""
        return b"".join(self.chunks[i] for i in range(self.n_chunks))


@dataclass
class Upload:
    """A train upload (files x_train, y_train) or a test upload (x_test, bound to a fitted set)."""

    id: str
    owner: str
    files: dict[str, FileSlot]
    fitted_id: str | None = None

    def complete(self) -> bool:
        """Every file of the upload is fully received."""
        return all(slot.complete() for slot in self.files.values())


@dataclass
class FittedSet:
    """A fit job, what it asked for and, once it completed, the baseline model it produced."""

    id: str
    owner: str
    upload_id: str
    options: FitOptions
    # "sync" (POST /tabpfn/fit, even when it answered pending) or "async" (submit_fit_job)
    mode: str = "sync"
    created: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    status: FitState = "pending"
    finished: float | None = None
    model: BaselineModel | None = None
    n_train_rows: int = 0
    n_train_cols: int = 0
    error: str | None = None
    error_code: str | None = None
    # Pending polls still owed before a finished fit may report it: the pending fit mode
    # promises that get_fit_status answers "pending" at least once.
    pending_polls_owed: int = 0
    # Where the fit's time went: loading and fitting the baseline, then the simulated upstream
    # work (fit delay plus a Thinking fit's search), in seconds.
    transform_s: float | None = None
    work_s: float | None = None
    thinking_s: float | None = None

    @property
    def task(self) -> str:
        """ "classification" or "regression"."""
        return self.options.task

    def to_json(self) -> dict[str, Any]:
        """One fit-log entry, as GET /_fits returns it (wall-clock times, seconds)."""
        finished_wall = (
            None if self.finished is None else self.created_wall + (self.finished - self.created)
        )
        return {
            "id": self.id,
            "token_id": self.owner,
            "mode": self.mode,
            "status": self.status,
            "submitted": self.created_wall,
            "finished": finished_wall,
            **self.options.to_json(),
            "train_rows": self.n_train_rows or None,
            "train_cols": self.n_train_cols or None,
            "thinking_s": self.thinking_s,
            "error_code": self.error_code,
        }

    def elapsed(self) -> float:
        """Seconds from submission to completion, or to now while pending."""
        end = self.finished if self.finished is not None else time.monotonic()
        return round(end - self.created, 6)

    def timings(self) -> dict[str, Any]:
        """FitTimings: elapsed so far, and once completed the stages it went through."""
        if self.status != "completed":
            return {"elapsed_s": self.elapsed()}
        return {
            "elapsed_s": self.elapsed(),
            "queue_wait_s": 0.0,
            "train_set_transform_s": round(self.transform_s or 0.0, 6),
            "fit_s": round(self.work_s or 0.0, 6),
        }


@dataclass
class Call:
    """One request-log entry; status stays None for dropped (or still running) requests."""

    seq: int
    method: str
    path: str
    token_id: str | None
    ts: float
    status: int | None = None
    refs: tuple[str, ...] = ()
    done: float | None = None


class Store:
    """All mutable server state behind one lock; nothing slow ever runs while holding it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.uploads: dict[str, Upload] = {}
        self.fitted: dict[str, FittedSet] = {}
        # (owner, x hash, y hash) -> completed train upload; (owner, fitted id, hash) -> test upload
        self.train_dedup: dict[tuple[str, str, str], str] = {}
        self.test_dedup: dict[tuple[str, str, str], str] = {}
        self.usage: dict[str, int] = {}
        # (train upload id, task) -> (fitted baseline, rows, cols, classes)
        self.baselines: dict[tuple[str, str], tuple[BaselineModel, int, int, int]] = {}
        self.baseline_locks: dict[tuple[str, str], threading.Lock] = {}
        # owner -> Thinking fits charged against the thinking-fit quota
        self.thinking_fits: dict[str, int] = {}
        self._calls: list[Call] = []
        self._next_seq = 1
        # Every fit job in submission order, kept when its fitted set is deleted or forgotten.
        self._fit_log: list[FittedSet] = []
        self.predict_log = PredictLog()

    def reset(self) -> None:
        """Forget every upload, fitted set, usage count and log entry."""
        with self.lock:
            self.uploads.clear()
            self.fitted.clear()
            self.train_dedup.clear()
            self.test_dedup.clear()
            self.usage.clear()
            self.baselines.clear()
            self.baseline_locks.clear()
            self.thinking_fits.clear()
            self._calls.clear()
            self._fit_log.clear()
            self.predict_log.clear()

    # --- uploads -------------------------------------------------------------------------
    def add_upload(self, upload: Upload) -> None:
        """Register a freshly prepared upload."""
        with self.lock:
            self.uploads[upload.id] = upload

    def put_chunk(self, upload_id: str, name: str, index: int, data: bytes) -> bool:
        """Store one chunk; False when the upload, file or chunk index is unknown."""
        with self.lock:
            upload = self.uploads.get(upload_id)
            slot = upload.files.get(name) if upload else None
            if upload is None or slot is None or not 0 <= index < slot.n_chunks:
                return False
            slot.chunks[index] = data
            if upload.complete():
                self._register_dedup(upload)
            return True

    def _register_dedup(self, upload: Upload) -> None:
        hashes = [upload.files[name].hash for name in sorted(upload.files)]
        if any(h is None for h in hashes):
            return
        if upload.fitted_id is None:
            x_hash, y_hash = upload.files["x_train"].hash, upload.files["y_train"].hash
            assert x_hash is not None
            assert y_hash is not None
            self.train_dedup[(upload.owner, x_hash, y_hash)] = upload.id
        else:
            x_hash = upload.files["x_test"].hash
            assert x_hash is not None
            self.test_dedup[(upload.owner, upload.fitted_id, x_hash)] = upload.id

    def owned_upload(self, upload_id: str, owner: str) -> Upload | None:
        """The upload if it exists and belongs to `owner` (another account's looks absent)."""
        with self.lock:
            upload = self.uploads.get(upload_id)
            return upload if upload is not None and upload.owner == owner else None

    def owned_fitted(self, fitted_id: str, owner: str) -> FittedSet | None:
        """The fitted set if it exists and belongs to `owner`."""
        with self.lock:
            fitted = self.fitted.get(fitted_id)
            return fitted if fitted is not None and fitted.owner == owner else None

    def add_fitted(self, fitted: FittedSet) -> None:
        """Register a new fit job and append it to the fit log."""
        with self.lock:
            self.fitted[fitted.id] = fitted
            self._fit_log.append(fitted)
            if len(self._fit_log) > MAX_FITS:
                del self._fit_log[: MAX_FITS // 10]

    def forget_fits(self, owner: str | None = None) -> list[str]:
        """Lose every fitted set (of `owner`, or of everyone) as a restarted upstream would.

        Test uploads bound to those fits go with them; train uploads, usage and the logs stay,
        so the same data can be fitted again and tests can still count what happened."""
        with self.lock:
            ids = [f.id for f in self.fitted.values() if owner is None or f.owner == owner]
            gone = set(ids)
            tests = [u.id for u in self.uploads.values() if u.fitted_id in gone]
            self._forget(ids + tests)
            return ids

    def delete(self, uid: str, owner: str) -> list[str]:
        """Delete a dataset or fitted set of `owner` with everything derived from it."""
        with self.lock:
            doomed: list[str] = []
            if (u := self.uploads.get(uid)) is not None and u.owner == owner:
                doomed.append(uid)
                if u.fitted_id is None:
                    doomed += [f.id for f in self.fitted.values() if f.upload_id == uid]
            elif (f := self.fitted.get(uid)) is not None and f.owner == owner:
                doomed.append(uid)
            fitted_ids = {d for d in doomed if d in self.fitted}
            doomed += [u.id for u in self.uploads.values() if u.fitted_id in fitted_ids]
            return self._forget(list(dict.fromkeys(doomed)))

    def delete_all(self, owner: str) -> list[str]:
        """Delete every dataset and fitted set of `owner`."""
        with self.lock:
            ids = [u.id for u in self.uploads.values() if u.owner == owner]
            ids += [f.id for f in self.fitted.values() if f.owner == owner]
            return self._forget(ids)

    def _forget(self, ids: list[str]) -> list[str]:
        gone = set(ids)
        for uid in ids:
            self.uploads.pop(uid, None)
            self.fitted.pop(uid, None)
        for table in (self.train_dedup, self.test_dedup):
            for key in [k for k, v in table.items() if v in gone]:
                del table[key]
        for baseline in [k for k in self.baselines if k[0] in gone]:
            del self.baselines[baseline]
            self.baseline_locks.pop(baseline, None)
        return ids

    # --- usage ---------------------------------------------------------------------------
    def reserve_thinking_fit(self, owner: str, quota: int) -> int | None:
        """Charge one Thinking fit; None (nothing charged) when `quota` (-1: none) is used up."""
        with self.lock:
            used = self.thinking_fits.get(owner, 0)
            if 0 <= quota <= used:
                return None
            self.thinking_fits[owner] = used + 1
            return used + 1

    def refund_thinking_fit(self, owner: str) -> None:
        """Give back the charge of a Thinking fit that failed."""
        with self.lock:
            self.thinking_fits[owner] = max(0, self.thinking_fits.get(owner, 0) - 1)

    def add_usage(self, owner: str, amount: int) -> None:
        """Meter a fit or predict, in cells."""
        with self.lock:
            self.usage[owner] = self.usage.get(owner, 0) + amount

    def usage_of(self, owner: str) -> int:
        """Cells metered so far for `owner`."""
        with self.lock:
            return self.usage.get(owner, 0)

    # --- request log ---------------------------------------------------------------------
    def log_call(self, method: str, path: str, token: str | None) -> int:
        """Append a request-log entry at arrival and return its sequence number."""
        with self.lock:
            seq = self._next_seq
            self._next_seq += 1
            self._calls.append(Call(seq, method, path, token, time.time()))
            if len(self._calls) > MAX_CALLS:
                del self._calls[: MAX_CALLS // 10]
            return seq

    def set_call_status(self, seq: int, status: int | None, refs: list[str] | None = None) -> None:
        """Record the status answered (None: dropped) and the ids the request involved."""
        with self.lock:
            for call in reversed(self._calls):
                if call.seq == seq:
                    call.status = status
                    call.refs = tuple(refs or ())
                    call.done = time.time()
                    return

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Log entries with seq > since, oldest first."""
        with self.lock:
            return [
                {
                    "seq": c.seq,
                    "method": c.method,
                    "path": c.path,
                    "token_id": c.token_id,
                    "status": c.status,
                    "ts": c.ts,
                    "refs": list(c.refs),
                    "done": c.done,
                }
                for c in self._calls
                if c.seq > since
            ]

    def fits(self) -> list[dict[str, Any]]:
        """Every fit this stand-in ran or is running, oldest first (the fit log); `forgotten`
        marks fits whose fitted set is gone (deleted, or lost through DELETE /_admin/fits)."""
        with self.lock:
            return [
                {**f.to_json(), "forgotten": f.id not in self.fitted}
                for f in sorted(self._fit_log, key=lambda f: f.created)
            ]

    def clear_calls(self) -> None:
        """Empty the log; sequence numbers keep increasing so `since` stays meaningful."""
        with self.lock:
            self._calls.clear()
