"""The `skill-slices` command line."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from skill_assets.core.registry import RegistryError

# Dagster flags beta APIs we rely on (partition mappings, data versions) on every import.
warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")

DEFAULT_PROJECT = os.environ.get("SKILL_SLICES_PROJECT", "demo")
project_option = click.option(
    "--project",
    "project_dir",
    default=DEFAULT_PROJECT,
    show_default=True,
    type=click.Path(file_okay=True, dir_okay=True),
    help="Project folder holding skill-slices.yaml.",
)


def _fail(msg: str) -> NoReturn:
    # one line per cause (a run can fail on several partitions at once)
    for line in str(msg).splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns input errors into one clear line and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RegistryError as e:
            _fail(str(e))
        except Exception as e:
            # A damaged state database gives one line, not a driver traceback.
            import sqlite3

            try:
                from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError
            except ImportError:  # pragma: no cover - sqlalchemy ships with dagster
                SQLAlchemyDatabaseError = sqlite3.DatabaseError  # noqa: N806
            if not isinstance(e, (sqlite3.DatabaseError, SQLAlchemyDatabaseError)):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            _fail(
                f"a project state database is damaged ({first}); "
                "`skill-slices doctor --project PROJECT` names it and `--repair` sets it aside"
            )


@click.group(cls=_Group)
def main() -> None:
    """Skill-level insights and skill-based routing for foundation models."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@main.command()
@project_option
@click.option("--quiet", is_flag=True, help="Only print the JSON summary.")
@click.option(
    "--no-wait", is_flag=True, help="Fail at once if another run holds the project (default: wait)."
)
@click.option(
    "--executor",
    type=click.Choice(["in_process", "multiprocess"]),
    default="in_process",
    show_default=True,
    help="Dagster executor: multiprocess runs steps in their own processes and the runs of"
    " one wave (e.g. several benchmarks) side by side.",
)
def run(project_dir: str, quiet: bool, no_wait: bool, executor: str) -> None:
    """Materialize what Dagster reports as missing or stale (the UI's "Unsynced")."""
    from skill_assets.app.runner import run_project

    summary = run_project(
        project_dir,
        progress=not quiet and sys.stderr.isatty(),
        wait=not no_wait,
        log=lambda m: click.echo(m, err=True),
        executor=executor,
    )
    print_run_summary(project_dir, summary, quiet)


def print_run_summary(project_dir: str, summary: dict, quiet: bool = False) -> None:
    """The terminal summary of a run: headline, routing table, failed checks, then JSON.

    Every registry model is in the summary; one that ended with no result fails the run."""
    from skill_assets.app import state_health
    from skill_assets.core.registry import load_project
    from skill_assets.core.store import read_asset

    project = load_project(project_dir)
    summary["models"] = state_health.model_coverage(project)
    lost = state_health.lost_models(project, summary["models"])
    if not quiet:
        _print_headline(project, read_asset)
        for name, info in summary.get("checks_failed", {}).items():
            details = ", ".join(f"{k}={v}" for k, v in info.items() if k != "severity")
            click.echo(f"check {info.get('severity', 'ERROR').lower()}: {name} ({details})")
    click.echo(json.dumps(summary, default=str))
    for line in lost:
        click.echo(f"error: {line}", err=True)
    if lost:
        sys.exit(1)


