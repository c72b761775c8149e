"""The design card's top-level ``resources/`` names the same resources the graph binds."""

from __future__ import annotations

import resources
from skill_assets.defs.definitions import build_definitions
from tests.conftest import write_project


def test_top_level_resources_are_the_ones_definitions_bind(tmp_path):
    root = write_project(tmp_path / "p", n_per_subject=2)
    defs = build_definitions(str(root))
    bound = defs.resources
    assert isinstance(bound["project"], resources.ProjectResource)
    assert isinstance(bound["io_manager"], resources.BoundedPolarsParquetIOManager)
    assert set(resources.__all__) == {n for n in dir(resources) if not n.startswith("_")}
