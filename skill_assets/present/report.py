"""One self-contained HTML report: tables and pictures, images inlined, opens offline.

The markup is the Jinja2 template ``templates/report.html.j2`` (autoescaped); this module
formats the values it shows.

The report reads the materialized assets of a project (``slice_accuracy``,
``skill_insights``, ``routing_evaluation``, ``model_evolution``, ``dataset_view``, the
partitions of ``model_results``) through ``core.store.read_asset`` and recomputes none of
them, so every section describes the same run. Nothing is fetched: no script, font or
stylesheet leaves the file.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import polars as pl

from skill_assets.analysis.insights import ranked_findings
from skill_assets.core import atomic
from skill_assets.core.registry import Project, RegistryError
from skill_assets.core.store import read_asset
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


@dataclass(frozen=True)
class Figure:
    """A PNG for the template, base64 for a data: URI."""

    data: str
    alt: str


@dataclass(frozen=True)
class Table:
    """Formatted cells for the template; ``more`` counts the rows left out."""

    columns: list[str]
    rows: list[list[str]]
    more: int = 0
    cls: str = ""


def _img(png: bytes | None, alt: str) -> Figure | None:
    return Figure(base64.b64encode(png).decode(), alt) if png else None


def _table(df: pl.DataFrame, cols: list[str], limit: int = 50, cls: str = "") -> Table:
    cols = [c for c in cols if c in df.columns]
    rows = [
        [_fmt(v, c) for v, c in zip(r, cols, strict=True)]
        for r in df.head(limit).select(cols).iter_rows()
    ]
    return Table(cols, rows, max(df.height - limit, 0), cls)


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


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("skill_assets.present", "templates"),
        # data (skill names, questions, model names, paths) is escaped wherever it lands
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
    )
    env.filters["anchor"] = _anchor
    return env.get_template("report.html.j2")


def load_inputs(project: Project) -> dict[str, pl.DataFrame | None]:
    """The materialized assets a report needs; results and instances restricted to the
    registry's benchmarks/models."""
    out: dict[str, pl.DataFrame | None] = {
        name: read_asset(project, name)
        for name in (
            "slice_accuracy",
            "skill_insights",
            "routing_evaluation",
            "skill_slices",
            "model_evolution",
            "dataset_view",
        )
    }
    benches = [b.name for b in project.registry.benchmarks]
    models = [m.name for m in project.registry.models]
    results = read_asset(project, "model_results")
    if results is not None:
        results = results.filter(pl.col("benchmark").is_in(benches) & pl.col("model").is_in(models))
    instances = read_asset(project, "benchmark_instances")
    if instances is not None:
        instances = instances.filter(pl.col("benchmark").is_in(benches))
    out["model_results"] = results
    out["benchmark_instances"] = instances
    return out


def _overall_section(results: pl.DataFrame | None) -> dict[str, Table | None]:
    """Overall accuracy per model, and per benchmark when there are several."""
    from skill_assets.analysis.accuracy import overall_accuracy

    overall: dict[str, Table | None] = {"table": None, "per_benchmark": None}
    if results is not None and results.height:
        overall["table"] = _table(
            overall_accuracy(results), ["model", "n", "n_correct", "accuracy", "ci_low", "ci_high"]
        )
        per_bench = (
            results.group_by("benchmark", "model")
            .agg(pl.len().alias("n"), pl.col("correct").mean().alias("accuracy"))
            .sort("benchmark", "model")
        )
        if per_bench["benchmark"].n_unique() > 1:
            overall["per_benchmark"] = _table(
                per_bench, ["benchmark", "model", "n", "accuracy"], limit=200
            )
    return overall


def _findings_section(ins: pl.DataFrame) -> dict[str, Any]:
    findings: dict[str, Any] = {"tested": ins.height, "significant": 0, "table": None}
    if ins.height:
        sig = ins.filter(pl.col("significant"))
        findings["significant"] = sig.height
        shown = sig if sig.height else ins
        findings["table"] = _table(
            _numbered(_shown(ranked_findings(shown))), FINDING_COLS, cls="findings"
        )
    return findings