def _print_headline(project, read_asset) -> None:
    """What a researcher reads first: accuracy, findings, routing, where to look next."""
    import polars as pl

    results = read_asset(project, "model_results")
    if results is not None and results.height:
        from skill_assets.analysis.accuracy import overall_accuracy

        ov = overall_accuracy(results)
        n_q = results["uid"].n_unique() if "uid" in results.columns else None
        click.echo(f"== overall accuracy ({n_q} questions; Wilson 95% CI) ==")
        for r in ov.iter_rows(named=True):
            click.echo(
                f"  {str(r['model'])[:32]:<32} {100 * r['accuracy']:5.1f}%  "
                f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]  n={r['n']}"
            )
        click.echo("")
    ins = read_asset(project, "skill_insights")
    if ins is not None:
        click.echo(_format_top_findings(ins, project.registry.insights.q_level))
        click.echo("")
    ev = read_asset(project, "routing_evaluation")
    if ev is not None and ev.height:
        click.echo("== routing: held-out accuracy (leave-one-out; 95% bootstrap CI) ==")
        click.echo(_format_routing(ev.filter(pl.col("scheme") == "loo")))
        click.echo("")
    root = _here(project.root)
    try:
        from skill_assets.present.report import write_report

        click.echo(f"report: {_here(write_report(project))}")
    except Exception as e:  # the run itself succeeded; the report is a convenience
        click.echo(f"report: not written ({type(e).__name__}); try `skill-slices report`")
    click.echo(f"findings: skill-slices insights --project {root}   (all, with p and q)")
    click.echo(f"UI:       skill-slices ui --project {root}   (Dagster, http://127.0.0.1:3000)")


