"""The project's inputs as observable source assets: Dagster versions them, we only hash.

Every file and setting the graph reads is a source asset whose data version is a content
hash: the benchmark files, the results files, the bring-your-own skills files (or, for a
benchmark annotated by the annotator, the annotator's settings), and the analysis settings
of the registry. Materialized assets carry a ``code_version``; Dagster derives their data
versions from those and their inputs, so what is stale is decided by Dagster alone, the
same way for the UI, the daemon and ``skill-slices run``.

Observations are reported only when a version changed, by the input sensor (UI/daemon
path) and by ``skill-slices run`` through the same function, :func:`report_changed_inputs`.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSpec,
    DataVersion,
    DataVersionsByPartition,
    ObserveResult,
    multi_observable_source_asset,
    observable_source_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from skill_assets.core.registry import Project, file_hash, stable_hash
from skill_assets.defs.partitions import benchmark_partitions, model_partitions
from skill_assets.resources.project import ProjectResource

# Transport settings change how a call is made, never what it returns.
_TRANSPORT = {"max_concurrency", "timeout_s", "max_retries", "api_key_env"}

PER_BENCHMARK_SOURCES = ("benchmark_file", "skills_source")
PER_MODEL_SOURCES = ("results_file",)
SETTINGS_SOURCES = (
    "benchmark_names",
    "model_names",
    "embedder_settings",
    "slices_settings",
    "insights_settings",
    "routing_settings",
    "validation_settings",
)


def annotator_settings(project: Project) -> dict:
    """What the annotator's output depends on (its model and prompt, not its transport)."""
    a = project.registry.annotator.model_dump(exclude=_TRANSPORT | {"batch_poll_s"})
    if a["provider"] == "taxonomy":
        from skill_assets.annotate.taxonomy import ANNOTATOR_VERSION, taxonomy_version

        a["taxonomy_version"] = taxonomy_version()
        # A change of the scoring re-annotates, like a change of the taxonomy file.
        a["annotator_version"] = ANNOTATOR_VERSION
    return a


def _validation_settings(project: Project) -> dict:
    reg = project.registry
    v = reg.validation
    verifier = v.verifier.model_dump(exclude=_TRANSPORT) if v.verifier else None
    names = v.probe_models
    probed = [m for m in reg.models if (m.name in names if names is not None else m.live)]
    return {
        **v.model_dump(exclude={"verifier"}),
        "verifier": verifier,
        "probed": [m.model_dump(exclude=_TRANSPORT) for m in probed] if verifier else [],
    }


_HASHES: dict[tuple, str] = {}


