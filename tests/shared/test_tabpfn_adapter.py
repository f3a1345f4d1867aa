"""The upstream adapter against the stand-in, through the unmodified tabpfn-client over HTTP:
results that follow the data, chunked uploads, fits that are submitted and then checked on,
multi-user isolation across forked processes and across many threads of one process, and
every failure mapped to its typed error without leaking a token."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scripts.engines import free_port
from shared.models import Task
from shared.tabpfn import errors
from shared.tabpfn.adapter import TabPFNUpstream, TokenStatus, available_models
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.types import FitState
from tests.support.builders import classification_data, new_token, regression_data
from tests.support.standin import StandinProcess, token_id
from tests.support.upstream import fit_and_wait


@pytest.fixture
def upstream(standin: StandinProcess) -> Iterator[TabPFNUpstream]:
    adapter = TabPFNUpstream(standin.url, timeout_s=30)
    yield adapter
    adapter.close()


@pytest.fixture
def reset_standin(standin: StandinProcess) -> Iterator[StandinProcess]:
    """Runtime switches changed by a test are undone after it."""
    yield standin
    standin.reset()


def frame(rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows).rename(columns=str)


def fit_classifier(
    upstream: TabPFNUpstream, token: str, **config: Any
) -> tuple[str, list[list[float]], list[int]]:
    X, y, X_test, y_test = classification_data()
    uid = fit_and_wait(
        upstream, token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig(**config)
    )
    return uid, X_test, y_test


def test_classification_follows_the_data(upstream: TabPFNUpstream) -> None:
    token = new_token()
    uid, X_test, y_test = fit_classifier(upstream, token)
    preds = upstream.predict(
        token,
        uid,
        Task.CLASSIFICATION,
        frame(X_test),
        output_type="preds",
        quantiles=None,
        config=TabPFNConfig(),
    ).predictions
    assert float(np.mean(np.array(preds) == np.array(y_test))) >= 0.9
    probas = np.array(
        upstream.predict(
            token,
            uid,
            Task.CLASSIFICATION,
            frame(X_test),
            output_type="probas",
            quantiles=None,
            config=TabPFNConfig(),
        ).predictions
    )
    assert probas.shape == (len(X_test), 2)
    assert np.allclose(probas.sum(axis=1), 1.0)
    # Columns follow the classes [0, 1]: the predicted label is the likelier column.
    assert np.array_equal(probas.argmax(axis=1), np.array(preds))


def test_regression_outputs_have_the_right_shapes(upstream: TabPFNUpstream) -> None:
    token = new_token()
    X, y, X_test = regression_data()
    uid = fit_and_wait(upstream, token, frame(X), np.array(y), Task.REGRESSION, TabPFNConfig())
    mean = upstream.predict(
        token,
        uid,
        Task.REGRESSION,
        frame(X_test),
        output_type="mean",
        quantiles=None,
        config=TabPFNConfig(),
    ).predictions
    assert len(mean) == len(X_test) and all(isinstance(v, float) for v in mean)
    quantiles = upstream.predict(
        token,
        uid,
        Task.REGRESSION,
        frame(X_test),
        output_type="quantiles",
        quantiles=[0.1, 0.5, 0.9],
        config=TabPFNConfig(),
    ).predictions
    rows = np.array(quantiles)
    assert rows.shape == (len(X_test), 3)
    assert np.all(rows[:, 0] <= rows[:, 1]) and np.all(rows[:, 1] <= rows[:, 2])


def test_uploads_in_chunks_and_the_async_fit_path(
    upstream: TabPFNUpstream, reset_standin: StandinProcess
) -> None:
    """Every fit is submitted with the async API (whatever api_mode says), and the submit
    returns without polling: the status is asked for separately."""
    reset_standin.configure(chunks=3)
    token = new_token()
    since = reset_standin.last_seq()
    X, y, X_test, _ = classification_data()
    submitted = upstream.submit_fit(
        token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig(api_mode="sync")
    )
    calls = reset_standin.calls(since)
    puts = [c for c in calls if c["method"] == "PUT"]
    assert len(puts) == 6  # x_train and y_train, three chunks each
    paths = [c["path"] for c in calls]
    assert paths.count("/tabpfn/submit_fit_job") == 1
    assert "/tabpfn/get_fit_status" not in paths and "/tabpfn/fit" not in paths
    [fit_log] = [f for f in reset_standin.fits() if f["id"] == submitted.fit_id]
    assert fit_log["token_id"] == token_id(token) and fit_log["mode"] == "async"
    uid = fit_and_wait(upstream, token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig())
    assert uid != submitted.fit_id  # a new fit job upstream, from the deduplicated upload
    preds = upstream.predict(
        token,
        uid,
        Task.CLASSIFICATION,
        frame(X_test),
        output_type="preds",
        quantiles=None,
        config=TabPFNConfig(),
    ).predictions
    assert len(preds) == len(X_test)


def _user_session(url: str, token: str, seed: int) -> tuple[str, float]:
    """One user's fit and predict in a forked child (as a prefork worker runs them)."""
    adapter = _PARENT_ADAPTER
    assert adapter is not None
    X, y, X_test, y_test = classification_data(n_train=300 + seed)
    uid = fit_and_wait(adapter, token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig())
    preds = adapter.predict(
        token,
        uid,
        Task.CLASSIFICATION,
        frame(X_test),
        output_type="preds",
        quantiles=None,
        config=TabPFNConfig(),
    ).predictions
    return uid, float(np.mean(np.array(preds) == np.array(y_test)))


