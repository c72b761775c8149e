"""Model evolution (v1 -> v2) and the dataset view. Pure functions over polars frames.

Model evolution (DESIGN.md §1, §6): for every registered pair ``(old, new)``
(registry key ``compare: [[old, new]]``) and every slice where both versions
answered at least ``min_slice_size`` of the same instances:

* ``change`` = accuracy(new) - accuracy(old) on the slice's shared instances;
* ``avg_change`` = the same difference over *all* shared instances of the pair,
  and ``relative_change`` = change - avg_change: a skill "improved most" when it
  gained more than the model did on average (the paper's view of evolution);
* ``p`` is the exact McNemar test of change != 0 on the slice (two-sided
  binomial test of ``improved`` of the ``improved + regressed`` discordant
  instances, as in :mod:`skill_assets.analysis.insights`);
* ``p_vs_avg`` tests change != average change: among discordant instances, is
  the share of improvements inside the slice different from outside it?
  Fisher's exact test (``scipy.stats.fisher_exact``) on
  ``[[improved_in, regressed_in], [improved_out, regressed_out]]``;
  1 when either side has no discordant instance.
* ``q`` / ``q_vs_avg``: Benjamini–Hochberg over every row of the run (all pairs
  and slices), via ``scipy.stats.false_discovery_control``.

Scores that are not 0/1 are binarised at >= 0.5 for the tests only.

Dataset view: per benchmark, the share of its instances that test each
top-level skill (and the benchmark's share of each skill's instances); per
model, where its aggregate accuracy comes from: each instance's score is
split equally between its top-level skills, so the per-skill
``contribution`` values of a model sum to its overall accuracy (instances
without a top-level skill go to "(no skill)"), and per benchmark
``contribution`` = share of the model's results x accuracy on the benchmark.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import fisher_exact

from skill_assets.analysis.accuracy import score_matrices, slice_membership, wilson_interval
from skill_assets.analysis.insights import bh_qvalues, mcnemar_exact_p
from skill_assets.core.schemas import conform, empty

EVOLUTION = {
    "old_model": pl.String,
    "new_model": pl.String,
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "n": pl.Int64,  # slice instances both versions answered
    "acc_old": pl.Float64,
    "acc_new": pl.Float64,
    "change": pl.Float64,  # acc_new - acc_old
    "change_ci_low": pl.Float64,  # Wilson interval of acc_new minus acc_old's (Newcombe)
    "change_ci_high": pl.Float64,
    "avg_change": pl.Float64,  # over all instances both versions answered
    "relative_change": pl.Float64,  # change - avg_change
    "improved": pl.Int64,  # new right, old wrong
    "regressed": pl.Int64,  # old right, new wrong
    "p": pl.Float64,  # McNemar: change != 0
    "q": pl.Float64,
    "p_vs_avg": pl.Float64,  # Fisher: change != avg_change
    "q_vs_avg": pl.Float64,
    "direction": pl.String,  # improved | regressed (sign of relative_change)
    "significant": pl.Boolean,  # q_vs_avg < q_level: changed more (or less) than average
    "significant_change": pl.Boolean,  # q < q_level: the slice's own change is not zero
    "rank": pl.Int64,  # within the pair: significant first, then |relative_change|
}

DATASET_VIEW = {
    "view": pl.String,  # benchmark_mix | accuracy_by_skill | accuracy_by_benchmark
    "benchmark": pl.String,  # null in accuracy_by_skill rows
    "model": pl.String,  # null in benchmark_mix rows
    "skill_id": pl.String,  # null in accuracy_by_benchmark rows
    "name": pl.String,  # skill name, or the benchmark name in accuracy_by_benchmark rows
    "n": pl.Int64,  # instances (benchmark_mix) or the model's results (accuracy_*)
    "share_of_benchmark": pl.Float64,  # benchmark_mix: fraction of the benchmark testing the skill
    "share_of_skill": pl.Float64,  # benchmark_mix: fraction of the skill from this benchmark
    "weight": pl.Float64,  # accuracy_*: fractional share of the model's results
    "accuracy": pl.Float64,  # accuracy_*: accuracy on that part
    "contribution": pl.Float64,  # accuracy_*: weight x accuracy; sums to overall accuracy
    "other_contribution": pl.Float64,  # mean contribution of the other models
}

NO_SKILL = "(no skill)"


def _fisher_p(table: tuple[int, int, int, int], cache: dict) -> float:
    if table not in cache:
        a, b, c, d = table
        if a + b == 0 or c + d == 0:
            cache[table] = 1.0
        else:
            cache[table] = float(fisher_exact([[a, b], [c, d]]).pvalue)
    return cache[table]


def model_evolution(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    pairs: list[tuple[str, str]] | list[list[str]],
    min_slice_size: int = 30,
    q_level: float = 0.05,
) -> pl.DataFrame:
    """Per (old, new) pair and slice: change, change against the average, paired tests.

    Columns: ``EVOLUTION``. A pair whose models are missing from ``results``
    contributes no row; an empty frame comes back when no pair is registered.
    """
    pairs = [(str(a), str(b)) for a, b in pairs]
    if not pairs or results.height == 0 or slices.height == 0:
        return empty(EVOLUTION)
    models, scores, meta, membership = score_matrices(results, slices)
    index = {m: j for j, m in enumerate(models)}
    present = ~np.isnan(scores)
    filled = np.nan_to_num(scores, nan=0.0)
    right = present & (filled >= 0.5)
    frames = []
    fisher_cache: dict = {}
    for old, new in pairs:
        if old not in index or new not in index or old == new:
            continue
        o, w = index[old], index[new]
        both = present[:, o] & present[:, w]
        if not both.any():
            continue
        imp = both & right[:, w] & ~right[:, o]
        reg = both & right[:, o] & ~right[:, w]
        cols = np.column_stack(
            [both, np.where(both, filled[:, o], 0.0), np.where(both, filled[:, w], 0.0), imp, reg]
        ).astype(np.float64)
        sums = np.asarray(membership @ cols)
        n, k_old, k_new, b, c = (sums[:, t] for t in range(5))
        keep = (n >= max(min_slice_size, 1)) & (n > 0)
        if not keep.any():
            continue
        n_all = both.sum()
        avg = float((filled[both, w] - filled[both, o]).sum() / n_all)
        b_all, c_all = int(imp.sum()), int(reg.sum())
        nk = n[keep]
        bk = np.rint(b[keep]).astype(np.int64)
        ck = np.rint(c[keep]).astype(np.int64)
        acc_o, acc_n, change, ci_lo, ci_hi = _change_interval(k_old[keep], k_new[keep], nk)
        p_avg = [
            _fisher_p((int(bi), int(ci), b_all - int(bi), c_all - int(ci)), fisher_cache)
            for bi, ci in zip(bk, ck, strict=True)
        ]
        frames.append(
            meta.filter(pl.Series(keep)).with_columns(
                pl.lit(old).alias("old_model"),
                pl.lit(new).alias("new_model"),
                pl.Series("n", np.rint(nk).astype(np.int64)),
                pl.Series("acc_old", acc_o),
                pl.Series("acc_new", acc_n),
                pl.Series("change", change),
                pl.Series("change_ci_low", ci_lo),
                pl.Series("change_ci_high", ci_hi),
                pl.lit(avg).alias("avg_change"),
                pl.Series("relative_change", change - avg),
                pl.Series("improved", bk),
                pl.Series("regressed", ck),
                pl.Series("p", mcnemar_exact_p(bk, ck)),
                pl.Series("p_vs_avg", np.asarray(p_avg, dtype=float)),
            )
        )
    if not frames:
        return empty(EVOLUTION)
    return _graded_evolution(pl.concat(frames), q_level)


def _change_interval(
    k_old: np.ndarray, k_new: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both accuracies, their difference and its 95% interval."""
    acc_o, acc_n = k_old / n, k_new / n
    lo_o, hi_o = wilson_interval(k_old, n)
    lo_n, hi_n = wilson_interval(k_new, n)
    change = acc_n - acc_o
    # Newcombe's hybrid score interval for a difference from the two Wilson
    # intervals (ignores the pairing, so it is conservative for paired data).
    ci_lo = change - np.sqrt((acc_n - lo_n) ** 2 + (hi_o - acc_o) ** 2)
    ci_hi = change + np.sqrt((hi_n - acc_n) ** 2 + (acc_o - lo_o) ** 2)
    return acc_o, acc_n, change, ci_lo, ci_hi


