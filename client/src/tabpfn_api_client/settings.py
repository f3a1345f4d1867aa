"""Where the base URL and the API key come from, and the CLI's config file.

Resolution, first found wins: the explicit argument, then the environment
(`TABPFN_SERVICE_URL`, `TABPFN_API_KEY`), then the config file written by `tabpfn-api setup`,
then (for the URL only) `http://localhost:8000`, where `make dev` serves.

The config file lives in the user's config folder (`$XDG_CONFIG_HOME/tabpfn-api/` or
`~/.config/tabpfn-api/`; `%APPDATA%\\tabpfn-api\\` on Windows) and is written with 0600
permissions, its folder 0700, because it holds a secret.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_BASE_URL = "http://localhost:8000"
URL_ENV = "TABPFN_SERVICE_URL"
KEY_ENV = "TABPFN_API_KEY"
CONFIG_FILE = "config.json"


def config_dir() -> Path:
    """The folder of the CLI's config file."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "tabpfn-api"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tabpfn-api"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def load_config() -> dict[str, Any]:
    """The saved settings (empty when there is no config file yet)."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; fix it or delete it.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object; fix it or delete it.")
    return data


def save_config(values: dict[str, Any]) -> Path:
    """Merge `values` into the config file, readable by its owner only; returns its path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    merged = {**load_config(), **values}
    # Write a private temporary file and rename it: the secret is never world-readable,
    # not even for an instant, and a crash never leaves half a file.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        os.chmod(temporary, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(merged, handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return path


def resolve_base_url(explicit: str | None = None) -> str:
    """The service's base URL (see the module docstring for the order)."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV].rstrip("/")
    saved = load_config().get("base_url")
    return str(saved).rstrip("/") if saved else DEFAULT_BASE_URL


def resolve_api_key(explicit: str | None = None) -> str | None:
    """The API key, or None when there is none anywhere."""
    if explicit:
        return explicit
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    saved = load_config().get("api_key")
    return str(saved) if saved else None
