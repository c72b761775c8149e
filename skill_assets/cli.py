"""The `skill-slices` command line."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from skill_assets.registry import RegistryError

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


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns input errors into one clear line and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RegistryError as e:
            _fail(str(e))


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
    from skill_assets.runner import run_project

    summary = run_project(
        project_dir,
        progress=not quiet and sys.stderr.isatty(),
        wait=not no_wait,
        log=lambda m: click.echo(m, err=True),
        executor=executor,
    )
    print_run_summary(project_dir, summary, quiet)


def print_run_summary(project_dir: str, summary: dict, quiet: bool = False) -> None:
    """The terminal summary of a run: headline, routing table, failed checks, then JSON."""
    from skill_assets.registry import load_project
    from skill_assets.runner import read_asset

    if not quiet:
        project = load_project(project_dir)
        _print_headline(project, read_asset)
        for name, info in summary.get("checks_failed", {}).items():
            details = ", ".join(f"{k}={v}" for k, v in info.items() if k != "severity")
            click.echo(f"check {info.get('severity', 'ERROR').lower()}: {name} ({details})")
    click.echo(json.dumps(summary, default=str))


def _print_headline(project, read_asset) -> None:
    from skill_assets.insights import headline

    ins = read_asset(project, "skill_insights")
    ev = read_asset(project, "routing_evaluation")
    if ins is not None:
        click.echo("== headline insights ==")
        click.echo(headline(ins))
    click.echo("")
    if ev is not None and ev.height:
        click.echo("== routing (held-out accuracy) ==")
        click.echo(_format_routing(ev))


def _format_routing(ev) -> str:
    rows = ev.sort(["scheme", "accuracy"], descending=[False, True])
    lines = [f"{'router':<22} {'scheme':<7} {'accuracy':>8}  {'95% CI':<17} {'n':>6}"]
    for r in rows.iter_rows(named=True):
        ci = (
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if r.get("ci_low") is not None and r.get("ci_high") is not None
            else ""
        )
        lines.append(
            f"{r['router']:<22} {r['scheme']:<7} {r['accuracy']:>8.3f}  {ci:<17} {r['n']:>6}"
        )
    return "\n".join(lines)


@main.command()
@project_option
@click.option("--model", "model_name", required=True, help="A model entry of the registry.")
def evaluate(project_dir: str, model_name: str) -> None:
    """Run a live model on every benchmark and write its results file."""
    import polars as pl
    from tqdm import tqdm

    from resources.project import ProjectResource
    from skill_assets.live import make_judge_client, run_live_evaluation
    from skill_assets.registry import load_project
    from skill_assets.runner import preflight

    project = load_project(project_dir)
    entry = project.model(model_name)
    if entry.provider is None:
        raise RegistryError(
            f"{project.registry_path}: model {model_name!r} has no 'provider'; nothing to run"
        )
    instances = preflight(project)
    resource = ProjectResource(project_dir=str(project.root))
    client = resource.llm_client(entry)
    judge = project.registry.judge
    judge_client = make_judge_client(judge, resource.call_cache()) if judge else None
    judged = {"requested": 0, "judged": 0, "overturned": 0, "failed": 0}
    batches: list[str] = []
    by_batch = 0  # answers the provider batch API produced (cache hits in client.stats)
    frames, failed = [], 0
    for name, df in instances.items():
        with tqdm(total=df.height, desc=f"{model_name} on {name}", unit="q") as bar:
            last = [0]

            def progress(done, total=None, bar=bar, last=last):
                bar.update(done - last[0])
                last[0] = done

            res, fails, run_stats = run_live_evaluation(
                df,
                entry,
                client,
                log=lambda m: None,
                progress=progress,
                judge_client=judge_client,
                batch_state_dir=project.state_dir / "batches",
            )
        for k in judged:
            judged[k] += run_stats.get("judge", {}).get(k, 0)
        batches += run_stats.get("batch", {}).get("batches", [])
        by_batch += run_stats.get("batch", {}).get("written", 0)
        frames.append(res)
        failed += fails.height
    out = pl.concat(frames, how="vertical_relaxed")
    target = project.results_target(model_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    cols = ["benchmark", "instance_id", "model", "response", "parsed_answer", "correct"]
    out.select(cols).write_ndjson(tmp)
    tmp.replace(target)
    stats = client.stats
    summary = {
        "model": model_name,
        "results": str(target),
        "instances": out.height,
        "failed": failed,
        "accuracy": round(float(out["correct"].mean()), 4) if out.height else None,
        "llm_calls": {
            "made": stats.get("made", 0) + by_batch,
            "cached": stats.get("cached", 0) - by_batch,
        },
    }
    if judge_client is not None:
        js = judge_client.stats
        summary["judge"] = judged | {"made": js.get("made", 0), "cached": js.get("cached", 0)}
    if entry.batch:
        summary["batches"] = batches
        summary["llm_calls"]["by_batch"] = by_batch
    click.echo(json.dumps(summary))


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

    from skill_assets.insights import ranked_findings
    from skill_assets.registry import load_project
    from skill_assets.runner import read_asset

    project = load_project(project_dir)
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
    df = ranked_findings(df).head(top) if df.height else df
    if as_json:
        click.echo(json.dumps(df.to_dicts(), default=str))
        return
    if df.height == 0:
        click.echo("no findings (try --all, or a lower slices.min_slice_size)")
        return
    if note:
        click.echo(note)
    click.echo(_format_findings(df))
    click.echo(
        f"effect: accuracy points vs the other model (pairwise) or the mean of the others "
        f"(strength/weakness); CI: Wilson 95%; p: exact McNemar; q: Benjamini-Hochberg; "
        f"* = q < {q_level}"
    )


def _format_findings(df) -> str:
    def pct(v):
        return "   -" if v is None else f"{100 * v:4.1f}"

    def pv(v):
        return "-" if v is None else f"{v:.2g}"

    header = (
        f"{'kind':<9} {'model':<24} {'vs':<24} {'skill':<38} {'lvl':>3} {'effect':>7} "
        f"{'n':>5} {'acc % [95% CI]':<19} {'vs %':>5} {'p':>8} {'q':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in df.iter_rows(named=True):
        ci = f"{pct(r['accuracy'])} [{pct(r['ci_low'])},{pct(r['ci_high'])}]"
        other = r.get("other_model") or "mean of others"
        star = "*" if r.get("significant") else " "
        lines.append(
            f"{r['kind']:<9} {str(r['model'])[:24]:<24} {str(other)[:24]:<24} "
            f"{str(r['name'])[:38]:<38} {r['level']:>3} {100 * r['effect']:>+6.1f} "
            f"{r['n']:>5} {ci:<19} {pct(r['other_accuracy']):>5} {pv(r['p']):>8} "
            f"{pv(r['q']):>7}{star}"
        )
    return "\n".join(lines)


@main.command()
@project_option
def report(project_dir: str) -> None:
    """Write one self-contained HTML report under the project and print its path."""
    from skill_assets.registry import load_project
    from skill_assets.report import write_report

    project = load_project(project_dir)
    click.echo(str(write_report(project)))


@main.command()
@click.argument("question")
@project_option
@click.option("--json", "as_json", is_flag=True)
def route(question: str, project_dir: str, as_json: bool) -> None:
    """Annotate QUESTION and print the model the routing policy chooses, and why."""
    from skill_assets.registry import load_project
    from skill_assets.route_cli import route_question

    project = load_project(project_dir)
    decision = route_question(project, question)
    if as_json:
        click.echo(json.dumps(decision, default=str))
        return
    click.echo(f"chosen model: {decision['model']}")
    for s in decision.get("skills", []):
        accs = ", ".join(f"{m}={a:.2f}" for m, a in s.get("accuracy", {}).items())
        click.echo(f"  skill: {s['name']} (level {s['level']}, n={s['n']}): {accs}")
    scores = ", ".join(f"{m}={v:.3f}" for m, v in decision.get("scores", {}).items())
    click.echo(f"scores: {scores}")


@main.command()
@click.argument("insight_id")
@project_option
@click.option("--json", "as_json", is_flag=True, help="The same chain as one JSON object.")
def explain(insight_id: str, project_dir: str, as_json: bool) -> None:
    """Print the evidence chain of an insight: finding, slice, instances, spans, LLM call."""
    from skill_assets.lineage import explain as build
    from skill_assets.lineage import format_explanation, to_json
    from skill_assets.registry import load_project

    ex = build(load_project(project_dir), insight_id)
    click.echo(to_json(ex) if as_json else format_explanation(ex))


@main.group()
def cache() -> None:
    """Export or import the LLM call cache (JSONL), e.g. to replay a recorded run offline."""


@cache.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@project_option
def cache_export(path: str, project_dir: str) -> None:
    """Write every cached call of the project to PATH (JSONL; keys are never stored)."""
    from skill_assets.registry import load_project

    project = load_project(project_dir)
    from resources.call_cache import CallCache

    project.state_dir.mkdir(parents=True, exist_ok=True)
    n = CallCache(project.call_cache_path).export_jsonl(path)
    click.echo(json.dumps({"exported": n, "path": str(Path(path).resolve())}))


@cache.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@project_option
def cache_import(path: str, project_dir: str) -> None:
    """Add the calls in PATH (from `cache export`) to the project's cache; idempotent."""
    from resources.call_cache import CallCache
    from skill_assets.registry import load_project

    project = load_project(project_dir)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        n = CallCache(project.call_cache_path).import_jsonl(path)
    except ValueError as e:
        raise RegistryError(str(e)) from None
    click.echo(json.dumps({"imported": n}))


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

    from skill_assets.registry import load_project
    from skill_assets.runner import prepare_dagster_home

    project = load_project(project_dir)
    prepare_dagster_home(project)
    os.environ["SKILL_SLICES_PROJECT"] = str(project.root)
    defs_file = Path(__file__).resolve().parent.parent / "definitions.py"
    # `dagster dev` ignores SIGINT when started in the background unless it is reset.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    exe = Path(sys.executable).parent / "dagster"
    os.execv(
        str(exe),
        [str(exe), "dev", "-f", str(defs_file), "--host", host, "--port", str(port)],
    )


if __name__ == "__main__":
    main()
