"""docs/api.md's walkthrough runs as pasted: its bash block, unchanged but for the token
placeholder, runs under `bash -euo pipefail` from the repository's root against the API
under uvicorn, the session's worker and the stand-in, with the real curl.

`jq`: the real one when it is installed. `make test` must pass on a fresh machine without
it (only Python and make are assumed), so there a stand-in takes its place, written below:
it does `jq -r PATH` and `jq -c PATH` for plain paths (`.a.b[0]`), and nothing else. The
test first checks that every jq call in the block is of that form, so the block cannot
come to rely on more of jq than the stand-in does without this test saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import secrets as secret_registry
from tests.support.api_server import ApiServer
from tests.support.builders import new_token
from tests.support.processes import ManagedProcess, child_env

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
PLAIN_JQ = re.compile(r"jq -[rc] '?\.[A-Za-z_][\w.\[\]]*'?")
JQ_STANDIN = """
import json, re, sys
mode, path = sys.argv[1], sys.argv[2].strip("'")
value = json.load(sys.stdin)
for name, index in re.findall(r"\\.(\\w+)|\\[(\\d+)\\]", path):
    value = value[name] if name else value[int(index)]
if mode == "-r" and isinstance(value, str):
    print(value)
else:
    print(json.dumps(value, separators=(",", ":")))
"""


def walkthrough() -> str:
    text = DOC.read_text()
    section = text[text.index("## Walkthrough") :]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found, "the walkthrough has no bash block"
    return found.group(1)


def test_the_walkthrough_uses_only_plain_jq_paths() -> None:
    block = walkthrough()
    calls = re.findall(r"jq [^)|\n]*", block)
    assert calls, "the walkthrough captures ids with jq"
    for call in calls:
        assert PLAIN_JQ.fullmatch(call.strip()), call


def test_the_walkthrough_runs_as_pasted(
    api_server: ApiServer, worker: ManagedProcess, tmp_path: Path
) -> None:
    samples = ROOT / "docs" / "examples"
    if not (samples / "iris.parquet").exists():
        pytest.skip("docs/examples/ (the sample files) comes with the client branch")
    block = walkthrough()
    assert "YOUR_TABPFN_TOKEN" in block and "Prefer: wait" in block
    token = new_token("walkthrough")
    env = child_env(None, BASE=api_server.url)
    if shutil.which("jq") is None:
        tools = tmp_path / "bin"
        tools.mkdir()
        jq = tools / "jq"
        jq.write_text(f"#!{sys.executable}\n{JQ_STANDIN}")
        jq.chmod(0o755)
        env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.replace("YOUR_TABPFN_TOKEN", token)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    for key in re.findall(r"tpk_\w+", run.stdout + run.stderr):
        secret_registry.remember(key, "API key")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "fit: succeeded" in lines and "prediction: succeeded" in lines, run.stdout
    assert '["setosa","versicolor","virginica"]' in lines
    header = lines.index("row,proba_setosa,proba_versicolor,proba_virginica")
    assert len(lines[header + 1 :]) == 10  # one line per row of iris_new.csv
