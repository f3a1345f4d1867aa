"""How the CLI prints: aligned tables for people, the service's own JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from tabpfn_api_client.records import Page


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """One JSON document on stdout (`--json`), nothing else."""
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=2, default=str) + "\n")


def page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    """A page as the service sent it."""
    return {
        "items": items,
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
        "total_pages": page.total_pages,
    }


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def short(value: str | None, width: int = 40) -> str:
    if not value:
        return "-"
    return value if len(value) <= width else value[: width - 1] + "…"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def page_footer(page: int, total_pages: int, total: int) -> None:
    if total_pages > 1:
        print(f"page {page} of {total_pages} ({total} in all); --page N for more")