def _graded_evolution(out: pl.DataFrame, q_level: float) -> pl.DataFrame:
    """q-values over every pair and slice, direction, significance and the rank per pair."""
    out = out.with_columns(
        pl.Series("q", bh_qvalues(out["p"].to_numpy())),
        pl.Series("q_vs_avg", bh_qvalues(out["p_vs_avg"].to_numpy())),
        pl.when(pl.col("relative_change") >= 0)
        .then(pl.lit("improved"))
        .otherwise(pl.lit("regressed"))
        .alias("direction"),
    ).with_columns(
        (pl.col("q_vs_avg") < q_level).alias("significant"),
        (pl.col("q") < q_level).alias("significant_change"),
    )
    out = out.sort(
        ["old_model", "new_model", "significant", pl.col("relative_change").abs(), "skill_id"],
        descending=[False, False, True, True, False],
    ).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("old_model", "new_model").alias("rank")
    )
    return conform(out, EVOLUTION)


def evolution_summary(evolution: pl.DataFrame, top_k: int = 3) -> str:
    """A few readable lines per pair: the skills that improved and regressed most."""
    if evolution.height == 0:
        return "No model evolution (register pairs with `compare: [[old, new]]`)."
    lines = []
    for (old, new), grp in evolution.group_by(["old_model", "new_model"], maintain_order=True):
        avg = grp["avg_change"][0]
        lines.append(f"{old} -> {new}: average change {100 * avg:+.1f} pts")
        for direction, desc in (("improved", True), ("regressed", False)):
            top = (
                grp.filter(pl.col("direction") == direction)
                .sort("relative_change", descending=desc)
                .head(top_k)
            )
            if top.height == 0:
                continue
            lines.append(f"  most {direction} (against the average):")
            for r in top.iter_rows(named=True):
                star = "" if r["significant"] else " (n.s.)"
                lines.append(
                    f"    {r['name']} [L{r['level']}]: {100 * r['change']:+.1f} pts "
                    f"({100 * r['relative_change']:+.1f} vs avg; {100 * r['acc_old']:.1f}% -> "
                    f"{100 * r['acc_new']:.1f}%, n={r['n']}, q={r['q']:.2g}, "
                    f"q_vs_avg={r['q_vs_avg']:.2g}){star}"
                )
    return "\n".join(lines)


