"""The HTML report, the plots and the `insights` command on small hand-made assets.

No pipeline run here: the assets a report reads are written as Parquet from
hand-checkable tables, exactly where `skill-slices run` would put them.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from conftest import write_project

from skill_assets.analysis.accuracy import slice_accuracy
from skill_assets.analysis.evolution import dataset_view, model_evolution
from skill_assets.analysis.insights import skill_insights
from skill_assets.app.cli import main
from skill_assets.core.registry import RegistryError, load_project
from skill_assets.present import plots
from skill_assets.present.report import (
    build_report,
    findings_markdown,
    findings_records,
    load_inputs,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
MODELS = ("alpha", "beta", "gamma")


def _tables(root: Path):
    """Results on the fixture's benchmark: alpha strong on arithmetic, beta on chemistry."""
    project = load_project(root)
    bench = pl.read_ndjson(root / "data" / "bench.jsonl")
    rows = []
    for i, r in enumerate(bench.iter_rows(named=True)):
        subject = r["subject"]
        uid = f"bench/{r['instance_id']}"
        alpha = 1.0 if subject == "arithmetic" or i % 3 == 0 else 0.0
        beta = 1.0 if subject == "chemistry" or i % 4 == 0 else 0.0
        gamma = 1.0 if i % 2 == 0 else 0.0
        for m, c in zip(MODELS, (alpha, beta, gamma), strict=True):
            rows.append(
                {
                    "uid": uid,
                    "benchmark": "bench",
                    "instance_id": r["instance_id"],
                    "model": m,
                    "correct": c,
                }
            )
    results = pl.DataFrame(rows)
    subjects = bench["subject"].unique().sort().to_list()
    slices = pl.DataFrame(
        {
            "skill_id": [f"L0-{s}" for s in subjects] + ["L1-arith"],
            "name": [f"{s} skill" for s in subjects] + ["adding numbers"],
            "level": [0] * len(subjects) + [1],
            "parent_id": [None] * len(subjects) + ["L0-arithmetic"],
            "member_names": [[s] for s in subjects] + [["adding"]],
            "uids": [
                [f"bench/{x}" for x in bench.filter(pl.col("subject") == s)["instance_id"]]
                for s in subjects
            ]
            + [
                [
                    f"bench/{x}"
                    for x in bench.filter(pl.col("subject") == "arithmetic")["instance_id"]
                ][:10]
            ],
        },
        schema_overrides={"parent_id": pl.String},
    ).with_columns(pl.col("uids").list.len().cast(pl.Int64).alias("n"))
    instances = bench.select(
        pl.format("bench/{}", "instance_id").alias("uid"),
        pl.lit("bench").alias("benchmark"),
        "instance_id",
        "question",
    )
    routing = pl.DataFrame(
        {
            "router": ["skill_policy", "best_single", "random", "oracle"],
            "scheme": ["loo"] * 4,
            "accuracy": [0.61, 0.55, 0.45, 0.8],
            "ci_low": [0.55, 0.5, 0.4, 0.75],
            "ci_high": [0.66, 0.6, 0.5, 0.85],
            "n": [120] * 4,
        }
    )
    reg = project.registry
    inputs = {
        "slice_accuracy": slice_accuracy(results, slices, reg.slices.min_slice_size),
        "skill_insights": skill_insights(
            results, slices, reg.slices.min_slice_size, reg.insights.q_level
        ),
        "routing_evaluation": routing,
        "skill_slices": slices,
        "model_results": results,
        "benchmark_instances": instances,
        "model_evolution": model_evolution(
            results, slices, reg.compare, reg.slices.min_slice_size, reg.insights.q_level
        ),
        "dataset_view": dataset_view(results, slices, instances),
    }
    return project, inputs


