"""Render the benchmark results as docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

ANALYSIS = """## Reading the results

**Authentication** costs nothing measurable against the same app answering the same lookup
without it: one prebuilt `SELECT` on the request's own connection, bcrypt only on a key's
first use per cache period (single-flight under concurrency). The gap to the bare-FastAPI
floor is the application's own middleware, session and response handling, which every
endpoint pays.

**Submission throughput is not met (target 0.5×).** A submission does per request what the
baseline does not: authenticate (one query), rate-limit (one Redis round trip), validate
every cell, encode Parquet, insert payload, model and job and commit (WAL fsync), publish
to Redis. Profiling the API process under load took it from about 85 to about 150
submissions/s (the changes are listed in docs/decisions.md); it now spends about 7.8 ms of
CPU per submission where the bare endpoint spends 1.3 ms. Timed one at a time outside the
server, the steps cost: three inserts and the commit 1.25 ms, authentication 0.9 ms, Parquet
0.6 ms, parsing and validation 0.5 ms, publishing 0.4 ms, the rate limit 0.15 ms; the rest is
the framework, thread-pool hand-offs and logging under concurrency. Getting to 0.5× would
need a different design for the write path —
grouping inserts and publishes of concurrent requests, or storing the validated JSON and
leaving Parquet to the worker — which we judged not worth its complexity at ~150
submissions/s per API process; add uvicorn workers or replicas to scale submissions.
Since the capacity work a submission also counts the user's unfinished jobs (the
`JOB_MAX_QUEUED_PER_USER` cap; an index range of at most the cap, about 0.3 ms with the
benchmark's backlog of 1,000+), and each queued job is in one more partial index. This
machine is slower today than on the day of the landed 0.163 (102 submissions/s): the
previous release's code, run here the same day as this release, gave 65 submissions/s
(ratio 0.135, its bare baseline slower in that run) against this release's 69 (0.114).
The hardening (body caps, upload slots, the rate limit before reading) and `Prefer: wait`
(the admission of requests to the pool) cost nothing measurable here; measured again after
the last review fixes (a small body is read as a task of its own, leaving the database
while it is slow), on a quieter machine, this release gives 86 submissions/s (0.13).

