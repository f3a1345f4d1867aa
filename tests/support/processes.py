"""Real processes for tests: Celery workers, beat and the stand-in TabPFN server.

Each process writes its output to a log file in the session's log folder; the secret scan
at the end of the session reads them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from scripts.engines import die_with_parent
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to rebuild exactly these settings."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            env[name] = value.get_secret_value()
        elif isinstance(value, list):
            env[name] = ",".join(
                v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value
            )
        elif isinstance(value, bool):
            env[name] = "true" if value else "false"
        else:
            env[name] = str(value)
    return env


def child_env(settings: Settings | None, **extra: str) -> dict[str, str]:
    """A clean environment: the parent's PATH and locale, these settings, nothing else."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PROMETHEUS_MULTIPROC_DIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if settings is not None:
        env.update(settings_env(settings))
    env.update(extra)
    return env


def _chain(*steps: Any) -> Any:
    def run() -> None:
        for step in steps:
            if step is not None:
                step()

    return run


class ManagedProcess:
    """A child process with its log file; stopped politely, killed if it must be."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        cwd: Path = ROOT,
        preexec_fn: Any = None,
    ) -> None:
        """`preexec_fn` runs in the child before it execs, before the parent-death signal is
        set (Linux clears that signal when a process changes its user ids)."""
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_chain(preexec_fn, die_with_parent(signal.SIGKILL)),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 60, *, after: int = 0) -> None:
        """Wait until `needle` appears in the log (from byte offset `after`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text()[after:]:
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} never logged {needle!r}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def start_worker(
    settings: Settings,
    log_dir: Path,
    *,
    name: str = "worker",
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    queues: str | None = None,
) -> ManagedProcess:
    """`celery -A worker.celery_app worker` (prefork), waiting until it consumes
    (`queues`: the `-Q` list; all queues by default)."""
    args = [
        str(BIN / "celery"),
        "-A",
        "worker.celery_app",
        "worker",
        "--loglevel=INFO",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--hostname={name}@%h",
        "--without-gossip",
        "--without-mingle",
        *(["-Q", queues] if queues else []),
    ]
    process = ManagedProcess(
        name, args, child_env(settings, **(extra_env or {})), log_dir / f"{name}.log"
    )
    process.wait_for_log("ready.", timeout=90)
    return process


def start_beat(settings: Settings, log_dir: Path, *, name: str = "beat") -> ManagedProcess:
    """`celery -A worker.celery_app beat`."""
    args = [str(BIN / "celery"), "-A", "worker.celery_app", "beat", "--loglevel=INFO"]
    process = ManagedProcess(name, args, child_env(settings), log_dir / f"{name}.log")
    process.wait_for_log("beat: Starting", timeout=60)
    return process


def api_command(port: int) -> list[str]:
    """Dockerfile.api's CMD (DESIGN §3) from this virtualenv, on `port` instead of 8000."""
    from tests.support.container import Dockerfile

    command = Dockerfile.read("Dockerfile.api").cmd
    command[command.index("--port") + 1] = str(port)
    return [str(BIN / command[0]), *command[1:]]


def wait_for_health(url: str, process: ManagedProcess, timeout: float = 90) -> None:
    """Until `url`/health answers 200 (the process exiting first is an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{process.name} never answered /health:\n{process.tail()}")


def start_api(env: dict[str, str], log_dir: Path, *, name: str, port: int) -> ManagedProcess:
    """The API as Dockerfile.api runs it, waiting until `/health` answers."""
    process = ManagedProcess(name, api_command(port), env, log_dir / f"{name}.log")
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
    except Exception:
        process.stop()
        raise
    return process
