"""Tables in, what the service reads out: JSON rows and Parquet files (no server needed),
and the CLI's fitting of a prediction file to the model's columns."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tabpfn_api_client import tables
from tabpfn_api_client.cli.files import select_columns


def test_numeric_arrays_become_rows_with_missing_values_as_null() -> None:
    array = np.array([[1.0, np.nan], [3, 4.5]])
    assert tables.rows_of(array) == [[1.0, None], [3.0, 4.5]]
    assert tables.rows_of(np.array([[1, 2]], dtype=np.int64)) == [[1.0, 2.0]]


def test_infinite_values_are_refused_with_their_position() -> None:
    with pytest.raises(ValueError, match="Row 1, column 0 is infinite"):
        tables.rows_of(np.array([[1.0, 2.0], [np.inf, 1.0]]))
    with pytest.raises(ValueError, match="Row 0, column 1 is infinite"):
        tables.rows_of([[1, float("-inf")]])


def test_mixed_cells_follow_the_services_rules() -> None:
    rows = tables.rows_of([[np.int64(3), "red", None, True, np.float32(0.5)]])
    assert rows == [[3, "red", None, "True", 0.5]]
    with pytest.raises(TypeError, match="Row 0, column 0 holds a dict"):
        tables.rows_of([[{"a": 1}]])
    with pytest.raises(ValueError, match="2-D"):
        tables.rows_of([1.0, 2.0])


def test_dataframes_of_every_kind() -> None:
    frame = pd.DataFrame(
        {
            "n": [1.0, None],
            "colour": pd.Categorical(["red", None]),
            "flag": [True, False],
            "maybe": pd.array([1, pd.NA], dtype="Int64"),
        },
        index=[10, 20],
    )
    assert tables.column_names(frame) == ["n", "colour", "flag", "maybe"]
    assert tables.rows_of(frame) == [[1.0, "red", "True", 1], [None, None, "False", None]]


def test_targets_are_one_dimensional() -> None:
    assert tables.values_of(np.array([0, 1])) == [0, 1]
    assert tables.values_of(pd.Series(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match="1-D"):
        tables.values_of(np.array([[0], [1]]))


def test_parquet_carries_no_index_and_names_array_columns() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": pd.Categorical(["x", "y"])}, index=[5, 7])
    table = pq.read_table(io.BytesIO(tables.parquet_bytes(tables.frame_of(frame))))
    assert table.column_names == ["a", "b"]
    assert table.column("b").to_pylist() == ["x", "y"]
    unnamed = tables.frame_of(np.zeros((2, 3)))
    assert list(unnamed.columns) == ["x0", "x1", "x2"]
    renamed = tables.frame_of(np.zeros((2, 2)), ["p", "q"])
    assert list(renamed.columns) == ["p", "q"]


def test_a_column_of_mixed_types_is_named_in_the_error() -> None:
    frame = pd.DataFrame({"mixed": [1, "a"]})
    with pytest.raises(ValueError, match="mixes value types"):
        tables.parquet_bytes(frame)


def test_a_prediction_csv_is_cut_to_the_models_columns_in_order() -> None:
    content = b"b,target,a\n2,x,1\n4,y,3\n"
    prepared = select_columns(content, ["a", "b"])
    assert prepared.content == b"a,b\n1,2\n3,4\n"
    assert prepared.dropped == ["target"]
    assert select_columns(content, None).content == content
    assert select_columns(content, ["a", "c"]).content == content  # the service will explain
    exact = b"a,b\n1,2\n"
    assert select_columns(exact, ["a", "b"]).content == exact


def test_a_prediction_parquet_is_cut_to_the_models_columns_in_order() -> None:
    frame = pd.DataFrame({"b": [2.0], "target": ["x"], "a": [1.0]})
    prepared = select_columns(tables.parquet_bytes(frame), ["a", "b"])
    table = pq.read_table(io.BytesIO(prepared.content))
    assert table.column_names == ["a", "b"]
    assert prepared.dropped == ["target"]
