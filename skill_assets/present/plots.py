"""Pictures researchers read, as PNG bytes (matplotlib, Agg backend).

* :func:`strengths_plot` — per model: every model's accuracy (95% Wilson CI) on
  that model's top strengths and weaknesses (a dot plot);
* :func:`accuracy_heatmap` — skills x models accuracy over the largest slices;
* :func:`evolution_bars` — per (old, new) pair: skills that changed most
  against the average change;
* :func:`routing_bars` — held-out accuracy of the skill router and baselines;
* :func:`dataset_plot` — benchmark composition by top-level skill and where
  each model's accuracy comes from.

Every function returns ``None`` when it has nothing to draw.
:func:`markdown_image` wraps a PNG for Dagster metadata (``MetadataValue.md``
renders an inline ``data:`` image on the asset page).
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

DPI = 100


# Effects smaller than this (0.05 points) print as "+0.0 pts": float noise such as
# -2.78e-17 or a tie, not a strength or a weakness worth a line.
MIN_SHOWN_EFFECT = 5e-4


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _short(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_image(png: bytes | None, alt: str) -> str:
    """Markdown for an inline PNG (``![alt](data:image/png;base64,…)``); "" when None."""
    if not png:
        return ""
    alt = alt.replace("[", "(").replace("]", ")")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def accuracy_heatmap(slice_acc: pl.DataFrame, max_skills: int = 30) -> bytes | None:
    """Skills x models accuracy heat map over the largest slices, general levels first."""
    if slice_acc.height == 0:
        return None
    big = slice_acc.filter(~pl.col("small")) if "small" in slice_acc.columns else slice_acc
    if big.height == 0:
        big = slice_acc
    big = big.filter(pl.col("accuracy").is_not_null())
    if big.height == 0:
        return None
    top = (
        big.group_by("skill_id", "name", "level")
        .agg(pl.col("n").max())
        .sort(["level", "n", "skill_id"], descending=[False, True, False])
        .head(max_skills)
    )
    models = sorted(big["model"].unique().to_list())
    mat = np.full((top.height, len(models)), np.nan)
    lookup = {(r["skill_id"], r["model"]): r["accuracy"] for r in big.iter_rows(named=True)}
    for i, sid in enumerate(top["skill_id"].to_list()):
        for j, m in enumerate(models):
            mat[i, j] = lookup.get((sid, m), np.nan)
    fig, ax = plt.subplots(figsize=(3.5 + 1.3 * len(models), 0.32 * top.height + 1.6))
    # colour range: the data's, widened to tenths, so small differences stay visible
    vmin = float(np.floor(np.nanmin(mat) * 10) / 10) if np.isfinite(mat).any() else 0.0
    vmax = float(np.ceil(np.nanmax(mat) * 10) / 10) if np.isfinite(mat).any() else 1.0
    vmax = max(vmax, vmin + 0.1)
    im = ax.imshow(np.ma.masked_invalid(mat), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(models)), [_short(m, 28) for m in models], rotation=30, ha="right")
    labels = [
        f"{_short(n, 40)} [L{lv}] (n={k})"
        for n, lv, k in top.select("name", "level", "n").iter_rows()
    ]
    ax.set_yticks(range(top.height), labels, fontsize=8)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isnan(mat[i, j]):
                color = "black" if (mat[i, j] - vmin) / (vmax - vmin) > 0.6 else "white"
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, label="accuracy")
    ax.set_title("Accuracy per skill slice (largest slices, general → specific)")
    return _png(fig)


def strengths_plot(
    insights: pl.DataFrame, slice_acc: pl.DataFrame, model: str, k: int = 6
) -> bytes | None:
    """Dot plot: every model's accuracy (95% CI) on `model`'s top strengths and weaknesses.

    The skills are `model`'s largest gains (strengths, top) and losses
    (weaknesses, bottom) among its strength/weakness findings, significant
    ones first (the findings' rank). A "*" marks q below the configured level.
    """
    if insights.height == 0 or slice_acc.height == 0:
        return None
    own = insights.filter(
        (pl.col("model") == model)
        & pl.col("kind").is_in(["strength", "weakness"])
        & (pl.col("effect").abs() >= MIN_SHOWN_EFFECT)
    )
    if own.height == 0:
        return None
    order = ["significant", "effect"]
    picks = pl.concat(
        [
            own.filter(pl.col("kind") == "strength").sort(order, descending=[True, True]).head(k),
            own.filter(pl.col("kind") == "weakness").sort(order, descending=[True, False]).head(k),
        ]
    )
    sids = picks["skill_id"].to_list()
    labels = [
        f"{'* ' if sig else ''}{_short(n, 42)} [L{lv}] ({100 * e:+.1f} pts)"
        for n, lv, e, sig in picks.select("name", "level", "effect", "significant").iter_rows()
    ]
    models = sorted(slice_acc["model"].unique().to_list())
    models = [model] + [m for m in models if m != model]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(sids) + 1.4))
    step = 0.6 / max(len(models), 1)
    for j, m in enumerate(models):
        look = {
            r["skill_id"]: r
            for r in slice_acc.filter(pl.col("model") == m).iter_rows(named=True)
            if r["accuracy"] is not None
        }
        ys, xs, lo, hi = [], [], [], []
        for i, sid in enumerate(sids):
            r = look.get(sid)
            if r:
                ys.append(i + (j - (len(models) - 1) / 2) * step)
                xs.append(r["accuracy"])
                lo.append(max(r["accuracy"] - (r["ci_low"] or r["accuracy"]), 0.0))
                hi.append(max((r["ci_high"] or r["accuracy"]) - r["accuracy"], 0.0))
        if not xs:
            continue
        own_model = m == model
        ax.errorbar(
            xs,
            ys,
            xerr=[lo, hi],
            fmt="D" if own_model else "o",
            capsize=2,
            label=_short(m, 30),
            ms=7 if own_model else 4,
            color="black" if own_model else None,
            zorder=3 if own_model else 2,
            alpha=1.0 if own_model else 0.75,
        )
    n_str = int((picks["kind"] == "strength").sum())
    if 0 < n_str < len(sids):
        ax.axhline(n_str - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(sids)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy on the slice (95% Wilson CI)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{model}: strengths (top) and weaknesses (bottom); * = significant")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def evolution_bars(
    evolution: pl.DataFrame, k: int = 8, q_level: float | None = None
) -> bytes | None:
    """Per (old, new) pair: the k skills that improved and regressed most vs the average.

    `q_level` is the registry's significance level, printed in the legend."""
    if evolution.height == 0:
        return None
    groups = list(evolution.group_by(["old_model", "new_model"], maintain_order=True))
    heights = []
    picks = []
    for (old, new), grp in groups:
        up = grp.filter(pl.col("relative_change") > 0).sort("relative_change", descending=True)
        down = grp.filter(pl.col("relative_change") <= 0).sort("relative_change")
        sel = pl.concat([up.head(k), down.head(k).reverse()])
        picks.append(((old, new), sel))
        heights.append(max(sel.height, 1))
    fig, axes = plt.subplots(
        len(picks),
        1,
        figsize=(9, 0.32 * sum(heights) + 1.3 * len(picks)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, ((old, new), sel) in zip(axes[:, 0], picks, strict=True):
        if sel.height == 0:
            ax.set_axis_off()
            continue
        avg = float(sel["avg_change"][0])
        rel = sel["relative_change"].to_numpy()
        colors = ["tab:green" if v > 0 else "tab:red" for v in rel]
        alphas = [1.0 if s else 0.45 for s in sel["significant"].to_list()]
        ys = np.arange(sel.height)
        for y, v, c, a in zip(ys, rel, colors, alphas, strict=True):
            ax.barh(y, 100 * v, color=c, alpha=a)
        labels = [
            f"{'* ' if s else ''}{_short(n, 40)} [L{lv}] (n={nn}, {100 * ch:+.0f} pts, q={q:.2g})"
            for n, lv, nn, ch, s, q in sel.select(
                "name", "level", "n", "change", "significant", "q"
            ).iter_rows()
        ]
        ax.set_yticks(ys, labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("change against the average change (points)")
        ax.set_title(
            f"{_short(old, 30)} → {_short(new, 30)} (average change {100 * avg:+.1f} pts)\n"
            "q: McNemar, change ≠ 0; * and solid bar: change ≠ average "
            f"(Fisher, BH q < {q_level if q_level is not None else 'the level'})",
            fontsize=9,
        )
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def routing_bars(evaluation: pl.DataFrame, scheme: str = "loo") -> bytes | None:
    """Held-out accuracy of every router under one scheme, with its interval."""
    if evaluation.height == 0 or "scheme" not in evaluation.columns:
        return None
    ev = evaluation.filter(pl.col("scheme") == scheme).sort("accuracy")
    if ev.height == 0:
        scheme = evaluation["scheme"][0]
        ev = evaluation.filter(pl.col("scheme") == scheme).sort("accuracy")
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * ev.height + 1.3))
    acc = ev["accuracy"].cast(pl.Float64).to_numpy()
    err = None
    if "ci_low" in ev.columns and "ci_high" in ev.columns:
        lo = acc - ev["ci_low"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        hi = ev["ci_high"].cast(pl.Float64).fill_null(float("nan")).to_numpy() - acc
        err = np.clip(np.nan_to_num(np.vstack([lo, hi])), 0, None)
    routers = ev["router"].to_list()
    colors = [
        "tab:orange"
        if r.startswith("skill")
        else ("tab:grey" if r in ("oracle", "random") else "tab:blue")
        for r in routers
    ]
    ax.barh(routers, acc, xerr=err, color=colors, capsize=3)
    # each value just right of its bar's upper error bar, never on top of it
    ends = acc + (err[1] if err is not None else 0.0)
    for y, (a, end) in enumerate(zip(acc, ends, strict=True)):
        ax.text(end + 0.012, y, f"{a:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, float(ends.max()) + 0.1))
    ax.set_xlabel(f"held-out accuracy ({scheme})")
    ax.set_title("Routing: skill policy (orange) vs baselines")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def dataset_plot(view: pl.DataFrame, max_skills: int = 10) -> bytes | None:
    """Left: each benchmark's share of each top-level skill. Right: accuracy by skill per model."""
    if view.height == 0:
        return None
    mix = view.filter(pl.col("view") == "benchmark_mix")
    src = view.filter(pl.col("view") == "accuracy_by_skill")
    if mix.height == 0 and src.height == 0:
        return None
    ranked = (
        pl.concat(
            [
                mix.select("name", pl.col("n").cast(pl.Float64)),
                src.select("name", pl.col("weight").alias("n")),
            ]
        )
        .group_by("name")
        .agg(pl.col("n").sum())
        .sort(["n", "name"], descending=[True, False])["name"]
        .to_list()
    )
    skills = ranked[:max_skills]
    cmap = plt.get_cmap("tab20")
    color = {s: cmap(i % 20) for i, s in enumerate(skills + ["other"])}
    panels = [p for p in (mix, src) if p.height]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        is_mix = panel is mix
        key = "benchmark" if is_mix else "model"
        value = "share_of_benchmark" if is_mix else "contribution"
        rows = sorted(panel[key].unique().to_list())
        left = np.zeros(len(rows))
        for s in skills + ["other"]:
            sub = (
                panel.filter(~pl.col("name").is_in(skills))
                if s == "other"
                else panel.filter(pl.col("name") == s)
            )
            vals = {r: v for r, v in sub.group_by(key).agg(pl.col(value).sum()).iter_rows()}
            w = np.array([vals.get(r, 0.0) or 0.0 for r in rows])
            if not w.any():
                continue
            ax.barh(range(len(rows)), w, left=left, color=color[s], label=_short(s, 32))
            left += w
        ax.set_yticks(range(len(rows)), [_short(r, 28) for r in rows], fontsize=8)
        ax.invert_yaxis()
        if is_mix:
            ax.set_xlabel("share of the benchmark's instances testing the skill (multi-label)")
            ax.set_title("Benchmark composition by top-level skill")
        else:
            ax.set_xlabel("contribution to overall accuracy (sums to the accuracy)")
            ax.set_title("Where each model's accuracy comes from")
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return _png(fig)
