"""Kill a run (SIGKILL) while annotation calls are in flight; the rerun pays nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import write_project
from tests.defs.test_graph_llm import responder
from tests.fake_openai_server import FakeOpenAIServer, last_user_text

LATENCY = 0.25


def test_sigkill_during_annotation_then_resume(tmp_path):
    answered: list[tuple[str, float]] = []
    lock = threading.Lock()

    def counting(body):
        out = responder(body)
        with lock:
            answered.append((last_user_text(body), time.monotonic()))
        return out

    with FakeOpenAIServer(responder=counting, latency_s=LATENCY) as srv:
        root = write_project(tmp_path / "p")
        reg = root / "skill-slices.yaml"
        reg.write_text(
            reg.read_text().replace(
                "annotator:\n  provider: taxonomy\n",
                "annotator:\n  provider: openai-compatible\n  model: recorded-annotator\n"
                f"  base_url: {srv.base_url}\n  max_concurrency: 4\n",
            )
        )
        exe = Path(sys.executable).parent / "skill-slices"
        proc = subprocess.Popen(
            [str(exe), "run", "--project", str(root), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while len(answered) < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        time.sleep(LATENCY + 1.0)  # requests already at the server still get answered
        before = len(answered)

        out = subprocess.run(
            [str(exe), "run", "--project", str(root), "--quiet"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-3000:]
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        rows = [json.loads(x) for x in (root / "data" / "bench.jsonl").read_text().splitlines()]
        distinct = len({r["question"] for r in rows})

        texts = [t for t, _ in answered]
        assert len(set(texts)) == distinct
        # A question answered twice must have been in flight when the run was killed:
        # its first answer left the server less than one request's time before the kill.
        first_seen: dict[str, float] = {}
        for t, at in answered:
            if t in first_seen:
                assert killed_at - first_seen[t] < LATENCY + 2.0, "a returned call was paid twice"
            else:
                first_seen[t] = at
        assert len(texts) - distinct <= 4  # at most max_concurrency calls were in flight
        assert summary["llm_calls"]["made"] == len(answered) - before
        assert summary["llm_calls"]["made"] + summary["llm_calls"]["cached"] == len(rows)