@pytest.fixture
def project_with_assets(tmp_path):
    root = write_project(
        tmp_path / "proj",
        models={
            m: dict.fromkeys(("arithmetic", "chemistry", "geography", "python", "grammar"), 0.5)
            for m in MODELS
        },
        extra_registry="compare:\n  - [gamma, alpha]\n",
    )
    project, inputs = _tables(root)
    assets = project.assets_dir
    (assets / "model_results" / "bench").mkdir(parents=True)
    (assets / "benchmark_instances").mkdir(parents=True)
    for name in (
        "slice_accuracy",
        "skill_insights",
        "routing_evaluation",
        "skill_slices",
        "model_evolution",
        "dataset_view",
    ):
        inputs[name].write_parquet(assets / f"{name}.parquet")
    for (m,), df in inputs["model_results"].group_by(["model"]):
        df.write_parquet(assets / "model_results" / "bench" / f"{m}.parquet")
    # a stale partition of a model no longer in the registry must not enter the report
    inputs["model_results"].filter(pl.col("model") == "alpha").with_columns(
        pl.lit("retired").alias("model")
    ).write_parquet(assets / "model_results" / "bench" / "retired.parquet")
    inputs["benchmark_instances"].write_parquet(assets / "benchmark_instances" / "bench.parquet")
    return project, inputs


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.opened: dict[str, int] = {}
        self.closed: dict[str, int] = {}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.opened[tag] = self.opened.get(tag, 0) + 1
        a = dict(attrs)
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])

    def handle_endtag(self, tag):
        self.closed[tag] = self.closed.get(tag, 0) + 1


def test_report_is_self_contained_with_every_section(project_with_assets):
    project, inputs = project_with_assets
    doc = build_report(project, inputs)
    assert doc.startswith("<!doctype html>")
    tags = _Tags()
    tags.feed(doc)
    # offline: no script, stylesheet link, remote image or CSS url()
    assert "script" not in tags.opened and "link" not in tags.opened
    assert "url(" not in doc and "@import" not in doc
    assert all(s.startswith("data:image/png;base64,") for s in tags.srcs)
    assert all(h.startswith("#") for h in tags.hrefs)
    for tag in ("table", "figure", "h2"):
        assert tags.opened.get(tag) == tags.closed.get(tag), tag
    # pictures: one strengths plot per model, heat map, evolution, dataset view, routing
    assert len(tags.srcs) == len(MODELS) + 4
    for src in tags.srcs:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    for anchor in (
        "overall-accuracy",
        "findings",
        "strengths-and-weaknesses-per-model",
        "accuracy-per-skill",
        "model-evolution",
        "dataset-view",
        "routing",
    ):
        assert f"id='{anchor}'" in doc, anchor
    # the findings table carries n, CI and q
    for col in ("<th>n</th>", "<th>ci_low</th>", "<th>ci_high</th>", "<th>q</th>", "<th>p</th>"):
        assert col in doc
    assert "gamma → alpha" in doc


def test_write_report_via_cli_skips_retired_models(project_with_assets):
    project, _ = project_with_assets
    out = CliRunner().invoke(main, ["report", "--project", str(project.root)])
    assert out.exit_code == 0, out.output
    path = Path(out.output.strip())
    assert path == project.reports_dir / "report.html" and path.exists()
    doc = path.read_text()
    assert "retired" not in doc
    assert doc.count("data:image/png;base64,") == len(MODELS) + 4


def test_report_without_a_run_is_a_clear_error(tmp_path):
    project = load_project(write_project(tmp_path / "p"))
    with pytest.raises(RegistryError, match="run `skill-slices run` first"):
        write_report(project)


def test_findings_tables_show_n_ci_p_q(project_with_assets):
    _, inputs = project_with_assets
    ins = inputs["skill_insights"]
    assert ins.filter(pl.col("significant")).height > 0
    recs = findings_records(ins, limit=5)
    assert len(recs) == 5
    assert recs[0]["kind"].endswith("*")  # significant first, then by |effect|
    sig = [
        abs(r["effect_pts"]) for r in findings_records(ins, limit=100) if r["kind"].endswith("*")
    ]
    assert sig == sorted(sig, reverse=True)
    assert set(recs[0]) >= {"skill", "model", "vs", "effect_pts", "n", "acc_pct_ci", "p", "q"}
    assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", recs[0]["acc_pct_ci"])
    md = findings_markdown(ins, limit=5)
    assert md.count("\n|") == 7 and "| q |" in md
    assert "No findings" in findings_markdown(ins.clear())


def test_plots_draw_or_return_none(project_with_assets):
    project, inputs = project_with_assets
    acc, ins = inputs["slice_accuracy"], inputs["skill_insights"]
    evo = model_evolution(inputs["model_results"], inputs["skill_slices"], [("gamma", "alpha")], 5)
    view = dataset_view(
        inputs["model_results"], inputs["skill_slices"], inputs["benchmark_instances"]
    )
    for png in (
        plots.accuracy_heatmap(acc),
        plots.strengths_plot(ins, acc, "alpha"),
        plots.evolution_bars(evo),
        plots.routing_bars(inputs["routing_evaluation"]),
        plots.dataset_plot(view),
    ):
        assert png is not None and png[:8] == PNG
    assert plots.accuracy_heatmap(acc.clear()) is None
    assert plots.strengths_plot(ins.clear(), acc, "alpha") is None
    assert plots.strengths_plot(ins, acc, "nobody") is None
    assert plots.evolution_bars(evo.clear()) is None
    assert plots.routing_bars(inputs["routing_evaluation"].clear()) is None
    assert plots.dataset_plot(view.clear()) is None
    md = plots.markdown_image(b"\x89PNGxyz", "a [b] c")
    assert md.startswith("![a (b) c](data:image/png;base64,")
    assert plots.markdown_image(None, "x") == ""


