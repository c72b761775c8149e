"""Live evaluation of a model through its provider (used by `evaluate` and model_results)."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl


def run_live_evaluation(
    instances: pl.DataFrame, entry, client, log: Callable[[str], None] = print, progress=None
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Ask `client` every instance with the entry's prompt style; grade the answers.

    Returns (results per schemas.RESULTS, failures (uid, error, attempts), llm stats).
    Every call is cached, so re-running pays only for calls that never returned.
    """
    from skill_assets.evaluate import build_eval_requests, results_from_calls

    requests = build_eval_requests(instances, prompt_style=entry.prompt_style)
    log(f"evaluating {entry.name} ({entry.provider}:{entry.model}) on {len(requests)} instances")
    calls = client.complete_many(requests, progress=progress)
    results, failures = results_from_calls(instances, calls, entry.name)
    return results, failures, client.stats
