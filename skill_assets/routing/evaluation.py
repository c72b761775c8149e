"""Held-out evaluation of routing: the skill policy's held-out scores and decisions, and
every router of :mod:`skill_assets.routing.routers` scored on the same held-out instances
with paired bootstrap confidence intervals.

Pure functions (numpy / polars); no Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from skill_assets.routing.common import DEFAULT_RULE, _check, _cost_vector
from skill_assets.routing.engine import (
    _best_single,
    _choose,
    _prepare,
    _resolve,
    _scheme_groups,
    _scores_for,
)
from skill_assets.routing.routers import (
    HeldoutContext,
    Routed,
    Router,
    RoutingOptions,
    routers_for,
)

ROUTING_EVALUATION = {
    "router": pl.String,
    "scheme": pl.String,  # loo | kfold | lobo
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n": pl.Int64,
    "gain_vs_best_single": pl.Float64,
    "gain_ci_low": pl.Float64,
    "gain_ci_high": pl.Float64,
    "mean_cost": pl.Float64,  # mean cost per instance (null without costs)
}


def _bootstrap_counts(n: int, n_boot: int, seed: int, chunk: int = 200):
    """Yield (b x n) resampling count matrices, ``n_boot`` resamples in total."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32)
        done += b


@dataclass
class HeldoutScores:
    """Held-out policy scores of one scheme, for choosing under any cost trade-off.

    ``scores``/``overall``: instance x model; ``has``: a slice applied (paper
    rule); ``C``: the instance x model correctness; ``groups``: the held-out
    group per instance (None for leave-one-out).
    """

    models: list[str]
    uids: pl.Series
    C: np.ndarray
    scores: np.ndarray
    has: np.ndarray
    overall: np.ndarray
    groups: np.ndarray | None

    def choose(self, costs: dict[str, float] | None = None, cost_lambda: float = 0.0) -> np.ndarray:
        """Chosen model index per instance for ``score - cost_lambda * cost``."""
        return _choose(
            self.scores, self.has, self.overall, _cost_vector(self.models, costs), cost_lambda
        )


def heldout_policy_scores(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    scheme: str = "loo",
    folds: int = 5,
    seed: int = 0,
    rule: str = DEFAULT_RULE,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    metadata_slices: list[str] | None = None,
    pseudo_counts: tuple[float, float] | None = None,
) -> HeldoutScores | None:
    """The skill policy's held-out scores under ``scheme`` (None when it does not apply)."""
    _check(weighting, rule)
    data = _prepare(results, slices, levels, instances, metadata_slices)
    if data is None:
        return None
    groups = _scheme_groups(data, instances, (scheme,), folds, seed)
    if scheme not in groups:
        return None
    g = groups[scheme]
    a, a_skill = _resolve(data, rule, shrink, min_slice_size, pseudo_counts)
    scores, has, overall = _scores_for(data, g, rule, weighting, a, min_slice_size, a_skill)
    return HeldoutScores(data.models, data.uids, data.C, scores, has, overall, g)


