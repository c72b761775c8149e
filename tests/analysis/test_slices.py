"""Skill-name clustering, slices hierarchy and the near-duplicate rate (no Dagster)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from skill_assets.analysis import slices
from skill_assets.analysis.slices import (
    adjusted_rand_index,
    build_slices,
    cluster_skill_names,
    default_threshold,
    near_duplicate_pairs,
    near_duplicate_rate,
    near_duplicate_threshold,
    similarity_graph,
)


def planted(n_groups=60, per_group=(1, 12), dim=64, spread=0.2, seed=0):
    """Groups of vectors around random centres; returns (vectors, group per row)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per_group[0], per_group[1] + 1, n_groups)
    centres = rng.standard_normal((n_groups, dim))
    labels = np.repeat(np.arange(n_groups), sizes)
    x = centres[labels] / np.sqrt(dim) + spread * rng.standard_normal((len(labels), dim)) / (
        np.sqrt(dim)
    )
    perm = rng.permutation(len(labels))
    x = x[perm].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels[perm]


def names_for(n):
    return [f"skill {i:04d}" for i in range(n)]


@pytest.fixture(scope="module")
def data():
    return planted()


def test_one_row_per_name_in_order(data):
    x, _ = data
    names = names_for(len(x))[::-1]
    out = cluster_skill_names(names, x, threshold=0.9)
    assert out.columns == ["name", "cluster_id", "cluster_name"]
    assert out["name"].to_list() == names
    assert out["cluster_id"].dtype == pl.Int64
    # ids are 0.. in order of each cluster's first name
    first_seen = out.unique("cluster_id", keep="first", maintain_order=True)["cluster_id"]
    assert first_seen.to_list() == list(range(out["cluster_id"].max() + 1))
    # each cluster has one name, and it is one of its members
    per = out.group_by("cluster_id").agg(pl.col("cluster_name").n_unique())
    assert per["cluster_name"].max() == 1
    members = set(zip(out["cluster_id"], out["name"], strict=True))
    assert all(
        (c, n) in members for c, n in zip(out["cluster_id"], out["cluster_name"], strict=True)
    )


@pytest.mark.parametrize("method", ["ours", "reference"])
def test_deterministic(data, method):
    x, _ = data
    a = cluster_skill_names(names_for(len(x)), x, threshold=0.9, method=method)
    b = cluster_skill_names(names_for(len(x)), x.copy(), threshold=0.9, method=method)
    assert a.equals(b)


@pytest.mark.parametrize("method", ["ours", "reference"])
def test_planted_groups_recovered(data, method):
    x, truth = data
    out = cluster_skill_names(names_for(len(x)), x, threshold=0.9, method=method)
    assert adjusted_rand_index(truth, out["cluster_id"].to_numpy()) > 0.95


def test_reference_and_ours_agree(data):
    x, _ = data
    ours = cluster_skill_names(names_for(len(x)), x, threshold=0.9)
    ref = cluster_skill_names(names_for(len(x)), x, threshold=0.9, method="reference")
    assert adjusted_rand_index(ref["cluster_id"], ours["cluster_id"]) > 0.95


def test_cells_search_matches_exact():
    x, _ = planted(n_groups=400, per_group=(1, 15), spread=0.35, seed=1)
    ei, ej, _ = similarity_graph(x, 0.8, k=None, exact=True)
    ai, aj, aw = similarity_graph(x, 0.8, k=None, exact=False)
    exact = set(zip(ei.tolist(), ej.tolist(), strict=True))
    approx = set(zip(ai.tolist(), aj.tolist(), strict=True))
    assert approx <= exact  # similarities are exact; only recall is approximate
    assert len(approx) / len(exact) > 0.97
    assert (aw >= 0.8).all() and (ai < aj).all()


def test_large_input_path_recovers_groups(monkeypatch):
    """Beyond EXACT_MAX_N the graph comes from k-means cells; quality holds."""
    x, truth = planted(n_groups=300, per_group=(1, 15), seed=2)
    monkeypatch.setattr(slices, "EXACT_MAX_N", 500)
    out = cluster_skill_names(names_for(len(x)), x, threshold=0.9)
    assert adjusted_rand_index(truth, out["cluster_id"].to_numpy()) > 0.95
    again = cluster_skill_names(names_for(len(x)), x, threshold=0.9)
    assert out.equals(again)


def test_chain_is_not_one_cluster():
    """Points along an arc: each close to the next, the ends far apart.
    Connected components would join them all; Leiden must not."""
    angles = np.arange(30) * np.arccos(0.93)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    out = cluster_skill_names(names_for(30), x, threshold=0.9)
    labels = out["cluster_id"].to_numpy()
    assert labels.max() + 1 >= 3
    for c in np.unique(labels):
        members = x[labels == c]
        assert (members @ members.T).min() > 0.6  # no cluster spans the arc


