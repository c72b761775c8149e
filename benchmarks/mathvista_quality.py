"""Annotation quality of the offline taxonomy annotator against MathVista's human skill labels.

MathVista testmini (1,000 questions about images) carries, per question, the human
"skills" of the benchmark's authors: algebraic, arithmetic, geometry, logical and
scientific reasoning, numeric commonsense and statistical reasoning (1 to 4 per question).
This script runs `annotate_with_taxonomy` on the questions (offline MiniLM), maps the
chosen taxonomy paths onto those seven labels with the fixed table `LABEL_MAP` below
(written from MathVista's published definitions of the labels, not fitted to the
instances), and prints micro and macro multi-label precision/recall/F1 next to two
baselines:

- ``most frequent``: always the k most frequent labels of the dev half, k = the mean
  number of human labels per dev instance, rounded;
- ``keyword rule``: regexes over question + options per label (`KEYWORD_RULES`, written
  from the label definitions); when none fires, the most frequent label.

Instances are split in two fixed halves by a seeded hash of their id: `dev` (anything
tuned on MathVista, i.e. the annotator's options and the taxonomy wording, was checked
there) and `test` (reported, never tuned on). The human labels never enter the annotator:
they are removed from the metadata it sees.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mathvista_quality.py
    .venv/bin/python benchmarks/mathvista_quality.py --data /path/to/mathvista_testmini
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import polars as pl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skill_assets.annotate.taxonomy import (  # noqa: E402
    labels_from_paths,
    multilabel_scores,
    step_paths,
)
from skill_assets.ingest.instances import load_instances  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mathvista_testmini"
BENCHMARK = "MathVista-testmini"
LABEL_FIELD = "annotated_skills"
SPLIT_SEED = "mathvista-quality-v1"

ALG, ARI, GEO, LOG = (
    "algebraic reasoning",
    "arithmetic reasoning",
    "geometry reasoning",
    "logical reasoning",
)
NUM, SCI, STA = "numeric commonsense", "scientific reasoning", "statistical reasoning"
LABELS = [ALG, ARI, GEO, LOG, NUM, SCI, STA]

# Taxonomy node -> MathVista labels. Written from MathVista's definitions of its skills
# (Lu et al., 2024, §2 / Table 7): ALG = symbols, equations, functions and their plots;
# ARI = basic operations including counting; GEO = shapes, angles, sizes, spatial
# figures; LOG = deduction, puzzles; NUM = everyday numbers (ages, clocks, typical sizes);
# SCI = science knowledge and figures; STA = charts, tables, data, probability.
# A path takes the labels of its deepest node listed here; an empty list means "no label".
LABEL_MAP: dict[str, list[str]] = {
    # top level (fallbacks)
    "Mathematical reasoning": [ARI],
    "Scientific knowledge": [SCI],
    "Logical reasoning": [LOG],
    "Reading comprehension": [],
    "Language": [],
    "Code reasoning": [ALG],
    "Visual reasoning": [],
    "Social sciences & humanities knowledge": [],
    "Professional knowledge": [],
    "Everyday knowledge": [],
    # mathematics
    "arithmetic": [ARI],
    "algebra": [ALG],
    "geometry": [GEO],
    "number theory": [ARI],
    "counting and probability": [ARI],
    "probability": [STA],
    "statistics": [STA],
    "precalculus": [ALG],
    "trigonometry": [GEO],
    "calculus": [ALG],
    "advanced mathematics": [ALG],
    "discrete mathematics": [LOG],
    # sciences and professions
    "engineering": [SCI],
    "medicine and health": [SCI],
    "scientific inquiry": [SCI],
    # visual reasoning
    "chart and plot reading": [STA],
    "plot data arithmetic": [STA, ARI],
    "table reading": [STA],
    "table arithmetic": [STA, ARI],
    "document and form reading": [],
    "geometry diagram reasoning": [GEO],
    "function plot reading": [ALG],
    "scientific and textbook figures": [SCI],
    "research figures": [SCI, STA],
    "natural image understanding": [],
    "object counting": [ARI],
    "reading measuring instruments": [NUM],
    "synthetic scene reasoning": [ARI],
    "abstract visual puzzles": [LOG],
    "map and spatial layout reading": [STA],
    "medical image interpretation": [SCI],
    # everyday knowledge
    "time and calendar": [NUM],
    "units and measurement": [NUM],
    "numeric commonsense": [NUM],
    "physical commonsense": [NUM],
    "personal finance": [ARI],
    "business and management": [ARI],
}

# The keyword baseline: one regex per label over question + options (case-insensitive).
KEYWORD_RULES: dict[str, str] = {
    ALG: r"\bfunctions?\b|\bequations?\b|f\s*\(\s*x\s*\)|\bsolve\b|\bpolynomial|\bvariable"
    r"|\bslope\b|\bintercept|\bderivative|\bexpression|\blimit\b|\bgraph of\b",
    ARI: r"\bhow many\b|\bhow much\b|\btotal\b|\bsum\b|\bdifference\b|\bsubtract|\badd\b"
    r"|\baltogether\b|\bleft\b|\bmore than\b|\bfewer\b|\bcost|\bprice|\bspend|\$\s?\d",
    GEO: r"\bangle|∠|△|\btriangle|\bcircle|\bradius|\bdiameter|\bperimeter|\barea\b"
    r"|\bparallel|\bperpendicular|\bpolygon|\brectangle|\bsquare\b|\bchord|\btangent"
    r"|\barc\b|\bdegrees?\b|°|\bvolume\b|\bcylinder|\bcube\b|\bshape",
    LOG: r"\bpuzzle|\bpattern|\bsequence\b|\bmissing\b|\bnext\b|\blogic|\bodd one"
    r"|\bcomplete the\b|\bwhich (?:figure|option) (?:comes|fits)",
    NUM: r"\bage\b|\bages\b|\byears? old\b|\bhow old\b|\bclock\b|\bo'clock\b|\btime\b"
    r"|\bborn\b|\bheight\b|\btall\b|\bweigh|\bmeasuring cup\b|\btemperature\b",
    SCI: r"\bforce\b|\benergy\b|\bmass\b|\bvelocity|\bspeed\b|\bacceleration|\bvolt|\bcurrent\b"
    r"|\bcircuit|\bcells?\b|\borganism|\bfood (?:web|chain)|\bspecies|\bchemical|\bmolecul"
    r"|\breaction|\bphysics|\bplanet|\bwave|\bpopulation|\bpredator|\bprey|\bmagnet",
    STA: r"\bchart\b|\bplot\b|\btable\b|\bbar\b|\bmean\b|\bmedian\b|\bmode\b|\baverage\b"
    r"|\bpercent|\bdata\b|\bsurvey|\bfrequency|\bprobability|\baxis\b|\blegend\b"
    r"|\bhighest\b|\blowest\b|\blargest value\b|\bsmallest value\b",
}
_KEYWORD_RES = {lab: re.compile(rx, re.IGNORECASE) for lab, rx in KEYWORD_RULES.items()}


def split_of(instance_id: str) -> str:
    """'dev' or 'test': a fixed half of the instances, by a seeded hash of the id."""
    h = hashlib.sha256(f"{SPLIT_SEED}:{instance_id}".encode()).digest()
    return "dev" if h[0] % 2 == 0 else "test"


def load(data_dir: Path) -> tuple[pl.DataFrame, dict[str, set[str]], dict[str, str]]:
    """Instances as the pipeline loads them (`instances.load_instances`), with the human
    labels and the answer taken out of what the annotator sees; the human labels by uid;
    the split by uid."""
    path = data_dir / "instances.jsonl"
    if not path.exists():
        sys.exit(
            f"mathvista_quality: {path} not found. Give the folder that holds MathVista "
            f"testmini's instances.jsonl with --data (default {DEFAULT_DATA})."
        )
    instances = load_instances(path, BENCHMARK)
    gold, split, metadata = {}, {}, []
    for uid, iid, meta in instances.select("uid", "instance_id", "metadata").iter_rows():
        fields = json.loads(meta)
        labels = fields.pop(LABEL_FIELD, None)
        if labels is None:
            sys.exit(f"mathvista_quality: {path}: instance {iid} has no {LABEL_FIELD!r}")
        fields.pop("benchmark", None)
        gold[uid] = {str(x).strip().lower() for x in labels}
        split[uid] = split_of(iid)
        metadata.append(json.dumps(fields, sort_keys=True, default=str))
    instances = instances.with_columns(
        pl.Series("metadata", metadata, dtype=pl.String), pl.lit(None, pl.String).alias("answer")
    )
    return instances, gold, split


def most_frequent_baseline(gold_dev: list[set[str]], k: int | None = None) -> tuple[list[str], int]:
    """The k most frequent labels of `gold_dev` (ties by name); k defaults to the mean
    number of labels per instance, rounded (at least 1)."""
    if k is None:
        k = max(1, round(sum(len(g) for g in gold_dev) / len(gold_dev)))
    counts = Counter(lab for g in gold_dev for lab in g)
    return sorted(counts, key=lambda lab: (-counts[lab], lab))[:k], k


def keyword_labels(question: str, options: list[str] | None, fallback: set[str]) -> set[str]:
    text = question + " " + " ".join(options or [])
    found = {lab for lab, rx in _KEYWORD_RES.items() if rx.search(text)}
    return found or set(fallback)


def _fmt_row(name: str, split: str, s: dict) -> str:
    mi, ma = s["micro"], s["macro"]
    return (
        f"| {name} | {split} | {s['n']} | {mi['p']:.3f} | {mi['r']:.3f} | {mi['f1']:.3f} "
        f"| {ma['p']:.3f} | {ma['r']:.3f} | {ma['f1']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MathVista testmini folder")
    ap.add_argument("--max-paths", type=int, default=3, help="annotator max_paths")
    ap.add_argument("--limit", type=int, default=0, help="first N instances only (smoke runs)")
    ap.add_argument("--no-ablation", action="store_true", help="skip the run with metadata hints")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".skill-slices" / "bench-vectors",
        help="question-vector cache folder (shared with annotation_relevance.py)",
    )
    ap.add_argument("--dump", type=Path, help="write per-instance predictions (JSONL) here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    instances, gold, split = load(args.data)
    if args.limit:
        instances = instances.head(args.limit)
    uids = instances["uid"].to_list()

    from skill_assets.annotate.taxonomy import (
        ANNOTATOR_VERSION,
        annotate_with_taxonomy,
        taxonomy_version,
    )
    from skill_assets.resources.embedder import Embedder

    if not instances.height:
        sys.exit("mathvista_quality: no instances")

    from skill_assets.resources.question_vectors import QuestionVectorCache

    embedder = Embedder()
    cache = QuestionVectorCache(args.cache)
    t1 = time.perf_counter()
    # The default annotator: question, options and image flag only (no metadata).
    _rationales, mentions = annotate_with_taxonomy(
        instances, embedder, max_paths=args.max_paths, cache=cache
    )
    t_annot = time.perf_counter() - t1
    paths = step_paths(mentions)
    pred = {u: labels_from_paths(paths.get(u, []), LABEL_MAP) for u in uids}
    methods = {"taxonomy annotator (default, no metadata)": pred}
    if not args.no_ablation:
        # the same annotator with the opt-in metadata hints (category, task, context, ...)
        _r, m1 = annotate_with_taxonomy(
            instances, embedder, max_paths=args.max_paths, cache=cache, use_metadata_hints=True
        )
        p1 = step_paths(m1)
        methods["taxonomy annotator, metadata hints on"] = {
            u: labels_from_paths(p1.get(u, []), LABEL_MAP) for u in uids
        }

    dev = [u for u in uids if split[u] == "dev"]
    gold_dev = [gold[u] for u in dev]
    freq, k = most_frequent_baseline(gold_dev)
    freq_more, _ = most_frequent_baseline(gold_dev, k + 1)
    qs = dict(zip(uids, instances["question"].to_list(), strict=True))
    opts = dict(zip(uids, instances["options"].to_list(), strict=True))
    kw = {u: keyword_labels(qs[u], opts[u], set(freq[:1])) for u in uids}
    methods[f"baseline: most frequent (k={k})"] = {u: set(freq) for u in uids}
    methods[f"baseline: most frequent (k={k + 1}, for reference)"] = {
        u: set(freq_more) for u in uids
    }
    methods["baseline: keyword rule"] = kw

    subsets = {
        "test": [u for u in uids if split[u] == "test"],
        "dev": dev,
        "all": uids,
    }
    print(
        f"MathVista testmini: {len(uids)} instances (dev {len(dev)}, "
        f"test {len(subsets['test'])}); taxonomy {taxonomy_version()}, "
        f"annotator v{ANNOTATOR_VERSION}, max_paths={args.max_paths}"
    )
    print(f"labels by frequency on dev (most frequent first): {freq_more} ...\n")
    print("| method | split | n | micro P | micro R | micro F1 | macro P | macro R | macro F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sname, su in subsets.items():
        for mname, mp in methods.items():
            s = multilabel_scores([gold[u] for u in su], [mp[u] for u in su], LABELS)
            print(_fmt_row(mname, sname, s))

    for sname in ("test", "all"):
        su = subsets[sname]
        s = multilabel_scores([gold[u] for u in su], [pred[u] for u in su], LABELS)
        print(f"\nPer label, taxonomy annotator, {sname} (n={s['n']}):\n")
        print("| label | support | predicted | P | R | F1 |")
        print("|---|---|---|---|---|---|")
        for lab in LABELS:
            v = s["per_label"][lab]
            print(
                f"| {lab} | {v['support']} | {v['predicted']} | {v['p']:.3f} | {v['r']:.3f} "
                f"| {v['f1']:.3f} |"
            )

    n_pred = [len(pred[u]) for u in uids]
    cover = sum(bool(gold[u] & pred[u]) for u in uids) / len(uids)
    print(
        f"\nlabels per instance: human {sum(len(gold[u]) for u in uids) / len(uids):.2f}, "
        f"annotator {sum(n_pred) / len(uids):.2f}; instances with >=1 human label predicted "
        f"(all): {cover:.1%}"
    )
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as f:
            for u in uids:
                row = {
                    "uid": u,
                    "split": split[u],
                    "gold": sorted(gold[u]),
                    "pred": sorted(pred[u]),
                    "keyword": sorted(kw[u]),
                    "paths": [" > ".join(p) for p in paths.get(u, [])],
                    "question": qs[u][:200],
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    wall = time.perf_counter() - t0
    print(f"wall time: {wall:.1f} s (annotation {t_annot:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
