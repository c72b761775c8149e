"""Group validation: the paper's skill verification (§2) and probe consistency (§4)."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue

from skill_assets.core.schemas import RESULTS
from skill_assets.defs.assets._common import aggregate_asset, concat, llm_meta, output, preview
from skill_assets.present.safe_markdown import safe_md
from skill_assets.resources.project import ProjectResource


def _probe_models(proj) -> list:
    """Models the probes go to: `validation.probe_models`, else every live model."""
    names = proj.registry.validation.probe_models
    if names is not None:
        return [proj.model(n) for n in names]
    return [m for m in proj.registry.models if m.live]


@aggregate_asset(
    group_name="validation", code_version="1", deps=["validation_settings", "benchmark_names"]
)
def skill_verification(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_mentions,
    rationales,
    benchmark_instances,
    skill_embeddings: pl.DataFrame,
):
    """Paper §2: a verifier LLM judges listed skills mixed with sampled negatives."""
    from skill_assets.analysis.validation import (
        VERIFICATION,
        confusion,
        confusion_markdown,
        relevance_rates,
        run_verification,
    )

    proj = project.project
    settings = proj.registry.validation
    if settings.verifier is None:
        return output(
            pl.DataFrame(schema=VERIFICATION),
            status="skipped: set validation.verifier in the registry",
        )
    mentions = concat(skill_mentions)
    names = skill_embeddings["skill_name"].unique().sort().to_list()
    vecs, _ = project.vector_store().vectors_for(names, project.embedder())
    client = project.llm_client(settings.verifier)
    df = run_verification(
        mentions,
        concat(rationales),
        concat(benchmark_instances),
        dict(zip(names, vecs, strict=True)),
        client,
        settings,
        log=context.log.info,
    )
    counts = confusion(df)
    listed_rate, negative_rate = relevance_rates(counts)
    return output(
        df,
        status="verified",
        verifier=f"{settings.verifier.provider}:{settings.verifier.model}",
        instances=df["uid"].n_unique() if df.height else 0,
        listed_relevance=listed_rate,
        negative_relevance=negative_rate,
        failed_instances=df.filter(pl.col("error").is_not_null())["uid"].n_unique(),
        confusion=MetadataValue.json(counts),
        confusion_matrix=safe_md(confusion_markdown(df)),
        **llm_meta(client.stats),
    )


@aggregate_asset(
    group_name="validation",
    code_version="1",
    deps=["validation_settings", "benchmark_names", "model_names"],
)
def probe_consistency(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    slice_accuracy: pl.DataFrame,
    skill_mentions,
    benchmark_instances,
    model_results,
):
    """Paper §4: claims and probe questions from the rationale spans of the lowest-, median-
    and highest-accuracy slices; the share of answers inconsistent with the claim."""
    from skill_assets.analysis.validation import (
        PROBES,
        inconsistency_table,
        run_probing,
    )

    proj = project.project
    settings = proj.registry.validation
    models = _probe_models(proj)
    if settings.verifier is None or not models:
        why = "set validation.verifier" if settings.verifier is None else "no live model to probe"
        return output(pl.DataFrame(schema=PROBES), status=f"skipped: {why}")
    verifier = project.llm_client(settings.verifier)
    clients = {m.name: project.llm_client(m, cache_epoch=proj.live_epoch(m.name)) for m in models}
    df = run_probing(
        skill_slices,
        slice_accuracy,
        concat(skill_mentions),
        concat(benchmark_instances),
        concat(model_results, RESULTS),
        verifier,
        clients,
        settings.probe_instances_per_slice,
        settings.seed,
        log=context.log.info,
    )
    table = inconsistency_table(df)
    stats = verifier.stats.merge(*(c.stats for c in clients.values()))
    return output(
        df,
        status="probed",
        models=MetadataValue.json(sorted(clients)),
        inconsistency=preview(table, 30),
        failed=df.filter(pl.col("error").is_not_null()).height,
        **llm_meta(stats),
    )
