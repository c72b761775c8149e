"""Cold `skill-slices route` on one new question, and `route --file` throughput.

    .venv/bin/python benchmarks/route_speed.py                 # the demo project
    .venv/bin/python benchmarks/route_speed.py --project PATH --n 2000 --repeats 3

Runs the installed `skill-slices` in new processes on a project that has been run
(`make demo` for the default), twice: with the default embedder backend (ONNX Runtime,
once the export exists) and with ``SKILL_SLICES_EMBED_BACKEND=torch`` as the reference
(sentence-transformers, what `route` used before). Each single-question call asks a
question never asked before, so nothing of it is cached. Throughput is measured as
(n - 1) / (time for n questions - time for 1 question), which removes start-up; the
questions are the project's own benchmark questions with a random suffix (not cached).
Targets (issue 15): one new question <= 5 s from a cold process, >= 200 questions/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _route(project: Path, args: list[str], env: dict) -> float:
    exe = Path(sys.executable).parent / "skill-slices"
    t = time.perf_counter()
    out = subprocess.run(
        [str(exe), "route", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"error: `skill-slices route {' '.join(args[:1])}` failed")
    return wall


def _questions(project: Path, n: int, rng: random.Random) -> list[dict]:
    pool = []
    for f in sorted((project / "benchmarks").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("question"):
                pool.append({"question": row["question"], "options": row.get("options")})
    rows = []
    for i in range(n):
        row = dict(rng.choice(pool))
        row["id"] = str(i)
        row["question"] = f"{row['question']} (case {rng.randrange(10**9)})"
        rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO / "demo")
    ap.add_argument("--n", type=int, default=2000, help="questions in the --file call")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random()  # unseeded: earlier runs' questions are in the cache
    print(f"load average before: {_load()}")
    tmp = Path(tempfile.mkdtemp(prefix="route_speed_"))
    results = {}
    for backend in ("auto", "torch"):
        env = {**os.environ, "SKILL_SLICES_EMBED_BACKEND": backend}
        _route(args.project, [f"What is {rng.randrange(10**6)} plus 1?"], env)  # export once
        singles = [
            _route(args.project, [f"What is {rng.randrange(10**6)} times 7?"], env)
            for _ in range(args.repeats)
        ]
        files = {}
        for n in (1, args.n):
            walls = []
            for rep in range(args.repeats):  # new questions each time: none is cached
                path = tmp / f"{backend}-{n}-{rep}.jsonl"
                rows = _questions(args.project, n, rng)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
                out = ["--file", str(path), "--out", str(tmp / "out.jsonl")]
                walls.append(_route(args.project, out, env))
            files[n] = statistics.median(walls)
        rate = (args.n - 1) / max(files[args.n] - files[1], 1e-9)
        results[backend] = (statistics.median(singles), files[1], files[args.n], rate)
    print(f"load average after: {_load()}")
    print(
        f"\n| embedder backend | one new question, cold (median of {args.repeats}) | "
        f"--file, 1 question | --file, {args.n} questions | questions/s after start-up |"
    )
    print("|---|---|---|---|---|")
    for backend, (single, one, many, rate) in results.items():
        name = "ONNX Runtime (default)" if backend == "auto" else "torch (reference)"
        print(f"| {name} | {single:.2f} s | {one:.2f} s | {many:.2f} s | {rate:.0f} |")
    a, t = results["auto"], results["torch"]
    print(
        f"\nratios (torch / ONNX): cold question {t[0] / a[0]:.1f}x, "
        f"throughput {a[3] / t[3]:.2f}x (ONNX / torch)"
    )


if __name__ == "__main__":
    main()
