"""Settings for tests: short leases and schedules, cheap bcrypt, never a `.env` file."""

from __future__ import annotations

import secrets
from typing import Any

from shared.config import Settings

SESSION_SECRET = secrets.token_urlsafe(48)


def make_settings(**values: Any) -> Settings:
    """Test settings; `values` override the defaults below."""
    defaults: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "SECRET_KEY": SESSION_SECRET,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "WEBHOOK_ALLOW_PRIVATE_URLS": True,
        "WEBHOOK_RETRY_SCHEDULE_S": [0.5, 1.0, 1.0],
        "WEBHOOK_TIMEOUT_S": 3.0,
        "JOB_LEASE_S": 4.0,
        "JOB_MAX_RATE_LIMIT_PARKS": 3,
        "JOB_HEARTBEAT_S": 1.0,
        "JOB_RETRY_BASE_S": 0.2,
        "JOB_RETRY_MAX_S": 1.0,
        "JOB_PUBLISH_GRACE_S": 0.5,
        "JOB_REPUBLISH_AFTER_S": 30.0,
        "SWEEP_INTERVAL_S": 1.0,
        "TABPFN_TIMEOUT_S": 60.0,
        "BCRYPT_ROUNDS": 4,
        "RATE_LIMIT_SETUP_PER_MINUTE": 1000,
        "RATE_LIMIT_JOBS_PER_MINUTE": 10000,
        "DB_POOL_SIZE": 5,
    }
    defaults.update(values)
    return Settings(_env_file=None, **defaults)
