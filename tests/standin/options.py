"""What a fit asks for: task, TabPFN config, systems, text handling and the Thinking config.

The hosted service validates these against tabpfn-client 0.6.1's own types (`FitRequest` and
`SubmitFitJobRequest` in `api_models.py`); the stand-in does the same, answering 400
INVALID_INPUT with a sentence that names the field, so a caller that sends an option the
upstream would refuse learns it here and not only in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .wire import HTTPFail, error, field_obj, invalid_input

TASKS = ("classification", "regression")
# tabpfn-client 0.6.1's TabPFNSystem, TextHandling, ThinkingEffort and FitMode values.
TABPFN_SYSTEMS = ("preprocessing", "text", "thinking")
TEXT_HANDLINGS = ("advanced", "simple")
THINKING_EFFORTS = ("medium", "high")
TABPFN_FIT_MODES = ("fit_preprocessors", "fit_with_cache")
# The estimators' documented default when thinking is on and no effort is given.
DEFAULT_THINKING_EFFORT = "medium"
THINKING_CONFIG_FIELDS = frozenset(
    {"effort", "timeout_secs", "metric", "group_col", "time_col", "group_time_col"}
)


@dataclass(frozen=True)
class FitOptions:
    """One fit request's options, as sent (the fit log shows them unchanged)."""

    task: str
    tabpfn_config: dict[str, Any] | None = None
    tabpfn_systems: list[str] | None = None
    text_handling: str | None = None
    thinking_config: dict[str, Any] | None = None

    @property
    def thinking(self) -> bool:
        """Whether this is a Thinking fit: "thinking" is among the requested systems."""
        return self.tabpfn_systems is not None and "thinking" in self.tabpfn_systems

    @property
    def thinking_effort(self) -> str | None:
        """The effort a Thinking fit runs at (the default when none was given), else None."""
        if not self.thinking:
            return None
        return str((self.thinking_config or {}).get("effort") or DEFAULT_THINKING_EFFORT)

    @property
    def thinking_timeout_s(self) -> float | None:
        """The Thinking fit's time budget in seconds, None when the caller set none."""
        value = (self.thinking_config or {}).get("timeout_secs")
        return None if value is None else float(value)

    @property
    def fit_with_cache(self) -> bool:
        """Whether the fit asked for a server-side KV cache (`fit_mode="fit_with_cache"`)."""
        return (self.tabpfn_config or {}).get("fit_mode") == "fit_with_cache"

    def to_json(self) -> dict[str, Any]:
        """The options as the fit log shows them."""
        return {
            "task": self.task,
            "tabpfn_config": self.tabpfn_config,
            "tabpfn_systems": self.tabpfn_systems,
            "thinking_config": self.thinking_config,
            "text_handling": self.text_handling,
        }


def parse_fit_options(body: Mapping[str, Any], max_thinking_timeout_s: float) -> FitOptions:
    """The validated options of a fit or submit_fit_job body, or a 4xx naming what to fix."""
    task_config = field_obj(body, "task_config")
    task = task_config.get("task")
    if task not in TASKS:
        raise invalid_input("task_config.task must be 'classification' or 'regression'")
    tabpfn_config = _tabpfn_config(task_config)
    systems = _systems(body.get("tabpfn_systems"))
    text_handling = body.get("text_handling")
    if text_handling is not None and text_handling not in TEXT_HANDLINGS:
        raise invalid_input(f"text_handling must be one of {list(TEXT_HANDLINGS)} or omitted")
    thinking_config = body.get("thinking_config")
    if thinking_config is not None and not isinstance(thinking_config, dict):
        raise HTTPFail(error(422, "Field 'thinking_config' must be an object"))
    options = FitOptions(str(task), tabpfn_config, systems, text_handling, thinking_config)
    if thinking_config is not None:
        if systems == []:
            raise invalid_input(
                "Thinking mode cannot run with tabpfn_systems=[] (the paper version); "
                "send the default systems plus 'thinking'"
            )
        if not options.thinking:
            raise invalid_input("thinking_config was sent but 'thinking' is not in tabpfn_systems")
        _check_thinking_config(thinking_config, max_thinking_timeout_s)
    return options


def _tabpfn_config(task_config: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = task_config.get("tabpfn_config")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HTTPFail(error(422, "Field 'task_config.tabpfn_config' must be an object"))
    fit_mode = raw.get("fit_mode")
    if fit_mode is not None and fit_mode not in TABPFN_FIT_MODES:
        raise invalid_input(
            f"tabpfn_config.fit_mode must be one of {list(TABPFN_FIT_MODES)} or omitted"
        )
    return raw


def _systems(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise HTTPFail(error(422, "Field 'tabpfn_systems' must be a list of strings"))
    unknown = sorted(set(raw) - set(TABPFN_SYSTEMS))
    if unknown:
        raise invalid_input(
            f"Unknown tabpfn_systems {unknown}; known systems: {list(TABPFN_SYSTEMS)}"
        )
    return list(raw)


def _check_thinking_config(config: Mapping[str, Any], max_timeout_s: float) -> None:
    """The hosted service's checks of a ThinkingConfig (and the estimators' column rules)."""
    unknown = sorted(set(config) - THINKING_CONFIG_FIELDS)
    if unknown:
        raise invalid_input(
            f"Unknown thinking_config field(s) {unknown}; known: {sorted(THINKING_CONFIG_FIELDS)}"
        )
    effort = config.get("effort")
    if effort is not None and effort not in THINKING_EFFORTS:
        raise invalid_input(
            f"thinking_config.effort must be one of {list(THINKING_EFFORTS)} or omitted, "
            f"got {effort!r}"
        )
    timeout = config.get("timeout_secs")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise invalid_input("thinking_config.timeout_secs must be a positive number of seconds")
        if timeout > max_timeout_s:
            raise invalid_input(
                f"thinking_config.timeout_secs {timeout:g} exceeds the maximum of "
                f"{max_timeout_s:g} seconds"
            )
    metric = config.get("metric")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise invalid_input("thinking_config.metric must be a non-empty string or omitted")
    _check_column_names(config)


def _check_column_names(config: Mapping[str, Any]) -> None:
    group_col, time_col = config.get("group_col"), config.get("time_col")
    group_time_col = config.get("group_time_col")
    groups = [group_col] if isinstance(group_col, str) else group_col
    if groups is not None and (
        not isinstance(groups, list) or not groups or not all(isinstance(g, str) for g in groups)
    ):
        raise invalid_input("thinking_config.group_col must be a column name or a list of them")
    for name, value in (("time_col", time_col), ("group_time_col", group_time_col)):
        if value is not None and not isinstance(value, str):
            raise invalid_input(f"thinking_config.{name} must be a column name")
    if group_col is not None and time_col is not None:
        raise invalid_input("thinking_config.group_col and time_col cannot be combined")
    if group_time_col is not None and group_col is None:
        raise invalid_input("thinking_config.group_time_col requires group_col")
