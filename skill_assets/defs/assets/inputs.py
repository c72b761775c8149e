"""Group inputs: a benchmark's validated instances and a model's per-instance results
(imported from a file or run live)."""

import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    MultiToSingleDimensionPartitionMapping,
    asset,
)

from skill_assets.core.schemas import RESULTS, conform
from skill_assets.defs.assets._common import SYNC, all_failed, llm_meta, output
from skill_assets.defs.partitions import benchmark_model_partitions, benchmark_partitions
from skill_assets.defs.sources import benchmark_file, results_file
from skill_assets.ingest.importers import format_key, load_results
from skill_assets.ingest.instances import load_benchmark
from skill_assets.resources.call_stats import CallStats, JudgeStats
from skill_assets.resources.project import ProjectResource


@asset(
    partitions_def=benchmark_partitions,
    group_name="inputs",
    deps=[benchmark_file],
    automation_condition=SYNC,
    code_version="1",
)
def benchmark_instances(context: AssetExecutionContext, project: ProjectResource):
    """Validated instances of one benchmark (instance_id, question, options, answer, metadata)."""
    proj = project.project
    name = context.partition_key
    df = load_benchmark(proj, name)
    mc = df.filter(pl.col("options").is_not_null()).height
    return output(
        df,
        instances=df.height,
        multiple_choice=mc,
        source=str(proj.benchmark_path(name)),
    )


@asset(
    partitions_def=benchmark_model_partitions,
    group_name="inputs",
    ins={
        "benchmark_instances": AssetIn(
            partition_mapping=MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="benchmark"
            )
        )
    },
    deps=[
        AssetDep(
            results_file,
            partition_mapping=MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="model"
            ),
        )
    ],
    automation_condition=SYNC,
    code_version="1",
)
def model_results(
    context: AssetExecutionContext, project: ProjectResource, benchmark_instances: pl.DataFrame
):
    """Per-instance results of one model on one benchmark: imported from a file or run live."""
    proj = project.project
    keys = context.partition_key.keys_by_dimension
    model = keys["model"]
    entry = proj.model(model)
    stats = CallStats()
    extra: dict = {}
    failures = 0
    path = proj.results_path(model)
    if path is None:
        from skill_assets.ingest.live import run_live_evaluation

        # A scheduled re-evaluation asks the provider again instead of reading the cache.
        epoch = context.run.tags.get("skill_slices/fresh_live")
        if epoch:
            proj.set_live_epoch(model, epoch)
        client = project.llm_client(entry, cache_epoch=proj.live_epoch(model))
        judge = project.llm_client(proj.registry.judge) if proj.registry.judge else None
        df, fail_df, stats = run_live_evaluation(
            benchmark_instances,
            entry,
            client,
            log=context.log.info,
            judge_client=judge,
            batch_state_dir=proj.state_dir / "batches",
        )
        failures = fail_df.height
        if failures and failures == benchmark_instances.height:
            raise all_failed(
                f"model_results [{context.partition_key}]", failures, fail_df["error"][0]
            )
        judged = stats.judge or JudgeStats()
        if judge is not None:  # the judge's calls and cost count toward this asset's totals
            stats = stats.merge(judge.stats)
        extra = {
            "judged": judged.judged,
            "judge_overturned": judged.overturned,
            "judge_failed": judged.failed,
        }
    else:
        df = load_results(
            path,
            model,
            keys["benchmark"],
            benchmark_instances,
            entry.format,
            entry.options,
            format_key(proj, "models", model),
        )
    df = conform(df, RESULTS)
    acc = float(df.select(pl.col("correct").mean()).item()) if df.height else None
    return output(
        df,
        accuracy=acc,
        coverage=df.height / max(benchmark_instances.height, 1),
        failures=failures,
        **extra,
        **llm_meta(stats),
    )
