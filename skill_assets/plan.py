"""What is stale: a fingerprint per (asset, partition) computed from inputs alone.

A fingerprint hashes the asset's code version, its registry settings, the bytes
of the files it reads and the fingerprints of its upstream assets. An asset
partition is stale when its last materialization recorded a different
fingerprint. Because annotation depends only on instances and the annotator,
adding a model never changes the fingerprint of rationales or slices.
"""

from __future__ import annotations

from dataclasses import dataclass

from skill_assets.partitions import multi_key
from skill_assets.registry import Project, file_hash, stable_hash

# Bump when an asset's logic changes in a way that changes its output.
CODE_VERSIONS = {
    "benchmark_instances": "1",
    "model_results": "1",
    "rationales": "1",
    "skill_mentions": "1",
    "skill_embeddings": "1",
    "skill_slices": "2",
    "slice_accuracy": "3",
    "skill_insights": "4",
    "routing_policy": "2",
    "routing_evaluation": "2",
    "model_evolution": "1",
    "dataset_view": "1",
    "skill_verification": "1",
    "probe_consistency": "1",
}

PARTITIONED_BY_BENCHMARK = ("benchmark_instances", "rationales", "skill_mentions")
AGGREGATES = (
    "skill_embeddings",
    "skill_slices",
    "slice_accuracy",
    "skill_insights",
    "routing_policy",
    "routing_evaluation",
    "model_evolution",
    "dataset_view",
    "skill_verification",
    "probe_consistency",
)


@dataclass(frozen=True)
class Step:
    asset: str
    partition: str | None
    fingerprint: str


def _annotator_settings(project: Project) -> dict:
    a = project.registry.annotator.model_dump(
        exclude={"max_concurrency", "timeout_s", "max_retries", "api_key_env"}
    )
    if a["provider"] == "taxonomy":
        from skill_assets.taxonomy import ANNOTATOR_VERSION, taxonomy_version

        a["taxonomy_version"] = taxonomy_version()
        # A change of the scoring re-annotates, like a change of the taxonomy file.
        a["annotator_version"] = ANNOTATOR_VERSION
    return a


