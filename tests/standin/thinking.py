"""Thinking fits: their extra search time and the per-token thinking-fit quota.

The hosted service meters Thinking fits in a pool of their own (docs.priorlabs.ai, "API
metering": 20 per month by default, reset at the start of the month in UTC), apart from the
cell pool every request draws on; past it, /tabpfn/fit answers 429 with a message naming the
thinking quota and when it resets. The stand-in charges a Thinking fit when it accepts it and
refunds the charge if the fit fails, so a failed search costs nothing and two concurrent fits
can never both take the last unit.
"""

from __future__ import annotations

import datetime as dt

from .config import StandinConfig
from .options import FitOptions
from .state import Store
from .wire import HTTPFail, error

THINKING_QUOTA = "thinking_fit"  # tabpfn-client's QuotaOperation.THINKING_FIT


def next_month_reset_time() -> str:
    """Midnight UTC on the first day of next month, when the monthly pools reset."""
    today = dt.datetime.now(dt.UTC).date()
    first = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return dt.datetime.combine(first, dt.time(0, 0), tzinfo=dt.UTC).isoformat()


def charge_thinking_fit(cfg: StandinConfig, store: Store, owner: str, options: FitOptions) -> bool:
    """Take one unit of the owner's thinking-fit quota for a Thinking fit, or raise the 429.

    Returns whether a unit was taken (False for standard fits), so the caller knows whether
    a failed fit owes a refund."""
    if not options.thinking:
        return False
    used = store.reserve_thinking_fit(owner, cfg.thinking_fit_quota)
    if used is None:
        reset = next_month_reset_time()
        limit = cfg.thinking_fit_quota
        raise HTTPFail(
            error(
                429,
                f"Thinking-fit quota exceeded: {limit} of {limit} thinking fits used. "
                f"Resets at {reset}.",
                "USAGE_LIMIT_EXCEEDED",
                reset_time=reset,
                quota=THINKING_QUOTA,
            )
        )
    return True


def thinking_delay(cfg: StandinConfig, options: FitOptions) -> float:
    """Seconds a Thinking fit searches beyond a standard fit (0 for standard fits).

    The search stops at the caller's `timeout_secs` budget and the fit still completes, as
    the hosted service returns the best model found within the budget."""
    if not options.thinking:
        return 0.0
    budget = options.thinking_timeout_s
    return cfg.thinking_fit_delay_s if budget is None else min(cfg.thinking_fit_delay_s, budget)
