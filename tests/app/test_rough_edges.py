"""CLI and report rough edges (issue 18 item 8): ports, exports, number formats, ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from skill_assets.app.cli import main
from skill_assets.present import plots
from skill_assets.present.report import _fmt, _numbered, _shown, _table
from tests.conftest import write_project

REPO = Path(__file__).resolve().parents[2]


def test_ui_with_a_busy_port_exits_with_one_line(tmp_path):
    root = write_project(tmp_path / "proj")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        exe = Path(sys.executable).parent / "skill-slices"
        out = subprocess.run(
            [str(exe), "ui", "--project", str(root), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ.copy(),
        )
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is not available" in lines[0], out.stderr
    assert not list(root.glob(".tmp_dagster_home_*"))


def test_cache_export_names_the_absolute_path_and_says_it_replaced(tmp_path, monkeypatch):
    root = write_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(main, ["cache", "export", "calls.jsonl", "--project", str(root)])
    assert first.exit_code == 0, first.output
    rec = json.loads(first.stdout.strip().splitlines()[-1])
    assert rec["path"] == str(tmp_path / "calls.jsonl") and rec["replaced"] is False
    again = CliRunner().invoke(main, ["cache", "export", "calls.jsonl", "--project", str(root)])
    assert json.loads(again.stdout.strip().splitlines()[-1])["replaced"] is True
    assert "replaced the previous" in again.stderr


def test_report_formats_counts_drops_zero_effects_and_numbers_ranks():
    assert _fmt(99.0, "n_correct") == "99" and _fmt(99.5, "n_correct") == "99.500"
    assert _fmt(0.5, "accuracy") == "0.500"
    findings = pl.DataFrame(
        {
            "rank": [1, 1, 2, 3],  # the asset's rank runs per model
            "model": ["a", "b", "a", "b"],
            "kind": ["strength", "weakness", "weakness", "pairwise"],
            "effect": [0.2, -0.1, -2.78e-17, 0.0],
            "n": [10.0, 12.0, 9.0, 8.0],
        }
    )
    shown = _numbered(_shown(findings))
    assert shown["effect"].to_list() == [0.2, -0.1]
    assert shown["rank"].to_list() == [1, 2]
    table = _table(shown, ["rank", "model", "n", "effect"])
    assert table.rows == [["1", "a", "10", "0.200"], ["2", "b", "12", "-0.100"]]
    assert plots.MIN_SHOWN_EFFECT > 2.78e-17


def test_gitignore_covers_files_commands_leave_behind():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "calls.jsonl" in ignored
    assert any(ln.startswith(".tmp_dagster_home_") for ln in ignored)
