"""Skill-level insights: strengths, weaknesses and paired model comparisons.

Pure functions over polars frames; no Dagster here.

Statistics (DESIGN.md §6):

* Pairwise differences are measured on the *same* instances (inner join on
  ``uid``) with the exact McNemar test: a two-sided binomial test of ``b``
  successes out of the ``b + c`` discordant pairs with p = 0.5 (``b`` = model
  A right and B wrong, ``c`` = the reverse). Scores that are not 0/1 are
  binarised at >= 0.5 for the test only; accuracies and effects use the raw
  scores. With no discordant pair, p = 1.
  ``scipy.stats.binomtest`` costs ~0.4 ms per call, too slow for the ~10^5
  tests of a large corpus, so p is computed vectorised from scipy's binomial
  distribution: for p0 = 0.5 the distribution is symmetric and binomtest's
  two-sided p-value equals ``min(1, 2 * binom.cdf(min(b, c), b + c, 0.5))``;
  ``tests/test_insights.py`` checks that equality against ``binomtest``.
* Benjamini–Hochberg (``scipy.stats.false_discovery_control(method="bh")``)
  runs over every row of the pairwise frame, i.e. every tested
  (slice, model pair) finding.
* A model's *gain* on a slice (the paper's strengths/weaknesses) is its
  accuracy minus the mean accuracy of the other models on that slice. The gain
  is attached the smallest q among that model's pairwise tests on the slice
  *that point the same way* as the gain (a strength is supported by a test the
  model wins, a weakness by one it loses).
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import polars as pl
from scipy.stats import binom, false_discovery_control

from skill_assets.accuracy import _slice_accuracy_from, score_matrices, wilson_interval
from skill_assets.schemas import conform, empty

PAIRWISE = {
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "model_a": pl.String,
    "model_b": pl.String,
    "n": pl.Int64,  # instances of the slice both models answered
    "acc_a": pl.Float64,
    "acc_b": pl.Float64,
    "effect": pl.Float64,  # acc_a - acc_b
    "n_discordant": pl.Int64,
    "b": pl.Int64,  # A right, B wrong (binarised at >= 0.5)
    "c": pl.Int64,  # A wrong, B right
    "p": pl.Float64,
    "q": pl.Float64,
}

GAINS = {
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "model": pl.String,
    "n": pl.Int64,
    "accuracy": pl.Float64,
    "other_accuracy": pl.Float64,  # mean accuracy of the other models on the slice
    "gain": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n_models": pl.Int64,
    "kind": pl.String,  # strength | weakness
    "versus": pl.String,  # the model of the pairwise test that gave q
    "p": pl.Float64,
    "q": pl.Float64,
    "significant": pl.Boolean,
}

INSIGHTS = {
    "insight_id": pl.String,
    "kind": pl.String,  # strength | weakness | pairwise
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "model": pl.String,
    "other_model": pl.String,  # null for strength/weakness
    "effect": pl.Float64,
    "n": pl.Int64,
    "accuracy": pl.Float64,
    "other_accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p": pl.Float64,
    "q": pl.Float64,
    "significant": pl.Boolean,
    "rank": pl.Int64,
}


def mcnemar_exact_p(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Two-sided exact McNemar p-values (binomial test of b of b+c at 0.5), vectorised.

    Equal to ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``; 1.0 when b + c == 0.
    """
    b = np.asarray(b, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    n = b + c
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(b, c), n, 0.5))
    return np.where(n > 0, p, 1.0)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy); empty in, empty out."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p
    return false_discovery_control(p, method="bh")


def pairwise_tests(
    results: pl.DataFrame, slices: pl.DataFrame, min_slice_size: int = 30
) -> pl.DataFrame:
    """Paired exact tests for every (slice, model pair) with enough shared instances.

    One row per slice and unordered model pair (``model_a < model_b``
    alphabetically) whose shared instances in the slice number at least
    ``min_slice_size``. Columns: see ``PAIRWISE``. ``q`` is Benjamini–Hochberg
    over all rows of the returned frame.
    """
    if results.height == 0 or slices.height == 0:
        return empty(PAIRWISE)
    return _pairwise_from(*score_matrices(results, slices), min_slice_size)


