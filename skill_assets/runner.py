"""Materialize what is stale in a project, outside the UI, with Dagster's own machinery."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from skill_assets import plan, state_health
from skill_assets.registry import Project, RegistryError, load_project

REPO_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_dagster_home(project: Project) -> Path:
    """Point DAGSTER_HOME at the project's state folder, with our instance settings."""
    home = project.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    dst = home / "dagster.yaml"
    if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
        shutil.copyfile(src, dst)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class ProjectBusy(RegistryError):
    """Another run holds the project's lock."""


@contextmanager
def project_lock(project: Project, wait: bool = True, log=print) -> Iterator[None]:
    """One run per project at a time (an OS file lock, released even on SIGKILL).

    A second run waits for the first (``wait=False``: raises :class:`ProjectBusy`), so two
    runs never materialize the same partitions side by side.
    """
    project.state_dir.mkdir(parents=True, exist_ok=True)
    path = project.state_dir / "run.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown process"
            if not wait:
                raise ProjectBusy(
                    f"{project.root}: another run is in progress ({holder}); try again when it ends"
                ) from None
            log(f"another run is in progress ({holder}); waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def preflight(project: Project) -> dict[str, pl.DataFrame]:
    """Validate every input before anything is written; returns instances per benchmark."""
    from skill_assets.imported_skills import import_benchmark_skills
    from skill_assets.importers import check_results, detect_format
    from skill_assets.instances import load_benchmark
    from skill_assets.results import check_unknown

    instances = {b.name: load_benchmark(project, b.name) for b in project.registry.benchmarks}
    for name, df in instances.items():
        import_benchmark_skills(project, name, df)  # bring-your-own skills files are valid
    ids = {name: set(df["instance_id"].to_list()) for name, df in instances.items()}
    for m in project.registry.models:
        path = project.results_path(m.name)
        if path is None:
            continue
        fmt = m.format or detect_format(path)
        if fmt in ("lm-eval", "inspect", "helm"):
            check_results(path, m.name, instances, fmt, m.options)
        else:
            check_unknown(path, m.name, ids, m.format, (m.options or {}).get("ignore_unknown"))
    return instances


def sync_partitions(instance, project: Project) -> None:
    """Make the dynamic partitions exactly the registry's benchmarks and models."""
    from skill_assets.partitions import benchmark_partitions, model_partitions

    for pdef, wanted in (
        (benchmark_partitions, [b.name for b in project.registry.benchmarks]),
        (model_partitions, [m.name for m in project.registry.models]),
    ):
        have = set(instance.get_dynamic_partitions(pdef.name))
        new = [w for w in wanted if w not in have]
        if new:
            instance.add_dynamic_partitions(pdef.name, new)
        for gone in sorted(have - set(wanted)):
            instance.delete_dynamic_partition(pdef.name, gone)


def recorded_fingerprints(instance, keys) -> dict:
    """Fingerprint recorded by the latest materialization of each (asset, partition)."""
    from dagster import AssetKey, AssetRecordsFilter

    out = {}
    for asset_name, part in keys:
        flt = AssetRecordsFilter(
            asset_key=AssetKey(asset_name), asset_partitions=[part] if part else None
        )
        recs = instance.fetch_materializations(flt, limit=1, ascending=False).records
        fp = None
        if recs:
            mat = recs[0].asset_materialization
            entry = mat.metadata.get("fingerprint") if mat else None
            fp = getattr(entry, "value", None)
            # Instances whose LLM call failed are retried by the next run (only they
            # cost anything: the rest comes from the call cache).
            failures = getattr(mat.metadata.get("failures"), "value", 0) if mat else 0
            if failures:
                fp = None
        out[(asset_name, part)] = fp
    return out


def _groups(steps: list[plan.Step]) -> list[tuple[str | None, list[str]]]:
    """Runs to launch: per benchmark partition, per results partition, then aggregates."""
    by_part: dict[str | None, list[str]] = defaultdict(list)
    order: list[str | None] = []
    for s in steps:
        asset_names = (
            ["rationales", "skill_mentions"]
            if s.asset in ("rationales", "skill_mentions")
            else [s.asset]
        )
        if s.partition not in by_part:
            order.append(s.partition)
        for a in asset_names:
            if a not in by_part[s.partition]:
                by_part[s.partition].append(a)
    parts = [p for p in order if p is not None]
    return [(p, by_part[p]) for p in parts] + ([(None, by_part[None])] if None in by_part else [])


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
    project_dir: str | Path, progress: bool = True, log=print, wait: bool = True
) -> dict:
    """Register partitions and materialize every stale asset; returns the run summary.

    Runs on one project are serialised by :func:`project_lock` (``wait=False``: fail fast).
    """
    project = load_project(project_dir)
    with project_lock(project, wait=wait, log=log):
        return _run_locked(project, progress, log)


def _run_locked(project: Project, progress: bool, log) -> dict:
    from dagster import AssetKey, materialize

    from definitions import build_definitions

    preflight(project)
    prepare_dagster_home(project)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    defs = build_definitions(project.root)
    # Verifies the state first: damaged asset files are wiped and re-materialized below.
    instance = state_health.checked_instance(project, log=log)
    try:
        sync_partitions(instance, project)
        fps = plan.fingerprints(project)
        recorded = recorded_fingerprints(instance, fps.keys())
        steps = plan.stale_steps(project, recorded)
        groups = _groups(steps)
        assets = list(defs.assets) + list(defs.asset_checks or [])
        resources = defs.resources
        materialized: list[str] = []
        skipped: dict[str, str] = {}  # asset → why (validation without a verifier, ...)
        checks_failed: dict[str, dict] = {}
        calls = {"made": 0, "cached": 0, "failed": 0, "by_purpose": {}}
        cost = 0.0
        bar = None
        if progress and groups:
            from tqdm import tqdm

            bar = tqdm(total=len(groups), desc="materializing", unit="run", leave=False)
        for part, names in groups:
            label = f"{part}: " if part else ""
            if bar:
                bar.set_postfix_str((label + ",".join(names))[:60])
            try:
                result = materialize(
                    assets,
                    instance=instance,
                    resources=resources,
                    partition_key=part,
                    selection=[AssetKey(n) for n in names],
                    run_config=QUIET,
                    tags={"skill_slices/source": "cli"},
                )
            except Exception as e:  # surface the user's error, not Dagster's wrapper
                inner = _unwrap(e)
                if isinstance(inner, RegistryError):
                    raise inner from None
                raise
            for ev in result.get_asset_materialization_events():
                mat = ev.step_materialization_data.materialization
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
            for check in result.get_asset_check_evaluations():
                name = f"{check.asset_key.to_user_string()}:{check.check_name}"
                if check.passed:
                    checks_failed.pop(name, None)
                else:
                    checks_failed[name] = {
                        "severity": check.severity.value,
                        **{k: getattr(v, "value", v) for k, v in check.metadata.items()},
                    }
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        calls["cost_usd"] = round(cost, 6)
        routing = routing_summary(project)
        return {
            "materialized": materialized,
            **({"skipped": skipped} if skipped else {}),
            "llm_calls": calls,
            "routing": routing,
            "checks_failed": checks_failed,
        }
    finally:
        instance.dispose()


def read_asset(project: Project, name: str) -> pl.DataFrame | None:
    """Read an asset's Parquet file (every partition, for a partitioned asset), or None
    if never materialized."""
    path = project.assets_dir / f"{name}.parquet"
    if path.exists():
        return pl.read_parquet(path)
    folder = project.assets_dir / name
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


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
    n = int(loo["n"].max()) if loo.height else 0

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
