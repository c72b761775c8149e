"""Entry point for `dagster dev` / `dagster definitions validate -f definitions.py` run from
the repository root; the Definitions object lives in `skill_assets.defs.definitions`."""

from skill_assets.defs.definitions import build_definitions, defs

__all__ = ["build_definitions", "defs"]
