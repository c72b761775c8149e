"""The hierarchical routing rule on all of MMLU-Pro, with labels instead of annotated skills.

    .venv/bin/python benchmarks/routing_hierarchy.py [--data ../shared/data]

Global -> `category` -> MMLU-Pro's own `source` column (e.g. `ori_mmlu-professional_law`,
`theoremQA-...`) as the finer level, on the trio (gpt-4o, gemini-1.5-pro-002,
Meta-Llama-3_1-70B-Instruct; 11,976 questions) and a four-model set (+ gemini-1.5-flash-002).
No annotation, so it runs in about a minute: it isolates what the shrinkage hierarchy does
with a finer labelling that does carry within-category signal. Prints Markdown tables
(docs/routing.md). Exits 0 with a message when the data folder is absent.
"""

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from skill_assets.routing.engine import _eb_pseudocounts, _prepare  # noqa: E402
from skill_assets.routing.evaluation import evaluate_routing  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
args = ap.parse_args()
D = args.data / "mmlu_pro"
if not (D / "results.csv").exists():
    print(f"{D}: not found; nothing to do")
    raise SystemExit(0)
inst = pl.read_ndjson(D / "instances.jsonl")
allres = pl.read_csv(
    D / "results.csv",
    schema_overrides={"instance_id": pl.String, "pred": pl.String, "model": pl.String},
)
instances = inst.select(
    pl.col("instance_id").alias("uid"),
    "benchmark",
    "instance_id",
    pl.struct("category", "source")
    .map_elements(json.dumps, return_dtype=pl.String)
    .alias("metadata"),
)
src = inst.group_by("source").agg(pl.col("instance_id").alias("uids"), pl.col("category").first())
slices = src.select(
    pl.format("source:{}", "source").alias("skill_id"),
    pl.col("source").alias("name"),
    pl.lit(1, dtype=pl.Int64).alias("level"),
    pl.lit(None, dtype=pl.String).alias("parent_id"),
    "uids",
)
for models in (
    ["gpt-4o", "gemini-1.5-pro-002", "Meta-Llama-3_1-70B-Instruct"],
    ["gpt-4o", "gemini-1.5-pro-002", "Meta-Llama-3_1-70B-Instruct", "gemini-1.5-flash-002"],
):
    res = allres.filter(pl.col("model").is_in(models)).select(
        pl.col("instance_id").alias("uid"),
        pl.lit("MMLU-Pro").alias("benchmark"),
        "instance_id",
        "model",
        pl.col("correct").cast(pl.Float64),
        pl.col("pred").alias("parsed_answer"),
    )
    d = _prepare(res, slices, None, instances, ["category"])
    print(models, "n", d.C.shape, "EB", _eb_pseudocounts(d, 30))
    rows = {}
    for name, kw in (
        ("hierarchical (default)", dict(metadata_slices=["category"])),
        ("residual s30", dict(rule="residual", shrink=30.0, metadata_slices=["category"])),
        ("paper s10", dict(rule="paper")),
        ("hierarchical, no metadata", dict()),
    ):
        t = time.perf_counter()
        ev = evaluate_routing(
            res,
            slices,
            instances,
            metadata_column="category",
            n_boot=1000,
            schemes=("loo", "kfold"),
            **kw,
        )
        for r in ev.iter_rows(named=True):
            key = r["router"] if r["router"] != "skill_policy" else "skill_policy: " + name
            rows.setdefault(key, {})[r["scheme"]] = r
        print(name, f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
    print("| router | loo | kfold |\n|---|---|---|")
    for k, v in rows.items():
        cells = []
        for s in ("loo", "kfold"):
            r = v[s]
            c = f"{100 * r['accuracy']:.2f} [{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]"
            if k.startswith("skill_policy") or k == "metadata_router":
                c += f"; gain {100 * r['gain_vs_best_single']:+.2f} [{100 * r['gain_ci_low']:+.2f}, {100 * r['gain_ci_high']:+.2f}]"
            cells.append(c)
        print(f"| {k} | {cells[0]} | {cells[1]} |")
