"""What every asset shares: the sync condition, the aggregate decorator, the output with its
content-hash data version, Markdown previews, partition concatenation, LLM metadata."""

import hashlib
from typing import Any

import polars as pl
from dagster import DataVersion, MetadataValue, Output, asset

from skill_assets.core.registry import RegistryError
from skill_assets.defs.conditions import sync_condition
from skill_assets.present.safe_markdown import md_text, safe_md
from skill_assets.resources.call_stats import CallStats

# One condition for every asset: materialize what Dagster reports as not fresh (see
# conditions.py). `skill-slices run` evaluates the same conditions.
SYNC = sync_condition()


def aggregate_asset(*, group_name: str, code_version: str, deps: list[str]):
    """@asset for an unpartitioned asset over every partition upstream: materialized by SYNC,
    in its own concurrency pool ``skill_slices/<name>``."""

    def decorate(fn):
        return asset(
            group_name=group_name,
            automation_condition=SYNC,
            code_version=code_version,
            deps=deps,
            # Never two runs on the same aggregate at once, whatever launched them.
            pool=f"skill_slices/{fn.__name__}",
        )(fn)

    return decorate


def preview(df: pl.DataFrame, n: int = 10) -> MetadataValue:
    """A Markdown table of the first rows: cells shortened and escaped (data never renders
    as an image, link or HTML in the UI)."""
    if df.height == 0:
        return MetadataValue.md("*(empty)*")
    small = df.head(n).with_columns(
        [pl.col(c).cast(pl.String).str.slice(0, 80) for c, t in df.schema.items() if t == pl.String]
    )
    cols = [c for c, t in small.schema.items() if not isinstance(t, (pl.List, pl.Struct))]
    lines = [
        "| " + " | ".join(md_text(c, 80) for c in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in small.select(cols).iter_rows():
        lines.append("| " + " | ".join(md_text(v, 80) for v in row) + " |")
    return safe_md("\n".join(lines))


def output(df: pl.DataFrame, output_name: str | None = None, **metadata) -> Output:
    """The asset's value and metadata, with its content hash as data version.

    Dagster compares data versions to decide what is stale: a dependant is stale exactly
    when an input's content changed (a re-run that reproduces the same frame leaves its
    dependants fresh; a weekly live re-evaluation with new answers does not)."""
    meta = {"rows": df.height, "preview": preview(df), **metadata}
    kwargs: dict[str, Any] = {"output_name": output_name} if output_name else {}
    return Output(df, data_version=content_version(df), metadata=meta, **kwargs)


def content_version(df: pl.DataFrame) -> DataVersion:
    """sha256 of the frame's rows as NDJSON (independent of chunk layout; nested ok)."""
    h = hashlib.sha256(",".join(f"{k}:{v}" for k, v in df.schema.items()).encode())
    h.update(df.write_ndjson().encode())
    return DataVersion(h.hexdigest()[:32])


def concat(parts, schema: dict | None = None) -> pl.DataFrame:
    """All partitions of an upstream asset as one frame.

    Dagster's UPath IO manager hands over a bare DataFrame when exactly one
    partition exists and a dict otherwise; inputs are left unannotated for that.
    """
    if isinstance(parts, pl.DataFrame):
        parts = {"_": parts}
    frames = [p for _, p in sorted((parts or {}).items()) if p is not None and p.height]
    if not frames:
        return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
    return pl.concat(frames, how="vertical_relaxed")


def all_failed(what: str, n: int, first_error) -> RegistryError:
    """The one-line error of an asset whose every LLM call failed (nothing is stored, so
    nothing downstream runs on an empty frame; the next run asks again)."""
    return RegistryError(
        f"{what}: all {n} LLM calls failed (first error: {str(first_error)[:200]}); check the"
        " entry's base_url, model and the key in its api_key_env variable, then run again"
        " (failed calls are not cached)"
    )


def llm_meta(stats: CallStats) -> dict[str, Any]:
    """The ``llm_*`` metadata entries of an asset that called an LLM."""
    meta = stats.as_metadata()
    meta["llm_calls_by_purpose"] = MetadataValue.json(meta["llm_calls_by_purpose"])
    return meta