def _here(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it (shorter to read)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(path)


def _format_top_findings(ins, q_level: float, per_kind: int = 2) -> str:
    """Per model, the top significant strengths and weaknesses at the finest level that has any."""
    import polars as pl

    head = f"== top significant findings per model (finest level with any; BH q < {q_level}) =="
    lines = [head]
    gains = ins.filter(pl.col("kind").is_in(["strength", "weakness"]))
    for model in sorted(ins["model"].unique().to_list()):
        sig = gains.filter((pl.col("model") == model) & pl.col("significant"))
        if sig.height == 0:
            lines.append(f"{model}: no significant strength or weakness")
            continue
        level = sig["level"].max()
        at = sig.filter(pl.col("level") == level)
        lines.append(f"{model}: {sig.height} significant; level {level}:")
        for kind, sign in (("strength", "+"), ("weakness", "-")):
            top = at.filter(pl.col("kind") == kind).sort("rank").head(per_kind)
            for r in top.iter_rows(named=True):
                lines.append(
                    f"  {sign} {str(r['name'])[:60]} (n={r['n']}): "
                    f"{100 * r['accuracy']:.1f}% [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
                    f" vs {100 * r['other_accuracy']:.1f}% others, "
                    f"{100 * r['effect']:+.1f} pts, q={r['q']:.2g}"
                )
    return "\n".join(lines)


def _format_routing(ev) -> str:
    rows = ev.sort(["scheme", "accuracy"], descending=[False, True])
    lines = [
        f"  {'router':<18} {'accuracy':>8}  {'95% CI':<14} {'vs best single [95% CI]':<26} {'n':>6}"
    ]
    for r in rows.iter_rows(named=True):
        ci = f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
        gain = ""
        if (
            r["router"] not in ("best_single", "oracle", "random")
            and r.get("gain_ci_low") is not None
        ):
            gain = (
                f"{100 * r['gain_vs_best_single']:+.1f} "
                f"[{100 * r['gain_ci_low']:+.1f}, {100 * r['gain_ci_high']:+.1f}]"
            )
        lines.append(
            f"  {r['router']:<18} {100 * r['accuracy']:7.1f}%  {ci:<14} {gain:<26} {r['n']:>6}"
        )
    return "\n".join(lines)


@main.command()
@project_option
@click.option("--model", "model_name", required=True, help="A model entry of the registry.")
def evaluate(project_dir: str, model_name: str) -> None:
    """Run a live model on every benchmark and write its results file."""
    import polars as pl

    from skill_assets.core.registry import load_project
    from skill_assets.ingest.live import make_judge_client

    project = load_project(project_dir, allow_missing_results=True)
    entry = project.model(model_name)
    instances, resource, client = _live_setup(project, model_name, entry)
    judge = project.registry.judge
    judge_client = make_judge_client(judge, resource.call_cache()) if judge else None
    judged = {"requested": 0, "judged": 0, "overturned": 0, "failed": 0}
    batches: list[str] = []
    by_batch = 0  # answers the provider batch API produced (cache hits in client.stats)
    frames, failed, first_error = [], 0, None
    for name, df in instances.items():
        res, fails, run_stats = _evaluate_benchmark(project, entry, client, judge_client, name, df)
        if run_stats.judge is not None:
            for k in judged:  # the summary's keys are JudgeStats field names
                judged[k] += getattr(run_stats.judge, k)
        if run_stats.batch is not None:
            batches += run_stats.batch.batches
            by_batch += run_stats.batch.written
        frames.append(res)
        failed += fails.height
        if fails.height and first_error is None:
            first_error = f"{fails['uid'][0]}: {fails['error'][0]}"
    out = pl.concat(frames, how="vertical_relaxed")
    target = project.results_target(model_name)
    total = sum(df.height for df in instances.values())
    _write_results(out, target, failed, total, first_error)
    stats = client.stats
    summary: dict[str, Any] = {
        "model": model_name,
        "results": str(target),
        "instances": out.height,
        "failed": failed,
        "accuracy": round(float(cast(float, out["correct"].mean())), 4) if out.height else None,
        "llm_calls": {
            "made": stats.made + by_batch,
            "cached": stats.cached - by_batch,
        },
    }
    if judge_client is not None:
        js = judge_client.stats
        summary["judge"] = judged | {"made": js.made, "cached": js.cached}
    if entry.batch:
        summary["batches"] = batches
        summary["llm_calls"]["by_batch"] = by_batch
    click.echo(json.dumps(summary))


def _live_setup(project, model_name: str, entry):
    """(instances, project resource, ready client) for a live model, or a RegistryError."""
    from skill_assets.app.runner import preflight
    from skill_assets.resources.llm import LLMConfigError
    from skill_assets.resources.project import ProjectResource

    if entry.provider is None:
        raise RegistryError(
            f"{project.registry_path}: model {model_name!r} has no 'provider'; nothing to run"
        )
    instances = preflight(project)
    resource = ProjectResource(project_dir=str(project.root), allow_missing_results=True)
    client = resource.llm_client(entry)
    try:
        client.check_ready()
    except LLMConfigError as e:
        raise RegistryError(
            f"model {model_name!r} (provider {entry.provider!r}) cannot run here: {e}"
        ) from None
    return instances, resource, client


def _evaluate_benchmark(project, entry, client, judge_client, name: str, df):
    """One benchmark's (results, failures, stats), with a progress bar."""
    from tqdm import tqdm

    from skill_assets.ingest.live import run_live_evaluation

    with tqdm(total=df.height, desc=f"{entry.name} on {name}", unit="q") as bar:
        last = [0]

        def progress(done, total=None, bar=bar, last=last):
            bar.update(done - last[0])
            last[0] = done

        # model_results calls this per partition; here: one file for all benchmarks, no partial
        return run_live_evaluation(
            df,
            entry,
            client,
            log=lambda m: None,
            progress=progress,
            judge_client=judge_client,
            batch_state_dir=project.state_dir / "batches",
        )


def _write_results(out, target, failed: int, total: int, first_error: str | None) -> None:
    """Write the results file, only when every call was answered."""
    from skill_assets.core.atomic import atomic_path

    if failed:
        # A partial file would replace a complete one and look like a model that skipped
        # questions; the answered calls are cached, so a re-run only repeats the failures.
        raise click.ClickException(
            f"{failed} of {total} calls failed (first: {first_error}); {target} was not "
            "written (previous content kept). Fix the cause and re-run: answered calls are cached."
        )
    cols = ["benchmark", "instance_id", "model", "response", "parsed_answer", "correct"]
    with atomic_path(target) as tmp:
        out.select(cols).write_ndjson(tmp)


@main.command()
@project_option
@click.option("--model", "model_name", default=None, help="Only findings about this model.")
@click.option("--level", type=int, default=None, help="Only slices at this level (0 = general).")
@click.option(
    "--kind",
    type=click.Choice(["strength", "weakness", "pairwise"]),
    default=None,
    help="Only this kind of finding.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@click.option("--all", "show_all", is_flag=True, help="Include findings that are not significant.")
@click.option("--top", type=int, default=20, show_default=True)
def insights(project_dir, model_name, level, kind, as_json, show_all, top) -> None:
    """Print ranked, tested findings with effect, n, accuracy [95% CI], p and q.

    Significant findings (BH q below the registry's insights.q_level) come first;
    without --all only those are shown, or, when none is significant, the
    largest effects marked "n.s.".
    """
    import polars as pl

    from skill_assets.analysis.insights import ranked_findings
    from skill_assets.core.registry import load_project
    from skill_assets.core.store import read_asset

    project = _complete(load_project(project_dir))
    df = read_asset(project, "skill_insights")
    if df is None:
        _fail(f"{project.root}: no insights yet; run `skill-slices run --project {project_dir}`")
    if model_name:
        known = set(df["model"].unique().to_list()) | set(df["other_model"].drop_nulls().to_list())
        if model_name not in known:
            _fail(f"no findings about model {model_name!r}; known: {', '.join(sorted(known))}")
        df = df.filter((pl.col("model") == model_name) | (pl.col("other_model") == model_name))
    if level is not None:
        df = df.filter(pl.col("level") == level)
    if kind:
        df = df.filter(pl.col("kind") == kind)
    q_level = project.registry.insights.q_level
    note = ""
    if not show_all and df.height:
        sig = df.filter(pl.col("significant"))
        if sig.height == 0:
            note = (
                f"no finding is significant at q < {q_level}; the largest effects are shown (n.s.)"
            )
        else:
            df = sig
    n_skill = df.filter(pl.col("level_of_finding") == "skill").height if df.height else 0
    df = ranked_findings(df).head(top) if df.height else df
    if as_json:
        click.echo(json.dumps(df.to_dicts(), default=str))
        return
    if df.height == 0:
        click.echo("no findings (try --all, or a lower insights.min_n)")
        return
    if note:
        click.echo(note)
    click.echo(f"{n_skill} skill-level finding(s) (hold beyond their benchmark/category strata)")
    click.echo(_format_findings(df))
    tests = sorted(set(df["test"].to_list()) | set(df["conditional_test"].to_list()))
    click.echo(
        "effect: accuracy points vs the other model (pairwise) or the mean of the others "
        "(strength/weakness), [Student-t 95% CI]; acc: Wilson 95%; unp: unparsed answers % "
        "(! = at least half the gap); q: Benjamini-Hochberg of the marginal test, q|strata: of "
        f"the conditional test; * = q < {q_level}. Tests: " + "; ".join(tests)
    )


def _format_findings(df) -> str:
    def pct(v):
        return "   -" if v is None else f"{100 * v:4.1f}"

    def pv(v):
        return "-" if v is None else f"{v:.2g}"

    rows = []
    for r in df.iter_rows(named=True):
        levels = "/".join(f"L{x}" for x in (r.get("levels") or [r["level"]]))
        eff = f"{100 * r['effect']:+.1f}"
        if r.get("effect_ci_low") is not None:
            eff += f" [{100 * r['effect_ci_low']:+.0f},{100 * r['effect_ci_high']:+.0f}]"
        unp = f"{pct(r.get('unparsed_share')).strip()}/{pct(r.get('other_unparsed_share')).strip()}"
        rows.append(
            [
                r["insight_id"],
                r.get("level_of_finding") or "",
                r["kind"],
                str(r["model"]),
                str(r.get("other_model") or "mean of others"),
                str(r["name"])[:44]
                + (f" (+{len(r['merged_names'])})" if r.get("merged_names") else ""),
                levels,
                eff,
                str(r["n"]),
                f"{pct(r['accuracy'])} [{pct(r['ci_low'])},{pct(r['ci_high'])}]",
                pct(r["other_accuracy"]),
                unp + ("!" if r.get("unparsed_flag") else ""),
                pv(r["p"]),
                pv(r["q"]) + ("*" if r.get("significant") else ""),
                pv(r.get("q_conditional")),
            ]
        )
    header = [
        "id",
        "level",
        "kind",
        "model",
        "vs",
        "skill",
        "lvl",
        "effect [CI]",
        "n",
        "acc % [95% CI]",
        "vs %",
        "unp %",
        "p",
        "q",
        "q|strata",
    ]
    widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*x) for x in rows]
    return "\n".join(lines)


