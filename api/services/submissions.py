"""Turn a fit or predict body into validated data, or a 4xx that says what to fix.

Everything is checked here, at submission: the shape and types of every cell, the target,
the options, the callback URL, and the upstream's size limits. A job reaches a worker
only with data the upstream can take.

The size limits come first, on the table's shape alone (a file's metadata or header, a JSON
body's row and column counts), before any cell is decoded or typed: a table over the limits
costs no more than its body (`shared/datasets/file_reader.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from api.body import RawBody, form_json, parse_json_object
from api.errors import describe_validation_errors
from api.schemas.jobs import (
    CLASSIFICATION_OUTPUTS,
    DEFAULT_QUANTILES,
    REGRESSION_OUTPUTS,
    FitOptions,
    PredictOptions,
    RefitBody,
)
from shared.datasets import file_input, file_reader, json_input, limits
from shared.datasets.table import ColumnKind, FeatureTable, Target
from shared.errors import ValidationFailed
from shared.jobs.results import WITH_QUANTILES
from shared.models import Model, Task
from shared.tabpfn.adapter import available_models, fit_modes, thinking_efforts
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.types import AUTO_MODEL_PATHS, Limits
from shared.webhooks.urls import check_callback_url

LimitsLookup = Callable[[str | None], Limits | None]
OptionsT = TypeVar("OptionsT", bound=BaseModel)


@dataclass
class FitSubmission:
    options: FitOptions
    table: FeatureTable
    target: Target


@dataclass
class PredictSubmission:
    options: PredictOptions
    table: FeatureTable
    output_type: str
    quantiles: list[float] | None


@dataclass
class RefitSubmission:
    """A refit's options: the model's (or new) TabPFN options, and its callback."""

    config: dict[str, Any]
    callback_url: str | None
    callback_events: list[str] | None
    reuse: bool


def _options(model: type[OptionsT], values: dict[str, Any]) -> OptionsT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        message, details = describe_validation_errors(list(error.errors()))
        raise ValidationFailed(message, details=details) from None


# Form fields that hold a list: a JSON array, or names separated by commas.
_LIST_FIELDS = ("callback_events",)


def _form_values(
    raw: RawBody, json_fields: tuple[str, ...], drop: tuple[str, ...]
) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in raw.fields.items() if k not in drop}
    for name in json_fields:
        if name in values:
            values[name] = form_json(raw.fields, name)
    for name in _LIST_FIELDS:
        text = raw.fields.get(name, "").strip()
        if text.startswith("["):
            values[name] = form_json(raw.fields, name)
        elif text:
            values[name] = [item.strip() for item in text.split(",") if item.strip()]
    return {k: v for k, v in values.items() if v is not None}


def read_fit(raw: RawBody, limits_for: LimitsLookup, *, allow_private_urls: bool) -> FitSubmission:
    """Validate a fit request (JSON rows, or a CSV/Parquet file with `target_column`)."""
    if raw.is_multipart:
        if raw.file_bytes is None:
            raise ValidationFailed("The multipart body has no `file` field (CSV or Parquet).")
        target_column = raw.fields.get("target_column")
        if not target_column:
            raise ValidationFailed("Form field `target_column` names the column to predict.")
        options = _options(FitOptions, _form_values(raw, ("config",), ("target_column",)))
        account_limits = limits_for(options.config.model_path)
        upload = file_reader.inspect(raw.file_bytes, raw.filename)
        frame = file_reader.decode(upload, limits.fit_bounds(account_limits), extra_cols=1)
        features, target = file_input.split_target(frame, target_column, options.task)
        table = file_input.to_feature_table(features)
    else:
        body = parse_json_object(raw.json_bytes or b"")
        rows, labels = body.pop("features", None), body.pop("target", None)
        options = _options(FitOptions, body)
        if rows is None or labels is None:
            missing = "features" if rows is None else "target"
            raise ValidationFailed(f"{missing} is required.")
        account_limits = limits_for(options.config.model_path)
        _check_json_shape(rows, limits.fit_bounds(account_limits))
        table = json_input.parse_features(rows, names=options.feature_names)
        target = json_input.parse_target(labels, table.n_rows, options.task)
    _check_config(options.config, options.task, table.n_cols)
    _check_callback(options.callback_url, allow_private_urls)
    n_classes = len(target.classes) if target.classes is not None else None
    limits.check_classes(n_classes, account_limits)
    return FitSubmission(options=options, table=table, target=target)


def _check_json_shape(rows: Any, bounds: limits.Bounds) -> None:
    shape = json_input.peek_shape(rows)
    if shape is not None:
        bounds.check(*shape)


def _check_config(config: TabPFNConfig, task: Task, n_cols: int) -> None:
    """The options against tabpfn-client's own lists (models, Thinking efforts, fit modes)."""
    path = config.model_path
    known = available_models()[task.value]
    if path is not None and path not in AUTO_MODEL_PATHS and path not in known:
        raise ValidationFailed(
            f"config.model_path {path!r} is not a known {task.value} model; "
            "see GET /api/v1/models/available.",
            details={"available": known},
        )
    for index in config.categorical_features_indices or []:
        if not 0 <= index < n_cols:
            raise ValidationFailed(
                f"config.categorical_features_indices holds {index}, but the features have "
                f"{n_cols} columns (0 to {n_cols - 1})."
            )
    if config.balance_probabilities is not None and task is Task.REGRESSION:
        raise ValidationFailed("config.balance_probabilities applies to classification only.")
    efforts = thinking_efforts()
    if config.thinking_effort is not None and config.thinking_effort not in efforts:
        raise ValidationFailed(
            f"config.thinking_effort {config.thinking_effort!r} is not one of "
            f"{', '.join(efforts)}.",
            details={"allowed": efforts},
        )
    modes = fit_modes()
    if config.fit_mode is not None and config.fit_mode not in modes:
        raise ValidationFailed(
            f"config.fit_mode {config.fit_mode!r} is not one of {', '.join(modes)}.",
            details={"allowed": modes},
        )


