"""The typed result of a job: a fit's summary, or a prediction typed by its output type.

`JobResult` is discriminated by `kind` (`fit` | `predict`), a prediction further by
`output_type`, so the OpenAPI document tells a generated client exactly what each result
holds (one entry per input row, `shared.tabpfn.outputs`):

- `preds`: a label per row; `mean`, `median`, `mode`: a number per row;
- `probas`: a probability per class (in `classes` order) per row;
- `quantiles`: a value per requested quantile (in `quantiles` order) per row;
- `main`: an object per row (`mean`, `median`, `mode`, `quantiles`); `full` adds the row's
  `logits` over the bars whose `borders` are in the result.

Numbers computed upstream are `null` where they were not finite (JSON has no NaN).
`predictions` is null when the result is too large to travel inline (`inline: false`):
`GET /jobs/{id}/result` serves it. The stored result (`jobs.result`) has the same keys,
less `kind`, which comes from the job.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, RootModel, Tag, TypeAdapter

from shared.models import JobKind

Label = Annotated[int | float | str, Field(description="A class label, as in the target.")]
Value = float | None


class FitResult(BaseModel):
    """A succeeded fit: the upstream fit and what it was made from."""

    kind: Literal["fit"]
    train_set_uid: str = Field(description="The TabPFN service's id of the fitted data.")
    n_samples: int
    n_features: int
    classes: list[Label] | None = Field(description="Classification: the classes, sorted.")
    reused_from: uuid.UUID | None = Field(
        default=None, description="The earlier model whose upstream fit this fit reused."
    )


class _Prediction(BaseModel):
    kind: Literal["predict"]
    n_rows: int = Field(description="How many rows were predicted.")
    inline: bool = Field(
        description="Whether `predictions` is here; false above RESULT_INLINE_MAX_ROWS rows "
        "(then download them from `links.result`)."
    )
    classes: list[Label] | None = None
    quantiles: list[float] | None = None
    cached: bool | None = Field(
        default=None, description="Answered from an identical earlier prediction."
    )
    cached_from: uuid.UUID | None = Field(
        default=None, description="The earlier prediction job that answered this one."
    )
    chunks: int | None = Field(
        default=None, description="A large prediction: how many upstream requests it took."
    )
    extras: dict[str, Any] | None = Field(
        default=None,
        description="Row-independent values the TabPFN service returned that this version "
        "does not know yet (kept rather than dropped).",
    )


class LabelPrediction(_Prediction):
    """`preds`: the predicted class of each row."""

    output_type: Literal["preds"]
    predictions: list[Label] | None


class PointPrediction(_Prediction):
    """`mean`, `median`, `mode`: one number per row."""

    output_type: Literal["mean", "median", "mode"]
    predictions: list[Value] | None


class ProbabilityPrediction(_Prediction):
    """`probas`: one probability per class per row, in `classes` order."""

    output_type: Literal["probas"]
    classes: list[Label] | None
    predictions: list[list[Value]] | None


class QuantilePrediction(_Prediction):
    """`quantiles`: one value per requested quantile per row, in `quantiles` order."""

    output_type: Literal["quantiles"]
    quantiles: list[float] | None
    predictions: list[list[Value]] | None


class DistributionRow(BaseModel):
    """One row of a `main` prediction."""

    # Defaults: a row the upstream sent without one of them still renders (this model is
    # also built inside a job's final transition, for its webhook event).
    mean: Value = None
    median: Value = None
    mode: Value = None
    quantiles: list[Value] = Field(
        default_factory=list, description="One value per quantile, in `quantiles` order."
    )


class FullRow(DistributionRow):
    """One row of a `full` prediction: also its logits over the bar distribution."""

    logits: list[Value] = Field(
        default_factory=list, description="One logit per bar (see `borders`)."
    )


class MainPrediction(_Prediction):
    """`main`: the distribution's summary per row."""

    output_type: Literal["main"]
    quantiles: list[float] | None
    predictions: list[DistributionRow] | None


class FullPrediction(_Prediction):
    """`full`: the summary and the logits over the bar distribution per row."""

    output_type: Literal["full"]
    quantiles: list[float] | None
    predictions: list[FullRow] | None
    borders: list[Value] | None = Field(
        default=None, description="The bars' borders (one more than the logits per row)."
    )


PredictResult = Annotated[
    LabelPrediction
    | PointPrediction
    | ProbabilityPrediction
    | QuantilePrediction
    | MainPrediction
    | FullPrediction,
    Field(discriminator="output_type"),
]
# The outer choice is made by a function, not a `discriminator` field: an OpenAPI
# discriminator may only map to named schemas, and the predictions are themselves a
# discriminated union. The document shows `oneOf: [FitResult, <predictions by output_type>]`;
# `kind` tells them apart.
JobResult = Annotated[
    Annotated[FitResult, Tag("fit")] | Annotated[PredictResult, Tag("predict")],
    Discriminator(lambda value: value.get("kind") if isinstance(value, dict) else value.kind),
]


class JobResultFile(RootModel[JobResult]):
    """`GET /jobs/{id}/result?format=json`: the job's result, predictions always included."""


_RESULT: TypeAdapter[FitResult | PredictResult] = TypeAdapter(JobResult)
OUTPUT_TYPES = frozenset(
    value
    for model in (
        LabelPrediction,
        PointPrediction,
        ProbabilityPrediction,
        QuantilePrediction,
        MainPrediction,
        FullPrediction,
    )
    for value in model.model_fields["output_type"].annotation.__args__  # type: ignore[union-attr]
)


def result_of(kind: JobKind, stored: dict[str, Any], **replace: Any) -> FitResult | PredictResult:
    """A stored result as its typed model (`replace`: keys to set, e.g. the predictions of
    a result stored apart)."""
    return _RESULT.validate_python({**stored, **replace, "kind": kind.value})
