"""`make dev`: the whole stack on one machine, stopped as a whole by Ctrl-C.

Starts embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are given (in the
environment or `.env`), keeps a generated SECRET_KEY under `.data/`, runs the migrations,
then starts the API (:8000), the workers, beat and Flower (:5555) with the commands of
DESIGN §3. The worker command runs twice, split by `-Q`: one for jobs and webhook deliveries,
one (a single process) for the sweeper alone, which must never wait behind a delivery that
holds its process for up to WEBHOOK_TIMEOUT_S. `STANDIN=1` also starts the stand-in TabPFN
server and points the service at it, so the whole flow works offline. Every child dies with
this process.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

from scripts.engines import EmbeddedPostgres, EmbeddedRedis, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEV_DATA_DIR") or ROOT / ".data")
BIN = Path(sys.executable).parent
API_PORT = int(os.environ.get("API_PORT", "8000"))
FLOWER_PORT = int(os.environ.get("FLOWER_PORT", "5555"))


class Stack:
    """The processes of one `make dev` run, stopped in reverse order of starting."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.stopping = False

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        print(f"[dev] starting {name}: {' '.join(args)}", flush=True)
        process = subprocess.Popen(args, cwd=ROOT, env=env, preexec_fn=die_with_parent())
        self.children.append((name, process))
        return process

    def stop(self) -> None:
        """Stop children newest first, then the embedded engines."""
        self.stopping = True
        for name, process in reversed(self.children):
            if process.poll() is None:
                print(f"[dev] stopping {name}", flush=True)
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"[dev] {name} did not stop in 20 s; killing it", flush=True)
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        print("[dev] everything stopped", flush=True)


def configured(name: str, dotenv: dict[str, str]) -> str | None:
    """A variable from the environment or, failing that, from `.env`."""
    return os.environ.get(name) or dotenv.get(name) or None


def dev_secret_key() -> str:
    """A random secret kept under .data/ so restarts can still decrypt stored tokens."""
    path = DATA / "secret_key"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_for_http(url: str, what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up (code {process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def start_standin(stack: Stack, env: dict[str, str]) -> str:
    """Start the stand-in TabPFN server and return its URL (it prints it when ready)."""
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "tests.standin", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        preexec_fn=die_with_parent(),
    )
    stack.children.append(("standin", process))
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("STANDIN_READY "):
        raise RuntimeError("the stand-in TabPFN server did not start")
    return line.split(" ", 1)[1]


def prepare_environment(stack: Stack) -> dict[str, str]:
    """Resolve URLs (starting embedded engines where none are given) and the dev defaults."""
    dotenv = {k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None}
    env = {**dotenv, **os.environ}
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    # In uvicorn's environment too (it reads no .env): no proxy in front of `make dev`.
    env.setdefault("FORWARDED_ALLOW_IPS", "")
    if not configured("SECRET_KEY", dotenv):
        env["SECRET_KEY"] = dev_secret_key()
    if not configured("DATABASE_URL", dotenv):
        stack.postgres = EmbeddedPostgres(DATA / "postgres")
        stack.postgres.start()
        stack.postgres.create_database("tabpfn_api")
        env["DATABASE_URL"] = stack.postgres.url("tabpfn_api")
        print(f"[dev] embedded PostgreSQL on 127.0.0.1:{stack.postgres.port}", flush=True)
    if not configured("REDIS_URL", dotenv):
        stack.redis = EmbeddedRedis(DATA / "redis")
        stack.redis.start()
        env["REDIS_URL"] = stack.redis.url()
        print(f"[dev] embedded Redis on 127.0.0.1:{stack.redis.port}", flush=True)
    metrics_dir = DATA / "metrics"
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if env.get("STANDIN", "") not in ("", "0"):
        env["TABPFN_API_URL"] = start_standin(stack, env)
        print(f"[dev] stand-in TabPFN server at {env['TABPFN_API_URL']}", flush=True)
    return env


def celery_workers(celery: str) -> list[tuple[str, list[str]]]:
    """The workers `make dev` starts, by name: the sweeper shares its process with nothing."""
    command = [celery, "-A", "worker.celery_app", "worker", "--loglevel=INFO"]
    return [
        ("worker", [*command, "-Q", "fit,predict,webhooks"]),
        # Its own node name: two workers named celery@<host> would be one in Flower.
        ("sweeper", [*command, "-Q", "maintenance", "--concurrency=1", "-n", "sweeper@%h"]),
    ]


def run(stack: Stack) -> int:
    env = prepare_environment(stack)
    subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True)
    api = stack.spawn(
        "api",
        [str(BIN / "uvicorn"), "api.main:app", "--host", "0.0.0.0", "--port", str(API_PORT)],
        env,
    )
    celery = str(BIN / "celery")
    for name, args in celery_workers(celery):
        stack.spawn(name, args, env)
    stack.spawn("beat", [celery, "-A", "worker.celery_app", "beat"], env)
    flower = stack.spawn(
        "flower", [celery, "-A", "worker.celery_app", "flower", f"--port={FLOWER_PORT}"], env
    )
    wait_for_http(f"http://127.0.0.1:{API_PORT}/health", "the API", api, timeout=60)
    flower_url = f"http://127.0.0.1:{FLOWER_PORT}/"
    if not env.get("FLOWER_BASIC_AUTH"):
        wait_for_http(flower_url + "healthcheck", "Flower", flower, timeout=60)
    print(
        "\n[dev] tabpfn-api is running:\n"
        f"  API      http://127.0.0.1:{API_PORT}/  (docs: /docs, health: /health)\n"
        f"  Flower   {flower_url}\n"
        f"  TabPFN   {env.get('TABPFN_API_URL', 'the real TabPFN service (default URL)')}\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    while True:
        for name, process in stack.children:
            if process.poll() is not None:
                print(f"[dev] {name} exited with code {process.returncode}", flush=True)
                return 1
        time.sleep(0.5)


def main() -> int:
    stack = Stack()

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return run(stack)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"[dev] {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
