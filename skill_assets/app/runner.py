"""`skill-slices run`: record changed inputs, let Dagster decide what is stale, run its jobs."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import polars as pl
from dagster import AssetKey
from filelock import FileLock, Timeout

from skill_assets.app import state_health
from skill_assets.core.registry import Project, RegistryError, load_project
from skill_assets.core.store import read_asset

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_dagster_home(project: Project) -> Path:
    """Point DAGSTER_HOME at the project's state folder, with our instance settings.

    The repository's `dagster.yaml` (or the file SKILL_SLICES_INSTANCE_CONFIG names) gives
    the storage folder through the environment variable SKILL_SLICES_DAGSTER_HOME (so `dagster dev` from the repository root finds the
    demo's instance through `.env`); the project's copy has that folder written in.
    """
    import yaml

    home = project.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    # Another instance configuration (e.g. PostgreSQL storage, docs/deploy.md) in place of
    # the repository's SQLite one.
    src = Path(os.environ.get("SKILL_SLICES_INSTANCE_CONFIG") or REPO_ROOT / "dagster.yaml")
    dst = home / "dagster.yaml"
    if src.exists():

        def fill(node):
            if node == {"env": "SKILL_SLICES_DAGSTER_HOME"}:
                return str(home)
            if isinstance(node, dict):
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, list):
                return [fill(v) for v in node]
            return node

        text = yaml.safe_dump(fill(yaml.safe_load(src.read_text())), sort_keys=False)
        if not dst.exists() or dst.read_text() != text:
            tmp = dst.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(dst)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class ProjectBusy(RegistryError):
    """Another run holds the project's lock."""


@contextmanager
def project_lock(project: Project, wait: bool = True, log=print) -> Iterator[None]:
    """One run per project at a time (an OS file lock, released even on SIGKILL).

    A second run waits for the first (``wait=False``: raises :class:`ProjectBusy`), so two
    runs never materialize the same partitions side by side. The holder's pid is kept in
    ``run.holder`` beside ``run.lock`` so the waiting run can name it.
    """
    project.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(project.state_dir / "run.lock", thread_local=False, preserve_lock_file=True)
    holder_path = project.state_dir / "run.holder"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _read_holder(holder_path)
        if not wait:
            raise ProjectBusy(
                f"{project.root}: another run is in progress ({holder}); try again when it ends"
            ) from None
        log(f"another run is in progress ({holder}); waiting for it to finish")
        lock.acquire()
    try:
        holder_path.write_text(f"pid {os.getpid()}\n")
        yield
    finally:
        holder_path.unlink(missing_ok=True)
        lock.release()


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown process"
    except OSError:  # the holder is between taking the lock and writing its pid
        return "unknown process"


def preflight(project: Project) -> dict[str, pl.DataFrame]:
    """Validate every input before anything is written; returns instances per benchmark."""
    from skill_assets.annotate.imported_skills import import_benchmark_skills
    from skill_assets.ingest.importers import check_results, detect_format, format_key, get_reader
    from skill_assets.ingest.instances import load_benchmark
    from skill_assets.ingest.results import check_generic_options, check_unknown

    instances = {b.name: load_benchmark(project, b.name) for b in project.registry.benchmarks}
    for name, df in instances.items():
        import_benchmark_skills(project, name, df)  # bring-your-own skills files are valid
    ids = {name: set(df["instance_id"].to_list()) for name, df in instances.items()}
    for i, m in enumerate(project.registry.models):
        path = project.results_path(m.name)
        if path is None:
            continue
        fmt = m.format or detect_format(path)
        key = format_key(project, "models", m.name)
        if get_reader(fmt, key) is not None:
            check_results(path, m.name, instances, fmt, m.options, key)
        else:
            check_generic_options(f"{project.registry_path}: key 'models[{i}].options", m.options)
            check_unknown(
                path, m.name, ids, m.format, bool((m.options or {}).get("ignore_unknown"))
            )
    return instances


def sync_partitions(instance, project: Project) -> None:
    """Make the dynamic partitions exactly the registry's benchmarks and models."""
    from dagster import AddDynamicPartitionsRequest

    from skill_assets.defs.automation import sync_partitions_requests

    for req in sync_partitions_requests(instance, project):
        if isinstance(req, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for gone in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, gone)


def before_deciding(project: Project, instance) -> None:
    """Pre-run state checks, called once before Dagster decides what to materialize.

    The place for checks on the project's state files (their damage would make Dagster's
    decision wrong). Runs of an earlier `run` that was killed are closed here.
    """
    from skill_assets.defs.automation import fail_orphaned_cli_runs

    fail_orphaned_cli_runs(instance)


def due_runs(defs, instance) -> list[tuple[str, str | None, list[str]]]:
    """The runs Dagster's automation conditions request now: (job, partition, assets).

    This is the evaluation the daemon's automation sensor makes on each tick; the CLI
    launches its requests itself instead of waiting for a tick.
    """
    from dagster import evaluate_automation_conditions

    from skill_assets.defs.automation import JOB_OF_ASSET

    result = evaluate_automation_conditions(defs, instance)
    runs: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for name, job in JOB_OF_ASSET.items():
        for part in sorted(result.get_requested_partitions(AssetKey(name)), key=str):
            runs[(job, part)].append(name)
    for names in runs.values():
        # rationales and skill_mentions come from one step (`annotate`): run them together
        if {"rationales", "skill_mentions"} & set(names):
            names.extend(n for n in ("rationales", "skill_mentions") if n not in names)
    order = {"benchmark_job": 0, "results_job": 1, "analysis_job": 2}
    return [
        (job, part, names)
        for (job, part), names in sorted(
            runs.items(), key=lambda kv: (order[kv[0][0]], str(kv[0][1]))
        )
    ]


def _in_progress(instance) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    return instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
    )