def _model_sections(acc: pl.DataFrame, ins: pl.DataFrame) -> list[dict[str, Any]]:
    models = []
    for m in sorted(acc["model"].unique().to_list()) if acc.height else []:
        mine = ins.filter((pl.col("model") == m) & pl.col("kind").is_in(["strength", "weakness"]))
        models.append(
            {
                "name": m,
                "figure": _img(plots.strengths_plot(ins, acc, m), f"{m}: strengths and weaknesses"),
                "table": _table(_numbered(_shown(mine.sort("rank"))), FINDING_COLS, limit=12),
            }
        )
    return models


def _heatmap_section(acc: pl.DataFrame) -> dict[str, Any]:
    return {
        "figure": _img(plots.accuracy_heatmap(acc), "accuracy heat map (skills × models)"),
        "table": _table(
            acc.filter(~pl.col("small")).sort(["level", "n"], descending=[False, True]),
            ["name", "level", "model", "n", "accuracy", "ci_low", "ci_high", "unparsed_share"],
            limit=60,
        ),
    }


def _evolution_section(evo: pl.DataFrame | None, q_level: float) -> dict[str, Any]:
    evolution: dict[str, Any] = {"figure": None, "pairs": []}
    if evo is not None and evo.height:
        evolution["figure"] = _img(
            plots.evolution_bars(evo, q_level=q_level),
            "model evolution: most improved and regressed skills",
        )
        evolution["pairs"] = [
            {"old": old, "new": new, "table": _table(grp.sort("rank"), EVOLUTION_COLS, 20)}
            for (old, new), grp in evo.group_by(["old_model", "new_model"], maintain_order=True)
        ]
    return evolution


def _dataset_section(view: pl.DataFrame | None) -> dict[str, Any] | None:
    if view is None or not view.height:
        return None
    by_bench = view.filter(pl.col("view") == "accuracy_by_benchmark")
    return {
        "figure": _img(plots.dataset_plot(view), "dataset view"),
        "mix": _table(
            view.filter(pl.col("view") == "benchmark_mix"),
            ["benchmark", "name", "n", "share_of_benchmark", "share_of_skill"],
            100,
        ),
        "by_skill": _table(
            view.filter(pl.col("view") == "accuracy_by_skill"),
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
        "by_benchmark": _table(
            by_bench, ["model", "name", "n", "weight", "accuracy", "contribution"], 100
        )
        if by_bench["name"].n_unique() > 1
        else None,
    }


def _routing_section(ev: pl.DataFrame) -> dict[str, Any]:
    return {
        "figure": _img(plots.routing_bars(ev), "routing: held-out accuracy (leave-one-out)"),
        "table": _table(
            ev.sort(["scheme", "accuracy"], descending=[False, True]) if ev.height else ev,
            list(ev.columns),
            limit=100,
        ),
    }


def build_report(project: Project, inputs: dict[str, pl.DataFrame | None]) -> str:
    """The report as one HTML string (images inlined as data: URIs)."""
    acc, ins, ev = inputs["slice_accuracy"], inputs["skill_insights"], inputs["routing_evaluation"]
    assert acc is not None and ins is not None and ev is not None  # write_report checks
    reg = project.registry
    min_size = reg.insights.min_n or reg.slices.min_slice_size
    q_level = reg.insights.q_level
    overall = _overall_section(inputs.get("model_results"))
    findings = _findings_section(ins)
    models = _model_sections(acc, ins)
    heatmap = _heatmap_section(acc)
    evolution = _evolution_section(inputs.get("model_evolution"), q_level) if reg.compare else None
    dataset = _dataset_section(inputs.get("dataset_view"))
    routing = _routing_section(ev)
    return _template().render(
        project_root=str(project.root),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        min_size=min_size,
        q_level=q_level,
        overall=overall,
        findings=findings,
        models=models,
        heatmap=heatmap,
        evolution=evolution,
        dataset=dataset,
        routing=routing,
    )


def write_report(project: Project, out: Path | None = None) -> Path:
    """Write `<project>/.skill-slices/reports/report.html` (or `out`) and return its path."""
    inputs = load_inputs(project)
    if any(inputs[k] is None for k in ("slice_accuracy", "skill_insights", "routing_evaluation")):
        raise RegistryError(f"{project.root}: nothing to report yet; run `skill-slices run` first")
    doc = build_report(project, inputs)
    out = Path(out) if out is not None else project.reports_dir / "report.html"
    return atomic.write_text(out, doc)
