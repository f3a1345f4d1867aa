"""`RemoteTabPFNClassifier` and `RemoteTabPFNRegressor`: scikit-learn estimators that fit
and predict on a tabpfn-api service.

scikit-learn's conventions, kept: the constructor only stores its parameters (so `clone`,
`get_params`, `set_params`, grid searches and pipelines work); `fit` returns self; fitted
state ends in `_` (`model_id_`, `classes_`, `n_features_in_`, `feature_names_in_`).

The fitted state is the service's model id plus what predictions need locally (classes,
feature names), so a fitted estimator pickles small and predicts in any process that can
reach the service. **A pickle never holds the API key**: `api_key` is pickled as None, and
the unpickled estimator finds its key as a new one would (`TABPFN_API_KEY`, then the config
file of `tabpfn-api setup`), or takes `set_params(api_key=...)`. The same holds for
`cross_val_score(..., n_jobs=2)`, whose workers receive pickles: set `TABPFN_API_KEY` there.
`repr` masks the key too. `base_url` is not secret and is pickled.

Data of at least `PARQUET_MIN_CELLS` cells is sent as a Parquet file when pandas and pyarrow
are installed (smaller and faster to parse than JSON rows); otherwise as JSON.
"""

from __future__ import annotations

import html
import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from tabpfn_api_client import tables
from tabpfn_api_client.client import Client
from tabpfn_api_client.records import Job, Prediction

PARQUET_MIN_CELLS = 10_000
DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_MASK = "***"


def wire_label(value: Any) -> Any:
    """A class label as the service stores it (JSON numbers and text; booleans as text)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value if isinstance(value, (str, int, float)) else str(value)


class _RemoteTabPFN(BaseEstimator):  # type: ignore[misc]
    """What both estimators share: parameters, the data's shape and names, the calls."""

    _task: str

    def _config(self) -> dict[str, Any]:
        names = [n for n in self._param_names() if n not in _NOT_CONFIG]
        options = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return {**(self.config or {}), **options}

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def _client(self) -> Client:
        return Client(self.base_url, self.api_key)

    # Input checks -------------------------------------------------------------------------

    def _learn_columns(self, X: Any) -> None:
        names = tables.column_names(X)
        if names is not None and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = int(np.shape(X)[1])

    def _columns_for_predict(self, X: Any) -> Any:
        """X with the fit's columns in the fit's order (DataFrames are reordered by name)."""
        check_is_fitted(self, "model_id_")
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and tables.is_dataframe(X):
            given = [str(c) for c in X.columns]
            missing = [n for n in fitted if n not in given]
            extra = [n for n in given if n not in set(fitted)]
            if missing or extra:
                raise ValueError(
                    "X's columns differ from those seen in fit: "
                    f"missing {missing[:10]}, unexpected {extra[:10]}."
                )
            X = X.loc[:, list(fitted)]
        if np.ndim(X) != 2:
            raise ValueError(f"Expected a 2-D X, got {np.ndim(X)} dimensions.")
        if np.shape(X)[1] != self.n_features_in_:
            raise ValueError(
                f"X has {np.shape(X)[1]} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}."
            )
        return X

    def _wire_names(self) -> list[str]:
        """The column names the service stores: the DataFrame's, else sklearn's x0, x1, …
        (the same in JSON and Parquet, so a model fit one way predicts the other way)."""
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None:
            return [str(n) for n in fitted]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _as_parquet(self, X: Any) -> bool:
        cells = int(np.shape(X)[0]) * int(np.shape(X)[1])
        return cells >= PARQUET_MIN_CELLS and tables.parquet_available()

    # Remote calls -------------------------------------------------------------------------

    def _fit_remote(self, X: Any, target: list[Any]) -> Job:
        if np.ndim(X) != 2:
            raise ValueError(f"Expected a 2-D X, got {np.ndim(X)} dimensions.")
        if np.shape(X)[0] != len(target):
            raise ValueError(f"X has {np.shape(X)[0]} rows but y has {len(target)} values.")
        self._learn_columns(X)
        names = self._wire_names()
        options: dict[str, Any] = {"task": self._task, "config": self._config(), "name": self.name}
        with self._client() as client:
            if self._as_parquet(X):
                frame = tables.frame_of(X, names)
                column = _free_name("target", names)
                frame[column] = target
                job = client.fit_file(
                    tables.parquet_bytes(frame),
                    filename="train.parquet",
                    target_column=column,
                    wait=self.timeout,
                    **options,
                )
            else:
                job = client.fit(X, target, feature_names=names, wait=self.timeout, **options)
            job = client.wait(job, timeout=self.timeout)
        if job.model_id is None:
            raise ValueError(f"Fit job {job.id} names no model; is this a tabpfn-api service?")
        self.model_id_: str = job.model_id
        return job

    def _predict_remote(
        self, X: Any, output_type: str, quantiles: list[float] | None = None
    ) -> Prediction:
        X = self._columns_for_predict(X)
        options: dict[str, Any] = {"output_type": output_type, "quantiles": quantiles}
        with self._client() as client:
            if self._as_parquet(X):
                frame = tables.frame_of(X, self._wire_names())
                job = client.predict_file(
                    self.model_id_,
                    tables.parquet_bytes(frame),
                    filename="predict.parquet",
                    wait=self.timeout,
                    **options,
                )
            else:
                job = client.predict(self.model_id_, X, wait=self.timeout, **options)
            return client.prediction(client.wait(job, timeout=self.timeout))

    def delete_remote_model(self) -> None:
        """Delete the fitted model on the service (the estimator is then unfitted)."""
        check_is_fitted(self, "model_id_")
        with self._client() as client:
            client.delete_model(self.model_id_)
        del self.model_id_

    # Pickling and display: never the key ----------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())
        state["api_key"] = None
        return state

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        shown = []
        for name in self._param_names():
            value = getattr(self, name)
            if _same(value, defaults[name].default):
                continue
            shown.append(f"{name}={_MASK!r}" if name == "api_key" else f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"[:N_CHAR_MAX]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        """Notebooks show the masked text, not scikit-learn's HTML table of raw parameters."""
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"allow_nan": True, "requires_y": True}


