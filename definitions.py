"""The Definitions object: assets, checks, resources, sensors and schedules.

The project folder comes from SKILL_SLICES_PROJECT (default: the bundled demo).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions

from resources.io_manager import BoundedPolarsParquetIOManager
from resources.project import ProjectResource
from skill_assets.assets import ALL_ASSETS
from skill_assets.automation import automation_sensor, registry_sensor, weekly_live_reevaluation
from skill_assets.checks import ALL_CHECKS
from skill_assets.registry import STATE_DIR

DEFAULT_PROJECT = Path(__file__).resolve().parent / "demo"


def build_definitions(project_dir: str | os.PathLike) -> Definitions:
    """Definitions bound to one project folder; all state lives in its `.skill-slices/`."""
    project_dir = Path(project_dir).resolve()
    return Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        resources={
            "project": ProjectResource(project_dir=str(project_dir)),
            "io_manager": BoundedPolarsParquetIOManager(
                base_dir=str(project_dir / STATE_DIR / "assets")
            ),
        },
        sensors=[registry_sensor, automation_sensor],
        schedules=[weekly_live_reevaluation],
    )


defs = build_definitions(os.environ.get("SKILL_SLICES_PROJECT", DEFAULT_PROJECT))