_PARENT_ADAPTER: TabPFNUpstream | None = None


def test_users_in_forked_processes_stay_isolated(standin: StandinProcess) -> None:
    """Six users at once from forked children sharing one adapter object made in the parent:
    every request carries its own user's token, no token is ever global, and one user's
    fitted model is invisible to another."""
    global _PARENT_ADAPTER  # noqa: PLW0603 - handed to forked children
    _PARENT_ADAPTER = TabPFNUpstream(standin.url, timeout_s=30)
    # The parent talks to the upstream first, so its pooled socket would be inherited.
    assert _PARENT_ADAPTER.verify_token(new_token()) is TokenStatus.VALID
    tokens = [new_token(f"iso{i}") for i in range(6)]
    since = standin.last_seq()
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        outcomes = pool.starmap(_user_session, [(standin.url, t, i) for i, t in enumerate(tokens)])
    assert all(accuracy >= 0.9 for _, accuracy in outcomes)

    ids = {token_id(t): t for t in tokens}
    calls = standin.calls(since)
    work = [
        c for c in calls if c["path"].startswith("/tabpfn/") and c["path"] != "/tabpfn/get_settings"
    ]
    assert work and all(c["token_id"] in ids for c in work)
    per_token = {tid: [c["path"] for c in work if c["token_id"] == tid] for tid in ids}
    assert all(
        paths.count("/tabpfn/submit_fit_job") == 1 and paths.count("/tabpfn/predict") == 1
        for paths in per_token.values()
    )
    # Nothing global: storage PUTs and the client's own settings fetch carry no token.
    assert all(c["token_id"] is None for c in calls if c["method"] == "PUT")
    assert all(c["token_id"] is None for c in calls if c["path"] == "/tabpfn/get_settings")

    stranger = new_token("stranger")
    with pytest.raises(errors.FittedModelNotFound) as raised:
        _PARENT_ADAPTER.predict(
            stranger,
            outcomes[0][0],
            Task.CLASSIFICATION,
            frame([[0.0] * 30]),
            output_type="preds",
            quantiles=None,
            config=TabPFNConfig(),
        )
    assert stranger not in str(raised.value)

    from tabpfn_client.client import ServiceClient

    assert ServiceClient.get_access_token() is None
    assert "authorization" not in {k.lower() for k in ServiceClient.httpx_client.headers}
    assert "TABPFN_TOKEN" not in os.environ
    _PARENT_ADAPTER.close()


