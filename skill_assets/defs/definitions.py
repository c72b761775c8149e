"""The Definitions object: source assets, assets, checks, jobs, resources, sensors, schedule.

The project folder comes from SKILL_SLICES_PROJECT (default: the bundled demo). Its Dagster
instance is `<project>/.skill-slices/dagster`: `skill-slices run`/`ui` set DAGSTER_HOME to
it; `dagster dev` run from the repository root reads `dagster.yaml` and `.env` there, which
point the storage at the demo's instance (see README "The Dagster UI").
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions

from skill_assets.core.registry import STATE_DIR, RegistryError
from skill_assets.defs.assets import ALL_ASSETS
from skill_assets.defs.automation import (
    ALL_JOBS,
    automation_sensor,
    input_sensor,
    weekly_live_reevaluation,
)
from skill_assets.defs.checks import ALL_CHECKS
from skill_assets.defs.sources import ALL_SOURCES
from skill_assets.resources.io_manager import BoundedPolarsParquetIOManager
from skill_assets.resources.project import ProjectResource

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT = REPO_ROOT / "demo"


def project_from_env() -> Path:
    """The selected project folder: SKILL_SLICES_PROJECT (relative to the repository root
    when relative), else the demo."""
    raw = os.environ.get("SKILL_SLICES_PROJECT")
    if not raw:
        return DEFAULT_PROJECT
    path = Path(raw)
    return (path if path.is_absolute() else REPO_ROOT / path).resolve()


def check_instance_matches(project_dir: Path) -> None:
    """Refuse to load against another project's instance (everything would look missing).

    `dagster dev` without DAGSTER_HOME takes its storage from SKILL_SLICES_DAGSTER_HOME
    (set by `.env` to the demo's instance); a different SKILL_SLICES_PROJECT needs its own.
    """
    if os.environ.get("DAGSTER_HOME"):
        return
    storage = os.environ.get("SKILL_SLICES_DAGSTER_HOME")
    if not storage:
        return
    want = (project_dir / STATE_DIR / "dagster").resolve()
    got = Path(storage)
    got = (got if got.is_absolute() else Path.cwd() / got).resolve()
    if got != want:
        raise RegistryError(
            f"SKILL_SLICES_PROJECT is {project_dir} but the Dagster instance is {got}; start"
            f" the UI with `skill-slices ui --project {project_dir}` (or set"
            f" SKILL_SLICES_DAGSTER_HOME={want})"
        )


def build_definitions(project_dir: str | os.PathLike) -> Definitions:
    """Definitions bound to one project folder; all state lives in its `.skill-slices/`."""
    project_dir = Path(project_dir).resolve()
    return Definitions(
        assets=[*ALL_SOURCES, *ALL_ASSETS],
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        resources={
            "project": ProjectResource(project_dir=str(project_dir)),
            "io_manager": BoundedPolarsParquetIOManager(
                base_dir=str(project_dir / STATE_DIR / "assets")
            ),
        },
        sensors=[input_sensor, automation_sensor],
        schedules=[weekly_live_reevaluation],
    )


check_instance_matches(project_from_env())
defs = build_definitions(project_from_env())
