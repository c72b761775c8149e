"""Skill-level insights: strengths, weaknesses and paired model comparisons.

Pure functions over polars frames; no Dagster here.

Every finding carries two tests (DESIGN.md §6), both named in its row
(``test``, ``conditional_test``):

* **Marginal** — does the difference hold on the slice?
  Pairwise rows: the exact McNemar test on the instances both models answered
  (a two-sided binomial test of ``b`` of the ``b + c`` discordant pairs at
  0.5; ``b`` = A right and B wrong). Strength/weakness rows claim "the model
  vs the mean of the other models", so they are tested on exactly that
  contrast: per instance, ``d`` = the model's score minus the mean score of
  the other models that answered it; the exact sign test asks whether
  ``d > 0`` is as likely as ``d < 0`` (a binomial test at 0.5 on the instances
  with ``d != 0``). Scores that are not 0/1 are binarised at >= 0.5 for the
  tests only; accuracies and effects use the raw scores.
  ``scipy.stats.binomtest`` costs ~0.4 ms per call, too slow for the ~10^5
  tests of a large corpus, so p is computed vectorised from scipy's binomial
  distribution: for p0 = 0.5 the distribution is symmetric and binomtest's
  two-sided p-value equals ``min(1, 2 * binom.cdf(min(b, c), b + c, 0.5))``;
  ``tests/analysis/test_insights.py`` checks that equality against ``binomtest``.
* **Conditional** — does it hold *beyond the slice's strata*? Strata are the
  benchmarks, crossed with each value of the metadata columns named by
  ``insights.strata`` (default: ``routing.metadata_column``). In every stratum
  the slice's discordant instances (won / lost) are set against those of the
  stratum's instances outside the slice, and the 2x2 tables are combined by
  the Cochran–Mantel–Haenszel test (statsmodels' ``StratifiedTable`` statistic,
  vectorised over all findings: :func:`cmh_tests`). A
  model that is better only because it is better on the whole benchmark (or
  category) passes the marginal test and fails this one.

Benjamini–Hochberg (``scipy.stats.false_discovery_control``) runs over every
row of the table, separately for the marginal and the conditional p-values.
A finding is ``skill``-level when both q-values are below the level and the
pooled Mantel–Haenszel odds ratio points the claim's way; ``benchmark`` (or
``category`` when metadata strata are used) when only the marginal test
passes; else ``not significant``.

Slices with nearly the same members (Jaccard >= ``merge_overlap``, e.g. a
level-0 skill and its only child) that carry the same comparison become one
finding listing every level (``levels``, ``merged_names``).
"""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.stats import binom, chi2, false_discovery_control
from scipy.stats import t as student_t

from skill_assets.analysis.accuracy import (
    ScoreArrays,
    score_arrays,
    unparsed_shares,
    wilson_interval,
)
from skill_assets.core.schemas import conform, empty

PAIRWISE_TEST = "exact McNemar (binomial test on discordant pairs)"
GAIN_TEST = "exact sign test of per-instance score minus mean of the other models"
CONDITIONAL_TEST = "Cochran-Mantel-Haenszel: won/lost instances in slice vs rest of {strata}"
LEVELS = ("skill", "benchmark", "category", "not significant")

_CONDITIONAL = {
    "rest_effect": pl.Float64,  # the same comparison on the rest of the slice's strata
    "rest_n": pl.Int64,
    "conditional_odds_ratio": pl.Float64,  # Mantel-Haenszel pooled, slice vs rest (>1: A/model)
    "p_conditional": pl.Float64,
    "q_conditional": pl.Float64,
}

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
    "effect_ci_low": pl.Float64,  # t interval of the mean paired difference
    "effect_ci_high": pl.Float64,
    "n_discordant": pl.Int64,
    "b": pl.Int64,  # A right, B wrong (binarised at >= 0.5)
    "c": pl.Int64,  # A wrong, B right
    "p": pl.Float64,
    "q": pl.Float64,
    **_CONDITIONAL,
}

GAINS = {
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "model": pl.String,
    "n": pl.Int64,  # slice instances the model and at least one other model answered
    "accuracy": pl.Float64,
    "other_accuracy": pl.Float64,  # mean over instances of the other models' mean score
    "gain": pl.Float64,  # accuracy - other_accuracy = mean per-instance difference
    "gain_ci_low": pl.Float64,
    "gain_ci_high": pl.Float64,
    "ci_low": pl.Float64,  # Wilson 95% of accuracy
    "ci_high": pl.Float64,
    "n_models": pl.Int64,  # models with a result on the slice
    "kind": pl.String,  # strength | weakness
    "n_above": pl.Int64,  # instances where the model beats the others' mean (binarised)
    "n_below": pl.Int64,
    "p": pl.Float64,
    "q": pl.Float64,
    **_CONDITIONAL,
    "significant": pl.Boolean,
}

