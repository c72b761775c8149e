"""Jobs, sensors and the schedule: the one way anything gets materialized.

- ``input_sensor`` keeps the dynamic partitions equal to the registry and records a new
  data version for every input file or setting that changed (``sources.py``).
- ``automation_condition_sensor`` (Dagster's own) evaluates the ``sync`` condition of every
  asset (``conditions.py``) and launches the named jobs below for what is not fresh.
- ``skill-slices run`` does the same two steps in the foreground (``runner.py``).
- ``weekly_live_reevaluation`` re-asks live models (providers change behind one name).
"""

from __future__ import annotations

import os
import socket

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from skill_assets.core.registry import RegistryError
from skill_assets.defs.partitions import benchmark_partitions, model_partitions, multi_key
from skill_assets.resources.project import ProjectResource

# Interval of both sensors: an edited input is observed on the next input tick and its
# dependants are requested on the following automation ticks.
SENSOR_INTERVAL_S = 15

PER_BENCHMARK = ["benchmark_instances", "rationales", "skill_mentions"]
AGGREGATES = [
    "skill_embeddings",
    "skill_slices",
    "slice_accuracy",
    "skill_insights",
    "routing_policy",
    "routing_evaluation",
    "model_evolution",
    "dataset_view",
    "skill_verification",
    "probe_consistency",
]

# Named jobs, one per partitioning: every run (CLI, UI, sensor, schedule) is one of these,
# so the Runs page says which assets it materialized and any run can be re-executed.
benchmark_job = define_asset_job(
    "benchmark_job",
    selection=AssetSelection.assets(*PER_BENCHMARK),
    description="Instances, rationales and skill mentions of one benchmark.",
)
results_job = define_asset_job(
    "results_job",
    selection=AssetSelection.assets("model_results"),
    description="One model's results on one benchmark (imported or run live).",
)
analysis_job = define_asset_job(
    "analysis_job",
    selection=AssetSelection.assets(*AGGREGATES),
    description="Embeddings, slices, accuracy, insights, routing and validation.",
)
ALL_JOBS = [benchmark_job, results_job, analysis_job]
JOB_OF_ASSET = {
    **{a: "benchmark_job" for a in PER_BENCHMARK},
    "model_results": "results_job",
    **{a: "analysis_job" for a in AGGREGATES},
}

SOURCE_TAG = "skill_slices/source"
PID_TAG = "skill_slices/pid"
HOST_TAG = "skill_slices/host"


def sync_partitions_requests(
    instance, project
) -> list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest]:
    """Dynamic-partition add/delete requests that make the partitions the registry's."""
    requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = []
    for pdef, wanted in (
        (benchmark_partitions, [b.name for b in project.registry.benchmarks]),
        (model_partitions, [m.name for m in project.registry.models]),
    ):
        have = set(instance.get_dynamic_partitions(pdef.name))
        new = [w for w in wanted if w not in have]
        gone = sorted(have - set(wanted))
        if new:
            requests.append(pdef.build_add_request(new))
        if gone:
            requests.append(pdef.build_delete_request(gone))
    return requests


def fail_orphaned_cli_runs(instance) -> list[str]:
    """Mark runs of a killed `skill-slices run` (its process is gone) as failed.

    Runs launched by the daemon are watched by Dagster's run monitoring; a CLI run executes
    inside the CLI process, so when that process died its run would stay "started" and keep
    its partitions "in progress" for every path.
    """
    host = socket.gethostname()
    failed = []
    records = instance.get_run_records(
        RunsFilter(
            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
            tags={SOURCE_TAG: "cli", HOST_TAG: host},
        )
    )
    for rec in records:
        pid = int(rec.dagster_run.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(rec.dagster_run, f"the process running it ({pid}) is gone")
            # A killed step never released its pool slot: release it, or the pool's next
            # step (on any path) would wait forever.
            instance.event_log_storage.free_concurrency_slots_for_run(rec.dagster_run.run_id)
            failed.append(rec.dagster_run.run_id)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@sensor(
    name="input_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
)
def input_sensor(context: SensorEvaluationContext, project: ProjectResource):
    """Keeps partitions equal to the registry and observes changed input files and settings."""
    from skill_assets.defs.sources import changed_inputs

    try:
        proj = project.reload()
        partition_requests = sync_partitions_requests(context.instance, proj)
        # Dagster records the observations before it adds the partitions, so a new
        # partition is never seen without its input versions.
        events = changed_inputs(context.instance, proj)
    except RegistryError as e:
        return SkipReason(f"registry not usable: {e}")
    fail_orphaned_cli_runs(context.instance)
    if not partition_requests and not events:
        return SkipReason("inputs unchanged")
    return SensorResult(dynamic_partitions_requests=partition_requests, asset_events=events)


@schedule(
    name="weekly_live_reevaluation",
    cron_schedule="0 3 * * 1",
    job=results_job,
    default_status=DefaultScheduleStatus.STOPPED,
)
def weekly_live_reevaluation(context: ScheduleEvaluationContext, project: ProjectResource):
    """Re-runs live model evaluations weekly: providers change models behind the same name.

    Imported results are not re-read here; they refresh only when their file changes.
    A live model's results carry a content data version, so only changed answers make
    the analysis stale.
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
            tags={"skill_slices/fresh_live": stamp, SOURCE_TAG: "schedule"},
        )
        for b in reg.benchmarks
        for m in live
    ]


# Dagster's built-in automation sensor starts STOPPED; ours runs. It is evaluated in the
# code server because the condition (conditions.NotFresh) is our own Python class.
automation_sensor = AutomationConditionSensorDefinition(
    name="automation_condition_sensor",
    target=AssetSelection.all() | AssetSelection.all_asset_checks(),
    default_status=DefaultSensorStatus.RUNNING,
    use_user_code_server=True,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    run_tags={SOURCE_TAG: "automation"},
)
