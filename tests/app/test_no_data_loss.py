"""Commands never destroy a user's file: `evaluate` with a failing provider, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from skill_assets.app.cli import main
from skill_assets.core.atomic import atomic_path, write_text
from tests.fake_openai_server import FakeOpenAIServer

PREVIOUS = (
    b'{"benchmark":"qa","instance_id":"q1","model":"cand","correct":1.0}\n'
    b'{"benchmark":"qa","instance_id":"q2","model":"cand","correct":0.0}\n'
)


def _project(root: Path, model_yaml: str) -> Path:
    (root / "data").mkdir(parents=True)
    rows = [
        {"instance_id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}
        for i in range(1, 5)
    ]
    (root / "data" / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "results").mkdir()
    results = root / "results" / "cand.jsonl"
    results.write_bytes(PREVIOUS)
    (root / "skill-slices.yaml").write_text(
        "benchmarks:\n  - name: qa\n    path: data/qa.jsonl\nmodels:\n" + model_yaml
    )
    return results


def test_evaluate_with_failing_provider_keeps_results_file(tmp_path):
    root = tmp_path / "proj"
    with FakeOpenAIServer(lambda body: "4", faults=lambda body: "500") as srv:
        results = _project(
            root,
            f"""  - name: cand
    provider: openai-compatible
    model: candidate
    base_url: {srv.base_url}
    max_retries: 0
    results: results/cand.jsonl
""",
        )
        out = CliRunner().invoke(main, ["evaluate", "--project", str(root), "--model", "cand"])
        assert len(srv.requests) >= 4  # the calls really went out over HTTP and failed
    assert out.exit_code != 0, out.output
    assert "4 of 4 calls failed" in out.output and "not written" in out.output
    assert results.read_bytes() == PREVIOUS
    assert sorted(p.name for p in results.parent.iterdir()) == ["cand.jsonl"]  # no temp left


def test_evaluate_refuses_to_start_without_provider_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SKILL_SLICES_TEST_MISSING_KEY", raising=False)
    root = tmp_path / "proj"
    with FakeOpenAIServer(lambda body: "4") as srv:
        results = _project(
            root,
            f"""  - name: cand
    provider: openai
    model: candidate
    base_url: {srv.base_url}
    api_key_env: SKILL_SLICES_TEST_MISSING_KEY
    results: results/cand.jsonl
""",
        )
        out = CliRunner().invoke(main, ["evaluate", "--project", str(root), "--model", "cand"])
        assert srv.requests == []  # refused before any call
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SKILL_SLICES_TEST_MISSING_KEY" in lines[0], out.output
    assert results.read_bytes() == PREVIOUS


def test_evaluate_success_replaces_results_file(tmp_path):
    root = tmp_path / "proj"

    def answer(body):
        text = body["messages"][-1]["content"]
        text = text if isinstance(text, str) else text[0]["text"]
        n = int(text.split("What is ", 1)[1].split(" ", 1)[0])
        return str(2 * n)

    with FakeOpenAIServer(answer) as srv:
        results = _project(
            root,
            f"""  - name: cand
    provider: openai-compatible
    model: candidate
    base_url: {srv.base_url}
    results: results/cand.jsonl
""",
        )
        out = CliRunner().invoke(main, ["evaluate", "--project", str(root), "--model", "cand"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(ln) for ln in results.read_text().splitlines()]
    assert sorted(r["instance_id"] for r in rows) == ["q1", "q2", "q3", "q4"]
    assert all(r["correct"] == 1.0 for r in rows)


def test_atomic_path_keeps_target_when_writer_fails(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    os.chmod(target, 0o640)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    write_text(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640  # permissions survive the replace
