"""A sentinel API key never reaches logs, metadata, the call cache, exports, reports or errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_project
from tests.fake_openai_server import FakeOpenAIServer
from tests.test_graph_llm import responder

SENTINEL = "sk-SENTINEL-4f1c2b9e7d-do-not-leak"


def _cli(env, *args):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


def _all_bytes(folder: Path) -> bytes:
    out = b""
    for f in folder.rglob("*"):
        if f.is_file():
            out += f.read_bytes()
    return out


def test_sentinel_key_never_leaks(tmp_path):
    env = os.environ.copy()
    env["SKILL_SLICES_TEST_KEY"] = SENTINEL
    # The first request gets a 401 that echoes the key back, as some providers do.
    with FakeOpenAIServer(responder=responder, faults=["401"]) as srv:
        root = write_project(tmp_path / "p")
        reg = root / "skill-slices.yaml"
        reg.write_text(
            reg.read_text().replace(
                "annotator:\n  provider: taxonomy\n",
                "annotator:\n  provider: openai-compatible\n  model: recorded-annotator\n"
                f"  base_url: {srv.base_url}\n  api_key_env: SKILL_SLICES_TEST_KEY\n"
                "  max_concurrency: 1\n",
            )
        )
        first = _cli(env, "run", "--project", str(root))
        second = _cli(env, "run", "--project", str(root))
        export = _cli(env, "cache", "export", str(tmp_path / "calls.jsonl"), "--project", str(root))
        report = _cli(env, "report", "--project", str(root))
        # the key did reach the server, so the sentinel is a real test
        assert any(SENTINEL in r.headers.get("authorization", "") for r in srv.requests)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["llm_calls"]["made"] == 1
    for out in (first, second, export, report):
        assert SENTINEL not in out.stdout and SENTINEL not in out.stderr
    assert SENTINEL.encode() not in _all_bytes(root / ".skill-slices")
    assert SENTINEL not in (tmp_path / "calls.jsonl").read_text()
