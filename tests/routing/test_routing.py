"""Routing policy and its held-out evaluation: hand-made examples, invariants, real data."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from skill_assets.routing.common import metadata_slices
from skill_assets.routing.evaluation import (
    ROUTING_EVALUATION,
    evaluate_routing,
    heldout_policy_scores,
    heldout_routes,
    leave_one_benchmark_out,
)
from skill_assets.routing.policy import fit_policy, load_policy, route_skills, save_policy

MMLU_PRO = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu_pro"


def make_results(table: dict[str, dict[str, float]], benchmark: str = "b") -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"uid": uid, "benchmark": benchmark, "model": m, "correct": float(c)}
            for m, per in table.items()
            for uid, c in per.items()
        ]
    )


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


# Hand example: 9 instances, models A and B, slices X and Y (8 and 9 are in no slice).
#
#   instance  1 2 3 4 5 6 7 8 9        X = {1,2,3,4,7}: A 4/5, B 2/5
#   A         1 1 1 0 0 0 1 1 1        Y = {3,4,5,6}:   A 1/4, B 4/4
#   B         0 0 1 1 1 1 0 0 0        overall:         A 6/9, B 4/9
#
# Leave-one-out, shrink 0, weights 1/n:
#   1, 2, 7 (X only): A = (4-1)/4 = .75, B = 2/4 = .50              -> A (right)
#   3 (X, Y): X: A 3/4, B 1/4; Y: A 0/3, B 3/3
#             A = (.75/4 + 0/3) / (1/4 + 1/3) = .32, B = (.25/4 + 1/3) / (7/12) = .68 -> B (right)
#   4 (X, Y): X: A 4/4, B 1/4; Y: A 1/3, B 3/3
#             A = (1/4 + 1/9) / (7/12) = .62, B = .68                -> B (right)
#             (uniform weights: A = (1 + 1/3)/2 = .67 > B = (.25 + 1)/2 = .63 -> A, wrong)
#   5, 6 (Y only): A = 1/3, B = 3/3                                  -> B (right)
#   8, 9 (no slice): default = best overall without them: A 5/8 > B 4/8 -> A (right)
# skill policy: 9/9.  Best single LOO: A everywhere (A >= 5/8 > B <= 4/8), right on 6/9.
# Oracle 9/9; random (6 + 4) / 18; majority vote of 2 with only `correct`: 1 when both right,
# 0.5 on a 1-1 tie -> (1 + 8 * 0.5) / 9 = 5/9.
A_RIGHT = {1, 2, 3, 7, 8, 9}
B_RIGHT = {3, 4, 5, 6}
HAND = {
    "A": {f"i{k}": float(k in A_RIGHT) for k in range(1, 10)},
    "B": {f"i{k}": float(k in B_RIGHT) for k in range(1, 10)},
}
HAND_SLICES = {"X": ["i1", "i2", "i3", "i4", "i7"], "Y": ["i3", "i4", "i5", "i6"]}


def _rows(ev: pl.DataFrame, scheme: str = "loo") -> dict[str, dict]:
    return {r["router"]: r for r in ev.filter(pl.col("scheme") == scheme).iter_rows(named=True)}


def test_loo_routing_hand_example():
    results, slices = make_results(HAND), make_slices(HAND_SLICES)
    routes = heldout_routes(results, slices, shrink=0.0, min_slice_size=1, rule="paper")
    chosen = dict(zip(routes["uid"], routes["model"], strict=True))
    assert chosen == {
        "i1": "A",
        "i2": "A",
        "i3": "B",
        "i4": "B",
        "i5": "B",
        "i6": "B",
        "i7": "A",
        "i8": "A",
        "i9": "A",
    }
    assert routes["best_single"].unique().to_list() == ["A"]
    uniform = heldout_routes(
        results, slices, shrink=0.0, min_slice_size=1, rule="paper", weighting="uniform"
    )
    assert dict(zip(uniform["uid"], uniform["model"], strict=True))["i4"] == "A"

    ev = evaluate_routing(
        results, slices, shrink=0.0, min_slice_size=1, rule="paper", schemes=("loo",)
    )
    assert ev.schema == pl.Schema(ROUTING_EVALUATION)
    got = _rows(ev)
    assert got["skill_policy"]["accuracy"] == pytest.approx(1.0)
    assert got["best_single"]["accuracy"] == pytest.approx(6 / 9)
    assert got["oracle"]["accuracy"] == pytest.approx(1.0)
    assert got["random"]["accuracy"] == pytest.approx(10 / 18)
    assert got["majority_vote"]["accuracy"] == pytest.approx(5 / 9)
    assert got["skill_policy"]["gain_vs_best_single"] == pytest.approx(3 / 9)
    assert got["skill_policy"]["n"] == 9
    ev_u = evaluate_routing(
        results,
        slices,
        shrink=0.0,
        min_slice_size=1,
        rule="paper",
        weighting="uniform",
        schemes=("loo",),
    )
    assert _rows(ev_u)["skill_policy"]["accuracy"] == pytest.approx(8 / 9)


def test_route_skills_matches_hand_example():
    # Fit without instance 4, then route it: the numbers of the comment above.
    results = make_results(HAND).filter(pl.col("uid") != "i4")
    slices = make_slices(HAND_SLICES)
    policy = fit_policy(results, slices, shrink=0.0, min_slice_size=1, rule="paper")
    out = route_skills(["X", "Y"], policy)
    assert out["model"] == "B" and not out["default_used"]
    assert out["scores"]["A"] == pytest.approx((1 / 4 + (1 / 3) / 3) / (1 / 4 + 1 / 3))
    assert out["scores"]["B"] == pytest.approx((0.25 / 4 + 1 / 3) / (1 / 4 + 1 / 3))
    # without i4, X has 4 instances and Y 3: Y weighs more and is listed first
    assert [s["skill_id"] for s in out["skills"]] == ["Y", "X"]
    policy_u = fit_policy(
        results, slices, shrink=0.0, min_slice_size=1, rule="paper", weighting="uniform"
    )
    assert route_skills(["X", "Y"], policy_u)["model"] == "A"


def test_shrinkage_toward_parent():
    # P = p1..p10 with child C = {p1, p2}. A is right on p1, p2 only; B on p3..p10.
    # Raw C: A 2/2, B 0/2 -> A. With shrink 10 toward P (A .2, B .8):
    #   A = (2 + 10 * .2) / 12 = 1/3, B = (0 + 10 * .8) / 12 = 2/3 -> B.
    uids = [f"p{k}" for k in range(1, 11)]
    results = make_results(
        {
            "A": {x: float(x in ("p1", "p2")) for x in uids},
            "B": {x: float(x not in ("p1", "p2")) for x in uids},
        }
    )
    slices = make_slices({"P": uids, "C": ["p1", "p2"]}, parents={"C": "P"})
    raw = fit_policy(results, slices, shrink=0.0, min_slice_size=1, rule="paper")
    assert route_skills(["C"], raw)["model"] == "A"
    shrunk = fit_policy(results, slices, shrink=10.0, min_slice_size=1, rule="paper")
    out = route_skills(["C"], shrunk)
    assert out["model"] == "B"
    assert out["scores"]["A"] == pytest.approx(1 / 3) and out["scores"]["B"] == pytest.approx(2 / 3)
    # levels: only level 0 may route -> C is ignored -> the default model (B, 8/10 overall)
    top = fit_policy(results, slices, shrink=10.0, min_slice_size=1, rule="paper", levels=[0])
    out = route_skills(["C"], top)
    assert out["default_used"] and out["model"] == "B" and out["ignored_skills"] == ["C"]


def random_case(n: int = 60, n_models: int = 3, seed: int = 0, n_bench: int = 1):
    """Random 0/1 results with a two-level slice hierarchy (children inside parents)."""
    rng = np.random.default_rng(seed)
    uids = [f"q{i:03d}" for i in range(n)]
    skill = (
        rng.random((n, n_models)) < rng.uniform(0.3, 0.8, size=(6, n_models))[rng.integers(0, 6, n)]
    )
    table = {f"m{j}": {x: float(skill[i, j]) for i, x in enumerate(uids)} for j in range(n_models)}
    results = pl.concat(
        [
            make_results(
                {m: {x: v for i, (x, v) in enumerate(per.items()) if i % n_bench == b}},
                benchmark=f"bench{b}",
            )
            for m, per in table.items()
            for b in range(n_bench)
        ]
    )
    spec, parents = {}, {}
    for p in range(3):
        members = [x for i, x in enumerate(uids) if i % 3 == p or rng.random() < 0.1]
        spec[f"P{p}"] = members
        for c in range(3):
            spec[f"P{p}C{c}"] = [x for x in members if rng.random() < 0.4]
            parents[f"P{p}C{c}"] = f"P{p}"
    spec["lonely"] = [uids[0]]
    return results, make_slices(spec, parents), uids


@pytest.mark.parametrize("weighting", ["inverse_size", "uniform", "sqrt_inverse"])
@pytest.mark.parametrize("shrink", [0.0, 10.0])
def test_heldout_engine_equals_refitting(weighting, shrink):
    """The vectorised held-out engine = fit_policy on the training part + route_skills."""
    results, slices, uids = random_case(seed=3)
    members = slices.select("skill_id", "uids").explode("uids")
    skills_of = {x: members.filter(pl.col("uids") == x)["skill_id"].to_list() for x in uids}
    kw = dict(weighting=weighting, shrink=shrink, min_slice_size=3, rule="paper")
    loo = heldout_routes(results, slices, **kw)
    for uid, model in zip(loo["uid"], loo["model"], strict=True):
        policy = fit_policy(results.filter(pl.col("uid") != uid), slices, **kw)
        assert route_skills(skills_of[uid], policy)["model"] == model, uid
    kf = heldout_routes(results, slices, scheme="kfold", folds=4, seed=1, **kw)
    fold_of = dict(zip(kf["uid"], kf["fold"], strict=True))
    for f in range(4):
        test = {x for x, g in fold_of.items() if g == f}
        policy = fit_policy(results.filter(~pl.col("uid").is_in(list(test))), slices, **kw)
        for uid, model in kf.filter(pl.col("fold") == f).select("uid", "model").iter_rows():
            assert route_skills(skills_of[uid], policy)["model"] == model, (f, uid)
    lv = heldout_routes(results, slices, levels=[1], **kw)
    for uid, model in zip(lv["uid"], lv["model"], strict=True):
        policy = fit_policy(results.filter(pl.col("uid") != uid), slices, levels=[1], **kw)
        assert route_skills(skills_of[uid], policy)["model"] == model, uid


def random_instances(uids: list[str], n_bench: int = 1, seed: int = 0) -> pl.DataFrame:
    """Instances with two metadata keys: ``topic`` (4 values, a few missing) and ``form``."""
    rng = np.random.default_rng(seed)
    meta = []
    for i in range(len(uids)):
        m = {"form": ["short", "long"][int(rng.random() < 0.3)]}
        if rng.random() > 0.05:
            m["topic"] = f"t{i % 4}"
        meta.append(json.dumps(m))
    return pl.DataFrame(
        {
            "uid": uids,
            "benchmark": [f"bench{i % n_bench}" for i in range(len(uids))],
            "metadata": meta,
        }
    )


def _metadata_of(instances: pl.DataFrame) -> dict[str, dict]:
    return {u: json.loads(m) for u, m in instances.select("uid", "metadata").iter_rows()}


@pytest.mark.parametrize("rule", ["paper", "residual", "hierarchical"])
@pytest.mark.parametrize("shrink", [0.0, 7.0])
@pytest.mark.parametrize("meta", [None, ["topic"], ["topic", "form"]])
def test_heldout_engine_equals_refitting_with_metadata(rule, shrink, meta):
    """Every rule, with metadata slices and a base column: engine = refit + route_skills.

    The hierarchical rule's pseudo-counts are given, as a refit would re-estimate them.
    """
    results, slices, uids = random_case(n=72, seed=11, n_bench=3)
    instances = random_instances(uids, n_bench=3, seed=2)
    members = slices.select("skill_id", "uids").explode("uids")
    skills_of = {x: members.filter(pl.col("uids") == x)["skill_id"].to_list() for x in uids}
    metadata = _metadata_of(instances)
    costs = {"m0": 3.0, "m1": 1.0, "m2": 0.0}
    kw = dict(rule=rule, shrink=shrink, min_slice_size=3, metadata_slices=meta)
    if rule == "hierarchical":
        kw["pseudo_counts"] = (shrink + 2.0, shrink + 5.0)
    for scheme in ("loo", "kfold", "lobo"):
        for lam in (0.0, 0.04):
            routes = heldout_routes(
                results, slices, instances, scheme=scheme, folds=4, seed=1,
                costs=costs, cost_lambda=lam, **kw,
            )  # fmt: skip
            assert routes.height == len(uids)
            for fold in routes["fold"].unique().to_list():
                test = routes.filter(pl.col("fold") == fold)
                train = results.filter(~pl.col("uid").is_in(test["uid"].to_list()))
                policy = fit_policy(train, slices, instances, costs=costs, cost_lambda=lam, **kw)
                for uid, model in test.select("uid", "model").iter_rows():
                    got = route_skills(skills_of[uid], policy, metadata[uid])
                    assert got["model"] == model, (scheme, lam, uid)


def test_residual_rule_hand_example():
    """Base = category accuracy; a skill slice adds its shrunk deviation from the base.

    Category c1 = {a1..a6}: A 4/6, B 3/6.  Category c2 = {b1..b4}: A 1/4, B 3/4.
    Skill S = {a1, a2, b1, b2}: A right on a1, a2, b1; B right on b1, b2.
    Fit on all (shrink 0), route an instance of c2 with skill S:
      base: A .25, B .75
      E_S: A = 2 * 4/6 + 2 * 1/4 = 1.8333, B = 2 * .5 + 2 * .75 = 2.5
      dev_S: A = (3 - 1.8333) / 4 = .29167, B = (2 - 2.5) / 4 = -.125
      score: A = .54167, B = .625 -> B; the paper rule (S only) says A (3/4 vs 2/4).
    """
    uids = [f"a{i}" for i in range(1, 7)] + [f"b{i}" for i in range(1, 5)]
    a_right = {"a1", "a2", "a5", "a6", "b1"}
    b_right = {"a3", "a4", "a5", "b1", "b2", "b3"}
    results = make_results(
        {
            "A": {u: float(u in a_right) for u in uids},
            "B": {u: float(u in b_right) for u in uids},
        }
    )
    instances = pl.DataFrame(
        {
            "uid": uids,
            "metadata": [json.dumps({"category": "c1" if u[0] == "a" else "c2"}) for u in uids],
        }
    )
    slices = make_slices({"S": ["a1", "a2", "b1", "b2"]})
    policy = fit_policy(
        results, slices, instances, rule="residual", shrink=0.0, min_slice_size=1,
        metadata_slices=["category"],
    )  # fmt: skip
    out = route_skills(["S"], policy, {"category": "c2"})
    assert out["base"] == pytest.approx({"A": 0.25, "B": 0.75})
    assert out["scores"]["A"] == pytest.approx(0.25 + (3 - (2 * 4 / 6 + 2 / 4)) / 4)
    assert out["scores"]["B"] == pytest.approx(0.75 + (2 - 2.5) / 4)
    assert out["model"] == "B"
    paper = fit_policy(results, slices, shrink=0.0, min_slice_size=1, rule="paper")
    assert route_skills(["S"], paper)["model"] == "A"
    # unknown category: the base is the overall accuracy (A 5/10, B 6/10)
    out = route_skills([], policy, {"category": "c9"})
    assert out["default_used"] and out["scores"] == pytest.approx({"A": 0.5, "B": 0.6})
    # metadata slices appear in the policy with their column and value
    assert policy.skills["meta:category=c1"].kind == "metadata"
    assert policy.skills["meta:category=c1"].value == "c1"
    ms = metadata_slices(instances, ["category"])
    assert ms["skill_id"].to_list() == ["meta:category=c1", "meta:category=c2"]


def test_cost_lambda_trades_accuracy_for_cost():
    results, slices, uids = random_case(n=90, seed=4)
    costs = {"m0": 10.0, "m1": 1.0, "m2": 0.1}
    hs = heldout_policy_scores(results, slices, min_slice_size=3)
    picks = [hs.choose(costs, lam) for lam in (0.0, 0.001, 0.01, 0.1, 10.0)]
    cost = np.array([costs[m] for m in hs.models])
    mean_cost = [cost[p].mean() for p in picks]
    assert all(a >= b for a, b in zip(mean_cost, mean_cost[1:], strict=False))
    assert (picks[-1] == hs.models.index("m2")).all()
    ev = evaluate_routing(
        results, slices, min_slice_size=3, costs=costs, cost_lambda=0.01, n_boot=50,
        schemes=("loo",),
    )  # fmt: skip
    got = _rows(ev)
    assert got["skill_policy"]["mean_cost"] == pytest.approx(mean_cost[2])
    assert got["majority_vote"]["mean_cost"] == pytest.approx(11.1)
    # the oracle pays for the cheapest correct model: never more than always-the-priciest
    assert got["oracle"]["mean_cost"] <= 10.0
    assert got["random"]["mean_cost"] == pytest.approx(11.1 / 3)
    assert evaluate_routing(results, slices, n_boot=20)["mean_cost"].is_null().all()
    policy = fit_policy(results, slices, min_slice_size=3, costs=costs, cost_lambda=10.0)
    assert route_skills([], policy)["model"] == "m2"
    assert route_skills([], policy, cost_lambda=0.0)["model"] == policy.default_model


def test_oracle_bounds_every_router_and_intervals():
    results, slices, uids = random_case(n=90, seed=5, n_bench=2)
    # a model misses one instance: it is not evaluated
    results = results.filter(~((pl.col("uid") == uids[1]) & (pl.col("model") == "m0")))
    instances = pl.DataFrame(
        {
            "uid": uids,
            "benchmark": [f"bench{i % 2}" for i in range(len(uids))],
            "metadata": [json.dumps({"topic": f"t{i % 4}"}) for i in range(len(uids))],
        }
    )
    vecs = np.random.default_rng(0).standard_normal((len(uids), 8))
    ev = evaluate_routing(
        results,
        slices,
        instances,
        metadata_column="topic",
        question_vectors=vecs,
        uid_order=uids,
        knn_k=5,
        min_slice_size=3,
        folds=3,
        n_boot=200,
    )
    assert set(ev["scheme"]) == {"loo", "kfold", "lobo"}
    assert set(ev["router"]) == {
        "skill_policy",
        "best_single",
        "metadata_router",
        "knn_router",
        "random",
        "majority_vote",
        "oracle",
    }
    assert (ev["n"] == len(uids) - 1).all()
    for scheme in ("loo", "kfold", "lobo"):
        got = _rows(ev, scheme)
        for r in got.values():
            assert r["accuracy"] <= got["oracle"]["accuracy"] + 1e-12
            assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
            assert r["gain_ci_low"] <= r["gain_vs_best_single"] + 1e-12
            assert r["gain_vs_best_single"] <= r["gain_ci_high"] + 1e-12
        assert got["best_single"]["gain_vs_best_single"] == 0.0
    lobo = leave_one_benchmark_out(results, slices, instances, min_slice_size=3, n_boot=50)
    assert set(lobo["scheme"]) == {"lobo"}
    # one benchmark only: no lobo block
    single = evaluate_routing(
        results.with_columns(pl.lit("b").alias("benchmark")), slices, n_boot=50
    )
    assert set(single["scheme"]) == {"loo", "kfold"}


def test_knn_router_hand_example():
    # two tight clusters of questions: A is right on cluster 0, B on cluster 1
    uids = [f"k{i}" for i in range(20)]
    cluster = np.array([i % 2 for i in range(20)])
    vecs = np.stack(
        [
            np.array([1.0, 0.01 * i]) if c == 0 else np.array([0.01 * i, 1.0])
            for i, c in enumerate(cluster)
        ]
    )
    results = make_results(
        {
            "A": {x: float(c == 0) for x, c in zip(uids, cluster, strict=True)},
            "B": {x: float(c == 1) for x, c in zip(uids, cluster, strict=True)},
        }
    )
    ev = evaluate_routing(
        results,
        make_slices({"all": uids}),
        question_vectors=vecs,
        uid_order=uids,
        knn_k=3,
        n_boot=50,
    )
    assert _rows(ev)["knn_router"]["accuracy"] == pytest.approx(1.0)
    assert _rows(ev, "kfold")["knn_router"]["accuracy"] == pytest.approx(1.0)
    # 10 vs 10 overall: leaving an instance out always tips best-single to the model
    # that got it wrong -- the known pessimism of LOO on exact ties
    assert _rows(ev)["best_single"]["accuracy"] == pytest.approx(0.0)


def test_majority_vote_uses_parsed_answers():
    # i1: A "x"(right), B "y", C "y" -> plurality y, wrong: 0
    # i2: A "x"(right), B "x", C "z" -> x, right: 1
    # i3: A "x"(right), B "y", C "z" -> three-way tie, 1 of 3 right: 1/3
    # i4: A unparsed (wrong), B "w"(right), C "v" -> tie of w and v: 1/2
    rows = [
        ("i1", "A", 1, "x"), ("i1", "B", 0, "y"), ("i1", "C", 0, "y"),
        ("i2", "A", 1, "x"), ("i2", "B", 1, "x"), ("i2", "C", 0, "z"),
        ("i3", "A", 1, "x"), ("i3", "B", 0, "y"), ("i3", "C", 0, "z"),
        ("i4", "A", 0, None), ("i4", "B", 1, "w"), ("i4", "C", 0, "v"),
    ]  # fmt: skip
    results = pl.DataFrame(
        rows, schema=["uid", "model", "correct", "parsed_answer"], orient="row"
    ).with_columns(pl.col("correct").cast(pl.Float64))
    ev = evaluate_routing(results, make_slices({"s": ["i1"]}), schemes=("loo",), n_boot=50)
    assert _rows(ev)["majority_vote"]["accuracy"] == pytest.approx((0 + 1 + 1 / 3 + 1 / 2) / 4)
    # without parsed answers: right iff a strict majority is right -> i2 only
    ev = evaluate_routing(
        results.drop("parsed_answer"), make_slices({"s": ["i1"]}), schemes=("loo",), n_boot=50
    )
    assert _rows(ev)["majority_vote"]["accuracy"] == pytest.approx(1 / 4)


def test_policy_round_trip_and_default(tmp_path):
    results, slices, _ = random_case(seed=7)
    policy = fit_policy(results, slices, shrink=5.0, min_slice_size=2, rule="paper")
    path = save_policy(policy, tmp_path / "sub" / "policy.json")
    loaded = load_policy(path)
    assert loaded == policy
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert set(policy.skills) == set(slices["skill_id"])
    some = list(policy.skills)[:3]
    assert route_skills(some, loaded) == route_skills(some, policy)
    overall = {m: v.accuracy for m, v in policy.overall.items()}
    assert policy.default_model == max(overall, key=overall.get)
    for ids in ([], ["no-such-skill"]):
        out = route_skills(ids, loaded)
        assert out["model"] == policy.default_model and out["default_used"]
        assert out["ignored_skills"] == ids
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a skill-slices routing policy"):
        load_policy(tmp_path / "bad.json")


def test_evaluate_routing_is_fast_at_scale():
    """12,000 instances x 3 models x ~2,000 slices (+ kNN) in well under 60 s."""
    rng = np.random.default_rng(0)
    n, n_models, n_slices = 12_000, 3, 2_000
    uids = np.array([f"x{i}" for i in range(n)])
    C = rng.random((n, n_models)) < np.array([0.7, 0.65, 0.6])
    results = pl.DataFrame(
        {
            "uid": np.repeat(uids, n_models),
            "model": np.tile(["a", "b", "c"], n),
            "correct": C.ravel().astype(float),
            "benchmark": np.repeat([f"b{i % 3}" for i in range(n)], n_models),
        }
    )
    parents = rng.integers(0, 100, n_slices)
    child = rng.integers(100, n_slices, n * 8)
    inst = np.repeat(np.arange(n), 8)
    mem = pl.DataFrame(
        {"s": np.concatenate([child, parents[child]]), "uid": uids[np.concatenate([inst, inst])]}
    ).unique()
    slices = (
        mem.group_by("s")
        .agg(pl.col("uid").alias("uids"))
        .select(
            pl.format("s{}", "s").alias("skill_id"),
            pl.format("skill {}", "s").alias("name"),
            (pl.col("s") >= 100).cast(pl.Int64).alias("level"),
            pl.when(pl.col("s") >= 100)
            .then(pl.format("s{}", pl.col("s").map_elements(lambda s: int(parents[s]), pl.Int64)))
            .alias("parent_id"),
            "uids",
        )
    )
    vecs = rng.standard_normal((n, 64)).astype(np.float32)
    t = time.perf_counter()
    ev = evaluate_routing(results, slices, question_vectors=vecs, uid_order=uids.tolist())
    elapsed = time.perf_counter() - t
    assert elapsed < 60, elapsed
    assert set(ev["scheme"]) == {"loo", "kfold", "lobo"}


def load_mmlu_pro(models: list[str]):
    inst = pl.read_ndjson(MMLU_PRO / "instances.jsonl")
    res = pl.read_csv(
        MMLU_PRO / "results.csv",
        schema_overrides={"instance_id": pl.String, "pred": pl.String, "model": pl.String},
    ).filter(pl.col("model").is_in(models))
    results = res.select(
        pl.col("instance_id").alias("uid"),
        pl.lit("MMLU-Pro").alias("benchmark"),
        "instance_id",
        "model",
        pl.col("correct").cast(pl.Float64),
        pl.col("pred").alias("parsed_answer"),
    )
    instances = inst.select(
        pl.col("instance_id").alias("uid"),
        pl.col("benchmark"),
        "instance_id",
        pl.struct("category", "source")
        .map_elements(json.dumps, return_dtype=pl.String)
        .alias("metadata"),
    )
    slices = (
        inst.group_by("category")
        .agg(pl.col("instance_id").alias("uids"))
        .select(
            pl.format("category:{}", "category").alias("skill_id"),
            pl.col("category").alias("name"),
            pl.lit(0, dtype=pl.Int64).alias("level"),
            pl.lit(None, dtype=pl.String).alias("parent_id"),
            "uids",
        )
    )
    return results, slices, instances


@pytest.mark.skipif(not MMLU_PRO.is_dir(), reason="shared MMLU-Pro data not present")
def test_mmlu_pro_reference_figures():
    """DESIGN.md §9: best single 72.31%, route-by-category (LOO) 74.71%, oracle 85.15%."""
    models = ["gpt-4o", "gemini-1.5-pro-002", "Meta-Llama-3_1-70B-Instruct"]
    results, slices, instances = load_mmlu_pro(models)
    t = time.perf_counter()
    ev = evaluate_routing(
        results,
        slices,
        instances,
        metadata_column="category",
        shrink=0.0,
        min_slice_size=1,
        rule="paper",
    )
    elapsed = time.perf_counter() - t
    got = _rows(ev)
    assert got["oracle"]["n"] == 11_976
    assert got["best_single"]["accuracy"] == pytest.approx(0.7231, abs=5e-4)
    assert got["metadata_router"]["accuracy"] == pytest.approx(0.7471, abs=5e-4)
    assert got["oracle"]["accuracy"] == pytest.approx(0.8515, abs=5e-4)
    # category slices make the skill policy the category router
    assert got["skill_policy"]["accuracy"] == got["metadata_router"]["accuracy"]
    assert got["metadata_router"]["gain_ci_low"] > 0
    assert elapsed < 60
    assert not math.isnan(_rows(ev, "kfold")["skill_policy"]["accuracy"])


def test_cost_frontier_and_plot(tmp_path):
    from skill_assets.routing.cost import (
        FRONTIER,
        cost_frontier,
        default_lambdas,
        model_costs,
        plot_cost_frontier,
    )

    results, slices, _ = random_case(n=120, seed=8)
    live = results.with_columns(
        pl.when(pl.col("model") == "m2").then(0.5).otherwise(None).alias("cost_usd")
    )
    costs = model_costs({"m0": 4.0, "m1": None, "m2": None}, live)
    assert costs == {"m0": 4.0, "m1": 0.0, "m2": 0.5}
    lams = default_lambdas(costs, points=12)
    assert lams[0] == 0.0 and len(lams) == 12 and lams == sorted(lams)
    assert default_lambdas({"a": 1.0, "b": 1.0}) == [0.0]
    fr = cost_frontier(results, slices, costs=costs, lambdas=lams, min_slice_size=3, n_boot=50)
    assert fr.schema == pl.Schema(FRONTIER)
    pol = fr.filter(pl.col("router") == "skill_policy")
    assert pol.height == 12
    assert pol["mean_cost"].to_list() == sorted(pol["mean_cost"].to_list(), reverse=True)
    assert pol["cost_lambda"].to_list() == lams
    # lambda 0 is the plain policy
    plain = heldout_routes(results, slices, min_slice_size=3)
    assert pol["accuracy"][0] == pytest.approx(plain["correct"].mean())
    singles = fr.filter(pl.col("router") == "single")
    assert sorted(singles["model"].to_list()) == ["m0", "m1", "m2"]
    oracle = fr.filter(pl.col("router") == "oracle").row(0, named=True)
    assert oracle["accuracy"] >= fr["accuracy"].max() - 1e-12
    assert fr.filter(pl.col("pareto")).height >= 1
    for r in fr.iter_rows(named=True):
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert abs(sum(json.loads(r["share"]).values()) - 1) < 1e-3
    png = plot_cost_frontier(fr, tmp_path / "plots" / "frontier.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_residual_without_metadata_is_the_paper_rule():
    """With the overall accuracy as the base, base + mean deviation = the paper's average."""
    results, slices, _ = random_case(n=90, seed=9)
    for scheme in ("loo", "kfold"):
        a = heldout_policy_scores(
            results, slices, scheme=scheme, min_slice_size=3, shrink=6.0, rule="paper"
        )
        b = heldout_policy_scores(
            results, slices, scheme=scheme, min_slice_size=3, shrink=6.0, rule="residual"
        )
        has = a.has
        assert np.allclose(a.scores[has], b.scores[has])
        assert (a.choose() == b.choose()).all()