def _complete(project, *partitioned: str, vectors: bool = True):
    """The project, after checking that no asset file the command reads is missing or
    damaged (results and instances of every registry entry, and the aggregates; the
    LanceDB skill vectors unless `vectors` is False)."""
    from skill_assets.app.state_health import require_complete

    require_complete(project, ("benchmark_instances", "model_results", *partitioned), vectors)
    return project


@main.command()
@project_option
@click.option("--repair", is_flag=True, help="Repair what can be repaired (see below).")
def doctor(project_dir: str, repair: bool) -> None:
    """Check every stored file of the project's state; print one line per problem.

    With --repair, damaged asset files are removed and marked not materialized (the next
    `run` re-materializes them, LLM calls coming from the cache); a damaged call cache or
    Dagster storage is set aside as `<name>.damaged-<time>`. Exits 1 while problems remain.
    """
    from skill_assets.app.runner import project_lock
    from skill_assets.app.state_health import doctor as check_state
    from skill_assets.core.registry import load_project

    project = load_project(project_dir)
    if repair:  # never repair under a running `run`
        with project_lock(project, wait=False):
            result = check_state(project, repair_state=True)
    else:
        result = check_state(project)
    for line in result["problems"]:
        click.echo(f"problem: {line}")
    for line in result["repaired"]:
        click.echo(f"repaired: {line}")
    if not result["problems"]:
        click.echo("state ok")
    elif not repair:
        sys.exit(1)


