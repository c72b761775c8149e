"""Skill slices: de-duplicate skill names by clustering, then group instances by skill.

Two clustering methods; both name each cluster by its most central member
(count-weighted) and repeat over cluster names until fewer than 1% of them have
a near-duplicate (cosine ≥ near_duplicate_threshold(threshold)), as the paper
does:

- ``ours`` (default): a sparse similarity graph — every pair at cosine ≥
  threshold, at most `k` strongest per name — clustered with the Leiden
  algorithm (igraph; Constant Potts Model with edge weight = cosine and
  resolution RESOLUTION·threshold, i.e. a cluster's mean pairwise similarity,
  missing edges counting 0, must stay above that). Leiden does not chain the way
  connected components do. The graph is exact (blocked matrix products) up to
  EXACT_MAX_N names; beyond, each name is compared exactly with the names of its
  PROBES nearest k-means cells only (cells trained on a sample, then FULL_ITERS
  iterations over all names), so the cost grows ~n^1.5, not n^2. Connected
  components that are cliques above the resolution skip Leiden (it could only keep
  them whole). Later
  rounds re-cluster the cluster names at the near-duplicate threshold, which
  only merges names that are near-duplicates (re-clustering at `threshold`
  chains; see docs/performance.md).
- ``reference``: the paper's method, for comparison only. All pairs (quadratic
  time, row blocks); every name's community is itself plus every name at cosine
  ≥ threshold; communities are taken largest first, each name by the first one
  that reaches it; repeated at `threshold` over cluster names.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix
from scipy.special import comb
from threadpoolctl import threadpool_limits

from skill_assets.core.registry import stable_hash
from skill_assets.core.schemas import SLICES, conform

# Calibrated for all-MiniLM-L6-v2 on hand-written skill-name paraphrases, per
# method (benchmarks/calibrate_threshold.py; docs/performance.md).
DEFAULT_THRESHOLDS = {"sentence-transformers/all-MiniLM-L6-v2": 0.58}
REFERENCE_THRESHOLDS = {"sentence-transformers/all-MiniLM-L6-v2": 0.72}
FALLBACK_THRESHOLD = 0.9
MAX_NEAR_DUPLICATE_RATE = 0.01  # the paper's stopping rule: < 1% of cluster names
METHODS = ("ours", "reference")
RESOLUTION = 0.8  # CPM resolution as a fraction of the threshold
EXACT_MAX_N = 5000  # up to this many names the similarity graph is exact
PROBES = 3  # k-means cells searched per name beyond EXACT_MAX_N
FULL_ITERS = 2  # k-means iterations over all names after the sampled start (see below)
MAX_ROUNDS = 10
IGRAPH_FILE_MIN_EDGES = 50_000  # see _igraph_graph

_igraph_rng_lock = threading.Lock()


def default_threshold(embedder_name: str, method: str = "ours") -> float:
    """Calibrated clustering threshold for an embedder and method (a fallback for
    embedders not calibrated yet)."""
    table = REFERENCE_THRESHOLDS if method == "reference" else DEFAULT_THRESHOLDS
    return table.get(embedder_name, FALLBACK_THRESHOLD)


def near_duplicate_threshold(threshold: float) -> float:
    """Second threshold of the stopping rule: halfway from `threshold` to 1.

    The paper pairs 0.95 (clustering) with 0.975 (near-duplicate cluster names).
    """
    return (1.0 + threshold) / 2.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors: expected a 2-d array, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


# ---------------------------------------------------------------------------
# Sparse similarity graph: all pairs at cosine >= threshold, at most k per name
# ---------------------------------------------------------------------------


def _pairs_exact(v: np.ndarray, threshold: float, block: int = 1024):
    """All pairs i < j with cosine ≥ threshold, in (i, j) order (upper-triangle blocks)."""
    n = v.shape[0]

    def rows(starts):
        out = []
        for s in starts:
            e = min(s + block, n)
            blk = v[s:e] @ v[s:].T  # columns s.. only: pairs with j ≥ s
            r, c = np.nonzero(blk >= threshold)
            keep = c > r  # j > i (column c is row s + c)
            r, c = r[keep], c[keep]
            out.append((s, r + s, c + s, blk[r, c]))
        return out

    starts = list(range(0, n, block))
    workers = min(_workers(), len(starts))
    found = sorted(
        (
            x
            for part in _in_parallel(rows, [starts[w::workers] for w in range(workers)])
            for x in part
        ),
        key=lambda x: x[0],
    )
    return (
        np.concatenate([f[1] for f in found]).astype(np.int64),
        np.concatenate([f[2] for f in found]).astype(np.int64),
        np.concatenate([f[3] for f in found]),
    )


def _group_sums(
    x: np.ndarray, groups: np.ndarray, n_groups: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(Weighted) row sums of float32 `x` per group 0..n_groups-1 (empty groups are 0)."""
    data = np.ones(len(groups), np.float32) if weights is None else weights.astype(np.float32)
    member = csr_matrix((data, (groups, np.arange(len(groups)))), shape=(n_groups, len(groups)))
    return np.asarray(member @ x, dtype=np.float32)


