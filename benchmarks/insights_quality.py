"""Do the findings say more than the benchmark's own labels? Measured on real data.

For three real corpora from ``../shared/data`` (beside the checkout; ``--data``):

- MMLU-Pro: gpt-4o, gemini-1.5-pro-002, Meta-Llama-3_1-70B-Instruct; taxonomy annotator;
  strata = benchmark x MMLU-Pro ``category``. By default a stratified subset
  (``--per-category`` questions per category, seeded) keeps the run to a few minutes;
  ``--per-category 0`` takes all 11,988.
- ZeroEval: GPT-4o (2024-05-13), Claude 3.5 Sonnet (2024-06-20), Gemini 1.5 Pro on GSM8K,
  MATH level 5 and CRUXEval-O as three benchmarks; taxonomy annotator; strata = benchmark.
- MathVista testmini: the human ``annotated_skills`` as bring-your-own skills (the
  ``skills_column`` path of the product), runs bard, gpt4_2shot_solution_use_ocr and
  llava_llama_2_13b; strata = benchmark x ``task``.

The stages are the pure functions behind the Dagster assets (instances ->
annotation -> slices -> insights), not the asset graph, for speed. Printed per corpus:

- slices: the adjusted mutual information (scikit-learn) between each question's largest
  slice at its finest level and its category (MMLU-Pro category, ZeroEval benchmark,
  MathVista task), the same at level 1, and the share of finest-level slices with > 90%
  of their members in one category;
- findings: tests run (rows before merging near-duplicate slices), findings after the
  merge, marginal q < 0.05 (what the tool reported before), and skill-level findings
  (also q < 0.05 against the rest of their strata, CMH), split by kind; findings flagged
  as mostly unparsed answers; the top skill-level findings.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/insights_quality.py [--data DIR] [--only mmlu_pro]

Exits 0 with a note when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
MMLU_MODELS = ["gpt-4o", "gemini-1.5-pro-002", "Meta-Llama-3_1-70B-Instruct"]
ZEROEVAL_MODELS = ["gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620", "gemini-1.5-pro"]
ZEROEVAL_BENCH = {"GSM8K": "gsm8k", "MATH-Level5": "math-l5", "CRUXEval-O": "cruxeval-o"}
MATHVISTA_MODELS = ["bard", "gpt4_2shot_solution_use_ocr", "llava_llama_2_13b"]


def _instances(rows: pl.DataFrame, bench: str, tmp: Path):
    """Benchmark instances through the product's loader (INSTANCES schema)."""
    from skill_assets.ingest.instances import load_instances

    path = tmp / f"{bench}.jsonl"
    rows.write_ndjson(path)
    return load_instances(path, bench, "jsonl")


def _results(raw: pl.DataFrame, instances: pl.DataFrame) -> pl.DataFrame:
    """RESULTS-shaped rows (uid, benchmark, model, correct, parsed_answer)."""
    return raw.join(instances.select("instance_id", "uid", "benchmark"), on="instance_id").select(
        "uid",
        "benchmark",
        "instance_id",
        "model",
        pl.col("correct").cast(pl.Float64).fill_null(0.0),
        pl.col("pred").cast(pl.String).alias("parsed_answer"),
    )


def load_mmlu(data: Path, per_category: int, seed: int, tmp: Path):
    inst = pl.read_ndjson(data / "instances.jsonl", infer_schema_length=None)
    if per_category:
        inst = (
            inst.with_columns(pl.col("instance_id").hash(seed).alias("_h"))
            .sort("_h")
            .group_by("category", maintain_order=True)
            .head(per_category)
            .drop("_h")
            .sort("instance_id")
        )
    instances = _instances(inst.drop("benchmark"), "mmlu-pro", tmp)
    raw = pl.read_csv(data / "results.csv", schema_overrides={"pred": pl.String}).filter(
        pl.col("model").is_in(MMLU_MODELS)
    )
    missing = set(MMLU_MODELS) - set(raw["model"].unique().to_list())
    if missing:
        raise SystemExit(f"{data / 'results.csv'}: no rows for {sorted(missing)}")
    cat = dict(
        zip(
            instances["uid"],
            instances["metadata"].map_elements(
                lambda m: json.loads(m)["category"], return_dtype=pl.String
            ),
            strict=True,
        )
    )
    return [instances], _results(raw, instances), cat, ["category"]


