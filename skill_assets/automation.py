"""Sensors and schedules: keep partitions in step with the registry, re-run live models."""

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from resources.project import ProjectResource
from skill_assets.partitions import benchmark_partitions, model_partitions, multi_key

PER_BENCHMARK = [
    AssetKey("benchmark_instances"),
    AssetKey("rationales"),
    AssetKey("skill_mentions"),
]


@sensor(
    name="registry_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=AssetSelection.all(),
)
def registry_sensor(context: SensorEvaluationContext, project: ProjectResource):
    """Adds partitions for benchmarks and models new to the registry and requests their runs."""
    reg = project.reload().registry
    have_b = set(context.instance.get_dynamic_partitions(benchmark_partitions.name))
    have_m = set(context.instance.get_dynamic_partitions(model_partitions.name))
    new_b = [b.name for b in reg.benchmarks if b.name not in have_b]
    new_m = [m.name for m in reg.models if m.name not in have_m]
    if not new_b and not new_m:
        return SkipReason("registry unchanged")
    requests = [
        RunRequest(partition_key=b, asset_selection=PER_BENCHMARK, run_key=f"benchmark:{b}")
        for b in new_b
    ]
    for b in reg.benchmarks:
        for m in reg.models:
            if b.name in new_b or m.name in new_m:
                key = multi_key(b.name, m.name)
                requests.append(
                    RunRequest(
                        partition_key=key,
                        asset_selection=[AssetKey("model_results")],
                        run_key=f"results:{key}",
                    )
                )
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            benchmark_partitions.build_add_request(new_b),
            model_partitions.build_add_request(new_m),
        ],
    )


@schedule(
    name="weekly_live_reevaluation",
    cron_schedule="0 3 * * 1",
    target=AssetSelection.assets("model_results"),
    default_status=DefaultScheduleStatus.STOPPED,
)
def weekly_live_reevaluation(context: ScheduleEvaluationContext, project: ProjectResource):
    """Re-runs live model evaluations weekly: providers change models behind the same name.

    Imported results are not re-read here; they refresh only when their file changes.
    """
    reg = project.reload().registry
    live = [m.name for m in reg.models if m.live]
    if not live:
        return SkipReason("no live models in the registry")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        RunRequest(
            partition_key=multi_key(b.name, m),
            run_key=f"weekly:{stamp}:{b.name}:{m}",
            tags={"skill_slices/fresh_live": stamp},
        )
        for b in reg.benchmarks
        for m in live
    ]


# Dagster's built-in automation sensor starts STOPPED; aggregates should follow upstream.
automation_sensor = AutomationConditionSensorDefinition(
    name="automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
)
