"""The line `tabpfn-api` shows while it waits for a job: status, elapsed time, and the
service's `progress` report when it sends one (phase, chunks, queue position).

On a terminal the line is redrawn in place; in a log (not a TTY) a line is written only when
something other than the clock changed, so CI logs stay short.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from tabpfn_api_client.records import Job


def describe_progress(progress: dict[str, Any] | None) -> str:
    """The service's progress report in a few words; unknown fields as name=value."""
    if not progress:
        return ""
    parts: list[str] = []
    rest = dict(progress)
    phase = rest.pop("phase", None)
    if phase:
        parts.append(str(phase))
    done, total = rest.pop("chunks_done", None), rest.pop("chunks_total", None)
    if total:
        parts.append(f"{done or 0}/{total} chunks")
    position = rest.pop("queue_position", None)
    if position is not None:
        parts.append(f"position {position} in queue")
    parts.extend(f"{k}={v}" for k, v in rest.items() if v is not None and not isinstance(v, dict))
    return ", ".join(parts)


class ProgressLine:
    """Shows a job's state on `stream` (stderr) while waiting; silent when disabled."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interactive = enabled and stream.isatty()
        self.started = time.monotonic()
        self._last_state = ""
        self._width = 0

    def update(self, job: Job) -> None:
        if not self.enabled:
            return
        detail = describe_progress(job.progress)
        state = f"{job.kind} job {job.id}: {job.status}" + (f" ({detail})" if detail else "")
        elapsed = time.monotonic() - self.started
        line = f"{state}  {elapsed:5.1f} s"
        if self.interactive:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = max(self._width, len(line))
        elif state != self._last_state:
            self.stream.write(line + "\n")
        self._last_state = state
        self.stream.flush()

    def finish(self) -> None:
        if self.interactive and self._width:
            self.stream.write("\n")
            self.stream.flush()
