"""The scikit-learn model the stand-in fits, so predictions follow the data deterministically."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TASKS = ("classification", "regression")
CLASSIFIER_OUTPUTS = ("preds", "probas")
REGRESSOR_OUTPUTS = ("mean", "median", "mode", "quantiles", "main", "full")
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Histogram bars of the "full" regression output, like TabPFN's bar distribution.
FULL_OUTPUT_BARS = 64
RANDOM_STATE = 0
FloatArray = npt.NDArray[np.float64]


class BaselineError(ValueError):
    """The data cannot be fitted or predicted on; the server answers 400 INVALID_INPUT."""


def _is_numeric(series: pd.Series[Any]) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype))


def _prepare(x: pd.DataFrame, numeric: list[bool]) -> pd.DataFrame:
    """Columns renamed by position (test columns match train columns by position) and cleaned."""
    if x.shape[1] != len(numeric):
        raise BaselineError(
            f"X has {x.shape[1]} columns but the model was fitted on {len(numeric)} columns"
        )
    out: dict[str, Any] = {}
    for i, is_num in enumerate(numeric):
        col = x.iloc[:, i]
        if is_num:
            # Junk in a numeric column becomes missing, which the imputer fills.
            out[f"f{i}"] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        else:
            # Strings only, NaN for missing: None would slip past the imputer's NaN mask.
            values = col.astype(object).to_numpy()
            out[f"f{i}"] = np.array(
                [str(v) if not pd.isna(v) else np.nan for v in values], dtype=object
            )
    return pd.DataFrame(out, index=pd.RangeIndex(x.shape[0]))


def _preprocessor(numeric: list[bool]) -> ColumnTransformer:
    num_cols = [f"f{i}" for i, is_num in enumerate(numeric) if is_num]
    cat_cols = [f"f{i}" for i, is_num in enumerate(numeric) if not is_num]
    num = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer([("num", num, num_cols), ("cat", cat, cat_cols)])


class BaselineModel:
    """A fitted baseline whose `predict` returns exactly the JSON values the stand-in serves."""

    def __init__(
        self,
        task: str,
        pipeline: Any,
        numeric: list[bool],
        resid_std: float = 0.0,
        target_range: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.task = task
        self.pipeline = pipeline
        self.numeric = numeric
        self.resid_std = resid_std
        # (min, max) of the train targets: the "full" output's bar grid is fixed by them.
        self.target_range = target_range

    @property
    def n_features(self) -> int:
        """Number of columns the model was fitted on."""
        return len(self.numeric)

    @property
    def classes(self) -> list[Any]:
        """Class labels in np.unique order (the client's classes_), as plain JSON values."""
        if self.task != "classification":
            return []
        return list(self.pipeline.classes_.tolist())

    def predict(
        self,
        X: pd.DataFrame,
        output_type: str,
        quantiles: list[float] | None = None,
    ) -> list[Any] | dict[str, Any]:
        """Predict in the wire format of `output_type` (lists of JSON values, not arrays)."""
        xp = _prepare(X, self.numeric)
        if self.task == "classification":
            if output_type == "preds":
                return list(self.pipeline.predict(xp).tolist())
            if output_type == "probas":
                return list(np.asarray(self.pipeline.predict_proba(xp), dtype=float).tolist())
            raise BaselineError(f"Unknown classification output_type {output_type!r}")
        mean = np.asarray(self.pipeline.predict(xp), dtype=float)
        qs = _check_quantiles(quantiles) if output_type in ("quantiles", "main", "full") else []
        if output_type in ("mean", "median", "mode"):
            return _floats(mean)
        if output_type == "quantiles":
            return [_floats(row) for row in self._quantiles(mean, qs)]
        if output_type == "main":
            return {**{k: _floats(mean) for k in ("mean", "median", "mode")}, **self._q(mean, qs)}
        if output_type == "full":
            borders, logits = self._bars(mean)
            return {
                **{k: _floats(mean) for k in ("mean", "median", "mode")},
                **self._q(mean, qs),
                "logits": [_floats(row) for row in logits],
                "borders": _floats(borders),
            }
        raise BaselineError(f"Unknown regression output_type {output_type!r}")

    def _quantiles(self, mean: FloatArray, qs: list[float]) -> FloatArray:
        z = np.asarray(norm.ppf(qs), dtype=float)
        return np.asarray(mean[None, :] + self.resid_std * z[:, None], dtype=float)

    def _q(self, mean: FloatArray, qs: list[float]) -> dict[str, Any]:
        return {"quantiles": [_floats(row) for row in self._quantiles(mean, qs)]}

    def _bars(self, mean: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Bar borders and per-row log-mass of a Gaussian; zero mass gives -inf, sent as null.

        Like TabPFN's bar distribution, the borders belong to the fitted model (here: the
        train targets' range), not to the test rows, so the client can merge the "full"
        outputs of split requests; the outer bars take the tails, so each row's mass is 1."""
        std = max(self.resid_std, 1e-6)
        low, high = self.target_range
        borders = np.linspace(low - 3 * std, high + 3 * std, FULL_OUTPUT_BARS + 1)
        cdf = np.asarray(norm.cdf((borders[None, :] - mean[:, None]) / std), dtype=float)
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0
        mass = np.diff(cdf, axis=1)
        with np.errstate(divide="ignore"):
            logits = np.log(np.clip(mass, 0.0, None))
        return borders, logits


def _floats(values: FloatArray) -> list[float | None]:
    """Plain floats; non-finite values become null because JSON cannot carry them."""
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]


def _check_quantiles(quantiles: list[float] | None) -> list[float]:
    if quantiles is None:
        return list(DEFAULT_QUANTILES)
    if not quantiles or not all(isinstance(q, int | float) and 0 < q < 1 for q in quantiles):
        raise BaselineError(
            "quantiles must be a non-empty list of numbers strictly between 0 and 1"
        )
    return [float(q) for q in quantiles]


def _target(y: npt.NDArray[Any] | pd.Series[Any] | pd.DataFrame) -> npt.NDArray[Any]:
    """y as a 1-D array of plain values (categories and extension dtypes unwrapped)."""
    series = y.iloc[:, 0] if isinstance(y, pd.DataFrame) else pd.Series(y)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    if pd.api.types.is_extension_array_dtype(series.dtype):
        series = series.astype(object)
    return np.asarray(series.to_numpy())


def fit_baseline(
    X: pd.DataFrame,
    y: npt.NDArray[Any] | pd.Series[Any] | pd.DataFrame,
    task: str,
) -> BaselineModel:
    """Fit the deterministic baseline for `task` ("classification" or "regression")."""
    if task not in TASKS:
        raise BaselineError(f"Unknown task {task!r}")
    target = _target(y)
    if X.shape[0] != target.shape[0]:
        raise BaselineError(f"X has {X.shape[0]} rows but y has {target.shape[0]}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise BaselineError("The train set needs at least 2 rows and 1 column")
    if pd.isna(pd.Series(target)).any():
        raise BaselineError("y contains missing values")
    numeric = [_is_numeric(X.iloc[:, i]) for i in range(X.shape[1])]
    xp = _prepare(X, numeric)
    if task == "classification":
        if len(pd.unique(pd.Series(target))) < 2:
            raise BaselineError("y has a single class; classification needs at least 2 classes")
        clf = LogisticRegression(max_iter=2000, random_state=RANDOM_STATE)
        pipeline = Pipeline([("prep", _preprocessor(numeric)), ("model", clf)])
        pipeline.fit(xp, target)
        return BaselineModel(task, pipeline, numeric)
    try:
        y_num = pd.to_numeric(pd.Series(target), errors="raise").astype("float64").to_numpy()
    except (ValueError, TypeError) as exc:
        raise BaselineError("y must be numeric for regression") from exc
    pipeline = Pipeline([("prep", _preprocessor(numeric)), ("model", Ridge(alpha=1.0))])
    pipeline.fit(xp, y_num)
    resid = y_num - np.asarray(pipeline.predict(xp), dtype=float)
    return BaselineModel(
        task,
        pipeline,
        numeric,
        resid_std=float(np.std(resid)),
        target_range=(float(y_num.min()), float(y_num.max())),
    )
