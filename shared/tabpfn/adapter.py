"""The TabPFN upstream: the only module that imports `tabpfn_client` (pinned to 0.6.1).

Multi-user safety (reference §3). tabpfn-client keeps process-global state: one class-level
`httpx.Client` created at import, a global bearer header, an `init()` flag and a 1-hour
settings cache. We touch none of it. Each process gets its own subclass of `ServiceClient`
bound to a fresh `httpx.Client` for our base URL (re-created after a fork, so no pooled
socket is ever shared by two processes), with no default Authorization header; every call
carries the user's token in per-request headers; `init()` is never called. The client's own
code (uploads, chunking, dedup, polling, retries, error parsing) runs unmodified.

Fits are submitted, not waited on (DESIGN §6.9). `submit_fit` runs the client's own
`fit_with_result` in async mode, whose upload, dedup and submit code stays untouched; only
its polling loop is replaced (in our subclass) by an immediate return, so the call ends as
soon as the upstream has accepted the fit. The caller stores the fit id and asks for its
status later, one cheap request at a time, with `fit_status` — from any process, after any
crash.

Errors become the typed exceptions of `shared.tabpfn.errors`. The client reduces HTTP errors
to strings, so an httpx response hook records the status, `Retry-After` and body fields of
the last failed response in this thread (`shared.tabpfn.classify`), and the translation
reads that record. Results are plain values (`shared.tabpfn.types`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast, get_args

import httpx
import numpy as np
import pandas as pd
import tabpfn_client
from tabpfn_client.api_models import (
    ClassifierConfig,
    ClassifierOutputType,
    ClassifierPredictParams,
    ClassifierTabPFNConfig,
    FitMode,
    FitStatus,
    GetFitStatusRequest,
    GetFitStatusResponse,
    GetSettingsResponse,
    ModelLimit,
    RegressorConfig,
    RegressorOutputType,
    RegressorPredictParams,
    RegressorTabPFNConfig,
    ThinkingConfig,
    ThinkingEffort,
)
from tabpfn_client.client import ServiceClient
from tabpfn_client.errors import (
    CappedRetryableServerError,
    FittedModelNotFoundError,
    RetryableServerError,
)
from tabpfn_client.estimator import (
    TabPFNClassifier,
    TabPFNRegressor,
    _build_fit_task_config,
    _build_tabpfn_systems,
    _clean_text_features,
)
from tabpfn_client.models import ApiMode, ClientOptions
from tabpfn_client.utils import model_limit_from_version, model_version_from_path

from shared.models.enums import JobPhase, Task
from shared.tabpfn import errors
from shared.tabpfn.classify import CallRecord, by_status, upstream_message
from shared.tabpfn.config import TabPFNConfig
from shared.tabpfn.outputs import prediction_rows
from shared.tabpfn.types import (
    AUTO_MODEL_PATHS,
    FitState,
    FitStatusReport,
    Limits,
    PredictOutcome,
    SubmittedFit,
    TokenStatus,
    Usage,
)

logger = logging.getLogger(__name__)

CLIENT_VERSION = tabpfn_client.__version__
# What tabpfn-client raises for upstream trouble. Anything else (a bug, or the worker's
# soft time limit interrupting the call) propagates unchanged to the caller.
_CLIENT_ERRORS = (
    RuntimeError,
    ValueError,
    TimeoutError,
    httpx.HTTPError,
    RetryableServerError,
    CappedRetryableServerError,
)
# Submission waits at most this long for the account's limits, and an unanswered request
# is not repeated for this long (the checks are skipped meanwhile).
_SETTINGS_TIMEOUT_S = 3.0
_UNANSWERED_SETTINGS_TTL_S = 30.0
# tabpfn-client's own limit for one status poll, and its interval before the service's
# first `retry_in_secs` hint (and its floor for a hint of zero or less).
_STATUS_TIMEOUT_S = 15.0
_DEFAULT_RETRY_IN_S = 5.0
_MIN_RETRY_IN_S = 0.3
_FIT_STATES = {
    FitStatus.PENDING: FitState.PENDING,
    FitStatus.COMPLETED: FitState.COMPLETED,
    FitStatus.FAILED: FitState.FAILED,
}


def _return_without_waiting(
    cls: type[ServiceClient], fitted_train_set_id: uuid.UUID, headers: dict[str, str] | None = None
) -> GetFitStatusResponse:
    """Stands in for the client's polling loop: the fit is accepted and still pending; the
    worker checks on it itself, later, holding nothing while the upstream works."""
    return GetFitStatusResponse(fitted_train_set_id=fitted_train_set_id, status=FitStatus.PENDING)


def available_models() -> dict[str, list[str]]:
    """The model names tabpfn-client knows, per task (it has no endpoint for this)."""
    return {
        Task.CLASSIFICATION.value: list(TabPFNClassifier.list_available_models()),
        Task.REGRESSION.value: list(TabPFNRegressor.list_available_models()),
    }


def model_version(model_path: str) -> str:
    """The model version a name belongs to (`v3.5`, `v2.5`, ...), as tabpfn-client reads it."""
    return str(model_version_from_path(model_path).value)


def output_types(task: Task) -> list[str]:
    """The prediction output types tabpfn-client offers for `task`, default first."""
    if task is Task.CLASSIFICATION:
        return [ClassifierOutputType.PREDS.value, ClassifierOutputType.PROBAS.value]
    members = [member.value for member in RegressorOutputType]
    return ["mean", *[m for m in members if m != "mean"]]


def fit_modes() -> list[str]:
    """The fit modes tabpfn-client accepts (`fit_with_cache` keeps a cache upstream)."""
    return [mode.value for mode in FitMode]


def thinking_efforts() -> list[str]:
    """The Thinking-mode effort levels tabpfn-client accepts."""
    return [str(level) for level in get_args(ThinkingEffort)]


# Which upstream request starts which phase of a job (`on_phase` of fit and predict calls).
_PHASE_OF_PATH = {
    "/tabpfn/prepare_train_set_upload": JobPhase.UPLOADING,
    "/tabpfn/prepare_test_set_upload": JobPhase.UPLOADING,
    "/tabpfn/fit": JobPhase.FITTING,
    "/tabpfn/submit_fit_job": JobPhase.FITTING,
    "/tabpfn/predict": JobPhase.PREDICTING,
}
PhaseCallback = Callable[[JobPhase], None]


class TabPFNUpstream:
    """Calls to the TabPFN service on behalf of many users, safe across forks and threads."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        settings_ttl_s: float = 300,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.settings_ttl_s = settings_ttl_s
        self.max_connections = max_connections
        self._bound: type[ServiceClient] | None = None
        self._bound_pid = -1
        self._bind_lock = threading.Lock()
        self._local = threading.local()
        # Per account: (fetched at, settings or None when the service did not answer).
        self._settings_cache: OrderedDict[str, tuple[float, GetSettingsResponse | None]] = (
            OrderedDict()
        )
        self._cache_lock = threading.Lock()
        # The client falls back to this variable when no token is passed; a worker must
        # never hold one user's token as everyone's default.
        if os.environ.pop("TABPFN_TOKEN", None) is not None:
            logger.warning("TABPFN_TOKEN was set in the environment; ignored and removed")

    # -- process binding -----------------------------------------------------------------

    def _client(self) -> type[ServiceClient]:
        """This process's ServiceClient subclass, created on first use after any fork."""
        pid = os.getpid()
        if self._bound is not None and self._bound_pid == pid:
            return self._bound
        with self._bind_lock:
            if self._bound is None or self._bound_pid != pid:
                http = httpx.Client(
                    base_url=self.base_url,
                    timeout=self.timeout_s,
                    headers={"Prior-Client-Version": CLIENT_VERSION},
                    follow_redirects=True,
                    event_hooks={
                        "request": [self._report_phase],
                        "response": [self._record_failure],
                    },
                    # Every call in flight needs a connection (uploads use a few).
                    limits=httpx.Limits(
                        max_connections=self.max_connections,
                        max_keepalive_connections=self.max_connections,
                    ),
                )
                self._bound = type(
                    "BoundServiceClient",
                    (ServiceClient,),
                    {
                        "httpx_client": http,
                        "base_url": self.base_url,
                        "_access_token": None,
                        "_api_settings": None,
                        "_api_settings_ts": 0.0,
                        "_wait_for_fit": classmethod(_return_without_waiting),
                    },
                )
                self._bound_pid = pid
                self._settings_cache.clear()
        return self._bound

    def close(self) -> None:
        """Close this process's connection pool."""
        if self._bound is not None and self._bound_pid == os.getpid():
            self._bound.httpx_client.close()
        self._bound = None

    def _record_failure(self, response: httpx.Response) -> None:
        record: CallRecord | None = getattr(self._local, "record", None)
        if record is None or response.status_code < 400:
            return
        response.read()
        record.status = response.status_code
        record.retry_after = response.headers.get("retry-after")
        try:
            body = response.json()
        except ValueError:
            body = {}
        record.body = body if isinstance(body, dict) else {}

    def _begin_call(self, on_phase: PhaseCallback | None = None) -> CallRecord:
        record = CallRecord()
        self._local.record = record
        self._local.on_phase = on_phase
        return record

    def _report_phase(self, request: httpx.Request) -> None:
        """Tell the caller which phase its call entered, from the request it is making."""
        on_phase: PhaseCallback | None = getattr(self._local, "on_phase", None)
        phase = _PHASE_OF_PATH.get(request.url.path)
        if on_phase is None or phase is None:
            return
        try:
            on_phase(phase)
        except Exception as error:  # progress is informative: never fail the call for it
            logger.warning("could not record the job's phase: %s", type(error).__name__)

    # -- account -------------------------------------------------------------------------

    def verify_token(self, token: str) -> TokenStatus:
        """Ask the service whether `token` is valid (GET /protected/)."""
        client = self._client()
        record = self._begin_call()
        try:
            verdict = client.is_auth_token_outdated(token)
        except _CLIENT_ERRORS as error:
            raise self._translate(error, record, trace_id=None) from None
        if record.status is not None and (record.status >= 500 or record.status in (408, 429)):
            raise errors.UpstreamUnavailable(
                f"The TabPFN service answered HTTP {record.status} while checking the token."
            )
        if verdict is None:
            return TokenStatus.UNVERIFIED
        return TokenStatus.VALID if verdict else TokenStatus.INVALID

    def usage(self, token: str) -> Usage:
        """The account's usage counters (POST /get_api_usage/)."""
        client = self._client()
        record = self._begin_call()
        try:
            body = client.get_api_usage(token)
        except _CLIENT_ERRORS as error:
            raise self._translate(error, record, trace_id=None) from None
        return Usage(
            current_usage=int(body.get("current_usage", 0)),
            usage_limit=int(body.get("usage_limit", -1)),
            reset_time=body.get("reset_time"),
        )

    def limits(self, token: str, cache_key: str, model_path: str | None) -> Limits | None:
        """The account's limits for `model_path`, cached; None when the service won't say."""
        settings = self._settings_for(token, cache_key)
        if settings is None:
            return None
        if model_path is None or model_path in AUTO_MODEL_PATHS:
            version_limits = settings.model_limits.get(settings.default_model_version)
        else:
            try:
                version_limits = model_limit_from_version(
                    model_version_from_path(model_path), settings.model_limits
                )
            except ValueError:
                version_limits = None
        limit: ModelLimit = version_limits or settings.max_model_limit
        return Limits(
            train_max_rows=limit.train_set_max_rows,
            train_max_cells=limit.train_set_max_upload_cells,
            max_cols=limit.max_cols,
            max_classes=settings.max_model_limit.max_classes,
            test_max_rows=limit.test_set_max_rows,
            test_max_cells=limit.test_set_max_cells,
            predict_row_pairs_budget=limit.predict_row_pairs_budget,
            test_max_rows_full_output=limit.test_set_max_rows_w_full_regression_output,
        )

    def _settings_for(self, token: str, cache_key: str) -> GetSettingsResponse | None:
        now = time.monotonic()
        with self._cache_lock:
            cached = self._settings_cache.get(cache_key)
        if cached is not None:
            ttl = self.settings_ttl_s if cached[1] is not None else _UNANSWERED_SETTINGS_TTL_S
            if now - cached[0] < ttl:
                return cached[1]
        client = self._client()
        settings: GetSettingsResponse | None
        try:
            # Sent with the user's token: the service documents limits as per account.
            response = client.httpx_client.get(
                "/tabpfn/get_settings",
                headers={"Authorization": f"Bearer {token}"},
                timeout=min(self.timeout_s, _SETTINGS_TIMEOUT_S),
            )
            response.raise_for_status()
            settings = GetSettingsResponse.model_validate(response.json())
        except (httpx.HTTPError, ValueError) as error:
            # Remembered briefly, so an outage does not make every submission wait for it.
            logger.warning("upstream settings unavailable: %s", type(error).__name__)
            settings = cached[1] if cached is not None else None
        with self._cache_lock:
            self._settings_cache[cache_key] = (now, settings)
            while len(self._settings_cache) > 4096:
                self._settings_cache.popitem(last=False)
        return settings

    # -- fit and predict -----------------------------------------------------------------

    def submit_fit(
        self,
        token: str,
        X: pd.DataFrame,
        y: np.ndarray,
        task: Task,
        config: TabPFNConfig,
        *,
        on_phase: PhaseCallback | None = None,
    ) -> SubmittedFit:
        """Upload the train set and submit its fit; returns once the upstream accepted it.

        `on_phase` hears when the call starts uploading and when it submits the fit."""
        client = self._client()
        trace_id = uuid.uuid4().hex
        options = self._options(token, trace_id)
        tabpfn_config = _tabpfn_config(task, config)
        thinking = config.thinking_effort is not None
        record = self._begin_call(on_phase)
        try:
            result = client.fit_with_result(
                _clean_text_features(X),
                y,
                task_config=_build_fit_task_config(tabpfn_config),
                tabpfn_systems=_build_tabpfn_systems(config.paper_version, thinking),
                thinking_config=_thinking_config(config) if thinking else None,
                text_handling=config.text_handling,
                # Always async: a sync fit would hold the call open for the whole fit.
                api_mode=ApiMode.ASYNC,
                client_options=options,
            )
        except _CLIENT_ERRORS as error:
            raise self._translate(error, record, trace_id=trace_id) from None
        return SubmittedFit(fit_id=str(result.fitted_train_set_id), trace_id=trace_id)

    def fit_status(self, token: str, fit_id: str) -> FitStatusReport:
        """One status request for a submitted fit (POST /tabpfn/get_fit_status).

        Raises `FittedModelNotFound` when the upstream does not know the fit (any more, or
        under this token)."""
        client = self._client()
        record = self._begin_call()
        try:
            response = client._get_fit_status(
                req=GetFitStatusRequest(fitted_train_set_id=uuid.UUID(fit_id)),
                timeout=min(self.timeout_s, _STATUS_TIMEOUT_S),
                headers={"Authorization": f"Bearer {token}"},
            )
        except _CLIENT_ERRORS as error:
            if record.status == 404:
                raise errors.FittedModelNotFound(
                    "The TabPFN service no longer knows this fit (it expired, or the stored "
                    "TabPFN token belongs to another account).",
                    fit_id=fit_id,
                    trace_id=_trace_of(record),
                ) from None
            if record.status == 429:  # the client raises its "capped retryable" error for it
                raise by_status(
                    record, upstream_message(error, record), _trace_of(record)
                ) from None
            raise self._translate(error, record, trace_id=None) from None
        hint = response.retry_in_secs
        return FitStatusReport(
            state=_FIT_STATES.get(response.status, FitState.PENDING),  # unknown: still going
            retry_in_s=max(hint, _MIN_RETRY_IN_S) if hint is not None else _DEFAULT_RETRY_IN_S,
            error=response.error or response.error_code,
            timings=response.timings.model_dump(mode="json") if response.timings else None,
        )

    def predict(
        self,
        token: str,
        train_set_uid: str,
        task: Task,
        X: pd.DataFrame,
        *,
        output_type: str,
        quantiles: list[float] | None,
        config: TabPFNConfig,
        timeout_s: float | None = None,
        on_phase: PhaseCallback | None = None,
    ) -> PredictOutcome:
        """Predict from a stored fit; every output comes back row by row (`outputs`).

        `timeout_s` bounds the predict request (default: the adapter's timeout); `on_phase`
        hears when the call starts uploading the rows and when it asks for predictions."""
        client = self._client()
        trace_id = uuid.uuid4().hex
        options = self._options(token, trace_id, timeout_s)
        tabpfn_config = _tabpfn_config(task, config)
        task_config: ClassifierConfig | RegressorConfig
        if task is Task.CLASSIFICATION:
            task_config = ClassifierConfig(
                tabpfn_config=cast(ClassifierTabPFNConfig, tabpfn_config),
                predict_params=ClassifierPredictParams(output_type=output_type),
            )
        else:
            task_config = RegressorConfig(
                tabpfn_config=cast(RegressorTabPFNConfig, tabpfn_config),
                predict_params=RegressorPredictParams(output_type=output_type, quantiles=quantiles),
            )
        record = self._begin_call(on_phase)
        try:
            result = client.predict(
                fitted_train_set_id=uuid.UUID(train_set_uid),
                x_test=_clean_text_features(X),
                task_config=task_config,
                client_options=options,
            )
        except _CLIENT_ERRORS as error:
            translated = self._translate(error, record, trace_id=trace_id)
            if isinstance(translated, errors.FittedModelNotFound):
                translated.fit_id = train_set_uid
            raise translated from None
        predictions, extras = prediction_rows(result.y_pred, output_type)
        metadata = result.metadata or {}
        return PredictOutcome(
            predictions=predictions,
            extras=extras,
            timings=result.timings,
            trace_id=trace_id,
            execution_mode=_text_or_none(metadata.get("execution_mode")),
            cache_outcome=_text_or_none(metadata.get("cache_outcome")),
        )

    def _options(self, token: str, trace_id: str, timeout_s: float | None = None) -> ClientOptions:
        # A fresh ClientOptions per call: the client mutates its headers (sentry-trace).
        return ClientOptions(
            timeout=timeout_s or self.timeout_s,
            headers={"Authorization": f"Bearer {token}", "sentry-trace": trace_id},
        )

    # -- error translation ---------------------------------------------------------------

    def _translate(
        self, error: Exception, record: CallRecord, *, trace_id: str | None
    ) -> errors.UpstreamError:
        """Map whatever tabpfn-client raised onto our typed errors."""
        trace = _trace_of(record) or trace_id
        message = upstream_message(error, record)
        if isinstance(error, FittedModelNotFoundError):
            return errors.FittedModelNotFound(
                "The TabPFN service no longer has this fitted model (deleted, or fitted under "
                "another TabPFN account); fit the model again.",
                trace_id=trace,
            )
        if isinstance(error, (RetryableServerError, CappedRetryableServerError)):
            return errors.UpstreamUnavailable(
                f"The TabPFN service is temporarily unavailable: {message}", trace_id=trace
            )
        if isinstance(error, httpx.TimeoutException):
            return errors.UpstreamUnavailable(
                "The TabPFN service did not answer in time.", trace_id=trace
            )
        if isinstance(error, httpx.TransportError):
            return errors.UpstreamUnavailable(
                f"Could not reach the TabPFN service ({type(error).__name__}).", trace_id=trace
            )
        if isinstance(error, TimeoutError):
            return errors.UpstreamTimeout(
                "The TabPFN service did not finish the fit within its polling deadline.",
                trace_id=trace,
            )
        if isinstance(error, ValueError):  # the client's own pre-flight checks
            return errors.InputRejected(str(error), trace_id=trace)
        if record.status is not None:
            return by_status(record, message, trace)
        if isinstance(error, RuntimeError) and " failed: " in str(error):  # async fit failed
            return errors.InputRejected(
                f"The TabPFN service could not fit: {message}", trace_id=trace
            )
        return errors.UpstreamUnavailable(
            f"Unexpected answer from TabPFN: {message}", trace_id=trace
        )