def _holding_run(instance, part: str | None, names: list[str]) -> str | None:
    """The id of a run in progress (UI, sensor, schedule, another `run`) that targets
    one of `names` on partition `part`, or None. Checked just before each launch: the evaluation
    that requested a wave may be minutes old when its last run starts."""
    # A queued run is not counted: the run queue's tag limit (one run per partition) keeps
    # it waiting while this one runs, and a queue nobody serves would stall `run`.
    busy = _in_progress(instance)
    wanted = {AssetKey(n) for n in names}
    for rec in busy:
        run = rec.dagster_run
        if run.tags.get("dagster/partition") != part:
            continue
        if run.asset_selection is None or wanted & set(run.asset_selection):
            return run.run_id
    return None


def _unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside Dagster's step-failure wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "user_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


def run_project(
    project_dir: str | Path,
    progress: bool = True,
    log=print,
    wait: bool = True,
    executor: str = "in_process",
) -> dict:
    """Materialize everything Dagster reports as not fresh; returns the run summary.

    Runs on one project are serialised by :func:`project_lock` (``wait=False``: fail fast);
    runs launched from the UI or by the daemon are kept apart by Dagster's own controls
    (``in_progress`` in the automation condition, pools, tag concurrency limits).
    ``executor``: ``in_process`` (one process) or ``multiprocess`` (Dagster's multiprocess
    executor; the runs of one wave, e.g. several benchmark partitions, run in parallel).
    """
    project = load_project(project_dir)
    with project_lock(project, wait=wait, log=log):
        return _run_locked(project, progress, log, executor)


def _run_locked(project: Project, progress: bool, log, executor: str) -> dict:
    from skill_assets.defs.definitions import build_definitions
    from skill_assets.defs.sources import report_changed_inputs

    preflight(project)
    prepare_dagster_home(project)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    defs = build_definitions(project.root)
    # Verifies the state first: damaged asset files are wiped and re-materialized below.
    instance = state_health.checked_instance(project, log=log)
    try:
        before_deciding(project, instance)
        sync_partitions(instance, project)
        report_changed_inputs(instance, project)
        run_ids: list[str] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc="materializing", unit="run", leave=False)
        done: set[tuple[str, str | None]] = set()
        left: list[dict] = []  # partitions another run took: named in the summary
        while True:
            # What this `run` already executed is not repeated in it (e.g. a partition whose
            # LLM calls failed again stays due for the next `run`).
            runs = [
                (job, part, names)
                for job, part, names in due_runs(defs, instance)
                if any((n, part) not in done for n in names)
            ]
            if not runs:
                busy = _in_progress(instance)
                if not busy:
                    break
                # A run launched from the UI or by the daemon holds some partitions: wait
                # for it, then ask Dagster again.
                log(
                    f"waiting for run {busy[0].dagster_run.run_id} ({busy[0].dagster_run.job_name})"
                )
                time.sleep(2)
                continue
            if bar:
                bar.total = (bar.total or 0) + len(runs)
            run_ids += _execute_wave(defs, instance, project, runs, executor, bar, left)
            done |= {(n, part) for _, part, names in runs for n in names}
        if bar:
            bar.close()
        summary = run_summary(instance, project, run_ids, defs)
        if left:
            # If such a run fails, its partitions stay due: the next `run` takes them.
            summary["held_elsewhere"] = left
        return summary
    finally:
        instance.dispose()


