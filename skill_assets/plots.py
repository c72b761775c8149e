"""Pictures researchers read: accuracy heat map, strengths/weaknesses, routing bars (PNG bytes)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def accuracy_heatmap(slice_acc: pl.DataFrame, max_skills: int = 30) -> bytes | None:
    """Skills × models accuracy heat map over the largest slices of the general levels."""
    if slice_acc.height == 0:
        return None
    big = slice_acc.filter(~pl.col("small")) if "small" in slice_acc.columns else slice_acc
    if big.height == 0:
        big = slice_acc
    top = (
        big.group_by("skill_id", "name", "level")
        .agg(pl.col("n").max())
        .sort(["level", "n"], descending=[False, True])
        .head(max_skills)
    )
    models = sorted(big["model"].unique().to_list())
    mat = np.full((top.height, len(models)), np.nan)
    lookup = {(r["skill_id"], r["model"]): r["accuracy"] for r in big.iter_rows(named=True)}
    for i, sid in enumerate(top["skill_id"].to_list()):
        for j, m in enumerate(models):
            mat[i, j] = lookup.get((sid, m), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(models), 0.32 * top.height + 1.5))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    labels = [
        f"{'  ' * lv}{n[:40]} (n={k})" for n, lv, k in top.select("name", "level", "n").iter_rows()
    ]
    ax.set_yticks(range(top.height), labels, fontsize=8)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isnan(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title("Accuracy per skill slice")
    return _png(fig)


def strengths_plot(
    insights: pl.DataFrame, slice_acc: pl.DataFrame, model: str, k: int = 6
) -> bytes | None:
    """Dot plot: every model's accuracy (with 95% CI) on `model`'s top strengths and weaknesses."""
    if insights.height == 0:
        return None
    own = insights.filter(
        (pl.col("model") == model) & pl.col("kind").is_in(["strength", "weakness"])
    )
    if own.height == 0:
        return None
    picks = pl.concat(
        [
            own.filter(pl.col("kind") == "strength").sort("effect", descending=True).head(k),
            own.filter(pl.col("kind") == "weakness").sort("effect").head(k),
        ]
    )
    sids = picks["skill_id"].to_list()
    names = picks["name"].to_list()
    models = sorted(slice_acc["model"].unique().to_list())
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(sids) + 1.2))
    for j, m in enumerate(models):
        sub = slice_acc.filter(pl.col("model") == m)
        look = {r["skill_id"]: r for r in sub.iter_rows(named=True)}
        ys, xs, lo, hi = [], [], [], []
        for i, sid in enumerate(sids):
            r = look.get(sid)
            if r:
                ys.append(i + (j - len(models) / 2) * 0.12)
                xs.append(r["accuracy"])
                lo.append(r["accuracy"] - r["ci_low"])
                hi.append(r["ci_high"] - r["accuracy"])
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", capsize=2, label=m, ms=5 if m != model else 8)
    ax.set_yticks(range(len(sids)), [n[:45] for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy (95% Wilson CI)")
    ax.set_xlim(0, 1)
    ax.set_title(f"{model}: strongest and weakest skills")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def routing_bars(evaluation: pl.DataFrame, scheme: str = "loo") -> bytes | None:
    """Held-out accuracy of every router, with bootstrap intervals."""
    ev = evaluation.filter(pl.col("scheme") == scheme).sort("accuracy")
    if ev.height == 0:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * ev.height + 1.2))
    acc = ev["accuracy"].to_numpy()
    lo = acc - ev["ci_low"].fill_null(pl.lit(None)).to_numpy().astype(float)
    hi = ev["ci_high"].to_numpy().astype(float) - acc
    err = np.nan_to_num(np.vstack([lo, hi]))
    colors = ["tab:orange" if r.startswith("skill_policy") else "tab:blue" for r in ev["router"]]
    ax.barh(ev["router"].to_list(), acc, xerr=err, color=colors, capsize=3)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"held-out accuracy ({scheme})")
    ax.set_title("Routing: skill policy vs baselines")
    return _png(fig)