def _spherical_kmeans(
    v: np.ndarray, n_cells: int, rng: np.random.Generator, iters: int = 5, full_iters: int = 0
):
    """Unit-norm centroids of a spherical k-means on a sample of `v`, then `full_iters`
    iterations over all of `v`."""
    n = v.shape[0]
    sample = v[np.sort(rng.choice(n, size=min(n, 10 * n_cells), replace=False))]
    cent = sample[np.sort(rng.choice(sample.shape[0], size=n_cells, replace=False))].copy()
    for _ in range(iters):
        assign = np.argmax(sample @ cent.T, axis=1)
        sums = _group_sums(sample, assign, n_cells)
        empty = ~np.any(sums, axis=1)
        sums[empty] = cent[empty]  # an empty cell keeps its centroid
        cent = _unit(sums)
    # A sample of 10 names per cell misses most small skills; their names then pick a
    # cell by noise and one skill scatters over cells that never meet (on 2,000 planted
    # groups of 10: 93% of the within-group pairs found, ARI 0.947). Iterations over all
    # names give every skill its weight in the centroids, so its names share a cell.
    for _ in range(full_iters):
        assign = np.concatenate(
            [np.argmax(v[s : s + 8192] @ cent.T, axis=1) for s in range(0, n, 8192)]
        )
        sums = _group_sums(v, assign, n_cells)
        empty = ~np.any(sums, axis=1)
        sums[empty] = cent[empty]
        cent = _unit(sums)
    return cent


def _top_columns(sims: np.ndarray, p: int) -> np.ndarray:
    top = np.argpartition(-sims, p - 1, axis=1)[:, :p]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _workers() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not on Linux
        return max(1, min(8, os.cpu_count() or 1))


