"""Bodies of the fit and predict submissions.

`FitOptions` / `PredictOptions` are validated by Pydantic; `features` and `target` are
checked by `shared.datasets` (vectorised, with row/column positions in every message).
`FitBody` / `PredictBody` only document the whole JSON body in the OpenAPI schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.models import DeliveryStatus, Task
from shared.tabpfn.adapter import output_types
from shared.tabpfn.config import TabPFNConfig, shallow_options

Cell = float | str | None
DEFAULT_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
# tabpfn-client's own lists, default first (no copy here that could drift from them).
CLASSIFICATION_OUTPUTS = tuple(output_types(Task.CLASSIFICATION))
REGRESSION_OUTPUTS = tuple(output_types(Task.REGRESSION))
OutputType = Annotated[
    str,
    Field(
        max_length=20,
        json_schema_extra={
            "enum": list(dict.fromkeys(CLASSIFICATION_OUTPUTS + REGRESSION_OUTPUTS))
        },
    ),
]
# The values of shared.jobs.events.CALLBACK_EVENTS (tests/api/test_options_and_progress.py
# checks they agree).
CallbackEvent = Literal["completed", "started"]


def _callback_events(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("callback_events must not repeat an event")
    return value


CALLBACK_EVENTS_DESCRIPTION = (
    "Which webhook events the callback_url receives: `completed` (job.succeeded, "
    "job.failed, job.canceled; the default) and `started` (job.started, when a worker "
    "first takes the job)."
)


class FitOptions(BaseModel):
    """Everything in a fit request besides the data."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    feature_names: list[str] | None = Field(default=None, max_length=10_000)
    config: TabPFNConfig = Field(default_factory=TabPFNConfig)
    name: str | None = Field(default=None, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2048)
    callback_events: list[CallbackEvent] | None = Field(
        default=None, min_length=1, max_length=2, description=CALLBACK_EVENTS_DESCRIPTION
    )
    reuse: bool = Field(
        default=True,
        description="Reuse the upstream fit of an earlier ready model of yours fitted on the "
        "same data, task and options under the same TabPFN token (no upstream call, no quota). "
        "false: always fit.",
    )

    _check_events = field_validator("callback_events")(_callback_events)


class RefitBody(BaseModel):
    """A refit: the model's stored training data fitted again, optionally with new options."""

    model_config = ConfigDict(extra="forbid")

    config: TabPFNConfig | None = Field(
        default=None,
        description="New TabPFN options for the model; unset keeps the model's options.",
    )
    callback_url: str | None = Field(default=None, max_length=2048)
    callback_events: list[CallbackEvent] | None = Field(
        default=None, min_length=1, max_length=2, description=CALLBACK_EVENTS_DESCRIPTION
    )
    reuse: bool = Field(
        default=False,
        description="Reuse an identical earlier fit instead of fitting again (default false: "
        "a refit fits).",
    )

    _check_events = field_validator("callback_events")(_callback_events)


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
    inference_config: Annotated[dict[str, Any] | None, AfterValidator(shallow_options)] = None


class PredictOptions(BaseModel):
    """Everything in a predict request besides the features."""

    model_config = ConfigDict(extra="forbid")

    output_type: OutputType | None = Field(
        default=None,
        description=f"Classification: {', '.join(CLASSIFICATION_OUTPUTS)} (the first is the "
        f"default). Regression: {', '.join(REGRESSION_OUTPUTS)} (the first is the default; "
        "main and full return one object per row, full with the bar distribution's logits "
        "and its borders).",
    )
    quantiles: list[float] | None = Field(default=None, min_length=1, max_length=99)
    config: PredictConfig = Field(default_factory=PredictConfig)
    callback_url: str | None = Field(default=None, max_length=2048)
    callback_events: list[CallbackEvent] | None = Field(
        default=None, min_length=1, max_length=2, description=CALLBACK_EVENTS_DESCRIPTION
    )
    cache: bool = Field(
        default=True,
        description="Answer from an identical earlier prediction of this model (same rows and "
        "options) when one is stored (no upstream call). false: always predict.",
    )

    _check_events = field_validator("callback_events")(_callback_events)

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
