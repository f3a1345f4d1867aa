"""Uploads are checked against the limits before they are decoded.

A Parquet file's footer, a CSV file's header line and a JSON body's row and column counts
are checked first; a table over the limits (or a Parquet file that would decode to far more
than its size) is refused without being decoded: the decoders are watched, and must not run.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from scripts.engines import free_port
from shared.config import Settings
from tests.api.test_auth import other_app
from tests.support.bombs import csv_rows_then_garbage, csv_wide_header, parquet_bomb
from tests.support.builders import Account, classification_data, fit_ready, register
from tests.support.processes import ManagedProcess
from tests.support.standin import StandinProcess

FIT = "/api/v1/models/fit"


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the API decoded a Parquet or CSV file during the test."""
    calls: Counter[str] = Counter()
    read_parquet, read_file, read_csv = pq.read_table, pq.ParquetFile.read, pd.read_csv

    def parquet(*args: Any, **kwargs: Any) -> Any:
        calls["parquet"] += 1
        return read_parquet(*args, **kwargs)

    def parquet_file(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        calls["parquet"] += 1
        return read_file(self, *args, **kwargs)

    def csv(*args: Any, **kwargs: Any) -> Any:
        calls["csv"] += 1
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pq, "read_table", parquet)
    monkeypatch.setattr(pq.ParquetFile, "read", parquet_file)
    monkeypatch.setattr(pd, "read_csv", csv)
    return calls


@pytest.fixture
def limited(standin: StandinProcess) -> Iterator[StandinProcess]:
    """The stand-in with limits set by the test, reset afterwards."""
    yield standin
    standin.reset()


def upload(
    client: TestClient, account: Account, content: bytes, name: str, **fields: str
) -> httpx.Response:
    return client.post(
        FIT,
        files={"file": (name, content, "application/octet-stream")},
        data={"task": "regression", "target_column": "target", **fields},
        headers=account.headers,
    )


def assert_refused(response: httpx.Response, status: int, code: str, word: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    assert word in response.json()["message"], response.text


def test_a_parquet_row_bomb_is_refused_from_its_footer(
    client: TestClient, decoders: Counter[str]
) -> None:
    bomb = parquet_bomb(2_000_000, 2)  # the stand-in takes 1 M training rows
    response = upload(client, register(client), bomb, "bomb.parquet", target_column="c1")
    assert_refused(response, 400, "LIMIT_EXCEEDED", "training rows")
    assert response.json()["details"] == {"limit": 1_000_000, "value": 2_000_000}
    assert decoders["parquet"] == 0


def test_a_parquet_decompression_bomb_is_refused_before_decoding(
    client: TestClient, decoders: Counter[str]
) -> None:
    """Within every limit, but 21.6 MB once decoded from about 13 KB."""
    bomb = parquet_bomb(900_000, 3)
    response = upload(client, register(client), bomb, "bomb.parquet", target_column="c2")
    assert_refused(response, 413, "PAYLOAD_TOO_LARGE", "times its size")
    assert decoders["parquet"] == 0


def test_a_csv_header_wider_than_the_limit_is_refused_unparsed(
    client: TestClient, decoders: Counter[str]
) -> None:
    response = upload(client, register(client), csv_wide_header(5000), "wide.csv")
    assert_refused(response, 400, "LIMIT_EXCEEDED", "columns")
    assert response.json()["details"] == {"limit": 2000, "value": 4999}
    assert decoders["csv"] == 0


def test_a_csv_file_is_read_no_further_than_the_row_limit(
    client: TestClient, limited: StandinProcess
) -> None:
    """Its 21st line would stop any parser; a reader that stops after 6 rows never meets it."""
    limited.configure(limits={"train_set_max_rows": 5})
    response = upload(client, register(client), csv_rows_then_garbage(20), "rows.csv")
    assert_refused(response, 400, "LIMIT_EXCEEDED", "training rows is above the TabPFN limit of 5")


def test_json_rows_and_columns_are_checked_before_the_cells(
    client: TestClient, limited: StandinProcess
) -> None:
    """A boolean cell would be refused too, but the limits come first: no cell is read."""
    limited.configure(limits={"max_cols": 1, "train_set_max_rows": 2})
    account = register(client)
    wide = {"features": [[1.0, True], [2.0, 3.0]], "target": [0, 1], "task": "classification"}
    long = {"features": [[1.0], [2.0], [True, 4.0]], "target": [0, 1, 0], "task": "regression"}
    for body, word in ((wide, "columns"), (long, "training rows")):
        response = client.post(FIT, json=body, headers=account.headers)
        assert_refused(response, 400, "LIMIT_EXCEEDED", word)


def test_without_the_upstreams_limits_hard_caps_apply(
    client: TestClient, settings: Settings, decoders: Counter[str]
) -> None:
    account = register(client)
    offline = other_app(settings, TABPFN_API_URL=f"http://127.0.0.1:{free_port()}")
    try:
        bomb = parquet_bomb(2_000_000, 2)
        response = upload(TestClient(offline), account, bomb, "bomb.parquet", target_column="c1")
    finally:
        offline.state.context.close()
    assert_refused(response, 400, "LIMIT_EXCEEDED", "unavailable")
    assert decoders["parquet"] == 0


def test_a_predict_parquet_bomb_is_refused_from_its_footer(
    client: TestClient, worker: ManagedProcess, decoders: Counter[str]
) -> None:
    """300,000 rows are more than one upstream request takes, but a prediction may be split
    into chunks: what refuses this file is that it would decode to far more than its size."""
    account = register(client)
    X, y, _, _ = classification_data(n_train=60)
    model_id = fit_ready(client, account, X, y)["model_id"]
    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        files={"file": ("bomb.parquet", parquet_bomb(300_000, 30), "application/octet-stream")},
        headers=account.headers,
    )
    assert_refused(response, 413, "PAYLOAD_TOO_LARGE", "times its size")
    assert decoders["parquet"] == 0


def test_predict_rows_no_split_can_serve_are_refused_from_the_footer(
    client: TestClient, worker: ManagedProcess, decoders: Counter[str], limited: StandinProcess
) -> None:
    """With 5 rows per upstream request, at most 5,000 rows (1,000 chunks) may be sent."""
    limited.configure(limits={"test_set_max_rows": 5})  # before the API caches the limits
    account = register(client)
    X, y, _, _ = classification_data(n_train=60)
    model_id = fit_ready(client, account, X, y)["model_id"]
    frame = pd.DataFrame([X[0]] * 5001, columns=[str(i) for i in range(len(X[0]))])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    response = client.post(
        f"/api/v1/models/{model_id}/predict",
        files={"file": ("big.parquet", buffer.getvalue(), "application/octet-stream")},
        headers=account.headers,
    )
    assert_refused(response, 400, "LIMIT_EXCEEDED", "rows to predict")
    assert "5000 rows per predict job" in response.json()["message"]
    assert decoders["parquet"] == 0


def test_an_honest_parquet_file_is_decoded_index_and_all(
    client: TestClient, decoders: Counter[str]
) -> None:
    """pandas stores a filtered frame's index as a column: it is not counted as a feature."""
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "x", "y"]})
    frame["target"] = [0.5, 1.5, 2.5, 3.5]
    buffer = io.BytesIO()
    frame[frame["a"] > 1].to_parquet(buffer)
    response = upload(client, register(client), buffer.getvalue(), "data.parquet")
    assert response.status_code == 202, response.text
    assert decoders["parquet"] == 1