@main.command()
@project_option
def report(project_dir: str) -> None:
    """Write one self-contained HTML report under the project and print its path."""
    from skill_assets.core.registry import load_project
    from skill_assets.present.report import write_report

    project = _complete(load_project(project_dir))
    click.echo(str(write_report(project)))


@main.command()
@click.argument("question", required=False)
@project_option
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL of questions (question; optional id, options, metadata keys such as category).",
)
@click.option("--out", type=click.Path(dir_okay=False), help="With --file: write JSONL rows here.")
@click.option(
    "--meta", multiple=True, help="Metadata of QUESTION as key=value (e.g. category=law)."
)
@click.option("--json", "as_json", is_flag=True)
def route(question, project_dir, file_, out, meta, as_json) -> None:
    """Annotate QUESTION (or every question of --file) and print the model the routing
    policy chooses, and why."""
    from skill_assets.app.route_cli import compact, read_questions, route_question, route_questions
    from skill_assets.core.registry import load_project

    if (question is None) == (file_ is None):
        _fail("give either QUESTION or --file PATH")
    # Routing reads the policy, the slices and the annotator, never the LanceDB skill
    # vectors: opening them would double a cold start.
    project = _complete(load_project(project_dir), vectors=False)
    if file_:
        decisions = route_questions(project, read_questions(file_))
        if out:
            from skill_assets.app.route_cli import write_routes

            path = write_routes(decisions, out)
            click.echo(json.dumps({"routed": len(decisions), "out": str(path.resolve())}))
        else:
            for d in decisions:
                click.echo(json.dumps(compact(d), ensure_ascii=False))
        return
    metadata = {}
    for kv in meta:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            _fail(f"--meta {kv!r}: expected key=value")
        metadata[key] = value
    decision = route_question(project, question, metadata=metadata)
    if as_json:
        click.echo(json.dumps(decision, default=str))
        return
    click.echo(f"chosen model: {decision['model']}")
    for s in decision.get("skills", []):
        accs = ", ".join(f"{m}={a:.2f}" for m, a in s.get("accuracy", {}).items() if a is not None)
        click.echo(f"  skill: {s['name']} (level {s['level']}, n={s['n']}): {accs}")
    if decision.get("base"):
        base = ", ".join(f"{m}={v:.3f}" for m, v in decision["base"].items())
        click.echo(f"base (overall / metadata): {base}")
    scores = ", ".join(f"{m}={v:.3f}" for m, v in decision.get("scores", {}).items())
    click.echo(f"scores: {scores}")


