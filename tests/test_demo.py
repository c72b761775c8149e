"""The bundled demo project, end to end through the CLI, as `make demo` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXPECTED_ASSETS

REPO = Path(__file__).resolve().parents[1]
ASSETS = EXPECTED_ASSETS


def _cli(*args):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ.copy())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(REPO / "demo", root, ignore=shutil.ignore_patterns(".skill-slices"))
    out = _cli("run", "--project", str(root))
    assert out.returncode == 0, out.stderr[-3000:]
    return root, out.stdout


def test_demo_run_prints_headline_and_json_summary(demo):
    root, stdout = demo
    lines = stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary["materialized"]) | set(summary.get("skipped", {})) == ASSETS
    assert summary["llm_calls"]["made"] == 0
    r = summary["routing"]
    assert r["n"] == 392
    for key in ("policy", "best_single", "metadata_router", "oracle"):
        assert 0.0 <= r[key] <= 1.0
    assert r["oracle"] >= max(r["policy"], r["best_single"], r["metadata_router"])
    assert "== routing (held-out accuracy) ==" in stdout
    assert "== headline insights ==" in stdout
    # The demo's slices come from the taxonomy: distinct skills, no near-duplicate names.
    assert "skill_slices:cluster_names_deduplicated" not in summary.get("checks_failed", {})


def test_demo_models_are_the_three_local_systems(demo):
    import polars as pl

    root, _ = demo
    acc = pl.read_parquet(root / ".skill-slices" / "assets" / "slice_accuracy.parquet")
    assert set(acc["model"].unique().to_list()) == {
        "smollm2-135m-zero-shot",
        "smollm2-135m-cot",
        "gemma3-270m-few-shot",
    }


def test_explain_a_real_demo_insight(demo):
    import polars as pl

    root, _ = demo
    ins = pl.read_parquet(root / ".skill-slices" / "assets" / "skill_insights.parquet")
    iid = ins.sort("q", nulls_last=True)["insight_id"][0]
    out = _cli("explain", iid, "--project", str(root), "--json")
    assert out.returncode == 0, out.stderr
    ex = json.loads(out.stdout)
    assert ex["finding"]["insight_id"] == iid
    inst = ex["instances"][0]
    assert inst["provenance"] == "taxonomy" and inst["steps"]
    assert inst["annotator_model"].startswith("taxonomy:")


def test_second_demo_run_is_free(demo):
    root, _ = demo
    out = _cli("run", "--project", str(root), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["materialized"] == [] and summary["llm_calls"]["made"] == 0