_NOT_CONFIG = frozenset({"base_url", "api_key", "config", "name", "timeout"})


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    return (
        isinstance(value, (str, int, float)) and type(value) is type(default) and (value == default)
    )


def _free_name(wanted: str, taken: list[str]) -> str:
    name = wanted
    while name in taken:
        name += "_"
    return name


class RemoteTabPFNClassifier(ClassifierMixin, _RemoteTabPFN):  # type: ignore[misc]
    """TabPFN classification on a tabpfn-api service.

    `base_url`/`api_key` default to `TABPFN_SERVICE_URL`/`TABPFN_API_KEY`, then to the config of
    `tabpfn-api setup`. The TabPFN options are sent as the fit's `config` (None: the
    service's default); `config` takes any other option. `timeout`: seconds to wait for
    each fit or prediction job."""

    _task = "classification"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model_path: str | None = None,
        n_estimators: int | None = None,
        softmax_temperature: float | None = None,
        balance_probabilities: bool | None = None,
        average_before_softmax: bool | None = None,
        ignore_pretraining_limits: bool | None = None,
        inference_precision: str | None = None,
        random_state: int | None = None,
        categorical_features_indices: list[int] | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.model_path = model_path
        self.n_estimators = n_estimators
        self.softmax_temperature = softmax_temperature
        self.balance_probabilities = balance_probabilities
        self.average_before_softmax = average_before_softmax
        self.ignore_pretraining_limits = ignore_pretraining_limits
        self.inference_precision = inference_precision
        self.random_state = random_state
        self.categorical_features_indices = categorical_features_indices
        self.config = config
        self.name = name
        self.timeout = timeout

    def fit(self, X: Any, y: Any) -> RemoteTabPFNClassifier:
        """Fit on the service; returns self once the model is ready."""
        labels = np.asarray(y)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        if labels.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per row), got shape {labels.shape}.")
        self.classes_ = np.unique(labels)
        self._fit_remote(X, [wire_label(v) for v in labels.tolist()])
        return self

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, one column per class in `classes_` order."""
        result = self._predict_remote(X, "probas")
        probas = result.to_numpy()
        position = {wire_label(c): i for i, c in enumerate(self.classes_.tolist())}
        ordered = np.zeros((probas.shape[0], len(self.classes_)), dtype=np.float64)
        for column, label in enumerate(result.classes or []):
            if label not in position:
                raise ValueError(f"The service returned class {label!r}, unknown to this fit.")
            ordered[:, position[label]] = probas[:, column]
        return ordered

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The most probable class of each row."""
        probas = self.predict_proba(X)
        labels: np.ndarray[Any, Any] = np.take(self.classes_, np.argmax(probas, axis=1))
        return labels


class RemoteTabPFNRegressor(RegressorMixin, _RemoteTabPFN):  # type: ignore[misc]
    """TabPFN regression on a tabpfn-api service (parameters as for the classifier).

    `predict(X, output_type=...)` gives the `mean` (default), `median` or `mode`;
    `predict_quantiles(X, quantiles)` one column per quantile."""

    _task = "regression"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model_path: str | None = None,
        n_estimators: int | None = None,
        softmax_temperature: float | None = None,
        average_before_softmax: bool | None = None,
        ignore_pretraining_limits: bool | None = None,
        inference_precision: str | None = None,
        random_state: int | None = None,
        categorical_features_indices: list[int] | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.model_path = model_path
        self.n_estimators = n_estimators
        self.softmax_temperature = softmax_temperature
        self.average_before_softmax = average_before_softmax
        self.ignore_pretraining_limits = ignore_pretraining_limits
        self.inference_precision = inference_precision
        self.random_state = random_state
        self.categorical_features_indices = categorical_features_indices
        self.config = config
        self.name = name
        self.timeout = timeout

    def fit(self, X: Any, y: Any) -> RemoteTabPFNRegressor:
        """Fit on the service; returns self once the model is ready."""
        values = np.asarray(y, dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values.ravel()
        if values.ndim != 1:
            raise ValueError(f"y must be 1-D (one value per row), got shape {values.shape}.")
        self._fit_remote(X, tables.values_of(values))
        return self

    def predict(self, X: Any, output_type: str = "mean") -> np.ndarray[Any, Any]:
        """One number per row: `mean`, `median` or `mode` of TabPFN's predictive distribution."""
        if output_type not in ("mean", "median", "mode"):
            raise ValueError(
                f"output_type {output_type!r}: use mean, median or mode "
                "(predict_quantiles for quantiles)."
            )
        return self._predict_remote(X, output_type).to_numpy().astype(np.float64)

    def predict_quantiles(
        self, X: Any, quantiles: tuple[float, ...] | list[float] = DEFAULT_QUANTILES
    ) -> np.ndarray[Any, Any]:
        """One column per quantile, in the order asked."""
        return self._predict_remote(X, "quantiles", [float(q) for q in quantiles]).to_numpy()
