"""Splitting a large prediction under the upstream's per-request limits (DESIGN §6.11).

The TabPFN service takes at most so many test rows per request: `test_set_max_rows`, fewer
when the model was fit on many rows (`predict_row_pairs_budget` / training rows), fewer
again for wide tables (`test_set_max_cells` / columns) and for the `full` regression output
(`test_set_max_rows_w_full_regression_output`). A prediction over that runs as chunks of
at most that many rows, each a child job of its own (claimed fairly, retried alone), and
their results are concatenated in row order (`shared.tabpfn.outputs` makes every output
one entry per row, so concatenation is the whole merge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.tabpfn.types import Limits

FULL_OUTPUT = "full"
# A prediction runs as at most this many chunks (each one upstream request): bounded work
# per job, checked at submission and again when the worker plans the split.
MAX_CHUNKS = 1000
# The `full` output carries a whole distribution per row (thousands of logits on the hosted
# service): its merged result must still fit in one stored table.
MAX_FULL_OUTPUT_ROWS = 10_000
# Rows a prediction may send whole when the upstream does not tell its limits: far below
# any limit it has published (200,000 rows on v3), so only a large prediction has to wait.
SAFE_ROWS_WITHOUT_LIMITS = 10_000


@dataclass(frozen=True)
class Chunk:
    """Rows `start` (inclusive) to `stop` (exclusive) of a prediction, the `index`-th chunk."""

    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def describe(self, total: int) -> str:
        """How messages name the chunk: its rows (0-based, inclusive) and its place."""
        return f"rows {self.start}–{self.stop - 1} (chunk {self.index + 1} of {total})"


def rows_per_request(limits: Limits, *, n_train_rows: int, n_cols: int, output_type: str) -> int:
    """The most test rows one upstream request may carry for this model and output."""
    caps = [
        limits.test_max_rows,
        limits.predict_row_pairs_budget // max(n_train_rows, 1),
        limits.test_max_cells // max(n_cols, 1),
    ]
    if output_type == FULL_OUTPUT:
        caps.append(limits.test_max_rows_full_output)
    return max(min(caps), 1)


def max_rows_per_job(per_request: int, output_type: str) -> int:
    """The most rows one prediction may ask for: MAX_CHUNKS requests (fewer for `full`)."""
    most = per_request * MAX_CHUNKS
    return min(most, MAX_FULL_OUTPUT_ROWS) if output_type == FULL_OUTPUT else most


def plan(n_rows: int, per_request: int) -> list[Chunk]:
    """Chunks of near-equal size, none over `per_request`; one chunk when everything fits."""
    count = max(math.ceil(n_rows / max(per_request, 1)), 1)
    base, extra = divmod(n_rows, count)
    chunks: list[Chunk] = []
    start = 0
    for index in range(count):
        stop = start + base + (1 if index < extra else 0)
        chunks.append(Chunk(index=index, start=start, stop=stop))
        start = stop
    return chunks
