"""`make bench` / `python -m bench [throughput e2e scaling memory capacity api-memory depth prefer]`.

Runs the benchmarks (all by default) on embedded engines and the stand-in, each beside its
baseline in the same run, and writes docs/benchmarks.md: all of it after a full run, and
after a run of some steps only their sections (the rest of the file stays as measured).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api_memory, capacity, depth, end_to_end, prefer, throughput, workers
from bench.report import render, splice

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / ".out"
STEPS = (
    "throughput",
    "e2e",
    "scaling",
    "memory",
    "capacity",
    "api-memory",
    "depth",
    "prefer",
)


def main(argv: list[str]) -> int:
    chosen = argv or list(STEPS)
    unknown = set(chosen) - set(STEPS)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(STEPS)}")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    previous = OUT / "results.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    fresh: dict[str, Any] = {}
    runners = {
        "throughput": throughput.run,
        "e2e": end_to_end.run,
        "scaling": workers.scaling,
        "memory": workers.memory,
        "capacity": capacity.run,
        "api-memory": api_memory.run,
        "depth": depth.run,
        "prefer": prefer.run,
    }
    for step in chosen:
        started = time.monotonic()
        print(f"[bench] {step} ...", flush=True)
        fresh[step] = results[step] = runners[step]()
        print(
            f"[bench] {step} done in {time.monotonic() - started:.0f} s: {json.dumps(fresh[step])}",
            flush=True,
        )
    fresh["machine"] = results["machine"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    previous.write_text(json.dumps(results, indent=2))
    document = ROOT / "docs" / "benchmarks.md"
    if set(chosen) == set(STEPS) or not document.exists():
        document.write_text(render(fresh))
    else:  # only these sections were measured: the others stay as they were
        document.write_text(splice(document.read_text(), render(fresh)))
    print("[bench] wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
