"""What each `tabpfn-api` command does. Each takes the parsed arguments and returns the
process's exit code; errors from the service propagate to `main`, which prints them."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from tabpfn_api_client import settings
from tabpfn_api_client.cli import render
from tabpfn_api_client.cli.files import select_columns
from tabpfn_api_client.cli.progress import ProgressLine
from tabpfn_api_client.client import Client
from tabpfn_api_client.records import Job

TOKEN_ENV = "TABPFN_TOKEN"  # noqa: S105 - the variable's name, not a token
# While a person watches, hold each request briefly so the elapsed time keeps moving.
INTERACTIVE_HOLD_S = 2.0


def make_client(args: argparse.Namespace) -> Client:
    return Client(args.base_url)


def _read_secret(args: argparse.Namespace, env: str, prompt: str) -> str:
    """A secret from stdin (`--*-stdin`), the environment, or a hidden prompt."""
    if args.stdin:
        value = sys.stdin.readline().strip()
    elif os.environ.get(env):
        value = os.environ[env].strip()
    elif sys.stdin.isatty():
        value = getpass.getpass(prompt).strip()
    else:
        raise SystemExit(f"error: no secret given: set {env}, or pipe it with --stdin.")
    if not value:
        raise SystemExit("error: the secret given is empty.")
    return value


def setup(args: argparse.Namespace) -> int:
    """Trade a TabPFN token for an API key (or check an existing key) and save it."""
    base_url = settings.resolve_base_url(args.base_url)
    if args.existing_key:
        key = _read_secret(args, settings.KEY_ENV, "tabpfn-api API key: ")
        with Client(base_url, key) as client:
            user = client.me()
        path = settings.save_config({"base_url": base_url, "api_key": key})
        summary: dict[str, Any] = {
            "user_id": user.id,
            "key_id": user.current_key_id,
            "base_url": base_url,
            "config_path": str(path),
        }
    else:
        token = _read_secret(args, TOKEN_ENV, "TabPFN token: ")
        with Client(base_url) as client:
            result = client.setup(token, key_name=args.key_name)
        path = settings.save_config({"base_url": base_url, "api_key": result.api_key})
        summary = {
            "user_id": result.user_id,
            "key_id": result.key_id,
            "base_url": base_url,
            "config_path": str(path),
            "webhook_secret": result.webhook_secret,
        }
    if args.json:
        render.print_json(summary)
        return 0
    print(f"Saved the API key {summary['key_id']} for {base_url} to {path} (mode 600).")
    if "webhook_secret" in summary:
        print(
            f"Webhook signing secret (shown once; keep it to verify webhooks): "
            f"{summary['webhook_secret']}"
        )
    return 0


def _follow(client: Client, job: Job, args: argparse.Namespace) -> Job:
    progress = ProgressLine(sys.stderr, enabled=not args.json)
    hold = INTERACTIVE_HOLD_S if progress.interactive else 60.0
    try:
        return client.wait(
            job,
            timeout=args.timeout,
            on_update=progress.update,
            raise_on_failure=False,
            max_hold=hold,
        )
    finally:
        progress.finish()


def _report_failure(job: Job) -> int:
    if job.status == "succeeded":
        return 0
    reason = f"{job.error.code}: {job.error.message}" if job.error else job.status
    print(f"error: {job.kind} job {job.id} {job.status}: {reason}", file=sys.stderr)
    return 1


def fit(args: argparse.Namespace) -> int:
    """Upload a CSV/Parquet file and fit a model on it."""
    config = json.loads(args.config) if args.config else None
    with make_client(args) as client:
        job = client.fit_file(
            Path(args.file),
            target_column=args.target,
            task=args.task,
            name=args.name,
            config=config,
            wait=None if args.no_wait else min(args.timeout, 60.0),
        )
        if not args.no_wait:
            job = _follow(client, job, args)
    if args.json:
        render.print_json(job.raw)
    elif job.status == "succeeded":
        print(f"model {job.model_id} is ready (fit job {job.id})")
    elif not job.is_finished:
        print(f"fit job {job.id} is {job.status}; model {job.model_id}")
    return _report_failure(job) if job.is_finished else 0


def predict(args: argparse.Namespace) -> int:
    """Predict on a CSV/Parquet file; write the result to -o (CSV or JSON) or stdout."""
    quantiles = [float(q) for q in args.quantiles.split(",")] if args.quantiles else None
    with make_client(args) as client:
        model = client.get_model(args.model)
        if model.status == "pending" and model.fit_job_id:
            # A model still fitting (`fit --no-wait`): wait for it rather than fail.
            fitted = _follow(client, client.get_job(model.fit_job_id), args)
            if fitted.status != "succeeded":
                return _report_failure(fitted)
        prepared = select_columns(Path(args.file).read_bytes(), model.feature_names)
        if prepared.dropped and not args.json:
            print(f"(not sent: columns {', '.join(prepared.dropped)})", file=sys.stderr)
        job = client.predict_file(
            model.id,
            prepared.content,
            filename=Path(args.file).name,
            output_type=args.output_type,
            quantiles=quantiles,
            wait=min(args.timeout, 60.0),
        )
        job = _follow(client, job, args)
        if job.status != "succeeded":
            if args.json:
                render.print_json(job.raw)
            return _report_failure(job)
        output_format = "json" if args.output and args.output.endswith(".json") else "csv"
        content = client.job_result_file(job.id, format=output_format)
    if args.output:
        Path(args.output).write_bytes(content)
    if args.json:
        render.print_json({**job.raw, "output": args.output})
    elif args.output:
        print(
            f"wrote {job.result.get('n_rows') if job.result else '?'} predictions to "
            f"{args.output} (job {job.id})"
        )
    else:
        sys.stdout.write(content.decode())
    return 0


def jobs(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        page = client.list_jobs(
            status=args.status, kind=args.kind, page=args.page, page_size=args.page_size
        )
    if args.json:
        render.print_json(render.page_json(page, [job.raw for job in page.items]))
        return 0
    render.print_table(
        ["ID", "KIND", "STATUS", "MODEL", "CREATED", "ERROR"],
        [
            [
                job.id,
                job.kind,
                job.status,
                job.model_id or "-",
                render.when(job.created_at),
                job.error.code if job.error else "-",
            ]
            for job in page.items
        ],
    )
    render.page_footer(page.page, page.total_pages, page.total)
    return 0


def job(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        current = client.get_job(args.id)
        if args.wait:
            current = _follow(client, current, args)
    if args.json:
        render.print_json(current.raw)
    else:
        for name in ("id", "kind", "status", "model_id", "created_at", "finished_at"):
            print(f"{name:12} {current.raw.get(name) or '-'}")
        if current.error:
            print(f"{'error':12} {current.error.code}: {current.error.message}")
        if current.result:
            print(f"{'result':12} {render.short(json.dumps(current.result), 200)}")
    return _report_failure(current) if args.wait else 0


def cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        current = client.cancel_job(args.id)
    if args.json:
        render.print_json(current.raw)
    else:
        print(f"job {current.id}: {current.status}")
    return 0


def models(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        page = client.list_models(status=args.status, page=args.page, page_size=args.page_size)
    if args.json:
        render.print_json(render.page_json(page, [model.raw for model in page.items]))
        return 0
    render.print_table(
        ["ID", "NAME", "TASK", "STATUS", "ROWS", "COLS", "CREATED"],
        [
            [
                m.id,
                render.short(m.name, 24),
                m.task,
                m.status,
                str(m.n_samples),
                str(m.n_features),
                render.when(m.created_at),
            ]
            for m in page.items
        ],
    )
    render.page_footer(page.page, page.total_pages, page.total)
    return 0


def usage(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        current = client.usage()
    if args.json:
        render.print_json(current.raw)
        return 0
    if current.tabpfn is None:
        print("TabPFN usage: unavailable right now")
    else:
        limit = current.tabpfn.get("usage_limit")
        shown = "unlimited" if limit == -1 else str(limit)
        print(
            f"TabPFN usage: {current.tabpfn.get('current_usage')} of {shown}, resets "
            f"{current.tabpfn.get('reset_time') or '-'}"
        )
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in current.jobs.items()))
    return 0