def _trace_of(record: CallRecord) -> str | None:
    """The upstream's own trace id of a failed response, for support requests."""
    upstream_trace = record.body.get("trace_id")
    return str(upstream_trace) if upstream_trace else None


def _tabpfn_config(
    task: Task, config: TabPFNConfig
) -> ClassifierTabPFNConfig | RegressorTabPFNConfig:
    fields = config.model_dump(exclude_none=True)
    if task is Task.CLASSIFICATION:
        allowed = ClassifierTabPFNConfig.model_fields
        return ClassifierTabPFNConfig.model_validate(
            {k: v for k, v in fields.items() if k in allowed}
        )
    allowed = RegressorTabPFNConfig.model_fields
    return RegressorTabPFNConfig.model_validate({k: v for k, v in fields.items() if k in allowed})


def _thinking_config(config: TabPFNConfig) -> ThinkingConfig:
    return ThinkingConfig(
        effort=config.thinking_effort,
        timeout_secs=config.thinking_timeout_s,
        metric=config.thinking_metric,
    )


def _text_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


__all__ = [
    "FitState",
    "FitStatusReport",
    "Limits",
    "PredictOutcome",
    "SubmittedFit",
    "TabPFNUpstream",
    "TokenStatus",
    "Usage",
    "available_models",
    "fit_modes",
    "model_version",
    "output_types",
    "thinking_efforts",
]