INSIGHTS = {
    "insight_id": pl.String,
    "level_of_finding": pl.String,  # skill | benchmark | category | not significant
    "kind": pl.String,  # strength | weakness | pairwise
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "levels": pl.List(pl.Int64),  # every level of the merged near-duplicate slices
    "merged_skill_ids": pl.List(pl.String),  # the other slices folded into this finding
    "merged_names": pl.List(pl.String),
    "model": pl.String,
    "other_model": pl.String,  # null for strength/weakness
    "effect": pl.Float64,
    "effect_ci_low": pl.Float64,
    "effect_ci_high": pl.Float64,
    "n": pl.Int64,
    "accuracy": pl.Float64,
    "other_accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "unparsed_share": pl.Float64,  # model's results without a parsed answer on the slice
    "other_unparsed_share": pl.Float64,  # the other model's (or the others' mean)
    "unparsed_flag": pl.Boolean,  # at least half the gap is unparsed answers
    "test": pl.String,
    "p": pl.Float64,
    "q": pl.Float64,
    "significant": pl.Boolean,  # marginal q < q_level
    "conditional_test": pl.String,
    **_CONDITIONAL,
    "rank": pl.Int64,
}


def mcnemar_exact_p(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Two-sided exact McNemar p-values (binomial test of b of b+c at 0.5), vectorised.

    Equal to ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``; 1.0 when b + c == 0.
    The exact sign test is the same computation on (above, below) counts.
    """
    b = np.asarray(b, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    n = b + c
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(b, c), n, 0.5))
    return np.where(n > 0, p, 1.0)


sign_test_p = mcnemar_exact_p


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy); NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def cmh_tests(
    in_won: np.ndarray, in_lost: np.ndarray, out_won: np.ndarray, out_lost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cochran–Mantel–Haenszel p-values and pooled odds ratios, one per row, vectorised.

    Each argument is rows x strata counts. Row r's stratum h is the 2x2 table
    [[in_won, in_lost], [out_won, out_lost]]; the informative strata (both rows
    and both columns non-empty) are combined. Same statistic as statsmodels'
    ``StratifiedTable(tables).test_null_odds(correction=False)`` (chi-square,
    1 df) and its ``oddsratio_pooled`` (Mantel–Haenszel); a StratifiedTable
    per row costs ~0.3 ms, i.e. minutes for the ~10^5 findings of a large
    corpus, so the closed form runs over all rows at once and
    ``tests/analysis/test_insights.py`` checks it against statsmodels. A row without an
    informative stratum gets NaN: the slice covers its strata (or one outcome
    only), so nothing separates it from them.
    """
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (in_won, in_lost, out_won, out_lost))
    r1, r2, c1, c2 = a + b, c + d, a + c, b + d
    n = r1 + r2
    ok = (r1 > 0) & (r2 > 0) & (c1 > 0) & (c2 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.where(ok, n, 2.0)
        dev = np.where(ok, a - r1 * c1 / nn, 0.0).sum(axis=1)
        var = np.where(ok, r1 * r2 * c1 * c2 / (nn**2 * (nn - 1)), 0.0).sum(axis=1)
        stat = dev**2 / var
        num = np.where(ok, a * d / nn, 0.0).sum(axis=1)
        den = np.where(ok, b * c / nn, 0.0).sum(axis=1)
        odds = num / den
    any_ok = ok.any(axis=1)
    p = np.where(any_ok, chi2.sf(np.where(any_ok, stat, 0.0), 1), np.nan)
    return p, np.where(any_ok, odds, np.nan)


def instance_strata(
    results: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    columns: list[str] | tuple[str, ...] = (),
) -> pl.DataFrame:
    """(uid, stratum): each instance's benchmark, crossed with its value of each metadata column.

    The benchmark comes from ``instances`` when given, else from the results'
    ``benchmark`` column, else from the uid's prefix before "/". A named
    column that no instance carries is an error (a misspelt setting would
    otherwise silently test against the benchmark alone).
    """
    if instances is not None and instances.height:
        base = instances.select(pl.col("uid").cast(pl.String), pl.col("benchmark").cast(pl.String))
    elif "benchmark" in results.columns:
        base = results.select(pl.col("uid").cast(pl.String), pl.col("benchmark").cast(pl.String))
    else:
        base = results.select(pl.col("uid").cast(pl.String)).with_columns(
            pl.when(pl.col("uid").str.contains("/"))
            .then(pl.col("uid").str.split("/").list.first())
            .otherwise(pl.lit(""))
            .alias("benchmark")
        )
    base = base.unique("uid", keep="first", maintain_order=True)
    parts = [pl.col("benchmark").fill_null("")]
    if columns:
        if instances is None or instances.height == 0:
            raise ValueError(f"insights.strata {list(columns)}: no benchmark instances to read")
        meta = instances.select(pl.col("uid").cast(pl.String), "metadata").unique("uid")
        decoded = [json.loads(m or "{}") for m in meta["metadata"].to_list()]
        for col in columns:
            vals = [d.get(col) for d in decoded]
            if all(v is None for v in vals):
                raise ValueError(
                    f"insights.strata: metadata column {col!r} is in no benchmark instance"
                )
            meta = meta.with_columns(
                pl.Series(f"_s_{col}", ["∅" if v is None else str(v) for v in vals])
            )
        base = base.join(meta.drop("metadata"), on="uid", how="left")
        parts += [pl.col(f"_s_{c}").fill_null("∅") for c in columns]
    return base.select("uid", pl.concat_str(parts, separator=" | ").alias("stratum"))


def _strata_matrix(uids: pl.Series, strata: pl.DataFrame | None) -> sp.csr_matrix:
    """uid x stratum one-hot (CSR); uids without a stratum share one."""
    if strata is None or strata.height == 0:
        codes = np.zeros(uids.len(), dtype=np.int64)
    else:
        joined = pl.DataFrame({"uid": uids}).join(
            strata.select(pl.col("uid").cast(pl.String), "stratum"), on="uid", how="left"
        )
        codes = joined["stratum"].fill_null("").cast(pl.Categorical).to_physical().to_numpy()
        codes = np.unique(codes, return_inverse=True)[1]
    h = int(codes.max()) + 1 if codes.size else 1
    return sp.csr_matrix(
        (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, h)
    )


def _conditional(membership, strata, won, lost, diff, ok, rows) -> dict[str, np.ndarray]:
    """Slice vs the rest of its strata, for the slices in ``rows``.

    ``won``/``lost``: per uid, 0/1 outcome of the comparison (discordant in
    one direction or the other); ``diff``/``ok``: per-instance effect and
    whether the instance is tested, for the effect on the rest of the strata.
    All four per-stratum sums come from one sparse x dense product (the
    uid x stratum block is dense: strata are few).
    """
    codes = strata.indices  # one stratum per uid (CSR with one entry per row)
    n_uid, h = strata.shape
    vecs = [won.astype(np.float64), lost.astype(np.float64), diff, ok.astype(np.float64)]
    total = [np.bincount(codes, weights=v, minlength=h) for v in vecs]
    if n_uid * 4 * h <= 2**25:  # <= 256 MiB of float64
        block = np.zeros((n_uid, 4 * h))
        for j, v in enumerate(vecs):
            block[np.arange(n_uid), j * h + codes] = v
        inside = np.asarray(membership[rows] @ block)
        iw, il, idf, iok = (inside[:, j * h : (j + 1) * h] for j in range(4))
    else:  # many strata: sparse blocks
        sub = membership[rows]
        iw, il, idf, iok = (
            np.asarray((sub @ strata.multiply(v[:, None]).tocsr()).todense()) for v in vecs
        )
    tw, tl, tdf, tok = total
    touched = iok > 0  # only the strata the slice lives in
    rest_n = ((tok - iok) * touched).sum(axis=1)
    rest_sum = ((tdf - idf) * touched).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rest_effect = np.where(rest_n > 0, rest_sum / np.where(rest_n > 0, rest_n, 1), np.nan)
    ow, ol = (tw - iw) * touched, (tl - il) * touched
    p, odds = cmh_tests(iw * touched, il * touched, ow, ol)
    return {
        "rest_effect": rest_effect,
        "rest_n": np.rint(rest_n).astype(np.int64),
        "conditional_odds_ratio": odds,
        "p_conditional": p,
    }


def _mean_ci(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student-t 95% interval of a mean from n, sum and sum of squares (NaN for n < 2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.maximum(s2 - n * mean**2, 0.0) / (n - 1)
        half = student_t.ppf(0.975, n - 1) * np.sqrt(var / n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def _frame(cols: dict) -> pl.DataFrame:
    return pl.DataFrame(
        {
            k: pl.Series(k, v).fill_nan(None) if np.asarray(v).dtype.kind == "f" else v
            for k, v in cols.items()
        }
    )


def _slice_frame(meta: pl.DataFrame, rows: np.ndarray, cols: dict) -> pl.DataFrame:
    """The kept slices' meta columns beside their computed ones."""
    return pl.concat([meta[rows], _frame(cols)], how="horizontal")


def _test_columns(out: pl.DataFrame, p: np.ndarray) -> list[pl.Series]:
    """p with its BH q, and the BH q of the frame's conditional p-values."""
    return [
        pl.Series("p", p),
        pl.Series("q", bh_qvalues(p)),
        pl.Series(
            "q_conditional", bh_qvalues(out["p_conditional"].fill_null(np.nan).to_numpy())
        ).fill_nan(None),
    ]


def _pairwise_from(arr: ScoreArrays, strata, min_n: int) -> pl.DataFrame:
    models, scores, meta, membership = arr.matrices()
    if len(models) < 2 or meta.height == 0:
        return empty(PAIRWISE)
    present = ~np.isnan(scores)
    filled = np.nan_to_num(scores, nan=0.0)
    right = present & (filled >= 0.5)
    frames = []
    for a, b in itertools.combinations(range(len(models)), 2):
        both = present[:, a] & present[:, b]
        d = np.where(both, filled[:, a] - filled[:, b], 0.0)
        won = both & right[:, a] & ~right[:, b]
        lost = both & ~right[:, a] & right[:, b]
        cols = [both, np.where(both, filled[:, a], 0.0), np.where(both, filled[:, b], 0.0)]
        cols += [won, lost, d * d]
        sums = np.asarray(membership @ np.column_stack(cols).astype(np.float64))
        n, ka, kb, bb, cc, d2 = sums.T
        keep = (n >= max(min_n, 1)) & (n > 0)
        if not keep.any():
            continue
        rows = np.nonzero(keep)[0]
        nk = n[keep]
        lo, hi = _mean_ci(nk, ka[keep] - kb[keep], d2[keep])
        cond = _conditional(membership, strata, won, lost, d, both, rows)
        frames.append(
            _slice_frame(
                meta,
                rows,
                {
                    "model_a": [models[a]] * rows.size,
                    "model_b": [models[b]] * rows.size,
                    "n": np.rint(nk).astype(np.int64),
                    "acc_a": ka[keep] / nk,
                    "acc_b": kb[keep] / nk,
                    "effect_ci_low": lo,
                    "effect_ci_high": hi,
                    "b": np.rint(bb[keep]).astype(np.int64),
                    "c": np.rint(cc[keep]).astype(np.int64),
                    **cond,
                },
            )
        )
    if not frames:
        return empty(PAIRWISE)
    out = pl.concat(frames).with_columns(
        (pl.col("acc_a") - pl.col("acc_b")).alias("effect"),
        (pl.col("b") + pl.col("c")).alias("n_discordant"),
    )
    p = mcnemar_exact_p(out["b"].to_numpy(), out["c"].to_numpy())
    out = out.with_columns(_test_columns(out, p))
    return conform(out, PAIRWISE).sort("skill_id", "model_a", "model_b")


def _gains_from(arr: ScoreArrays, strata, min_n: int, q_level: float) -> pl.DataFrame:
    models, scores, meta, membership = arr.matrices()
    if len(models) < 2 or meta.height == 0:
        return empty(GAINS)
    present = ~np.isnan(scores)
    filled = np.where(present, scores, 0.0)
    right = (present & (filled >= 0.5)).astype(np.float64)
    n_present = present.sum(axis=1)
    sum_raw, sum_bin = filled.sum(axis=1), right.sum(axis=1)
    n_models = np.asarray(membership @ present.astype(np.float64)) > 0
    frames = []
    for m, model in enumerate(models):
        n_others = n_present - present[:, m]
        ok = present[:, m] & (n_others > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            others_raw = np.where(ok, (sum_raw - filled[:, m]) / np.maximum(n_others, 1), 0.0)
            others_bin = np.where(ok, (sum_bin - right[:, m]) / np.maximum(n_others, 1), 0.0)
        own = np.where(ok, filled[:, m], 0.0)
        d = own - others_raw
        d_bin = np.where(ok, right[:, m] - others_bin, 0.0)
        above, below = ok & (d_bin > 1e-9), ok & (d_bin < -1e-9)
        cols = [ok, own, others_raw, d * d, above, below]
        sums = np.asarray(membership @ np.column_stack(cols).astype(np.float64))
        n, k_own, k_oth, d2, n_above, n_below = sums.T
        keep = n >= max(min_n, 1)
        if not keep.any():
            continue
        rows = np.nonzero(keep)[0]
        nk = n[keep]
        lo, hi = _mean_ci(nk, k_own[keep] - k_oth[keep], d2[keep])
        wlo, whi = wilson_interval(k_own[keep], nk)
        cond = _conditional(membership, strata, above, below, d, ok, rows)
        frames.append(
            _slice_frame(
                meta,
                rows,
                {
                    "model": [model] * rows.size,
                    "n": np.rint(nk).astype(np.int64),
                    "accuracy": k_own[keep] / nk,
                    "other_accuracy": k_oth[keep] / nk,
                    "gain_ci_low": lo,
                    "gain_ci_high": hi,
                    "ci_low": wlo,
                    "ci_high": whi,
                    "n_models": n_models[rows].sum(axis=1).astype(np.int64),
                    "n_above": np.rint(n_above[keep]).astype(np.int64),
                    "n_below": np.rint(n_below[keep]).astype(np.int64),
                    **cond,
                },
            )
        )
    if not frames:
        return empty(GAINS)
    out = pl.concat(frames).with_columns(
        (pl.col("accuracy") - pl.col("other_accuracy")).alias("gain")
    )
    p = sign_test_p(out["n_above"].to_numpy(), out["n_below"].to_numpy())
    out = out.with_columns(
        pl.when(pl.col("gain") > 0)
        .then(pl.lit("strength"))
        .otherwise(pl.lit("weakness"))
        .alias("kind"),
        *_test_columns(out, p),
    ).with_columns((pl.col("q") < q_level).fill_null(False).alias("significant"))
    return conform(out, GAINS).sort("skill_id", "model")


def pairwise_tests(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    min_slice_size: int = 30,
    strata: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Paired tests for every (slice, model pair) with enough shared instances.

    One row per slice and unordered model pair (``model_a < model_b``
    alphabetically) whose shared instances in the slice number at least
    ``min_slice_size``: the exact McNemar test (``p``, ``q``) and the CMH test
    of the slice against the rest of its strata (``p_conditional``,
    ``q_conditional``; ``strata`` from :func:`instance_strata`, default the
    benchmark of each result). q is Benjamini–Hochberg over the frame's rows.
    Columns: ``PAIRWISE``.
    """
    if results.height == 0 or slices.height == 0:
        return empty(PAIRWISE)
    arr = score_arrays(results, slices)
    strata = instance_strata(results) if strata is None else strata
    return _pairwise_from(arr, _strata_matrix(arr.uids, strata), min_slice_size)


def model_gains(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    min_slice_size: int = 30,
    q_level: float = 0.05,
    strata: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The paper's gain — a model vs the mean of the other models — with its own test.

    Per instance of the slice that the model and at least one other model
    answered, ``d`` = the model's score minus the mean score of the others
    there; ``gain`` = mean ``d`` (= ``accuracy - other_accuracy``), with a
    Student-t 95% interval. ``p`` is the exact sign test of ``d`` (binarised
    scores): ``n_above`` vs ``n_below``. The conditional test sets the slice's
    above/below counts against the rest of each stratum (CMH). Only slices
    with ``n >= min_slice_size``; ``significant`` = q < q_level. Columns: ``GAINS``.
    """
    if results.height == 0 or slices.height == 0:
        return empty(GAINS)
    arr = score_arrays(results, slices)
    strata = instance_strata(results) if strata is None else strata
    return _gains_from(arr, _strata_matrix(arr.uids, strata), min_slice_size, q_level)


def _insight_id(kind: str, skill_id: str, model: str, other: str | None) -> str:
    key = f"{kind}|{skill_id}|{model}|{other or ''}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def merge_near_duplicates(
    findings: pl.DataFrame, membership: sp.csr_matrix, skill_ids: list[str], overlap: float = 0.9
) -> pl.DataFrame:
    """Fold findings on nearly the same instances into the best-ranked one.

    ``findings`` must be in reading order. A finding whose slice has Jaccard
    overlap >= ``overlap`` with the slice of an earlier kept finding of the
    same comparison (kind, model, other model) is dropped and listed in that
    finding's ``levels``/``merged_skill_ids``/``merged_names``.
    """
    index = {s: i for i, s in enumerate(skill_ids)}
    used = sorted({index[s] for s in findings["skill_id"].to_list()})
    local = {g: i for i, g in enumerate(used)}
    sub = membership[used].astype(bool).astype(np.float64).tocsr()
    size = np.asarray(sub.sum(axis=1)).ravel()
    inter = (sub @ sub.T).tocoo()
    union = size[inter.row] + size[inter.col] - inter.data
    near_mask = (inter.row != inter.col) & (inter.data >= overlap * union)
    near: dict[int, list[int]] = {}
    for r, c in zip(inter.row[near_mask], inter.col[near_mask], strict=True):
        near.setdefault(int(r), []).append(int(c))
    reps: dict[tuple, dict[int, int]] = {}
    owner = []
    for i, (kind, sid, model, other) in enumerate(
        findings.select("kind", "skill_id", "model", "other_model").iter_rows()
    ):
        s = local[index[sid]]
        kept = reps.setdefault((kind, model, other), {})
        hits = [kept[nb] for nb in near.get(s, ()) if nb in kept]
        if hits:
            owner.append(min(hits))
        else:
            kept[s] = i
            owner.append(i)
    df = findings.with_columns(pl.Series("_owner", owner), pl.int_range(pl.len()).alias("_i"))
    folded = (
        df.filter(pl.col("_owner") != pl.col("_i"))
        .group_by("_owner")
        .agg(
            pl.col("skill_id").alias("merged_skill_ids"),
            pl.format("{} (L{})", "name", "level").alias("merged_names"),
            pl.col("level").alias("_lv"),
        )
    )
    out = df.filter(pl.col("_owner") == pl.col("_i")).drop(
        [c for c in ("merged_skill_ids", "merged_names", "levels") if c in df.columns]
    )
    out = out.join(folded, left_on="_i", right_on="_owner", how="left")
    return out.with_columns(
        pl.concat_list(pl.col("level"), pl.col("_lv").fill_null([]))
        .list.unique()
        .list.sort()
        .alias("levels"),
        pl.col("merged_skill_ids").fill_null([]),
        pl.col("merged_names").fill_null([]),
    ).drop("_owner", "_i", "_lv")


def _order(df: pl.DataFrame) -> list:
    """Sort keys of the reading order: skill level first, then significant, then the
    effect's conservative size (the CI bound nearest zero), then q."""
    return [
        pl.col("level_of_finding").replace_strict(
            {v: i for i, v in enumerate(LEVELS)}, default=len(LEVELS), return_dtype=pl.Int64
        ),
        ~pl.col("significant"),
        -pl.max_horizontal(
            pl.when(pl.col("effect") >= 0)
            .then(pl.col("effect_ci_low"))
            .otherwise(-pl.col("effect_ci_high"))
            .fill_null(0.0),
            pl.lit(0.0),
        ),
        -pl.col("effect").abs(),
        pl.col("q").fill_null(2.0),
        pl.col("insight_id"),
    ]


def skill_insights(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    min_slice_size: int = 30,
    q_level: float = 0.05,
    strata: pl.DataFrame | None = None,
    strata_label: str = "benchmark",
    merge_overlap: float = 0.9,
) -> pl.DataFrame:
    """Ranked, doubly tested findings: strengths/weaknesses and pairwise differences.

    * strength / weakness: one row per (slice, model) of :func:`model_gains`;
      ``effect`` = gain vs the mean of the other models, ``other_model`` null.
    * pairwise: one row per tested (slice, model pair) of
      :func:`pairwise_tests`, oriented so that ``model`` is the one with the
      higher accuracy on the shared instances (``effect`` >= 0).

    ``strata`` (uid, stratum; default each result's benchmark) defines the
    conditional test; ``strata_label`` names the non-skill level
    ("benchmark", or "category" when metadata columns enter the strata).
    q and q_conditional are Benjamini–Hochberg over all rows. Near-duplicate
    slices with the same comparison are merged (``merge_overlap``).
    ``ci_low``/``ci_high``: Wilson 95% of ``accuracy``; ``effect_ci_*``:
    Student-t 95% of the mean per-instance difference. ``unparsed_flag`` marks
    a finding where the loser's extra unparsed answers are at least half the
    gap. ``insight_id`` = first 12 hex digits of
    sha1("kind|skill_id|model|other_model"). ``rank`` runs within each model
    in the reading order of :func:`ranked_findings`.
    """
    if results.height == 0 or slices.height == 0 or results["model"].n_unique() < 2:
        return empty(INSIGHTS)
    arr = score_arrays(results, slices)
    strata = instance_strata(results) if strata is None else strata
    smat = _strata_matrix(arr.uids, strata)
    pw = _pairwise_from(arr, smat, min_slice_size)
    gains = _gains_from(arr, smat, min_slice_size, q_level)
    shares = _unparsed_table(arr)
    parts = []
    if gains.height:
        parts.append(_gain_findings(gains, shares))
    if pw.height:
        parts.append(_pairwise_findings(pw, shares))
    if not parts:
        return empty(INSIGHTS)
    body = {k: v for k, v in INSIGHTS.items() if k not in ("insight_id", "significant", "rank")}
    out = pl.concat([conform(p, body) for p in parts])
    out = out.drop("unparsed_share").join(
        shares.rename({"_share": "unparsed_share"}), on=["skill_id", "model"], how="left"
    )
    out = _graded(out, q_level, strata_label)
    out = out.sort(_order(out))
    out = merge_near_duplicates(out, arr.membership, arr.meta["skill_id"].to_list(), merge_overlap)
    out = out.sort(_order(out)).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("model").alias("rank")
    )
    return conform(out, INSIGHTS)


def _unparsed_table(arr: ScoreArrays) -> pl.DataFrame:
    """(skill_id, model, _share): each model's share of unparsed answers on each slice."""
    return pl.DataFrame(
        {
            "skill_id": np.repeat(arr.meta["skill_id"].to_numpy(), len(arr.models)),
            "model": arr.models * arr.meta.height,
            "_share": unparsed_shares(arr).ravel(),
        }
    ).with_columns(pl.col("_share").fill_nan(None))


def _gain_findings(gains: pl.DataFrame, shares: pl.DataFrame) -> pl.DataFrame:
    """Strength/weakness rows in the findings' columns; the others' unparsed share is their mean."""
    others = (
        gains.select("skill_id", "model")
        .join(shares.rename({"model": "_other"}), on="skill_id")
        .filter(pl.col("_other") != pl.col("model"))
        .group_by("skill_id", "model")
        .agg(pl.col("_share").mean().alias("other_unparsed_share"))
    )
    return gains.join(others, on=["skill_id", "model"], how="left").select(
        "kind",
        "skill_id",
        "name",
        "level",
        "model",
        pl.lit(None, dtype=pl.String).alias("other_model"),
        pl.col("gain").alias("effect"),
        pl.col("gain_ci_low").alias("effect_ci_low"),
        pl.col("gain_ci_high").alias("effect_ci_high"),
        "n",
        "accuracy",
        "other_accuracy",
        "ci_low",
        "ci_high",
        "other_unparsed_share",
        pl.lit(GAIN_TEST).alias("test"),
        "p",
        "q",
        *_CONDITIONAL,
    )


def _pairwise_findings(pw: pl.DataFrame, shares: pl.DataFrame) -> pl.DataFrame:
    """Pairwise rows in the findings' columns, turned so that ``model`` is the better one."""
    a_wins = pl.col("effect") >= 0

    def pick(x, y):
        return pl.when(a_wins).then(x).otherwise(y)

    pw_rows = pw.select(
        pl.lit("pairwise").alias("kind"),
        "skill_id",
        "name",
        "level",
        pick(pl.col("model_a"), pl.col("model_b")).alias("model"),
        pick(pl.col("model_b"), pl.col("model_a")).alias("other_model"),
        pl.col("effect").abs().alias("effect"),
        pick(pl.col("effect_ci_low"), -pl.col("effect_ci_high")).alias("effect_ci_low"),
        pick(pl.col("effect_ci_high"), -pl.col("effect_ci_low")).alias("effect_ci_high"),
        "n",
        pick(pl.col("acc_a"), pl.col("acc_b")).alias("accuracy"),
        pick(pl.col("acc_b"), pl.col("acc_a")).alias("other_accuracy"),
        pl.lit(PAIRWISE_TEST).alias("test"),
        "p",
        "q",
        pick(pl.col("rest_effect"), -pl.col("rest_effect")).alias("rest_effect"),
        "rest_n",
        pick(pl.col("conditional_odds_ratio"), 1.0 / pl.col("conditional_odds_ratio")).alias(
            "conditional_odds_ratio"
        ),
        "p_conditional",
        "q_conditional",
    )
    lo, hi = wilson_interval(
        (pw_rows["accuracy"] * pw_rows["n"]).to_numpy(), pw_rows["n"].to_numpy()
    )
    pw_rows = pw_rows.with_columns(pl.Series("ci_low", lo), pl.Series("ci_high", hi))
    return pw_rows.join(
        shares.rename({"model": "other_model", "_share": "other_unparsed_share"}),
        on=["skill_id", "other_model"],
        how="left",
    )


def _graded(out: pl.DataFrame, q_level: float, strata_label: str) -> pl.DataFrame:
    """Ids, q-values over the whole table, the unparsed flag and each finding's level."""
    ids = [
        _insight_id(k, s, m, o)
        for k, s, m, o in zip(
            out["kind"], out["skill_id"], out["model"], out["other_model"], strict=True
        )
    ]
    # one BH family per test over the whole table
    p_cond = out["p_conditional"].fill_null(np.nan).to_numpy()
    out = out.with_columns(
        pl.Series("insight_id", ids, dtype=pl.String),
        pl.Series("q", bh_qvalues(out["p"].to_numpy())),
        pl.Series("q_conditional", bh_qvalues(p_cond)).fill_nan(None),
        pl.lit(CONDITIONAL_TEST.format(strata=_strata_words(strata_label))).alias(
            "conditional_test"
        ),
    )
    # the claim's direction: model better (strength, pairwise) or worse (weakness)
    claim_up = pl.col("kind") != "weakness"
    odds_for_claim = (
        pl.when(claim_up)
        .then(pl.col("conditional_odds_ratio"))
        .otherwise(1.0 / pl.col("conditional_odds_ratio"))
    )
    gap_unparsed = pl.when(claim_up).then(1.0).otherwise(-1.0) * (
        pl.col("other_unparsed_share") - pl.col("unparsed_share")
    )
    return out.with_columns(
        (pl.col("q") < q_level).fill_null(False).alias("significant"),
        ((pl.col("effect").abs() > 0) & (gap_unparsed >= 0.5 * pl.col("effect").abs()))
        .fill_null(False)
        .alias("unparsed_flag"),
    ).with_columns(
        pl.when(~pl.col("significant"))
        .then(pl.lit("not significant"))
        .when((pl.col("q_conditional") < q_level).fill_null(False) & (odds_for_claim > 1.0))
        .then(pl.lit("skill"))
        .otherwise(pl.lit(strata_label))
        .alias("level_of_finding"),
        pl.col("level").cast(pl.Int64),
    )


def _strata_words(label: str) -> str:
    return "its benchmark" if label == "benchmark" else f"its benchmark x {label}"


def ranked_findings(insights: pl.DataFrame) -> pl.DataFrame:
    """Findings in reading order: skill-level first, then significant, then by effect.

    Within each group the effect counts by its conservative size (the 95% CI
    bound nearest zero), so a small slice with a wide interval does not rise
    above a large one with a clear effect. The same order as the per-model
    ``rank`` of :func:`skill_insights`, across models.
    """
    if insights.height == 0:
        return insights
    return insights.sort(_order(insights))


def _fmt_finding(row: dict, sign: str) -> str:
    q = row["q"]
    q_txt = "q=n/a" if q is None else f"q={q:.2g}"
    star = "" if row["significant"] else " (n.s.)"
    lv = row.get("level_of_finding")
    level = f" [{lv}-level]" if lv and lv != "not significant" else ""
    unp = " [gap mostly unparsed answers]" if row.get("unparsed_flag") else ""
    return (
        f"    {sign} {row['name']} [L{row['level']}]: {100 * row['effect']:+.1f} pts "
        f"(acc {100 * row['accuracy']:.1f}% vs {100 * row['other_accuracy']:.1f}%, "
        f"n={row['n']}, {q_txt}){star}{level}{unp}"
    )


def headline(insights: pl.DataFrame, top_k: int = 3) -> str:
    """A few readable lines per model: top strengths and weaknesses with effect, n and q.

    Skill-level findings come first, then significant ones (the frame's
    ``rank``); when a model has no significant one, its largest gains are shown
    marked "(n.s.)". Gains are tested with the exact sign test vs the mean of
    the other models.
    """
    if insights.height == 0:
        return "No skill insights (need at least two models and slices above the minimum size)."
    lines = []
    gains = insights.filter(pl.col("kind").is_in(["strength", "weakness"]))
    for model in sorted(insights["model"].unique().to_list()):
        mine = gains.filter(pl.col("model") == model).sort("rank")
        n_sig_s = mine.filter(pl.col("significant") & (pl.col("kind") == "strength")).height
        n_sig_w = mine.filter(pl.col("significant") & (pl.col("kind") == "weakness")).height
        n_skill = mine.filter(pl.col("level_of_finding") == "skill").height
        lines.append(
            f"{model}: {n_sig_s} significant strengths, {n_sig_w} significant weaknesses "
            f"(of {mine.height} slices; {n_skill} hold beyond their benchmark/category)"
        )
        for kind, sign, label in (("strength", "+", "strengths"), ("weakness", "-", "weaknesses")):
            top = mine.filter(pl.col("kind") == kind).head(top_k)
            if top.height == 0:
                continue
            lines.append(f"  top {label}:")
            lines += [_fmt_finding(r, sign) for r in top.iter_rows(named=True)]
    return "\n".join(lines)