def _file_hash(path) -> str:
    """file_hash, remembered per (path, size, mtime): the sensor asks every few seconds."""
    try:
        st = path.stat()
    except OSError:
        return file_hash(path)
    if path.is_dir():
        return file_hash(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_hash(path)
    return _HASHES[key]


def input_versions(project: Project) -> dict[str, dict[str | None, str]]:
    """The data version of every source asset partition the registry defines.

    Keys are source asset names; values map a partition key (None: unpartitioned) to a
    content hash of what the graph reads from it.
    """
    reg = project.registry
    out: dict[str, dict[str | None, str]] = {name: {} for name in PER_BENCHMARK_SOURCES}
    ann = annotator_settings(project)
    for b in reg.benchmarks:
        out["benchmark_file"][b.name] = stable_hash(
            b.model_dump(exclude={"skills", "skills_column"}),
            _file_hash(project.benchmark_path(b.name)),
        )
        # A benchmark that brings its own skills does not depend on the annotator.
        if b.skills is not None:
            skills: object = ("file", _file_hash(project.resolve(b.skills, "skills")))
        elif b.skills_column is not None:
            skills = ("column", b.skills_column)
        else:
            skills = ("annotator", ann)
        out["skills_source"][b.name] = stable_hash(skills)
    hashes: dict = {}  # several models may share one results file
    results: dict[str | None, str] = {}
    for m in reg.models:
        settings = m.model_dump(exclude=_TRANSPORT | {"batch", "batch_poll_s", "cost_per_call"})
        path = project.results_path(m.name)
        if path is None:
            # Run live: the provider is asked by model_results itself; the weekly schedule
            # re-asks. A judge grades free-form answers, so its settings count too.
            src: object = ("live", reg.judge.model_dump(exclude=_TRANSPORT) if reg.judge else None)
        else:
            if path not in hashes:
                hashes[path] = _file_hash(path)
            src = ("file", hashes[path])
        results[m.name] = stable_hash(settings, src)
    out["results_file"] = results
    # Removing a partition leaves no event on the partitioned asset, so the assets that read
    # every partition also depend on the list of names.
    out["benchmark_names"] = {None: stable_hash(sorted(b.name for b in reg.benchmarks))}
    out["model_names"] = {None: stable_hash(sorted(m.name for m in reg.models))}
    out["embedder_settings"] = {None: stable_hash(reg.embedder.model_dump())}
    out["slices_settings"] = {None: stable_hash(reg.slices.model_dump())}
    out["insights_settings"] = {
        # the strata of the conditional test default to routing.metadata_column
        None: stable_hash(
            reg.insights.model_dump(), reg.compare, reg.insights.strata_columns(reg.routing)
        )
    }
    # without extra baselines, the version is what it was before the key existed
    routing = reg.routing.model_dump(exclude=set() if reg.routing.baselines else {"baselines"})
    out["routing_settings"] = {
        None: stable_hash(routing, {m.name: m.cost_per_call for m in reg.models})
    }
    out["validation_settings"] = {None: stable_hash(_validation_settings(project))}
    return out


def changed_inputs(instance, project: Project) -> list[AssetObservation]:
    """Observations of the source partitions whose version differs from the recorded one."""
    events = []
    for name, parts in input_versions(project).items():
        key = AssetKey(name)
        for part, version in parts.items():
            rec = instance.get_latest_data_version_record(key, True, part)
            obs = rec.event_log_entry.asset_observation if rec else None
            if obs is None or obs.tags.get(DATA_VERSION_TAG) != version:
                events.append(
                    AssetObservation(
                        asset_key=key, partition=part, tags={DATA_VERSION_TAG: version}
                    )
                )
    return events


def report_changed_inputs(instance, project: Project) -> list[AssetObservation]:
    """Record the changed source versions in the instance (what `run` does before deciding)."""
    events = changed_inputs(instance, project)
    for ev in events:
        instance.report_runless_asset_event(ev)
    return events


def _versions(project: ProjectResource, name: str) -> dict:
    return input_versions(project.reload())[name]


# The same hashes as observe functions, so "Observe sources" in the UI works too.
def _partitioned_source(name: str, partitions_def, description: str):
    @observable_source_asset(
        name=name, partitions_def=partitions_def, group_name="sources", description=description
    )
    def _source(project: ProjectResource) -> DataVersionsByPartition:
        return DataVersionsByPartition(
            {k: DataVersion(v) for k, v in _versions(project, name).items()}
        )

    return _source


benchmark_file = _partitioned_source(
    "benchmark_file", benchmark_partitions, "A benchmark's instance file and registry entry."
)
skills_source = _partitioned_source(
    "skills_source",
    benchmark_partitions,
    "Where a benchmark's skills come from: its own skills file or column, else the annotator"
    " settings (model, prompt, taxonomy version).",
)
results_file = _partitioned_source(
    "results_file", model_partitions, "A model's results file (or live settings) and entry."
)

_SETTINGS_DESCRIPTIONS = {
    "benchmark_names": "The benchmarks the registry lists.",
    "model_names": "The models the registry lists.",
    "embedder_settings": "The skill-name embedder.",
    "slices_settings": "Clustering threshold and minimum slice size.",
    "insights_settings": "Significance level and the model pairs to compare.",
    "routing_settings": "Routing rule, folds, metadata slices and costs per call.",
    "validation_settings": "Verifier, probe models and sample sizes.",
}


@multi_observable_source_asset(
    specs=[
        AssetSpec(name, group_name="sources", description=desc)
        for name, desc in _SETTINGS_DESCRIPTIONS.items()
    ],
    name="registry_settings",
)
def registry_settings(project: ProjectResource):
    """The registry's analysis settings, one source asset per section."""
    versions = input_versions(project.reload())
    for name in SETTINGS_SOURCES:
        yield ObserveResult(
            asset_key=AssetKey(name), data_version=DataVersion(versions[name][None])
        )


ALL_SOURCES = [benchmark_file, skills_source, results_file, registry_settings]
