"""Several OS processes on one project's state at once: nothing lost, nothing corrupted.

(a) the SQLite call cache (``skill_assets/resources/call_cache.py``): processes created on a file that
    does not exist yet write many records (the same keys too, with and without
    ``replace``), failures, and a bulk JSONL import, while reading each other's rows;
(b) the LanceDB skill-vector table (``skill_assets/resources/vector_store.py``): processes embed
    overlapping name sets into one folder that has no table yet.

Whole-run exclusion (two ``skill-slices run`` on one project) is ``project_lock`` in
``skill_assets/app/runner.py``, tested in ``tests/app/test_project_lock.py``; these tests cover the
shared stores themselves, which other entry points (CLI cache import, UI runs, notebooks)
reach without that lock.

Workers are started with the ``spawn`` method (fresh interpreters, no inherited
connections) and released together by a barrier so their writes really overlap.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from skill_assets.resources.call_cache import CallCache, CallRecord, Usage  # noqa: E402

N_PROCS = 3
N_KEYS = 150  # unique keys per process; as many shared keys written by every process
DIM = 8


def _record(call_id: str, writer: str, i: int, error: str | None = None) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        provider="openai-compatible",
        model="m",
        purpose="annotate",
        prompt_hash=hashlib.sha256(call_id.encode()).hexdigest(),
        request={"messages": [{"role": "user", "content": f"q{i}"}], "params": {}},
        response_text=None if error else json.dumps({"writer": writer, "i": i}),
        parsed_json=None if error else {"writer": writer, "i": i},
        usage=Usage(input_tokens=i, output_tokens=1),
        latency_s=0.01,
        attempts=1,
        error=error,
    )


# -- (a) call cache ---------------------------------------------------------------------------
def _cache_worker(path: str, writer: str, barrier, jsonl: str | None, out) -> None:
    barrier.wait(timeout=60)
    try:
        cache = CallCache(path)  # the file may not exist yet: creation races too
        seen_shared = imported = 0
        for i in range(N_KEYS):
            if jsonl and i == N_KEYS // 3:
                imported = cache.import_jsonl(jsonl)
            assert cache.put(_record(f"{writer}-{i}", writer, i)) is True
            # every process writes the same shared keys, half of them with replace
            cache.put(_record(f"shared-{i}", writer, i), replace=i % 2 == 0)
            if i % 10 == 0:
                cache.put(_record(f"failed-{writer}-{i}", writer, i, error="Timeout: x"))
            # read what the others wrote so far: a row is either absent or whole
            for other in range(N_PROCS):
                rec = cache.get(f"w{other}-{i // 2}")
                if rec is not None:
                    assert rec.parsed_json == {"writer": f"w{other}", "i": i // 2}
            shared = cache.get(f"shared-{i}")
            assert shared is not None and shared.parsed_json["i"] == i
            seen_shared += 1
        cache.close()
        out.put((writer, "ok", seen_shared, imported))
    except BaseException as exc:  # report, do not hang the parent
        out.put((writer, "error", repr(exc), 0))


def _run_workers(target, args_of) -> list:
    """Start N_PROCS spawned processes released together by a barrier; return their
    reports once every one has exited cleanly and reported "ok"."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=args_of(w, barrier, out)) for w in range(N_PROCS)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(r[1] == "ok" for r in reports), reports
    return reports


