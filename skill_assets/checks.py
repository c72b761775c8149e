"""Asset checks: invariants that must hold, and quality bars that warn."""

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from resources.project import ProjectResource
from skill_assets.assets import annotate, benchmark_instances, routing_evaluation, skill_slices


def _frame(value) -> pl.DataFrame:
    """Checks may receive one partition's frame or a dict of partitions."""
    if isinstance(value, dict):
        frames = [v for v in value.values() if v is not None]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return value


@asset_check(asset=benchmark_instances, blocking=True)
def instance_ids_unique(benchmark_instances) -> AssetCheckResult:
    """No two instances share a uid."""
    benchmark_instances = _frame(benchmark_instances)
    dup = benchmark_instances.height - benchmark_instances["uid"].n_unique()
    return AssetCheckResult(passed=dup == 0, metadata={"duplicates": dup})


@asset_check(asset=annotate.keys_by_output_name["rationales"])
def rationale_parse_rate(rationales) -> AssetCheckResult:
    """At least 95% of instances got a usable rationale (warns below)."""
    rationales = _frame(rationales)
    ok = rationales.filter(pl.col("error").is_null() & (pl.col("n_steps") > 0)).height
    rate = ok / max(rationales.height, 1)
    return AssetCheckResult(
        passed=rate >= 0.95,
        severity=AssetCheckSeverity.WARN,
        metadata={"parse_rate": rate, "failed": rationales.height - ok},
    )


@asset_check(asset=skill_slices)
def cluster_names_deduplicated(
    project: ProjectResource, skill_slices: pl.DataFrame
) -> AssetCheckResult:
    """Fewer than 1% of slice names have a near-duplicate at the same level (warns above)."""
    from skill_assets.slices import default_threshold, near_duplicate_rate

    embedder = project.embedder()
    threshold = project.project.registry.slices.threshold or default_threshold(embedder.name)
    store = project.vector_store()
    rates = {}
    worst = 0.0
    for level in sorted(skill_slices["level"].unique().to_list()):
        names = skill_slices.filter(pl.col("level") == level)["name"].unique().sort().to_list()
        vecs, _ = store.vectors_for(names, embedder)
        rate = near_duplicate_rate(names, vecs, threshold)
        rates[str(level)] = rate
        worst = max(worst, rate)
    return AssetCheckResult(
        passed=worst < 0.01,
        severity=AssetCheckSeverity.WARN,
        metadata={"near_duplicate_rate_by_level": rates, "threshold": threshold},
    )


@asset_check(asset=routing_evaluation)
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


ALL_CHECKS = [
    instance_ids_unique,
    rationale_parse_rate,
    cluster_names_deduplicated,
    routing_beats_best_single,
]