**End to end is not met, at either size.** Since the capacity work every fit goes through the
upstream's asynchronous API (submit, then check the status), so a long fit never holds a
connection or a worker. For a fit that takes the upstream only a few hundred milliseconds,
that protocol itself costs about a poll interval over a synchronous call: the unmodified
client in async mode is 0.25–0.3 s (1k×20) slower than in sync mode on the same stand-in. Against
that async client, the service adds about 120–145 ms at 1k×20 (target 100 ms) and 370–500 ms
at 10k×100 (previous runs: 115–145 and 330–450). Traced at 1k×20: the API's answer (parse, validate, Parquet, three inserts,
commit) 65 ms, claim to upload 45 ms (a claim transaction, the payload read and decode, the
client's serialisation), and about 15 ms at each of the record, the due check's claim and
the final write. The first status check waits 0.3 s after the submit (the floor of the
service's hint) instead of asking at once, which saves the async client's own first,
nearly always "pending", request. At 10k×100 the data is moved more times than a direct
client moves it — upload to the API, parse and validate, encode Parquet, write to Postgres,
read it back in the worker, decode, and tabpfn-client serialises it again — each step
proportional to the data (measured earlier: JSON parse 75 ms, validation 23 ms, Parquet
encode 55 ms, insert and commit 42 ms, read 30 ms, decode 17 ms). Going below would need the
stored file handed to the upstream as is, which tabpfn-client 0.6.1 does not allow. Before
the capacity work (sync fits held in a worker for their whole call) the 1k×20 case met the
target against the sync client; we traded that for fits that survive a crash without a
refit and for capacity independent of fit length.

**Worker processes: not met today (5.6× at 8; target 6×).** The speed-up at 8 processes is
measured with one upstream slot per process, as before the capacity work, so the numbers
compare with earlier runs (6.4× and 10.5 jobs/s when it last landed). The previous
release's code, run here the same day, reached 5.3× (9.8 jobs/s): the machine, not this
release, moved. With the default 32 slots one process
already keeps this whole batch in flight; the capacity benchmark measures that.

**Capacity: in flight not met today (26–28; target 32); the second user met.** With 2 s fits
the service kept 35–45 fits in flight from one user when it landed; today the same code of
the previous release keeps 29 (run here the same day), this release 26–28, on workers that
are CPU-bound on two cores (see the CPU seconds). The few per-job statements this release
adds (the phase a slot is in, the parent's row lock of a chunk, the NOTIFY that wakes a
held request, the task events Flower shows) cost a few percent of that. The second user's
fit is done in about 1.9× the fit time, with no measurable time queued behind the 200: the
fair claim puts it in the next round. The
baseline with one slot per process does as well or better on fits (in the last run 70 in
flight against 43), because fits no longer hold a slot while the upstream works: a slot
only uploads and submits, and on two cores one slot per process already keeps the CPUs busy
with that, while 32 slots per process mostly add GIL contention. The slots matter for
predictions, which hold theirs for the whole call: 64 predictions of 2 s drain in about 65 s
with 2 slots and in about 5.5 s with the default (4 users, the per-user cap of 8: about 24
in flight, of the 32 the cap allows). The machine's two cores bound the drain time: API,
workers, Postgres, Redis and the stand-in share them (the CPU seconds are in the table), and
the stand-in's own model work is memoised per upload so that it is not what is measured.
Peak memory per worker process grows by about 30 MB with 32 slots, well within 1.5×.

**`Prefer: wait` holds thousands of requests per API process.** A held request is an open
socket, a future and a task that notices a disconnect: about 50 KB of the API's memory
each, no database connection and no thread (the listener thread and its one connection
are shared), so other requests keep being answered while two thousand wait; their latency grows with the event loop's work of
keeping those sockets, not with a pool or a thread running out. A held request is woken by
the NOTIFY its job's final transition sends at commit, so a short prediction arrives one
notification after it ends, where a client polling every 100 ms finds out on its next poll
(half an interval later on average) and sends a request per 100 ms meanwhile.

**Large predictions in chunks: faster than the client's chunks in turn, but not 0.5×.** A
50,000-row prediction takes 0.81× the direct client's time with a JSON body and 0.67× as a
Parquet upload (what the Python client sends). Traced: the submission (parse, validate,
store 50,000 rows) takes 0.3–0.6 s, the split 0.3 s, the five chunks run concurrently but
each takes about 1.2 s for its 0.5 s upstream latency, the merge 0.1 s and the download of
100,000 probabilities 0.1–0.3 s. The chunks are slow because everything shares two cores:
each 10,000-row request costs the stand-in itself about 0.12 s of CPU (reading the rows,
predicting, writing JSON) and the worker about 0.1 s (tabpfn-client's serialisation, our
result table), and five at once queue on the cores; the direct client pays the same CPU,
but one request at a time, between its latencies. Against a hosted service, whose work is
not on this machine, the chunks overlap almost fully. The cached repeat needs no upstream
call: 0.6 s for 50,000 rows (the upload and the download), 0.14 s for 1,000.

**Worker memory is not met (target ≤ 4×).** The unmodified client needs about 5× the raw size
on top of a matrix it already holds (pandas → Arrow conversion, a growing in-memory Parquet
buffer, a copy of that buffer), so about 6× counting the data itself. The worker sits at that
floor: it fetches the payload in binary, decodes it column-major (which spares the client a
copy), and hands the fetch and decode buffers back to the OS before the client starts.
4× is below what tabpfn-client 0.6.1 needs by itself for this fit.

**API memory under hostile bodies: met.** Without a key no request reads more than 16 KiB:
a 60 MiB body to setup is refused (413) when its declared length is seen, one to create a
key or to fit gets 401, and neither is read, so eight at once add a couple of MB (the
server's socket buffers) where the starting code added about 380 MB for *one* such body to
setup or to create a key (it read and parsed it before the key check or the rate limit).
Parquet bombs are refused from their footer: the row bombs by the row limit, the
decompression bomb by the expansion guard, at a few MB for eight, where one 10 M-row bomb
cost the starting code 1.2 GB and one 40 M-row bomb 4.7 GB and 22 s. A text bomb (one 20 KB
text over 50,000 rows, 1 KiB on disk) passes the footer's sizes: it is read as a dictionary
and refused from what its texts would take (about +30 MB for eight, where one cost the
starting code 1.7 GB). In this benchmark one user sends all eight bombs, so its share of
upload slots (`UPLOAD_SLOTS_PER_USER`, 2 by default) is raised to let all eight through. The last row is not a
bomb the guard refuses but the most a small file may still decode to (a million cells):
it is decoded and accepted like any upload, and eight at once cost about +180 MB, four at a
time through the upload slots, some 45 MB each (the Arrow table, its pandas frame, the
typed feature table and the stored Parquet). Larger honest uploads cost about the same per
decoded byte, bounded by `UPLOAD_SLOTS` (docs/operations.md, Sizing).
"""


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _throughput(section: dict[str, Any], title: str) -> list[str]:
    service, baseline = section["service"], section["baseline"]
    lines = [
        f"### {title}",
        "",
        "| endpoint | requests | throughput (req/s) | p50 (ms) | p99 (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in (service, baseline, *([section["floor"]] if "floor" in section else [])):
        lines.append(
            f"| {row['name']} | {row['ok']}/{row['requests']} | {row['throughput_rps']} | "
            f"{row['p50_ms']} | {row['p99_ms']} |"
        )
    ratio, target = section["ratio"], section["target"]
    lines += ["", f"Ratio {ratio} (target ≥ {target}: {_verdict(ratio >= target)}).", ""]
    return lines


def _capacity(data: dict[str, Any]) -> list[str]:
    rows, default = data["rows"], data["rows"][-1]
    lines = [
        "## Capacity: a burst of fits on a slow upstream, and a second user",
        "",
        f"Each fit takes {data['fit_s']} s upstream (submitted, then pending; the stand-in hints",
        f"`retry_in_secs` = {data['poll_hint_s']} s), {data['processes']} worker processes. User A",
        f"submits {data['fits']} small fits (100×10) from 8 connections; user B submits one fit",
        "1 s after A's first. *In flight* is the upstream's busy seconds (the sum of A's fit",
        "durations in the stand-in's fit log) over the drain time (A's first submission to A's",
        "last success). The baseline is the same service with `WORKER_UPSTREAM_CONCURRENCY=1`.",
        "",
        "| run | slots per process | busy (s) | drain (s) | in flight | drain / serial "
        "| B: submit → succeeded (s) | B / fit time | B queued / submitting / upstream (s) "
        "| peak RSS per process (MB) | CPU s: workers / API / stand-in / Postgres |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        phases, cpu = row["second_user_phases_s"], row["cpu_s"]
        lines.append(
            f"| {row['run']} | {row['upstream_concurrency']} | {row['busy_s']} | "
            f"{row['drain_s']} | {row['concurrency']} | {row['drain_vs_serial']} | "
            f"{row['second_user_s']} | {row['second_user_ratio']} | "
            f"{phases['queued']} / {phases['submitting']} / {phases['upstream']} | "
            f"{', '.join(str(v) for v in row['peak_rss_mb'])} | "
            f"{cpu['workers']} / {cpu['api']} / {cpu['standin']} / {cpu['postgres']} |"
        )
    predict = data["predict"]
    lines += [
        "",
        f"Predictions hold their slot for the whole call: {predict['users']} users each submit "
        f"{predict['per_user']} predictions of {predict['predict_s']} s upstream.",
        "",
        "| run | slots per process | predictions | busy (s) | drain (s) | in flight "
        "| peak RSS per process (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in predict["rows"]:
        lines.append(
            f"| {row['run']} | {row['upstream_concurrency']} | {row['predictions']} | "
            f"{row['busy_s']} | {row['drain_s']} | {row['concurrency']} | "
            f"{', '.join(str(v) for v in row['peak_rss_mb'])} |"
        )
    in_flight_ok = default["concurrency"] >= data["target_concurrency"]
    second_ok = default["second_user_ratio"] <= data["target_second_user_ratio"]
    rss_ok = data["rss_ratio"] <= data["target_rss_ratio"]
    lines += [
        "",
        f"- In flight ≥ {data['target_concurrency']} (default): {default['concurrency']}, "
        f"{_verdict(in_flight_ok)}.",
        f"- Second user ≤ {data['target_second_user_ratio']}× the fit time (default): "
        f"{default['second_user_ratio']}×, {_verdict(second_ok)}.",
        f"- Peak RSS per process ≤ {data['target_rss_ratio']}× the baseline's, plus the memory "
        f"budget (default vs baseline): {data['rss_ratio']}×, {_verdict(rss_ok)}.",
        "",
    ]
    return lines


def _depth(data: dict[str, Any]) -> list[str]:
    ratio_met = data["ratio"] <= data["target_ratio"]
    parquet_met = data.get("parquet_ratio", data["ratio"]) <= data["target_ratio"]
    return [
        "## Large predictions in chunks, and the prediction cache",
        "",
        f"The stand-in takes at most {data['limit']:,} test rows per request and answers each",
        f"request after {data['latency_s']} s. A {data['rows']:,}-row prediction (20 columns,",
        "probabilities) through the service — submit the JSON body, poll every 50 ms until",
        "`succeeded`, download the result — against the unmodified tabpfn-client sending the same",
        f"rows as {data['rows'] // data['limit']} requests one after another (what its users do",
        f"today). Median of {data['repeats']} runs, each with a fresh user and fresh rows; the",
        "service runs one worker with 2 processes.",
        "",
        "| | seconds | ratio |",
        "| --- | --- | --- |",
        f"| direct client, chunks in turn (baseline) | {data['direct_sequential_s']} | 1 |",
        f"| service, chunks split and run concurrently (JSON body) | {data['service_s']} | "
        f"{data['ratio']} |",
        f"| service, the same rows as a Parquet upload | {data.get('parquet_s', '–')} | "
        f"{data.get('parquet_ratio', '–')} |",
        f"| service, the same prediction again (cached) | {data['cached_s']} | "
        f"{round(data['cached_s'] / data['direct_sequential_s'], 3)} |",
        "",
        f"Target ≤ {data['target_ratio']}× the direct time: with the JSON body "
        f"{_verdict(ratio_met)}; with the Parquet upload {_verdict(parquet_met)}.",
        "",
        f"Cached against uncached at {data['small_rows']:,} rows (one upstream request): "
        f"{data['small_uncached_s']} s uncached, {data['small_cached_s']} s cached; at "
        f"{data['rows']:,} rows: {data['service_s']} s uncached, {data['cached_s']} s cached.",
        "",
    ]


def _api_memory_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | requests at once | answers | idle (MB) | peak (MB) | added (MB) "
        "| after (MB) | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        answers = ", ".join(f"{n}× {answer}" for answer, n in row["answers"].items())
        lines.append(
            f"| {row['scenario']} | {row['requests']} | {answers} | {row['idle_mb']} | "
            f"{row['peak_mb']} | {row['added_mb']} | {row['after_mb']} | {row['seconds']} |"
        )
    return lines


def _api_memory(data: dict[str, Any]) -> list[str]:
    lines = [
        "## API memory under hostile bodies",
        "",
        f"One uvicorn process (a fresh one per scenario) serves {data['concurrency']} concurrent",
        f"requests of each kind: {data['body_mib']} MiB JSON bodies (tens of millions of zeros,",
        "costly to parse) without an API key, and Parquet bombs from an authenticated user (files",
        "of zeros that declare many rows). *Idle* is the API's RSS just before the scenario (after",
        "a warm-up down every path), *peak* its highest RSS during it (psutil sampled every 5 ms,",
        "and the kernel's high-water mark reset before the scenario), *after* its RSS half a",
        f"second after the last answer. `UPLOAD_SLOTS` = {data['upload_slots']}.",
        "",
        *_api_memory_rows(data["rows"]),
        "",
    ]
    worst = max(row["added_mb"] for row in data["rows"])
    target = data["target_added_mb"]
    lines += [f"Target: under +{target} MB: {_verdict(worst < target)} (at most +{worst} MB).", ""]
    baseline = data.get("baseline")
    if baseline:
        lines += [
            "The same scenarios against the code this work started from, in the same run, "
            f"{baseline['concurrency']} at a",
            "time (it reads and decodes every body: 8 at once would take tens of GB on this shared",
            "machine):",
            "",
            *_api_memory_rows(baseline["rows"]),
            "",
        ]
    return lines


def _prefer(data: dict[str, Any]) -> list[str]:
    baseline = data["held"][0]
    lines = [
        "## `Prefer: wait`: held requests, and waiting against polling",
        "",
        "One API process under uvicorn (default pool: 10 + 10 connections; 40 threads), no",
        "worker, so every job stays queued and each `GET /jobs/{id}` with `Prefer: wait=60` is",
        f"held its whole time (and asked again when it runs out). Waiters join {data['step']} at a",
        "time; at each level, the API's resident memory and the median latency of",
        f"{data['probes']} other requests made meanwhile (`GET /api/v1/users/me`: a pooled",
        "connection and a thread each), beside the same with nobody waiting (the first row).",
        "",
        "| held requests | API RSS (MB) | RSS per held request (KB) | other requests, p50 (ms) |",
        "| --- | --- | --- | --- |",
    ]
    for row in data["held"]:
        per = (
            round((row["rss_mb"] - baseline["rss_mb"]) * 1000 / row["waiters"], 1)
            if row["waiters"]
            else "–"
        )
        lines.append(f"| {row['waiters']} | {row['rss_mb']} | {per} | {row['other_p50_ms']} |")
    speedup = round(data["polled_s"] / data["waited_s"], 2) if data["waited_s"] else 0
    lines += [
        "",
        f"A short prediction (20 rows, {data['latency_ms']} ms upstream, the prediction cache",
        f"off), submit → `succeeded` seen by the client, median (p90) of {data['repeats']}",
        "alternating runs:",
        "",
        "| client | seconds, median | p90 | requests |",
        "| --- | --- | --- | --- |",
        f"| `Prefer: wait=60` on the POST | {data['waited_s']} | {data['waited_p90_s']} | "
        "1 (usually) |",
        f"| polling every {int(data['poll_s'] * 1000)} ms (baseline) | {data['polled_s']} | "
        f"{data['polled_p90_s']} | 1 + one per 100 ms |",
        "",
        f"Waiting is {speedup}× as fast as polling every 100 ms, in one request instead of a loop.",
        "",
    ]
    return lines


def render(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Measured with `make bench` (or `uv run python -m bench [STEP ...]`, steps throughput, e2e,",
        "scaling, memory, capacity, api-memory, depth, prefer), each beside its baseline in the",
        "same run, on embedded PostgreSQL (fsync on) and Redis, the stand-in TabPFN server with a",
        "fixed latency, the API under one uvicorn process and real",
        "Celery prefork workers: the production commands on one machine. Client, server, database,",
        "broker and stand-in share the machine's cores, so absolute numbers are modest; the ratios",
        "are what the targets are about.",
        "",
        f"Machine: {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}, "
        f"{machine.get('platform', '?')}; run on {machine.get('date', '?')}.",
        "",
    ]
    if "throughput" in results:
        data = results["throughput"]
        lines += [
            "## API throughput",
            "",
            "8 keep-alive connections from a light asyncio client; after 200 warm-up requests.",
            "",
        ]
        lines += _throughput(
            data["auth"], "Authenticated request vs the same query unauthenticated"
        )
        lines += _throughput(data["submission"], "Fit submission (100×10) vs a bare insert")
    if "e2e" in results:
        data = results["e2e"]
        lines += [
            "## End to end: submit → `succeeded` seen by the client",
            "",
            f"Upstream latency {data['latency_ms']} ms per fit call; median of {data['repeats']} runs,",
            "each with a fresh token (no upload deduplication on either side); the client polls every",
            "10 ms. The direct baselines are the unmodified `tabpfn-client` fitting the same matrix in",
            "the benchmark process: synchronously (its default for small data), and in async mode",
            "(submit, then poll as the service does; the stand-in hints `retry_in_secs` = 0.3 s).",
            "The request body is prepared before the clock starts.",
            "",
            "| data | body | body size (MB) | direct sync (s) | direct async (s) | service (s) "
            "| ratio / added (ms) vs sync | ratio / added (ms) vs async |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in data["rows"]:
            lines.append(
                f"| {row['size']} | {row['body']} | {row['body_mb']} | {row['direct_s']} | "
                f"{row.get('direct_async_s', '–')} | {row['service_s']} | "
                f"{row['ratio']} / {row['added_ms']} | "
                f"{row.get('ratio_async', '–')} / {row.get('added_async_ms', '–')} |"
            )
        lines += [
            "",
            f"Targets: ratio ≤ {data['target_ratio']} and ≤ {data['target_added_ms']} ms added.",
            "",
        ]
        for row in data["rows"]:
            met = (
                row["ratio"] <= data["target_ratio"] and row["added_ms"] <= data["target_added_ms"]
            )
            line = f"- {row['size']}, {row['body']}: against the sync client {_verdict(met)}"
            if "ratio_async" in row:
                met_async = (
                    row["ratio_async"] <= data["target_ratio"]
                    and row["added_async_ms"] <= data["target_added_ms"]
                )
                line += f"; against the async client {_verdict(met_async)}"
            lines.append(line + ".")
        lines.append("")
    if "scaling" in results:
        data = results["scaling"]
        lines += [
            "## Worker processes",
            "",
            f"The same batch of small fits (100×10), {data['upstream_latency_s']} s upstream latency",
            "per fit call, drained by one worker with `--concurrency` N (prefork) and one upstream slot",
            "per process (`WORKER_UPSTREAM_CONCURRENCY=1`), as before the capacity work; time from the",
            "batch's first start to its last finish, read from the job rows.",
            "",
            "| processes | jobs | seconds | jobs/s | speed-up |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in data["rows"]:
            lines.append(
                f"| {row['processes']} | {row['jobs']} | {row['seconds']} | {row['jobs_per_s']} | {row['speedup']}× |"
            )
        at_eight = next((r["speedup"] for r in data["rows"] if r["processes"] == 8), 0)
        lines += [
            "",
            f"Target ≥ {data['target_speedup_at_8']}× at 8: {_verdict(at_eight >= data['target_speedup_at_8'])}.",
            "",
        ]
    if "memory" in results:
        data = results["memory"]
        lines += [
            "## Worker memory for a large fit",
            "",
            f"A {data['rows']:,}×{data['cols']} fit (raw float64: {data['raw_float64_mb']} MB), uploaded as",
            "Parquet. Peak resident memory (VmHWM) of the worker process above its idle size after a",
            "warm-up job, beside the unmodified client fitting the same matrix in a fresh process",
            "(measured above its own idle size with the matrix already in memory).",
            "",
            "| | idle (MB) | peak (MB) | added (MB) | added / raw |",
            "| --- | --- | --- | --- | --- |",
            f"| worker (loads the data itself) | {data['worker_idle_mb']} | {data['worker_peak_mb']} | "
            f"{data['worker_added_mb']} | {data['worker_ratio']}× |",
            f"| direct client (data already held) | | | {data['direct_added_mb']} | {data['direct_ratio']}× |",
            "",
            f"Target ≤ {data['target_ratio']}× above the idle worker: "
            f"{_verdict(data['worker_ratio'] <= data['target_ratio'])}.",
            "",
        ]
    if "capacity" in results:
        lines += _capacity(results["capacity"])
    if "api-memory" in results:
        lines += _api_memory(results["api-memory"])
    if "depth" in results:
        lines += _depth(results["depth"])
    if "prefer" in results:
        lines += _prefer(results["prefer"])
    lines.append(ANALYSIS)
    return "\n".join(lines).rstrip() + "\n"


ANALYSIS_HEADING = "## Reading the results"


def _sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first `## ` heading, and each section as (heading, its text)."""
    parts = text.split("\n## ")
    preamble, sections = parts[0] + "\n", []
    for part in parts[1:]:
        heading = "## " + part.split("\n", 1)[0]
        sections.append((heading, "## " + part.rstrip("\n") + "\n\n"))
    return preamble, sections


def splice(existing: str, fresh: str) -> str:
    """`existing` with each section of `fresh` in place of the one with its heading (new
    ones before the analysis), and the analysis as `fresh` has it."""
    preamble, old = _sections(existing)
    _, new = _sections(fresh)
    replacements = dict(new)
    analysis = replacements.pop(ANALYSIS_HEADING, "")
    kept = [
        replacements.pop(heading, block) for heading, block in old if heading != ANALYSIS_HEADING
    ]
    return (preamble + "".join(kept + list(replacements.values())) + analysis).rstrip() + "\n"