def _top_level(slices: pl.DataFrame) -> pl.DataFrame:
    """(skill_id, name, uid) of the most general level present in the slices."""
    if slices.height == 0:
        return pl.DataFrame(schema={"skill_id": pl.String, "name": pl.String, "uid": pl.String})
    top = slices.filter(pl.col("level") == slices["level"].min())
    names = top.select(pl.col("skill_id").cast(pl.String), pl.col("name").cast(pl.String)).unique(
        "skill_id", keep="first"
    )
    return slice_membership(top).join(names, on="skill_id")


def dataset_view(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Benchmark composition by top-level skill, and where each model's accuracy comes from.

    ``instances`` (uid, benchmark) gives the benchmark sizes; without it the
    uids of ``results`` stand in. Columns: ``DATASET_VIEW``.
    """
    mem = _top_level(slices)
    if instances is not None and instances.height:
        inst = instances.select(pl.col("uid").cast(pl.String), pl.col("benchmark").cast(pl.String))
    elif results.height:
        inst = results.select(pl.col("uid").cast(pl.String), pl.col("benchmark").cast(pl.String))
    else:
        return empty(DATASET_VIEW)
    inst = inst.unique("uid")
    parts = _benchmark_mix(mem, inst)
    if results.height:
        parts += _accuracy_sources(results, mem, inst)
    if not parts:
        return empty(DATASET_VIEW)
    return pl.concat(parts)


def _benchmark_mix(mem: pl.DataFrame, inst: pl.DataFrame) -> list[pl.DataFrame]:
    """The benchmark_mix rows (none when no instance has a top-level skill)."""
    sizes = inst.group_by("benchmark").agg(pl.len().alias("_size"))
    mix = (
        mem.join(inst, on="uid", how="inner")
        .group_by("benchmark", "skill_id", "name")
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )
    if not mix.height:
        return []
    mix = mix.join(sizes, on="benchmark").with_columns(
        (pl.col("n") / pl.col("_size")).alias("share_of_benchmark"),
        (pl.col("n") / pl.col("n").sum().over("skill_id")).alias("share_of_skill"),
        pl.lit("benchmark_mix").alias("view"),
    )
    return [
        conform(mix, DATASET_VIEW).sort(
            ["benchmark", "share_of_benchmark", "skill_id"], descending=[False, True, False]
        )
    ]


def _accuracy_sources(
    results: pl.DataFrame, mem: pl.DataFrame, inst: pl.DataFrame
) -> list[pl.DataFrame]:
    """The accuracy_by_skill and accuracy_by_benchmark rows, each with the others' mean."""
    core = (
        results.select(
            pl.col("uid").cast(pl.String),
            pl.col("model").cast(pl.String),
            pl.col("correct").cast(pl.Float64),
        )
        .drop_nulls()
        .group_by("uid", "model")
        .agg(pl.col("correct").mean())
        .join(inst, on="uid", how="left")
    )
    totals = core.group_by("model").agg(pl.len().alias("_total"))
    # --- accuracy by skill: each instance's weight split between its top-level skills
    k = mem.group_by("uid").agg(pl.len().alias("_k"))
    split = (
        core.join(mem, on="uid", how="left")
        .join(k, on="uid", how="left")
        .with_columns(
            pl.col("skill_id").fill_null(NO_SKILL),
            pl.col("name").fill_null(NO_SKILL),
            (1.0 / pl.col("_k").fill_null(1)).alias("_w"),
        )
    )
    by_skill = (
        split.group_by("model", "skill_id", "name")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("_w").sum().alias("_wsum"),
            (pl.col("_w") * pl.col("correct")).sum().alias("_csum"),
        )
        .join(totals, on="model")
        .with_columns(
            (pl.col("_wsum") / pl.col("_total")).alias("weight"),
            (pl.col("_csum") / pl.col("_wsum")).alias("accuracy"),
            (pl.col("_csum") / pl.col("_total")).alias("contribution"),
            pl.lit("accuracy_by_skill").alias("view"),
        )
    )
    by_bench = (
        core.group_by("model", "benchmark")
        .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("correct").sum().alias("_csum"))
        .join(totals, on="model")
        .with_columns(
            pl.col("benchmark").alias("name"),
            (pl.col("n") / pl.col("_total")).alias("weight"),
            (pl.col("_csum") / pl.col("n")).alias("accuracy"),
            (pl.col("_csum") / pl.col("_total")).alias("contribution"),
            pl.lit("accuracy_by_benchmark").alias("view"),
        )
    )
    return [_with_others(by_skill, "skill_id"), _with_others(by_bench, "benchmark")]


def _with_others(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """``other_contribution``: the mean contribution of the other models on the same ``key``."""
    n_models = pl.col("model").n_unique().over(key)
    frame = frame.with_columns(
        pl.when(n_models > 1)
        .then(pl.col("contribution").sum().over(key) - pl.col("contribution"))
        .otherwise(None)
        .alias("_others"),
        n_models.alias("_nm"),
    ).with_columns((pl.col("_others") / (pl.col("_nm") - 1)).alias("other_contribution"))
    return conform(frame, DATASET_VIEW).sort(
        ["model", "contribution", "name"], descending=[False, True, False]
    )
