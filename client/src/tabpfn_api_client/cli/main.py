"""`tabpfn-api`: the command line. Arguments are parsed here; each command lives in
`commands.py`. Exit codes: 0 done, 1 the service refused or the job failed, 2 bad usage,
130 interrupted (a job the CLI was following carries on in the service)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tabpfn_api_client import errors
from tabpfn_api_client._version import __version__
from tabpfn_api_client.cli import commands

Command = Callable[[argparse.Namespace], int]
DEFAULT_TIMEOUT_S = 3600.0


def _common(suppress: bool) -> argparse.ArgumentParser:
    """--base-url and --json, accepted before or after the command's name."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--base-url",
        default=default,
        help="the service's URL (default: $TABPFN_SERVICE_URL, the saved one, http://localhost:8000)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print the service's JSON only (for scripts); no progress display",
    )
    return parser


def _pages(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=20)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tabpfn-api",
        description="TabPFN fits and predictions on a tabpfn-api service. The API key comes "
        "from $TABPFN_API_KEY, else from the config file `tabpfn-api setup` writes.",
        parents=[_common(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(suppress=True)]

    def add(name: str, run: Command, text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=common, help=text, description=text)
        command.set_defaults(run=run)
        return command

    setup = add(
        "setup",
        commands.setup,
        "trade a TabPFN token ($TABPFN_TOKEN, --stdin or a prompt) for an API key and save "
        "it (mode 600) in the user's config folder",
    )
    setup.add_argument("--key-name", help="a label for the new key")
    setup.add_argument("--stdin", action="store_true", help="read the secret from stdin")
    setup.add_argument(
        "--existing-key",
        action="store_true",
        help="save an API key you have ($TABPFN_API_KEY, --stdin or a prompt) after checking it",
    )

    fit = add("fit", commands.fit, "fit a model on a CSV (with a header) or Parquet file")
    fit.add_argument("file")
    fit.add_argument("--target", required=True, help="the column to predict")
    fit.add_argument("--task", choices=["classification", "regression"], default="classification")
    fit.add_argument("--name", help="a name for the model")
    fit.add_argument("--config", help="TabPFN options as JSON, e.g. '{\"n_estimators\": 4}'")
    fit.add_argument("--no-wait", action="store_true", help="print the queued job and exit")
    fit.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait")

    predict = add(
        "predict",
        commands.predict,
        "predict on a CSV or Parquet file (columns the model does not use are left out)",
    )
    predict.add_argument("model", help="the model id")
    predict.add_argument("file")
    predict.add_argument("-o", "--output", help="write here (.json: JSON; else CSV)")
    predict.add_argument(
        "--output-type",
        choices=["preds", "probas", "mean", "median", "mode", "quantiles"],
        help="default: preds (classification), mean (regression)",
    )
    predict.add_argument("--quantiles", help="with --output-type quantiles: e.g. 0.1,0.5,0.9")
    predict.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)

    jobs = add("jobs", commands.jobs, "list your jobs, newest first")
    jobs.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "canceled"])
    jobs.add_argument("--kind", choices=["fit", "predict"])
    _pages(jobs)

    job = add("job", commands.job, "show one job; --wait follows it to its end")
    job.add_argument("id")
    job.add_argument("--wait", action="store_true")
    job.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)

    cancel = add("cancel", commands.cancel, "cancel a queued or running job")
    cancel.add_argument("id")

    models = add("models", commands.models, "list your models, newest first")
    models.add_argument("--status")
    _pages(models)

    add("usage", commands.usage, "your TabPFN usage and your jobs by status")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except errors.TabPFNAPIError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (a submitted job carries on: tabpfn-api jobs)", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
