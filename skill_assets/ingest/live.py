"""Live evaluation of a model through its provider (used by `evaluate` and model_results)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from skill_assets.resources.call_stats import CallStats, JudgeStats


def make_judge_client(judge_entry, cache):
    """An LLM client for the registry's ``judge:`` entry (an ``LLMEntry``) on ``cache``."""
    from skill_assets.resources.llm import LLMClient, LLMSettings

    return LLMClient(LLMSettings(**judge_entry.model_dump(exclude_none=True)), cache)


def run_live_evaluation(
    instances: pl.DataFrame,
    entry,
    client,
    log: Callable[[str], None] = print,
    progress=None,
    *,
    judge_client=None,
    batch_state_dir: Path | None = None,
    batch_timeout_s: float | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, CallStats]:
    """Ask `client` every instance with the entry's prompt style; grade the answers.

    Returns (results per schemas.RESULTS, failures (uid, error, attempts), llm stats).
    Every call is cached, so re-running pays only for calls that never returned.

    With ``judge_client``, free-form answers that exact match marked wrong are re-graded by
    that LLM (see :func:`judge_results`); its counts are in ``stats.judge``. With
    ``entry.batch``, the calls first go through the provider's batch API
    (:func:`skill_assets.resources.batch.run_batch`, state under ``batch_state_dir``); its counts are
    in ``stats.batch``.
    """
    from skill_assets.ingest.evaluate import build_eval_requests, results_from_calls

    requests = build_eval_requests(instances, prompt_style=entry.prompt_style)
    log(f"evaluating {entry.name} ({entry.provider}:{entry.model}) on {len(requests)} instances")
    batch_stats = None
    if getattr(entry, "batch", False):
        from skill_assets.resources.batch import run_batch

        if batch_state_dir is None:
            raise ValueError(f"model {entry.name!r} has batch: true but no batch_state_dir")
        batch_stats = run_batch(
            client,
            requests,
            batch_state_dir,
            poll_s=entry.batch_poll_s,
            log=log,
            timeout_s=batch_timeout_s,
        )
    calls = client.complete_many(requests, progress=progress)
    results, failures = results_from_calls(instances, calls, entry.name)
    if batch_stats is not None:
        stats = client.stats.with_batch(batch_stats)
    else:
        stats = client.stats.model_copy(deep=True)
    if judge_client is not None:
        results, stats.judge = judge_results(instances, results, judge_client, log=log)
    return results, failures, stats


def judge_results(
    instances: pl.DataFrame,
    results: pl.DataFrame,
    judge_client,
    log: Callable[[str], None] = print,
) -> tuple[pl.DataFrame, JudgeStats]:
    """Re-grade, with an LLM judge, the free-form non-numeric results exact match failed.

    Returns (results with ``correct`` replaced by the verdicts, the judge's counts). A judge call that
    fails, or answers without a readable verdict, keeps the exact-match grade and is counted
    in ``failed``. ``judged_uids`` lists the rows whose grade comes from the judge (the
    RESULTS schema has no column for it), ``overturned_uids`` those it changed.
    """
    from skill_assets.ingest.evaluate import apply_judgements, build_judge_requests, judge_verdicts

    structured = judge_client.settings.structured_mode != "text"
    requests = build_judge_requests(instances, results, structured=structured)
    stats = JudgeStats(
        model=f"{judge_client.settings.provider}:{judge_client.settings.model}",
        requested=len(requests),
    )
    if not requests:
        return results, stats
    log(f"judging {len(requests)} free-form answers exact match did not accept")
    calls = judge_client.complete_many(requests)
    _count_calls(stats, calls)
    verdicts = judge_verdicts(calls)
    before = dict(zip(results["uid"].to_list(), results["correct"].to_list(), strict=True))
    judged = apply_judgements(results, calls)
    stats.judged = len(verdicts)
    stats.failed = len(requests) - len(verdicts)
    stats.judged_uids = sorted(verdicts)
    stats.overturned_uids = sorted(
        u for u, v in verdicts.items() if (1.0 if v else 0.0) != before.get(u)
    )
    stats.overturned = len(stats.overturned_uids)
    if stats.failed:
        log(f"judge: {stats.failed} of {len(requests)} calls gave no verdict; kept exact match")
    return judged, stats


def _count_calls(stats: JudgeStats, calls: Sequence) -> None:
    for c in calls:
        if not c.ok:
            continue
        if c.cached:
            stats.cached += 1
        else:
            stats.made += 1
            stats.input_tokens += c.usage.input_tokens
            stats.output_tokens += c.usage.output_tokens
            stats.cost_usd = round(stats.cost_usd + c.cost_usd, 10)
