"""What the upstream adapter returns: plain values, independent of tabpfn-client's types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class FitOutcome:
    train_set_uid: str
    timings: dict[str, Any] | None
    trace_id: str


@dataclass(frozen=True)
class PredictOutcome:
    """Predictions as JSON-ready lists, one entry per input row."""

    predictions: list[Any]
    timings: dict[str, Any] | None
    trace_id: str
