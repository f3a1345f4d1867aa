"""A stand-in TabPFN server speaking tabpfn-client 0.6.1's wire protocol, for tests and benchmarks.

Start it in-process with `start_standin(port=0, **config)` (returns a `StandinHandle` with
`.url` and `.stop()`) or as a process with `python -m tests.standin --port 0`, which prints
`STANDIN_READY http://HOST:PORT` once it serves.

Token prefixes select failure modes: `invalid*` 401, `unverified*` 403, `overquota*` 429
USAGE_LIMIT_EXCEEDED, `ratelimited*` 429 RATE_LIMITED with Retry-After, `flaky*` two 503s
per fit/predict path, `slow*` +2 s per fit/predict, `drop*` connection closed unanswered.
Runtime config lives at `/_admin/config` (GET/POST/DELETE), `DELETE /_admin/state` forgets
all data, `DELETE /_admin/fits[?token_id=]` forgets only the fitted sets (an upstream that
lost its fits), `/_calls` is the request log, `GET /_fits` the fit log (what each fit asked
for) and `/_predicts` the predict log (what each predict asked for and how it ran), all keyed
by `token_id(token)`, never the token.

TabPFN options follow tabpfn-client 0.6.1: a Thinking fit ("thinking" in `tabpfn_systems`)
takes `thinking_fit_delay_s` longer (capped by `thinking_config.timeout_secs`) and draws on
`thinking_fit_quota`; `fit_mode="fit_with_cache"` fits answer predicts from their cache. The
rules are in `options.py`, `thinking.py` and `predicting.py`.
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
