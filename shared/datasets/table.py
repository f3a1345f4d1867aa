"""A parsed feature table: typed columns, and the kind of each column."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class ColumnKind(StrEnum):
    """Numbers (float64, nulls as NaN) or categories (strings, nulls as None)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass
class FeatureTable:
    """Validated features: one NumPy array per column (float64 or object), by column name.

    Plain arrays, not a DataFrame: submission only validates and stores them, and pandas'
    per-column machinery would cost more than that work."""

    columns: dict[str, np.ndarray[Any, Any]]
    kinds: list[ColumnKind]
    names: list[str] | None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def n_cols(self) -> int:
        return len(self.columns)

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
