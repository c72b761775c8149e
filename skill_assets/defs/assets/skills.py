"""Group skills: rationales and skill mentions per instance, the embedded skill names and
the skill slices clustered from them."""

import time

import polars as pl
from dagster import AssetExecutionContext, AssetOut, MetadataValue, multi_asset

from skill_assets.defs.assets._common import (
    SYNC,
    aggregate_asset,
    all_failed,
    concat,
    llm_meta,
    output,
    preview,
)
from skill_assets.defs.partitions import benchmark_partitions
from skill_assets.defs.sources import skills_source
from skill_assets.resources.call_stats import CallStats
from skill_assets.resources.project import ProjectResource


@multi_asset(
    partitions_def=benchmark_partitions,
    group_name="skills",
    outs={
        "rationales": AssetOut(code_version="2", automation_condition=SYNC),
        "skill_mentions": AssetOut(code_version="2", automation_condition=SYNC),
    },
    deps=[skills_source],
)
def annotate(
    context: AssetExecutionContext, project: ProjectResource, benchmark_instances: pl.DataFrame
):
    """One rationale per instance (taxonomy or LLM annotator) and its skill mentions."""
    from skill_assets.annotate.dispatch import annotate_instances
    from skill_assets.annotate.imported_skills import import_benchmark_skills

    proj = project.project
    name = context.partition_key
    t0 = time.perf_counter()
    imported = import_benchmark_skills(proj, name, benchmark_instances)
    if imported is not None:
        rationales, mentions = imported
        stats = CallStats()
        context.log.info(f"{name}: skills imported ({mentions['uid'].n_unique()} instances)")
    else:
        rationales, mentions, stats = annotate_instances(
            benchmark_instances, proj, project, log=context.log.info
        )
    elapsed = time.perf_counter() - t0
    errors = rationales.filter(pl.col("error").is_not_null()).height
    parse_rate = 1 - errors / max(rationales.height, 1)
    # Calls that never returned are retried by the next run; a returned rationale that
    # does not parse is kept as it is (asking again would return the same text).
    failed_calls = rationales.filter(
        pl.col("error").is_not_null() & ~pl.col("error").str.starts_with("parse:")
    )
    failure_table = (
        failed_calls.group_by(pl.col("error").str.extract(r"^(\w+)").alias("error_type"))
        .len()
        .sort("len", descending=True)
    )
    if rationales.height and failed_calls.height == rationales.height:
        raise all_failed(f"rationales [{name}]", failed_calls.height, failed_calls["error"][0])
    common = {"seconds": round(elapsed, 2), **llm_meta(stats)}
    yield output(
        rationales,
        output_name="rationales",
        parse_rate=parse_rate,
        parse_errors=errors - failed_calls.height,
        failures=failed_calls.height,
        failures_by_type=preview(failure_table),
        annotator=rationales["annotator_model"][0] if rationales.height else "",
        instances_without_skills=rationales.filter(pl.col("n_steps") == 0).height,
        **common,
    )
    top = (
        mentions.filter(pl.col("level") == 0)
        .group_by("skill_name")
        .agg(pl.col("uid").n_unique().alias("instances"))
        .sort("instances", descending=True)
    )
    yield output(
        mentions,
        output_name="skill_mentions",
        distinct_skill_names=mentions["skill_name"].n_unique(),
        top_level_skills=preview(top, 20),
    )


@aggregate_asset(
    group_name="skills", code_version="1", deps=["embedder_settings", "benchmark_names"]
)
def skill_embeddings(context: AssetExecutionContext, project: ProjectResource, skill_mentions):
    """Distinct skill names with counts; their vectors live in LanceDB (only new names embedded)."""
    from skill_assets.analysis.slices import distinct_names

    proj = project.project
    mentions = concat(skill_mentions)
    names = distinct_names(mentions)
    store = project.vector_store()
    embedder = project.embedder()
    _, new = store.vectors_for(names["skill_name"].unique().sort().to_list(), embedder)
    context.log.info(f"{names.height} distinct skill names, {new} newly embedded")
    return output(
        names,
        distinct_names=names.height,
        newly_embedded=new,
        embedder=embedder.name,
        lancedb=str(proj.lancedb_dir),
    )


@aggregate_asset(
    group_name="skills",
    code_version="3",
    deps=["embedder_settings", "slices_settings", "benchmark_names"],
)
def skill_slices(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_mentions,
    skill_embeddings: pl.DataFrame,
):
    """Skill slices: clustered skill names per level, with member instances and parent links."""
    from skill_assets.analysis.slices import build_slices, default_threshold

    proj = project.project
    mentions = concat(skill_mentions)
    embedder = project.embedder()
    names = skill_embeddings["skill_name"].unique().sort().to_list()
    vecs, _ = project.vector_store().vectors_for(names, embedder)
    threshold = proj.registry.slices.threshold or default_threshold(embedder.name)
    slices, _mapping = build_slices(mentions, dict(zip(names, vecs, strict=True)), threshold)
    big = slices.filter(pl.col("n") >= proj.registry.slices.min_slice_size)
    return output(
        slices,
        slices=slices.height,
        slices_at_min_size=big.height,
        levels=MetadataValue.json(
            {str(k): v for k, v in slices.group_by("level").len().sort("level").iter_rows()}
        ),
        threshold=threshold,
    )