@pytest.mark.parametrize(
    ("prefix", "expected", "code"),
    [
        ("invalid", errors.TokenInvalid, "TABPFN_TOKEN_INVALID"),
        ("overquota", errors.QuotaExceeded, "TABPFN_QUOTA_EXCEEDED"),
        ("ratelimited", errors.RateLimited, "TABPFN_RATE_LIMITED"),
        ("drop", errors.UpstreamUnavailable, "UPSTREAM_UNAVAILABLE"),
    ],
)
def test_failures_map_to_typed_errors(
    upstream: TabPFNUpstream, prefix: str, expected: type[errors.UpstreamError], code: str
) -> None:
    token = new_token(prefix)
    with pytest.raises(expected) as raised:
        fit_classifier(upstream, token)
    error = raised.value
    assert error.job_error_code == code
    assert token not in str(error) and token not in repr(error.__dict__)
    assert error.trace_id
    if isinstance(error, errors.QuotaExceeded):
        assert error.reset_time and not error.transient
    if isinstance(error, errors.RateLimited):
        assert error.retry_after_s == 1 and error.transient


def test_a_burst_of_5xx_is_transient_then_succeeds(upstream: TabPFNUpstream) -> None:
    """`flaky*` tokens get two 503s; tabpfn-client does not retry a submit itself (a retried
    submit could fit twice), so each is one transient error for the worker to retry."""
    token = new_token("flaky")
    for _ in range(2):
        with pytest.raises(errors.UpstreamUnavailable) as raised:
            fit_classifier(upstream, token)
        assert raised.value.transient
    uid, _, _ = fit_classifier(upstream, token)
    assert uid


def test_rejected_input_is_permanent(upstream: TabPFNUpstream) -> None:
    token = new_token()
    uid, X_test, _ = fit_classifier(upstream, token)
    with pytest.raises(errors.InputRejected) as raised:
        upstream.predict(
            token,
            uid,
            Task.CLASSIFICATION,
            frame([row[:5] for row in X_test]),
            output_type="preds",
            quantiles=None,
            config=TabPFNConfig(),
        )
    assert not raised.value.transient


def test_slow_upstream_past_the_timeout_is_unavailable(standin: StandinProcess) -> None:
    """A `slow*` prediction takes 2 s longer than the 0.5 s this adapter waits."""
    impatient = TabPFNUpstream(standin.url, timeout_s=0.5)
    token = new_token("slow")
    try:
        uid, X_test, _ = fit_classifier(impatient, token)
        with pytest.raises(errors.UpstreamUnavailable, match="did not answer in time"):
            impatient.predict(
                token,
                uid,
                Task.CLASSIFICATION,
                frame(X_test),
                output_type="preds",
                quantiles=None,
                config=TabPFNConfig(),
            )
    finally:
        impatient.close()


def test_fit_status_follows_the_fit(
    upstream: TabPFNUpstream, reset_standin: StandinProcess
) -> None:
    """Pending with the service's hint while it fits, then completed with its timings; a fit
    the service cannot do is reported failed with its reason; an unknown or foreign fit id
    is FittedModelNotFound."""
    reset_standin.configure(fit_delay_s=1.0, fit_poll_hint_s=0.7)
    token = new_token()
    X, y, _, _ = classification_data(n_train=100)
    submitted = upstream.submit_fit(
        token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig()
    )
    first = upstream.fit_status(token, submitted.fit_id)
    assert first.state is FitState.PENDING and first.retry_in_s == 0.7
    assert fit_and_wait(upstream, token, frame(X), np.array(y), Task.CLASSIFICATION, TabPFNConfig())
    done = upstream.fit_status(token, submitted.fit_id)
    assert done.state is FitState.COMPLETED and done.timings and done.timings["elapsed_s"] >= 1.0

    one_class = upstream.submit_fit(
        token, frame(X), np.zeros(len(X), dtype=int), Task.CLASSIFICATION, TabPFNConfig()
    )
    reset_standin.configure(fit_delay_s=0)
    deadline = 50
    while (report := upstream.fit_status(token, one_class.fit_id)).state is FitState.PENDING:
        deadline -= 1
        assert deadline, "the one-class fit never ended"
        threading.Event().wait(0.1)
    assert report.state is FitState.FAILED and report.error

    with pytest.raises(errors.FittedModelNotFound):
        upstream.fit_status(new_token("stranger"), submitted.fit_id)


