"""Annotation dispatch: the offline taxonomy annotator or the LLM rationale annotator."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from skill_assets.schemas import MENTIONS, RATIONALES, empty


def annotate_instances(
    instances: pl.DataFrame, project, resource, log: Callable[[str], None] = print
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Annotate every instance once; returns (rationales, mentions, llm stats)."""
    ann = project.registry.annotator
    if instances.height == 0:
        return empty(RATIONALES), empty(MENTIONS), {}
    if ann.provider == "taxonomy":
        from skill_assets.taxonomy import annotate_with_taxonomy

        log(f"taxonomy annotator: {instances.height} instances")
        rationales, mentions = annotate_with_taxonomy(
            instances, resource.embedder(), max_paths=ann.max_paths
        )
        return rationales, mentions, {}
    from skill_assets.rationales import (
        PROMPT_VERSION,
        build_annotation_requests,
        prompt_version_for,
        rationales_from_results,
    )

    client = resource.llm_client(ann)
    requests = build_annotation_requests(
        instances, template=ann.prompt_template, structured=ann.structured_mode != "text"
    )
    version = prompt_version_for(ann.prompt_template) if ann.prompt_template else PROMPT_VERSION
    log(f"LLM annotator {ann.provider}:{ann.model}: {len(requests)} instances")
    results = client.complete_many(requests, progress=_progress_logger(log, len(requests)))
    rationales, mentions = rationales_from_results(instances, results, client.settings, version)
    return rationales, mentions, client.stats


def _progress_logger(log, total: int):
    step = max(total // 10, 1)

    def progress(done: int, total_: int = total) -> None:
        if done % step == 0 or done == total_:
            log(f"annotated {done}/{total_}")

    return progress