def _in_parallel(fn, chunks: list) -> list:
    """fn over chunks on a thread pool, results in chunk order.

    Each thread runs single-threaded BLAS: many small products in parallel
    threads beat multi-threaded BLAS on each (measured 2-7x on 2 busy cores).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        if len(chunks) == 1:
            return [fn(chunks[0])]
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            return list(pool.map(fn, chunks))


def _pairs_cells(v: np.ndarray, threshold: float, seed: int, block: int = 4096):
    """Pairs at cosine ≥ threshold where one name lies in one of the other's PROBES
    nearest k-means cells (each name lives in its nearest cell). Approximate."""
    n = v.shape[0]
    rng = np.random.default_rng(seed)
    n_cells = min(n, int(max(16, round(np.sqrt(PROBES * n)))))
    cent = _spherical_kmeans(v, n_cells, rng, full_iters=FULL_ITERS)
    workers = _workers()
    starts = list(range(0, n, block))
    probe = np.concatenate(
        _in_parallel(
            lambda ss: np.concatenate(
                [_top_columns(v[s : s + block] @ cent.T, PROBES) for s in ss]
            ),
            [c for c in np.array_split(np.asarray(starts), min(workers, len(starts))) if len(c)],
        )
    )
    home = probe[:, 0]
    members = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[members], np.arange(n_cells + 1))
    qcell = probe.ravel()
    qid = np.repeat(np.arange(n), PROBES)
    qorder = np.argsort(qcell, kind="stable")
    qcell, qid = qcell[qorder], qid[qorder]
    qbounds = np.searchsorted(qcell, np.arange(n_cells + 1))

    def cells(cs):
        rows, cols, sims = [], [], []
        for c in cs:
            mem = members[bounds[c] : bounds[c + 1]]
            qs = qid[qbounds[c] : qbounds[c + 1]]
            if len(mem) == 0 or len(qs) == 0:
                continue
            blk = v[qs] @ v[mem].T
            r, cc = np.nonzero(blk >= threshold)
            a, b = qs[r], mem[cc]
            keep = a != b
            rows.append(a[keep])
            cols.append(b[keep])
            sims.append(blk[r[keep], cc[keep]])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)

    # Contiguous runs of cells with about equal work per thread.
    work = np.cumsum(np.diff(bounds) * np.diff(qbounds))
    cut = np.searchsorted(work, work[-1] * np.arange(1, workers) / workers)
    parts = [p for p in np.split(np.arange(n_cells), cut) if len(p)]
    found = _in_parallel(cells, parts)
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    w = np.concatenate([f[2] for f in found])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    # A pair seen from both sides appears twice: keep one.
    _, first = np.unique(lo * n + hi, return_index=True)
    return lo[first], hi[first], w[first]


def _search(
    v: np.ndarray, threshold: float, exact: bool | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j at cosine ≥ threshold (exact or cells), in (i, j) order."""
    n = v.shape[0]
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    if exact is None:
        exact = n <= EXACT_MAX_N
    return _pairs_exact(v, threshold) if exact else _pairs_cells(v, threshold, seed)


def _cap_degree(i: np.ndarray, j: np.ndarray, w: np.ndarray, k: int | None):
    """Keep each node's k strongest edges (an edge stays if either end keeps it;
    ties by the other end's index)."""
    if k is None or len(i) == 0:
        return i, j, w
    degree = np.bincount(np.concatenate([i, j]))
    over_i, over_j = degree[i] > k, degree[j] > k
    if not (over_i.any() or over_j.any()):
        return i, j, w
    # Rank the half-edges at over-degree nodes only.
    e = np.concatenate([np.flatnonzero(over_i), np.flatnonzero(over_j)])
    ends = np.concatenate([i[over_i], j[over_j]])
    other = np.concatenate([j[over_i], i[over_j]])
    o = np.lexsort((other, -w[e], ends))
    sorted_ends = ends[o]
    rank = np.empty(len(o), dtype=np.int64)
    rank[o] = np.arange(len(o)) - np.searchsorted(sorted_ends, sorted_ends, side="left")
    dropped = np.zeros(len(i), dtype=np.int64)  # ends that drop the edge (0, 1 or 2)
    np.add.at(dropped, e[rank >= k], 1)
    keep = dropped < over_i.astype(np.int64) + over_j.astype(np.int64)
    keep |= ~over_i | ~over_j  # an end that keeps all its edges keeps this one
    return i[keep], j[keep], w[keep]