def test_insights_command_prints_n_ci_p_q(project_with_assets):
    project, inputs = project_with_assets
    runner = CliRunner()
    out = runner.invoke(main, ["insights", "--project", str(project.root), "--top", "5"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert re.fullmatch(r"\d+ skill-level finding\(s\) .*", lines[0])
    header = lines[1]
    assert header.split()[:6] == ["id", "level", "kind", "model", "vs", "skill"]
    for col in ("effect [CI]", "n", "acc % [95% CI]", "unp %", "p", "q", "q|strata"):
        assert col in header
    ids = set(inputs["skill_insights"]["insight_id"].to_list())
    body = [x for x in lines[3:] if x.split()[:1] and x.split()[0] in ids]
    assert len(body) == 5
    q_at = header.index("q|strata")
    assert all(x[:q_at].rstrip().endswith("*") for x in body)  # significant only
    assert re.search(r"\d+\.\d \[\s*\d+\.\d,\s*\d+\.\d\]", body[0])
    # full model names, and both tests named under the table
    assert any(m in body[0] for m in MODELS)
    tests = out.output.split("Tests: ")[1]
    assert "Mantel-Haenszel" in tests and ("exact McNemar" in tests or "exact sign test" in tests)
    # filters: model (as either side), level, kind; JSON keeps the numbers
    js = runner.invoke(
        main,
        [
            "insights",
            "--project",
            str(project.root),
            "--model",
            "beta",
            "--level",
            "0",
            "--all",
            "--json",
        ],
    )
    import json

    rows = json.loads(js.output)
    assert rows and all("beta" in (r["model"], r["other_model"]) and r["level"] == 0 for r in rows)
    weak = runner.invoke(
        main, ["insights", "--project", str(project.root), "--kind", "weakness", "--all"]
    )
    assert "strength " not in weak.output and "weakness" in weak.output
    bad = runner.invoke(main, ["insights", "--project", str(project.root), "--model", "zeta"])
    assert bad.exit_code != 0 and "zeta" in bad.output
    # findings without q (a gain no pairwise test supports) still print
    ins = inputs["skill_insights"].with_columns(pl.lit(None, dtype=pl.Float64).alias("q"))
    ins.write_parquet(project.assets_dir / "skill_insights.parquet")
    out = runner.invoke(main, ["insights", "--project", str(project.root), "--all", "--top", "3"])
    assert out.exit_code == 0, out.output


def test_report_escapes_strings_from_the_data(project_with_assets):
    project, inputs = project_with_assets
    evil = "<img src=x onerror=alert(1)>&"
    rename = pl.when(pl.col("model") == "alpha").then(pl.lit(evil)).otherwise(pl.col("model"))
    doc = build_report(
        project,
        {
            **inputs,
            "skill_insights": inputs["skill_insights"].with_columns(pl.lit(evil).alias("name")),
            "slice_accuracy": inputs["slice_accuracy"].with_columns(rename.alias("model")),
            "routing_evaluation": inputs["routing_evaluation"].with_columns(
                pl.lit(evil).alias("router")
            ),
        },
    )
    assert "<img src=x" not in doc
    assert doc.count("&lt;img src=x onerror=alert(1)&gt;&amp;") > 3
    assert "<h3 id='model-img-src-x-onerror-alert-1'>&lt;img" in doc


def test_report_shows_the_stored_evolution_and_dataset_view(project_with_assets):
    """The report reads model_evolution and dataset_view as materialized, never recomputes."""
    project, inputs = project_with_assets
    (project.assets_dir / "dataset_view.parquet").unlink()
    stored = inputs["model_evolution"].with_columns(pl.lit("as-stored").alias("name"))
    stored.write_parquet(project.assets_dir / "model_evolution.parquet")
    doc = build_report(project, load_inputs(project))
    assert "id='dataset-view'" not in doc and "id='model-evolution'" in doc
    assert doc.count("<td>as-stored</td>") == min(stored.height, 20)