def _pairwise_from(models, scores, meta, membership, min_slice_size: int) -> pl.DataFrame:
    if len(models) < 2 or meta.height == 0:
        return empty(PAIRWISE)
    present = ~np.isnan(scores)
    filled = np.nan_to_num(scores, nan=0.0)
    right = present & (filled >= 0.5)
    pairs = list(itertools.combinations(range(len(models)), 2))
    frames = []
    chunk = 16  # pairs per sparse product: bounds the dense block to 5*16 columns
    for start in range(0, len(pairs), chunk):
        block = pairs[start : start + chunk]
        cols = []
        for a, b in block:
            both = present[:, a] & present[:, b]
            cols += [
                both,
                np.where(both, filled[:, a], 0.0),
                np.where(both, filled[:, b], 0.0),
                both & right[:, a] & ~right[:, b],
                both & ~right[:, a] & right[:, b],
            ]
        sums = np.asarray(membership @ np.column_stack(cols).astype(np.float64))
        for j, (a, b) in enumerate(block):
            n, ka, kb, bb, cc = (sums[:, 5 * j + t] for t in range(5))
            keep = (n >= max(min_slice_size, 1)) & (n > 0)
            if not keep.any():
                continue
            nk = n[keep]
            frames.append(
                meta.filter(pl.Series(keep)).with_columns(
                    pl.lit(models[a]).alias("model_a"),
                    pl.lit(models[b]).alias("model_b"),
                    pl.Series("n", np.rint(nk).astype(np.int64)),
                    pl.Series("acc_a", ka[keep] / nk),
                    pl.Series("acc_b", kb[keep] / nk),
                    pl.Series("b", np.rint(bb[keep]).astype(np.int64)),
                    pl.Series("c", np.rint(cc[keep]).astype(np.int64)),
                )
            )
    if not frames:
        return empty(PAIRWISE)
    out = pl.concat(frames).with_columns(
        (pl.col("acc_a") - pl.col("acc_b")).alias("effect"),
        (pl.col("b") + pl.col("c")).alias("n_discordant"),
    )
    p = mcnemar_exact_p(out["b"].to_numpy(), out["c"].to_numpy())
    out = out.with_columns(pl.Series("p", p), pl.Series("q", bh_qvalues(p)))
    return conform(out, PAIRWISE).sort("skill_id", "model_a", "model_b")


def model_gains(
    slice_acc: pl.DataFrame,
    pairwise: pl.DataFrame,
    q_level: float = 0.05,
    min_slice_size: int = 30,
) -> pl.DataFrame:
    """The paper's gain: a model's slice accuracy minus the mean of the other models'.

    Only slices where the model has ``n >= min_slice_size`` results and at
    least one other model does too. ``kind`` is "strength" when gain > 0 else
    "weakness"; ``p``/``q``/``versus`` come from the model's pairwise test on
    the slice with the smallest q among those whose effect has the gain's sign
    (null when there is none); ``significant`` = q < q_level. Columns: ``GAINS``.
    """
    sa = slice_acc.filter(pl.col("n") >= min_slice_size, pl.col("accuracy").is_not_null())
    if sa.height == 0:
        return empty(GAINS)
    sa = sa.with_columns(
        pl.len().over("skill_id").cast(pl.Int64).alias("n_models"),
        pl.col("accuracy").sum().over("skill_id").alias("_sum"),
    ).filter(pl.col("n_models") >= 2)
    if sa.height == 0:
        return empty(GAINS)
    gains = sa.with_columns(
        ((pl.col("_sum") - pl.col("accuracy")) / (pl.col("n_models") - 1)).alias("other_accuracy")
    ).with_columns((pl.col("accuracy") - pl.col("other_accuracy")).alias("gain"))
    gains = gains.with_columns(
        pl.when(pl.col("gain") > 0)
        .then(pl.lit("strength"))
        .otherwise(pl.lit("weakness"))
        .alias("kind")
    )
    if pairwise.height:
        oriented = pl.concat(
            [
                pairwise.select(
                    "skill_id",
                    pl.col("model_a").alias("model"),
                    pl.col("model_b").alias("versus"),
                    pl.col("effect").alias("_eff"),
                    "p",
                    "q",
                ),
                pairwise.select(
                    "skill_id",
                    pl.col("model_b").alias("model"),
                    pl.col("model_a").alias("versus"),
                    (-pl.col("effect")).alias("_eff"),
                    "p",
                    "q",
                ),
            ]
        )
        best = (
            gains.select("skill_id", "model", "gain")
            .join(oriented, on=["skill_id", "model"], how="inner")
            .filter((pl.col("_eff") * pl.col("gain")) > 0)
            .sort("q", "p", "versus")
            .group_by("skill_id", "model", maintain_order=True)
            .first()
            .select("skill_id", "model", "versus", "p", "q")
        )
        gains = gains.join(best, on=["skill_id", "model"], how="left")
    gains = gains.with_columns(
        (pl.col("q") < q_level).fill_null(False).alias("significant")
        if "q" in gains.columns
        else pl.lit(False).alias("significant")
    )
    return conform(gains, GAINS).sort("skill_id", "model")