def load_zeroeval(data: Path, tmp: Path):
    inst = pl.read_ndjson(data / "instances.jsonl", infer_schema_length=None)
    parts = []
    for raw_name, bench in ZEROEVAL_BENCH.items():
        rows = inst.filter(pl.col("benchmark") == raw_name).drop("benchmark", "options")
        parts.append(_instances(rows, bench, tmp))
    instances = pl.concat(parts)
    raw = pl.read_ndjson(data / "results.jsonl", infer_schema_length=None).filter(
        pl.col("model").is_in(ZEROEVAL_MODELS)
    )
    cat = dict(zip(instances["uid"], instances["benchmark"], strict=True))
    return parts, _results(raw, instances), cat, []


def load_mathvista(data: Path, tmp: Path):
    inst = pl.read_ndjson(data / "instances.jsonl", infer_schema_length=None)
    instances = _instances(inst.drop("benchmark", "image"), "mathvista", tmp)
    raw = pl.read_ndjson(data / "results.jsonl", infer_schema_length=None)  # all 21 runs
    cat = dict(
        zip(
            instances["uid"],
            instances["metadata"].map_elements(
                lambda m: json.loads(m)["task"], return_dtype=pl.String
            ),
            strict=True,
        )
    )
    return [instances], _results(raw, instances), cat, ["task"]


def annotate(parts: list[pl.DataFrame], embedder, human_column: str | None, hints: bool = False):
    """Skill mentions: the taxonomy annotator, or the instances' own skill column."""
    from skill_assets.annotate.imported_skills import imported_frames, skills_from_column

    frames = []
    for instances in parts:
        if human_column:
            by_id = skills_from_column(instances, human_column, "insights_quality")
            _, m = imported_frames(instances, by_id, f"column:{human_column}")
        else:
            from skill_assets.annotate.taxonomy import annotate_with_taxonomy

            _, m = annotate_with_taxonomy(instances, embedder, use_metadata_hints=hints)
        frames.append(m)
    return pl.concat(frames)


def slices_of(mentions: pl.DataFrame, embedder) -> pl.DataFrame:
    from skill_assets.analysis.slices import build_slices, default_threshold, distinct_names

    names = distinct_names(mentions)["skill_name"].unique().sort().to_list()
    vecs = embedder.encode(names)
    slices, _ = build_slices(
        mentions, dict(zip(names, vecs, strict=True)), default_threshold(embedder.name)
    )
    return slices


def label_slices(mentions: pl.DataFrame) -> pl.DataFrame:
    """One slice per human label, as given (the human labels are distinct by construction)."""
    from skill_assets.core.schemas import SLICES, conform

    g = mentions.group_by("skill_name", "level").agg(pl.col("uid").unique().sort().alias("uids"))
    return conform(
        g.sort("skill_name").with_columns(
            pl.format("human:{}", "skill_name").alias("skill_id"),
            pl.col("skill_name").alias("name"),
            pl.concat_list("skill_name").alias("member_names"),
            pl.col("uids").list.len().cast(pl.Int64).alias("n"),
        ),
        SLICES,
    )


