"""The TabPFN options a user may set on a fit (and reuse on its predictions).

A strict schema (unknown keys are refused with their name), so a typo such as
`n_estimator` is a 400 at submission instead of a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Free-form options (`inference_config`) nest at most this deep: TabPFN's own are shallow,
# and a value a thousand levels deep would stop whatever walks it recursively later.
MAX_OPTION_DEPTH = 16


def nesting_depth(value: Any) -> int:
    """How deep lists and objects nest in a JSON value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def shallow_options(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A free-form option object, refused when it nests deeper than MAX_OPTION_DEPTH."""
    if value is not None and nesting_depth(value) > MAX_OPTION_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_OPTION_DEPTH} levels")
    return value


# The longest Thinking budget the service offers (a Thinking fit takes up to 40 minutes).
MAX_THINKING_TIMEOUT_S = 2400


class TabPFNConfig(BaseModel):
    """Options passed to TabPFN; every one is optional and defaults to the service's choice."""

    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(
        default=None,
        description="A model name from GET /api/v1/models/available (e.g. `v2.5_default`); "
        "`auto` or unset lets the service choose.",
        max_length=200,
    )
    n_estimators: int | None = Field(default=None, ge=1, le=64)
    softmax_temperature: float | None = Field(default=None, gt=0, le=100)
    balance_probabilities: bool | None = Field(default=None, description="Classification only.")
    average_before_softmax: bool | None = None
    ignore_pretraining_limits: bool | None = None
    inference_precision: Literal["autocast", "auto"] | None = None
    random_state: int | None = Field(default=0, ge=0, le=2**32 - 1)
    inference_config: Annotated[dict[str, Any] | None, AfterValidator(shallow_options)] = None
    categorical_features_indices: list[int] | None = Field(default=None, max_length=2000)
    fit_mode: str | None = Field(
        default=None,
        max_length=40,
        description="`fit_with_cache` keeps the fitted model cached upstream: the fast path "
        "for many predictions from one fit. `fit_preprocessors` (the service's default) "
        "fits the preprocessing only.",
    )
    paper_version: bool = False
    text_handling: Literal["advanced", "simple"] = "advanced"
    api_mode: Literal["auto", "sync", "async"] = Field(
        default="auto",
        description="Accepted for compatibility and ignored: every fit is submitted "
        "asynchronously and waited on without holding a worker.",
    )
    thinking_effort: str | None = Field(
        default=None,
        max_length=20,
        description="Thinking mode (TabPFN-3.5, API only): the fit searches longer for a "
        "better model. One of the efforts in GET /api/v1/models/available; unset: no Thinking.",
    )
    thinking_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_THINKING_TIMEOUT_S,
        description="Thinking mode's time budget for the fit, seconds (at most 2400).",
    )
    thinking_metric: str | None = Field(
        default=None,
        max_length=100,
        description="The metric Thinking mode optimises (the service's names, e.g. `roc_auc`).",
    )

    @model_validator(mode="after")
    def _thinking_needs_an_effort(self) -> TabPFNConfig:
        if self.thinking_effort is None and (
            self.thinking_timeout_s is not None or self.thinking_metric is not None
        ):
            raise ValueError(
                "thinking_timeout_s and thinking_metric apply to Thinking mode; "
                "set thinking_effort too"
            )
        if self.thinking_effort is not None and self.paper_version:
            raise ValueError("Thinking mode and paper_version cannot be combined")
        return self
