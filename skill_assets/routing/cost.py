"""Cost-aware routing: model costs, the accuracy/cost frontier over a lambda sweep, a plot.

The cost-aware policy chooses ``argmax_m score_m - lambda * cost_m`` (see
:mod:`skill_assets.routing.policy`); ``lambda`` is in accuracy per cost unit (per US$
per call when costs are dollars). Sweeping ``lambda`` from 0 upward moves the
policy from its most accurate choice toward the cheapest model; every point is
evaluated on held-out instances with the same engine as
:func:`skill_assets.routing.evaluation.evaluate_routing`, so the held-out scores are
computed once and only the argmax is repeated per ``lambda``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from skill_assets.routing.common import _cost_vector
from skill_assets.routing.evaluation import _bootstrap_counts, heldout_policy_scores

FRONTIER = {
    "router": pl.String,  # skill_policy | single | oracle
    "scheme": pl.String,
    "cost_lambda": pl.Float64,  # null for single models and the oracle
    "model": pl.String,  # the single model (null otherwise)
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "mean_cost": pl.Float64,  # per instance
    "share": pl.String,  # JSON {model: fraction of instances routed to it}
    "pareto": pl.Boolean,  # no other achievable row (oracle excluded; always False) is at
    # least as accurate and as cheap, one of them strictly
    "n": pl.Int64,
}


def model_costs(
    declared: dict[str, float | None], results: pl.DataFrame | None = None
) -> dict[str, float]:
    """Cost per call of each model: the registry's ``cost_per_call`` when declared,
    else the mean ``cost_usd`` of the model's results (calls made live), else 0."""
    observed: dict[str, float] = {}
    if results is not None and results.height and "cost_usd" in results.columns:
        for m, c in (
            results.drop_nulls("cost_usd")
            .group_by("model")
            .agg(pl.col("cost_usd").mean())
            .iter_rows()
        ):
            observed[str(m)] = float(c)
    models = set(declared) | set(observed)
    out = {}
    for m in sorted(models):
        given = declared.get(m)
        out[m] = float(given) if given is not None else float(observed.get(m, 0.0))
    return out


def default_lambdas(costs: dict[str, float], points: int = 25) -> list[float]:
    """0, then a geometric sweep wide enough to reach the cheapest model.

    ``lambda * (max cost - min cost)`` runs from 0.001 (an accuracy point per
    thousand spreads) to 3 (always the cheapest unless it is hopeless).
    """
    vals = [float(v) for v in costs.values()]
    spread = (max(vals) - min(vals)) if vals else 0.0
    if spread <= 0 or points < 2:
        return [0.0]
    return [0.0] + [float(x) for x in np.geomspace(1e-3, 3.0, points - 1) / spread]


def _pareto(acc: np.ndarray, cost: np.ndarray) -> np.ndarray:
    out = np.ones(acc.size, dtype=bool)
    for i in range(acc.size):
        better = (acc >= acc[i] - 1e-12) & (cost <= cost[i] + 1e-12)
        strictly = (acc > acc[i] + 1e-12) | (cost < cost[i] - 1e-12)
        out[i] = not np.any(better & strictly)
    return out


