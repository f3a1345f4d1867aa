"""The images as their Dockerfiles build them, without a Docker engine: for tests of the
documented container path (issue 10, point 8).

- `Dockerfile` reads a Dockerfile's ENV, COPY, USER, WORKDIR and CMD;
- `image_venv()` runs the Dockerfiles' own `uv sync --locked --no-dev --no-install-project`
  (main dependencies only) into a folder any user can read, once per lock file;
- `app_tree()` copies what the Dockerfiles COPY into a tree nobody but root can write;
- `as_user()` is a preexec_fn that drops a child to an unprivileged user, as `USER app`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Dockerfile:
    """The instructions of one Dockerfile that say what runs, where, as whom, with what."""

    env: dict[str, str] = field(default_factory=dict)
    copies: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    cmd: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, name: str) -> Dockerfile:
        parsed = cls()
        for instruction, rest in _instructions((ROOT / name).read_text()):
            if instruction == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    parsed.env[key] = value
            elif instruction == "COPY" and not rest.startswith("--from"):
                *sources, _ = rest.split()
                parsed.copies.extend(sources)
            elif instruction == "USER":
                parsed.user = rest
            elif instruction == "WORKDIR":
                parsed.workdir = rest
            elif instruction == "CMD":
                parsed.cmd = json.loads(rest)
        return parsed


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        instruction, _, rest = whole.partition(" ")
        found.append((instruction.upper(), rest.strip()))
    return found


def unprivileged_user() -> pwd.struct_passwd | None:
    """Whom children run as: `nobody` when the tests run as root, else nobody else (the
    current user is already unprivileged)."""
    return pwd.getpwnam("nobody") if os.geteuid() == 0 else None


def as_user(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    """A preexec_fn that becomes `user` (groups first: afterwards there is no right to)."""
    if user is None:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return drop


def open_folder(prefix: str, owner: pwd.struct_passwd | None = None) -> Path:
    """A new folder under /tmp that anyone may enter (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def _reachable(path: Path) -> bool:
    """Whether any user may run `path`: every folder above it searchable by others."""
    real = path.resolve()
    if not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def _interpreter() -> Path:
    """This Python (its base interpreter), or the system's of the same version if other users
    cannot reach ours (pyenv under /root, say)."""
    ours = Path(getattr(sys, "_base_executable", sys.executable))
    if _reachable(ours):
        return ours
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(folder) / version
        if candidate.exists() and _reachable(candidate):
            return candidate
    raise RuntimeError(f"no {version} that an unprivileged user can run")


def image_venv(dockerfile: Dockerfile) -> Path:
    """The images' virtualenv (built here once per lock file and interpreter); its folder."""
    python = _interpreter()
    lock = b"".join((ROOT / name).read_bytes() for name in _dependency_files(dockerfile))
    key = hashlib.sha256(lock + str(python).encode()).hexdigest()[:16]
    home = Path("/tmp") / f"tabpfn-api-image-{key}"
    # Built where it stays (a virtualenv's scripts name its path), one session at a time.
    with (Path("/tmp") / f"tabpfn-api-image-{key}.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not (home / "ready").exists():
            _build(dockerfile, python, home)
    return home / ".venv"


def _dependency_files(dockerfile: Dockerfile) -> list[str]:
    """What the Dockerfile copies before its `uv sync`: the project's and the client's
    pyproject.toml (the lock names the client as a path dependency) and the lock."""
    return [
        source for source in dockerfile.copies if Path(source).name in ("pyproject.toml", "uv.lock")
    ]


def _build(dockerfile: Dockerfile, python: Path, home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    for name in _dependency_files(dockerfile):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, home / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env.update({k: v for k, v in dockerfile.env.items() if k.startswith("UV_")})
    env["UV_PROJECT_ENVIRONMENT"] = str(home / ".venv")
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    # The Dockerfiles' own step (RUN uv sync --locked --no-dev --no-install-project).
    done = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--no-install-project", "--python", str(python)],
        cwd=home,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the images' `uv sync` failed:\n{done.stderr[-4000:]}")
    (home / "ready").touch()


def app_tree(dockerfile: Dockerfile) -> Path:
    """What the Dockerfile COPYs, under a fresh folder only root may write to; it is `/app`."""
    app = open_folder("tabpfn-api-app-")
    for source in dockerfile.copies:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin, app / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            (app / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, app / source)
    for folder, dirs, files in os.walk(app):
        for name in files:
            (Path(folder) / name).chmod(0o444)
        for name in dirs:
            (Path(folder) / name).chmod(0o555)
    app.chmod(0o555)
    return app


def files_under(folder: Path) -> set[Path]:
    return {Path(root) / name for root, _, names in os.walk(folder) for name in names}
