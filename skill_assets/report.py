"""One self-contained HTML report: tables and pictures, images inlined, opens offline."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from skill_assets import plots
from skill_assets.registry import Project, RegistryError


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/><figcaption>{html.escape(alt)}</figcaption></figure>'


def _table(df: pl.DataFrame, cols: list[str], limit: int = 50) -> str:
    cols = [c for c in cols if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for r in df.head(limit).select(cols).iter_rows():
        cells = []
        for v in r:
            if isinstance(v, float):
                v = f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
            cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1rem 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f3f3f3} figure{margin:1rem 0} img{max-width:100%}
h2{border-bottom:1px solid #ccc;padding-bottom:4px}
"""


def write_report(project: Project) -> Path:
    """Write `<project>/.skill-slices/reports/report.html` and return its path."""
    from skill_assets.accuracy import overall_accuracy
    from skill_assets.runner import read_asset

    acc = read_asset(project, "slice_accuracy")
    ins = read_asset(project, "skill_insights")
    ev = read_asset(project, "routing_evaluation")
    if acc is None or ins is None or ev is None:
        raise RegistryError(f"{project.root}: nothing to report yet; run `skill-slices run` first")
    results_dir = project.assets_dir / "model_results"
    results = (
        pl.read_parquet(sorted(results_dir.rglob("*.parquet"))) if results_dir.exists() else None
    )
    parts = [
        f"<h1>skill-slices report</h1><p>Project <code>{html.escape(str(project.root))}</code>, "
        f"generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>"
    ]
    if results is not None and results.height:
        parts += [
            "<h2>Overall accuracy</h2>",
            _table(overall_accuracy(results), ["model", "n", "accuracy", "ci_low", "ci_high"]),
        ]
    parts += ["<h2>Findings</h2>"]
    sig = ins.filter(pl.col("significant")) if ins.height else ins
    shown = sig if sig.height else ins
    parts.append(
        "<p>Significant findings (q below the configured level).</p>"
        if sig.height
        else "<p>No finding reaches significance; the largest effects are shown.</p>"
    )
    cols = [
        "insight_id",
        "kind",
        "model",
        "other_model",
        "name",
        "level",
        "effect",
        "n",
        "accuracy",
        "ci_low",
        "ci_high",
        "p",
        "q",
    ]
    parts.append(
        _table(
            shown.sort(["q", "effect"], descending=[False, True], nulls_last=True)
            if shown.height
            else shown,
            cols,
        )
    )
    for m in sorted(acc["model"].unique().to_list()):
        parts.append(_img(plots.strengths_plot(ins, acc, m), f"{m}: strengths and weaknesses"))
    parts += ["<h2>Accuracy per skill</h2>", _img(plots.accuracy_heatmap(acc), "accuracy heat map")]
    parts += [
        "<h2>Routing</h2>",
        _img(plots.routing_bars(ev), "routing accuracy"),
        _table(ev, list(ev.columns)),
    ]
    out = project.reports_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = f"<!doctype html><html><head><meta charset='utf-8'><title>skill-slices report</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    return out
