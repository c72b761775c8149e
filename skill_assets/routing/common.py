"""What the policy, the held-out engine and the routers share: constants, slice weights,
the tie-breaking argmax, cost vectors, and the metadata slices (one per value of a column).

Pure functions (numpy / polars); no Dagster here.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

WEIGHTINGS = ("inverse_size", "uniform", "sqrt_inverse")
RULES = ("paper", "residual", "hierarchical")
DEFAULT_RULE = "hierarchical"  # the registry's default too (registry.RoutingEntry.rule)
# A pseudo-count this large means "no evidence of between-group differences": the level
# adds nothing beyond its prior. Finite so the policy stays plain JSON.
NO_SIGNAL = 1e9
META_PREFIX = "meta:"
TIE_TOL = 1e-9


def _check(weighting: str, rule: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _weights(n: np.ndarray, weighting: str) -> np.ndarray:
    """Slice weights from training sizes ``n`` (0 where n <= 0)."""
    n = np.asarray(n, dtype=float)
    pos = n > 0
    safe = np.where(pos, n, 1.0)
    if weighting == "inverse_size":
        w = 1.0 / safe
    elif weighting == "uniform":
        w = np.ones_like(safe)
    elif weighting == "sqrt_inverse":
        w = 1.0 / np.sqrt(safe)
    else:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return np.where(pos, w, 0.0)


def _argmax_tiebreak(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``scores``; ties (within TIE_TOL) by larger ``tiebreak``, then lowest index."""
    top = np.max(scores, axis=1, keepdims=True)
    cand = scores >= top - TIE_TOL
    tb = np.max(np.where(cand, tiebreak, -np.inf), axis=1, keepdims=True)
    return np.argmax(cand & (tiebreak >= tb - TIE_TOL), axis=1)


def _cost_vector(models: list[str], costs: dict | None) -> np.ndarray | None:
    """Cost per call for each model (missing or None -> 0); None without costs."""
    if not costs:
        return None
    return np.array([float(costs.get(m) or 0.0) for m in models])


def metadata_slice_id(column: str, value) -> str:
    """The slice id of one metadata value: ``meta:<column>=<value>``."""
    return f"{META_PREFIX}{column}={value}"


def _metadata_values(instances: pl.DataFrame | None, uids: pl.Series, column: str) -> list:
    """Value of ``column`` per uid: an instances column, or a key of its metadata JSON."""
    if instances is None or instances.height == 0:
        return [None] * uids.len()
    if column in instances.columns and column != "metadata":
        vals = instances.select("uid", pl.col(column).cast(pl.String).alias("_v"))
    elif "metadata" in instances.columns:
        parsed = []
        for m in instances["metadata"].to_list():
            v = json.loads(m).get(column) if m else None
            parsed.append(None if v is None else (v if isinstance(v, str) else json.dumps(v)))
        vals = pl.DataFrame({"uid": instances["uid"], "_v": pl.Series(parsed, dtype=pl.String)})
    else:
        return [None] * uids.len()
    vals = vals.unique("uid", keep="first")
    return pl.DataFrame({"uid": uids}).join(vals, on="uid", how="left")["_v"].to_list()


def metadata_slices(instances: pl.DataFrame | None, columns: list[str] | None) -> pl.DataFrame:
    """One slice per (column, value) of ``instances``; missing values make no slice.

    Columns: skill_id (``meta:<column>=<value>``), name (``<column>: <value>``),
    level (null), parent_id (null), uids, meta_column.
    """
    schema = pl.Schema(
        {
            "skill_id": pl.String(),
            "name": pl.String(),
            "level": pl.Int64(),
            "parent_id": pl.String(),
            "uids": pl.List(pl.String()),
            "meta_column": pl.String(),
        }
    )
    if instances is None or instances.height == 0 or not columns:
        return pl.DataFrame(schema=schema)
    uids = instances["uid"].cast(pl.String).unique(maintain_order=True)
    frames = []
    for col in dict.fromkeys(columns):
        vals = _metadata_values(instances, uids, col)
        df = (
            pl.DataFrame({"uid": uids, "v": pl.Series(vals, dtype=pl.String)})
            .drop_nulls("v")
            .group_by("v", maintain_order=True)
            .agg(pl.col("uid").alias("uids"))
            .sort("v")
        )
        frames.append(
            df.select(
                pl.format("{}{}={}", pl.lit(META_PREFIX), pl.lit(col), "v").alias("skill_id"),
                pl.format("{}: {}", pl.lit(col), "v").alias("name"),
                pl.lit(None, dtype=pl.Int64).alias("level"),
                pl.lit(None, dtype=pl.String).alias("parent_id"),
                "uids",
                pl.lit(col, dtype=pl.String).alias("meta_column"),
            )
        )
    return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)


def _all_slices(
    slices: pl.DataFrame, instances: pl.DataFrame | None, columns: list[str] | None
) -> pl.DataFrame:
    """Skill slices (meta_column null) followed by the metadata slices; one row per id."""
    skill = (
        slices.select(
            pl.col("skill_id").cast(pl.String),
            pl.col("name").cast(pl.String),
            pl.col("level").cast(pl.Int64),
            pl.col("parent_id").cast(pl.String),
            pl.col("uids").cast(pl.List(pl.String)),
            pl.lit(None, dtype=pl.String).alias("meta_column"),
        )
        if slices.height
        else metadata_slices(None, None)
    )
    out = pl.concat([skill, metadata_slices(instances, columns)])
    return out.unique("skill_id", keep="first", maintain_order=True)
