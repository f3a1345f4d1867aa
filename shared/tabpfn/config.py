"""The TabPFN options a user may set on a fit (and reuse on its predictions).

A strict schema (unknown keys are refused with their name), so a typo such as
`n_estimator` is a 400 at submission instead of a silently ignored option.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    inference_config: dict[str, Any] | None = None
    categorical_features_indices: list[int] | None = Field(default=None, max_length=2000)
    fit_mode: Literal["fit_preprocessors", "fit_with_cache"] | None = None
    paper_version: bool = False
    text_handling: Literal["advanced", "simple"] = "advanced"
    api_mode: Literal["auto", "sync", "async"] = Field(
        default="auto",
        description="`async` submits the fit and polls for it (long fits); `auto` decides by size.",
    )