def cost_frontier(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    costs: dict[str, float],
    lambdas: list[float] | None = None,
    scheme: str = "loo",
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 200,
    **policy,
) -> pl.DataFrame:
    """Held-out accuracy and mean cost of the cost-aware policy for each ``lambda``.

    ``policy``: the keyword arguments of
    :func:`skill_assets.routing.evaluation.heldout_policy_scores` (rule, weighting,
    shrink, levels, min_slice_size, metadata_slices). Also one row per single
    model and one for the oracle (the cheapest correct model; the cheapest
    when none is correct), so the frontier can be read against them. 95%
    percentile bootstrap intervals over instances. Columns: ``FRONTIER``.
    """
    hs = heldout_policy_scores(
        results, slices, instances, scheme=scheme, folds=folds, seed=seed, **policy
    )
    if hs is None:
        return pl.DataFrame(schema=FRONTIER)
    lambdas = default_lambdas(costs) if lambdas is None else [float(x) for x in lambdas]
    cost = _cost_vector(hs.models, costs)
    if cost is None:
        cost = np.zeros(len(hs.models))
    n = hs.uids.len()
    arange = np.arange(n)
    # (router, lambda, single model, mean cost, share of instances per model)
    rows: list[tuple[str, float | None, str | None, float, np.ndarray]] = []
    cols = []
    for lam in lambdas:
        pick = hs.choose(costs, lam)
        share = np.bincount(pick, minlength=len(hs.models)) / n
        rows.append(("skill_policy", lam, None, float(cost[pick].mean()), share))
        cols.append(hs.C[arange, pick])
    for j, m in enumerate(hs.models):
        share = np.eye(len(hs.models))[j]
        rows.append(("single", None, m, float(cost[j]), share))
        cols.append(hs.C[:, j])
    right = hs.C >= 0.5
    cheapest = np.where(right, cost[None, :], np.inf)
    pick = np.where(right.any(axis=1), np.argmin(cheapest, axis=1), int(np.argmin(cost)))
    share = np.bincount(pick, minlength=len(hs.models)) / n
    rows.append(("oracle", None, None, float(cost[pick].mean()), share))
    cols.append(hs.C.max(axis=1))
    acc, lo, hi = _accuracy_ci(cols, n_boot, seed)
    mean_cost = np.array([r[3] for r in rows])
    real = np.array([r[0] != "oracle" for r in rows])
    pareto = np.zeros(len(rows), dtype=bool)
    pareto[real] = _pareto(acc[real], mean_cost[real])
    return pl.DataFrame(
        {
            "router": [r[0] for r in rows],
            "scheme": [scheme] * len(rows),
            "cost_lambda": [r[1] for r in rows],
            "model": [r[2] for r in rows],
            "accuracy": acc,
            "ci_low": lo.astype(float),
            "ci_high": hi.astype(float),
            "mean_cost": mean_cost,
            "share": [
                json.dumps({m: round(float(s), 4) for m, s in zip(hs.models, r[4], strict=True)})
                for r in rows
            ],
            "pareto": pareto,
            "n": [n] * len(rows),
        },
        schema=FRONTIER,
    )


def _accuracy_ci(cols: list[np.ndarray], n_boot: int, seed: int):
    """(accuracy, ci_low, ci_high) per column of per-instance scores: 95% percentile
    bootstrap over instances, the same resamples for every column."""
    R = np.column_stack(cols).astype(np.float32)
    n = R.shape[0]
    acc = R.mean(axis=0, dtype=np.float64)
    boots = np.concatenate([W @ R / n for W in _bootstrap_counts(n, n_boot, seed)], axis=0)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return acc, lo, hi


def plot_cost_frontier(frontier: pl.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """PNG of the frontier: the policy's lambda sweep as a line, single models and the
    oracle as points, 95% intervals as bars. Uses matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    pol = frontier.filter(pl.col("router") == "skill_policy").sort("mean_cost")
    if pol.height:
        x, y = pol["mean_cost"].to_numpy(), pol["accuracy"].to_numpy() * 100
        err = np.vstack([y - pol["ci_low"].to_numpy() * 100, pol["ci_high"].to_numpy() * 100 - y])
        ax.errorbar(
            x, y, yerr=err, fmt="-o", ms=3, lw=1.2, capsize=2, label="skill policy (λ sweep)"
        )
    for r in frontier.filter(pl.col("router") != "skill_policy").iter_rows(named=True):
        label = r["model"] if r["router"] == "single" else "oracle (cheapest correct)"
        marker = "s" if r["router"] == "single" else "*"
        ax.errorbar(
            r["mean_cost"],
            r["accuracy"] * 100,
            yerr=[[100 * (r["accuracy"] - r["ci_low"])], [100 * (r["ci_high"] - r["accuracy"])]],
            fmt=marker,
            ms=7,
            capsize=2,
            label=label,
        )
    ax.set_xlabel("mean cost per instance")
    ax.set_ylabel("held-out accuracy (%)")
    scheme = frontier["scheme"][0] if frontier.height else ""
    ax.set_title(title or f"accuracy / cost frontier ({scheme})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    from skill_assets.core.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
