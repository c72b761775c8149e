"""CallStats: counting, merging, the batch re-count and the asset metadata it becomes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from skill_assets.resources.call_cache import Usage
from skill_assets.resources.call_stats import BatchStats, CallStats, JudgeStats, PurposeCounts


def _stats() -> CallStats:
    st = CallStats()
    st.add("annotate", "made", Usage(input_tokens=100, output_tokens=20), 0.1)
    st.add("annotate", "cached")
    st.add("evaluate", "made", Usage(input_tokens=10, output_tokens=2), 0.2)
    st.add("evaluate", "failed")
    return st


def test_add_counts_by_purpose_and_rounds_cost():
    st = _stats()
    assert (st.made, st.cached, st.failed) == (2, 1, 1)
    assert st.by_purpose == {
        "annotate": PurposeCounts(made=1, cached=1, failed=0),
        "evaluate": PurposeCounts(made=1, cached=0, failed=1),
    }
    assert (st.input_tokens, st.output_tokens) == (110, 22)
    assert st.cost_usd == 0.3  # rounded: 0.1 + 0.2 would be 0.30000000000000004


def test_merge_sums_and_drops_run_details():
    a = _stats()
    a.judge = JudgeStats(requested=1)
    b = CallStats()
    b.add("verify", "made", Usage(input_tokens=1, output_tokens=1), 0.5)
    m = a.merge(b, CallStats())
    assert (m.made, m.cached, m.failed, m.input_tokens) == (3, 1, 1, 111)
    assert list(m.by_purpose) == ["annotate", "evaluate", "verify"]
    assert m.cost_usd == 0.3 + 0.5 and m.judge is None and m.batch is None
    assert a.made == 2  # the inputs are left as they were


def test_with_batch_counts_batch_answers_as_made():
    st = CallStats()
    for _ in range(3):
        st.add("annotate", "cached")
    batch = BatchStats(
        written=2, input_tokens=50, output_tokens=5, cost_usd=0.25, by_purpose={"annotate": 2}
    )
    out = st.with_batch(batch)
    assert (out.made, out.cached, out.input_tokens, out.cost_usd) == (2, 1, 50, 0.25)
    assert out.by_purpose["annotate"] == PurposeCounts(made=2, cached=1, failed=0)
    assert out.batch == batch and st.made == 0 and st.batch is None


def test_as_metadata_keys_and_values():
    assert CallStats().as_metadata() == {
        "llm_calls_made": 0,
        "llm_calls_cached": 0,
        "llm_calls_failed": 0,
        "llm_calls_by_purpose": {},
        "llm_cost_usd": 0.0,
        "llm_input_tokens": 0,
        "llm_output_tokens": 0,
    }
    meta = _stats().as_metadata()
    assert list(meta) == list(CallStats().as_metadata())
    assert meta["llm_calls_by_purpose"]["evaluate"] == {"made": 1, "cached": 0, "failed": 1}


def test_only_known_fields():
    # nothing but counts can be stored, so no key or response text reaches the metadata
    with pytest.raises(ValidationError):
        CallStats(api_key="sk-secret")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        BatchStats(headers={"Authorization": "Bearer x"})  # type: ignore[call-arg]