def test_cluster_name_is_most_central_weighted_by_count():
    angles = np.radians([0.0, 10.0, 20.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    names = ["left", "middle", "right"]
    even = cluster_skill_names(names, x, counts=[1, 1, 1], threshold=0.9)
    assert even["cluster_name"].unique().to_list() == ["middle"]
    heavy = cluster_skill_names(names, x, counts=[100, 1, 1], threshold=0.9)
    assert heavy["cluster_name"].unique().to_list() == ["left"]


def test_few_names_and_bad_input():
    empty = cluster_skill_names([], np.zeros((0, 8), dtype=np.float32), threshold=0.9)
    assert empty.height == 0 and empty.columns == ["name", "cluster_id", "cluster_name"]
    one = cluster_skill_names(["a"], np.ones((1, 8), dtype=np.float32), threshold=0.9)
    assert one.row(0) == ("a", 0, "a")
    with pytest.raises(ValueError, match="method"):
        cluster_skill_names(["a"], np.ones((1, 8)), threshold=0.9, method="nope")
    with pytest.raises(ValueError, match="vectors"):
        cluster_skill_names(["a", "b"], np.ones((1, 8)), threshold=0.9)


def test_near_duplicate_rate():
    e = np.eye(4, dtype=np.float32)
    assert near_duplicate_rate(list("abcd"), e, 0.9) == 0.0
    dup = np.vstack([e, e[:1] * 0.999 + e[1:2] * 0.01])  # near copy of the first row
    assert near_duplicate_rate(list("abcde"), dup, 0.9) == pytest.approx(2 / 5)
    assert near_duplicate_rate(list("abcde"), dup, 1.0 + 1e-6) == 0.0
    assert near_duplicate_rate(["a"], e[:1], 0.5) == 0.0
    with pytest.raises(ValueError):
        near_duplicate_rate(["a"], e, 0.5)


def test_near_duplicates_between_taxonomy_names_do_not_count():
    e = np.eye(4, dtype=np.float32)
    near_a = e[:1] * 0.999 + e[1:2] * 0.01
    vecs = np.vstack([e, near_a, near_a])  # "e" and "f" both copy "a"
    names = list("abcdef")
    pairs = near_duplicate_pairs(names, vecs, 0.9)
    assert {(a, b) for a, b, _ in pairs} == {("a", "e"), ("a", "f"), ("e", "f")}
    assert [c for _, _, c in pairs] == sorted((c for _, _, c in pairs), reverse=True)
    assert near_duplicate_rate(names, vecs, 0.9) == pytest.approx(3 / 6)
    # a and e are both taxonomy skills: their pair is exempt, f (free text) still counts
    pairs = near_duplicate_pairs(names, vecs, 0.9, canonical={"a", "e"})
    assert {(a, b) for a, b, _ in pairs} == {("a", "f"), ("e", "f")}
    assert near_duplicate_rate(names, vecs, 0.9, canonical={"a", "e"}) == pytest.approx(3 / 6)
    assert near_duplicate_rate(names, vecs, 0.9, canonical={"a", "e", "f"}) == 0.0


def test_cluster_names_are_deduplicated(data):
    x, _ = data
    out = cluster_skill_names(names_for(len(x)), x, threshold=0.9)
    reps = out.unique("cluster_id", keep="first").sort("cluster_id")["cluster_name"].to_list()
    index = {n: i for i, n in enumerate(names_for(len(x)))}
    vecs = x[[index[r] for r in reps]]
    assert near_duplicate_rate(reps, vecs, near_duplicate_threshold(0.9)) < 0.01


def test_thresholds():
    assert near_duplicate_threshold(0.95) == pytest.approx(0.975)  # the paper's pair
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    assert 0.3 < default_threshold(minilm) < default_threshold(minilm, "reference") < 1
    assert default_threshold("someone/unknown") == slices.FALLBACK_THRESHOLD


def test_adjusted_rand_index():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 3, 3]) == 1.0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.5714285714)
    assert adjusted_rand_index([0, 0, 0, 0], [0, 0, 0, 0]) == 1.0
    rng = np.random.default_rng(0)
    assert abs(adjusted_rand_index(rng.integers(0, 5, 2000), rng.integers(0, 5, 2000))) < 0.02


def _vectors(groups: dict[str, list[str]], dim: int = 16, seed: int = 0):
    """Names of one group get nearly the same vector; groups are orthogonal-ish."""
    rng = np.random.default_rng(seed)
    out = {}
    for g, names in enumerate(groups.values()):
        base = np.zeros(dim, dtype=np.float32)
        base[g] = 1.0
        for name in names:
            v = base + 0.05 * rng.standard_normal(dim).astype(np.float32)
            out[name] = v / np.linalg.norm(v)
    return out


