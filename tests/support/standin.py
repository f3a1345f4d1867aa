"""The stand-in TabPFN server as a real process, plus the admin calls tests make on it."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import BIN, ROOT, child_env


def token_id(token: str) -> str:
    """How the stand-in names a token in its request log (it never stores the token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class StandinProcess:
    """`python -m tests.standin --port 0`, its URL read from its first output line."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "standin.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [str(BIN / "python"), "-m", "tests.standin", "--port", "0", *args],
            cwd=ROOT,
            env=child_env(None),
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().decode().strip()
        if not line.startswith("STANDIN_READY "):
            raise RuntimeError(f"stand-in did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.admin = httpx.Client(base_url=self.url, timeout=10)

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log: method, path, token_id, status for every protocol request."""
        response = self.admin.get("/_calls", params={"since": since})
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def fits(self) -> list[dict[str, Any]]:
        """The fit log: every fit the stand-in ran, with its owner's token id, times, and what
        it asked for (task, tabpfn_config, tabpfn_systems, thinking_config, text_handling)."""
        response = self.admin.get("/_fits")
        response.raise_for_status()
        fits: list[dict[str, Any]] = response.json()["fits"]
        return fits

    def fits_of(self, token: str) -> list[dict[str, Any]]:
        mine = token_id(token)
        return [f for f in self.fits() if f["token_id"] == mine]

    def predicts(self, since: int = 0) -> list[dict[str, Any]]:
        """The predict log: shape, output options, tabpfn_config, execution mode and cache
        outcome of every predict that reached a fitted model, oldest first."""
        response = self.admin.get("/_predicts", params={"since": since})
        response.raise_for_status()
        predicts: list[dict[str, Any]] = response.json()["predicts"]
        return predicts

    def predicts_of(self, token: str) -> list[dict[str, Any]]:
        mine = token_id(token)
        return [p for p in self.predicts() if p["token_id"] == mine]

    def forget_fits(self, token: str | None = None) -> list[str]:
        """Make the stand-in lose its fitted sets (only `token`'s when given), as after an
        upstream restart: predicts on them then fail with FittedModelNotFoundError."""
        params = {"token_id": token_id(token)} if token is not None else {}
        response = self.admin.delete("/_admin/fits", params=params)
        response.raise_for_status()
        forgotten: list[str] = response.json()["forgotten_fitted_train_set_ids"]
        return forgotten

    def last_seq(self) -> int:
        calls = self.calls()
        return int(calls[-1]["seq"]) if calls else 0

    def configure(self, **config: Any) -> dict[str, Any]:
        response = self.admin.post("/_admin/config", json=config)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        self.admin.delete("/_admin/config").raise_for_status()

    def wait_for_call(self, path: str, *, since: int = 0, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.calls(since):
                if call["path"] == path:
                    return call
            time.sleep(0.05)
        raise TimeoutError(f"the stand-in never saw {path}")

    def close(self) -> None:
        self.admin.close()
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()
