"""The documented container path, end to end, without a Docker engine (issue 10, point 8).

What `docker compose up` runs, as closely as this machine allows:

- the images' virtualenv from their own `uv sync --locked --no-dev --no-install-project`, and
  the files they COPY in a working directory the service's user cannot write (`/app`);
- exactly the images' ENV, then `.env.example`'s variables as compose's `env_file` passes
  them (empty ones included), the secrets an operator fills in, and the addresses of this
  test's PostgreSQL, Redis and TabPFN stand-in; each process its own metrics folder (the
  images' /tmp/metrics, a tmpfs per container in compose);
- compose's migration (`alembic upgrade head`), then the exact CMD of Dockerfile.api (on a
  free port instead of 8000) and of Dockerfile.worker, as an unprivileged user (`nobody`
  when the tests run as root);
- a fit and a prediction through the HTTP API, and `/metrics`.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from dotenv import dotenv_values

from scripts.engines import EmbeddedRedis, free_port
from tests.support import secrets as secret_registry
from tests.support.builders import classification_data, new_token
from tests.support.container import (
    ROOT,
    Dockerfile,
    app_tree,
    as_user,
    files_under,
    image_venv,
    open_folder,
    unprivileged_user,
)
from tests.support.processes import ManagedProcess, wait_for_health
from tests.support.servers import PostgresServer
from tests.support.standin import StandinProcess

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"  # python:3.11-slim's PATH, before the images' ENV


def image_env(dockerfile: Dockerfile, app: Path, metrics: Path) -> dict[str, str]:
    """The image's ENV, its /app and /tmp/metrics mapped onto this machine."""
    env: dict[str, str] = {"PATH": BASE_PATH}
    for key, value in dockerfile.env.items():
        local = value.replace("$PATH", env["PATH"]).replace("/tmp/metrics", str(metrics))
        env[key] = local.replace("/app", str(app))
    return env


@pytest.fixture(scope="module")
def app_dir() -> Iterator[Path]:
    dockerfile = Dockerfile.read("Dockerfile.api")
    assert Dockerfile.read("Dockerfile.worker").copies == dockerfile.copies
    venv = image_venv(dockerfile)
    app = app_tree(dockerfile)
    app.chmod(0o755)
    (app / ".venv").symlink_to(venv, target_is_directory=True)
    app.chmod(0o555)
    yield app
    shutil.rmtree(app, ignore_errors=True)


def test_the_documented_container_path_runs_a_fit_end_to_end(
    app_dir: Path,
    postgres: PostgresServer,
    standin: StandinProcess,
    log_dir: Path,
    tmp_path: Path,
) -> None:
    user = unprivileged_user()
    preexec = as_user(user)
    home = open_folder("tabpfn-api-home-", owner=user)
    redis = EmbeddedRedis(tmp_path / "redis", persistent=False)
    redis.start()
    operator = {  # what an operator fills in, and where this test's servers are
        "SECRET_KEY": secrets.token_hex(32),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_hex(8)}",
        "POSTGRES_PASSWORD": secrets.token_hex(8),
        "DATABASE_URL": postgres.create_database("tabpfn_container"),
        "REDIS_URL": redis.url(),
        "TABPFN_API_URL": standin.url,
        "HOME": str(home),  # the images' user has a home of its own
    }
    env_file = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}

    scratch = [home]

    def container(dockerfile: str) -> dict[str, str]:
        metrics = open_folder("tabpfn-api-metrics-", owner=user)
        scratch.append(metrics)
        return {
            **image_env(Dockerfile.read(dockerfile), app_dir, metrics),
            **env_file,
            **operator,
        }

    processes: list[ManagedProcess] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(
            name, args, env, log_dir / f"{name}.log", cwd=app_dir, preexec_fn=preexec
        )
        processes.append(process)
        return process

    try:
        api_env, worker_env = container("Dockerfile.api"), container("Dockerfile.worker")
        # compose's one-shot `migrate` service: the API image running `alembic upgrade head`.
        before = files_under(app_dir)
        migrate = subprocess.run(
            ["alembic", "upgrade", "head"],
            cwd=app_dir,
            env=api_env,
            preexec_fn=preexec,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr

        port = free_port()
        api_cmd = Dockerfile.read("Dockerfile.api").cmd
        api_cmd[api_cmd.index("--port") + 1] = str(port)
        api = start("container-api", api_cmd, api_env)
        worker = start("container-worker", Dockerfile.read("Dockerfile.worker").cmd, worker_env)
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, api)
        worker.wait_for_log("ready.", timeout=120)

        journey(url)

        if user is not None:
            for process in (api, worker):
                family = [psutil.Process(process.pid), *psutil.Process(process.pid).children()]
                assert {p.uids().real for p in family} == {user.pw_uid}
        for process in processes:
            log = process.log_text()
            assert "Traceback" not in log and "Permission denied" not in log, process.tail()
        assert files_under(app_dir) == before  # nothing landed in the working directory
        for env in (api_env, worker_env):  # the metrics went where the images say
            assert list(Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"))
        probe = subprocess.run(
            ["python", "-c", "open('probe', 'w')"],
            cwd=app_dir,
            env=api_env,
            preexec_fn=preexec,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "PermissionError" in probe.stderr  # the guard: the user cannot write there
    finally:
        for process in reversed(processes):
            process.stop()
        redis.stop()
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)


def journey(url: str) -> None:
    """Setup, fit, predict, result and metrics over HTTP, as a user and an operator would."""
    X, y, X_test, _ = classification_data(n_train=60)
    with httpx.Client(base_url=url, timeout=60) as http:
        setup = http.post("/api/v1/auth/setup", json={"tabpfn_token": new_token()})
        assert setup.status_code == 201, setup.text
        key = secret_registry.remember(setup.json()["api_key"], "API key")
        secret_registry.remember(setup.json()["webhook_secret"], "webhook secret")
        headers = {"Authorization": f"Bearer {key}"}
        body = {"features": X, "target": y, "task": "classification"}
        fitted = finished(
            http, headers, http.post("/api/v1/models/fit", json=body, headers=headers)
        )
        model = fitted["model_id"]
        asked = http.post(
            f"/api/v1/models/{model}/predict", json={"features": X_test}, headers=headers
        )
        predicted = finished(http, headers, asked)
        assert len(predicted["result"]["predictions"]) == len(X_test)
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert 'tabpfn_api_jobs_created_total{kind="fit"}' in metrics.text


def finished(
    http: httpx.Client, headers: dict[str, str], submitted: httpx.Response
) -> dict[str, Any]:
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            assert job["status"] == "succeeded", job
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never finished")
