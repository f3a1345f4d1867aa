"""Bodies of the fit and predict submissions.

`FitOptions` / `PredictOptions` are validated by Pydantic; `features` and `target` are
checked by `shared.datasets` (vectorised, with row/column positions in every message).
`FitBody` / `PredictBody` only document the whole JSON body in the OpenAPI schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.models import DeliveryStatus, Task
from shared.tabpfn.config import TabPFNConfig

Cell = float | str | None
OutputType = Literal["preds", "probas", "mean", "median", "mode", "quantiles"]
DEFAULT_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
# Seconds a client should wait before polling an unfinished job again (Retry-After).
POLL_AFTER_S = "1"
CLASSIFICATION_OUTPUTS = ("preds", "probas")
REGRESSION_OUTPUTS = ("mean", "median", "mode", "quantiles")


class FitOptions(BaseModel):
    """Everything in a fit request besides the data."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    feature_names: list[str] | None = Field(default=None, max_length=10_000)
    config: TabPFNConfig = Field(default_factory=TabPFNConfig)
    name: str | None = Field(default=None, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2048)


class FitBody(FitOptions):
    """A fit request: rows of features (numbers, strings, null) and one target per row."""

    features: list[list[Cell]] = Field(examples=[[[5.1, "red", None], [4.9, "blue", 1.4]]])
    target: list[float | str] = Field(examples=[[0, 1]])


class PredictConfig(BaseModel):
    """TabPFN options that may differ between predictions of one fitted model."""

    model_config = ConfigDict(extra="forbid")

    n_estimators: int | None = Field(default=None, ge=1, le=64)
    softmax_temperature: float | None = Field(default=None, gt=0, le=100)
    balance_probabilities: bool | None = None
    average_before_softmax: bool | None = None
    inference_precision: Literal["autocast", "auto"] | None = None
    inference_config: dict[str, Any] | None = None


class PredictOptions(BaseModel):
    """Everything in a predict request besides the features."""

    model_config = ConfigDict(extra="forbid")

    output_type: OutputType | None = Field(
        default=None,
        description="Classification: preds (default) or probas. "
        "Regression: mean (default), median, mode or quantiles.",
    )
    quantiles: list[float] | None = Field(default=None, min_length=1, max_length=99)
    config: PredictConfig = Field(default_factory=PredictConfig)
    callback_url: str | None = Field(default=None, max_length=2048)

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if any(not 0 < q < 1 for q in value):
                raise ValueError("every quantile must be strictly between 0 and 1")
            if len(set(value)) != len(value):
                raise ValueError("quantiles must not repeat")
        return value


class PredictBody(PredictOptions):
    """A predict request: rows with the same columns, in the same order, as the fit."""

    features: list[list[Cell]] = Field(examples=[[[5.0, "red", 1.2]]])


class DeliveryOut(BaseModel):
    """One webhook delivery attempt."""

    id: uuid.UUID
    event: str
    attempt: int
    status: DeliveryStatus
    url: str
    response_code: int | None
    error: str | None
    next_attempt_at: datetime | None
    attempted_at: datetime | None
    delivered_at: datetime | None
