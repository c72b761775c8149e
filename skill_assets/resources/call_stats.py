"""Counts of LLM calls: what one :class:`~skill_assets.resources.llm.LLMClient` did
(``client.stats``), what a provider batch did and what the answer judge did.

Each record holds counts, token totals, costs, batch ids, uids and a model name only, and
refuses any other field (``extra="forbid"``): nothing else, an API key least of all, can
reach the asset metadata or the command summaries built from these records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from skill_assets.resources.call_cache import Usage

CallKind = Literal["made", "cached", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PurposeCounts(_Record):
    """The calls of one purpose (annotate, evaluate, …): made, served from cache, failed."""

    made: int = 0
    cached: int = 0
    failed: int = 0


class BatchStats(_Record):
    """What :func:`skill_assets.resources.batch.run_batch` did; the fields are described
    there. ``by_purpose`` counts the answers written per purpose."""

    requests: int = 0
    cached: int = 0
    submitted: int = 0
    resumed: int = 0
    written: int = 0
    errored: int = 0
    batches: list[str] = Field(default_factory=list)
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    by_purpose: dict[str, int] = Field(default_factory=dict)


class JudgeStats(_Record):
    """What :func:`skill_assets.ingest.live.judge_results` did: ``model`` is
    ``provider:model``; ``judged_uids`` are the rows graded by the judge, ``overturned_uids``
    those whose grade it changed; ``failed`` calls kept their exact-match grade."""

    model: str = ""
    requested: int = 0
    judged: int = 0
    overturned: int = 0
    failed: int = 0
    made: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    judged_uids: list[str] = Field(default_factory=list)
    overturned_uids: list[str] = Field(default_factory=list)


class CallStats(_Record):
    """The calls of one client or one run: made (answered by the provider now), cached,
    failed, the same per purpose, tokens and cost of the calls made. A live evaluation adds
    the provider batch's counts (``batch``) and the judge's (``judge``)."""

    made: int = 0
    cached: int = 0
    failed: int = 0
    by_purpose: dict[str, PurposeCounts] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    batch: BatchStats | None = None
    judge: JudgeStats | None = None

    def add(
        self, purpose: str, kind: CallKind, usage: Usage | None = None, cost: float = 0.0
    ) -> None:
        """Count one call of ``purpose``; ``usage`` and ``cost`` are those of a call made."""
        setattr(self, kind, getattr(self, kind) + 1)
        bp = self.by_purpose.setdefault(purpose, PurposeCounts())
        setattr(bp, kind, getattr(bp, kind) + 1)
        if usage is not None:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            # rounded at every step so that a long run does not accumulate float noise
            self.cost_usd = round(self.cost_usd + cost, 10)

    def merge(self, *others: CallStats) -> CallStats:
        """The sum of these stats and ``others`` (calls, per purpose, tokens, cost), e.g. of
        several clients used by one asset. ``batch`` and ``judge`` describe a single run
        and are not carried over."""
        out = CallStats()
        for st in (self, *others):
            out.made += st.made
            out.cached += st.cached
            out.failed += st.failed
            for purpose, counts in st.by_purpose.items():
                slot = out.by_purpose.setdefault(purpose, PurposeCounts())
                slot.made += counts.made
                slot.cached += counts.cached
                slot.failed += counts.failed
            out.input_tokens += st.input_tokens
            out.output_tokens += st.output_tokens
            # not rounded: the merged totals in asset metadata have always been the plain sum
            out.cost_usd += st.cost_usd
        return out

    def with_batch(self, batch: BatchStats) -> CallStats:
        """These stats (of a ``complete_many`` after ``run_batch``) re-counted so that the
        answers the batch produced in this run count as *made* (they were paid for now)
        rather than as cache hits; tokens and cost include them; ``batch`` is set."""
        out = self.model_copy(deep=True)
        n = batch.written
        out.made += n
        out.cached = max(0, out.cached - n)
        out.input_tokens += batch.input_tokens
        out.output_tokens += batch.output_tokens
        out.cost_usd = round(out.cost_usd + batch.cost_usd, 10)
        for purpose, k in batch.by_purpose.items():
            bp = out.by_purpose.setdefault(purpose, PurposeCounts())
            bp.made += k
            bp.cached = max(0, bp.cached - k)
        out.batch = batch
        return out

    def as_metadata(self) -> dict[str, Any]:
        """The ``llm_*`` entries of an asset's metadata, as plain values (the caller wraps
        ``llm_calls_by_purpose``, a dict, for Dagster)."""
        return {
            "llm_calls_made": self.made,
            "llm_calls_cached": self.cached,
            "llm_calls_failed": self.failed,
            "llm_calls_by_purpose": {p: c.model_dump() for p, c in self.by_purpose.items()},
            "llm_cost_usd": float(self.cost_usd),
            "llm_input_tokens": self.input_tokens,
            "llm_output_tokens": self.output_tokens,
        }


__all__ = ["BatchStats", "CallKind", "CallStats", "JudgeStats", "PurposeCounts"]
