"""Derive the showcase's compact subset from the public per-instance results in ../shared/data.

    python demo/build_showcase.py                      # data beside the checkout
    python demo/build_showcase.py --data /path/to/shared/data

Writes, deterministically (fixed seed, sorted ids; a rerun on the same inputs gives the
same bytes):

* ``demo/benchmarks/<name>.jsonl`` — the questions of four benchmarks: stratified samples
  of GSM8K, MATH Level 5, CRUXEval-O (ZeroEval) and MMLU-Pro (the same number of questions
  from each of its 14 categories), keeping only questions that all three systems answered;
* ``demo/results/<system>.jsonl`` — per-question correctness (and the extracted answer) of
  the three systems on those questions.

The systems are the three frontier models that both sources evaluated; see SOURCE.md for
which run of which source feeds each system, the licenses, and every transformation.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
# ../shared/data beside the checkout (SKILL_SLICES_DATA overrides)
DEFAULT_DATA = Path(os.environ.get("SKILL_SLICES_DATA", HERE.parents[1] / "shared" / "data"))
SEED = 15

# system name in the showcase -> the run name in each source
SYSTEMS = {
    "gpt-4o": {"zeroeval": "gpt-4o-2024-05-13", "mmlu_pro": "gpt-4o"},
    "gemini-1.5-pro": {"zeroeval": "gemini-1.5-pro", "mmlu_pro": "gemini-1.5-pro-002"},
    "llama-3.1-70b-instruct": {
        "zeroeval": "Meta-Llama-3.1-70B-Instruct",
        "mmlu_pro": "Meta-Llama-3_1-70B-Instruct",
    },
}
# ZeroEval benchmark -> (file stem, questions kept, the `category` the showcase gives it)
ZEROEVAL = {
    "GSM8K": ("gsm8k", 300, "grade-school math word problems"),
    "MATH-Level5": ("math-level5", 300, "competition math (level 5)"),
    "CRUXEval-O": ("cruxeval-o", 300, "python output prediction"),
}
MMLU_PRO_PER_CATEGORY = 70


def _sample(ids: list[str], k: int, rng: np.random.Generator) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= k:
        return ids
    return sorted(ids[i] for i in rng.choice(len(ids), size=k, replace=False))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    # ASCII-escaped so no raw U+2028-style separator sits inside a line.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True, sort_keys=True) + "\n")
    tmp.replace(path)


def _common(results: pl.DataFrame, runs: list[str]) -> set[str]:
    """Ids every one of ``runs`` answered (a non-null correct)."""
    ok = (
        results.filter(pl.col("model").is_in(runs) & pl.col("correct").is_not_null())
        .group_by("instance_id")
        .agg(pl.col("model").n_unique().alias("k"))
        .filter(pl.col("k") == len(runs))
    )
    return set(ok["instance_id"].to_list())


def build(data: Path, out: Path) -> dict:
    """Write the subset under ``out``; returns {benchmark: n questions}."""
    rng = np.random.default_rng(SEED)
    counts: dict[str, int] = {}
    results_rows: dict[str, list[dict]] = {s: [] for s in SYSTEMS}

    # ZeroEval: GSM8K, MATH-L5, CRUXEval-O
    runs = {s: v["zeroeval"] for s, v in SYSTEMS.items()}
    ze_inst = pl.read_ndjson(data / "zeroeval" / "instances.jsonl")
    ze_res = pl.read_ndjson(data / "zeroeval" / "results.jsonl").filter(
        pl.col("model").is_in(list(runs.values()))
    )
    common = _common(ze_res, list(runs.values()))
    for bench, (stem, k, category) in ZEROEVAL.items():
        part = ze_inst.filter(pl.col("benchmark") == bench)
        keep = _sample([i for i in part["instance_id"].to_list() if i in common], k, rng)
        rows = (
            part.filter(pl.col("instance_id").is_in(keep))
            .sort("instance_id")
            .select("instance_id", "question", "answer", "source")
            .with_columns(pl.lit(category).alias("category"))
            .to_dicts()
        )
        _write_jsonl(out / "benchmarks" / f"{stem}.jsonl", rows)
        counts[stem] = len(rows)
        for system, run in runs.items():
            res = ze_res.filter((pl.col("model") == run) & pl.col("instance_id").is_in(keep))
            results_rows[system] += [
                {
                    "instance_id": r["instance_id"],
                    "model": system,
                    "correct": int(r["correct"]),
                    "parsed_answer": r["pred"],
                }
                for r in res.sort("instance_id").iter_rows(named=True)
            ]

    # MMLU-Pro: the same number of questions from each category
    runs = {s: v["mmlu_pro"] for s, v in SYSTEMS.items()}
    mp_res = pl.read_csv(
        data / "mmlu_pro" / "results.csv",
        schema_overrides={"instance_id": pl.String, "model": pl.String, "pred": pl.String},
    ).filter(pl.col("model").is_in(list(runs.values())))
    common = _common(mp_res, list(runs.values()))
    mp_inst = pl.read_ndjson(data / "mmlu_pro" / "instances.jsonl").filter(
        pl.col("instance_id").is_in(list(common))
    )
    keep: list[str] = []
    for cat in sorted(mp_inst["category"].unique().to_list()):
        ids = mp_inst.filter(pl.col("category") == cat)["instance_id"].to_list()
        keep += _sample(ids, MMLU_PRO_PER_CATEGORY, rng)
    rows = (
        mp_inst.filter(pl.col("instance_id").is_in(keep))
        .sort("instance_id")
        .select("instance_id", "question", "options", "answer", "category", "source")
        .to_dicts()
    )
    _write_jsonl(out / "benchmarks" / "mmlu-pro.jsonl", rows)
    counts["mmlu-pro"] = len(rows)
    for system, run in runs.items():
        res = mp_res.filter((pl.col("model") == run) & pl.col("instance_id").is_in(keep))
        results_rows[system] += [
            {
                "instance_id": r["instance_id"],
                "model": system,
                "correct": int(r["correct"]),
                "parsed_answer": r["pred"],
            }
            for r in res.sort("instance_id").iter_rows(named=True)
        ]
    for system, rows in results_rows.items():
        _write_jsonl(out / "results" / f"{system}.jsonl", rows)
    return counts


def main() -> None:
    """Command line: build the subset and print what was written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=HERE, help="the demo folder")
    args = ap.parse_args()
    for name in ("zeroeval", "mmlu_pro"):
        if not (args.data / name / "SOURCE.md").exists():
            raise SystemExit(f"error: {args.data / name}: not found (need ../shared/data)")
    counts = build(args.data, args.out)
    print(json.dumps({"questions": counts, "total": sum(counts.values())}))


if __name__ == "__main__":
    main()