def _planted(n: int = 2400, seed: int = 0, skill_signal: bool = True):
    """Two models, four categories, a skill slice crossing them; B wins on the skill.

    A is better on categories c0/c1, B on c2/c3; the slice ``S`` (a third of every
    category) flips the winner to B when ``skill_signal``; ``noise`` slices are random.
    """
    rng = np.random.default_rng(seed)
    uids = [f"u{i:05d}" for i in range(n)]
    cat = rng.integers(0, 4, n)
    in_s = rng.random(n) < 1 / 3
    pa = np.where(cat < 2, 0.75, 0.6)
    pb = np.where(cat < 2, 0.6, 0.75)
    if skill_signal:
        pb = np.where(in_s, 0.9, pb)
    table = {
        "A": dict(zip(uids, (rng.random(n) < pa).astype(float), strict=True)),
        "B": dict(zip(uids, (rng.random(n) < pb).astype(float), strict=True)),
    }
    spec = {"S": [u for u, s in zip(uids, in_s, strict=True) if s]}
    for k in range(6):
        spec[f"noise{k}"] = [u for u in uids if rng.random() < 0.2]
    instances = pl.DataFrame(
        {
            "uid": uids,
            "benchmark": ["b"] * n,
            "metadata": [json.dumps({"category": f"c{c}"}) for c in cat],
        }
    )
    return make_results(table), make_slices(spec), instances


