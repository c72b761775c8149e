"""The asset graph. Assets stay thin: they load, call the pure stage functions, report."""

import hashlib
import time

import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    DataVersion,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
    multi_asset,
)

from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import RESULTS, conform
from skill_assets.defs.conditions import sync_condition
from skill_assets.defs.partitions import benchmark_model_partitions, benchmark_partitions
from skill_assets.defs.sources import benchmark_file, results_file, skills_source
from skill_assets.ingest.importers import load_results
from skill_assets.ingest.instances import load_benchmark
from skill_assets.present.safe_markdown import md_code, md_text, safe_md
from skill_assets.resources.project import ProjectResource

# One condition for every asset: materialize what Dagster reports as not fresh (see
# conditions.py). `skill-slices run` evaluates the same conditions.
SYNC = sync_condition()


def _preview(df: pl.DataFrame, n: int = 10) -> MetadataValue:
    """A Markdown table of the first rows: cells shortened and escaped (data never renders
    as an image, link or HTML in the UI)."""
    if df.height == 0:
        return MetadataValue.md("*(empty)*")
    small = df.head(n).with_columns(
        [pl.col(c).cast(pl.String).str.slice(0, 80) for c, t in df.schema.items() if t == pl.String]
    )
    cols = [c for c, t in small.schema.items() if not isinstance(t, (pl.List, pl.Struct))]
    lines = [
        "| " + " | ".join(md_text(c, 80) for c in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in small.select(cols).iter_rows():
        lines.append("| " + " | ".join(md_text(v, 80) for v in row) + " |")
    return safe_md("\n".join(lines))


def _out(df: pl.DataFrame, output_name: str | None = None, **metadata) -> Output:
    """The asset's value and metadata, with its content hash as data version.

    Dagster compares data versions to decide what is stale: a dependant is stale exactly
    when an input's content changed (a re-run that reproduces the same frame leaves its
    dependants fresh; a weekly live re-evaluation with new answers does not)."""
    meta = {"rows": df.height, "preview": _preview(df), **metadata}
    kwargs = {"output_name": output_name} if output_name else {}
    return Output(df, data_version=content_version(df), metadata=meta, **kwargs)


def content_version(df: pl.DataFrame) -> DataVersion:
    """sha256 of the frame's rows as NDJSON (independent of chunk layout; nested ok)."""
    h = hashlib.sha256(",".join(f"{k}:{v}" for k, v in df.schema.items()).encode())
    h.update(df.write_ndjson().encode())
    return DataVersion(h.hexdigest()[:32])


def _concat(parts, schema: dict | None = None) -> pl.DataFrame:
    """All partitions of an upstream asset as one frame.

    Dagster's UPath IO manager hands over a bare DataFrame when exactly one
    partition exists and a dict otherwise; inputs are left unannotated for that.
    """
    if isinstance(parts, pl.DataFrame):
        parts = {"_": parts}
    frames = [p for _, p in sorted((parts or {}).items()) if p is not None and p.height]
    if not frames:
        return pl.DataFrame(schema=schema) if schema else pl.DataFrame()
    return pl.concat(frames, how="vertical_relaxed")


def _all_failed(what: str, n: int, first_error) -> RegistryError:
    """The one-line error of an asset whose every LLM call failed (nothing is stored, so
    nothing downstream runs on an empty frame; the next run asks again)."""
    return RegistryError(
        f"{what}: all {n} LLM calls failed (first error: {str(first_error)[:200]}); check the"
        " entry's base_url, model and the key in its api_key_env variable, then run again"
        " (failed calls are not cached)"
    )


def _llm_meta(stats: dict) -> dict:
    return {
        "llm_calls_made": stats.get("made", 0),
        "llm_calls_cached": stats.get("cached", 0),
        "llm_calls_failed": stats.get("failed", 0),
        "llm_calls_by_purpose": MetadataValue.json(stats.get("by_purpose", {})),
        "llm_cost_usd": float(stats.get("cost_usd", 0.0)),
        "llm_input_tokens": stats.get("input_tokens", 0),
        "llm_output_tokens": stats.get("output_tokens", 0),
    }


@asset(
    partitions_def=benchmark_partitions,
    group_name="inputs",
    deps=[benchmark_file],
    automation_condition=SYNC,
    code_version="1",
)
def benchmark_instances(context: AssetExecutionContext, project: ProjectResource):
    """Validated instances of one benchmark (instance_id, question, options, answer, metadata)."""
    proj = project.project
    name = context.partition_key
    df = load_benchmark(proj, name)
    mc = df.filter(pl.col("options").is_not_null()).height
    return _out(
        df,
        instances=df.height,
        multiple_choice=mc,
        source=str(proj.benchmark_path(name)),
    )


@asset(
    partitions_def=benchmark_model_partitions,
    group_name="inputs",
    ins={
        "benchmark_instances": AssetIn(
            partition_mapping=MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="benchmark"
            )
        )
    },
    deps=[
        AssetDep(
            results_file,
            partition_mapping=MultiToSingleDimensionPartitionMapping(
                partition_dimension_name="model"
            ),
        )
    ],
    automation_condition=SYNC,
    code_version="1",
)
def model_results(
    context: AssetExecutionContext, project: ProjectResource, benchmark_instances: pl.DataFrame
):
    """Per-instance results of one model on one benchmark: imported from a file or run live."""
    proj = project.project
    keys = context.partition_key.keys_by_dimension
    model = keys["model"]
    entry = proj.model(model)
    stats: dict = {}
    extra: dict = {}
    failures = 0
    path = proj.results_path(model)
    if path is None:
        from skill_assets.analysis.validation import merge_stats
        from skill_assets.ingest.live import run_live_evaluation

        # A scheduled re-evaluation asks the provider again instead of reading the cache.
        epoch = context.run.tags.get("skill_slices/fresh_live")
        if epoch:
            proj.set_live_epoch(model, epoch)
        client = project.llm_client(entry, cache_epoch=proj.live_epoch(model))
        judge = project.llm_client(proj.registry.judge) if proj.registry.judge else None
        df, fail_df, stats = run_live_evaluation(
            benchmark_instances,
            entry,
            client,
            log=context.log.info,
            judge_client=judge,
            batch_state_dir=proj.state_dir / "batches",
        )
        failures = fail_df.height
        if failures and failures == benchmark_instances.height:
            raise _all_failed(
                f"model_results [{context.partition_key}]", failures, fail_df["error"][0]
            )
        judged = stats.get("judge") or {}
        if judge is not None:  # the judge's calls and cost count toward this asset's totals
            stats = merge_stats(stats, judge.stats)
        extra = {
            "judged": judged.get("judged", 0),
            "judge_overturned": judged.get("overturned", 0),
            "judge_failed": judged.get("failed", 0),
        }
    else:
        df = load_results(
            path, model, keys["benchmark"], benchmark_instances, entry.format, entry.options
        )
    df = conform(df, RESULTS)
    acc = float(df["correct"].mean()) if df.height else None
    return _out(
        df,
        accuracy=acc,
        coverage=df.height / max(benchmark_instances.height, 1),
        failures=failures,
        **extra,
        **_llm_meta(stats),
    )


@multi_asset(
    partitions_def=benchmark_partitions,
    group_name="skills",
    outs={
        "rationales": AssetOut(code_version="2", automation_condition=SYNC),
        "skill_mentions": AssetOut(code_version="2", automation_condition=SYNC),
    },
    deps=[skills_source],
)
def annotate(
    context: AssetExecutionContext, project: ProjectResource, benchmark_instances: pl.DataFrame
):
    """One rationale per instance (taxonomy or LLM annotator) and its skill mentions."""
    from skill_assets.annotate.dispatch import annotate_instances
    from skill_assets.annotate.imported_skills import import_benchmark_skills

    proj = project.project
    name = context.partition_key
    t0 = time.perf_counter()
    imported = import_benchmark_skills(proj, name, benchmark_instances)
    if imported is not None:
        rationales, mentions = imported
        stats: dict = {}
        context.log.info(f"{name}: skills imported ({mentions['uid'].n_unique()} instances)")
    else:
        rationales, mentions, stats = annotate_instances(
            benchmark_instances, proj, project, log=context.log.info
        )
    elapsed = time.perf_counter() - t0
    errors = rationales.filter(pl.col("error").is_not_null()).height
    parse_rate = 1 - errors / max(rationales.height, 1)
    # Calls that never returned are retried by the next run; a returned rationale that
    # does not parse is kept as it is (asking again would return the same text).
    failed_calls = rationales.filter(
        pl.col("error").is_not_null() & ~pl.col("error").str.starts_with("parse:")
    )
    failure_table = (
        failed_calls.group_by(pl.col("error").str.extract(r"^(\w+)").alias("error_type"))
        .len()
        .sort("len", descending=True)
    )
    if rationales.height and failed_calls.height == rationales.height:
        raise _all_failed(f"rationales [{name}]", failed_calls.height, failed_calls["error"][0])
    common = {"seconds": round(elapsed, 2), **_llm_meta(stats)}
    yield _out(
        rationales,
        output_name="rationales",
        parse_rate=parse_rate,
        parse_errors=errors - failed_calls.height,
        failures=failed_calls.height,
        failures_by_type=_preview(failure_table),
        annotator=rationales["annotator_model"][0] if rationales.height else "",
        instances_without_skills=rationales.filter(pl.col("n_steps") == 0).height,
        **common,
    )
    top = (
        mentions.filter(pl.col("level") == 0)
        .group_by("skill_name")
        .agg(pl.col("uid").n_unique().alias("instances"))
        .sort("instances", descending=True)
    )
    yield _out(
        mentions,
        output_name="skill_mentions",
        distinct_skill_names=mentions["skill_name"].n_unique(),
        top_level_skills=_preview(top, 20),
    )


@asset(
    group_name="skills",
    automation_condition=SYNC,
    code_version="1",
    deps=["embedder_settings", "benchmark_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/skill_embeddings",
)
def skill_embeddings(context: AssetExecutionContext, project: ProjectResource, skill_mentions):
    """Distinct skill names with counts; their vectors live in LanceDB (only new names embedded)."""
    from skill_assets.analysis.slices import distinct_names

    proj = project.project
    mentions = _concat(skill_mentions)
    names = distinct_names(mentions)
    store = project.vector_store()
    embedder = project.embedder()
    _, new = store.vectors_for(names["skill_name"].unique().sort().to_list(), embedder)
    context.log.info(f"{names.height} distinct skill names, {new} newly embedded")
    return _out(
        names,
        distinct_names=names.height,
        newly_embedded=new,
        embedder=embedder.name,
        lancedb=str(proj.lancedb_dir),
    )


@asset(
    group_name="skills",
    automation_condition=SYNC,
    code_version="3",
    deps=["embedder_settings", "slices_settings", "benchmark_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/skill_slices",
)
def skill_slices(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_mentions,
    skill_embeddings: pl.DataFrame,
):
    """Skill slices: clustered skill names per level, with member instances and parent links."""
    from skill_assets.analysis.slices import build_slices, default_threshold

    proj = project.project
    mentions = _concat(skill_mentions)
    embedder = project.embedder()
    names = skill_embeddings["skill_name"].unique().sort().to_list()
    vecs, _ = project.vector_store().vectors_for(names, embedder)
    threshold = proj.registry.slices.threshold or default_threshold(embedder.name)
    slices, _mapping = build_slices(mentions, dict(zip(names, vecs, strict=True)), threshold)
    big = slices.filter(pl.col("n") >= proj.registry.slices.min_slice_size)
    return _out(
        slices,
        slices=slices.height,
        slices_at_min_size=big.height,
        levels=MetadataValue.json(
            {str(k): v for k, v in slices.group_by("level").len().sort("level").iter_rows()}
        ),
        threshold=threshold,
    )


@asset(
    group_name="insights",
    automation_condition=SYNC,
    code_version="3",
    deps=["slices_settings", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/slice_accuracy",
)
def slice_accuracy(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
):
    """Accuracy of every model on every slice, with Wilson 95% intervals."""
    from skill_assets.analysis.accuracy import overall_accuracy
    from skill_assets.analysis.accuracy import slice_accuracy as compute
    from skill_assets.present.plots import accuracy_heatmap, markdown_image

    proj = project.project
    results = _concat(model_results, RESULTS)
    df = compute(results, skill_slices, min_slice_size=proj.registry.slices.min_slice_size)
    overall = overall_accuracy(results)
    heat = markdown_image(accuracy_heatmap(df), "accuracy heat map (skills x models)")
    return _out(
        df,
        overall_accuracy=_preview(overall),
        models=results["model"].n_unique() if results.height else 0,
        small_slices=df.filter(pl.col("small")).height if df.height else 0,
        accuracy_heatmap=safe_md(heat or "*(nothing to plot)*"),
    )


@asset(
    group_name="insights",
    automation_condition=SYNC,
    code_version="4",
    deps=["slices_settings", "insights_settings", "benchmark_names", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/skill_insights",
)
def skill_insights(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    slice_accuracy: pl.DataFrame,
    model_results,
    skill_mentions,
    rationales,
    benchmark_instances,
):
    """Tested findings: per-model strengths/weaknesses and pairwise differences with q-values.

    Each finding is tested on the slice and against the rest of its benchmark
    (and metadata) strata; see ``skill_assets.analysis.insights``.
    """
    from dagster import TableColumn, TableRecord, TableSchema

    from skill_assets.analysis.insights import headline
    from skill_assets.analysis.insights import skill_insights as compute
    from skill_assets.present.lineage import lineage_markdown
    from skill_assets.present.plots import markdown_image, strengths_plot
    from skill_assets.present.report import findings_markdown, findings_records

    proj = project.project
    results = _concat(model_results, RESULTS)
    reg = proj.registry
    from skill_assets.analysis.insights import instance_strata
    from skill_assets.core.registry import RegistryError

    columns = reg.insights.strata_columns(reg.routing)
    instances = _concat(benchmark_instances)
    try:
        strata = instance_strata(results, instances, columns)
    except ValueError as e:
        if reg.insights.strata is not None:  # named explicitly: a misspelling must not pass
            raise RegistryError(f"{proj.registry_path}: {e}") from None
        context.log.warning(
            f"routing.metadata_column not in the instances; strata: benchmark ({e})"
        )
        columns = []
        strata = instance_strata(results, instances, columns)
    df = compute(
        results,
        skill_slices,
        min_slice_size=reg.insights.min_n or reg.slices.min_slice_size,
        q_level=reg.insights.q_level,
        strata=strata,
        strata_label="category" if columns else "benchmark",
        merge_overlap=reg.insights.merge_overlap,
    )
    significant = df.filter(pl.col("significant")).height if df.height else 0
    skill_level = df.filter(pl.col("level_of_finding") == "skill").height if df.height else 0
    records = findings_records(df, limit=25)
    columns = {  # the metadata table's schema
        k: "float" if k == "effect_pts" else "int" if k in ("level", "n") else "string"
        for k in (records[0] if records else {"kind": None, "model": None, "skill": None})
    }
    models = sorted(slice_accuracy["model"].unique().to_list()) if slice_accuracy.height else []
    pictures = []
    for m in models[:12]:  # every model is in the HTML report; metadata stays bounded
        img = markdown_image(
            strengths_plot(df, slice_accuracy, m), f"{m}: strengths and weaknesses"
        )
        if img:
            pictures.append(f"**{m}**\n\n{img}")
    return _out(
        df,
        findings=df.height,
        significant=significant,
        skill_level_findings=skill_level,
        strata=MetadataValue.json(["benchmark", *columns]),
        lineage=safe_md(
            lineage_markdown(df, skill_slices, _concat(skill_mentions), _concat(rationales))
        ),
        q_level=reg.insights.q_level,
        min_slice_size=reg.slices.min_slice_size,
        top_findings=MetadataValue.table(
            records=[TableRecord(r) for r in records],
            schema=TableSchema(columns=[TableColumn(k, t) for k, t in columns.items()]),
        ),
        findings_table=safe_md(findings_markdown(df, limit=25)),
        strengths_weaknesses=safe_md("\n\n".join(pictures) or "*(nothing to plot)*"),
        headline=safe_md(md_code(headline(df))),
    )


def _policy_metadata(proj) -> list[str] | None:
    """Metadata columns of the policy: as registered, else (not for the paper rule) the
    metadata-router column, else the benchmark when there are several — the middle level
    of the hierarchical rule's global -> metadata -> skill shrinkage."""
    r = proj.registry.routing
    if r.metadata_slices is not None or r.rule == "paper":
        return r.metadata_slices
    if r.metadata_column:
        return [r.metadata_column]
    return ["benchmark"] if len(proj.registry.benchmarks) > 1 else None


def _routing_options(proj, results: pl.DataFrame) -> dict:
    """Registry routing settings as keyword arguments of fit_policy / evaluate_routing."""
    from skill_assets.routing.cost import model_costs

    r = proj.registry.routing
    return {
        "rule": r.rule,
        "metadata_slices": _policy_metadata(proj),
        "costs": model_costs({m.name: m.cost_per_call for m in proj.registry.models}, results),
        "cost_lambda": r.cost_lambda,
        "levels": r.levels,
        "weighting": r.weighting,
        "shrink": r.shrink,
        "min_slice_size": proj.registry.slices.min_slice_size,
    }


@asset(
    group_name="routing",
    automation_condition=SYNC,
    code_version="3",
    deps=["slices_settings", "routing_settings", "benchmark_names", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/routing_policy",
)
def routing_policy(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
    benchmark_instances,
):
    """Per-skill model scores and the decision rule; also saved as JSON for use outside Dagster."""
    from skill_assets.routing.policy import fit_policy, save_policy

    proj = project.project
    results = _concat(model_results, RESULTS)
    instances = _concat(benchmark_instances)
    policy = fit_policy(results, skill_slices, instances, **_routing_options(proj, results))
    path = proj.state_dir / "routing_policy.json"
    save_policy(policy, path)
    rows = [
        {
            "skill_id": sid,
            "name": s.name,
            "level": s.level,
            "n": s.n,
            "model": m,
            "accuracy": v.accuracy,
        }
        for sid, s in policy.skills.items()
        for m, v in s.models.items()
    ]
    df = pl.DataFrame(
        rows,
        schema={
            "skill_id": pl.String,
            "name": pl.String,
            "level": pl.Int64,
            "n": pl.Int64,
            "model": pl.String,
            "accuracy": pl.Float64,
        },
    )
    return _out(
        df,
        policy_file=MetadataValue.path(str(path)),
        default_model=str(policy.default_model),
        skills=len(policy.skills),
    )


@asset(
    group_name="routing",
    automation_condition=SYNC,
    code_version="3",
    deps=[
        "embedder_settings",
        "slices_settings",
        "routing_settings",
        "benchmark_names",
        "model_names",
    ],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/routing_evaluation",
)
def routing_evaluation(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    routing_policy: pl.DataFrame,
    model_results,
    benchmark_instances,
):
    """Held-out accuracy of the skill policy against every baseline router."""
    from skill_assets.present.plots import markdown_image, routing_bars
    from skill_assets.routing.evaluation import evaluate_routing

    proj = project.project
    r = proj.registry.routing
    results = _concat(model_results, RESULTS)
    instances = _concat(benchmark_instances)
    vectors, order = _question_vectors(project, instances)
    df = evaluate_routing(
        results,
        skill_slices,
        instances,
        metadata_column=r.metadata_column,
        folds=r.folds,
        question_vectors=vectors,
        uid_order=order,
        knn_k=r.knn_k,
        baselines=r.baselines,
        **_routing_options(proj, results),
    )
    bars = markdown_image(routing_bars(df), "routing: held-out accuracy (leave-one-out)")
    return _out(
        df,
        table=_preview(df, 30),
        routing_bars=safe_md(bars or "*(nothing to plot)*"),
    )


def _question_vectors(project: ProjectResource, instances: pl.DataFrame):
    """Question embeddings for the kNN baseline: the vectors the taxonomy annotator stored
    (the same text, the project's question-vector cache); only unseen questions are embedded."""
    from skill_assets.resources.question_vectors import question_vectors

    return question_vectors(instances, project.embedder(), project.question_vectors())


@asset(
    group_name="insights",
    automation_condition=SYNC,
    code_version="1",
    deps=["slices_settings", "insights_settings", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/model_evolution",
)
def model_evolution(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
):
    """Registered version pairs (`compare: [[old, new]]`): skills that improved/regressed most."""
    from skill_assets.analysis.evolution import evolution_summary
    from skill_assets.analysis.evolution import model_evolution as compute
    from skill_assets.present.plots import evolution_bars, markdown_image

    proj = project.project
    reg = proj.registry
    results = _concat(model_results, RESULTS)
    df = compute(
        results,
        skill_slices,
        reg.compare,
        min_slice_size=reg.slices.min_slice_size,
        q_level=reg.insights.q_level,
    )
    bars = markdown_image(evolution_bars(df), "model evolution: most improved and regressed skills")
    return _out(
        df,
        pairs=MetadataValue.json([list(p) for p in reg.compare]),
        significant=df.filter(pl.col("significant")).height if df.height else 0,
        summary=safe_md(md_code(evolution_summary(df))),
        evolution_bars=safe_md(bars or "*(no registered pair; add `compare: [[old, new]]`)*"),
    )


@asset(
    group_name="insights",
    automation_condition=SYNC,
    code_version="1",
    deps=["benchmark_names", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/dataset_view",
)
def dataset_view(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    model_results,
    benchmark_instances,
):
    """Per benchmark its share of each top-level skill; per model where its accuracy comes from."""
    from skill_assets.analysis.evolution import dataset_view as compute
    from skill_assets.present.plots import dataset_plot, markdown_image

    results = _concat(model_results, RESULTS)
    instances = _concat(benchmark_instances)
    df = compute(results, skill_slices, instances if instances.height else None)
    picture = markdown_image(dataset_plot(df), "dataset view")
    mix = df.filter(pl.col("view") == "benchmark_mix").drop(
        "model", "weight", "accuracy", "contribution", "other_contribution"
    )
    by_skill = df.filter(pl.col("view") == "accuracy_by_skill").drop(
        "benchmark", "share_of_benchmark", "share_of_skill"
    )
    return _out(
        df,
        benchmark_mix=_preview(mix, 30),
        accuracy_by_skill=_preview(by_skill, 30),
        dataset_plot=safe_md(picture or "*(nothing to plot)*"),
    )


def _probe_models(proj) -> list:
    """Models the probes go to: `validation.probe_models`, else every live model."""
    names = proj.registry.validation.probe_models
    if names is not None:
        return [proj.model(n) for n in names]
    return [m for m in proj.registry.models if m.live]


@asset(
    group_name="validation",
    automation_condition=SYNC,
    code_version="1",
    deps=["validation_settings", "benchmark_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/skill_verification",
)
def skill_verification(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_mentions,
    rationales,
    benchmark_instances,
    skill_embeddings: pl.DataFrame,
):
    """Paper §2: a verifier LLM judges listed skills mixed with sampled negatives."""
    from skill_assets.analysis.validation import (
        VERIFICATION,
        confusion,
        confusion_markdown,
        relevance_rates,
        run_verification,
    )

    proj = project.project
    settings = proj.registry.validation
    if settings.verifier is None:
        return _out(
            pl.DataFrame(schema=VERIFICATION),
            status="skipped: set validation.verifier in the registry",
        )
    mentions = _concat(skill_mentions)
    names = skill_embeddings["skill_name"].unique().sort().to_list()
    vecs, _ = project.vector_store().vectors_for(names, project.embedder())
    client = project.llm_client(settings.verifier)
    df = run_verification(
        mentions,
        _concat(rationales),
        _concat(benchmark_instances),
        dict(zip(names, vecs, strict=True)),
        client,
        settings,
        log=context.log.info,
    )
    counts = confusion(df)
    listed_rate, negative_rate = relevance_rates(counts)
    return _out(
        df,
        status="verified",
        verifier=f"{settings.verifier.provider}:{settings.verifier.model}",
        instances=df["uid"].n_unique() if df.height else 0,
        listed_relevance=listed_rate,
        negative_relevance=negative_rate,
        failed_instances=df.filter(pl.col("error").is_not_null())["uid"].n_unique(),
        confusion=MetadataValue.json(counts),
        confusion_matrix=safe_md(confusion_markdown(df)),
        **_llm_meta(client.stats),
    )


@asset(
    group_name="validation",
    automation_condition=SYNC,
    code_version="1",
    deps=["validation_settings", "benchmark_names", "model_names"],
    # Never two runs on the same aggregate at once, whatever launched them.
    pool="skill_slices/probe_consistency",
)
def probe_consistency(
    context: AssetExecutionContext,
    project: ProjectResource,
    skill_slices: pl.DataFrame,
    slice_accuracy: pl.DataFrame,
    skill_mentions,
    benchmark_instances,
    model_results,
):
    """Paper §4: claims and probe questions from the rationale spans of the lowest-, median-
    and highest-accuracy slices; the share of answers inconsistent with the claim."""
    from skill_assets.analysis.validation import (
        PROBES,
        inconsistency_table,
        merge_stats,
        run_probing,
    )

    proj = project.project
    settings = proj.registry.validation
    models = _probe_models(proj)
    if settings.verifier is None or not models:
        why = "set validation.verifier" if settings.verifier is None else "no live model to probe"
        return _out(pl.DataFrame(schema=PROBES), status=f"skipped: {why}")
    verifier = project.llm_client(settings.verifier)
    clients = {m.name: project.llm_client(m, cache_epoch=proj.live_epoch(m.name)) for m in models}
    df = run_probing(
        skill_slices,
        slice_accuracy,
        _concat(skill_mentions),
        _concat(benchmark_instances),
        _concat(model_results, RESULTS),
        verifier,
        clients,
        settings.probe_instances_per_slice,
        settings.seed,
        log=context.log.info,
    )
    table = inconsistency_table(df)
    stats = merge_stats(verifier.stats, *(c.stats for c in clients.values()))
    return _out(
        df,
        status="probed",
        models=MetadataValue.json(sorted(clients)),
        inconsistency=_preview(table, 30),
        failed=df.filter(pl.col("error").is_not_null()).height,
        **_llm_meta(stats),
    )


ALL_ASSETS = [
    benchmark_instances,
    model_results,
    annotate,
    skill_embeddings,
    skill_slices,
    slice_accuracy,
    skill_insights,
    routing_policy,
    routing_evaluation,
    model_evolution,
    dataset_view,
    skill_verification,
    probe_consistency,
]
