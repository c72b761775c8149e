"""Each question is embedded at most once per embedder; node vectors and progress persist.

Real MiniLM, real Parquet cache, real `skill-slices` processes. Embedding work is counted
by `CountingEmbedder` (in-process) or its audit file (across processes), not by patching.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from skill_assets.annotate.taxonomy import (
    annotate_with_taxonomy,
    instance_text,
    load_taxonomy,
    node_text,
)
from skill_assets.core.schemas import INSTANCES, conform
from skill_assets.ingest.instances import load_instances
from skill_assets.resources.embedder import AUDIT_ENV, CountingEmbedder, Embedder
from skill_assets.resources.question_vectors import QuestionVectorCache, question_vectors, text_key
from tests.conftest import write_project

REPO = Path(__file__).resolve().parents[2]


def _cli(*args, env):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


def _audit(path: Path) -> Counter:
    keys: Counter = Counter()
    for line in path.read_text().splitlines():
        keys.update(json.loads(line)["keys"])
    return keys


def _instances(n: int, prefix: str = "q") -> pl.DataFrame:
    rows = [
        {
            "uid": f"b/{prefix}{i}",
            "benchmark": "b",
            "instance_id": f"{prefix}{i}",
            "question": f"A farmer has {i + 3} cows and buys {2 * i + 1} more. How many now?",
            "answer": "",
            "metadata": "{}",
        }
        for i in range(n)
    ]
    return conform(pl.DataFrame(rows), INSTANCES)


def test_cache_round_trip_and_compaction(tmp_path):
    cache = QuestionVectorCache(tmp_path / "qv")
    emb = CountingEmbedder(Embedder())
    texts = ["What is 2 + 2?", "Name the capital of France.", "What is 2 + 2?"]
    v1 = cache.vectors(texts, emb)
    assert v1.shape == (3, 384) and emb.texts == 2  # the repeated text once
    assert np.allclose(v1[0], v1[2])
    v2 = QuestionVectorCache(tmp_path / "qv").vectors(texts[:2], emb)  # a fresh reader
    assert emb.texts == 2 and np.array_equal(v1[:2], v2)
    cache.vectors(["Third question?"], emb)
    folder = cache.folder(emb.name)
    assert len(list(folder.glob("part-*.parquet"))) == 2
    cache.compact(emb.name)
    assert len(list(folder.glob("part-*.parquet"))) == 1
    v3 = QuestionVectorCache(tmp_path / "qv").vectors([*texts, "Third question?"], emb)
    assert emb.texts == 3 and np.array_equal(v3[:3], v1)
    assert cache.missing(["new one", "Third question?"], emb.name) == ["new one"]


def test_annotator_and_knn_share_vectors_and_node_vectors_persist(tmp_path):
    inst = _instances(40)
    cache = QuestionVectorCache(tmp_path / "qv")
    emb = CountingEmbedder(Embedder())
    tax = load_taxonomy()
    annotate_with_taxonomy(inst, emb, cache=cache)
    q_keys = [text_key(instance_text(q, None)) for q in inst["question"].to_list()]
    assert all(emb.per_text[k] == 1 for k in q_keys)
    # the kNN baseline's vectors come from the cache: nothing embedded again
    before = emb.texts
    mat, uids = question_vectors(inst, emb, cache)
    assert emb.texts == before and mat.shape == (40, 384) and uids == inst["uid"].to_list()
    assert all(emb.per_text[k] == 1 for k in q_keys)
    # node vectors are on disk for this taxonomy version and embedder
    assert list(cache.folder(emb.name).glob(f"nodes-{tax.version}-*.npy"))
    node_keys = {text_key(node_text(n)) for n in tax.nodes}
    assert sum(emb.per_text[k] for k in node_keys) <= len(node_keys)


SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys
    import polars as pl
    from skill_assets.resources.embedder import CountingEmbedder, Embedder
    from skill_assets.resources.question_vectors import QuestionVectorCache
    from skill_assets.core.schemas import INSTANCES, conform
    from skill_assets.annotate.taxonomy import annotate_with_taxonomy

    n, chunk, cache_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rows = [
        {"uid": f"b/q{i}", "benchmark": "b", "instance_id": f"q{i}",
         "question": f"A farmer has {i + 3} cows and buys {2 * i + 1} more. How many now?",
         "answer": "", "metadata": "{}"}
        for i in range(n)
    ]
    emb = CountingEmbedder(Embedder())
    annotate_with_taxonomy(
        conform(pl.DataFrame(rows), INSTANCES), emb, cache=QuestionVectorCache(cache_dir),
        chunk_size=chunk, prior_weight=0.0, log=lambda m: print(m, flush=True),
    )
    print("TEXTS", emb.texts, flush=True)
    """
)