def heldout_routes(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    scheme: str = "loo",
    folds: int = 5,
    seed: int = 0,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    rule: str = DEFAULT_RULE,
    metadata_slices: list[str] | None = None,
    costs: dict[str, float] | None = None,
    cost_lambda: float = 0.0,
    pseudo_counts: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Per-instance held-out decisions of the skill policy.

    Columns: uid, fold (held-out group; the instance's own index for ``loo``),
    model (chosen), best_single (the held-out best overall model), correct
    (score of the chosen model). Same rule and parameters as
    :func:`evaluate_routing`.
    """
    schema = {
        "uid": pl.String,
        "fold": pl.Int64,
        "model": pl.String,
        "best_single": pl.String,
        "correct": pl.Float64,
    }
    hs = heldout_policy_scores(
        results,
        slices,
        instances,
        scheme=scheme,
        folds=folds,
        seed=seed,
        rule=rule,
        weighting=weighting,
        shrink=shrink,
        levels=levels,
        min_slice_size=min_slice_size,
        metadata_slices=metadata_slices,
        pseudo_counts=pseudo_counts,
    )
    if hs is None:
        return pl.DataFrame(schema=schema)
    n = hs.uids.len()
    routed = hs.choose(costs, cost_lambda)
    best = _best_single(hs.C, hs.groups)
    names = np.asarray(hs.models, dtype=object)
    return pl.DataFrame(
        {
            "uid": hs.uids,
            "fold": np.arange(n) if hs.groups is None else hs.groups,
            "model": names[routed].tolist(),
            "best_single": names[best].tolist(),
            "correct": hs.C[np.arange(n), routed],
        },
        schema=schema,
    )


def evaluate_routing(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    metadata_column: str | None = None,
    folds: int = 5,
    seed: int = 0,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    question_vectors: np.ndarray | None = None,
    uid_order: list[str] | None = None,
    knn_k: int = 10,
    schemes: tuple[str, ...] = ("loo", "kfold", "lobo"),
    n_boot: int = 1000,
    rule: str = DEFAULT_RULE,
    metadata_slices: list[str] | None = None,
    costs: dict[str, float] | None = None,
    cost_lambda: float = 0.0,
    pseudo_counts: tuple[float, float] | None = None,
    baselines: list[str | type[Router]] | tuple = (),
) -> pl.DataFrame:
    """Held-out accuracy of the skill policy and of every baseline.

    Only instances that every model answered are evaluated. One block of rows
    per scheme (``loo`` always; ``kfold`` when ``folds >= 2``; ``lobo`` when
    the evaluated instances span more than one benchmark), with one row per
    router of ``ROUTERS`` (:mod:`skill_assets.routing.routers`) that applies, in
    registration order, then per extra router of ``baselines`` (registry key
    ``routing.baselines``: ``"package.module:ClassName"`` or a class):

    * ``skill_policy`` — the policy (``rule``, ``metadata_slices``, ``costs``
      and ``cost_lambda`` as in :func:`fit_policy`) with held-out counts;
    * ``best_single`` — the model best overall on the held-out training data;
    * ``metadata_router`` — (when ``metadata_column``) the paper rule with one
      slice per value of that column (an instances column such as
      ``benchmark``, or a key of the metadata JSON such as ``category``);
    * ``knn_router`` — (when ``question_vectors``, rows aligned with
      ``uid_order``) the model most accurate on the ``knn_k`` nearest training
      questions by cosine (never the question itself or its held-out group);
    * ``random`` — expected accuracy of a uniformly random model;
    * ``majority_vote`` — see :func:`skill_assets.routing.routers._majority_vote`;
    * ``oracle`` — correct when any model is.

    ``random``, ``majority_vote`` and ``oracle`` fit nothing; they are repeated
    in every scheme's block so each block is self-contained.
    ``ci_low``/``ci_high``: 95% percentile bootstrap over instances
    (``n_boot`` resamples, fixed ``seed``, shared by all rows so gains are
    paired); ``gain_vs_best_single`` and its CI compare with the same
    scheme's ``best_single``. ``mean_cost`` (with ``costs``): mean cost per
    instance — the chosen model's; every model's for ``majority_vote``; the
    cheapest correct model's (else the cheapest) for ``oracle``.
    Columns: ``ROUTING_EVALUATION``.
    """
    # Over 80 lines only by its keyword parameters (the registry's routing settings) and
    # this docstring; the work is the loop over schemes and routers below.
    _check(weighting, rule)
    routers = routers_for(baselines)
    data = _prepare(results, slices, levels, instances, metadata_slices)
    if data is None:
        return pl.DataFrame(schema=ROUTING_EVALUATION)
    options = RoutingOptions(
        rule=rule,
        weighting=weighting,
        shrink=shrink,
        levels=levels,
        min_slice_size=min_slice_size,
        metadata_slices=metadata_slices,
        metadata_column=metadata_column,
        knn_k=knn_k,
        costs=costs,
        cost_lambda=cost_lambda,
        pseudo_counts=pseudo_counts,
    )
    groups = _scheme_groups(data, instances, schemes, folds, seed)
    ctx = HeldoutContext(data, instances, options, groups, question_vectors, uid_order)
    columns: list[tuple[str, str, Routed]] = []
    for scheme in groups:
        for router in routers:
            routed = router.route(ctx, scheme)
            if routed is not None:
                columns.append((router.name, scheme, routed))
    return _summary(columns, ctx.n, n_boot, seed)


def _summary(columns: list[tuple[str, str, Routed]], n: int, n_boot: int, seed: int):
    """The ``ROUTING_EVALUATION`` table of (router, scheme, outcome) columns: accuracy,
    paired bootstrap intervals and the gain over the same scheme's ``best_single``."""
    if not columns:
        return pl.DataFrame(schema=ROUTING_EVALUATION)
    R = np.column_stack([c[2].correct for c in columns]).astype(np.float32)
    best_col = {s: j for j, (r_, s, _) in enumerate(columns) if r_ == "best_single"}
    ref = np.array([best_col[s] for _, s, _ in columns])
    boots = np.concatenate([W @ R / n for W in _bootstrap_counts(n, n_boot, seed)], axis=0)
    gains = boots - boots[:, ref]
    acc = R.mean(axis=0, dtype=np.float64)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    glo, ghi = np.percentile(gains, [2.5, 97.5], axis=0)
    mean_cost = [None if c[2].cost is None else float(np.mean(c[2].cost)) for c in columns]
    return pl.DataFrame(
        {
            "router": [c[0] for c in columns],
            "scheme": [c[1] for c in columns],
            "accuracy": acc,
            "ci_low": lo.astype(float),
            "ci_high": hi.astype(float),
            "n": np.full(len(columns), n, dtype=np.int64),
            "gain_vs_best_single": acc - acc[ref],
            "gain_ci_low": glo.astype(float),
            "gain_ci_high": ghi.astype(float),
            "mean_cost": pl.Series(mean_cost, dtype=pl.Float64),
        },
        schema=ROUTING_EVALUATION,
    )


def leave_one_benchmark_out(
    results: pl.DataFrame, slices: pl.DataFrame, instances: pl.DataFrame | None = None, **kw
) -> pl.DataFrame:
    """:func:`evaluate_routing` with only the leave-one-benchmark-out scheme."""
    kw["schemes"] = ("lobo",)
    return evaluate_routing(results, slices, instances, **kw)