def test_build_slices_hierarchy():
    # (uid, step, level, skill name): level 0 general, level 1 specific.
    rows = [
        ("q1", 0, 0, "mathematics"),
        ("q1", 0, 1, "adding fractions"),
        ("q2", 0, 0, "math"),
        ("q2", 0, 1, "fraction addition"),
        ("q3", 0, 0, "chemistry"),
        ("q3", 0, 1, "computing molar mass"),
        ("q4", 0, 0, "chemistry"),
        ("q4", 0, 1, "calculating molar mass"),
        ("q4", 1, 0, "mathematics"),
        ("q4", 1, 1, "adding fractions"),
    ]
    mentions = pl.DataFrame(
        rows, schema=["uid", "step", "level", "skill_name"], orient="row"
    ).with_columns(pl.lit("b").alias("benchmark"))
    vectors = _vectors(
        {
            "math": ["mathematics", "math"],
            "chem": ["chemistry"],
            "frac": ["adding fractions", "fraction addition"],
            "molar": ["computing molar mass", "calculating molar mass"],
        }
    )
    sl, mapping = build_slices(mentions, vectors, threshold=0.9)
    assert sorted(sl["level"].unique().to_list()) == [0, 1]
    assert sl.height == 4  # math, chemistry; fractions, molar mass
    by_id = {r["skill_id"]: r for r in sl.iter_rows(named=True)}
    for r in sl.iter_rows(named=True):
        assert r["n"] == len(r["uids"])
        if r["level"] == 0:
            assert r["parent_id"] is None
        else:
            assert by_id[r["parent_id"]]["level"] == r["level"] - 1
    frac = sl.filter(pl.col("member_names").list.contains("fraction addition")).row(0, named=True)
    assert sorted(frac["member_names"]) == ["adding fractions", "fraction addition"]
    assert frac["uids"] == ["q1", "q2", "q4"]
    assert sorted(by_id[frac["parent_id"]]["member_names"]) == ["math", "mathematics"]
    molar = sl.filter(pl.col("member_names").list.contains("computing molar mass")).row(
        0, named=True
    )
    assert by_id[molar["parent_id"]]["name"] == "chemistry"
    # every distinct (level, name) maps to exactly one slice
    assert mapping.height == mentions.select("level", "skill_name").unique().height
    again, _ = build_slices(mentions, vectors, threshold=0.9)
    assert again.equals(sl)


def test_taxonomy_names_are_canonical():
    """Names only the taxonomy annotator produced are distinct skills: never merged,
    however close their vectors; free-text names are still clustered."""
    rows = [
        ("q1", 0, 0, "mathematical reasoning", "taxonomy"),
        ("q2", 0, 0, "logical reasoning", "taxonomy"),
        ("q3", 0, 0, "math reasoning", "llm"),
        ("q4", 0, 0, "reasoning about math", "llm"),
    ]
    mentions = pl.DataFrame(
        rows, schema=["uid", "step", "level", "skill_name", "provenance"], orient="row"
    )
    vectors = _vectors(
        {"reasoning": ["mathematical reasoning", "logical reasoning"]}
        | {"math": ["math reasoning", "reasoning about math"]}
    )
    sl, _ = build_slices(mentions, vectors, threshold=0.9)
    members = sorted(sorted(m) for m in sl["member_names"].to_list())
    assert members == [
        ["logical reasoning"],
        ["math reasoning", "reasoning about math"],
        ["mathematical reasoning"],
    ]


def test_imported_skills_are_canonical_too():
    """A user's own labels (bring-your-own skills, provenance "imported") are kept apart as
    given, like taxonomy names; the same names written by an LLM would be merged."""
    names = ["algebraic reasoning", "arithmetic reasoning"]
    vectors = _vectors({"reasoning": names})
    for provenance, expected in (
        ("imported", [["algebraic reasoning"], ["arithmetic reasoning"]]),
        ("llm", [["algebraic reasoning", "arithmetic reasoning"]]),
    ):
        mentions = pl.DataFrame(
            [(f"q{i}", 0, 0, n, provenance) for i, n in enumerate(names)],
            schema=["uid", "step", "level", "skill_name", "provenance"],
            orient="row",
        )
        sl, _ = build_slices(mentions, vectors, threshold=0.9)
        assert sorted(sorted(m) for m in sl["member_names"].to_list()) == expected, provenance


def test_igraph_graph_both_paths_agree(monkeypatch):
    rng = np.random.default_rng(0)
    i = rng.integers(0, 50, 300)
    j = rng.integers(0, 50, 300)
    direct = slices._igraph_graph(60, i, j)
    monkeypatch.setattr(slices, "IGRAPH_FILE_MIN_EDGES", 1)
    via_file = slices._igraph_graph(60, i, j)
    assert via_file.vcount() == direct.vcount() == 60
    assert via_file.get_edgelist() == direct.get_edgelist()
