"""One self-contained HTML report: tables and pictures, images inlined, opens offline.

The report reads the materialized assets of a project (``slice_accuracy``,
``skill_insights``, ``routing_evaluation``, ``skill_slices``, the partitions of
``model_results`` and ``benchmark_instances``) and recomputes the model
evolution and the dataset view from them with the same pure functions as the
``model_evolution`` / ``dataset_view`` assets, so every section describes the
same run. Nothing is fetched: no script, font or stylesheet leaves the file.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from skill_assets.analysis.insights import ranked_findings
from skill_assets.core import atomic
from skill_assets.core.registry import Project, RegistryError
from skill_assets.present import plots

FINDING_COLS = [
    "insight_id",
    "level_of_finding",
    "kind",
    "model",
    "other_model",
    "name",
    "levels",
    "effect",
    "effect_ci_low",
    "effect_ci_high",
    "n",
    "accuracy",
    "ci_low",
    "ci_high",
    "other_accuracy",
    "unparsed_share",
    "other_unparsed_share",
    "unparsed_flag",
    "test",
    "p",
    "q",
    "conditional_test",
    "rest_effect",
    "q_conditional",
]
EVOLUTION_COLS = [
    "rank",
    "name",
    "level",
    "n",
    "acc_old",
    "acc_new",
    "change",
    "avg_change",
    "relative_change",
    "improved",
    "regressed",
    "p",
    "q",
    "p_vs_avg",
    "q_vs_avg",
    "significant",
]


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


COUNT_COLS = {"n", "n_correct", "improved", "regressed"}


def _shown(findings: pl.DataFrame) -> pl.DataFrame:
    """Findings worth a line: effects of (about) zero are float noise or ties."""
    return findings.filter(pl.col("effect").abs() >= plots.MIN_SHOWN_EFFECT)


def _numbered(df: pl.DataFrame) -> pl.DataFrame:
    """Rank = position in the table shown (the asset's rank runs per model)."""
    return df.drop("rank", strict=False).with_row_index("rank", offset=1)


def _fmt(v, col: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if col in COUNT_COLS and isinstance(v, float) and v == v and v.is_integer():
        return str(int(v))  # a count that an aggregation made a float: "99", not "99.000"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.3f}"
    return str(v)


def _table(df: pl.DataFrame, cols: list[str], limit: int = 50, cls: str = "") -> str:
    cols = [c for c in cols if c in df.columns]
    if df.height == 0:
        return "<p class='empty'>(no rows)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for r in df.head(limit).select(cols).iter_rows():
        cells = "".join(f"<td>{html.escape(_fmt(v, c))}</td>" for v, c in zip(r, cols, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f"<p class='note'>{df.height - limit} more rows in the asset.</p>"
        if df.height > limit
        else ""
    )
    attr = f' class="{cls}"' if cls else ""
    return (
        f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
    )


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _pval(v) -> str:
    return "" if v is None else f"{v:.2g}"


def findings_records(insights: pl.DataFrame, limit: int = 25) -> list[dict]:
    """The top findings as flat records (strings and numbers) for a metadata table."""
    out = []
    for r in ranked_findings(insights).head(limit).iter_rows(named=True):
        out.append(
            {
                "finding_level": r["level_of_finding"],
                "skill": str(r["name"])[:60],
                "effect_pts": round(100 * r["effect"], 1),
                "q": _pval(r["q"]),
                "q_vs_strata": _pval(r["q_conditional"]),
                "model": r["model"],
                "vs": r["other_model"] or "mean of others",
                "kind": r["kind"] + (" *" if r["significant"] else ""),
                "n": r["n"],
                "acc_pct_ci": f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
                "unparsed_pct": f"{_pct(r['unparsed_share']) or '–'} / "
                f"{_pct(r['other_unparsed_share']) or '–'}" + (" !" if r["unparsed_flag"] else ""),
                "p": _pval(r["p"]),
                "level": r["level"],
                "levels": ", ".join(str(x) for x in r["levels"] or []),
                "test": r["test"],
                "conditional_test": r["conditional_test"],
                "insight_id": r["insight_id"],
            }
        )
    return out


def findings_markdown(insights: pl.DataFrame, limit: int = 25) -> str:
    """A Markdown table of the top findings: level, effect, n, accuracy [95% CI], tests, p, q."""
    if insights.height == 0:
        return "*No findings: need two models and slices above the minimum size.*"
    df = ranked_findings(insights).head(limit)
    n_sig = insights.filter(pl.col("significant")).height
    n_skill = insights.filter(pl.col("level_of_finding") == "skill").height
    lines = [
        f"{n_sig} of {insights.height} findings significant, {n_skill} at skill level "
        f"(they also hold against the rest of their strata); top {df.height} shown.",
        "",
        "| finding level | kind | model | vs | skill | levels | effect (pts) [95% CI] | n "
        "| acc % [95% CI] | other % | unparsed % | test | p | q | q vs strata |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.iter_rows(named=True):
        name = str(r["name"]).replace("|", "/")[:60]
        star = " *" if r["significant"] else ""
        ci = f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
        eff = f"{100 * r['effect']:+.1f}"
        if r["effect_ci_low"] is not None:
            eff += f" [{100 * r['effect_ci_low']:+.1f}, {100 * r['effect_ci_high']:+.1f}]"
        unp = f"{_pct(r['unparsed_share']) or '–'} / {_pct(r['other_unparsed_share']) or '–'}"
        lines.append(
            f"| {r['level_of_finding']} | {r['kind']}{star} | {r['model']} | "
            f"{r['other_model'] or 'mean of others'} | {name} | "
            f"{', '.join(str(x) for x in r['levels'] or [])} | {eff} | {r['n']} | {ci} | "
            f"{_pct(r['other_accuracy'])} | {unp}{' !' if r['unparsed_flag'] else ''} | "
            f"{r['test']} | {_pval(r['p'])} | {_pval(r['q'])} | {_pval(r['q_conditional'])} |"
        )
    return "\n".join(lines)


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem;line-height:1.4}
table{border-collapse:collapse;font-size:12.5px;margin:.6rem 0 1rem}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0} tr:nth-child(even) td{background:#fafafa}
figure{margin:1rem 0} img{max-width:100%} figcaption{font-size:12px;color:#666}
h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2.2rem}
nav a{margin-right:1rem} .note,.empty{color:#666;font-size:13px} code{background:#f3f3f3}
"""


def _partitions(project: Project, asset: str) -> pl.DataFrame | None:
    folder = project.assets_dir / asset
    files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
    if not files:
        return None
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def load_inputs(project: Project) -> dict[str, pl.DataFrame | None]:
    """The materialized assets a report needs, restricted to the registry's benchmarks/models."""
    from skill_assets.core.store import read_asset

    out: dict[str, pl.DataFrame | None] = {
        name: read_asset(project, name)
        for name in ("slice_accuracy", "skill_insights", "routing_evaluation", "skill_slices")
    }
    benches = [b.name for b in project.registry.benchmarks]
    models = [m.name for m in project.registry.models]
    results = _partitions(project, "model_results")
    if results is not None:
        results = results.filter(pl.col("benchmark").is_in(benches) & pl.col("model").is_in(models))
    instances = _partitions(project, "benchmark_instances")
    if instances is not None:
        instances = instances.filter(pl.col("benchmark").is_in(benches))
    out["model_results"] = results
    out["benchmark_instances"] = instances
    return out


def build_report(project: Project, inputs: dict[str, pl.DataFrame | None]) -> str:
    """The report as one HTML string (images inlined as data: URIs)."""
    from skill_assets.analysis.accuracy import overall_accuracy
    from skill_assets.analysis.evolution import dataset_view, model_evolution

    acc, ins, ev = inputs["slice_accuracy"], inputs["skill_insights"], inputs["routing_evaluation"]
    slices, results = inputs.get("skill_slices"), inputs.get("model_results")
    instances = inputs.get("benchmark_instances")
    reg = project.registry
    min_size = reg.insights.min_n or reg.slices.min_slice_size
    q_level = reg.insights.q_level
    sections: list[tuple[str, str]] = []

    # --- overall ---------------------------------------------------------------------
    body = []
    if results is not None and results.height:
        body.append(
            _table(
                overall_accuracy(results),
                ["model", "n", "n_correct", "accuracy", "ci_low", "ci_high"],
            )
        )
        per_bench = (
            results.group_by("benchmark", "model")
            .agg(pl.len().alias("n"), pl.col("correct").mean().alias("accuracy"))
            .sort("benchmark", "model")
        )
        if per_bench["benchmark"].n_unique() > 1:
            body.append(_table(per_bench, ["benchmark", "model", "n", "accuracy"], limit=200))
    body.append(
        f"<p class='note'>Slices enter the findings with at least {min_size} instances per model; "
        f"a finding is significant when its Benjamini–Hochberg q is below {q_level}. "
        "Accuracy intervals are Wilson 95%, effect intervals Student-t 95% of the mean "
        "per-instance difference. Pairwise p-values are exact McNemar tests (binomial test on "
        "the discordant instances) on the instances both models answered; strength/weakness "
        "p-values are exact sign tests of the model's per-instance score minus the mean of the "
        "other models. Every finding is also tested against the same comparison on the rest "
        "of its benchmark (and metadata) strata (Cochran–Mantel–Haenszel); only findings that "
        "pass both are <b>skill</b>-level, the others are benchmark/category-level. "
        "Unparsed % is the share of answers without a parsed answer (model / other); "
        "! marks a finding whose gap is mostly unparsed answers.</p>"
    )
    sections.append(("Overall accuracy", "".join(body)))

    # --- findings --------------------------------------------------------------------
    body = []
    if ins.height:
        sig = ins.filter(pl.col("significant"))
        shown = sig if sig.height else ins
        body.append(
            f"<p>{sig.height} of {ins.height} tested findings are significant.</p>"
            if sig.height
            else f"<p>None of the {ins.height} tested findings reaches significance "
            f"(q &lt; {q_level}); the largest effects are shown.</p>"
        )
        body.append(_table(_numbered(_shown(ranked_findings(shown))), FINDING_COLS, cls="findings"))
    else:
        body.append(
            "<p class='empty'>No findings: need two models and slices above the minimum size.</p>"
        )
    sections.append(("Findings", "".join(body)))

    # --- per model -------------------------------------------------------------------
    body = []
    for m in sorted(acc["model"].unique().to_list()) if acc.height else []:
        mine = _numbered(
            _shown(
                ins.filter(
                    (pl.col("model") == m) & pl.col("kind").is_in(["strength", "weakness"])
                ).sort("rank")
            )
        )
        body.append(f"<h3 id='model-{_anchor(m)}'>{html.escape(m)}</h3>")
        body.append(_img(plots.strengths_plot(ins, acc, m), f"{m}: strengths and weaknesses"))
        body.append(_table(mine, FINDING_COLS, limit=12))
    sections.append(("Strengths and weaknesses per model", "".join(body)))

    # --- heat map --------------------------------------------------------------------
    sections.append(
        (
            "Accuracy per skill",
            _img(plots.accuracy_heatmap(acc), "accuracy heat map (skills × models)")
            + _table(
                acc.filter(~pl.col("small")).sort(["level", "n"], descending=[False, True]),
                ["name", "level", "model", "n", "accuracy", "ci_low", "ci_high", "unparsed_share"],
                limit=60,
            ),
        )
    )

    # --- evolution -------------------------------------------------------------------
    if reg.compare:
        body = []
        evo = (
            model_evolution(results, slices, reg.compare, min_size, q_level)
            if results is not None and slices is not None
            else None
        )
        if evo is not None and evo.height:
            body.append(
                "<p>Per registered pair: change on each slice against the pair's average change; "
                "p tests change ≠ 0 (McNemar), p_vs_avg tests change ≠ average change (Fisher, "
                "improvements vs regressions inside vs outside the slice).</p>"
            )
            body.append(
                _img(
                    plots.evolution_bars(evo, q_level=q_level),
                    "model evolution: most improved and regressed skills",
                )
            )
            for (old, new), grp in evo.group_by(["old_model", "new_model"], maintain_order=True):
                body.append(f"<h3>{html.escape(old)} → {html.escape(new)}</h3>")
                body.append(_table(grp.sort("rank"), EVOLUTION_COLS, limit=20))
        else:
            body.append(
                "<p class='empty'>No slice reaches the minimum size for the registered pairs.</p>"
            )
        sections.append(("Model evolution", "".join(body)))

    # --- dataset view ----------------------------------------------------------------
    if results is not None and slices is not None:
        view = dataset_view(results, slices, instances)
        if view.height:
            mix = view.filter(pl.col("view") == "benchmark_mix")
            by_skill = view.filter(pl.col("view") == "accuracy_by_skill")
            by_bench = view.filter(pl.col("view") == "accuracy_by_benchmark")
            body = [
                _img(plots.dataset_plot(view), "dataset view"),
                "<h3>Benchmark composition (top-level skills)</h3>",
                _table(
                    mix, ["benchmark", "name", "n", "share_of_benchmark", "share_of_skill"], 100
                ),
                "<h3>Where each model's accuracy comes from</h3>",
                "<p class='note'>Each instance's score is split equally between its top-level "
                "skills; contributions of a model sum to its overall accuracy.</p>",
                _table(
                    by_skill,
                    [
                        "model",
                        "name",
                        "n",
                        "weight",
                        "accuracy",
                        "contribution",
                        "other_contribution",
                    ],
                    100,
                ),
                _table(by_bench, ["model", "name", "n", "weight", "accuracy", "contribution"], 100)
                if by_bench["name"].n_unique() > 1
                else "",
            ]
            sections.append(("Dataset view", "".join(body)))

    # --- routing ---------------------------------------------------------------------
    body = [_img(plots.routing_bars(ev), "routing: held-out accuracy (leave-one-out)")]
    body.append(
        _table(
            ev.sort(["scheme", "accuracy"], descending=[False, True]) if ev.height else ev,
            list(ev.columns),
            limit=100,
        )
    )
    sections.append(("Routing", "".join(body)))

    nav = "".join(f"<a href='#{_anchor(t)}'>{html.escape(t)}</a>" for t, _ in sections)
    parts = [
        "<h1>skill-slices report</h1>",
        f"<p>Project <code>{html.escape(str(project.root))}</code>, generated "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        f"<nav>{nav}</nav>",
    ]
    for title, content in sections:
        parts.append(f"<h2 id='{_anchor(title)}'>{html.escape(title)}</h2>{content}")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>skill-slices report</title><style>{CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def write_report(project: Project, out: Path | None = None) -> Path:
    """Write `<project>/.skill-slices/reports/report.html` (or `out`) and return its path."""
    inputs = load_inputs(project)
    if any(inputs[k] is None for k in ("slice_accuracy", "skill_insights", "routing_evaluation")):
        raise RegistryError(f"{project.root}: nothing to report yet; run `skill-slices run` first")
    doc = build_report(project, inputs)
    out = Path(out) if out is not None else project.reports_dir / "report.html"
    return atomic.write_text(out, doc)
