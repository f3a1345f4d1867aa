"""Settings are validated at start-up, and a bad configuration stops a process with one sentence."""

from __future__ import annotations

import subprocess

import pytest

from shared.config import ConfigError, Settings, load_settings
from tests.support.processes import BIN, ROOT

GOOD_SECRET = "q" * 8 + "Zt7vW2mXk9pLr4sN8bC3dF6gH1jK5"


def base_env(**overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": "postgresql://u@localhost/db",
        "REDIS_URL": "redis://localhost:6379/0",
        "SECRET_KEY": GOOD_SECRET,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENVIRONMENT", "SECRET_KEY_FALLBACKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


def test_missing_required_variables_are_named_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from(monkeypatch, SECRET_KEY=GOOD_SECRET)
    message = str(raised.value)
    assert message.startswith("Configuration error:")
    assert "DATABASE_URL is not set" in message
    assert "REDIS_URL is not set" in message
    assert "\n" not in message


def test_short_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        settings_from(monkeypatch, **base_env(SECRET_KEY="short"))


def test_placeholder_secret_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placeholder = "change-me-change-me-change-me-change-me"
    with pytest.raises(ConfigError, match="SECRET_KEY looks like a placeholder"):
        settings_from(monkeypatch, **base_env(SECRET_KEY=placeholder))
    dev = settings_from(monkeypatch, **base_env(SECRET_KEY=placeholder, ENVIRONMENT="development"))
    assert dev.is_development


def test_urls_are_normalised_and_lists_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        monkeypatch,
        **base_env(
            SECRET_KEY_FALLBACKS=f"{GOOD_SECRET}a, {GOOD_SECRET}b",
            WEBHOOK_RETRY_SCHEDULE_S="1,2.5,60",
        ),
    )
    assert settings.DATABASE_URL == "postgresql+psycopg://u@localhost/db"
    assert [s.get_secret_value()[-1] for s in settings.SECRET_KEY_FALLBACKS] == ["a", "b"]
    assert settings.WEBHOOK_RETRY_SCHEDULE_S == [1.0, 2.5, 60.0]
    assert settings.broker_visibility_timeout_s > settings.JOB_TIME_LIMIT_S
    assert settings.job_soft_time_limit_s < settings.JOB_TIME_LIMIT_S


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL: must be a PostgreSQL URL"),
        ("REDIS_URL", "http://x", "REDIS_URL: must be a redis:// or rediss:// URL"),
        ("REDIS_URL", "unix:///tmp/redis.sock", "REDIS_URL: must be a redis:// or rediss:// URL"),
        ("FLOWER_BASIC_AUTH", "admin", "FLOWER_BASIC_AUTH: must look like user:password"),
        ("JOB_MAX_ATTEMPTS", "0", "JOB_MAX_ATTEMPTS"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1,proxy", "FORWARDED_ALLOW_IPS: 'proxy' is not an IP"),
    ],
)
def test_invalid_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        settings_from(monkeypatch, **base_env(**{name: value}))


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "uvicorn"), "api.main:app", "--port", "0"],
        [str(BIN / "celery"), "-A", "worker.celery_app", "worker"],
        [str(BIN / "alembic"), "upgrade", "head"],
    ],
    ids=["api", "worker", "migrations"],
)
def test_processes_refuse_to_start_with_one_sentence(command: list[str]) -> None:
    """No traceback: the operator reads which variable to set."""
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={"PATH": str(BIN), "REDIS_URL": "redis://localhost:1/0", "SECRET_KEY": GOOD_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Configuration error: DATABASE_URL is not set." in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting() -> None:
    """`.env.example` stays the complete, commented list of variables."""
    import re

    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE))
    assert set(Settings.model_fields) <= listed
    lines = text.splitlines()
    for name in Settings.model_fields:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        block = []
        while index > 0 and lines[index - 1].strip():
            index -= 1
            block.append(lines[index])
        assert any(line.startswith("#") for line in block), f"{name} has no comment above it"


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copied .env.example leaves optional variables empty; that must not break start-up."""
    settings = settings_from(
        monkeypatch,
        **base_env(WORKER_METRICS_PORT="", SECRET_KEY_FALLBACKS="", FLOWER_BASIC_AUTH=""),
    )
    assert settings.WORKER_METRICS_PORT is None
    assert settings.SECRET_KEY_FALLBACKS == []
