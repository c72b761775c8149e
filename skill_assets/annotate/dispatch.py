"""Annotation dispatch: the offline taxonomy annotator or the LLM rationale annotator."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from skill_assets.core.schemas import MENTIONS, RATIONALES, empty
from skill_assets.resources.call_stats import CallStats


def annotate_instances(
    instances: pl.DataFrame,
    project,
    resource,
    log: Callable[[str], None] = print,
    *,
    batch: bool | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, CallStats]:
    """Annotate every instance once; returns (rationales, mentions, llm stats).

    ``batch``: use the provider batch API (default: the annotator's ``batch`` setting;
    interactive callers such as ``route`` pass False)."""
    ann = project.registry.annotator
    if instances.height == 0:
        return empty(RATIONALES), empty(MENTIONS), CallStats()
    if ann.provider == "taxonomy":
        from skill_assets.annotate.taxonomy import annotate_with_taxonomy

        log(f"taxonomy annotator: {instances.height} instances")
        rationales, mentions = annotate_with_taxonomy(
            instances,
            resource.embedder(),
            max_paths=ann.max_paths,
            use_metadata_hints=ann.metadata_hints,
            cache=resource.question_vectors(),
            log=_chunk_logger(log, instances.height),
        )
        return rationales, mentions, CallStats()
    from skill_assets.annotate.rationales import (
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
    batch_stats = None
    if getattr(ann, "batch", False) if batch is None else batch:
        # Provider batch API: fills the call cache (resuming a batch an earlier, interrupted
        # run submitted); complete_many below then serves those answers from the cache and
        # retries live only the lines the batch could not answer.
        from skill_assets.resources.batch import run_batch

        batch_stats = run_batch(
            client, requests, project.state_dir / "batches", poll_s=ann.batch_poll_s, log=log
        )
    results = client.complete_many(requests, progress=_progress_logger(log, len(requests)))
    rationales, mentions = rationales_from_results(instances, results, client.settings, version)
    if batch_stats is not None:
        return rationales, mentions, client.stats.with_batch(batch_stats)
    return rationales, mentions, client.stats.model_copy(deep=True)


def _progress_logger(log, total: int):
    step = max(total // 10, 1)

    def progress(done: int, total_: int = total) -> None:
        if done % step == 0 or done == total_:
            log(f"annotated {done}/{total_}")

    return progress


def _chunk_logger(log: Callable[[str], None], n: int) -> Callable[[str], None]:
    """The taxonomy annotator's per-chunk progress: to the run log, and for runs of more
    than one chunk also as plain timestamped lines on stderr, which `run` shows whether or
    not stderr is a terminal (the Dagster log is quiet in CLI runs)."""
    import sys
    import time

    from skill_assets.annotate.taxonomy import CHUNK_SIZE

    if n <= CHUNK_SIZE:
        return log

    def both(msg: str) -> None:
        log(msg)
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    return both
