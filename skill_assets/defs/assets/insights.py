"""Group insights: accuracy per slice, tested findings, model evolution and the dataset view."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, TableMetadataValue

from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import RESULTS
from skill_assets.defs.assets._common import aggregate_asset, concat, output, preview
from skill_assets.present.safe_markdown import md_code, safe_md
from skill_assets.resources.project import ProjectResource


@aggregate_asset(group_name="insights", code_version="3", deps=["slices_settings", "model_names"])
def slice_accuracy(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
):
    """Accuracy of every model on every slice, with Wilson 95% intervals."""
    from skill_assets.analysis.accuracy import overall_accuracy
    from skill_assets.analysis.accuracy import slice_accuracy as compute
    from skill_assets.present.plots import accuracy_heatmap, markdown_image

    proj = project.project
    results = concat(model_results, RESULTS)
    df = compute(results, skill_slices, min_slice_size=proj.registry.slices.min_slice_size)
    overall = overall_accuracy(results)
    heat = markdown_image(accuracy_heatmap(df), "accuracy heat map (skills x models)")
    return output(
        df,
        overall_accuracy=preview(overall),
        models=results["model"].n_unique() if results.height else 0,
        small_slices=df.filter(pl.col("small")).height if df.height else 0,
        accuracy_heatmap=safe_md(heat or "*(nothing to plot)*"),
    )


@aggregate_asset(
    group_name="insights",
    code_version="4",
    deps=["slices_settings", "insights_settings", "benchmark_names", "model_names"],
)
def skill_insights(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    slice_accuracy: pl.DataFrame,
    model_results,
    skill_mentions,
    rationales,
    benchmark_instances,
):
    """Tested findings: per-model strengths/weaknesses and pairwise differences with q-values.

    Each finding is tested on the slice and against the rest of its benchmark
    (and metadata) strata; see ``skill_assets.analysis.insights``.
    """
    from skill_assets.analysis.insights import headline
    from skill_assets.analysis.insights import skill_insights as compute
    from skill_assets.present.lineage import lineage_markdown
    from skill_assets.present.report import findings_markdown

    proj = project.project
    results = concat(model_results, RESULTS)
    reg = proj.registry
    strata, columns = _strata(context, proj, results, concat(benchmark_instances))
    df = compute(
        results,
        skill_slices,
        min_slice_size=reg.insights.min_n or reg.slices.min_slice_size,
        q_level=reg.insights.q_level,
        strata=strata,
        strata_label="category" if columns else "benchmark",
        merge_overlap=reg.insights.merge_overlap,
    )
    significant = df.filter(pl.col("significant")).height if df.height else 0
    skill_level = df.filter(pl.col("level_of_finding") == "skill").height if df.height else 0
    top_findings = _top_findings(df)
    return output(
        df,
        findings=df.height,
        significant=significant,
        skill_level_findings=skill_level,
        strata=MetadataValue.json(["benchmark", *columns]),
        lineage=safe_md(
            lineage_markdown(df, skill_slices, concat(skill_mentions), concat(rationales))
        ),
        q_level=reg.insights.q_level,
        min_slice_size=reg.slices.min_slice_size,
        top_findings=top_findings,
        findings_table=safe_md(findings_markdown(df, limit=25)),
        strengths_weaknesses=safe_md(_strengths_pictures(df, slice_accuracy)),
        headline=safe_md(md_code(headline(df))),
    )


def _strata(context: AssetExecutionContext, proj, results: pl.DataFrame, instances: pl.DataFrame):
    """(strata, metadata columns in them): the configured ones, or the benchmark alone when
    the default metadata column is missing."""
    from skill_assets.analysis.insights import instance_strata

    reg = proj.registry
    columns = reg.insights.strata_columns(reg.routing)
    try:
        strata = instance_strata(results, instances, columns)
    except ValueError as e:
        if reg.insights.strata is not None:  # named explicitly: a misspelling must not pass
            raise RegistryError(f"{proj.registry_path}: {e}") from None
        context.log.warning(
            f"routing.metadata_column not in the instances; strata: benchmark ({e})"
        )
        columns = []
        strata = instance_strata(results, instances, columns)
    return strata, columns


def _top_findings(df: pl.DataFrame) -> TableMetadataValue:
    """The first findings as a Dagster metadata table."""
    from dagster import TableColumn, TableRecord, TableSchema

    from skill_assets.present.report import findings_records

    records = findings_records(df, limit=25)
    columns = {  # the metadata table's schema
        k: "float" if k == "effect_pts" else "int" if k in ("level", "n") else "string"
        for k in (records[0] if records else {"kind": None, "model": None, "skill": None})
    }
    return MetadataValue.table(
        records=[TableRecord(r) for r in records],
        schema=TableSchema(columns=[TableColumn(k, t) for k, t in columns.items()]),
    )


def _strengths_pictures(df: pl.DataFrame, slice_accuracy: pl.DataFrame) -> str:
    """Markdown strengths/weaknesses plots of the first models."""
    from skill_assets.present.plots import markdown_image, strengths_plot

    models = sorted(slice_accuracy["model"].unique().to_list()) if slice_accuracy.height else []
    pictures = []
    for m in models[:12]:  # every model is in the HTML report; metadata stays bounded
        img = markdown_image(
            strengths_plot(df, slice_accuracy, m), f"{m}: strengths and weaknesses"
        )
        if img:
            pictures.append(f"**{m}**\n\n{img}")
    return "\n\n".join(pictures) or "*(nothing to plot)*"


@aggregate_asset(
    group_name="insights",
    code_version="1",
    deps=["slices_settings", "insights_settings", "model_names"],
)
def model_evolution(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
):
    """Registered version pairs (`compare: [[old, new]]`): skills that improved/regressed most."""
    from skill_assets.analysis.evolution import evolution_summary
    from skill_assets.analysis.evolution import model_evolution as compute
    from skill_assets.present.plots import evolution_bars, markdown_image

    proj = project.project
    reg = proj.registry
    results = concat(model_results, RESULTS)
    df = compute(
        results,
        skill_slices,
        reg.compare,
        min_slice_size=reg.slices.min_slice_size,
        q_level=reg.insights.q_level,
    )
    bars = markdown_image(evolution_bars(df), "model evolution: most improved and regressed skills")
    return output(
        df,
        pairs=MetadataValue.json([list(p) for p in reg.compare]),
        significant=df.filter(pl.col("significant")).height if df.height else 0,
        summary=safe_md(md_code(evolution_summary(df))),
        evolution_bars=safe_md(bars or "*(no registered pair; add `compare: [[old, new]]`)*"),
    )


@aggregate_asset(group_name="insights", code_version="1", deps=["benchmark_names", "model_names"])
def dataset_view(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
    benchmark_instances,
):
    """Per benchmark its share of each top-level skill; per model where its accuracy comes from."""
    from skill_assets.analysis.evolution import dataset_view as compute
    from skill_assets.present.plots import dataset_plot, markdown_image

    results = concat(model_results, RESULTS)
    instances = concat(benchmark_instances)
    df = compute(results, skill_slices, instances if instances.height else None)
    picture = markdown_image(dataset_plot(df), "dataset view")
    mix = df.filter(pl.col("view") == "benchmark_mix").drop(
        "model", "weight", "accuracy", "contribution", "other_contribution"
    )
    by_skill = df.filter(pl.col("view") == "accuracy_by_skill").drop(
        "benchmark", "share_of_benchmark", "share_of_skill"
    )
    return output(
        df,
        benchmark_mix=preview(mix, 30),
        accuracy_by_skill=preview(by_skill, 30),
        dataset_plot=safe_md(picture or "*(nothing to plot)*"),
    )