def test_many_users_in_threads_of_one_process_keep_their_own_tokens(
    upstream: TabPFNUpstream, standin: StandinProcess
) -> None:
    """8 users x 8 concurrent fit-and-predict sessions on one adapter in one process, as a
    worker's slots run them: from the stand-in's own request log, every request of a
    session (linked by the upload and fit ids it names) carried that session's token, and
    storage PUTs carried none."""
    tokens = [new_token(f"threads{u}") for u in range(8)]
    X, y, X_test, _ = classification_data(n_train=120)
    since = standin.last_seq()
    barrier = threading.Barrier(64)

    def session(index: int) -> tuple[str, str]:
        token = tokens[index % 8]
        rows = X[: 60 + index]  # distinct data per session: no upload is shared
        barrier.wait(timeout=30)
        uid = fit_and_wait(
            upstream,
            token,
            frame(rows),
            np.array(y[: len(rows)]),
            Task.CLASSIFICATION,
            TabPFNConfig(),
        )
        preds = upstream.predict(
            token,
            uid,
            Task.CLASSIFICATION,
            frame(X_test[:20]),
            output_type="preds",
            quantiles=None,
            config=TabPFNConfig(),
        ).predictions
        assert len(preds) == 20
        return token, uid

    with ThreadPoolExecutor(64) as pool:
        sessions = list(pool.map(session, range(64)))

    calls = [c for c in standin.calls(since) if c["refs"]]
    # Link every id to the calls that name it, starting from each session's fit id.
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        for ref in call["refs"]:
            by_ref.setdefault(ref, []).append(call)
    crossed, seen = [], 0
    for token, uid in sessions:
        chain, frontier, linked = {uid}, [uid], set()
        while frontier:
            for call in by_ref.get(frontier.pop(), []):
                if call["seq"] in linked:
                    continue
                linked.add(call["seq"])
                seen += 1
                expected = None if call["method"] == "PUT" else token_id(token)
                if call["token_id"] != expected:
                    crossed.append(call)
                for ref in call["refs"]:
                    if ref not in chain:
                        chain.add(ref)
                        frontier.append(ref)
        paths = {c["path"] for c in calls if c["seq"] in linked}
        assert {"/tabpfn/submit_fit_job", "/tabpfn/get_fit_status", "/tabpfn/predict"} <= paths
    assert crossed == []
    assert seen >= 64 * 6  # prepare, 2 PUTs, submit, status, prepare test, PUT, predict...


def test_token_checks(upstream: TabPFNUpstream) -> None:
    assert upstream.verify_token(new_token()) is TokenStatus.VALID
    assert upstream.verify_token(new_token("invalid")) is TokenStatus.INVALID
    assert upstream.verify_token(new_token("unverified")) is TokenStatus.UNVERIFIED
    unreachable = TabPFNUpstream(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(errors.UpstreamUnavailable):
        unreachable.verify_token(new_token())


def test_usage_and_limits(upstream: TabPFNUpstream) -> None:
    token = new_token()
    usage = upstream.usage(token)
    assert usage.usage_limit == -1 and usage.current_usage >= 0
    limits = upstream.limits(token, "cache-key", None)
    assert limits is not None and limits.max_cols == 2000 and limits.max_classes == 160
    with pytest.raises(errors.TokenInvalid):
        upstream.usage(new_token("invalid"))


def test_available_models_per_task() -> None:
    models = available_models()
    assert "v2.5_default" in models["classification"]
    assert "v2.5_default" in models["regression"]


def test_an_unanswered_limits_request_is_not_repeated_at_once(
    upstream: TabPFNUpstream, reset_standin: StandinProcess
) -> None:
    """During an upstream outage submissions must not each wait for the limits."""
    reset_standin.configure(drop_burst={"count": 100, "path": "/tabpfn/get_settings"})
    token = new_token()
    since = reset_standin.last_seq()
    assert upstream.limits(token, "outage-key", None) is None
    assert upstream.limits(token, "outage-key", None) is None
    calls = [c for c in reset_standin.calls(since) if c["path"] == "/tabpfn/get_settings"]
    assert len(calls) == 1