def label_agreement(slices: pl.DataFrame, cat: dict[str, str]) -> dict:
    """AMI of (largest slice at the question's finest level) vs category; level-1 AMI; purity."""
    from sklearn.metrics import adjusted_mutual_info_score

    mem = (
        slices.select("skill_id", "level", "n", "uids")
        .explode("uids", empty_as_null=True)
        .rename({"uids": "uid"})
        .filter(pl.col("uid").is_in(list(cat)))
        .unique(["skill_id", "uid"])
    )

    def ami(rows: pl.DataFrame) -> float:
        best = rows.sort(["n", "skill_id"], descending=[True, False]).unique("uid", keep="first")
        return adjusted_mutual_info_score([cat[u] for u in best["uid"]], best["skill_id"].to_list())

    finest = mem.filter(pl.col("level") == pl.col("level").max().over("uid"))
    out = {"ami_finest": ami(finest), "questions": finest["uid"].n_unique()}
    lv1 = mem.filter(pl.col("level") == 1)
    out["ami_level1"] = ami(lv1) if lv1.height else None
    top = mem.filter(pl.col("level") == mem["level"].max())
    share = (
        top.with_columns(pl.col("uid").replace_strict(cat).alias("cat"))
        .group_by("skill_id", "cat")
        .len()
        .group_by("skill_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("purity"), pl.col("len").sum())
    )
    out["finest_level"] = int(mem["level"].max())
    out["finest_slices"] = share.height
    out["share_pure_90"] = float((share["purity"] > 0.9).mean()) if share.height else None
    return out


def findings_counts(results, instances, slices, columns, min_n: int) -> tuple[dict, pl.DataFrame]:
    from skill_assets.analysis.insights import instance_strata, skill_insights

    strata = instance_strata(results, instances, columns)
    label = "category" if columns else "benchmark"
    t0 = time.perf_counter()
    ins = skill_insights(results, slices, min_slice_size=min_n, strata=strata, strata_label=label)
    t_ins = time.perf_counter() - t0
    tests = ins.height + int(ins["merged_skill_ids"].list.len().sum()) if ins.height else 0
    out = {"tests": tests, "findings": ins.height, "seconds": t_ins}
    for kind, sel in (
        ("pairwise", pl.col("kind") == "pairwise"),
        ("strength/weakness", pl.col("kind") != "pairwise"),
    ):
        sub = ins.filter(sel)
        out[kind] = {
            "findings": sub.height,
            "marginal": sub.filter(pl.col("significant")).height,
            "conditional": sub.filter(pl.col("q_conditional") < 0.05).height,
            "skill": sub.filter(pl.col("level_of_finding") == "skill").height,
        }
    out["unparsed_flagged"] = ins.filter(pl.col("significant") & pl.col("unparsed_flag")).height
    return out, ins


def _row(name, n_q, agree, f) -> str:
    pw, sw = f["pairwise"], f["strength/weakness"]
    lv1 = "–" if agree["ami_level1"] is None else f"{agree['ami_level1']:.2f}"
    return (
        f"| {name} | {n_q} | {agree['ami_finest']:.2f} | {lv1} | "
        f"{100 * agree['share_pure_90']:.0f}% of {agree['finest_slices']} (L{agree['finest_level']}) | "
        f"{f['tests']} → {f['findings']} | {pw['marginal']} / {pw['skill']} | "
        f"{sw['marginal']} / {sw['skill']} | {f['unparsed_flagged']} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the corpora")
    ap.add_argument(
        "--per-category", type=int, default=150, help="MMLU-Pro questions per category (0 = all)"
    )
    ap.add_argument("--min-n", type=int, default=30, help="minimum instances per finding")
    ap.add_argument("--only", choices=["mmlu_pro", "zeroeval", "mathvista"], action="append")
    ap.add_argument("--top", type=int, default=5, help="skill-level findings listed per corpus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--metadata-hints",
        action="store_true",
        help="the taxonomy annotator with metadata hints (category/source read as a prior; "
        "the product's default is off)",
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"insights_quality: {args.data} not found; nothing measured (pass --data DIR)")
        return 0

    from skill_assets.analysis.insights import CONDITIONAL_TEST, GAIN_TEST, PAIRWISE_TEST
    from skill_assets.annotate.taxonomy import (
        ANNOTATOR_VERSION,
        DEFAULT_HINT_KEYS,
        taxonomy_version,
    )
    from skill_assets.resources.embedder import Embedder

    embedder = Embedder()
    print(
        f"taxonomy annotator v{ANNOTATOR_VERSION} (taxonomy {taxonomy_version()}), metadata "
        f"hint keys {list(DEFAULT_HINT_KEYS) if args.metadata_hints else []}; embedder "
        f"{embedder.name}; min n {args.min_n}"
    )
    print(
        f"tests: pairwise = {PAIRWISE_TEST}; strength/weakness = {GAIN_TEST}; conditional = "
        f"{CONDITIONAL_TEST.format(strata='its strata')}\n"
    )
    plans = {
        "mmlu_pro": lambda tmp: load_mmlu(
            args.data / "mmlu_pro", args.per_category, args.seed, tmp
        ),
        "zeroeval": lambda tmp: load_zeroeval(args.data / "zeroeval", tmp),
        "mathvista": lambda tmp: load_mathvista(args.data / "mathvista_testmini", tmp),
    }
    table, tops = [], []
    for key in args.only or list(plans):
        if not (args.data / ("mathvista_testmini" if key == "mathvista" else key)).is_dir():
            print(f"{key}: data folder absent, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            parts, results, cat, columns = plans[key](Path(tmp))
            instances = pl.concat(parts)
            t1 = time.perf_counter()
            human = "annotated_skills" if key == "mathvista" else None
            mentions = annotate(parts, embedder, human, hints=args.metadata_hints)
            t_annot = time.perf_counter() - t1
            slices = slices_of(mentions, embedder)
            name = {
                "mmlu_pro": f"MMLU-Pro ({args.per_category or 'all'}/category; strata: category)",
                "zeroeval": "ZeroEval (GSM8K, MATH-L5, CRUXEval-O; strata: benchmark)",
            }.get(key)
            variants = [(name, slices, columns)]
            if key == "mathvista":
                print(
                    f"mathvista: the product's slicing clusters the 7 human labels into "
                    f"{slices.height} slices: {slices['member_names'].to_list()}"
                )
                given = label_slices(mentions)
                variants = [
                    ("MathVista, 7 human skills as given (strata: task)", given, columns),
                    ("MathVista, 7 human skills as given (strata: benchmark only)", given, []),
                    (
                        f"MathVista, human skills through the product's slicing "
                        f"({slices.height} slices; strata: task)",
                        slices,
                        columns,
                    ),
                ]
                variants.append(
                    (
                        f"MathVista, all {results['model'].n_unique()} runs, 7 human skills "
                        "as given (strata: task)",
                        given,
                        columns,
                        results,
                    )
                )
                results = results.filter(pl.col("model").is_in(MATHVISTA_MODELS))
            for vname, vslices, vcols, *vres in variants:
                res = vres[0] if vres else results
                agree = label_agreement(vslices, cat)
                f, ins = findings_counts(res, instances, vslices, vcols, args.min_n)
                table.append(_row(vname, instances.height, agree, f))
                print(
                    f"{vname}: {instances.height} questions, {res.height} results, "
                    f"{vslices.height} slices; annotation {t_annot:.1f} s, insights "
                    f"{f['seconds']:.1f} s, total {time.perf_counter() - t0:.1f} s"
                )
                print(f"  {json.dumps(f)}")
                top = ins.filter(pl.col("level_of_finding") == "skill").head(args.top)
                for r in top.iter_rows(named=True):
                    vs = r["other_model"] or "mean of others"
                    tops.append(
                        f"| {vname} | {r['kind']} | {r['model']} | {vs} | {r['name']} "
                        f"({', '.join(f'L{x}' for x in r['levels'])}) | {100 * r['effect']:+.1f} | "
                        f"{100 * (r['rest_effect'] or 0):+.1f} | {r['n']} | {r['q']:.2g} | "
                        f"{r['q_conditional']:.2g} |"
                    )
    print(
        "\n| corpus | questions | AMI finest slice vs category | AMI level 1 | finest slices "
        ">90% one category | tests → findings (merged) | pairwise: marginal / skill-level | "
        "strength-weakness: marginal / skill-level | significant & mostly unparsed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    if tops:
        print(
            "\n| corpus | kind | model | vs | skill (levels) | effect pts | same comparison on "
            "rest of strata, pts | n | q | q vs strata |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(tops))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
