"""Downstream load: 50,000 instances × 10 models with annotations already made.

Builds synthetic skill mentions (a 4-level hierarchy of skill names with
paraphrased variants, 3 steps per instance) and per-instance results whose
accuracy depends on the skills, then times the whole downstream chain that the
assets run — embedding the distinct names (real MiniLM), slices, the accuracy
matrix, insights, the routing policy and its held-out evaluation — and prints
wall time and peak memory of each stage.

    .venv/bin/python benchmarks/load.py --instances 50000 --models 10
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skill_assets.analysis.accuracy import slice_accuracy  # noqa: E402
from skill_assets.analysis.insights import skill_insights  # noqa: E402
from skill_assets.analysis.slices import build_slices, default_threshold  # noqa: E402
from skill_assets.core.schemas import INSTANCES, RESULTS, conform  # noqa: E402
from skill_assets.resources.embedder import Embedder  # noqa: E402
from skill_assets.routing.evaluation import evaluate_routing  # noqa: E402
from skill_assets.routing.policy import fit_policy  # noqa: E402

AREAS = ["algebra", "geometry", "chemistry", "physics", "biology", "history", "law", "economics"]
VARIANTS = ["{}", "applying {}", "{} problems", "solving {} questions"]


def synth(n: int, n_models: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = []
    for a in AREAS:
        for b in range(12):
            for c in range(8):
                names.append((a, f"{a} topic {b}", f"{a} topic {b} method {c}"))
    leaf = rng.integers(0, len(names), size=(n, 3))
    rows = []
    for i in range(n):
        uid = f"load/{i}"
        for step in range(3):
            path = names[leaf[i, step]]
            for level, name in enumerate(("Knowledge",) + path):
                v = VARIANTS[rng.integers(0, len(VARIANTS))] if level == 3 else "{}"
                rows.append((uid, "load", step, level, v.format(name), "synthetic", "taxonomy"))
    mentions = pl.DataFrame(
        rows,
        schema=["uid", "benchmark", "step", "level", "skill_name", "span", "provenance"],
        orient="row",
    )
    skill_of = leaf[:, 0] % 96
    ability = rng.uniform(0.3, 0.9, size=(n_models, 96))
    p = ability[:, skill_of]
    correct = (rng.random(p.shape) < p).astype(float)
    uids = [f"load/{i}" for i in range(n)]
    results = pl.concat(
        [
            pl.DataFrame(
                {
                    "uid": uids,
                    "benchmark": "load",
                    "instance_id": [str(i) for i in range(n)],
                    "model": f"model-{m}",
                    "correct": correct[m],
                }
            )
            for m in range(n_models)
        ]
    )
    instances = pl.DataFrame(
        {
            "uid": uids,
            "benchmark": "load",
            "instance_id": [str(i) for i in range(n)],
            "question": "q",
            "answer": "A",
            "metadata": [json.dumps({"area": names[leaf[i, 0]][0]}) for i in range(n)],
        }
    )
    return mentions, conform(results, RESULTS), conform(instances, INSTANCES)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=50_000)
    ap.add_argument("--models", type=int, default=10)
    args = ap.parse_args()
    timings = []

    def stage(name, fn):
        t0 = time.perf_counter()
        out = fn()
        timings.append((name, time.perf_counter() - t0, peak_gib()))
        print(f"{name:<22} {timings[-1][1]:8.1f} s   peak {timings[-1][2]:.2f} GiB", flush=True)
        return out

    mentions, results, instances = stage("synthesise", lambda: synth(args.instances, args.models))
    embedder = Embedder()
    distinct = mentions["skill_name"].unique().sort().to_list()
    vecs = stage("embed names", lambda: embedder.encode(distinct))
    t_start = time.perf_counter()
    slices, _ = stage(
        "skill_slices",
        lambda: build_slices(
            mentions, dict(zip(distinct, vecs, strict=True)), default_threshold(embedder.name)
        ),
    )
    acc = stage("slice_accuracy", lambda: slice_accuracy(results, slices, min_slice_size=100))
    ins = stage("skill_insights", lambda: skill_insights(results, slices, min_slice_size=100))
    stage("routing_policy", lambda: fit_policy(results, slices, min_slice_size=100))
    ev = stage(
        "routing_evaluation",
        lambda: evaluate_routing(results, slices, instances, min_slice_size=100, n_boot=200),
    )
    total = time.perf_counter() - t_start
    print(
        f"\n{args.instances} instances × {args.models} models: {slices.height} slices, "
        f"{acc.height} accuracy rows, {ins.height} findings, {ev.height} routing rows"
    )
    print(
        f"downstream total (slices → routing evaluation): {total:.1f} s; peak {peak_gib():.2f} GiB"
    )
    print("targets: < 300 s and < 6 GiB on 2 cores")


if __name__ == "__main__":
    main()