def _run_tags(job: str, part: str | None) -> dict:
    from skill_assets.defs.automation import HOST_TAG, PID_TAG, SOURCE_TAG

    return {SOURCE_TAG: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _execute_wave(
    defs, instance, project, runs, executor: str, bar, left: list[dict] | None = None
) -> list[str]:
    """Execute the runs requested by one evaluation; each is a named job of the Definitions.
    A partition that another run took meanwhile is appended to `left` (job, partition and
    that run's id) instead of being run."""
    if executor == "multiprocess":
        return _execute_multiprocess(instance, project, runs, bar)
    ids, causes = [], []
    for job, part, names in runs:
        if bar:
            bar.set_postfix_str(f"{job} {part or ''}"[:60])
        holder = _holding_run(instance, part, names)
        if holder is not None:
            # Launched by the daemon or the UI since Dagster decided: left to that run (the
            # next evaluation of `run` waits for it and asks again).
            if left is not None:
                left.append({"job": job, "partition": part, "run_id": holder})
            continue
        try:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                partition_key=part,
                asset_selection=[AssetKey(n) for n in names],
                run_config=QUIET,
                tags=_run_tags(job, part),
            )
        except Exception as e:  # surface the user's error, not Dagster's wrapper
            inner = _unwrap(e)
            if not isinstance(inner, RegistryError):
                raise
            # The other runs of this wave do not depend on this one: run them, so that
            # every failing partition is reported at once, not one per `run`.
            causes.append(str(inner))
            continue
        ids.append(result.run_id)
        if bar:
            bar.update(1)
    if causes:
        raise RegistryError("\n".join(dict.fromkeys(causes)))
    return ids


def _execute_multiprocess(instance, project, runs, bar) -> list[str]:
    """The runs of one wave side by side, each in a process of its own (`python -m
    skill_assets.app.runner`), each on Dagster's multiprocess executor: its steps run in their
    own processes, which load the job from `skill_assets.defs.definitions` for SKILL_SLICES_PROJECT."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "SKILL_SLICES_PROJECT": str(project.root)}
    procs = []
    for job, part, names in runs:
        args = [sys.executable, "-m", "skill_assets.app.runner", job, part or "", ",".join(names)]
        procs.append(
            (job, part, subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True))
        )
    ids, causes = [], []
    for job, part, proc in procs:  # wait for every run of the wave, then report them all
        out, _ = proc.communicate()
        lines = out.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or not result.get("success"):
            causes.append(
                f"{job} {part or ''}: run {result.get('run_id', '?')} failed:"
                f" {result.get('error', 'see the Dagster UI')}"
            )
            continue
        ids.append(result["run_id"])
        if bar:
            bar.update(1)
    if causes:
        raise RegistryError("\n".join(causes))
    return ids


def _execute_one_multiprocess(job: str, part: str | None, names: list[str]) -> dict:
    """One run of a named job on the multiprocess executor (in this process, steps in
    child processes); the instance is DAGSTER_HOME's."""
    from dagster import DagsterInstance, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repo = ReconstructableRepository.for_module(
        "skill_assets.defs.definitions", "defs", str(REPO_ROOT)
    )
    from skill_assets.defs.partitions import benchmark_model_partitions, benchmark_partitions

    tags = _run_tags(job, part)
    if part is not None:
        # the partition tags Dagster itself gives a run (one per dimension for results_job)
        pdef = benchmark_model_partitions if job == "results_job" else benchmark_partitions
        tags.update(pdef.get_tags_for_partition_key(part))
    with DagsterInstance.get() as instance:
        result = execute_job(
            repo.get_reconstructable_job(job),
            instance=instance,
            run_config={**QUIET, "execution": {"config": {"multiprocess": {}}}},
            tags=tags,
            asset_selection=[AssetKey(n) for n in names],
        )
        error = None
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            info = failure.step_failure_data.error if failure else None
            error = info.message if info else "run failed"
        return {"run_id": result.run_id, "success": result.success, "error": error}


