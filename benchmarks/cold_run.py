"""Cold and no-op `skill-slices run` on a real project: wall time, time per asset, load.

    .venv/bin/python benchmarks/cold_run.py                      # the MMLU-Pro trio
    .venv/bin/python benchmarks/cold_run.py --project demo       # any project folder (copied)
    .venv/bin/python benchmarks/cold_run.py --data /path/to/shared/data --workdir /tmp/cold

The MMLU-Pro trio is the 11,976 questions that gpt-4o, gemini-1.5-pro-002 and
Meta-Llama-3_1-70B-Instruct all answered (built from ``../shared/data`` by
``benchmarks/routing_real.py``'s builder), with the taxonomy annotator and MiniLM.
The project is built in a fresh temporary folder (never inside the repository), then
``skill-slices run`` runs in a new process with an empty state folder (cold: nothing
cached but the installed packages), then once more (no-op). Time per asset comes
from Dagster's own step statistics in the project's instance, summed over partitions.
Targets (issue 15): cold <= 5 min, no-op <= 10 s on this 2-core machine. The machine's
load average is printed before and after: timings under load are not idle timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _default_data() -> Path:
    for cand in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data"):
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "data"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _run(project: Path) -> tuple[float, dict]:
    exe = Path(sys.executable).parent / "skill-slices"
    cmd = [str(exe), "run", "--project", str(project), "--quiet"]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"error: `skill-slices run` failed on {project}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def step_times(project: Path) -> dict[str, tuple[float, int]]:
    """Seconds per step (asset) over every run in the project's Dagster instance."""
    from dagster import DagsterInstance

    from skill_assets.core.registry import load_project

    home = load_project(project).dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    instance = DagsterInstance.get()
    try:
        out: dict[str, list[float]] = {}
        for run in instance.get_runs():
            for st in instance.get_run_step_stats(run.run_id):
                if st.start_time is None or st.end_time is None:
                    continue
                out.setdefault(st.step_key, []).append(st.end_time - st.start_time)
        return {k: (sum(v), len(v)) for k, v in out.items()}
    finally:
        instance.dispose()


def main() -> None:
    """Build (or copy) the project, run it cold and again, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=_default_data())
    ap.add_argument("--project", type=Path, default=None, help="time this project (copied)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="skill-slices-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.project is not None:
        src = args.project if args.project.is_absolute() else REPO / args.project
        project = work / src.name
        if project.exists():
            shutil.rmtree(project)
        shutil.copytree(src, project, ignore=shutil.ignore_patterns(".skill-slices"))
        label = str(args.project)
    else:
        if not (args.data / "mmlu_pro" / "results.csv").exists():
            print(f"{args.data / 'mmlu_pro'}: not found; nothing to measure")
            return
        from benchmarks.routing_real import build_mmlu_pro

        project = work / "mmlu-pro-trio"
        shutil.rmtree(project / ".skill-slices", ignore_errors=True)
        build_mmlu_pro(args.data, project)
        label = "MMLU-Pro trio (11,976 x 3, taxonomy annotator)"
    load_before = _load()
    cold, summary = _run(project)
    load_cold = _load()
    noop, summary2 = _run(project)
    load_after = _load()
    steps = step_times(project)
    print(f"project: {label} at {project}")
    print(
        f"load average (1/5/15 min): before {load_before}; after cold {load_cold}; end {load_after}"
    )
    print("")
    print("| asset (step) | seconds | runs |")
    print("|---|---:|---:|")
    for k, (sec, cnt) in sorted(steps.items(), key=lambda kv: -kv[1][0]):
        print(f"| {k} | {sec:.1f} | {cnt} |")
    total_steps = sum(s for s, _ in steps.values())
    print(f"| **sum of steps** | {total_steps:.1f} | |")
    print("")
    print(f"cold run (wall, new process, empty state): {cold:.1f} s; target <= 300 s")
    print(f"no-op rerun (wall): {noop:.1f} s; target <= 10 s")
    print(f"overhead outside steps (start-up, planning, checks): {cold - total_steps:.1f} s")
    print(
        f"materialized cold: {len(summary['materialized'])}, no-op: {len(summary2['materialized'])}"
    )
    print(
        json.dumps(
            {"cold_s": round(cold, 1), "noop_s": round(noop, 1), "routing": summary["routing"]}
        )
    )


if __name__ == "__main__":
    main()
