"""CLI: `python -m tests.standin --port 0` serves until SIGTERM/SIGINT, announcing its URL first."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from .config import (
    DEFAULT_LIMITS,
    DEFAULT_THINKING_FIT_DELAY_S,
    FIT_MODES,
    ConfigError,
    StandinConfig,
)
from .server import make_server

# Shorthand flags for the limits tests tighten most often; --limit NAME=VALUE covers the rest.
LIMIT_FLAGS = {
    "max_train_rows": "train_set_max_rows",
    "max_cols": "max_cols",
    "max_classes": "max_classes",
    "max_test_rows": "test_set_max_rows",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.standin", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to fit/submit/predict")
    p.add_argument("--fit-delay-s", type=float, default=0.0)
    p.add_argument("--predict-delay-s", type=float, default=0.0)
    p.add_argument("--chunks", type=int, default=1, help="signed URLs per uploaded file")
    p.add_argument(
        "--fit-poll-hint-s", type=float, default=0.3, help="retry_in_secs of get_fit_status"
    )
    p.add_argument("--fit-mode", choices=FIT_MODES, default="sync")
    p.add_argument("--usage-limit", type=int, default=-1, help="-1 is unlimited")
    p.add_argument(
        "--thinking-fit-delay-s",
        type=float,
        default=DEFAULT_THINKING_FIT_DELAY_S,
        help="added to a Thinking fit, capped by its timeout_secs",
    )
    p.add_argument(
        "--thinking-fit-quota", type=int, default=-1, help="Thinking fits per token, -1 unlimited"
    )
    for flag, name in LIMIT_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, dest=flag, help=name)
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"any ModelLimit field: {', '.join(DEFAULT_LIMITS)}",
    )
    p.add_argument("--access-log", action="store_true", help="method, path, status to stderr")
    return p


def _config(args: argparse.Namespace) -> StandinConfig:
    limits: dict[str, Any] = {}
    for flag, name in LIMIT_FLAGS.items():
        if getattr(args, flag) is not None:
            limits[name] = getattr(args, flag)
    for item in args.limit:
        name, sep, value = str(item).partition("=")
        if not sep or not value.strip().isdigit():
            raise ConfigError(f"--limit expects NAME=INTEGER, got {item!r}")
        limits[name.strip()] = int(value)
    return StandinConfig().updated(
        {
            "latency_ms": args.latency_ms,
            "fit_delay_s": args.fit_delay_s,
            "predict_delay_s": args.predict_delay_s,
            "chunks": args.chunks,
            "fit_poll_hint_s": args.fit_poll_hint_s,
            "fit_mode": args.fit_mode,
            "usage_limit": args.usage_limit,
            "thinking_fit_delay_s": args.thinking_fit_delay_s,
            "thinking_fit_quota": args.thinking_fit_quota,
            "limits": limits,
        }
    )


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, bind, print `STANDIN_READY <url>` on stdout, serve until terminated."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except ConfigError as exc:
        parser.error(str(exc))
    server = make_server(args.host, args.port, config, access_log=args.access_log)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sys.stdout.write(f"STANDIN_READY http://{server.authority}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.close_connections(timeout=1.0)
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