def test_hierarchical_rule_uses_skills_beyond_the_metadata():
    """Planted skill effect: the hierarchical policy beats the category router."""
    results, slices, instances = _planted(skill_signal=True)
    ev = evaluate_routing(
        results, slices, instances, metadata_column="category",
        metadata_slices=["category"], n_boot=200, schemes=("loo", "kfold"),
    )  # fmt: skip
    for scheme in ("loo", "kfold"):
        got = _rows(ev, scheme)
        assert got["skill_policy"]["accuracy"] > got["metadata_router"]["accuracy"] + 0.005
        assert got["skill_policy"]["gain_ci_low"] > 0
    policy = fit_policy(results, slices, instances, metadata_slices=["category"])
    assert policy.rule == "hierarchical"
    assert 0 < policy.skill_shrink < 1e6
    assert route_skills(["S"], policy, {"category": "c0"})["model"] == "B"
    assert route_skills([], policy, {"category": "c0"})["model"] == "A"


def test_hierarchical_rule_without_skill_signal_is_the_category_router():
    """Random skill slices: the EB shrinkage leaves the category router's accuracy."""
    results, slices, instances = _planted(skill_signal=False, seed=4)
    ev = evaluate_routing(
        results, slices.filter(pl.col("skill_id") != "S"), instances,
        metadata_column="category", metadata_slices=["category"], n_boot=200,
    )  # fmt: skip
    for scheme in ("loo", "kfold"):
        got = _rows(ev, scheme)
        assert got["skill_policy"]["accuracy"] >= got["metadata_router"]["accuracy"] - 0.001
        assert got["skill_policy"]["accuracy"] >= got["best_single"]["accuracy"] - 0.001


def test_hierarchical_rule_near_chance_is_not_below_random():
    """Three near-chance models, tiny noisy slices: never worse than a random choice."""
    rng = np.random.default_rng(7)
    n = 400
    uids = [f"q{i:03d}" for i in range(n)]
    table = {
        m: dict(zip(uids, (rng.random(n) < p).astype(float), strict=True))
        for m, p in (("m0", 0.22), ("m1", 0.25), ("m2", 0.18))
    }
    spec = {f"s{k}": [u for u in uids if rng.random() < 0.08] for k in range(40)}
    ev = evaluate_routing(make_results(table), make_slices(spec), min_slice_size=5, n_boot=200)
    for scheme in ("loo", "kfold"):
        got = _rows(ev, scheme)
        assert got["skill_policy"]["accuracy"] >= got["random"]["accuracy"]
        assert got["skill_policy"]["accuracy"] >= got["best_single"]["accuracy"] - 0.001