def _insight_id(kind: str, skill_id: str, model: str, other: str | None) -> str:
    key = f"{kind}|{skill_id}|{model}|{other or ''}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def skill_insights(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    min_slice_size: int = 30,
    q_level: float = 0.05,
) -> pl.DataFrame:
    """Ranked, tested findings: strengths/weaknesses (gains) and pairwise differences.

    * strength / weakness: one row per (slice, model) gain; ``effect`` = gain,
      ``other_accuracy`` = mean of the other models, ``other_model`` null,
      ``n`` = the model's instances in the slice.
    * pairwise: one row per tested (slice, model pair), oriented so that
      ``model`` is the one with the higher accuracy on the shared instances
      (``effect`` >= 0); ``n`` = shared instances.

    ``ci_low``/``ci_high`` are the Wilson 95% interval of ``accuracy``.
    ``insight_id`` = first 12 hex digits of sha1("kind|skill_id|model|other_model").
    ``rank`` runs within each model over all its findings: significant ones
    first, then by |effect| descending. Returns an empty ``INSIGHTS`` frame when
    fewer than two models or no slice is large enough.
    """
    if results.height == 0 or slices.height == 0 or results["model"].n_unique() < 2:
        return empty(INSIGHTS)
    mats = score_matrices(results, slices)  # shared by both statistics
    sa = _slice_accuracy_from(*mats, min_slice_size)
    pw = _pairwise_from(*mats, min_slice_size)
    gains = model_gains(sa, pw, q_level=q_level, min_slice_size=min_slice_size)
    parts = []
    if gains.height:
        parts.append(
            gains.select(
                "kind",
                "skill_id",
                "name",
                "level",
                "model",
                pl.lit(None, dtype=pl.String).alias("other_model"),
                pl.col("gain").alias("effect"),
                "n",
                "accuracy",
                "other_accuracy",
                "ci_low",
                "ci_high",
                "p",
                "q",
            )
        )
    if pw.height:
        a_wins = pl.col("effect") >= 0
        pw_rows = pw.select(
            pl.lit("pairwise").alias("kind"),
            "skill_id",
            "name",
            "level",
            pl.when(a_wins).then("model_a").otherwise("model_b").alias("model"),
            pl.when(a_wins).then("model_b").otherwise("model_a").alias("other_model"),
            pl.col("effect").abs().alias("effect"),
            "n",
            pl.when(a_wins).then("acc_a").otherwise("acc_b").alias("accuracy"),
            pl.when(a_wins).then("acc_b").otherwise("acc_a").alias("other_accuracy"),
            "p",
            "q",
        )
        lo, hi = wilson_interval(
            (pw_rows["accuracy"] * pw_rows["n"]).to_numpy(), pw_rows["n"].to_numpy()
        )
        parts.append(pw_rows.with_columns(pl.Series("ci_low", lo), pl.Series("ci_high", hi)))
    if not parts:
        return empty(INSIGHTS)
    body = {k: v for k, v in INSIGHTS.items() if k not in ("insight_id", "significant", "rank")}
    out = pl.concat([conform(p, body) for p in parts])
    ids = [
        _insight_id(k, s, m, o)
        for k, s, m, o in zip(
            out["kind"], out["skill_id"], out["model"], out["other_model"], strict=True
        )
    ]
    out = out.with_columns(
        pl.Series("insight_id", ids, dtype=pl.String),
        (pl.col("q") < q_level).fill_null(False).alias("significant"),
    )
    out = out.sort(
        ["model", "significant", pl.col("effect").abs(), "insight_id"],
        descending=[False, True, True, False],
    ).with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("model").alias("rank"))
    return conform(out, INSIGHTS)


def ranked_findings(insights: pl.DataFrame) -> pl.DataFrame:
    """Findings in reading order: significant first, each group by |effect| (then q).

    The same order as the per-model ``rank`` of :func:`skill_insights`, across models.
    """
    if insights.height == 0:
        return insights
    return insights.sort(
        ["significant", pl.col("effect").abs(), "q", "insight_id"],
        descending=[True, True, False, False],
        nulls_last=True,
    )


def _fmt_finding(row: dict, sign: str) -> str:
    q = row["q"]
    q_txt = "q=n/a" if q is None else f"q={q:.2g}"
    star = "" if row["significant"] else " (n.s.)"
    return (
        f"    {sign} {row['name']} [L{row['level']}]: {100 * row['effect']:+.1f} pts "
        f"(acc {100 * row['accuracy']:.1f}% vs {100 * row['other_accuracy']:.1f}%, "
        f"n={row['n']}, {q_txt}){star}"
    )


def headline(insights: pl.DataFrame, top_k: int = 3) -> str:
    """A few readable lines per model: top strengths and weaknesses with effect, n and q.

    Significant findings come first (the frame's ``rank``); when a model has
    no significant one, its largest gains are shown marked "(n.s.)".
    """
    if insights.height == 0:
        return "No skill insights (need at least two models and slices above the minimum size)."
    lines = []
    gains = insights.filter(pl.col("kind").is_in(["strength", "weakness"]))
    for model in sorted(insights["model"].unique().to_list()):
        mine = gains.filter(pl.col("model") == model).sort("rank")
        n_sig_s = mine.filter(pl.col("significant") & (pl.col("kind") == "strength")).height
        n_sig_w = mine.filter(pl.col("significant") & (pl.col("kind") == "weakness")).height
        lines.append(
            f"{model}: {n_sig_s} significant strengths, {n_sig_w} significant weaknesses "
            f"(of {mine.height} slices)"
        )
        for kind, sign, label in (("strength", "+", "strengths"), ("weakness", "-", "weaknesses")):
            top = mine.filter(pl.col("kind") == kind).head(top_k)
            if top.height == 0:
                continue
            lines.append(f"  top {label}:")
            lines += [_fmt_finding(r, sign) for r in top.iter_rows(named=True)]
    return "\n".join(lines)
