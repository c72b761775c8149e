"""Paired tests, gains and ranked insights on a small hand-checkable table."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, false_discovery_control, fisher_exact

from skill_assets.accuracy import slice_accuracy
from skill_assets.evolution import (
    DATASET_VIEW,
    EVOLUTION,
    dataset_view,
    evolution_summary,
    model_evolution,
)
from skill_assets.insights import (
    GAINS,
    INSIGHTS,
    PAIRWISE,
    headline,
    mcnemar_exact_p,
    model_gains,
    pairwise_tests,
    skill_insights,
)


def make_slices(spec: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "skill_id": list(spec),
            "name": [f"skill {s}" for s in spec],
            "level": [0] * len(spec),
            "parent_id": [None] * len(spec),
            "member_names": [[s] for s in spec],
            "uids": list(spec.values()),
            "n": [len(set(v)) for v in spec.values()],
        },
        schema_overrides={"parent_id": pl.String},
    )


def u(i: int) -> str:
    return f"u{i:02d}"


def hand_results() -> pl.DataFrame:
    """Slice S = u00..u39, slice U = u40..u74, slice T = u00..u19 (too small).

    S: A right on u00..u29 (30/40); B right on u00..u17 + u30, u31 (20/40);
       C identical to A.  A vs B: b = 12 (u18..u29), c = 2 (u30, u31).
    U: A right everywhere (35/35); C right on u40..u54 (15/35);
       B has results only on u40..u64 (all right), so B shares 25 < 30 with anyone.
    """
    rows = []
    for i in range(75):
        a = 1.0
        if i < 40:
            a = 1.0 if i < 30 else 0.0
        c = a if i < 40 else (1.0 if i < 55 else 0.0)
        rows.append((u(i), "A", a))
        rows.append((u(i), "C", c))
        if i < 40:
            rows.append((u(i), "B", 1.0 if (i < 18 or i in (30, 31)) else 0.0))
        elif i < 65:
            rows.append((u(i), "B", 1.0))
    return pl.DataFrame(rows, schema=["uid", "model", "correct"], orient="row")


def hand_slices() -> pl.DataFrame:
    return make_slices(
        {
            "S": [u(i) for i in range(40)],
            "U": [u(i) for i in range(40, 75)],
            "T": [u(i) for i in range(20)],
        }
    )


def test_mcnemar_matches_binomtest():
    grid = [(b, c) for b in range(31) for c in range(31)] + [(500, 460), (3, 250), (0, 0)]
    b = np.array([g[0] for g in grid])
    c = np.array([g[1] for g in grid])
    got = mcnemar_exact_p(b, c)
    for (bb, cc), p in zip(grid, got, strict=True):
        ref = binomtest(bb, bb + cc, 0.5).pvalue if bb + cc else 1.0
        assert p == pytest.approx(ref, rel=1e-9, abs=1e-300), (bb, cc)


def test_pairwise_hand_checked():
    pw = pairwise_tests(hand_results(), hand_slices(), min_slice_size=30)
    assert pw.schema == pl.Schema(PAIRWISE)
    got = {(r["skill_id"], r["model_a"], r["model_b"]): r for r in pw.iter_rows(named=True)}
    # T is too small; on U every pair with B shares only 25 instances
    assert set(got) == {("S", "A", "B"), ("S", "A", "C"), ("S", "B", "C"), ("U", "A", "C")}
    ab, ac, bc, uac = (got[k] for k in sorted(got))
    assert (ab["n"], ab["acc_a"], ab["acc_b"], ab["effect"]) == (40, 0.75, 0.5, 0.25)
    assert (ab["b"], ab["c"], ab["n_discordant"]) == (12, 2, 14)
    assert ab["p"] == pytest.approx(binomtest(12, 14, 0.5).pvalue)
    # A and C agree everywhere on S: no discordant pair -> p = 1
    assert (ac["n_discordant"], ac["effect"], ac["p"]) == (0, 0.0, 1.0)
    assert (bc["b"], bc["c"], bc["effect"]) == (2, 12, -0.25)
    assert bc["p"] == pytest.approx(ab["p"])
    assert (uac["n"], uac["b"], uac["c"]) == (35, 20, 0)
    assert uac["effect"] == pytest.approx(1 - 15 / 35)
    assert uac["p"] == pytest.approx(binomtest(20, 20, 0.5).pvalue)
    # BH over all rows of the frame
    q = false_discovery_control(pw["p"].to_numpy(), method="bh")
    np.testing.assert_allclose(pw["q"].to_numpy(), q)


def test_pairwise_binarises_scores():
    uids = [u(i) for i in range(4)]
    results = pl.DataFrame(
        {
            "uid": uids * 2,
            "model": ["A"] * 4 + ["B"] * 4,
            "correct": [0.7, 0.6, 0.2, 1.0, 0.3, 0.5, 0.1, 1.0],
        }
    )
    pw = pairwise_tests(results, make_slices({"s": uids}), min_slice_size=1)
    row = pw.row(0, named=True)
    # binarised at >= 0.5: A = 1,1,0,1 ; B = 0,1,0,1 -> b = 1, c = 0
    assert (row["b"], row["c"]) == (1, 0)
    # accuracies use the raw scores
    assert row["acc_a"] == pytest.approx(2.5 / 4) and row["acc_b"] == pytest.approx(1.9 / 4)


def test_model_gains_hand_checked():
    results, slices = hand_results(), hand_slices()
    sa = slice_accuracy(results, slices, min_slice_size=30)
    pw = pairwise_tests(results, slices, min_slice_size=30)
    g = model_gains(sa, pw, q_level=0.05, min_slice_size=30)
    assert g.schema == pl.Schema(GAINS)
    got = {(r["skill_id"], r["model"]): r for r in g.iter_rows(named=True)}
    # U: B has only 25 results (< 30) so it takes no part there
    assert set(got) == {("S", "A"), ("S", "B"), ("S", "C"), ("U", "A"), ("U", "C")}
    q = {(r["skill_id"], r["model_a"], r["model_b"]): r["q"] for r in pw.iter_rows(named=True)}
    # S: A .75, B .50, C .75
    assert got["S", "A"]["gain"] == pytest.approx(0.75 - (0.5 + 0.75) / 2)
    assert got["S", "A"]["kind"] == "strength"
    # A's only test in the strength direction on S is A vs B (A vs C has effect 0)
    assert got["S", "A"]["versus"] == "B" and got["S", "A"]["q"] == pytest.approx(q["S", "A", "B"])
    assert got["S", "B"]["gain"] == pytest.approx(-0.25) and got["S", "B"]["kind"] == "weakness"
    assert got["S", "B"]["q"] == pytest.approx(q["S", "A", "B"])
    assert got["S", "C"]["versus"] == "B"
    assert got["U", "A"]["gain"] == pytest.approx(1 - 15 / 35)
    assert got["U", "A"]["other_accuracy"] == pytest.approx(15 / 35)
    assert got["U", "C"]["kind"] == "weakness" and got["U", "C"]["n_models"] == 2
    for r in got.values():
        assert r["significant"] == (r["q"] is not None and r["q"] < 0.05)
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]


def test_skill_insights_ranked_and_stable():
    results, slices = hand_results(), hand_slices()
    ins = skill_insights(results, slices, min_slice_size=30, q_level=0.05)
    assert ins.schema == pl.Schema(INSIGHTS)
    # 5 gains + 4 pairwise findings
    assert ins.height == 9
    assert ins.filter(pl.col("kind") == "pairwise").height == 4
    assert ins["insight_id"].n_unique() == 9
    # pairwise rows name the better model first, effect >= 0
    bc = ins.filter((pl.col("kind") == "pairwise") & (pl.col("other_model") == "B"))
    assert sorted(bc["model"].to_list()) == ["A", "C"]
    assert (ins.filter(pl.col("kind") == "pairwise")["effect"] >= 0).all()
    row = ins.filter((pl.col("kind") == "strength") & (pl.col("model") == "A")).row(0, named=True)
    key = f"strength|{row['skill_id']}|A|"
    assert row["insight_id"] == hashlib.sha1(key.encode()).hexdigest()[:12]
    assert row["other_model"] is None
    for r in ins.iter_rows(named=True):
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    # rank: 1..k within model, significant first, then |effect| descending
    for _, grp in ins.group_by("model"):
        grp = grp.sort("rank")
        assert grp["rank"].to_list() == list(range(1, grp.height + 1))
        sig = grp["significant"].to_list()
        assert sig == sorted(sig, reverse=True)
        for flag in (True, False):
            eff = grp.filter(pl.col("significant") == flag)["effect"].abs().to_list()
            assert eff == sorted(eff, reverse=True)
    again = skill_insights(results, slices, min_slice_size=30, q_level=0.05)
    assert again.equals(ins)
    text = headline(ins, top_k=2)
    assert "A:" in text and "B:" in text and "top strengths" in text and "q=" in text


def test_skill_insights_degenerate_inputs():
    results, slices = hand_results(), hand_slices()
    one = skill_insights(results.filter(pl.col("model") == "A"), slices)
    assert one.height == 0 and one.schema == pl.Schema(INSIGHTS)
    none = skill_insights(results, slices.clear())
    assert none.height == 0 and none.schema == pl.Schema(INSIGHTS)
    big = skill_insights(results, slices, min_slice_size=1000)
    assert big.height == 0 and big.schema == pl.Schema(INSIGHTS)
    assert pairwise_tests(results.filter(pl.col("model") == "A"), slices).height == 0
    assert "No skill insights" in headline(one)


# --- property test: every tested number is scipy's on the same counts -----------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=2**31 - 1),
    st.integers(min_value=2, max_value=3),
    st.integers(min_value=1, max_value=60),
)
def test_pairwise_matches_scipy_on_random_tables(seed, n_models, n_inst):
    rng = np.random.default_rng(seed)
    models = ["A", "B", "C"][:n_models]
    uids = [u(i) for i in range(n_inst)]
    table = {m: rng.random(n_inst) < rng.uniform(0.1, 0.9) for m in models}
    results = pl.DataFrame(
        {
            "uid": uids * n_models,
            "model": [m for m in models for _ in uids],
            "correct": np.concatenate([table[m] for m in models]).astype(float),
        }
    )
    spec = {f"s{j}": [x for x in uids if rng.random() < 0.6] or uids[:1] for j in range(4)}
    pw = pairwise_tests(results, make_slices(spec), min_slice_size=1)
    idx = {x: i for i, x in enumerate(uids)}
    assert pw.height == 4 * n_models * (n_models - 1) // 2
    for r in pw.iter_rows(named=True):
        rows = [idx[x] for x in set(spec[r["skill_id"]])]
        a, b = table[r["model_a"]][rows], table[r["model_b"]][rows]
        bb, cc = int((a & ~b).sum()), int((~a & b).sum())
        assert (r["n"], r["b"], r["c"]) == (len(rows), bb, cc)
        assert r["effect"] == pytest.approx(a.mean() - b.mean())
        ref = binomtest(bb, bb + cc, 0.5).pvalue if bb + cc else 1.0
        assert r["p"] == pytest.approx(ref, rel=1e-9)
    np.testing.assert_allclose(
        pw["q"].to_numpy(), false_discovery_control(pw["p"].to_numpy(), method="bh")
    )
    acc = slice_accuracy(results, make_slices(spec), min_slice_size=1)
    assert (acc["ci_low"] <= acc["accuracy"]).all() and (acc["accuracy"] <= acc["ci_high"]).all()


# --- model evolution --------------------------------------------------------------------


def evolution_results() -> pl.DataFrame:
    """old/new on u00..u59.

    u00-u09 both right; u10-u19 old wrong, new right (+10); u20-u24 old right,
    new wrong (-5); u25-u39 both wrong; u40-u49 old right, new wrong (-10);
    u50-u59 both right. Overall: old 35/60, new 30/60, 10 improved, 15 regressed.
    """
    rows = []
    for i in range(60):
        if i < 10 or i >= 50:
            o, n = 1, 1
        elif i < 20:
            o, n = 0, 1
        elif i < 25 or 40 <= i < 50:
            o, n = 1, 0
        else:
            o, n = 0, 0
        rows += [(u(i), "old", float(o)), (u(i), "new", float(n))]
    return pl.DataFrame(rows, schema=["uid", "model", "correct"], orient="row")


def evolution_slices() -> pl.DataFrame:
    return make_slices(
        {
            "S": [u(i) for i in range(40)],
            "T": [u(i) for i in range(40, 60)],
            "Z": [u(i) for i in range(10)],  # both versions right everywhere
        }
    )


def test_model_evolution_hand_checked():
    evo = model_evolution(evolution_results(), evolution_slices(), [("old", "new")], 10, 0.05)
    assert evo.schema == pl.Schema(EVOLUTION)
    got = {r["skill_id"]: r for r in evo.iter_rows(named=True)}
    assert set(got) == {"S", "T", "Z"}
    avg = 30 / 60 - 35 / 60
    s, t, z = got["S"], got["T"], got["Z"]
    assert (s["n"], s["improved"], s["regressed"]) == (40, 10, 5)
    assert (s["acc_old"], s["acc_new"]) == (pytest.approx(15 / 40), pytest.approx(20 / 40))
    assert s["change"] == pytest.approx(5 / 40)
    assert s["avg_change"] == pytest.approx(avg)
    assert s["relative_change"] == pytest.approx(5 / 40 - avg)
    assert s["direction"] == "improved"
    assert s["p"] == pytest.approx(binomtest(10, 15, 0.5).pvalue)
    assert s["p_vs_avg"] == pytest.approx(fisher_exact([[10, 5], [0, 10]]).pvalue)
    assert (t["n"], t["improved"], t["regressed"]) == (20, 0, 10)
    assert t["change"] == pytest.approx(-0.5) and t["direction"] == "regressed"
    assert t["p"] == pytest.approx(binomtest(0, 10, 0.5).pvalue)
    assert t["p_vs_avg"] == pytest.approx(fisher_exact([[0, 10], [10, 5]]).pvalue)
    # no discordant pair inside the slice: both tests give p = 1
    assert (z["improved"], z["regressed"], z["change"]) == (0, 0, 0.0)
    assert z["p"] == 1.0 and z["p_vs_avg"] == 1.0
    keys = ["S", "T", "Z"]
    for col, qcol in (("p", "q"), ("p_vs_avg", "q_vs_avg")):
        ref = false_discovery_control([got[k][col] for k in keys], method="bh")
        np.testing.assert_allclose([got[k][qcol] for k in keys], ref)
    for r in got.values():
        assert r["significant"] == (r["q_vs_avg"] < 0.05)
        assert r["significant_change"] == (r["q"] < 0.05)
        assert r["change_ci_low"] <= r["change"] <= r["change_ci_high"]
    # ranked within the pair: significant first, then |relative_change|
    assert evo["rank"].to_list() == [1, 2, 3]
    assert "most improved" in evolution_summary(evo) and "old -> new" in evolution_summary(evo)


def test_model_evolution_degenerate_inputs():
    res, sl = evolution_results(), evolution_slices()
    assert model_evolution(res, sl, [], 10).height == 0
    missing = model_evolution(res, sl, [("old", "nope")], 10)
    assert missing.height == 0 and missing.schema == pl.Schema(EVOLUTION)
    assert model_evolution(res, sl, [("old", "new")], 1000).height == 0
    assert "compare" in evolution_summary(missing)


# --- dataset view -----------------------------------------------------------------------


def test_dataset_view_hand_checked():
    slices = pl.DataFrame(
        {
            "skill_id": ["X", "Y", "X1"],
            "name": ["skill X", "skill Y", "skill X1"],
            "level": [0, 0, 1],
            "parent_id": [None, None, "X"],
            "member_names": [["x"], ["y"], ["x1"]],
            "uids": [["b1/u1", "b1/u2", "b2/u5"], ["b1/u2", "b1/u3"], ["b1/u1"]],
            "n": [3, 2, 1],
        },
        schema_overrides={"parent_id": pl.String},
    )
    uids = ["b1/u1", "b1/u2", "b1/u3", "b1/u4", "b2/u5", "b2/u6"]
    bench = [x.split("/")[0] for x in uids]
    a = [1, 1, 0, 1, 0, 1]
    b = [0, 0, 1, 0, 1, 0]
    results = pl.DataFrame(
        {
            "uid": uids * 2,
            "benchmark": bench * 2,
            "model": ["A"] * 6 + ["B"] * 6,
            "correct": [float(v) for v in a + b],
        }
    )
    instances = pl.DataFrame({"uid": uids, "benchmark": bench})
    view = dataset_view(results, slices, instances)
    assert view.schema == pl.Schema(DATASET_VIEW)
    mix = {
        (r["benchmark"], r["skill_id"]): r
        for r in view.iter_rows(named=True)
        if r["view"] == "benchmark_mix"
    }
    assert set(mix) == {("b1", "X"), ("b1", "Y"), ("b2", "X")}  # level 1 ignored
    assert mix["b1", "X"]["n"] == 2 and mix["b1", "X"]["share_of_benchmark"] == 0.5
    assert mix["b1", "Y"]["share_of_benchmark"] == 0.5 and mix["b1", "Y"]["share_of_skill"] == 1.0
    assert mix["b2", "X"]["share_of_benchmark"] == 0.5
    assert mix["b1", "X"]["share_of_skill"] == pytest.approx(2 / 3)
    src = {
        (r["model"], r["skill_id"]): r
        for r in view.iter_rows(named=True)
        if r["view"] == "accuracy_by_skill"
    }
    # u2 tests X and Y: it counts 1/2 in each
    ax, ay, an = src["A", "X"], src["A", "Y"], src["A", "(no skill)"]
    assert (ax["weight"], ax["accuracy"], ax["contribution"]) == (
        pytest.approx(2.5 / 6),
        pytest.approx(1.5 / 2.5),
        pytest.approx(1.5 / 6),
    )
    assert (ay["weight"], ay["accuracy"]) == (pytest.approx(1.5 / 6), pytest.approx(0.5 / 1.5))
    assert an["n"] == 2 and an["contribution"] == pytest.approx(2 / 6)
    for m, acc in (("A", 4 / 6), ("B", 2 / 6)):
        total = sum(r["contribution"] for (mm, _), r in src.items() if mm == m)
        assert total == pytest.approx(acc)
    assert (
        ax["other_contribution"]
        == pytest.approx(src["B", "X"]["contribution"])
        == pytest.approx(1 / 6)
    )
    by_bench = {
        (r["model"], r["benchmark"]): r
        for r in view.iter_rows(named=True)
        if r["view"] == "accuracy_by_benchmark"
    }
    assert by_bench["A", "b1"]["accuracy"] == 0.75 and by_bench["A", "b1"][
        "weight"
    ] == pytest.approx(4 / 6)
    assert by_bench["A", "b2"]["contribution"] == pytest.approx(1 / 6)
    assert dataset_view(results.clear(), slices.clear()).height == 0