def test_processes_share_one_call_cache(tmp_path):
    path = tmp_path / "state" / "llm_calls.sqlite"  # neither folder nor file exists yet
    # a bulk import (one long transaction) competes with the per-call writes
    source = CallCache(tmp_path / "source.sqlite")
    for i in range(400):
        source.put(_record(f"imported-{i}", "import", i))
    for i in range(N_KEYS):  # keys the workers also write: first writer wins, no duplicate
        source.put(_record(f"shared-{i}", "import", i))
    jsonl = tmp_path / "export.jsonl"
    assert source.export_jsonl(jsonl) == 400 + N_KEYS
    source.close()

    reports = _run_workers(
        _cache_worker,
        lambda w, barrier, out: (
            str(path),
            f"w{w}",
            barrier,
            str(jsonl) if w == 0 else None,
            out,
        ),
    )
    assert sum(r[3] for r in reports) >= 400  # the import added at least its own keys

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        n_rows, n_keys = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT call_id) FROM calls"
        ).fetchone()
        assert n_rows == n_keys
    cache = CallCache(path)
    records = {r.call_id: r for r in cache.iter_records()}  # every row parses
    expected = (
        {f"w{w}-{i}" for w in range(N_PROCS) for i in range(N_KEYS)}
        | {f"shared-{i}" for i in range(N_KEYS)}
        | {f"imported-{i}" for i in range(400)}
    )
    assert set(records) == expected and len(cache) == len(expected)
    for w in range(N_PROCS):
        for i in range(N_KEYS):
            assert records[f"w{w}-{i}"].parsed_json == {"writer": f"w{w}", "i": i}
    for i in range(N_KEYS):
        assert records[f"shared-{i}"].parsed_json["i"] == i
    failures = cache.failures()
    assert len(failures) == N_PROCS * len(range(0, N_KEYS, 10))
    assert all(f.error == "Timeout: x" for f in failures)
    cache.close()


# -- (b) LanceDB skill vectors ----------------------------------------------------------------
class HashEmbedder:
    """Deterministic stand-in for the sentence embedder (same interface, no model)."""

    name = "hash-embedder"
    dim = DIM

    def __init__(self, calls=None):
        self.calls = calls

    def encode(self, names, progress=False):
        return np.asarray([_vec(n) for n in names], dtype=np.float32)


def _vec(name: str) -> np.ndarray:
    digest = hashlib.sha256(name.encode()).digest()
    v = np.frombuffer(digest[:DIM], dtype=np.uint8).astype(np.float32) - 127.5
    return v / np.linalg.norm(v)


def _names(worker: int, round_: int) -> list[str]:
    # half of each round is shared by all workers, half is the worker's own
    shared = [f"shared skill {round_}-{k}" for k in range(20)]
    own = [f"skill of worker {worker} {round_}-{k}" for k in range(20)]
    return shared + own


def _vector_worker(path: str, worker: int, rounds: int, barrier, out) -> None:
    import lancedb  # noqa: F401  (imported before the barrier, so the writes overlap)

    from skill_assets.resources.vector_store import SkillVectorStore

    barrier.wait(timeout=60)
    try:
        embedded = 0
        for r in range(rounds):
            store = SkillVectorStore(Path(path))  # the table may not exist yet
            names = _names(worker, r)
            vecs, new = store.vectors_for(names, HashEmbedder())
            embedded += new
            assert vecs.shape == (len(names), DIM)
            for name, v in zip(names, vecs, strict=True):
                assert np.allclose(v, _vec(name), atol=1e-6), name
        out.put((worker, "ok", embedded))
    except BaseException as exc:
        out.put((worker, "error", repr(exc)))


def test_processes_share_one_lancedb_table(tmp_path):
    import lancedb

    from skill_assets.resources.vector_store import TABLE, SkillVectorStore

    path = tmp_path / "lancedb"
    rounds = 12
    reports = _run_workers(
        _vector_worker, lambda w, barrier, out: (str(path), w, rounds, barrier, out)
    )

    expected = {n for w in range(N_PROCS) for r in range(rounds) for n in _names(w, r)}
    # every distinct name was embedded exactly once across all processes
    assert sum(r[2] for r in reports) == len(expected)

    table = lancedb.connect(str(path)).open_table(TABLE)
    rows = table.to_arrow().to_pydict()
    assert table.count_rows() == len(expected) == len(rows["name"])
    assert set(rows["name"]) == expected and set(rows["embedder"]) == {HashEmbedder.name}
    for name, vec in zip(rows["name"], rows["vector"], strict=True):
        assert np.allclose(vec, _vec(name), atol=1e-6)

    # and the store still works as usual afterwards: nothing new to embed, search answers
    store = SkillVectorStore(path)
    names = sorted(expected)
    vecs, new = store.vectors_for(names, HashEmbedder())
    assert new == 0 and vecs.shape == (len(names), DIM)
    hits = store.search(_vec(names[0]), HashEmbedder.name, k=3)
    assert hits[0][0] == names[0]