def read_refit(raw: RawBody, model: Model, *, allow_private_urls: bool) -> RefitSubmission:
    """Validate a refit request (an empty body keeps the model's options)."""
    if raw.is_multipart:
        raise ValidationFailed("A refit takes a JSON body (or none); send application/json.")
    data = raw.json_bytes or b""
    body = RefitBody() if not data.strip() else _options(RefitBody, parse_json_object(data))
    config = body.config if body.config is not None else TabPFNConfig.model_validate(model.config)
    _check_config(config, model.task, model.n_features)
    _check_callback(body.callback_url, allow_private_urls)
    return RefitSubmission(
        config=config.model_dump(exclude_defaults=True),
        callback_url=body.callback_url,
        callback_events=list(body.callback_events) if body.callback_events else None,
        reuse=body.reuse,
    )


def _check_callback(url: str | None, allow_private: bool) -> None:
    if url is not None:
        check_callback_url(url, allow_private=allow_private)


def read_predict(
    raw: RawBody, model: Model, model_limits: Limits | None, *, allow_private_urls: bool
) -> PredictSubmission:
    """Validate a predict request against the model it targets."""
    kinds = [ColumnKind(kind) for kind in model.feature_kinds]
    if raw.is_multipart:
        if raw.file_bytes is None:
            raise ValidationFailed("The multipart body has no `file` field (CSV or Parquet).")
        options = _options(PredictOptions, _form_values(raw, ("config", "quantiles"), ()))
        output_type, quantiles = _output(options, model)
        bounds = _predict_bounds(model, model_limits, output_type)
        upload = file_reader.inspect(raw.file_bytes, raw.filename)
        _check_width(upload.n_cols, model)
        frame = file_reader.decode(upload, bounds)
        _check_names([str(c) for c in frame.columns], model)
        table = file_input.to_feature_table(frame, expected_kinds=kinds)
    else:
        body = parse_json_object(raw.json_bytes or b"")
        rows = body.pop("features", None)
        options = _options(PredictOptions, body)
        if rows is None:
            raise ValidationFailed("features is required.")
        output_type, quantiles = _output(options, model)
        shape = json_input.peek_shape(rows)
        if shape is not None:
            _check_width(shape[1], model)
            _predict_bounds(model, model_limits, output_type).check(*shape)
        table = json_input.parse_features(rows, names=model.feature_names, expected_kinds=kinds)
    _check_callback(options.callback_url, allow_private_urls)
    return PredictSubmission(
        options=options, table=table, output_type=output_type, quantiles=quantiles
    )


def _predict_bounds(model: Model, model_limits: Limits | None, output_type: str) -> limits.Bounds:
    return limits.predict_bounds(
        model_limits, n_train_rows=model.n_samples, n_cols=model.n_features, output_type=output_type
    )


def _check_width(n_cols: int, model: Model) -> None:
    if n_cols != model.n_features:
        raise ValidationFailed(
            f"The features have {n_cols} columns but model {model.id} was fit on "
            f"{model.n_features}; send the same columns in the same order.",
            code="FEATURE_COUNT_MISMATCH",
        )


def _check_names(names: list[str], model: Model) -> None:
    if model.feature_names is None:
        return
    for index, (sent, fitted) in enumerate(zip(names, model.feature_names, strict=True)):
        if sent != fitted:
            raise ValidationFailed(
                f"Column {index} is {sent!r} but the model was fit with {fitted!r} there; "
                "send the same columns in the same order."
            )


def _output(options: PredictOptions, model: Model) -> tuple[str, list[float] | None]:
    allowed = CLASSIFICATION_OUTPUTS if model.task is Task.CLASSIFICATION else REGRESSION_OUTPUTS
    output_type = options.output_type or allowed[0]
    if output_type not in allowed:
        raise ValidationFailed(
            f"output_type {output_type!r} does not apply to a {model.task.value} model; "
            f"use one of {', '.join(allowed)}."
        )
    if options.quantiles is not None and output_type not in WITH_QUANTILES:
        raise ValidationFailed(
            f"quantiles apply only with output_type {', '.join(WITH_QUANTILES)}."
        )
    if output_type in WITH_QUANTILES:
        return output_type, options.quantiles or list(DEFAULT_QUANTILES)
    return output_type, None
