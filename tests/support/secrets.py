"""Every secret a test session hands out, and the scan proving none of them reached a log.

Tests register each TabPFN token, API key and webhook secret they create; at the end of the
session every log file the session wrote (API, workers, beat, stand-in) is searched for them.
"""

from __future__ import annotations

from pathlib import Path

_SECRETS: dict[str, str] = {}


def remember(secret: str, kind: str) -> str:
    """Register `secret` (of `kind`, e.g. "api key") for the end-of-session scan."""
    if len(secret) >= 8:
        _SECRETS[secret] = kind
    return secret


def leaks_in(folder: Path) -> list[str]:
    """Descriptions (never the secret itself) of each secret found in a file under `folder`."""
    found: list[str] = []
    if not folder.exists():
        return found
    for path in sorted(p for p in folder.rglob("*.log") if p.is_file()):
        text = path.read_text(errors="replace")
        for secret, kind in _SECRETS.items():
            if secret in text:
                found.append(f"a {kind} appears in {path.name}")
    return found


def count() -> int:
    return len(_SECRETS)
