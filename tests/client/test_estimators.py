"""The scikit-learn estimators against the real stack: API under uvicorn, Celery worker, the
stand-in TabPFN server. Plus their scikit-learn conventions, which need no server."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from tabpfn_api_client import Client, RemoteTabPFNClassifier, RemoteTabPFNRegressor
from tabpfn_api_client import estimators as estimators_module
from tests.support.processes import BIN, ROOT, child_env


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every request the estimators send (they still go to the real API): the estimators
    build their own Client, so the module's Client is swapped for one that records."""
    requests: list[httpx.Request] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return super().handle_request(request)

    def recording_client(base_url: str | None, api_key: str | None) -> Client:
        return Client(base_url, api_key, transport=Recording())

    monkeypatch.setattr(estimators_module, "Client", recording_client)
    return requests


def _submissions(requests: list[httpx.Request], suffix: str) -> list[httpx.Request]:
    return [r for r in requests if r.method == "POST" and r.url.path.endswith(suffix)]


def breast_cancer() -> tuple[
    pd.DataFrame, np.ndarray[Any, Any], pd.DataFrame, np.ndarray[Any, Any]
]:
    data = load_breast_cancer(as_frame=True)
    order = np.random.default_rng(0).permutation(len(data.target))
    X, y = data.data.iloc[order].reset_index(drop=True), data.target.to_numpy()[order]
    return X.iloc[:400], y[:400], X.iloc[400:], y[400:]


def test_classifier_on_breast_cancer(api_url: str, api_key: str, sent: list[httpx.Request]) -> None:
    X, y, X_test, y_test = breast_cancer()
    clf = RemoteTabPFNClassifier(base_url=api_url, api_key=api_key)
    assert clf.fit(X.to_numpy(), y) is clf
    assert clf.n_features_in_ == 30
    assert not hasattr(clf, "feature_names_in_")
    assert clf.classes_.tolist() == [0, 1]
    # 400 × 30 cells: large enough to travel as Parquet.
    (fit,) = _submissions(sent, "/models/fit")
    assert fit.headers["content-type"].startswith("multipart/form-data")
    assert b"PAR1" in fit.content
    assert fit.headers["idempotency-key"]

    probas = clf.predict_proba(X_test.to_numpy())
    assert probas.shape == (len(y_test), 2)
    np.testing.assert_allclose(probas.sum(axis=1), 1.0, atol=1e-6)
    predictions = clf.predict(X_test.to_numpy())
    assert accuracy_score(y_test, predictions) >= 0.9
    assert clf.score(X_test.to_numpy(), y_test) >= 0.9
    # 169 × 30 cells: small enough for JSON.
    predict = _submissions(sent, "/predict")[0]
    assert predict.headers["content-type"] == "application/json"


def test_regressor_r2_and_output_types(api_url: str, api_key: str) -> None:
    X, y = make_regression(n_samples=400, n_features=8, noise=5.0, random_state=0)
    reg = RemoteTabPFNRegressor(base_url=api_url, api_key=api_key)
    assert reg.fit(X[:300], y[:300]) is reg
    mean = reg.predict(X[300:])
    assert mean.shape == (100,)
    assert r2_score(y[300:], mean) >= 0.9
    median = reg.predict(X[300:], output_type="median")
    assert r2_score(y[300:], median) >= 0.9
    quantiles = reg.predict_quantiles(X[300:], [0.1, 0.5, 0.9])
    assert quantiles.shape == (100, 3)
    assert (np.diff(quantiles, axis=1) >= 0).all()
    with pytest.raises(ValueError, match="output_type"):
        reg.predict(X[300:], output_type="probas")


def test_cross_val_score_with_three_folds(api_url: str, api_key: str) -> None:
    X, y, _, _ = breast_cancer()
    scores = cross_val_score(
        RemoteTabPFNClassifier(base_url=api_url, api_key=api_key), X.to_numpy(), y, cv=3
    )
    assert scores.shape == (3,)
    assert (scores >= 0.9).all(), scores


