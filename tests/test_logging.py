"""Logs: JSON lines with context, a job followed by its id across the API and worker logs,
and the redaction of anything shaped like a secret."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.deps import SessionDep
from api.main import create_app
from shared.config import Settings
from shared.logs import JsonFormatter, TextFormatter, log_context, redact
from shared.models import User
from tests.support.builders import classification_data, fit, register, wait_for_job
from tests.support.processes import ManagedProcess


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_a_job_is_followed_by_its_id_across_api_and_worker(
    client: TestClient, worker: ManagedProcess, api_log: Path
) -> None:
    account = register(client)
    X, y, _, _ = classification_data(n_train=60)
    job = fit(client, account, X, y)
    assert wait_for_job(client, account, job["id"])["status"] == "succeeded"
    worker.wait_for_log("job succeeded")
    api_lines = [e for e in json_lines(api_log) if e.get("job_id") == job["id"]]
    assert any("job accepted" in str(e["message"]) for e in api_lines)
    assert all(e.get("request_id") and e.get("user_id") == account.user_id for e in api_lines)
    worker_lines = [e for e in json_lines(worker.log_path) if e.get("job_id") == job["id"]]
    messages = [str(e["message"]) for e in worker_lines]
    assert any(m.startswith("job started") for m in messages) and "job succeeded" in messages
    assert all(
        e.get("attempt") == "1" and e.get("user_id") == account.user_id for e in worker_lines
    )


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_context_fields_and_redaction(formatter: logging.Formatter) -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "key tpk_0123456789abcdef_SeCrEt-value and %s",
        ("whsec_QUJD",),
        None,
    )
    with log_context(job_id="j-1", attempt=2):
        line = formatter.format(record)
    assert "SeCrEt" not in line and "QUJD" not in line and "[REDACTED]" in line
    assert "j-1" in line


def test_redact_masks_bearer_credentials() -> None:
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: [REDACTED]"


def test_the_secret_scan_finds_a_leak(tmp_path: Path) -> None:
    """Guard the guard: a registered secret written to a log file is reported, by kind."""
    from tests.support import secrets as secret_registry

    leaked = secret_registry.remember("tok-leak-" + "x" * 20, "TabPFN token")
    (tmp_path / "worker.log").write_text(f"something {leaked} happened\n")
    found = secret_registry.leaks_in(tmp_path)
    assert found == ["a TabPFN token appears in worker.log"]
    assert leaked not in " ".join(found)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_postgres_detail_lines_never_reach_the_logs(settings: Settings, api_log: Path) -> None:
    """A real unique violation, logged with its traceback by the request middleware: the
    row value Postgres quotes in its DETAIL line appears in no log line, text or JSON."""
    app = create_app(settings)
    value = f"row-value-{uuid.uuid4().hex}"

    @app.post("/test-only/duplicate-user")
    def duplicate_user(session: SessionDep) -> None:
        for _ in range(2):
            row = User(
                token_fingerprint=value, tabpfn_token_encrypted="x", webhook_secret_encrypted="x"
            )
            session.add(row)
            session.flush()  # the second one violates uq_users_token_fingerprint

    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        client = TestClient(app, raise_server_exceptions=False)
        assert client.post("/test-only/duplicate-user").status_code == 500
    finally:
        logging.getLogger().removeHandler(records)
        app.state.context.close()
    logged = [r for r in records.records if r.exc_info]
    assert logged, "the violation should have been logged with its traceback"
    for formatter in (JsonFormatter(), TextFormatter()):
        lines = "\n".join(formatter.format(record) for record in logged)
        assert "UniqueViolation" in lines
        assert value not in lines
        assert "DETAIL: [REDACTED]" in lines
    for line in api_log.read_text().splitlines():
        assert value not in line
        if line.startswith("{"):
            json.loads(line)  # still one JSON object per line
