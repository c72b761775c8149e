"""Asset checks: invariants that must hold, and quality bars that warn.

Checks name their assets by key, so this module does not import the assets."""

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from skill_assets.core.store import read_asset
from skill_assets.defs.conditions import check_condition
from skill_assets.resources.project import ProjectResource


def _materialized(
    project: ProjectResource, asset: str, columns: list[str] | None = None
) -> pl.DataFrame:
    """Every partition of `asset` written so far.

    Read from the project's Parquet files rather than through the IO manager: a run
    that adds several benchmarks writes them one at a time, and the IO manager would
    fail on partitions that do not exist yet.
    """
    df = read_asset(project.project, asset, columns)
    return pl.DataFrame() if df is None else df


# A check runs with every run that materializes its asset, whichever path launched it.
CHECK = check_condition()


@asset_check(asset=AssetKey("benchmark_instances"), blocking=True, automation_condition=CHECK)
def instance_ids_unique(project: ProjectResource) -> AssetCheckResult:
    """No two instances share a uid."""
    df = _materialized(project, "benchmark_instances")
    dup = df.height - df["uid"].n_unique() if df.height else 0
    return AssetCheckResult(passed=dup == 0, metadata={"duplicates": dup})


@asset_check(asset=AssetKey("rationales"), automation_condition=CHECK)
def rationale_parse_rate(project: ProjectResource) -> AssetCheckResult:
    """At least 95% of instances got a usable rationale (warns below)."""
    rationales = _materialized(project, "rationales")
    if rationales.height == 0:
        return AssetCheckResult(passed=True, metadata={"parse_rate": 1.0, "failed": 0})
    ok = rationales.filter(pl.col("error").is_null() & (pl.col("n_steps") > 0)).height
    rate = ok / max(rationales.height, 1)
    return AssetCheckResult(
        passed=rate >= 0.95,
        severity=AssetCheckSeverity.WARN,
        metadata={"parse_rate": rate, "failed": rationales.height - ok},
    )


@asset_check(asset=AssetKey("skill_slices"), automation_condition=CHECK)
def cluster_names_deduplicated(
    project: ProjectResource, skill_slices: pl.DataFrame
) -> AssetCheckResult:
    """Fewer than 1% of slice names have a near-duplicate at the same level (warns above).

    Two names of the taxonomy (``macroeconomics``, ``microeconomics``) are distinct skills
    by construction, so such a pair does not count; a free-text name close to either does.
    """
    from skill_assets.analysis.slices import (
        canonical_names,
        default_threshold,
        near_duplicate_pairs,
        near_duplicate_threshold,
        share_in_pairs,
    )

    embedder = project.embedder()
    threshold = project.project.registry.slices.threshold or default_threshold(embedder.name)
    dup_threshold = near_duplicate_threshold(threshold)
    mentions = _materialized(project, "skill_mentions", ["level", "skill_name", "provenance"])
    canonical = canonical_names(mentions)
    store = project.vector_store()
    rates, examples = {}, []
    for level in sorted(skill_slices["level"].unique().to_list()):
        names = skill_slices.filter(pl.col("level") == level)["name"].unique().sort().to_list()
        vecs, _ = store.vectors_for(names, embedder)
        canon = {name for lvl, name in canonical if lvl == level}
        pairs = near_duplicate_pairs(names, vecs, dup_threshold, canon)
        rates[str(level)] = share_in_pairs(pairs, len(names))
        examples += [f"L{level}: {a!r} ~ {b!r} ({c:.3f})" for a, b, c in pairs[:5]]
    return AssetCheckResult(
        passed=max(rates.values(), default=0.0) < 0.01,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "near_duplicate_rate_by_level": rates,
            "threshold": dup_threshold,
            "taxonomy_names_exempt": len(canonical),
            "closest_pairs": examples[:20],
        },
    )


@asset_check(asset=AssetKey("routing_evaluation"), automation_condition=CHECK)
def routing_beats_best_single(routing_evaluation: pl.DataFrame) -> AssetCheckResult:
    """The skill policy (leave-one-out) is at least as accurate as the best single model."""
    loo = routing_evaluation.filter(pl.col("scheme") == "loo")
    acc = dict(zip(loo["router"].to_list(), loo["accuracy"].to_list(), strict=True))
    policy, best = acc.get("skill_policy"), acc.get("best_single")
    passed = policy is not None and best is not None and policy >= best
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"skill_policy": policy, "best_single": best},
    )


@asset_check(asset=AssetKey("skill_verification"), automation_condition=CHECK)
def listed_skills_relevant(
    project: ProjectResource, skill_verification: pl.DataFrame
) -> AssetCheckResult:
    """The verifier judges at least `validation.min_listed_relevance` of listed skills
    relevant, and listed skills more often than negatives (warns otherwise)."""
    from skill_assets.analysis.validation import confusion, relevance_rates

    bar = project.project.registry.validation.min_listed_relevance
    if skill_verification.height == 0:
        return AssetCheckResult(passed=True, metadata={"status": "nothing verified", "bar": bar})
    listed, negative = relevance_rates(confusion(skill_verification))
    passed = listed is not None and listed >= bar and (negative is None or listed > negative)
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"listed_relevance": listed, "negative_relevance": negative, "bar": bar},
    )


ALL_CHECKS = [
    instance_ids_unique,
    rationale_parse_rate,
    cluster_names_deduplicated,
    routing_beats_best_single,
    listed_skills_relevant,
]
