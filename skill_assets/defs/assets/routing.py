"""Group routing: the per-skill routing policy and its held-out evaluation."""

import polars as pl
from dagster import AssetExecutionContext, MetadataValue

from skill_assets.core.schemas import RESULTS
from skill_assets.defs.assets._common import aggregate_asset, concat, output, preview
from skill_assets.present.safe_markdown import safe_md
from skill_assets.resources.project import ProjectResource


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


@aggregate_asset(
    group_name="routing",
    code_version="3",
    deps=["slices_settings", "routing_settings", "benchmark_names", "model_names"],
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
    results = concat(model_results, RESULTS)
    instances = concat(benchmark_instances)
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
    return output(
        df,
        policy_file=MetadataValue.path(str(path)),
        default_model=str(policy.default_model),
        skills=len(policy.skills),
    )


@aggregate_asset(
    group_name="routing",
    code_version="3",
    deps=[
        "embedder_settings",
        "slices_settings",
        "routing_settings",
        "benchmark_names",
        "model_names",
    ],
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
    results = concat(model_results, RESULTS)
    instances = concat(benchmark_instances)
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
    return output(
        df,
        table=preview(df, 30),
        routing_bars=safe_md(bars or "*(nothing to plot)*"),
    )


def _question_vectors(project: ProjectResource, instances: pl.DataFrame):
    """Question embeddings for the kNN baseline: the vectors the taxonomy annotator stored
    (the same text, the project's question-vector cache); only unseen questions are embedded."""
    from skill_assets.resources.question_vectors import question_vectors

    return question_vectors(instances, project.embedder(), project.question_vectors())
