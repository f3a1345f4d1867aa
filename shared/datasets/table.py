"""A parsed feature table: typed columns, and the kind of each column."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd


class ColumnKind(StrEnum):
    """Numbers (float64, nulls as NaN) or categories (strings, nulls as None)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass
class FeatureTable:
    """Features ready for the upstream: one DataFrame column per feature."""

    frame: pd.DataFrame
    kinds: list[ColumnKind]
    names: list[str] | None

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])

    @property
    def n_cols(self) -> int:
        return int(self.frame.shape[1])

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols


@dataclass
class Target:
    """Labels (classification) or values (regression), with the classes when labelled."""

    values: np.ndarray[Any, Any]
    classes: list[Any] | None


def column_label(index: int, names: list[str] | None) -> str:
    """How messages name a column: its index, plus its name when it has one."""
    if names is not None and index < len(names):
        return f"column {index} ({names[index]!r})"
    return f"column {index}"
