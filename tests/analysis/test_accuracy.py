"""Slice accuracy and Wilson intervals on small hand-checkable tables."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from skill_assets.analysis.accuracy import overall_accuracy, slice_accuracy, wilson_interval
from skill_assets.core.schemas import SLICE_ACCURACY


def make_results(table: dict[str, list[float | None]], uids: list[str]) -> pl.DataFrame:
    """Results frame from {model: [correct per uid]} (None = no result)."""
    rows = [
        {"uid": u, "benchmark": "b", "instance_id": u, "model": m, "correct": c}
        for m, cs in table.items()
        for u, c in zip(uids, cs, strict=True)
        if c is not None
    ]
    return pl.DataFrame(rows, schema_overrides={"correct": pl.Float64})


def make_slices(spec: dict[str, list[str]], parents: dict[str, str] | None = None) -> pl.DataFrame:
    parents = parents or {}
    return pl.DataFrame(
        {
            "skill_id": list(spec),
            "name": [f"skill {s}" for s in spec],
            "level": [1 if s in parents else 0 for s in spec],
            "parent_id": [parents.get(s) for s in spec],
            "member_names": [[s] for s in spec],
            "uids": list(spec.values()),
            "n": [len(set(v)) for v in spec.values()],
        },
        schema_overrides={"parent_id": pl.String},
    )


UIDS = ["u1", "u2", "u3", "u4", "u5"]


def test_wilson_matches_scipy():
    for n in (1, 2, 5, 30, 200):
        for k in range(n + 1):
            ref = binomtest(k, n).proportion_ci(method="wilson")
            lo, hi = wilson_interval(k, n)
            assert lo == pytest.approx(ref.low, abs=1e-12)
            assert hi == pytest.approx(ref.high, abs=1e-12)
            assert lo <= k / n <= hi
    lo, hi = wilson_interval(np.array([0, 3]), np.array([0, 0]))
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_slice_accuracy_hand_checked():
    results = make_results(
        {
            # u1 u2 u3 u4 u5
            "A": [1, 1, 0, 1, 0],
            "B": [0, 1, None, 0, 1],  # B has no result on u3
        },
        UIDS,
    )
    # duplicate uid in s1 and an unknown uid in s2 must not count
    slices = make_slices({"s1": ["u1", "u2", "u3", "u1"], "s2": ["u3", "u4", "u5", "zz"]})
    out = slice_accuracy(results, slices, min_slice_size=3)
    assert out.schema == pl.Schema(SLICE_ACCURACY)
    got = {(r["skill_id"], r["model"]): r for r in out.iter_rows(named=True)}
    # s1 = {u1,u2,u3}: A 2/3; B only u1,u2 -> 1/2
    # s2 = {u3,u4,u5}: A 1/3; B only u4,u5 -> 1/2
    expected = {("s1", "A"): (3, 2), ("s1", "B"): (2, 1), ("s2", "A"): (3, 1), ("s2", "B"): (2, 1)}
    assert set(got) == set(expected)
    for key, (n, k) in expected.items():
        row = got[key]
        assert row["n"] == n and row["n_correct"] == k
        assert row["accuracy"] == pytest.approx(k / n)
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert row["ci_low"] == pytest.approx(ci.low) and row["ci_high"] == pytest.approx(ci.high)
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        assert row["small"] == (n < 3)
        assert row["name"] == f"skill {key[0]}" and row["level"] == 0


def test_slice_accuracy_fractional_scores():
    results = make_results({"A": [0.5, 0.25, 1.0, None, None]}, UIDS)
    out = slice_accuracy(results, make_slices({"s": ["u1", "u2", "u3"]}), min_slice_size=1)
    row = out.row(0, named=True)
    assert row["n"] == 3 and row["n_correct"] == pytest.approx(1.75)
    assert row["accuracy"] == pytest.approx(1.75 / 3)
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]


def test_empty_inputs_give_schema():
    results = make_results({"A": [1, 0, 1, 1, 0]}, UIDS)
    empty_slices = make_slices({"s": ["u1"]}).clear()
    out = slice_accuracy(results, empty_slices)
    assert out.height == 0 and out.schema == pl.Schema(SLICE_ACCURACY)
    assert slice_accuracy(results.clear(), make_slices({"s": ["u1"]})).height == 0


def test_overall_accuracy():
    results = make_results({"A": [1, 1, 0, 1, 0], "B": [0, 1, None, 0, 1]}, UIDS)
    out = overall_accuracy(results)
    assert out["model"].to_list() == ["A", "B"]  # sorted by accuracy
    a = out.row(0, named=True)
    assert (a["n"], a["n_correct"], a["accuracy"]) == (5, 3.0, 0.6)
    ci = binomtest(3, 5).proportion_ci(method="wilson")
    assert a["ci_low"] == pytest.approx(ci.low) and a["ci_high"] == pytest.approx(ci.high)
    b = out.row(1, named=True)
    assert (b["n"], b["accuracy"]) == (4, 0.5)


def test_slice_accuracy_scales():
    """10k slices x 50k instances x 10 models stays fast (explode + join + group_by)."""
    import time

    rng = np.random.default_rng(0)
    n_inst, n_models, n_slices = 50_000, 10, 10_000
    uids = np.array([f"u{i}" for i in range(n_inst)])
    results = pl.DataFrame(
        {
            "uid": np.repeat(uids, n_models),
            "model": np.tile([f"m{j}" for j in range(n_models)], n_inst),
            "correct": (rng.random(n_inst * n_models) < 0.6).astype(float),
        }
    )
    mem = pl.DataFrame(
        {"s": rng.integers(0, n_slices, n_inst * 10), "uid": np.repeat(uids, 10)}
    ).unique()
    slices = (
        mem.group_by("s")
        .agg(pl.col("uid").alias("uids"))
        .select(
            pl.format("s{}", "s").alias("skill_id"),
            pl.format("skill {}", "s").alias("name"),
            pl.lit(0, dtype=pl.Int64).alias("level"),
            "uids",
        )
    )
    t = time.perf_counter()
    out = slice_accuracy(results, slices)
    assert time.perf_counter() - t < 30
    assert out.height == slices.height * n_models
