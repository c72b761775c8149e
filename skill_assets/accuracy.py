"""Accuracy of every model on every skill slice (the paper's *accuracy matrix*).

Pure functions over polars frames; no Dagster here.

Confidence intervals are Wilson score intervals, the interval that
``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` returns. That
scipy call costs about 0.4 ms (it also computes a p-value), i.e. ~40 s for the
100k slice x model cells of a large corpus, so :func:`wilson_interval`
evaluates the same closed form vectorised, with the normal quantile taken from
``scipy.special.ndtri`` exactly as scipy does; ``tests/test_accuracy.py`` checks
it against ``binomtest(...).proportion_ci`` to 1e-12. It also accepts
fractional ``k`` (sums of scores in [0, 1]).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import ndtri

from skill_assets.schemas import SLICE_ACCURACY, conform, empty

OVERALL_ACCURACY = {
    "model": pl.String,
    "n": pl.Int64,
    "n_correct": pl.Float64,
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}


def wilson_interval(
    k: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``k`` successes out of ``n`` (vectorised).

    Same formula as scipy's ``BinomTestResult.proportion_ci(method="wilson")``
    (no continuity correction). ``n == 0`` gives NaN.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = ndtri(0.5 + 0.5 * confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 2.0 * (n + z**2)
        center = (2.0 * n * p + z**2) / denom
        half = z * np.sqrt(np.maximum(4.0 * n * p * (1.0 - p), 0.0) + z**2) / denom
        lo = np.clip(center - half, 0.0, 1.0)
        hi = np.clip(center + half, 0.0, 1.0)
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


def slice_accuracy(
    results: pl.DataFrame, slices: pl.DataFrame, min_slice_size: int = 30
) -> pl.DataFrame:
    """Accuracy of each model on each slice, conforming to ``schemas.SLICE_ACCURACY``.

    ``n`` counts the slice's instances for which the model has a result (so it
    may differ between models), ``n_correct`` sums ``correct`` (a score in
    [0, 1] counts fractionally), ``ci_low``/``ci_high`` are the Wilson 95%
    interval and ``small`` flags ``n < min_slice_size``. Slices without any
    result for a model have no row for that model.
    """
    if results.height == 0 or slices.height == 0:
        return empty(SLICE_ACCURACY)
    members = slice_membership(slices)
    core = _results_core(results)
    counts = (
        members.join(core, on="uid", how="inner")
        .group_by("skill_id", "model")
        .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("correct").sum().alias("n_correct"))
    )
    meta = slices.select("skill_id", "name", "level").unique("skill_id", keep="first")
    out = counts.join(meta, on="skill_id", how="left")
    out = with_wilson(out).with_columns((pl.col("n") < min_slice_size).alias("small"))
    return conform(out, SLICE_ACCURACY).sort("skill_id", "model")


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
