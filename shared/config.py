"""Settings: every environment variable of the service, typed and validated at start-up.

One `Settings` class (pydantic-settings) reads the environment and an optional `.env`.
Processes reach it through `get_settings()`; tests build their own `Settings(...)` and
hand it to `create_app()` / the worker instead of patching the environment.

A missing or unsafe value stops the process with one sentence naming the variable
(`ConfigError`, a `SystemExit`), never a traceback.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Values that look like a secret but are copied from docs or examples.
_PLACEHOLDER_SECRET = re.compile(
    r"(change[-_ ]?me|changeit|placeholder|your[-_ ]|example|secret[-_ ]?key|^x+$|^0+$)",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 32


class ConfigError(SystemExit):
    """Raised when the configuration is unusable; exits with one readable sentence."""


def _split_csv(value: object) -> object:
    """Accept `a,b,c` (the environment's natural form) as well as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All configuration of the API, the worker, beat and Flower (DESIGN §4)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    ENVIRONMENT: Environment = "production"

    DATABASE_URL: str
    REDIS_URL: str
    SECRET_KEY: SecretStr
    SECRET_KEY_FALLBACKS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    TABPFN_API_URL: str = "https://api.priorlabs.ai:443"
    TABPFN_TIMEOUT_S: float = Field(default=900.0, gt=0)
    TABPFN_API_TIMEOUT_S: float = Field(default=10.0, gt=0)
    UPSTREAM_SETTINGS_TTL_S: float = Field(default=300.0, ge=0)

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"

    WEBHOOK_ALLOW_PRIVATE_URLS: bool = False
    WEBHOOK_TIMEOUT_S: float = Field(default=15.0, gt=0)
    WEBHOOK_SECRET_OVERLAP_S: float = Field(default=86400.0, ge=0)
    WEBHOOK_RETRY_SCHEDULE_S: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 86400.0]
    )

    FLOWER_BASIC_AUTH: SecretStr | None = None
    BEAT_SCHEDULE_FILE: str | None = None
    WORKER_METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)

    WORKER_UPSTREAM_CONCURRENCY: int = Field(default=32, ge=1, le=1024)
    WORKER_MEMORY_BUDGET_MB: int = Field(default=1024, ge=16)
    WORKER_CLAIM_INTERVAL_S: float = Field(default=1.0, gt=0, le=60)

    JOB_MAX_ATTEMPTS: int = Field(default=3, ge=1, le=20)
    JOB_MAX_RUNNING_PER_USER: int = Field(default=8, ge=1)
    JOB_MAX_QUEUED_PER_USER: int = Field(default=1000, ge=1)
    JOB_MAX_RATE_LIMIT_PARKS: int = Field(default=30, ge=0)
    JOB_TIME_LIMIT_S: int = Field(default=3000, ge=10)
    JOB_LEASE_S: float = Field(default=60.0, gt=0)
    JOB_HEARTBEAT_S: float = Field(default=15.0, gt=0)
    JOB_RETRY_BASE_S: float = Field(default=5.0, ge=0)
    JOB_RETRY_MAX_S: float = Field(default=300.0, ge=0)
    JOB_REPUBLISH_AFTER_S: float = Field(default=600.0, gt=0)
    JOB_PUBLISH_GRACE_S: float = Field(default=5.0, ge=0)
    SWEEP_INTERVAL_S: float = Field(default=15.0, gt=0)
    RESULT_RETENTION_DAYS: int = Field(default=30, ge=1)
    RESULT_INLINE_MAX_ROWS: int = Field(default=1000, ge=0)

    FORWARDED_ALLOW_IPS: str = ""
    MAX_UPLOAD_BYTES: int = Field(default=100 * 1024 * 1024, ge=1024)
    MAX_SMALL_BODY_BYTES: int = Field(default=16 * 1024, ge=1024)
    UPLOAD_SLOTS: int = Field(default=4, ge=1, le=1024)
    UPLOAD_SLOT_WAIT_S: float = Field(default=10.0, ge=0, le=300)
    UPLOAD_SLOTS_PER_USER: int = Field(default=2, ge=1, le=1024)
    UPLOAD_READ_TIMEOUT_S: float = Field(default=120.0, gt=0, le=3600)
    RATE_LIMIT_SETUP_PER_MINUTE: int = Field(default=10, ge=1)
    RATE_LIMIT_JOBS_PER_MINUTE: int = Field(default=120, ge=1)
    API_KEY_CACHE_TTL_S: float = Field(default=60.0, ge=0)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    PREFER_WAIT_MAX_WAITERS: int = Field(default=1000, ge=0)
    PREFER_WAIT_MAX_WAITERS_PER_USER: int = Field(default=100, ge=0)
    PREFER_WAIT_RECHECK_S: float = Field(default=1.0, gt=0, le=3600)

    @field_validator("SECRET_KEY_FALLBACKS", "WEBHOOK_RETRY_SCHEDULE_S", mode="before")
    @classmethod
    def _parse_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("DATABASE_URL")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        """Accept plain `postgresql://` URLs and pin the psycopg 3 driver."""
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
            raise ValueError("must be a PostgreSQL URL such as postgresql+psycopg://user@host/db")
        return f"postgresql+psycopg://{rest}"

    @field_validator("REDIS_URL")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        # Both clients (redis-py for limits and caches, kombu for Celery) understand these two.
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL such as redis://host:6379/0")
        return value

    @field_validator("FORWARDED_ALLOW_IPS")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for entry in (item.strip() for item in value.split(",")):
            if not entry or entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network; list the reverse proxies' "
                    "addresses or networks (CIDR), comma-separated, or * for any"
                ) from None
        return value

    @field_validator("FLOWER_BASIC_AUTH")
    @classmethod
    def _check_flower_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, sep, password = value.get_secret_value().partition(":")
            if not (user and sep and password):
                raise ValueError("must look like user:password")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        self._check_secret("SECRET_KEY", self.SECRET_KEY)
        for fallback in self.SECRET_KEY_FALLBACKS:
            self._check_secret("SECRET_KEY_FALLBACKS", fallback)
        if self.JOB_HEARTBEAT_S * 2 > self.JOB_LEASE_S:
            raise ValueError("JOB_HEARTBEAT_S must be at most half of JOB_LEASE_S")
        if not self.WEBHOOK_RETRY_SCHEDULE_S:
            raise ValueError("WEBHOOK_RETRY_SCHEDULE_S needs at least one delay")
        return self

    def _check_secret(self, name: str, secret: SecretStr) -> None:
        value = secret.get_secret_value()
        if len(value) < _MIN_SECRET_LENGTH:
            raise ValueError(f"{name} must be at least {_MIN_SECRET_LENGTH} characters long")
        if self.ENVIRONMENT != "development" and _PLACEHOLDER_SECRET.search(value):
            raise ValueError(
                f"{name} looks like a placeholder; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )

    @property
    def job_soft_time_limit_s(self) -> int:
        """The soft limit leaves the task time to record a TIMEOUT before the hard kill."""
        return max(self.JOB_TIME_LIMIT_S - max(5, self.JOB_TIME_LIMIT_S // 20), 5)

    @property
    def broker_visibility_timeout_s(self) -> int:
        """Redis redelivers unacked messages after this; it must outlast the hard limit."""
        return self.JOB_TIME_LIMIT_S + 600

    @property
    def is_development(self) -> bool:
        return self.ENVIRONMENT == "development"


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's report into one sentence that names each variable."""
    parts: list[str] = []
    for item in error.errors():
        name = ".".join(str(loc) for loc in item["loc"]) or "configuration"
        if item["type"] == "missing":
            parts.append(f"{name} is not set")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {message}" if name != "configuration" else message)
    return "Configuration error: " + "; ".join(parts) + "."


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment, exiting with one sentence if they are unusable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
