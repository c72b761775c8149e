"""Beyond one machine: the same Definitions on PostgreSQL storage and the multiprocess executor.

A real PostgreSQL server (Debian's `postgresql` package, installed by `make test` when
missing) is started on 127.0.0.1 inside the test; the instance keeps runs, events and
schedules there (dagster-postgres). `skill-slices run --executor multiprocess` then runs the
graph on a two-benchmark project: each step in its own process, the two benchmark
partitions side by side.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from skill_assets.app.runner import run_project
from skill_assets.core.registry import load_project
from tests.conftest import EXPECTED_ASSETS, write_project


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    """A PostgreSQL server on 127.0.0.1 for this test only; yields its port."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL server not installed (make test installs Debian's postgresql)")
    pytest.importorskip("dagster_postgres", reason="dagster-postgres not installed (dev extra)")
    # Outside pytest's folders (mode 0700, owned by the test's user): the server's user must
    # reach its data folder.
    base = Path(tempfile.mkdtemp(prefix="skill-slices-pg-"))
    data = base / "data"
    sock = base / "sock"
    data.mkdir()
    sock.mkdir()
    # initdb refuses to run as root: run the server as the package's `postgres` user.
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        for p in (base, data, sock):
            shutil.chown(p, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def pg_run(*args):
        return subprocess.run(prefix + list(args), check=True, capture_output=True, text=True)

    pg_run(str(pg / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    log = base / "pg.log"
    pg_run(str(pg / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "start")
    try:
        pg_run(
            str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"
        )
        yield port
    finally:
        subprocess.run(
            prefix + [str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def _postgres_instance_config(path: Path, port: int) -> Path:
    text = f"""storage:
  postgres:
    postgres_db:
      username: postgres
      password: ""
      hostname: 127.0.0.1
      db_name: dagster
      port: {port}
      # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, whose server-side binding
      # breaks dagster-postgres' `NOTIFY run_events, %s`; psycopg2 is what it is built on.
      scheme: postgresql+psycopg2
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir:
      env: SKILL_SLICES_DAGSTER_HOME
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1
"""
    path.write_text(text)
    return path


@pytest.mark.timeout(2400)  # a cold run with a process per step; slow on a loaded 2-core box
def test_graph_on_postgres_with_multiprocess_executor(postgres, tmp_path, monkeypatch):
    import psycopg2

    root = write_project(tmp_path / "proj", n_per_subject=8)
    rows = [
        {
            "instance_id": f"bio-{i}",
            "question": f"Which organelle produces most of the ATP in a cell, case {i}?",
            "options": ["nucleus", "mitochondrion", "ribosome", "vacuole"],
            "answer": "B",
            "subject": "biology",
        }
        for i in range(8)
    ]
    (root / "data" / "bio.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace("models:", "  - name: bio\n    path: data/bio.jsonl\nmodels:", 1)
    )
    config = _postgres_instance_config(tmp_path / "dagster-postgres.yaml", postgres)
    monkeypatch.setenv("SKILL_SLICES_INSTANCE_CONFIG", str(config))

    summary = run_project(root, progress=False, executor="multiprocess")
    # the validation assets record "skipped" (no verifier configured)
    assert set(summary["materialized"]) | set(summary.get("skipped", {})) == EXPECTED_ASSETS
    assert {r["partition"] for r in summary["runs"] if r["job"] == "benchmark_job"} == {
        "bench",
        "bio",
    }

    # Runs, events and the instance's schedule tables are in PostgreSQL, not under the project.
    conn = psycopg2.connect(host="127.0.0.1", port=postgres, user="postgres", dbname="dagster")
    try:
        cur = conn.cursor()
        cur.execute("SELECT run_id, status FROM runs")
        stored = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_START'")
        step_starts = cur.fetchone()[0]
        cur.execute("SELECT to_regclass('public.jobs') IS NOT NULL")
        has_schedule_tables = cur.fetchone()[0]
    finally:
        conn.close()
    assert {r["run_id"] for r in summary["runs"]} <= set(stored)
    assert set(stored.values()) == {"SUCCESS"}
    assert step_starts >= len(EXPECTED_ASSETS) - 1  # rationales+mentions are one step
    assert has_schedule_tables
    home = load_project(root).dagster_home
    assert not (home / "history" / "runs.db").exists()

    # The two benchmark partitions ran side by side: their runs overlap in time.
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(str(home))
    try:
        spans = []
        for r in summary["runs"]:
            if r["job"] == "benchmark_job":
                rec = instance.get_run_record_by_id(r["run_id"])
                spans.append((rec.start_time, rec.end_time))
        # each step ran in a process of its own
        pids = {
            e.dagster_event.pid
            for r in summary["runs"]
            for e in instance.all_logs(r["run_id"])
            if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_START"
        }
    finally:
        instance.dispose()
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 < a1, f"benchmark runs did not overlap: {spans}"
    assert len(pids) > 2

    again = run_project(root, progress=False, executor="multiprocess")
    assert again["materialized"] == []
