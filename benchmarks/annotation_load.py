"""Offline annotation at scale: 200,000 short questions, time, peak memory and resume.

Generates N distinct short questions (arithmetic, units, geography, grammar, code,
chemistry templates with varying numbers and words), then:

1. **interrupted run**: a child process annotates them with the taxonomy annotator
   (real MiniLM, chunks of 4,096, vectors stored per chunk in a question-vector cache)
   and is killed with SIGKILL once `--kill-at` of the questions are done;
2. **resumed run**: a new child process annotates the same questions with the same cache
   and finishes; it embeds only what the first one had not stored;
3. **cold reference run** (`--cold`): a fresh cache, start to finish without interruption.

Each child prints the annotator's plain progress lines (what a non-interactive log shows);
the parent prints wall time, peak RSS (the child's ``ru_maxrss``), texts embedded and rate.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/annotation_load.py --instances 200000
    .venv/bin/python benchmarks/annotation_load.py --instances 20000 --cold   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TEMPLATES = [
    "What is {a} plus {b}?",
    "What is {a} times {b}?",
    "How many minutes are in {a} hours and {b} minutes?",
    "Convert {a} kilometres to metres.",
    "What is the capital city of {country}?",
    "Which word is the past tense of '{verb}'?",
    "What does the Python expression len('{word}' * {b}) evaluate to?",
    "How many moles are in {a} grams of water?",
    "{name} has {a} apples and gives away {b}. How many are left?",
    "What is the remainder when {a} is divided by {b}?",
]
COUNTRIES = ["France", "Peru", "Kenya", "Japan", "Canada", "Norway", "Chile", "Egypt", "India"]
VERBS = ["run", "swim", "write", "bring", "teach", "catch", "think", "sing", "build", "fly"]
WORDS = ["abc", "hello", "xyz", "data", "loop", "skill", "slice", "graph"]
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun"]


def questions(n: int, seed: int = 0) -> list[str]:
    """`n` distinct short questions (deterministic)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        t = rng.choice(TEMPLATES)
        q = t.format(
            a=rng.randint(2, 99_999),
            b=rng.randint(2, 999),
            country=rng.choice(COUNTRIES),
            verb=rng.choice(VERBS),
            word=rng.choice(WORDS),
            name=rng.choice(NAMES),
        )
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


CHILD = """
import json, resource, sys, time
import polars as pl
from skill_assets.resources.embedder import CountingEmbedder, Embedder
from skill_assets.resources.question_vectors import QuestionVectorCache
from skill_assets.core.schemas import INSTANCES, conform
from skill_assets.annotate.taxonomy import annotate_with_taxonomy

qfile, cache_dir, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
qs = json.load(open(qfile))
inst = conform(pl.DataFrame({
    "uid": [f"load/{i}" for i in range(len(qs))], "benchmark": "load",
    "instance_id": [str(i) for i in range(len(qs))], "question": qs,
    "answer": "", "metadata": "{}"}), INSTANCES)
emb = CountingEmbedder(Embedder())
t0 = time.perf_counter()
r, m = annotate_with_taxonomy(inst, emb, cache=QuestionVectorCache(cache_dir), chunk_size=chunk,
    log=lambda s: print(time.strftime("%H:%M:%S"), s, flush=True))
print("RESULT", json.dumps({"seconds": time.perf_counter() - t0, "embedded": emb.texts,
    "rationales": r.height, "mentions": m.height,
    "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}), flush=True)
"""


def run_child(qfile: Path, cache: Path, chunk: int, kill_at: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(qfile), str(cache), str(chunk)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    result: dict = {"killed": False}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT"):
            result.update(json.loads(line.split(" ", 1)[1]))
            continue
        print("   ", line.rstrip(), flush=True)
        if kill_at is not None and "instances (" in line:
            done = int(line.split("taxonomy annotator: ")[1].split("/")[0])
            if done >= kill_at:
                proc.send_signal(signal.SIGKILL)
                result["killed"] = True
                result["done_when_killed"] = done
                break
    proc.wait()
    result["wall"] = time.perf_counter() - t0
    result["child_peak_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=200_000)
    ap.add_argument("--kill-at", type=float, default=0.3, help="share done when killed")
    ap.add_argument("--chunk", type=int, default=4096, help="annotator chunk size")
    ap.add_argument("--cold", action="store_true", help="also a cold uninterrupted run")
    args = ap.parse_args()
    n = args.instances
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        qfile = tmp / "questions.json"
        qfile.write_text(json.dumps(questions(n)))
        print(
            f"{n} distinct short questions; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"1. interrupted run (SIGKILL at {args.kill_at:.0%})")
        a = run_child(qfile, tmp / "cache", args.chunk, kill_at=int(n * args.kill_at))
        print(f"   killed after {a.get('done_when_killed')} instances, {a['wall']:.1f} s")
        print("2. resumed run (new process, same cache)")
        b = run_child(qfile, tmp / "cache", args.chunk)
        print(
            f"   {b['seconds']:.1f} s, {b['embedded']} texts embedded "
            f"(of {n}), peak RSS {b['peak_gib']:.2f} GiB"
        )
        if args.cold:
            print("3. cold run (fresh cache, uninterrupted)")
            c = run_child(qfile, tmp / "cold", args.chunk)
            print(
                f"   {c['seconds']:.1f} s ({n / c['seconds']:.0f} questions/s), "
                f"{c['embedded']} embedded, peak RSS {c['peak_gib']:.2f} GiB, "
                f"{c['mentions']} mentions"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
