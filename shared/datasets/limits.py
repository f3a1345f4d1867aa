"""Size checks against the upstream's limits (per account and model version, cached).

Each violation is a 400 `LIMIT_EXCEEDED` that names the limit, the value and what to do.
The checks run on a table's shape before its cells are decoded or typed (an uploaded file's
metadata or header, a JSON body's row and column counts), so a table over the limits costs
no more than its body. When the upstream cannot tell its limits right now, hard caps
(`FALLBACK_LIMITS`) stand in: far above what TabPFN takes, low enough that no upload can
make the API decode an unbounded table; the upstream still refuses what it cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ValidationFailed
from shared.jobs import chunks
from shared.tabpfn.types import Limits

MAX_PREDICT_CHUNKS = chunks.MAX_CHUNKS

FALLBACK_LIMITS = Limits(
    train_max_rows=1_000_000,
    train_max_cells=50_000_000,
    max_cols=10_000,
    max_classes=10_000,
    test_max_rows=1_000_000,
    test_max_cells=50_000_000,
    predict_row_pairs_budget=10**15,
    test_max_rows_full_output=1_000_000,
)


def _exceeded(
    what: str, value: int | None, limit: int, source: str, advice: str
) -> ValidationFailed:
    """`value` None: the table was read only far enough to know it is over the limit."""
    over = source.format(limit=limit)
    return ValidationFailed(
        f"{what} is {value}, above {over}; {advice}."
        if value is not None
        else f"{what} is above {over}; {advice}.",
        code="LIMIT_EXCEEDED",
        details={"limit": limit, "value": value},
    )


@dataclass(frozen=True)
class Bounds:
    """The largest feature table a request may send, known before any of its data is read."""

    max_rows: int
    max_cols: int
    max_cells: int
    rows: str  # "training rows" or "rows to predict"
    advice: str  # what to do about too many rows or cells
    source: str  # whose limit it is, with a {limit} placeholder

    def check(self, n_rows: int | None, n_cols: int) -> None:
        """Refuse a table of `n_rows` (None: not known yet) by `n_cols` feature columns."""
        if n_rows is not None and n_rows > self.max_rows:
            raise self.too_many_rows(n_rows)
        if n_cols > self.max_cols:
            raise _exceeded(
                "The number of columns", n_cols, self.max_cols, self.source, "select fewer features"
            )
        if n_rows is not None and n_rows * n_cols > self.max_cells:
            raise _exceeded(
                f"The number of cells ({self.rows} x columns)",
                n_rows * n_cols,
                self.max_cells,
                self.source,
                self.advice,
            )

    def rows_allowed(self, n_cols: int) -> int:
        """The most rows a table of `n_cols` columns may have (rows and cells together)."""
        return min(self.max_rows, self.max_cells // max(n_cols, 1))

    def too_many_rows(self, n_rows: int | None, n_cols: int | None = None) -> ValidationFailed:
        """The error for a table with more rows than allowed; `n_rows` None when it was read
        only up to one row past the limit, and `n_cols` given when that limit is the cells'."""
        if n_cols is not None and self.rows_allowed(n_cols) < self.max_rows:
            what = f"The number of cells ({self.rows} x {n_cols} columns)"
            return _exceeded(what, None, self.max_cells, self.source, self.advice)
        what = f"The number of {self.rows}"
        return _exceeded(what, n_rows, self.max_rows, self.source, self.advice)


def _source(limits: Limits | None) -> tuple[Limits, str]:
    if limits is None:
        return FALLBACK_LIMITS, (
            "this service's limit of {limit} (TabPFN's own limits are unavailable right now)"
        )
    return limits, "the TabPFN limit of {limit}"


def fit_bounds(limits: Limits | None) -> Bounds:
    """The training table's bounds under the account's limits (or the fallback caps)."""
    chosen, source = _source(limits)
    return Bounds(
        max_rows=chosen.train_max_rows,
        max_cols=chosen.max_cols,
        max_cells=chosen.train_max_cells,
        rows="training rows",
        advice="subsample the rows",
        source=source,
    )


def predict_bounds(
    limits: Limits | None, *, n_train_rows: int, n_cols: int, output_type: str
) -> Bounds:
    """The bounds of a table to predict, `n_cols` wide, for a model fit on `n_train_rows`.

    Rows over one upstream request's limit are split into chunks by the worker, so only
    what MAX_PREDICT_CHUNKS requests cannot carry is refused. Without the upstream's limits
    nothing is split, and the hard caps apply."""
    if limits is None:
        chosen, source = _source(None)
        return Bounds(
            max_rows=chosen.test_max_rows,
            max_cols=chosen.max_cols,
            max_cells=chosen.test_max_cells,
            rows="rows to predict",
            advice="send fewer rows per predict job",
            source=source,
        )
    per_request = chunks.rows_per_request(
        limits, n_train_rows=n_train_rows, n_cols=n_cols, output_type=output_type
    )
    max_rows = chunks.max_rows_per_job(per_request, output_type)
    return Bounds(
        max_rows=max_rows,
        max_cols=limits.max_cols,
        max_cells=max_rows * max(n_cols, 1),
        rows="rows to predict",
        advice=f"send at most {max_rows} rows per predict job",
        source=f"{{limit}} (at most {MAX_PREDICT_CHUNKS} requests of TabPFN's limit of "
        f"{per_request} rows for this model; {chunks.MAX_FULL_OUTPUT_ROWS} rows for the full "
        "output)",
    )


def check_classes(n_classes: int | None, limits: Limits | None) -> None:
    """The classes of a classification target (known only once the target is read)."""
    chosen, source = _source(limits)
    if n_classes is not None and n_classes > chosen.max_classes:
        raise _exceeded(
            "The number of classes", n_classes, chosen.max_classes, source, "merge rare classes"
        )
