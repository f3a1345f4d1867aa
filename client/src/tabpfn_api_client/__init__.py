"""Python client for tabpfn-api: TabPFN as a REST job queue, from Python.

- `Client`: one typed method per endpoint, retries of 429/503 honouring `Retry-After`,
  an `Idempotency-Key` per job-creating call, waiting with `Prefer: wait` or by polling.
- `RemoteTabPFNClassifier`, `RemoteTabPFNRegressor`: scikit-learn estimators that run on the
  service (need scikit-learn: `pip install "tabpfn-api-client[sklearn]"`).
- `tabpfn-api`: the command line (`tabpfn-api --help`).

It speaks to the service over HTTP only; it needs httpx and NumPy, and uses pandas, pyarrow
and scikit-learn when they are installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tabpfn_api_client._version import __version__
from tabpfn_api_client.client import Client
from tabpfn_api_client.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobCanceledError,
    JobError,
    JobFailedError,
    MissingAPIKeyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TabPFNAPIError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    WaitTimeoutError,
)
from tabpfn_api_client.records import (
    ApiKey,
    Delivery,
    Health,
    Job,
    JobFailure,
    Model,
    NewApiKey,
    Page,
    Prediction,
    SetupResult,
    Usage,
    User,
)

if TYPE_CHECKING:
    from tabpfn_api_client.estimators import RemoteTabPFNClassifier, RemoteTabPFNRegressor

_ESTIMATORS = ("RemoteTabPFNClassifier", "RemoteTabPFNRegressor")


def __getattr__(name: str) -> Any:
    """The estimators import scikit-learn, so they load on first use only."""
    if name in _ESTIMATORS:
        try:
            from tabpfn_api_client import estimators  # noqa: PLC0415
        except ImportError as error:
            raise ImportError(
                f"{name} needs scikit-learn: pip install 'tabpfn-api-client[sklearn]' ({error})"
            ) from error
        return getattr(estimators, name)
    raise AttributeError(f"module 'tabpfn_api_client' has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "ApiKey",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Delivery",
    "Health",
    "Job",
    "JobCanceledError",
    "JobError",
    "JobFailedError",
    "JobFailure",
    "MissingAPIKeyError",
    "Model",
    "NewApiKey",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Prediction",
    "RateLimitError",
    "RemoteTabPFNClassifier",
    "RemoteTabPFNRegressor",
    "ServerError",
    "ServiceUnavailableError",
    "SetupResult",
    "TabPFNAPIError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "Usage",
    "User",
    "WaitTimeoutError",
    "__version__",
]
