"""The LLM rationale annotator inside the real graph, against a local HTTP server."""

from __future__ import annotations

import json
import shutil

import polars as pl

from skill_assets.app.runner import run_project
from skill_assets.core.registry import load_project
from skill_assets.core.store import read_asset
from tests.conftest import write_project
from tests.fake_openai_server import FakeOpenAIServer, last_user_text

# Recorded-style rationales per question family (what a strong annotator would return).
RECORDED = {
    "plus": [
        ["Mathematical reasoning", "Arithmetic", "Adding whole numbers"],
        ["Reading comprehension", "Identifying the quantity asked", "Locating the operands"],
    ],
    "moles": [
        ["Scientific knowledge", "Chemistry", "Stoichiometry", "Converting moles to grams"],
        ["Mathematical reasoning", "Arithmetic", "Multiplying whole numbers"],
    ],
    "capital": [["Everyday knowledge", "Geography", "Countries and capitals"]],
    "len(": [["Code reasoning", "Python semantics", "String repetition and length"]],
    "verb": [["Language", "Grammar", "Choosing verb tenses"]],
}


def responder(body: dict) -> dict:
    text = last_user_text(body)
    steps = next(v for k, v in RECORDED.items() if k in text)
    return {
        "steps": [
            {"skills": s, "evidence": f"the question mentions {k!s}", "conclusion": "done"}
            for k, s in zip(range(len(steps)), steps, strict=True)
        ],
        "answer": "C",
    }


def test_llm_annotator_through_http(tmp_path):
    with FakeOpenAIServer(responder=responder, faults=["500", None, "429"]) as srv:
        extra = ""
        root = write_project(tmp_path / "llm", extra_registry=extra)
        reg = root / "skill-slices.yaml"
        reg.write_text(
            reg.read_text().replace(
                "annotator:\n  provider: taxonomy\n",
                "annotator:\n  provider: openai-compatible\n  model: recorded-annotator\n"
                f"  base_url: {srv.base_url}\n  max_concurrency: 4\n",
            )
        )
        summary = run_project(root, progress=False)
        n = 120
        rows = [json.loads(x) for x in (root / "data" / "bench.jsonl").read_text().splitlines()]
        distinct = len({(r["question"], tuple(r["options"])) for r in rows})
        # identical questions are one call: the rest are served from the cache
        assert summary["llm_calls"]["made"] == distinct
        assert summary["llm_calls"]["made"] + summary["llm_calls"]["cached"] == n
        assert summary["llm_calls"]["by_purpose"]["annotate"]["made"] == distinct
        # two faults were injected and retried: distinct + 2 requests in all
        assert srv.count("/chat/completions") == distinct + 2
        # structured output went through tools (instructor), with our prompt's delimiters
        body = srv.requests[-1].body
        assert body.get("tools"), body.keys()
        project = load_project(root)
        rationales = pl.read_parquet(project.assets_dir / "rationales" / "bench.parquet")
        assert rationales["provenance"].unique().to_list() == ["llm"]
        assert rationales["error"].null_count() == n
        assert rationales["call_id"].null_count() == 0
        mentions = pl.read_parquet(project.assets_dir / "skill_mentions" / "bench.parquet")
        chem = mentions.filter(pl.col("uid") == "bench/chemistry-0").sort("step", "level")
        assert chem.filter(pl.col("step") == 0)["skill_name"].to_list() == RECORDED["moles"][0]
        assert chem.filter(pl.col("step") == 0)["level"].to_list() == [0, 1, 2, 3]
        slices = read_asset(project, "skill_slices")
        assert "Countries and capitals" in slices["name"].to_list()

        # Re-running pays nothing and changes nothing.
        again = run_project(root, progress=False)
        assert again["llm_calls"]["made"] == 0
        assert again["materialized"] == []
        assert srv.count("/chat/completions") == distinct + 2

        # Wiping the assets (not the call cache) re-annotates entirely from the cache.
        shutil.rmtree(project.assets_dir)
        shutil.rmtree(project.dagster_home)
        third = run_project(root, progress=False)
        assert third["llm_calls"]["made"] == 0
        assert third["llm_calls"]["cached"] == n
        assert srv.count("/chat/completions") == distinct + 2
        assert json.dumps(third)  # summary is JSON-serialisable

        # Lineage: an insight leads to its slice, instances, spans and the producing call.
        ins = read_asset(project, "skill_insights")
        iid = ins.sort("q", nulls_last=True)["insight_id"][0]
        out = _cli("explain", iid, "--project", str(root), "--json")
        assert out.returncode == 0, out.stderr
        ex = json.loads(out.stdout)
        assert ex["finding"]["insight_id"] == iid
        assert ex["slice"]["member_names"]
        first = ex["instances"][0]
        assert first["steps"] and first["steps"][0]["span"]
        assert first["call"]["provider"] == "openai-compatible"
        assert first["call"]["model"] == "recorded-annotator"
        text = _cli("explain", iid, "--project", str(root))
        assert "finding " + iid in text.stdout and "call " in text.stdout

        out = _cli("cache", "export", str(tmp_path / "calls.jsonl"), "--project", str(root))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["exported"] == distinct

    # The server is gone: a fresh copy of the project replays the recorded run offline.
    copy = tmp_path / "replay"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".skill-slices"))
    out = _cli("cache", "import", str(tmp_path / "calls.jsonl"), "--project", str(copy))
    assert json.loads(out.stdout)["imported"] == distinct
    replay = run_project(copy, progress=False)
    assert replay["llm_calls"]["made"] == 0
    assert replay["llm_calls"]["failed"] == 0
    a = read_asset(load_project(root), "skill_insights")
    b = read_asset(load_project(copy), "skill_insights")
    assert a.equals(b)


def _cli(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=os.environ.copy())
