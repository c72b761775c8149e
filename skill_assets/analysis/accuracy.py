"""Accuracy of every model on every skill slice (the paper's *accuracy matrix*).

Pure functions over polars frames; no Dagster here.

Confidence intervals are Wilson score intervals, the interval that
``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` returns. That
scipy call costs about 0.4 ms (it also computes a p-value), i.e. ~40 s for the
100k slice x model cells of a large corpus, so :func:`wilson_interval`
evaluates the same closed form vectorised, with the normal quantile taken from
``scipy.special.ndtri`` exactly as scipy does; ``tests/analysis/test_accuracy.py`` checks
it against ``binomtest(...).proportion_ci`` to 1e-12. It also accepts
fractional ``k`` (sums of scores in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.special import ndtri

from skill_assets.core.schemas import SLICE_ACCURACY, conform, empty

# the per-slice table's columns without the slice: one contract for both tables
OVERALL_ACCURACY = {
    k: SLICE_ACCURACY[k] for k in ("model", "n", "n_correct", "accuracy", "ci_low", "ci_high")
}


def wilson_interval(
    k: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``k`` successes out of ``n`` (vectorised).

    Same formula as scipy's ``BinomTestResult.proportion_ci(method="wilson")``
    (no continuity correction), except that the bounds are clipped to [0, 1]
    and never exclude k / n by a rounding error. ``n == 0`` gives NaN.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = ndtri(0.5 + 0.5 * confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 2.0 * (n + z**2)
        center = (2.0 * n * p + z**2) / denom
        half = z * np.sqrt(np.maximum(4.0 * n * p * (1.0 - p), 0.0) + z**2) / denom
        # clip to [0, 1] and make sure rounding never leaves p outside (k = 0 or n)
        lo = np.clip(np.minimum(center - half, p), 0.0, 1.0)
        hi = np.clip(np.maximum(center + half, p), 0.0, 1.0)
    bad = ~(n > 0)
    lo = np.where(bad, np.nan, lo)
    hi = np.where(bad, np.nan, hi)
    return lo, hi


def with_wilson(
    df: pl.DataFrame, k: str = "n_correct", n: str = "n", confidence: float = 0.95
) -> pl.DataFrame:
    """Add ``accuracy``, ``ci_low`` and ``ci_high`` computed from columns ``k`` and ``n``."""
    kk = df[k].cast(pl.Float64).to_numpy()
    nn = df[n].cast(pl.Float64).to_numpy()
    lo, hi = wilson_interval(kk, nn, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(nn > 0, kk / np.where(nn > 0, nn, 1.0), np.nan)
    return df.with_columns(
        pl.Series("accuracy", acc, dtype=pl.Float64).fill_nan(None),
        pl.Series("ci_low", lo, dtype=pl.Float64).fill_nan(None),
        pl.Series("ci_high", hi, dtype=pl.Float64).fill_nan(None),
    )


def slice_membership(slices: pl.DataFrame) -> pl.DataFrame:
    """One row per (skill_id, uid) of the slices, duplicates removed."""
    if slices.height == 0:
        return pl.DataFrame(schema={"skill_id": pl.String, "uid": pl.String})
    return (
        slices.select("skill_id", "uids")
        .explode("uids")
        .rename({"uids": "uid"})
        .drop_nulls("uid")
        .unique()
    )


def _results_core(results: pl.DataFrame) -> pl.DataFrame:
    """(uid, model, correct) with one row per (uid, model) — duplicates averaged."""
    core = results.select(
        pl.col("uid").cast(pl.String),
        pl.col("model").cast(pl.String),
        pl.col("correct").cast(pl.Float64),
    ).drop_nulls()
    return core.group_by("uid", "model").agg(pl.col("correct").mean())


def _slice_meta(slices: pl.DataFrame) -> pl.DataFrame:
    return slices.select(
        pl.col("skill_id").cast(pl.String),
        pl.col("name").cast(pl.String),
        pl.col("level").cast(pl.Int64),
    ).unique("skill_id", keep="first", maintain_order=True)


@dataclass
class ScoreArrays:
    """Everything the slice statistics need, indexed by integer codes.

    ``scores``: uid x model (NaN = no result); ``unparsed``: uid x model, 1 when
    the result has no parsed answer, 0 when it has one, NaN when there is no
    result or the model's results carry no parse information at all (e.g. an
    import without a parsed-answer field); ``membership``: slice x uid (CSR).
    """

    models: list[str]
    uids: pl.Series
    scores: np.ndarray
    unparsed: np.ndarray
    meta: pl.DataFrame
    membership: sp.csr_matrix

    def matrices(self):
        return self.models, self.scores, self.meta, self.membership


def _unparsed_matrix(results: pl.DataFrame, uid_idx, model_idx, shape) -> np.ndarray:
    out = np.full(shape, np.nan)
    if "parsed_answer" not in results.columns:
        return out
    flags = (
        results.select(
            pl.col("uid").cast(pl.String),
            pl.col("model").cast(pl.String),
            (
                pl.col("parsed_answer").is_null()
                | (pl.col("parsed_answer").cast(pl.String).str.strip_chars() == "")
            ).alias("unparsed"),
            pl.col("correct").cast(pl.Float64),
        )
        .drop_nulls(["uid", "model", "correct"])
        # a model whose every answer lacks a parsed form gives no parse information
        .filter((~pl.col("unparsed")).any().over("model"))
        .group_by("uid", "model")
        .agg(pl.col("unparsed").cast(pl.Float64).mean())
    )
    cm = flags.join(uid_idx, on="uid").join(model_idx, on="model")
    out[cm["i"].to_numpy(), cm["m"].to_numpy()] = cm["unparsed"].to_numpy()
    return out


def score_arrays(results: pl.DataFrame, slices: pl.DataFrame) -> ScoreArrays:
    """The arrays behind the slice statistics (see ``ScoreArrays``); uids sorted.

    Joins happen once, on integer codes; every per-slice sum is then one
    sparse product.
    """
    core = _results_core(results)
    models = sorted(core["model"].unique().to_list())
    uids = core["uid"].unique().sort()
    uid_idx = pl.DataFrame({"uid": uids, "i": np.arange(uids.len(), dtype=np.int64)})
    model_idx = pl.DataFrame({"model": models, "m": np.arange(len(models), dtype=np.int64)})
    cm = core.join(uid_idx, on="uid").join(model_idx, on="model")
    scores = np.full((uids.len(), len(models)), np.nan)
    scores[cm["i"].to_numpy(), cm["m"].to_numpy()] = cm["correct"].to_numpy()
    meta = _slice_meta(slices)
    slice_idx = meta.select("skill_id").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("s")
    )
    mem = slice_membership(slices).join(slice_idx, on="skill_id").join(uid_idx, on="uid")
    membership = sp.csr_matrix(
        (np.ones(mem.height), (mem["s"].to_numpy(), mem["i"].to_numpy())),
        shape=(meta.height, uids.len()),
    )
    unparsed = _unparsed_matrix(results, uid_idx, model_idx, scores.shape)
    return ScoreArrays(models, uids, scores, unparsed, meta, membership)


def score_matrices(results: pl.DataFrame, slices: pl.DataFrame):
    """``(models, scores, meta, membership)`` of :func:`score_arrays`."""
    return score_arrays(results, slices).matrices()


def unparsed_shares(arr: ScoreArrays) -> np.ndarray:
    """Slice x model share of results without a parsed answer (NaN where unknown)."""
    known = ~np.isnan(arr.unparsed)
    n = np.asarray(arr.membership @ known.astype(np.float64))
    k = np.asarray(arr.membership @ np.nan_to_num(arr.unparsed, nan=0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)


def _slice_accuracy_from(arr: ScoreArrays, min_slice_size: int) -> pl.DataFrame:
    models, scores, meta, membership = arr.matrices()
    present = ~np.isnan(scores)
    n = np.asarray(membership @ present.astype(np.float64))  # slice x model
    k = np.asarray(membership @ np.where(present, scores, 0.0))
    s_idx, m_idx = np.nonzero(n > 0)
    nn = np.rint(n[s_idx, m_idx]).astype(np.int64)
    out = meta[s_idx].with_columns(
        pl.Series("model", np.asarray(models, dtype=object)[m_idx].tolist(), dtype=pl.String),
        pl.Series("n", nn, dtype=pl.Int64),
        pl.Series("n_correct", k[s_idx, m_idx], dtype=pl.Float64),
        pl.Series("unparsed_share", unparsed_shares(arr)[s_idx, m_idx]).fill_nan(None),
    )
    out = with_wilson(out).with_columns((pl.col("n") < min_slice_size).alias("small"))
    return conform(out, SLICE_ACCURACY).sort("skill_id", "model")


def slice_accuracy(
    results: pl.DataFrame, slices: pl.DataFrame, min_slice_size: int = 30
) -> pl.DataFrame:
    """Accuracy of each model on each slice, conforming to ``schemas.SLICE_ACCURACY``.

    ``n`` counts the slice's instances for which the model has a result (so it
    may differ between models), ``n_correct`` sums ``correct`` (a score in
    [0, 1] counts fractionally), ``ci_low``/``ci_high`` are the Wilson 95%
    interval, ``unparsed_share`` the share of the model's results there without a
    parsed answer (null when its results carry no parse information) and
    ``small`` flags ``n < min_slice_size``. Slices without any
    result for a model have no row for that model. Duplicate uids in a slice
    count once.

    Vectorised: the slices are exploded and joined to the results once on
    integer codes, and the per-slice counts are two sparse products
    (slice x uid membership times the uid x model score matrix), which is
    several times faster than a string join + group_by over the
    (slice, uid, model) rows at 10k slices x 50k instances x 10 models.
    """
    if results.height == 0 or slices.height == 0:
        return empty(SLICE_ACCURACY)
    return _slice_accuracy_from(score_arrays(results, slices), min_slice_size)


def overall_accuracy(results: pl.DataFrame) -> pl.DataFrame:
    """Accuracy of each model over all its results, with a Wilson 95% interval.

    Columns: model, n, n_correct, accuracy, ci_low, ci_high.
    """
    if results.height == 0:
        return empty(OVERALL_ACCURACY)
    core = _results_core(results)
    out = core.group_by("model").agg(
        pl.len().cast(pl.Int64).alias("n"), pl.col("correct").sum().alias("n_correct")
    )
    return conform(with_wilson(out), OVERALL_ACCURACY).sort("accuracy", descending=True)
