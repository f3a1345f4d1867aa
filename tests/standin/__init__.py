"""A stand-in TabPFN server speaking tabpfn-client 0.6.1's wire protocol, for tests and benchmarks.

Start it in-process with `start_standin(port=0, **config)` (returns a `StandinHandle` with
`.url` and `.stop()`) or as a process with `python -m tests.standin --port 0`, which prints
`STANDIN_READY http://HOST:PORT` once it serves.

Token prefixes select failure modes: `invalid*` 401, `unverified*` 403, `overquota*` 429
USAGE_LIMIT_EXCEEDED, `ratelimited*` 429 RATE_LIMITED with Retry-After, `flaky*` two 503s
per fit/predict path, `slow*` +2 s per fit/predict, `drop*` connection closed unanswered.
Runtime config lives at `/_admin/config` (GET/POST/DELETE), `DELETE /_admin/state` forgets
all data, and `/_calls` is the request log, keyed by `token_id(token)`, never the token.
"""

from .baseline import BaselineError, BaselineModel, fit_baseline
from .config import DEFAULT_LIMITS, MODEL_VERSIONS, StandinConfig
from .server import StandinHandle, make_server, start_standin
from .wire import token_id

__all__ = [
    "DEFAULT_LIMITS",
    "MODEL_VERSIONS",
    "BaselineError",
    "BaselineModel",
    "StandinConfig",
    "StandinHandle",
    "fit_baseline",
    "make_server",
    "start_standin",
    "token_id",
]
