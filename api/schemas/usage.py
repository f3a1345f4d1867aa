"""The body of GET /api/v1/usage."""

from __future__ import annotations

from pydantic import BaseModel


class TabPFNUsage(BaseModel):
    current_usage: int
    usage_limit: int
    reset_time: str | None


class UsageOut(BaseModel):
    """`tabpfn` is null when the TabPFN service could not be asked right now."""

    tabpfn: TabPFNUsage | None
    jobs: dict[str, int]
