"""Benchmark: our skill-name clustering against the paper's method on planted data.

Planted data: skills ("groups") of paraphrase-like unit vectors in 384 dimensions
around known centres; groups belong to families of related skills; group sizes
are heavy-tailed (Zipf, capped). The generator's parameters were set so that
its cosine distributions match what all-MiniLM-L6-v2 gives on the hand-written
skill names of benchmarks/calibrate_threshold.py:

    cosine percentiles 5/25/50/75/95   planted                       MiniLM
    same skill                         0.49 0.64 0.80 0.91 0.97      0.43 0.64 0.78 0.88 0.96
    different skill, same family       0.06 0.20 0.31 0.42 0.58      0.05 0.15 0.23 0.34 0.56
    nearest other-skill name (50/95)   0.49 0.76                     0.57 0.79

Each (size, method, repeat) runs in its own subprocess, which generates the
data, then times `cluster_skill_names` alone: wall time, CPU time (user+sys of
the process during the call), peak resident memory of the whole process
(`ru_maxrss`: interpreter, data and clustering) and the RSS before the call.
ARI is against the planted groups. Times are medians over the repeats; the
labels of every repeat must be identical (the run fails otherwise). Each
method runs at its own threshold calibrated for MiniLM (see
docs/performance.md); the reference is quadratic and runs only up to
--reference-max names.

    python benchmarks/clustering.py                         # 10k..200k, 3 repeats
    python benchmarks/clustering.py --sizes 20000 --repeats 5

Planted groups (``--case groups``): a case with a known answer and no calibration
in the way. Groups of 10 names whose vectors sit at cosine ≈ 0.86 to each other
and ≈ 0 to every other group (random directions in 384 dimensions); both methods
at threshold 0.8, so the right clustering is the planted one.

    python benchmarks/clustering.py --case groups           # 20k both methods, 200k ours
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def planted(
    n: int,
    dim: int = 384,
    seed: int = 0,
    family_size: int = 12,
    zipf_a: float = 1.8,
    max_group: int = 40,
    sibling: float = 0.45,
    sibling_spread: float = 0.5,
    cos_min: float = 0.55,
    cos_max: float = 0.99,
    power: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(n × dim unit vectors float32, planted group per row), shuffled."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(zipf_a, size=n), max_group)
    ends = np.cumsum(sizes)
    g = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:g].copy()
    sizes[-1] -= ends[g - 1] - n
    families = rng.integers(0, max(1, g // family_size), g)
    fam_dir = rng.standard_normal((families.max() + 1, dim)).astype(np.float32)
    fam_dir /= np.linalg.norm(fam_dir, axis=1, keepdims=True)

    def around(base: np.ndarray, cos: np.ndarray) -> np.ndarray:
        """Unit vectors at the given cosine to each row of `base`, random direction."""
        e = rng.standard_normal(base.shape).astype(np.float32)
        e -= (e * base).sum(1, keepdims=True) * base
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        cos = cos.astype(np.float32)[:, None]
        return cos * base + np.sqrt(1 - cos**2) * e

    # Group centres: cosine to the family direction ≈ sqrt(sibling), so two
    # sibling centres meet at ≈ `sibling` (spread by `sibling_spread`).
    to_family = np.sqrt(np.clip(rng.normal(sibling, sibling_spread / 2, g), 0.01, 0.95))
    centres = around(fam_dir[families], to_family)
    labels = np.repeat(np.arange(g), sizes)
    # Members: cosine to their centre in [cos_min, cos_max], most near the top.
    to_centre = cos_max - (cos_max - cos_min) * rng.random(n) ** power
    x = around(centres[labels], to_centre).astype(np.float32)
    perm = rng.permutation(n)
    return np.ascontiguousarray(x[perm]), labels[perm]


def planted_groups(
    n: int, size: int = 10, within: float = 0.86, dim: int = 384, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in n/size groups: cosine ≈ `within` inside a group, ≈ 0 across."""
    rng = np.random.default_rng(seed)
    g = n // size
    centres = rng.standard_normal((g, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(g), size)
    e = rng.standard_normal((g * size, dim)).astype(np.float32)
    e -= (e * centres[labels]).sum(1, keepdims=True) * centres[labels]
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    # members at cosine sqrt(within) to the centre meet each other at ≈ within
    a = np.float32(np.sqrt(within))
    x = a * centres[labels] + np.sqrt(1 - a * a) * e
    perm = rng.permutation(g * size)
    return np.ascontiguousarray(x[perm], dtype=np.float32), labels[perm]


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(n: int, method: str, threshold: float, seed: int, case: str = "realistic") -> dict:
    from skill_assets.analysis.slices import adjusted_rand_index, cluster_skill_names

    x, truth = planted_groups(n, seed=seed) if case == "groups" else planted(n, seed=seed)
    names = [f"skill {i}" for i in range(n)]
    cluster_skill_names(names[:200], x[:200], threshold=threshold, method=method)  # warm up
    # igraph (and matplotlib, which it imports) load on first use: a one-time cost of the
    # process, not of clustering; the 200-name warm-up need not reach Leiden, so load it here.
    import igraph  # noqa: F401

    rss_before = _rss_mib()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = cluster_skill_names(names, x, threshold=threshold, method=method)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    labels = out["cluster_id"].to_numpy()
    return {
        "n": n,
        "method": method,
        "threshold": threshold,
        "wall_s": wall,
        "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "peak_rss_mib": r1.ru_maxrss / 1024,
        "rss_before_mib": rss_before,
        "ari": adjusted_rand_index(truth, labels),
        "clusters": int(labels.max()) + 1,
        "groups": int(truth.max()) + 1,
        "labels_sha1": hashlib.sha1(labels.tobytes()).hexdigest(),
    }


def run_one(n: int, method: str, threshold: float, seed: int, case: str = "realistic") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps({"n": n, "method": method, "threshold": threshold, "seed": seed, "case": case}),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {n} {method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from skill_assets.analysis.slices import default_threshold

    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["realistic", "groups"], default="realistic")
    ap.add_argument("--sizes", default=None, help="default 10k..200k; groups: 20000,200000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-max", type=int, default=None, help="default 50000; groups 20000")
    ap.add_argument("--threshold", type=float, default=None, help="default: calibrated; groups 0.8")
    ap.add_argument("--reference-threshold", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write all runs to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return
    groups = args.case == "groups"
    if args.sizes is None:
        args.sizes = "20000,200000" if groups else "10000,20000,50000,100000,200000"
    if args.reference_max is None:
        args.reference_max = 20000 if groups else 50000
    if args.threshold is None:
        args.threshold = 0.8 if groups else default_threshold(minilm)
    if args.reference_threshold is None:
        args.reference_threshold = 0.8 if groups else default_threshold(minilm, "reference")

    cores = len(os.sched_getaffinity(0))
    print(
        f"case {args.case}; {cores} cores, load average {os.getloadavg()[0]:.1f}; "
        f"{args.repeats} repeats"
    )
    runs: list[dict] = []
    rows: dict[tuple[int, str], dict] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        methods = [("ours", args.threshold)]
        if n <= args.reference_max:
            methods.append(("reference", args.reference_threshold))
        for method, thr in methods:
            reps = [run_one(n, method, thr, args.seed, args.case) for _ in range(args.repeats)]
            runs.extend(reps)
            if len({r["labels_sha1"] for r in reps}) != 1:
                raise SystemExit(f"{method} at n={n}: labels differ between repeats")
            walls = [r["wall_s"] for r in reps]
            row = {
                **reps[0],
                "wall_s": statistics.median(walls),
                "wall_min": min(walls),
                "wall_max": max(walls),
                "cpu_s": statistics.median(r["cpu_s"] for r in reps),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in reps),
                "load": os.getloadavg()[0],
            }
            rows[(n, method)] = row
            print(
                f"  n={n} {method}: median {row['wall_s']:.2f} s "
                f"[{row['wall_min']:.2f}–{row['wall_max']:.2f}], ARI {row['ari']:.3f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))

    print(
        "\n| names | method | threshold | wall s, median [min–max] | CPU s | "
        "peak RSS MiB (before call) | ARI | clusters / planted groups |"
    )
    print("|---:|---|---:|---|---:|---:|---:|---|")
    for (n, method), r in rows.items():
        print(
            f"| {n:,} | {method} | {r['threshold']:.2f} | {r['wall_s']:.2f} "
            f"[{r['wall_min']:.2f}–{r['wall_max']:.2f}] | {r['cpu_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} ({r['rss_before_mib']:.0f}) | {r['ari']:.3f} | "
            f"{r['clusters']:,} / {r['groups']:,} |"
        )
    print("\n| names | reference ÷ ours, wall | reference ÷ ours, CPU | ARI ours − reference |")
    print("|---:|---:|---:|---:|")
    for (n, method), r in rows.items():
        if method != "ours" or (n, "reference") not in rows:
            continue
        ref = rows[(n, "reference")]
        print(
            f"| {n:,} | {ref['wall_s'] / r['wall_s']:.1f}× | {ref['cpu_s'] / r['cpu_s']:.1f}× "
            f"| {r['ari'] - ref['ari']:+.3f} |"
        )


if __name__ == "__main__":
    main()