def fingerprints(project: Project) -> dict[tuple[str, str | None], str]:
    """Fingerprint of every (asset, partition) the registry defines."""
    reg = project.registry
    fp: dict[tuple[str, str | None], str] = {}
    ann = _annotator_settings(project)
    # Hash each results file once: several models may share one file, and every
    # model has a partition per benchmark.
    hashes: dict = {}

    def source(m) -> object:
        path = project.results_path(m.name)
        if path is None:
            return ("live", project.live_epoch(m.name))
        if path not in hashes:
            hashes[path] = file_hash(path)
        return hashes[path]

    model_src = {m.name: source(m) for m in reg.models}
    for b in reg.benchmarks:
        inst = stable_hash(
            CODE_VERSIONS["benchmark_instances"],
            b.model_dump(exclude={"skills", "skills_column"}),
            file_hash(project.benchmark_path(b.name)),
        )
        fp[("benchmark_instances", b.name)] = inst
        # A benchmark that brings its own skills does not depend on the annotator.
        if b.skills is not None:
            skill_src: object = ("file", file_hash(project.resolve(b.skills, "skills")))
        elif b.skills_column is not None:
            skill_src = ("column", b.skills_column)
        else:
            skill_src = ann
        fp[("rationales", b.name)] = stable_hash(CODE_VERSIONS["rationales"], inst, skill_src)
        fp[("skill_mentions", b.name)] = stable_hash(
            CODE_VERSIONS["skill_mentions"], fp[("rationales", b.name)]
        )
        for m in reg.models:
            src = model_src[m.name]
            settings = m.model_dump(
                exclude={"max_concurrency", "timeout_s", "max_retries", "batch", "batch_poll_s"}
            )
            if isinstance(src, tuple) and reg.judge is not None:  # live: the judge grades too
                settings["judge"] = reg.judge.model_dump(exclude=_TRANSPORT)
            fp[("model_results", multi_key(b.name, m.name))] = stable_hash(
                CODE_VERSIONS["model_results"], inst, settings, src
            )
    bench = [b.name for b in reg.benchmarks]
    mentions = [fp[("skill_mentions", b)] for b in bench]
    results = sorted(v for (a, _), v in fp.items() if a == "model_results")
    instances = [fp[("benchmark_instances", b)] for b in bench]
    emb = stable_hash(CODE_VERSIONS["skill_embeddings"], mentions, reg.embedder.model_dump())
    fp[("skill_embeddings", None)] = emb
    slices = stable_hash(CODE_VERSIONS["skill_slices"], emb, reg.slices.model_dump())
    fp[("skill_slices", None)] = slices
    acc = stable_hash(CODE_VERSIONS["slice_accuracy"], slices, results, reg.slices.model_dump())
    fp[("slice_accuracy", None)] = acc
    fp[("skill_insights", None)] = stable_hash(
        CODE_VERSIONS["skill_insights"],
        acc,
        results,
        mentions,
        reg.insights.model_dump(),
        reg.compare,
        instances,  # the strata of the conditional test
        reg.insights.strata_columns(reg.routing),
    )
    costs = [m.cost_per_call for m in reg.models]
    policy = stable_hash(
        CODE_VERSIONS["routing_policy"], slices, results, instances, reg.routing.model_dump(), costs
    )
    fp[("routing_policy", None)] = policy
    fp[("routing_evaluation", None)] = stable_hash(
        CODE_VERSIONS["routing_evaluation"], policy, instances, reg.routing.model_dump()
    )
    fp[("model_evolution", None)] = stable_hash(
        "model_evolution",
        CODE_VERSIONS["model_evolution"],
        slices,
        results,
        reg.compare,
        reg.slices.model_dump(),
        reg.insights.model_dump(),
    )
    fp[("dataset_view", None)] = stable_hash(
        "dataset_view", CODE_VERSIONS["dataset_view"], slices, results
    )
    # Without a verifier (or nothing to probe) the validation assets are skipped: their
    # fingerprint then depends on settings only, so they do not re-run with every change.
    validation = _validation_settings(project)
    if reg.validation.verifier is None:
        fp[("skill_verification", None)] = stable_hash("skipped", validation)
    else:
        fp[("skill_verification", None)] = stable_hash(
            CODE_VERSIONS["skill_verification"],
            mentions,
            [fp[("rationales", b)] for b in bench],
            instances,
            emb,
            validation,
        )
    probed = _probe_model_settings(project)
    if not probed:
        fp[("probe_consistency", None)] = stable_hash("skipped", validation)
    else:
        fp[("probe_consistency", None)] = stable_hash(
            CODE_VERSIONS["probe_consistency"],
            slices,
            acc,
            results,
            mentions,
            instances,
            validation,
            probed,
        )
    return fp


_TRANSPORT = {"max_concurrency", "timeout_s", "max_retries", "api_key_env"}


def _validation_settings(project: Project) -> dict:
    v = project.registry.validation
    verifier = v.verifier.model_dump(exclude=_TRANSPORT) if v.verifier else None
    return {**v.model_dump(exclude={"verifier"}), "verifier": verifier}


def _probe_model_settings(project: Project) -> list:
    reg = project.registry
    names = reg.validation.probe_models
    models = [m for m in reg.models if (m.name in names if names is not None else m.live)]
    return [
        (m.model_dump(exclude=_TRANSPORT), project.live_epoch(m.name))
        for m in models
        if reg.validation.verifier is not None
    ]


def stale_steps(project: Project, recorded: dict[tuple[str, str | None], str | None]) -> list[Step]:
    """Steps whose recorded fingerprint differs from the current one, in graph order."""
    order = {a: i for i, a in enumerate(PARTITIONED_BY_BENCHMARK + ("model_results",) + AGGREGATES)}
    fps = fingerprints(project)
    steps = [
        Step(asset, part, f) for (asset, part), f in fps.items() if recorded.get((asset, part)) != f
    ]
    return sorted(steps, key=lambda s: (order[s.asset], s.partition or ""))