def test_a_pipeline_with_text_labels(api_url: str, api_key: str) -> None:
    iris = load_iris()
    labels = np.asarray(iris.target_names)[iris.target]
    order = np.random.default_rng(1).permutation(len(labels))
    X, y = iris.data[order], labels[order]
    pipeline = make_pipeline(
        StandardScaler(), RemoteTabPFNClassifier(base_url=api_url, api_key=api_key)
    )
    pipeline.fit(X[:100], y[:100])
    assert pipeline.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    predicted = pipeline.predict(X[100:])
    assert set(predicted.tolist()) <= {"setosa", "versicolor", "virginica"}
    assert accuracy_score(y[100:], predicted) >= 0.9


def test_shuffled_dataframe_columns_give_the_same_predictions(api_url: str, api_key: str) -> None:
    X, y, X_test, _ = breast_cancer()
    clf = RemoteTabPFNClassifier(base_url=api_url, api_key=api_key).fit(X, y)
    assert clf.feature_names_in_.tolist() == list(X.columns)
    shuffled = X_test[list(np.random.default_rng(3).permutation(X_test.columns))]
    assert list(shuffled.columns) != list(X_test.columns)
    np.testing.assert_allclose(clf.predict_proba(shuffled), clf.predict_proba(X_test))
    np.testing.assert_array_equal(clf.predict(shuffled), clf.predict(X_test))
    with pytest.raises(ValueError, match="missing"):
        clf.predict(X_test.drop(columns=[X_test.columns[0]]))


PREDICT_IN_A_NEW_PROCESS = """
import pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as handle:
    clf = pickle.load(handle)
np.save(sys.argv[3], clf.predict_proba(np.load(sys.argv[2])))
"""


def test_a_pickled_estimator_predicts_in_a_fresh_process(
    api_url: str, api_key: str, tmp_path: Path
) -> None:
    X, y, X_test, _ = breast_cancer()
    clf = RemoteTabPFNClassifier(base_url=api_url, api_key=api_key).fit(X.to_numpy(), y)
    here = clf.predict_proba(X_test.to_numpy())
    blob = pickle.dumps(clf)
    assert api_key.encode() not in blob  # the key never travels in a pickle
    (tmp_path / "clf.pkl").write_bytes(blob)
    np.save(tmp_path / "X.npy", X_test.to_numpy())
    done = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            PREDICT_IN_A_NEW_PROCESS,
            str(tmp_path / "clf.pkl"),
            str(tmp_path / "X.npy"),
            str(tmp_path / "out.npy"),
        ],
        cwd=ROOT,
        # The key from the environment, as the module docstring says; the URL was pickled.
        env=child_env(None, TABPFN_API_KEY=api_key, XDG_CONFIG_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), here)


# Conventions, no server needed --------------------------------------------------------


@pytest.mark.parametrize("cls", [RemoteTabPFNClassifier, RemoteTabPFNRegressor])
def test_scikit_learn_parameter_conventions(cls: type[Any]) -> None:
    name = cls.__name__
    check_parameters_default_constructible(name, cls())
    check_no_attributes_set_in_init(name, cls(n_estimators=4))
    check_get_params_invariance(name, cls())
    check_set_params(name, cls())
    estimator = cls(base_url="http://service", api_key="tpk_x_secret", n_estimators=4)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert copy.set_params(n_estimators=8).n_estimators == 8
    assert estimator.n_estimators == 4


def test_the_key_stays_out_of_pickles_and_reprs() -> None:
    estimator = RemoteTabPFNClassifier(base_url="http://service", api_key="tpk_x_secret")
    assert "tpk_x_secret" not in repr(estimator)
    assert "tpk_x_secret" not in str(estimator._repr_mimebundle_())
    assert "tpk_x_secret" not in estimator._repr_html_()
    assert "api_key='***'" in repr(estimator)
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.api_key is None
    assert restored.base_url == "http://service"
    assert estimator.api_key == "tpk_x_secret"  # pickling leaves the original alone


def test_an_unfitted_estimator_refuses_to_predict() -> None:
    with pytest.raises(NotFittedError):
        RemoteTabPFNClassifier().predict([[1.0, 2.0]])


def test_fitting_sends_the_options_as_config() -> None:
    estimator = RemoteTabPFNClassifier(
        n_estimators=4, softmax_temperature=0.5, config={"inference_precision": "auto"}
    )
    assert estimator._config() == {
        "n_estimators": 4,
        "softmax_temperature": 0.5,
        "inference_precision": "auto",
    }
