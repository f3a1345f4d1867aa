"""The catalogue of TabPFN models and options (`GET /api/v1/models/available`).

Every list comes from tabpfn-client itself (names, output types, Thinking efforts, fit
modes), so nothing here can drift from what the upstream accepts; the descriptions come
from `shared.tabpfn.catalogue`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.models import Task
from shared.tabpfn.adapter import (
    available_models,
    fit_modes,
    model_version,
    output_types,
    thinking_efforts,
)
from shared.tabpfn.catalogue import describe
from shared.tabpfn.config import MAX_THINKING_TIMEOUT_S


class ModelDescription(BaseModel):
    """One model name, for `config.model_path`."""

    family: str = Field(
        description="The model family (version), or `auto` for the service's choice."
    )
    fast: bool = Field(description="A faster, lighter variant of its family.")
    description: str


class TaskOptions(BaseModel):
    """What a prediction of one task may ask for."""

    output_types: list[str] = Field(description="Allowed `output_type` values, default first.")


class AvailableModels(BaseModel):
    """The model names per task (as before), what each is, and the options on offer."""

    classification: list[str]
    regression: list[str]
    descriptions: dict[str, ModelDescription]
    predictions: dict[str, TaskOptions]
    thinking_efforts: list[str] = Field(
        description="`config.thinking_effort` values (Thinking mode, TabPFN-3.5, API only)."
    )
    thinking_timeout_max_s: int = Field(description="The largest `config.thinking_timeout_s`.")
    fit_modes: list[str] = Field(
        description="`config.fit_mode` values; `fit_with_cache` is the fast path for many "
        "predictions from one fit."
    )


def describe_available() -> AvailableModels:
    names = available_models()
    descriptions: dict[str, ModelDescription] = {}
    for name in dict.fromkeys(names[Task.CLASSIFICATION.value] + names[Task.REGRESSION.value]):
        info = describe(name, model_version(name))
        descriptions[name] = ModelDescription(
            family=info.family, fast=info.fast, description=info.description
        )
    return AvailableModels(
        classification=names[Task.CLASSIFICATION.value],
        regression=names[Task.REGRESSION.value],
        descriptions=descriptions,
        predictions={task.value: TaskOptions(output_types=output_types(task)) for task in Task},
        thinking_efforts=thinking_efforts(),
        thinking_timeout_max_s=MAX_THINKING_TIMEOUT_S,
        fit_modes=fit_modes(),
    )
