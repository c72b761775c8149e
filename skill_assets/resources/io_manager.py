"""The Parquet IO manager, with metadata that stays small whatever the data holds."""

from __future__ import annotations

import polars as pl
from dagster import MetadataValue, OutputContext
from dagster_polars import PolarsParquetIOManager
from dagster_polars.io_managers.utils import get_metadata_schema


class BoundedPolarsParquetIOManager(PolarsParquetIOManager):
    """dagster-polars' Parquet IO manager without its ``table`` and ``stats`` metadata.

    Those copy cell values (the first rows, and ``describe()``'s min/max) into the Dagster
    instance: one 50 MB question became ~600 MB of event log. The schema, row count and
    size are kept; the assets add their own bounded, escaped previews.
    """

    def get_metadata(
        self, context: OutputContext, obj: pl.DataFrame | pl.LazyFrame | None
    ) -> dict[str, MetadataValue]:
        if obj is None:
            return {"missing": MetadataValue.bool(True)}
        descriptions = (context.definition_metadata or {}).get("descriptions")
        meta: dict[str, MetadataValue] = {
            "dagster/column_schema": MetadataValue.table_schema(
                get_metadata_schema(obj, descriptions=descriptions)
            )
        }
        if isinstance(obj, pl.DataFrame):
            key = (
                "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"
            )
            meta[key] = MetadataValue.int(obj.height)
            meta["estimated_size_mb"] = MetadataValue.float(obj.estimated_size(unit="mb"))
        return meta
