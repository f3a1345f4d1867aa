"""Dataset edge cases: uploaded files' odd columns, and result tables' column names."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from shared.datasets import file_reader
from shared.datasets.file_input import split_target, to_feature_table
from shared.datasets.limits import fit_bounds
from shared.jobs.results import columns
from shared.models import Task


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def read_table(content: bytes, filename: str) -> pd.DataFrame:
    """A training file (features and one target column) read as a submission reads it."""
    upload = file_reader.inspect(content, filename)
    return file_reader.decode(upload, fit_bounds(None), extra_cols=1)


def test_parquet_columns_named_by_numbers_are_usable() -> None:
    frame = pd.DataFrame({0: [1.0, 2.0, 3.0], 1: [0, 1, 0]})
    features, target = split_target(
        read_table(parquet_bytes(frame), "x.parquet"), "1", Task.CLASSIFICATION
    )
    assert list(features.columns) == ["0"] and target.classes == [0, 1]


def test_missing_booleans_stay_missing() -> None:
    frame = pd.DataFrame(
        {"flag": pd.array([True, None, False], dtype="boolean"), "y": [1.0, 2.0, 3.0]}
    )
    features, _ = split_target(read_table(parquet_bytes(frame), "x.parquet"), "y", Task.REGRESSION)
    table = to_feature_table(features)
    assert list(table.columns["flag"]) == ["True", None, "False"]


def test_distinct_quantiles_get_distinct_columns() -> None:
    names = columns("quantiles", None, [0.1234561, 0.1234562, 0.5])
    assert len(set(names)) == 3 and names[2] == "quantile_0.5"


def test_a_csv_header_is_counted_without_splitting_quoted_commas() -> None:
    upload = file_reader.inspect(b'\n\n"a,b", c,"d"\r\n1,2,3\n', "x.csv")
    assert upload.n_cols == 3 and upload.n_rows is None
    assert list(file_reader.decode(upload, fit_bounds(None)).columns) == ["a,b", "c", "d"]


def test_a_parquet_footer_gives_the_shape_and_the_decoded_size() -> None:
    frame = pd.DataFrame({"a": range(1000), "b": [0.5] * 1000}, index=[2 * i for i in range(1000)])
    upload = file_reader.inspect(parquet_bytes(frame), None)
    assert upload.is_parquet and upload.n_rows == 1000 and upload.n_cols == 2
    assert upload.decoded_bytes >= 1000 * 3 * file_reader.DECODED_CELL_BYTES  # index included


def test_honest_sparse_parquet_passes_the_decompression_guard() -> None:
    """One-hot columns compress some 50-150 times; bombs of repeated values thousands."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame((rng.random((50_000, 40)) < 0.05).astype(float))
    frame.columns = [f"f{i}" for i in range(40)]
    frame["y"] = rng.random(50_000)
    upload = file_reader.inspect(parquet_bytes(frame), None)
    assert upload.decoded_bytes > file_reader.EXPANSION_FLOOR_BYTES
    assert upload.decoded_bytes > 20 * len(upload.content)  # well compressed, yet honest
    assert file_reader.decode(upload, fit_bounds(None), extra_cols=1).shape == (50_000, 41)
