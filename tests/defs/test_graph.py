"""The real graph on a small project: real Dagster instance, Parquet, LanceDB, embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from skill_assets.app.runner import run_project
from skill_assets.core.registry import RegistryError, load_project
from skill_assets.core.store import read_asset
from tests.conftest import EXPECTED_ASSETS, write_project

REPO = Path(__file__).resolve().parents[2]
ALL = EXPECTED_ASSETS


@pytest.fixture(scope="module")
def ran_project(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("graph") / "proj")
    summary = run_project(root, progress=False)
    return root, summary


def test_full_run_materializes_every_asset(ran_project):
    root, summary = ran_project
    assert set(summary["materialized"]) | set(summary.get("skipped", {})) == ALL
    assert summary["llm_calls"]["made"] == 0
    r = summary["routing"]
    assert r["n"] == 120
    assert 0 <= r["best_single"] <= r["oracle"] <= 1
    assert r["metadata_router"] is not None
    project = load_project(root)
    slices = read_asset(project, "skill_slices")
    assert slices.height > 0 and set(slices["level"].unique().to_list()) >= {0, 1}
    # every non-root slice points at an existing slice one level up
    ids = dict(zip(slices["skill_id"].to_list(), slices["level"].to_list(), strict=True))
    for sid, parent, level in slices.select("skill_id", "parent_id", "level").iter_rows():
        if level > 0:
            assert parent in ids and ids[parent] == level - 1, sid
    acc = read_asset(project, "slice_accuracy")
    assert set(acc["model"].unique().to_list()) == {"alpha", "beta"}
    assert (acc["ci_low"] <= acc["accuracy"]).all() and (acc["accuracy"] <= acc["ci_high"]).all()
    # state stays inside the project
    assert (root / ".skill-slices" / "assets").is_dir()
    assert (root / ".skill-slices" / "lancedb").is_dir()
    assert (root / ".skill-slices" / "dagster" / "dagster.yaml").is_file()


def test_planted_difference_is_found(ran_project):
    """alpha is planted strong on arithmetic, beta on chemistry: both must surface."""
    root, _ = ran_project
    ins = read_asset(load_project(root), "skill_insights")
    assert ins.height > 0
    pair = ins.filter(pl.col("kind") == "pairwise").sort("q")
    assert pair.height > 0
    assert pair["q"][0] < 0.05
    assert {"insight_id", "effect", "n", "ci_low", "ci_high", "p", "q"} <= set(ins.columns)
    assert ins["insight_id"].n_unique() == ins.height


def test_insight_lineage_reachable_in_dagster_metadata(ran_project):
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    root, _ = ran_project
    project = load_project(root)
    instance = DagsterInstance.from_config(str(project.dagster_home))
    rec = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("skill_insights")), limit=1
    ).records[0]
    md = rec.asset_materialization.metadata["lineage"].value
    # the strata each finding was tested against: the benchmark and routing.metadata_column
    assert rec.asset_materialization.metadata["strata"].value == ["benchmark", "subject"]
    instance.dispose()
    from skill_assets.analysis.insights import ranked_findings

    top = ranked_findings(read_asset(project, "skill_insights"))
    assert f"skill-slices explain {top['insight_id'][0]}" in md
    assert "`bench/" in md  # sample instances with their spans


def test_explain_names_tests_and_every_models_answer(ran_project):
    root, _ = ran_project
    project = load_project(root)
    ins = read_asset(project, "skill_insights")
    # both tests named in columns whose name contains "test", and a level per finding
    assert {"test", "conditional_test", "level_of_finding"} <= set(ins.columns)
    assert set(ins["level_of_finding"].to_list()) <= {"skill", "category", "not significant"}
    row = ins.filter(pl.col("kind") == "strength").sort("q").row(0, named=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "skill_assets.app.cli", "explain", row["insight_id"]]
    out = subprocess.run(
        [*cmd, "--project", str(root), "--json", "--sample", "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    ex = json.loads(out.stdout)
    assert ex["finding"]["test"] == row["test"] and "sign test" in row["test"]
    assert "Mantel-Haenszel" in ex["finding"]["conditional_test"]
    slice_n = read_asset(project, "skill_slices").filter(pl.col("skill_id") == row["skill_id"])
    assert len(ex["instances"]) == 3
    assert ex["instances_left_out"] == slice_n["uids"][0].unique().len() - 3
    for inst in ex["instances"]:
        assert set(inst["answers"]) == {"alpha", "beta"}
        assert {a["outcome"] for a in inst["answers"].values()} <= {"right", "wrong", "unparsed"}
    text = subprocess.run(
        [*cmd, "--project", str(root)], capture_output=True, text=True, env=env
    ).stdout
    assert "marginal test: exact sign test" in text and "conditional test: Cochran" in text
    assert "answers: alpha=" in text and "not listed" in text


def test_second_run_materializes_nothing(ran_project):
    root, _ = ran_project
    again = run_project(root, progress=False)
    assert again["materialized"] == []
    assert again["llm_calls"]["made"] == 0


def test_adding_a_model_does_not_reannotate(ran_project):
    root, _ = ran_project
    res = root / "results" / "all.jsonl"
    rows = [json.loads(x) for x in res.read_text().splitlines()]
    extra = [dict(r, model="gamma") for r in rows if r["model"] == "alpha"]
    (root / "results" / "gamma.jsonl").write_text("\n".join(json.dumps(r) for r in extra) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "slices:", "  - name: gamma\n    results: results/gamma.jsonl\nslices:"
        )
    )
    summary = run_project(root, progress=False)
    assert "rationales" not in summary["materialized"]
    assert "skill_slices" not in summary["materialized"]
    assert "skill_embeddings" not in summary["materialized"]
    assert {"model_results", "slice_accuracy", "skill_insights", "routing_evaluation"} <= set(
        summary["materialized"]
    )
    acc = read_asset(load_project(root), "slice_accuracy")
    assert "gamma" in acc["model"].unique().to_list()


def test_editing_a_results_file_refreshes_only_its_dependants(ran_project):
    root, _ = ran_project
    path = root / "results" / "gamma.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["correct"] = 1 - rows[0]["correct"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = run_project(root, progress=False)
    # probe_consistency reads model_results too (here it records "skipped" again, no call).
    assert set(summary["materialized"]) | set(summary.get("skipped", {})) == {
        "probe_consistency",
        "model_results",
        "slice_accuracy",
        "skill_insights",
        "routing_policy",
        "routing_evaluation",
        "model_evolution",
        "dataset_view",
    }


def test_adding_a_benchmark_annotates_and_embeds_only_whats_new(ran_project):
    from dagster import AssetKey, DagsterInstance

    root, _ = ran_project
    new = [
        {
            "instance_id": f"bio-{i}",
            "question": f"Which organelle produces most of the ATP in a cell, case {i}?",
            "options": ["nucleus", "mitochondrion", "ribosome", "vacuole"],
            "answer": "B",
            "subject": "biology",
        }
        for i in range(8)
    ]
    (root / "data" / "bio.jsonl").write_text("\n".join(json.dumps(r) for r in new) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace("models:", "  - name: bio\n    path: data/bio.jsonl\nmodels:")
    )
    summary = run_project(root, progress=False)
    assert {"benchmark_instances", "rationales", "skill_mentions", "skill_embeddings"} <= set(
        summary["materialized"]
    )
    project = load_project(root)
    instance = DagsterInstance.from_config(str(project.dagster_home))
    # only the new benchmark's partition was annotated in this run
    from dagster import AssetRecordsFilter

    recs = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("rationales")), limit=100
    ).records
    parts = [r.partition_key for r in recs]
    assert parts.count("bench") == 1 and parts.count("bio") == 1
    emb = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("skill_embeddings")), limit=1
    ).records[0]
    md = emb.asset_materialization.metadata
    names = read_asset(project, "skill_embeddings")
    bench_names = set(
        pl.read_parquet(project.assets_dir / "skill_mentions" / "bench.parquet")["skill_name"]
    )
    assert md["newly_embedded"].value == len(set(names["skill_name"]) - bench_names)
    instance.dispose()


def test_bad_results_file_fails_cleanly_before_writing(tmp_path):
    root = write_project(tmp_path / "bad")
    (root / "results" / "all.jsonl").write_text(
        '{"instance_id": "nope", "model": "alpha", "correct": 1}\n'
    )
    with pytest.raises(RegistryError, match="unknown instance_id 'nope'"):
        run_project(root, progress=False)
    assert not (root / ".skill-slices" / "assets").exists()


def _cli(*args, cwd=REPO, env=None):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, env=env or os.environ.copy()
    )


def test_cli_error_is_one_line_and_nonzero(tmp_path):
    root = write_project(tmp_path / "p")
    (root / "skill-slices.yaml").write_text("benchmarks:\n  - name: b\n    path: nowhere.jsonl\n")
    out = _cli("run", "--project", str(root))
    assert out.returncode != 0
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "nowhere.jsonl" in lines[0] and "benchmarks[0].path" in lines[0]


def test_cli_insights_report_route(ran_project):
    root, _ = ran_project
    out = _cli("insights", "--project", str(root), "--json", "--all")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) > 0
    out = _cli("report", "--project", str(root))
    assert out.returncode == 0, out.stderr
    html = Path(out.stdout.strip()).read_text()
    assert "<img" in html and "data:image/png;base64" in html
    out = _cli("route", "What is 12 plus 30?", "--project", str(root), "--json")
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["model"] in {"alpha", "beta", "gamma"}


def test_definitions_validate():
    exe = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(exe), "definitions", "validate", "-f", "definitions.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