def _second_process(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SECOND_PROCESS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_interrupted_annotation_resumes_and_second_process_reuses_node_vectors(tmp_path):
    cache_dir = tmp_path / "qv"
    n, chunk = 60, 10
    proc = _second_process([str(n), str(chunk), str(cache_dir)])
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f"{chunk}/{n} instances" in line:  # one chunk stored: kill it mid-run
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert any("instances/s" in x for x in lines), lines  # plain progress lines
    stored = QuestionVectorCache(cache_dir)
    texts = [instance_text(q, None) for q in _instances(n)["question"].to_list()]
    missing = stored.missing(texts, Embedder().name)
    assert chunk <= n - len(missing) < n
    # a new process finishes the job: it embeds only what is missing, and not the nodes
    proc = _second_process([str(n), str(chunk), str(cache_dir)])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    embedded = int(out.split("TEXTS")[-1])
    assert embedded == len(missing), out
    assert f"{n}/{n} instances (100%)" in out


def test_cold_run_embeds_each_question_once_and_route_is_cold_fast(tmp_path):
    root = write_project(tmp_path / "p", n_per_subject=8)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), AUDIT_ENV: str(audit)}
    out = _cli("run", "--project", str(root), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    keys = _audit(audit)
    inst = load_instances(root / "data" / "bench.jsonl", "bench")
    q_keys = {
        text_key(instance_text(q, o))
        for q, o in zip(inst["question"].to_list(), inst["options"].to_list(), strict=True)
    }
    # annotator and kNN routing baseline together: each question exactly once
    assert {keys[k] for k in q_keys} == {1}
    node_keys = {text_key(node_text(n)) for n in load_taxonomy().nodes}
    assert max(keys[k] for k in node_keys) == 1

    audit2 = tmp_path / "audit_route.jsonl"
    out = _cli(
        "route",
        "What is 17 × 23?",
        "--project",
        str(root),
        "--json",
        env={**env, AUDIT_ENV: str(audit2), "PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # a new process: only the question is embedded, the 782 node vectors come from disk
    assert sum(_audit(audit2).values()) == 1
    # ... through the ONNX export the run left behind: neither torch, sentence-transformers,
    # Dagster nor LanceDB is imported (they are most of a cold start)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    for heavy in ("torch", "sentence_transformers", "dagster", "lancedb"):
        assert heavy not in imported, heavy
    assert "onnxruntime" in imported
    skills = {s["skill_name"] for s in json.loads(out.stdout)["annotated_skills"]}
    assert "arithmetic" in skills, skills


@pytest.mark.parametrize(
    "question", ["What is 17 × 23?", "What is 17 * 23?", "Compute 17 times 23."]
)
def test_readme_example_routes_to_multiplication(question):
    inst = conform(
        pl.DataFrame(
            [{"uid": "q/0", "benchmark": "query", "instance_id": "0", "question": question}]
        ),
        INSTANCES,
    )
    _, m = annotate_with_taxonomy(inst, Embedder())
    first = m.filter(pl.col("step") == 0).sort("level")["skill_name"].to_list()
    assert first[:2] == ["Mathematical reasoning", "arithmetic"], first
    assert any("multipl" in s for s in first), first
