"""The asset graph, one module per group. Assets stay thin: they load, call the pure stage
functions, report (shared plumbing in ``_common``)."""

from skill_assets.defs.assets.inputs import benchmark_instances, model_results
from skill_assets.defs.assets.insights import (
    dataset_view,
    model_evolution,
    skill_insights,
    slice_accuracy,
)
from skill_assets.defs.assets.routing import routing_evaluation, routing_policy
from skill_assets.defs.assets.skills import annotate, skill_embeddings, skill_slices
from skill_assets.defs.assets.validation import probe_consistency, skill_verification

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
