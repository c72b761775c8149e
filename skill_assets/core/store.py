"""The one reader of stored assets outside Dagster: the CLI, the report and `explain` read
what the graph materialized (the Parquet files the IO manager wrote), never recompute it."""

from __future__ import annotations

import polars as pl

from skill_assets.core.registry import Project


def read_asset(
    project: Project, name: str, columns: list[str] | None = None
) -> pl.DataFrame | None:
    """Read an asset's Parquet file (every partition, for a partitioned asset), or None
    if never materialized; ``columns`` reads only those."""
    path = project.assets_dir / f"{name}.parquet"
    if path.exists():
        return pl.read_parquet(path, columns=columns)
    folder = project.assets_dir / name
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pl.concat([pl.read_parquet(f, columns=columns) for f in files], how="vertical_relaxed")
