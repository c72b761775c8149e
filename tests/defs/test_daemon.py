"""`skill-slices ui` (a thin wrapper over `dagster dev`) on a copy of the demo, for a bounded time.

After `skill-slices run`, the UI's webserver and daemon (the input sensor and the automation
sensor) run for several sensor intervals and re-materialize nothing. Then one results file
is edited with no CLI involved: the daemon refreshes exactly that model's partition and its
dependants. The processes are stopped as one group, and a following `skill-slices run` has
nothing to do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from skill_assets.core.registry import load_project
from skill_assets.defs.automation import SENSOR_INTERVAL_S
from tests.app.test_engine import RESULTS_DEPENDANTS

REPO = Path(__file__).resolve().parents[2]


def _exe(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]


def _materializations(home: Path, after_ts: float) -> list[tuple[str, str | None]]:
    instance = DagsterInstance.from_config(str(home))
    try:
        out = []
        for rec in instance.get_run_records():
            if rec.create_timestamp.timestamp() < after_ts:
                continue
            for ev in instance.all_logs(
                rec.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
            ):
                out.append(
                    (
                        ev.asset_materialization.asset_key.to_user_string(),
                        ev.dagster_event.partition,
                    )
                )
        return out
    finally:
        instance.dispose()


def _runs_after(home: Path, after_ts: float) -> list:
    instance = DagsterInstance.from_config(str(home))
    try:
        return [r for r in instance.get_run_records() if r.create_timestamp.timestamp() >= after_ts]
    finally:
        instance.dispose()


def test_ui_daemon_keeps_fresh_and_refreshes_an_edited_results_file(tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(REPO / "demo", root, ignore=shutil.ignore_patterns(".skill-slices"))
    env = os.environ.copy()
    out = subprocess.run(
        [_exe("skill-slices"), "run", "--project", str(root), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    home = load_project(root).dagster_home

    port = _free_port()
    log = tmp_path / "ui.log"
    started = time.time()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [_exe("skill-slices"), "ui", "--project", str(root), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the UI did not answer"
                time.sleep(1)

        # The CLI's runs are runs of named jobs the UI knows (so it can re-execute them).
        jobs = _graphql(
            port,
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }",
        )["repositoriesOrError"]["nodes"][0]["jobs"]
        cli_runs = _graphql(port, "{ runsOrError { ... on Runs { results { jobName } } } }")
        ran = {r["jobName"] for r in cli_runs["runsOrError"]["results"]}
        assert ran and ran <= {j["name"] for j in jobs} - {"__ASSET_JOB"}

        # Several ticks of both sensors: nothing fresh is re-materialized.
        time.sleep(4 * SENSOR_INTERVAL_S)
        assert _runs_after(home, started) == []

        # Edit one model's results file; the daemon refreshes it and its dependants.
        # The file holds one model's answers on every benchmark, so each of its benchmark
        # partitions is re-read; only the edited answer changes what the analysis reads.
        model = "gpt-4o"
        path = root / "results" / f"{model}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        rows[0]["correct"] = 1 - rows[0]["correct"]
        edited = time.time()
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        benchmarks = [b.name for b in load_project(root).registry.benchmarks]
        want = {("model_results", f"{b}|{model}") for b in benchmarks} | {
            (a, None) for a in RESULTS_DEPENDANTS
        }
        first_request = None
        deadline = time.monotonic() + 900
        while True:
            runs = _runs_after(home, edited)
            if runs and first_request is None:
                first_request = min(r.create_timestamp.timestamp() for r in runs) - edited
            done = runs and all(
                r.dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
                for r in runs
            )
            got = set(_materializations(home, edited))
            if done and got >= want:
                break
            assert time.monotonic() < deadline, f"not refreshed: {got}"
            time.sleep(3)
        time.sleep(2 * SENSOR_INTERVAL_S)  # and nothing more is requested after that
        runs = _runs_after(home, edited)
        assert all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in runs)
        mats = _materializations(home, edited)
        assert set(mats) == want
        assert len(mats) == len(want)  # each once
        print(f"first run requested {first_request:.0f} s after the edit")
        assert first_request is not None and first_request < 3 * SENSOR_INTERVAL_S + 30
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The webserver's and daemon's children exit after the parent; under load that can take
    # a few seconds, so the group gets up to 30 s before it counts as leaked.
    deadline = time.monotonic() + 30
    alive = True
    while alive and time.monotonic() < deadline:
        time.sleep(1)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            alive = False
    assert not alive, "a process of the UI outlived it"

    again = subprocess.run(
        [_exe("skill-slices"), "run", "--project", str(root), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["materialized"] == []