def run_summary(instance, project: Project, run_ids: list[str], defs) -> dict:
    """What the runs materialized, the LLM calls they made, and every check's latest
    evaluation in the instance (whether or not these runs evaluated it)."""
    from dagster import DagsterEventType

    materialized: list[str] = []
    skipped: dict[str, str] = {}  # asset → why (validation without a verifier, ...)
    calls: dict[str, Any] = {"made": 0, "cached": 0, "failed": 0, "by_purpose": {}}
    cost = 0.0
    runs = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        runs.append(
            {"run_id": run_id, "job": run.job_name, "partition": run.tags.get("dagster/partition")}
        )
        for ev in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            mat = ev.asset_materialization
            key = mat.asset_key.to_user_string()
            md = mat.metadata
            status = str(getattr(md.get("status"), "value", "") or "")
            if status.startswith("skipped"):
                skipped[key] = status.removeprefix("skipped").lstrip(": ")
            elif key not in materialized:
                materialized.append(key)
            calls["made"] += int(getattr(md.get("llm_calls_made"), "value", 0) or 0)
            calls["cached"] += int(getattr(md.get("llm_calls_cached"), "value", 0) or 0)
            calls["failed"] += int(getattr(md.get("llm_calls_failed"), "value", 0) or 0)
            cost += float(getattr(md.get("llm_cost_usd"), "value", 0.0) or 0.0)
            by_p = getattr(md.get("llm_calls_by_purpose"), "value", None) or {}
            for purpose, c in by_p.items():
                slot = calls["by_purpose"].setdefault(purpose, {"made": 0, "cached": 0})
                slot["made"] += int(c.get("made", 0))
                slot["cached"] += int(c.get("cached", 0))
    calls["cost_usd"] = round(cost, 6)
    checks, checks_failed = latest_checks(instance, defs)
    return {
        "materialized": materialized,
        **({"skipped": skipped} if skipped else {}),
        "llm_calls": calls,
        "routing": routing_summary(project),
        "checks": checks,
        "checks_failed": checks_failed,
        "runs": runs,
    }


def latest_checks(instance, defs) -> tuple[dict[str, str], dict[str, dict]]:
    """The latest completed evaluation of every asset check: status by name, and the
    failed ones with their severity and metadata."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as S,
    )

    status: dict[str, str] = {}
    failed: dict[str, dict] = {}
    keys = sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string())
    for key in keys:
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        hist = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, status={S.SUCCEEDED, S.FAILED}
        )
        if not hist or hist[0].event is None:
            status[name] = "not evaluated"
            continue
        ev = hist[0].event.dagster_event.event_specific_data
        status[name] = "passed" if ev.passed else "failed"
        if not ev.passed:
            failed[name] = {
                "severity": ev.severity.value,
                **{k: getattr(v, "value", v) for k, v in ev.metadata.items()},
            }
    return status, failed


def routing_summary(project: Project) -> dict:
    """Leave-one-out accuracies of the policy and the headline baselines."""
    ev = read_asset(project, "routing_evaluation")
    if ev is None or ev.height == 0:
        return {
            "policy": None,
            "best_single": None,
            "metadata_router": None,
            "oracle": None,
            "n": 0,
        }
    loo = ev.filter(pl.col("scheme") == "loo")
    acc = {r: a for r, a in zip(loo["router"].to_list(), loo["accuracy"].to_list(), strict=True)}
    n = int(cast(int, loo["n"].max())) if loo.height else 0

    def get(k):
        v = acc.get(k)
        return None if v is None else round(float(v), 4)

    return {
        "policy": get("skill_policy"),
        "best_single": get("best_single"),
        "metadata_router": get("metadata_router"),
        "oracle": get("oracle"),
        "n": n,
    }


if __name__ == "__main__":  # one run of a wave, started by _execute_multiprocess
    import json
    import sys
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    job_name, partition, assets = sys.argv[1], sys.argv[2] or None, sys.argv[3].split(",")
    print(json.dumps(_execute_one_multiprocess(job_name, partition, assets)))
