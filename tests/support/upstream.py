"""Waiting on a submitted fit as the worker would, for tests that use the adapter directly."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from shared.models import Task
from shared.tabpfn.adapter import TabPFNUpstream
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.types import FitState


def fit_and_wait(
    upstream: TabPFNUpstream,
    token: str,
    X: pd.DataFrame,
    y: np.ndarray[Any, Any],
    task: Task,
    config: TabPFNConfig,
    *,
    timeout: float = 60,
) -> str:
    """Submit a fit and check its status (following the hint) until it completed."""
    submitted = upstream.submit_fit(token, X, y, task, config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = upstream.fit_status(token, submitted.fit_id)
        if report.state is FitState.COMPLETED:
            return submitted.fit_id
        if report.state is FitState.FAILED:
            raise AssertionError(f"fit failed upstream: {report.error}")
        time.sleep(report.retry_in_s)
    raise TimeoutError(f"fit {submitted.fit_id} still pending after {timeout} s")