@main.command()
@click.argument("insight_id")
@project_option
@click.option("--json", "as_json", is_flag=True, help="The same chain as one JSON object.")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Instances to list (those where the compared models disagree come first).",
)
def explain(insight_id: str, project_dir: str, as_json: bool, sample: int) -> None:
    """Print the evidence chain of an insight: finding and its tests, slice, instances with
    every model's answer, spans, LLM call."""
    from skill_assets.core.registry import load_project
    from skill_assets.present.lineage import explain as build
    from skill_assets.present.lineage import format_explanation, to_json

    ex = build(
        _complete(load_project(project_dir), "rationales", "skill_mentions"),
        insight_id,
        sample=sample,
    )
    click.echo(to_json(ex) if as_json else format_explanation(ex))


@main.group()
def cache() -> None:
    """Export or import the LLM call cache (JSONL), e.g. to replay a recorded run offline."""


@cache.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@project_option
def cache_export(path: str, project_dir: str) -> None:
    """Write every cached call of the project to PATH (JSONL; keys are never stored)."""
    from skill_assets.core.registry import load_project

    project = load_project(project_dir)
    from skill_assets.resources.call_cache import CallCache

    project.state_dir.mkdir(parents=True, exist_ok=True)
    target = Path(path).resolve()
    existed = target.exists()
    n = CallCache(project.call_cache_path).export_jsonl(target)  # atomic: all or nothing
    click.echo(json.dumps({"exported": n, "path": str(target), "replaced": existed}))
    if existed:
        click.echo(f"replaced the previous {target}", err=True)


@cache.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@project_option
def cache_import(path: str, project_dir: str) -> None:
    """Add the calls in PATH (from `cache export`) to the project's cache; idempotent."""
    from skill_assets.core.registry import load_project
    from skill_assets.resources.call_cache import CallCache

    project = load_project(project_dir)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        n = CallCache(project.call_cache_path).import_jsonl(path)
    except ValueError as e:
        raise RegistryError(str(e)) from None
    click.echo(json.dumps({"imported": n}))


def _check_port_free(host: str, port: int) -> None:
    """Fail in one line before `dagster dev` starts its daemon when the port is taken
    (the webserver alone would die with Errno 98 and leave the daemon running)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise RegistryError(f"--host {host!r}: cannot resolve ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the webserver does
        try:
            sock.bind(addr)
        except OSError as e:
            raise RegistryError(
                f"port {port} on {host} is not available ({e.strerror}); "
                "stop what uses it or pass another --port"
            ) from None


@main.command()
@project_option
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(project_dir: str, port: int, host: str) -> None:
    """Start `dagster dev` (UI + daemon) on the project's own instance.

    The same as `dagster dev` from the repository root with DAGSTER_HOME and
    SKILL_SLICES_PROJECT set to the project: the input sensor and the automation sensor run,
    so edited inputs refresh their dependants with no CLI involved.
    """
    import signal

    from skill_assets.app.runner import prepare_dagster_home
    from skill_assets.core.registry import load_project

    project = load_project(project_dir)
    _check_port_free(host, port)
    prepare_dagster_home(project)
    os.environ["SKILL_SLICES_PROJECT"] = str(project.root)
    # `dagster dev` ignores SIGINT when started in the background unless it is reset.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    exe = Path(sys.executable).parent / "dagster"
    os.execv(
        str(exe),
        [
            str(exe),
            "dev",
            "-m",
            "skill_assets.defs.definitions",
            "--host",
            host,
            "--port",
            str(port),
        ],
    )


if __name__ == "__main__":
    main()
