"""Skill slices: de-duplicate skill names by clustering, then group instances by skill.

Clustering uses a thresholded nearest-neighbour graph (exact top-k in blocks, so
memory stays linear) and connected components from scipy.sparse.csgraph; each
cluster is named by its most central member weighted by mention count.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from skill_assets.registry import stable_hash
from skill_assets.schemas import SLICES, conform

# Calibrated for all-MiniLM-L6-v2 on skill names; see docs/performance.md.
DEFAULT_THRESHOLDS = {"sentence-transformers/all-MiniLM-L6-v2": 0.88}
FALLBACK_THRESHOLD = 0.9


def default_threshold(embedder_name: str) -> float:
    return DEFAULT_THRESHOLDS.get(embedder_name, FALLBACK_THRESHOLD)


def knn_graph(vectors: np.ndarray, k: int = 10, threshold: float = 0.9, block: int = 4096):
    """Edges (i, j) with cosine ≥ threshold among each row's k nearest neighbours."""
    n = vectors.shape[0]
    rows, cols = [], []
    k = min(k, max(n - 1, 0))
    if k == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        idx = np.arange(start, min(start + block, n))
        sims[np.arange(len(idx)), idx] = -1.0
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        top_s = np.take_along_axis(sims, top, axis=1)
        keep = top_s >= threshold
        rows.append(np.repeat(idx, k)[keep.ravel()])
        cols.append(top.ravel()[keep.ravel()])
    return np.concatenate(rows), np.concatenate(cols)


def cluster_skill_names(
    names: list[str],
    vectors: np.ndarray,
    counts: list[int] | None = None,
    threshold: float | None = None,
    *,
    k: int = 10,
) -> pl.DataFrame:
    """Cluster near-duplicate skill names; one row per input name, same order.

    Columns: name, cluster_id (int), cluster_name (most central member, weighted by count).
    Deterministic for the same input.
    """
    n = len(names)
    if n == 0:
        return pl.DataFrame(
            schema={"name": pl.String, "cluster_id": pl.Int64, "cluster_name": pl.String}
        )
    threshold = FALLBACK_THRESHOLD if threshold is None else threshold
    counts_arr = np.ones(n) if counts is None else np.asarray(counts, dtype=np.float64)
    r, c = knn_graph(vectors, k=k, threshold=threshold)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber clusters by their first member so ids are stable under relabelling.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    labels = remap[labels]
    cluster_name = [""] * n
    for cid in range(labels.max() + 1):
        members = np.flatnonzero(labels == cid)
        if len(members) == 1:
            cluster_name[members[0]] = names[members[0]]
            continue
        centroid = (vectors[members] * counts_arr[members, None]).sum(0)
        score = vectors[members] @ centroid
        best = members[np.lexsort((np.array([names[m] for m in members]), -score))[0]]
        for m in members:
            cluster_name[m] = names[best]
    return pl.DataFrame(
        {"name": names, "cluster_id": labels.astype(np.int64), "cluster_name": cluster_name}
    )


def distinct_names(mentions: pl.DataFrame) -> pl.DataFrame:
    """Distinct (level, skill_name) with mention counts and instance counts."""
    return (
        mentions.group_by("level", "skill_name")
        .agg(pl.len().alias("mentions"), pl.col("uid").n_unique().alias("instances"))
        .sort("level", "skill_name")
    )


def build_slices(
    mentions: pl.DataFrame,
    name_vectors: dict[str, np.ndarray],
    threshold: float,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster names within each level and group instances into slices.

    Returns (slices per schemas.SLICES, name→skill_id mapping with level).
    Parent of a slice: the level-(L−1) slice most often mentioned in the same
    rationale step as its members.
    """
    names = distinct_names(mentions)
    mapping = []
    for level in sorted(names["level"].unique().to_list()):
        lv = names.filter(pl.col("level") == level)
        lnames = lv["skill_name"].to_list()
        vecs = np.stack([name_vectors[x] for x in lnames]).astype(np.float32)
        cl = cluster_skill_names(lnames, vecs, lv["mentions"].to_list(), threshold)
        mapping.append(
            cl.with_columns(
                pl.lit(level, dtype=pl.Int64).alias("level"),
                pl.col("cluster_name")
                .map_elements(
                    lambda s, lvl=level: f"L{lvl}-" + stable_hash(lvl, s)[:10],
                    return_dtype=pl.String,
                )
                .alias("skill_id"),
            )
        )
    mapping = (
        pl.concat(mapping)
        if mapping
        else pl.DataFrame(
            schema={
                "name": pl.String,
                "cluster_id": pl.Int64,
                "cluster_name": pl.String,
                "level": pl.Int64,
                "skill_id": pl.String,
            }
        )
    )
    m = mentions.join(
        mapping.select(pl.col("name").alias("skill_name"), "level", "skill_id", "cluster_name"),
        on=["skill_name", "level"],
    )
    # Parent: most frequent skill one level up within the same (uid, step).
    up = m.select("uid", "step", pl.col("level") + 1, pl.col("skill_id").alias("parent_id"))
    parents = (
        m.join(up, on=["uid", "step", "level"])
        .group_by("skill_id", "parent_id")
        .agg(pl.len().alias("k"))
        .sort(["skill_id", "k", "parent_id"], descending=[False, True, False])
        .group_by("skill_id", maintain_order=True)
        .first()
        .select("skill_id", "parent_id")
    )
    slices = (
        m.group_by("skill_id")
        .agg(
            pl.col("cluster_name").first().alias("name"),
            pl.col("level").first(),
            pl.col("skill_name").unique().sort().alias("member_names"),
            pl.col("uid").unique().sort().alias("uids"),
        )
        .with_columns(pl.col("uids").list.len().cast(pl.Int64).alias("n"))
        .join(parents, on="skill_id", how="left")
        .sort(["level", "n", "skill_id"], descending=[False, True, False])
    )
    return conform(slices, SLICES), mapping.select("level", "name", "skill_id", "cluster_name")


def near_duplicate_rate(names: list[str], vectors: np.ndarray, threshold: float) -> float:
    """Share of cluster names with another cluster name at cosine ≥ threshold."""
    if len(names) < 2:
        return 0.0
    r, _ = knn_graph(vectors, k=1, threshold=threshold)
    return len(np.unique(r)) / len(names)
