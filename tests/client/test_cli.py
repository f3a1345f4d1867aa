"""`tabpfn-api`, the installed console script, end to end as a subprocess against the real
stack, on the sample files shipped in docs/examples/."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tabpfn_api_client.cli.progress import ProgressLine, describe_progress
from tabpfn_api_client.records import Job
from tests.support import secrets as secret_registry
from tests.support.builders import new_token
from tests.support.processes import BIN, ROOT, child_env
from tests.support.standin import StandinProcess

EXAMPLES = ROOT / "docs" / "examples"


class Cli:
    """Runs `tabpfn-api` with its own config folder and the service's URL in the env."""

    def __init__(self, api_url: str, home: Path) -> None:
        self.env = child_env(None, TABPFN_SERVICE_URL=api_url, XDG_CONFIG_HOME=str(home))

    def run(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        return self._run(list(args), code, env)

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self._run([*args, "--json"], 0, env).stdout)

    def _run(
        self, args: list[str], code: int, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / "tabpfn-api"), *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture
def cli(api_url: str, tmp_path: Path) -> Cli:
    return Cli(api_url, tmp_path / "config")


def test_setup_fit_predict_on_the_sample_csv(cli: Cli, tmp_path: Path) -> None:
    setup = cli.json("setup", TABPFN_TOKEN=new_token())
    secret_registry.remember(setup["webhook_secret"], "webhook secret")
    config = Path(setup["config_path"])
    assert config == tmp_path / "config" / "tabpfn-api" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    secret_registry.remember(saved["api_key"], "API key")
    assert saved["api_key"].startswith(f"tpk_{setup['key_id']}_")

    fit = cli.run("fit", str(EXAMPLES / "iris.csv"), "--target", "species", "--name", "iris")
    assert "model " in fit.stdout and "is ready" in fit.stdout
    assert "fit job " in fit.stderr  # the progress display
    assert saved["api_key"] not in fit.stdout + fit.stderr

    fitted = cli.json("fit", str(EXAMPLES / "iris.csv"), "--target", "species")
    assert fitted["status"] == "succeeded" and fitted["kind"] == "fit"
    model_id = fitted["model_id"]

    out = tmp_path / "out.csv"
    predicted = cli.run("predict", model_id, str(EXAMPLES / "iris.csv"), "-o", str(out))
    assert f"wrote 150 predictions to {out}" in predicted.stdout
    assert "not sent: columns species" in predicted.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    with (EXAMPLES / "iris.csv").open() as handle:
        truth = [row["species"] for row in csv.DictReader(handle)]
    assert [row["row"] for row in rows] == [str(i) for i in range(150)]
    labels = [row["prediction"] for row in rows]
    assert set(labels) <= {"setosa", "versicolor", "virginica"}
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 0.9 * 150

    probas = cli.json(
        "predict",
        model_id,
        str(EXAMPLES / "iris.parquet"),
        "--output-type",
        "probas",
        "-o",
        str(tmp_path / "probas.json"),
    )
    assert probas["status"] == "succeeded" and probas["output"].endswith("probas.json")
    result = json.loads((tmp_path / "probas.json").read_text())
    assert result["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(result["predictions"]) == 150

    models = cli.json("models")
    assert model_id in [m["id"] for m in models["items"]]
    jobs = cli.json("jobs", "--kind", "predict")
    assert jobs["total"] == 2
    job = cli.json("job", probas["id"], "--wait")
    assert job["status"] == "succeeded"
    usage = cli.json("usage")
    assert usage["jobs"]["succeeded"] == 4  # two fits, two predictions
    listing = cli.run("jobs")
    assert listing.stdout.splitlines()[0].split() == [
        "ID",
        "KIND",
        "STATUS",
        "MODEL",
        "CREATED",
        "ERROR",
    ]


def test_predict_waits_for_a_model_still_fitting(
    cli: Cli, api_key: str, standin: StandinProcess, tmp_path: Path
) -> None:
    standin.configure(fit_delay_s=3)  # the fit is surely unfinished when predict starts
    try:
        queued = cli.json(
            "fit",
            str(EXAMPLES / "iris.csv"),
            "--target",
            "species",
            "--no-wait",
            TABPFN_API_KEY=api_key,
        )
        assert queued["status"] in ("queued", "running")
        out = tmp_path / "new.csv"
        done = cli.run(
            "predict",
            queued["model_id"],
            str(EXAMPLES / "iris_new.csv"),
            "-o",
            str(out),
            TABPFN_API_KEY=api_key,
        )
    finally:
        standin.reset()
    assert f"fit job {queued['id']}" in done.stderr  # it followed the fit first
    assert len(out.read_text().splitlines()) == 11


def test_the_environment_key_wins_and_errors_exit_one(cli: Cli, api_url: str) -> None:
    refused = cli.run("models", code=1, TABPFN_API_KEY="tpk_0000000000000000_nope")
    assert "UNAUTHORIZED" in refused.stderr
    missing = cli.run("usage", code=1)
    assert "NO_API_KEY" in missing.stderr
    bad = cli.run("--base-url", api_url, "setup", code=1, TABPFN_TOKEN=new_token("invalid"))
    assert "TABPFN_TOKEN_INVALID" in bad.stderr
    assert cli.run("fit", "missing.csv", code=2).returncode == 2  # --target is required


def test_an_existing_key_is_checked_and_saved(cli: Cli, api_key: str, tmp_path: Path) -> None:
    saved = cli.json("setup", "--existing-key", TABPFN_API_KEY=api_key)
    assert "webhook_secret" not in saved
    assert json.loads(Path(saved["config_path"]).read_text())["api_key"] == api_key
    assert cli.json("usage")["jobs"]["queued"] == 0


def _job(status: str, progress: dict[str, Any] | None = None) -> Job:
    return Job.from_json(
        {"id": "j1", "kind": "predict", "status": status, "progress": progress, "extra": 1}
    )


def test_the_progress_line_shows_the_services_progress_when_it_has_one() -> None:
    assert describe_progress(None) == ""
    report = {"phase": "predicting", "chunks_done": 2, "chunks_total": 5, "eta_s": 3}
    assert describe_progress(report) == "predicting, 2/5 chunks, eta_s=3"
    assert describe_progress({"queue_position": 4}) == "position 4 in queue"
    stream = io.StringIO()  # not a terminal: one line per change, the clock aside
    line = ProgressLine(stream, enabled=True)
    for job in (_job("queued"), _job("queued"), _job("running", report), _job("succeeded")):
        line.update(job)
    line.finish()
    shown = stream.getvalue().splitlines()
    assert [s.split("  ")[0] for s in shown] == [
        "predict job j1: queued",
        "predict job j1: running (predicting, 2/5 chunks, eta_s=3)",
        "predict job j1: succeeded",
    ]
    assert all(s.endswith(" s") for s in shown)
    silent = io.StringIO()
    ProgressLine(silent, enabled=False).update(_job("queued"))
    assert silent.getvalue() == ""