def similarity_graph(
    vectors: np.ndarray,
    threshold: float,
    k: int | None = 50,
    *,
    exact: bool | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (i < j, cosine), in (i, j) order, at cosine ≥ threshold;
    each name keeps its k strongest edges (an edge stays if either end keeps it;
    k=None keeps all).

    Exact up to EXACT_MAX_N rows (or with exact=True); beyond, exact products
    within the PROBES nearest k-means cells of each row (see docs/performance.md
    for the measured recall). Deterministic for the same input and seed.
    """
    i, j, w = _search(_unit(vectors), threshold, exact, seed)
    return _cap_degree(i, j, w, k)


# ---------------------------------------------------------------------------
# One round of clustering
# ---------------------------------------------------------------------------


def _igraph_graph(n: int, i: np.ndarray, j: np.ndarray):
    """An undirected igraph graph with edges (i[e], j[e]) in this order.

    Large edge lists go through igraph's C edge-list reader: python-igraph
    converts a Python/numpy edge list element by element (~0.7 µs per edge),
    while writing the list with polars and reading it back is ~2.5x faster.
    """
    import igraph as ig

    if len(i) < IGRAPH_FILE_MIN_EDGES:
        return ig.Graph(n=n, edges=np.stack([i, j], axis=1), directed=False)
    fd, path = tempfile.mkstemp(prefix="skill-slices-edges-", suffix=".txt")
    try:
        os.close(fd)
        pl.DataFrame({"i": i, "j": j}).write_csv(path, include_header=False, separator=" ")
        g = ig.Graph.Read_Edgelist(path, directed=False)
    finally:
        os.unlink(path)
    if g.vcount() < n:  # the reader stops at the largest index it saw
        g.add_vertices(n - g.vcount())
    return g


def _leiden(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray, resolution: float, seed: int):
    import igraph as ig

    g = _igraph_graph(n, i, j)
    with _igraph_rng_lock:  # igraph draws from a process-wide generator
        ig.set_random_number_generator(random.Random(seed))
        try:
            part = g.community_leiden(
                objective_function="CPM",
                weights=w.astype(np.float64),
                resolution=resolution,
                n_iterations=2,
            )
        finally:
            ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


def _communities(
    n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray, resolution: float, seed: int
) -> np.ndarray:
    """CPM communities: Leiden on the connected components that need it.

    A component that is a clique with every edge weight ≥ `resolution` is one community
    (merging two parts of it always adds weight − resolution·pairs ≥ 0), so CPM's optimum
    is the component itself: no Leiden needed. Well-separated skills are such cliques,
    and skipping Leiden (and building the igraph graph) for them is most of a round's
    time; only components that chain go to Leiden, as one subgraph.
    """
    from scipy.sparse.csgraph import connected_components

    adj = csr_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    n_comp, comp = connected_components(adj, directed=False)
    size = np.bincount(comp, minlength=n_comp)
    edges = np.bincount(comp[i], minlength=n_comp)
    low = np.bincount(comp[i], weights=(w < resolution).astype(np.float64), minlength=n_comp)
    clique = (edges == size * (size - 1) // 2) & (low == 0)
    labels = comp.astype(np.int64)
    hard = ~clique[comp]  # names in components that may split
    if not hard.any():
        return labels
    nodes = np.flatnonzero(hard)
    pos = np.full(n, -1, dtype=np.int64)
    pos[nodes] = np.arange(len(nodes))
    keep = hard[i]  # an edge's two ends share a component
    sub = _leiden(len(nodes), pos[i[keep]], pos[j[keep]], w[keep], resolution, seed)
    labels[nodes] = n_comp + sub  # fresh ids past the component ids
    return labels


def _reference_round(v: np.ndarray, threshold: float, block: int = 1024) -> np.ndarray:
    """Greedy threshold communities over all pairs (quadratic time; the paper's method).

    Every name's community is itself plus all names at cosine ≥ threshold,
    most similar first. Communities are taken largest first (ties: lower index
    first); a name belongs to the first community taken that contains it.
    """
    n = v.shape[0]
    rows, cols, sims = [], [], []
    for s in range(0, n, block):
        blk = v[s : s + block] @ v.T
        blk[np.arange(blk.shape[0]), np.arange(s, s + blk.shape[0])] = np.inf  # self first
        r, c = np.nonzero(blk >= threshold)
        rows.append(r + s)
        cols.append(c)
        sims.append(blk[r, c])
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
    o = np.lexsort((c, -w, r))
    c = c[o]
    ptr = np.searchsorted(r[o], np.arange(n + 1))
    sizes = np.diff(ptr)
    labels = np.full(n, -1, dtype=np.int64)
    cid = 0
    for x in np.argsort(-sizes, kind="stable"):
        nb = c[ptr[x] : ptr[x + 1]]
        free = nb[labels[nb] < 0]
        if len(free):
            labels[free] = cid
            cid += 1
    return labels


# ---------------------------------------------------------------------------
# Naming and the repeated clustering
# ---------------------------------------------------------------------------


def _central_members(
    v: np.ndarray, labels: np.ndarray, weights: np.ndarray, names: np.ndarray
) -> np.ndarray:
    """Index of each cluster's most central member: highest cosine to the
    count-weighted centroid; ties broken by name."""
    n_clusters = int(labels.max()) + 1
    cent = _group_sums(v, labels, n_clusters, weights)
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    score = np.einsum("ij,ij->i", v, cent[labels])
    score = np.round(score, 5)  # ignore float noise below the 5th decimal
    order = np.lexsort((names, -score, labels))
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    best = np.empty(n_clusters, dtype=np.int64)
    best[labels[order][first]] = order[first]
    return best


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster ids 0.. in order of each cluster's first member."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inv.ravel()]


def cluster_skill_names(
    names: list[str],
    vectors: np.ndarray,
    counts: list[int] | None = None,
    threshold: float | None = None,
    *,
    k: int = 30,
    method: str = "ours",
    seed: int = 0,
) -> pl.DataFrame:
    """Cluster near-duplicate skill names; one row per input name, same order.

    Columns: name, cluster_id (0.. in order of each cluster's first name),
    cluster_name (the most central member, weighted by `counts`). `k` bounds
    the edges kept per name (method "ours"). Clustering is repeated over
    cluster names until fewer than 1% of them have another at cosine ≥
    near_duplicate_threshold(threshold). Deterministic for the same input.
    """
    n = len(names)
    _check_inputs(method, n, vectors, counts)
    if n == 0:
        return pl.DataFrame(
            schema={"name": pl.String, "cluster_id": pl.Int64, "cluster_name": pl.String}
        )
    threshold = FALLBACK_THRESHOLD if threshold is None else float(threshold)
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a cosine in [-1, 1], got {threshold}")
    v = _unit(vectors)
    w = np.ones(n) if counts is None else np.maximum(np.asarray(counts, dtype=np.float64), 1e-9)
    name_arr = np.asarray(names, dtype=str)
    stop_at = near_duplicate_threshold(threshold)

    labels = np.arange(n)  # cluster of each name
    reps = np.arange(n)  # most central name of each cluster
    for rnd in range(MAX_ROUNDS):
        if method == "reference":
            rv = v[reps]
            if rnd > 0 and _near_duplicate_fraction(rv, stop_at, exact=True) < (
                MAX_NEAR_DUPLICATE_RATE
            ):
                break
            sub = _reference_round(rv, threshold)
        else:
            if rnd == 0:
                # One search at the threshold; later rounds reuse its pairs at the
                # near-duplicate threshold (≥ threshold), among the current names.
                i, j, ew = _search(v, threshold, None, seed)
                close = ew >= stop_at
                ci, cj, cw = i[close], j[close], ew[close]
                t_round = threshold
            else:
                t_round = stop_at
                pos = np.full(n, -1, dtype=np.int64)
                pos[reps] = np.arange(len(reps))
                both = (pos[ci] >= 0) & (pos[cj] >= 0)
                i, j, ew = pos[ci[both]], pos[cj[both]], cw[both]
                if len(np.union1d(i, j)) < MAX_NEAR_DUPLICATE_RATE * len(reps):
                    break
            if len(i) == 0:
                break
            i, j, ew = _cap_degree(i, j, ew, k)
            sub = _communities(len(reps), i, j, ew, RESOLUTION * t_round, seed)
        sub = _renumber(sub)
        if sub.max() + 1 == len(reps):
            break  # nothing merged
        labels = sub[labels]
        reps = _central_members(v, labels, w, name_arr)
    return _cluster_frame(names, name_arr, labels, reps)


def _check_inputs(method: str, n: int, vectors: np.ndarray, counts: list[int] | None) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if len(vectors) != n:
        raise ValueError(f"{n} names but {len(vectors)} vectors")
    if counts is not None and len(counts) != n:
        raise ValueError(f"{n} names but {len(counts)} counts")


def _cluster_frame(
    names: list[str], name_arr: np.ndarray, labels: np.ndarray, reps: np.ndarray
) -> pl.DataFrame:
    """One row per name: its cluster id and the cluster's most central name."""
    final = _renumber(labels)  # ids in order of each cluster's first name
    reps_final = np.empty_like(reps)
    reps_final[final] = reps[labels]
    return pl.DataFrame(
        {
            "name": list(names),
            "cluster_id": final.astype(np.int64),
            "cluster_name": name_arr[reps_final[final]].tolist(),
        }
    )


def adjusted_rand_index(truth, pred) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie 1985); 1 = identical."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    n = len(truth)
    if n != len(pred):
        raise ValueError("labelings differ in length")
    if n < 2:
        return 1.0
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    t, p = t.ravel().astype(np.int64), p.ravel().astype(np.int64)
    sum_ij = comb(np.unique(t * (p.max() + 1) + p, return_counts=True)[1], 2).sum()
    sum_a = comb(np.bincount(t), 2).sum()
    sum_b = comb(np.bincount(p), 2).sum()
    expected = sum_a * sum_b / comb(n, 2)
    max_index = (sum_a + sum_b) / 2
    if max_index == expected:
        return 1.0
    return float((sum_ij - expected) / (max_index - expected))


def distinct_names(mentions: pl.DataFrame) -> pl.DataFrame:
    """Distinct (level, skill_name) with mention counts and instance counts."""
    return (
        mentions.group_by("level", "skill_name")
        .agg(pl.len().alias("mentions"), pl.col("uid").n_unique().alias("instances"))
        .sort("level", "skill_name")
    )


# Names from a fixed vocabulary: the taxonomy annotator's, and the user's own labels
# (bring-your-own skills). Clustering them would merge labels the user chose to keep apart
# (MathVista's "algebraic reasoning" and "arithmetic reasoning" are 0.6 apart in MiniLM).
CANONICAL_PROVENANCE = ("taxonomy", "imported")


def canonical_names(mentions: pl.DataFrame) -> set[tuple[int, str]]:
    """(level, name) of the names only the taxonomy annotator or imported skills produced:
    distinct skills by construction, never clustered, and never counted as near-duplicates
    of each other."""
    if "provenance" not in mentions.columns or mentions.height == 0:
        return set()
    return set(
        mentions.group_by("level", "skill_name")
        .agg(pl.col("provenance").is_in(CANONICAL_PROVENANCE).all().alias("canon"))
        .filter(pl.col("canon"))
        .select("level", "skill_name")
        .iter_rows()
    )


def _skill_id(level: int, cluster_name: str) -> str:
    return f"L{level}-" + stable_hash(level, cluster_name)[:10]


def build_slices(
    mentions: pl.DataFrame,
    name_vectors: dict[str, np.ndarray],
    threshold: float,
    *,
    method: str = "ours",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cluster names within each level and group instances into slices.

    Returns (slices per schemas.SLICES, name→skill_id mapping with level).
    Parent of a slice: the level-(L−1) slice most often mentioned in the same
    rationale step as its members. Names that only the taxonomy annotator or
    imported skills produced (provenance "taxonomy" or "imported") are canonical —
    distinct skills by construction — and are not clustered: each is its own
    slice. Free-text names are clustered; a cluster named like a canonical skill
    shares its slice.
    """
    mapping = _name_mapping(mentions, name_vectors, threshold, method)
    m = mentions.join(
        mapping.select(pl.col("name").alias("skill_name"), "level", "skill_id", "cluster_name"),
        on=["skill_name", "level"],
    )
    parents = _parents(m)
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


def _name_mapping(
    mentions: pl.DataFrame, name_vectors: dict[str, np.ndarray], threshold: float, method: str
) -> pl.DataFrame:
    """(name, cluster_name, level, skill_id) of every distinct name, level by level."""
    names = distinct_names(mentions)
    canonical = canonical_names(mentions)
    per_level = []
    for level in sorted(names["level"].unique().to_list()):
        lv = names.filter(pl.col("level") == level)
        is_canon = pl.Series([(level, x) in canonical for x in lv["skill_name"]])
        parts = []
        free = lv.filter(~is_canon)
        if free.height:
            lnames = free["skill_name"].to_list()
            vecs = np.stack([name_vectors[x] for x in lnames]).astype(np.float32)
            parts.append(
                cluster_skill_names(
                    lnames, vecs, free["mentions"].to_list(), threshold, method=method
                ).select("name", "cluster_name")
            )
        canon = lv.filter(is_canon)
        if canon.height:
            parts.append(
                canon.select(
                    pl.col("skill_name").alias("name"), pl.col("skill_name").alias("cluster_name")
                )
            )
        cl = pl.concat(parts)
        per_level.append(
            cl.with_columns(
                pl.lit(level, dtype=pl.Int64).alias("level"),
                pl.col("cluster_name")
                .map_elements(partial(_skill_id, level), return_dtype=pl.String)
                .alias("skill_id"),
            )
        )
    return (
        pl.concat(per_level)
        if per_level
        else pl.DataFrame(
            schema={
                "name": pl.String,
                "cluster_name": pl.String,
                "level": pl.Int64,
                "skill_id": pl.String,
            }
        )
    )


def _parents(m: pl.DataFrame) -> pl.DataFrame:
    """(skill_id, parent_id): the skill one level up most often in the same (uid, step)."""
    up = m.select("uid", "step", pl.col("level") + 1, pl.col("skill_id").alias("parent_id"))
    return (
        m.join(up, on=["uid", "step", "level"])
        .group_by("skill_id", "parent_id")
        .agg(pl.len().alias("k"))
        .sort(["skill_id", "k", "parent_id"], descending=[False, True, False])
        .group_by("skill_id", maintain_order=True)
        .first()
        .select("skill_id", "parent_id")
    )


def _near_duplicate_fraction(v: np.ndarray, threshold: float, exact: bool | None = None):
    if len(v) < 2:
        return 0.0
    i, j, _ = similarity_graph(v, threshold, k=None, exact=exact)
    return len(np.union1d(i, j)) / len(v)


def near_duplicate_pairs(
    names: list[str],
    vectors: np.ndarray,
    threshold: float,
    canonical: Collection[str] = (),
) -> list[tuple[str, str, float]]:
    """Pairs of names at cosine ≥ threshold, most similar first, as (name, name, cosine).

    A pair of two `canonical` names (distinct taxonomy skills such as "macroeconomics"
    and "microeconomics") is left out: they are different skills by construction.
    """
    if len(names) != len(vectors):
        raise ValueError(f"{len(names)} names but {len(vectors)} vectors")
    if len(names) < 2:
        return []
    i, j, sim = similarity_graph(vectors, threshold, k=None)  # edges i < j
    canon = set(canonical)
    out = [
        (names[a], names[b], round(float(c), 4))
        for a, b, c in zip(i.tolist(), j.tolist(), np.asarray(sim).tolist(), strict=True)
        if not (names[a] in canon and names[b] in canon)
    ]
    return sorted(out, key=lambda t: (-t[2], t[0], t[1]))


def share_in_pairs(pairs: list[tuple[str, str, float]], n_names: int) -> float:
    """Share of `n_names` names that appear in at least one of `pairs`."""
    return len({x for a, b, _ in pairs for x in (a, b)}) / n_names if n_names else 0.0


def near_duplicate_rate(
    names: list[str],
    vectors: np.ndarray,
    threshold: float,
    canonical: Collection[str] = (),
) -> float:
    """Share of cluster names with another cluster name at cosine ≥ threshold (pairs of
    two `canonical` names do not count).

    The paper's check uses the second threshold: pass
    near_duplicate_threshold(clustering threshold).
    """
    return share_in_pairs(near_duplicate_pairs(names, vectors, threshold, canonical), len(names))
