"""Paired tests, gains and ranked insights on a small hand-checkable table."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, false_discovery_control, fisher_exact

from skill_assets.analysis.accuracy import slice_accuracy
from skill_assets.analysis.evolution import (
    DATASET_VIEW,
    EVOLUTION,
    dataset_view,
    evolution_summary,
    model_evolution,
)
from skill_assets.analysis.insights import (
    GAIN_TEST,
    GAINS,
    INSIGHTS,
    LEVELS,
    PAIRWISE,
    PAIRWISE_TEST,
    headline,
    instance_strata,
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
    g = model_gains(results, slices, min_slice_size=30, q_level=0.05)
    assert g.schema == pl.Schema(GAINS)
    got = {(r["skill_id"], r["model"]): r for r in g.iter_rows(named=True)}
    # U: B answered 25 (< 30) of its instances, so it has no gain there (but counts as an other)
    assert set(got) == {("S", "A"), ("S", "B"), ("S", "C"), ("U", "A"), ("U", "C")}
    # S: A .75, B .50, C .75; per instance A - mean(B, C): +.5 on u18..u29, -.5 on u30, u31
    sa = got["S", "A"]
    assert sa["gain"] == pytest.approx(0.75 - (0.5 + 0.75) / 2)
    assert (sa["kind"], sa["n_above"], sa["n_below"], sa["n"]) == ("strength", 12, 2, 40)
    assert sa["p"] == pytest.approx(binomtest(12, 14, 0.5).pvalue)
    assert got["S", "B"]["gain"] == pytest.approx(-0.25) and got["S", "B"]["kind"] == "weakness"
    assert (got["S", "B"]["n_above"], got["S", "B"]["n_below"]) == (2, 12)
    # U: A = 1 everywhere; others' mean is 1 (u40..54), .5 (u55..64, B right, C wrong), 0 after
    ua = got["U", "A"]
    assert ua["gain"] == pytest.approx(15 / 35) and ua["other_accuracy"] == pytest.approx(20 / 35)
    assert (ua["n_above"], ua["n_below"], ua["n_models"]) == (20, 0, 3)
    assert got["U", "C"]["gain"] == pytest.approx(-20 / 35)
    np.testing.assert_allclose(g["q"].to_numpy(), false_discovery_control(g["p"].to_numpy()))
    for r in got.values():
        assert r["significant"] == (r["q"] < 0.05)
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert r["gain_ci_low"] <= r["gain"] <= r["gain_ci_high"]


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
    # rank: 1..k within model, skill-level first, then significant, then the effect's
    # CI bound nearest zero descending
    order = {v: i for i, v in enumerate(LEVELS)}
    for _, grp in ins.group_by("model"):
        grp = grp.sort("rank")
        assert grp["rank"].to_list() == list(range(1, grp.height + 1))
        lv = [order[x] for x in grp["level_of_finding"].to_list()]
        assert lv == sorted(lv)
        sig = grp["significant"].to_list()
        assert sig == sorted(sig, reverse=True)
        for _, sub in grp.group_by("level_of_finding", "significant", maintain_order=True):
            bound = [
                max(lo if e >= 0 else -hi, 0.0)
                for e, lo, hi in sub.select("effect", "effect_ci_low", "effect_ci_high").iter_rows()
            ]
            assert bound == sorted(bound, reverse=True)
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


# --- skill-level vs benchmark-level findings on synthetic truth --------------------------

# 20-instance outcome patterns (1 = right); equal outcomes outside the tested effect
EVEN = {  # three models of the same accuracy (50%) with discordance both ways
    "A": [1] * 10 + [0] * 10,
    "B": [0] * 5 + [1] * 10 + [0] * 5,
    "C": [1] * 5 + [0] * 5 + [1] * 5 + [0] * 5,
}
A_AHEAD = {  # A right on 17/20, B and C on 10/20: A beats B on 8 discordant pairs, loses 1
    "A": [1] * 17 + [0] * 3,
    "B": [1] * 9 + [0] * 8 + [1] + [0] * 2,
    "C": [1] * 5 + [0] * 5 + [1] * 5 + [0] * 5,
}


def synthetic(assign) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """Results on benchmarks x and y (400 each); ``assign(bench, i)`` -> (pattern, position).

    Also returns the uids of each benchmark. Every uid is "bench/i", so the
    strata (benchmarks) come from the results' ``benchmark`` column.
    """
    rows, uids = [], {}
    for bench in ("x", "y"):
        for i in range(400):
            pattern, pos = assign(bench, i)
            uid = f"{bench}/{i:03d}"
            uids.setdefault(bench, []).append(uid)
            for m, outcomes in pattern.items():
                rows.append((uid, bench, m, float(outcomes[pos % 20]), "X"))
    df = pl.DataFrame(
        rows, schema=["uid", "benchmark", "model", "correct", "parsed_answer"], orient="row"
    )
    return df, uids


def leveled_slices(spec: dict[str, tuple[int, list[str]]]) -> pl.DataFrame:
    return make_slices({k: v[1] for k, v in spec.items()}).with_columns(
        pl.Series("level", [v[0] for v in spec.values()], dtype=pl.Int64)
    )


def test_better_only_through_benchmark_yields_no_skill_finding():
    # A is ahead on all of benchmark x, equal on y; slice K takes every other block of 20
    # from both, so inside x it looks exactly like the rest of x.
    results, uids = synthetic(lambda b, i: (A_AHEAD if b == "x" else EVEN, i))
    in_k = [u for b in ("x", "y") for i, u in enumerate(uids[b]) if (i // 20) % 2 == 0]
    slices = leveled_slices(
        {
            "K": (0, in_k),
            "X": (0, uids["x"]),
            "Xq": (1, [u for i, u in enumerate(uids["x"]) if (i // 20) % 4 == 0]),
        }
    )
    ins = skill_insights(results, slices, min_slice_size=30)
    assert ins.filter(pl.col("level_of_finding") == "skill").height == 0
    k_ab = ins.filter(
        (pl.col("skill_id") == "K") & (pl.col("model") == "A") & (pl.col("other_model") == "B")
    ).row(0, named=True)
    # the marginal test alone would call it: A wins 80 discordant pairs, loses 10
    assert k_ab["significant"] and k_ab["q"] < 1e-6
    assert k_ab["level_of_finding"] == "benchmark"
    assert k_ab["conditional_odds_ratio"] == pytest.approx(1.0)
    assert k_ab["p_conditional"] == pytest.approx(1.0)
    # a slice that is its whole benchmark has nothing to be compared with
    x_ab = ins.filter(
        (pl.col("skill_id") == "X") & (pl.col("model") == "A") & (pl.col("other_model") == "B")
    ).row(0, named=True)
    assert x_ab["p_conditional"] is None and x_ab["level_of_finding"] == "benchmark"
    # skill-level rows would come first; here benchmark-level significant rows lead
    assert ins["level_of_finding"][0] == "benchmark"


def k_results():
    """A is better than B and C only on skill K (every 4th instance of x and y)."""

    def assign(bench, i):
        return (A_AHEAD, i // 4) if i % 4 == 0 else (EVEN, i - i // 4)

    results, uids = synthetic(assign)
    in_k = [u for b in ("x", "y") for i, u in enumerate(uids[b]) if i % 4 == 0]
    return results, uids, in_k


def test_better_on_one_skill_across_benchmarks_yields_skill_finding():
    results, uids, in_k = k_results()
    other = [u for b in ("x", "y") for i, u in enumerate(uids[b]) if i % 4 == 1]
    slices = leveled_slices({"K": (1, in_k), "N": (1, other)})
    ins = skill_insights(results, slices, min_slice_size=30)
    skill = ins.filter(pl.col("level_of_finding") == "skill")
    got = {(r["kind"], r["model"], r["other_model"]) for r in skill.iter_rows(named=True)}
    assert ("pairwise", "A", "B") in got and ("strength", "A", None) in got
    assert set(skill["skill_id"].to_list()) == {"K"}
    # skill-level findings are listed first
    assert ins["level_of_finding"].head(skill.height).to_list() == ["skill"] * skill.height
    ab = skill.filter((pl.col("kind") == "pairwise") & (pl.col("other_model") == "B")).row(
        0, named=True
    )
    assert ab["conditional_odds_ratio"] > 1 and ab["rest_effect"] == pytest.approx(0.0)
    assert ab["test"] == PAIRWISE_TEST and "Mantel-Haenszel" in ab["conditional_test"]
    # the conditional p is statsmodels' CMH on the per-benchmark 2x2 tables
    from statsmodels.stats.contingency_tables import StratifiedTable

    # per benchmark: K holds 100 instances = 5 blocks of A_AHEAD (A wins 8, loses 1 per block);
    # the other 300 are 15 blocks of EVEN (A vs B: wins 5, loses 5 per block)
    t = np.array([[[40, 40], [5, 5]], [[75, 75], [75, 75]]], dtype=float)  # [in/out][won/lost][x/y]
    ref = StratifiedTable(t).test_null_odds(correction=False).pvalue
    assert ab["p_conditional"] == pytest.approx(ref, rel=1e-9)


def test_nested_duplicate_slices_yield_one_finding():
    results, uids, in_k = k_results()
    slices = leveled_slices(
        {"K0": (0, in_k), "K1": (1, in_k[2:-2]), "K2": (2, in_k[:100])}  # K2: only benchmark x
    )
    ins = skill_insights(results, slices, min_slice_size=30)
    ab = ins.filter(
        (pl.col("kind") == "pairwise") & (pl.col("model") == "A") & (pl.col("other_model") == "B")
    )
    # K0 and K1 (Jaccard 196/200) are one finding listing both levels; K2 (half of K0) is not
    assert ab.height == 2
    merged = ab.filter(pl.col("skill_id").is_in(["K0", "K1"])).row(0, named=True)
    assert merged["levels"] == [0, 1]
    assert len(merged["merged_skill_ids"]) == 1
    assert merged["merged_skill_ids"][0] in {"K0", "K1"} and merged["merged_names"]
    assert ab.filter(pl.col("skill_id") == "K2").row(0, named=True)["levels"] == [2]
    # every comparison on K0/K1 appears once
    k01 = ins.filter(pl.col("skill_id").is_in(["K0", "K1"]))
    assert k01.select("kind", "model", "other_model").is_duplicated().sum() == 0
    # with a stricter overlap nothing merges
    strict = skill_insights(results, slices, min_slice_size=30, merge_overlap=0.99)
    assert strict.height == ins.height + k01.height


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=2, max_value=4))
def test_gain_p_values_are_the_named_sign_test(seed, n_models):
    rng = np.random.default_rng(seed)
    models = ["A", "B", "C", "D"][:n_models]
    n_inst = 80
    uids = [u(i) for i in range(n_inst)]
    # random scores (some fractional), some missing results
    score = {m: np.round(rng.random(n_inst) * rng.uniform(0.6, 1.6), 2).clip(0, 1) for m in models}
    have = {m: rng.random(n_inst) < 0.9 for m in models}
    results = pl.DataFrame(
        [(x, m, float(score[m][i])) for m in models for i, x in enumerate(uids) if have[m][i]],
        schema=["uid", "model", "correct"],
        orient="row",
    )
    spec = {f"s{j}": [x for x in uids if rng.random() < 0.5] for j in range(3)}
    g = model_gains(results, make_slices(spec), min_slice_size=5)
    idx = {x: i for i, x in enumerate(uids)}
    for r in g.iter_rows(named=True):
        rows = [idx[x] for x in set(spec[r["skill_id"]])]
        m = r["model"]
        d, d_raw = [], []
        for i in rows:
            others = [o for o in models if o != m and have[o][i]]
            if not have[m][i] or not others:
                continue
            d.append(float(score[m][i] >= 0.5) - np.mean([score[o][i] >= 0.5 for o in others]))
            d_raw.append(score[m][i] - np.mean([score[o][i] for o in others]))
        d = np.array(d)
        above, below = int((d > 1e-9).sum()), int((d < -1e-9).sum())
        assert (r["n"], r["n_above"], r["n_below"]) == (len(d), above, below)
        ref = binomtest(above, above + below, 0.5).pvalue if above + below else 1.0
        assert r["p"] == pytest.approx(ref, rel=1e-9)
        assert r["gain"] == pytest.approx(np.mean(d_raw))
    ins = skill_insights(results, make_slices(spec), min_slice_size=5)
    gains = ins.filter(pl.col("kind") != "pairwise")
    assert set(gains["test"].to_list()) <= {GAIN_TEST}
    assert set(ins.filter(pl.col("kind") == "pairwise")["test"].to_list()) <= {PAIRWISE_TEST}
    by_key = {(r["skill_id"], r["model"]): r["p"] for r in g.iter_rows(named=True)}
    for r in gains.iter_rows(named=True):
        assert r["p"] == pytest.approx(by_key[r["skill_id"], r["model"]])
    # q: one BH family over every row of the table (no slice is merged here)
    if ins.height and ins["merged_skill_ids"].list.len().sum() == 0:
        np.testing.assert_allclose(
            ins["q"].to_numpy(), false_discovery_control(ins["p"].to_numpy(), method="bh")
        )


def test_unparsed_answers_shown_and_flagged():
    results, uids, in_k = k_results()
    # on K, B's wrong answers are unparsed (no answer extracted)
    k = set(in_k)
    results = results.with_columns(
        pl.when((pl.col("model") == "B") & pl.col("uid").is_in(list(k)) & (pl.col("correct") == 0))
        .then(None)
        .otherwise(pl.col("parsed_answer"))
        .alias("parsed_answer")
    )
    slices = leveled_slices({"K": (0, in_k)})
    acc = slice_accuracy(results, slices, min_slice_size=30)
    shares = dict(zip(acc["model"], acc["unparsed_share"], strict=True))
    assert shares["A"] == 0.0 and shares["B"] == pytest.approx(0.5)  # 10 of 20 wrong per block
    ins = skill_insights(results, slices, min_slice_size=30)
    ab = ins.filter((pl.col("model") == "A") & (pl.col("other_model") == "B")).row(0, named=True)
    assert ab["other_unparsed_share"] == pytest.approx(0.5) and ab["unparsed_flag"]
    # C's answers are all parsed: A's lead over C is not flagged
    ac = ins.filter((pl.col("model") == "A") & (pl.col("other_model") == "C")).row(0, named=True)
    assert ac["other_unparsed_share"] == 0.0 and not ac["unparsed_flag"]
    # results that never carry a parsed answer give no parse information (null, not 100%)
    blind = slice_accuracy(results.drop("parsed_answer"), slices, min_slice_size=30)
    assert blind["unparsed_share"].null_count() == blind.height


def test_metadata_strata():
    results, uids, in_k = k_results()
    instances = pl.DataFrame(
        {
            "uid": uids["x"] + uids["y"],
            "benchmark": ["x"] * 400 + ["y"] * 400,
            "metadata": [
                json.dumps({"topic": "k" if i % 4 == 0 else "other"})
                for _ in range(2)
                for i in range(400)
            ],
        }
    )
    strata = instance_strata(results, instances, ["topic"])
    assert strata["stratum"].n_unique() == 4 and "x | k" in strata["stratum"].to_list()
    # K is exactly a category here: within (benchmark x topic) nothing separates it
    ins = skill_insights(
        results, leveled_slices({"K": (0, in_k)}), 30, strata=strata, strata_label="category"
    )
    assert ins.filter(pl.col("level_of_finding") == "skill").height == 0
    assert "category" in ins["level_of_finding"].to_list()
    assert "benchmark x category" in ins["conditional_test"][0]
    with pytest.raises(ValueError, match="'topik'"):
        instance_strata(results, instances, ["topik"])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("insights:\n  strata: ['']\n", "insights.strata"),
        ("insights:\n  strata: [subject, subject]\n", "duplicate"),
        ("insights:\n  min_n: 0\n", "insights.min_n"),
        ("insights:\n  merge_overlap: 1.5\n", "insights.merge_overlap"),
    ],
)
def test_insights_settings_are_validated(tmp_path, block, message):
    from skill_assets.core.registry import RegistryError, load_project
    from tests.conftest import write_project

    root = write_project(tmp_path / "p", extra_registry=block)
    with pytest.raises(RegistryError, match=message):
        load_project(root)


def test_insights_strata_default_to_the_metadata_column(tmp_path):
    from skill_assets.core.registry import load_project
    from tests.conftest import write_project

    reg = load_project(write_project(tmp_path / "p")).registry
    assert reg.insights.strata_columns(reg.routing) == [reg.routing.metadata_column] == ["subject"]
    reg = load_project(
        write_project(tmp_path / "q", extra_registry="insights:\n  strata: []\n")
    ).registry
    assert reg.insights.strata_columns(reg.routing) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=1, max_value=6))
def test_cmh_matches_statsmodels(seed, n_strata):
    from statsmodels.stats.contingency_tables import StratifiedTable

    from skill_assets.analysis.insights import cmh_tests

    rng = np.random.default_rng(seed)
    rows = 20
    # sparse small counts: many zero cells, empty rows/columns and uninformative strata
    cells = [rng.poisson(rng.uniform(0, 6), size=(rows, n_strata)) for _ in range(4)]
    p, odds = cmh_tests(*cells)
    for r in range(rows):
        a, b, c, d = (x[r] for x in cells)
        ok = (a + b > 0) & (c + d > 0) & (a + c > 0) & (b + d > 0)
        if not ok.any():
            assert np.isnan(p[r]) and np.isnan(odds[r])
            continue
        t = np.stack([np.stack([a[ok], b[ok]]), np.stack([c[ok], d[ok]])]).astype(float)
        ref = StratifiedTable(t)
        assert p[r] == pytest.approx(ref.test_null_odds(correction=False).pvalue, abs=1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            want = ref.oddsratio_pooled
        assert odds[r] == pytest.approx(want, rel=1e-12) or (np.isnan(want) and np.isnan(odds[r]))


def test_explanation_renders_tests_answers_and_missing_spans():
    from skill_assets.present.lineage import FINDING_KEYS, format_explanation

    finding = dict.fromkeys(FINDING_KEYS)
    finding.update(
        insight_id="abc123",
        kind="strength",
        level_of_finding="benchmark",
        model="A",
        effect=0.2,
        n=40,
        test=GAIN_TEST,
        conditional_test="Cochran-Mantel-Haenszel: won/lost instances in slice vs rest of x",
        p=0.01,
        q=0.02,
        levels=[0, 1],
        merged_names=["child (L1)"],
    )
    ex = {
        "finding": finding,
        "slice": {
            "skill_id": "s",
            "name": "skill",
            "level": 0,
            "parent_id": None,
            "n": 40,
            "member_names": ["skill"],
        },
        "instances": [
            {
                "uid": "b/1",
                "question": "q?",
                "gold_answer": "4",
                "answers": {
                    "A": {"outcome": "right", "parsed_answer": "4"},
                    "B": {"outcome": "unparsed", "parsed_answer": None},
                },
                # imported (bring-your-own) skills carry no span
                "steps": [{"step": 0, "skill_name": "skill", "span": None}],
                "provenance": "imported",
                "annotator_model": "imported:column:skills",
                "prompt_version": None,
                "call": None,
            }
        ],
        "instances_disagreeing": 12,
        "instances_left_out": 39,
    }
    text = format_explanation(ex)
    assert f"marginal test: {GAIN_TEST}" in text and "conditional test: Cochran" in text
    assert "A=right (4), B=unparsed" in text
    assert "(no span recorded)" in text and "39 not listed" in text
    assert "merged levels L0/L1" in text and "child (L1)" in text
