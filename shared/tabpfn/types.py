"""What the upstream adapter returns: plain values, independent of tabpfn-client's types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Model names that let the TabPFN service choose the model.
AUTO_MODEL_PATHS = ("auto", "default")


class TokenStatus(StrEnum):
    """What the TabPFN service says about a token."""

    VALID = "valid"
    INVALID = "invalid"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class Usage:
    current_usage: int
    usage_limit: int  # -1 means unlimited
    reset_time: str | None


@dataclass(frozen=True)
class Limits:
    """The upstream's size limits for one model version, as our validation needs them."""

    train_max_rows: int
    train_max_cells: int
    max_cols: int
    max_classes: int
    test_max_rows: int
    test_max_cells: int
    predict_row_pairs_budget: int
    # The `full` regression output is capped lower (400 rows on the hosted v3).
    test_max_rows_full_output: int


@dataclass(frozen=True)
class SubmittedFit:
    """The upstream accepted a fit: its id (the model's future `train_set_uid`)."""

    fit_id: str
    trace_id: str


class FitState(StrEnum):
    """Where a submitted fit stands upstream."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class FitStatusReport:
    """One answer of the upstream's status endpoint.

    `retry_in_s` is the service's hint for the next check (floored as tabpfn-client floors
    it); `error` its reason when the fit failed; `timings` what it reports about the fit."""

    state: FitState
    retry_in_s: float
    error: str | None
    timings: dict[str, Any] | None


@dataclass(frozen=True)
class PredictOutcome:
    """Predictions as JSON-ready lists, one entry per input row (`shared.tabpfn.outputs`).

    `extras` holds what is the same for every row (`full`'s bar borders); the upstream's
    `execution_mode` (standard, thinking, cache) and `cache_outcome` are what its answer's
    metadata says, when it says it."""

    predictions: list[Any]
    timings: dict[str, Any] | None
    trace_id: str
    extras: dict[str, Any] = field(default_factory=dict)
    execution_mode: str | None = None
    cache_outcome: str | None = None
