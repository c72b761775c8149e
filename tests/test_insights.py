"""Paired tests, gains and ranked insights on a small hand-checkable table."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest, false_discovery_control

from skill_assets.accuracy import slice_accuracy
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
