"""The one automation condition of the graph: materialize what Dagster reports as not fresh.

``skill-slices run`` evaluates exactly these conditions (with Dagster's own evaluator) and
launches the runs they request; the daemon's automation sensor does the same on its ticks.
There is no second notion of "stale".
"""

from __future__ import annotations

from dagster import AssetKey, AutomationCondition, AutomationResult
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus


def _resolver(view) -> CachingStaleStatusResolver:
    """One stale-status resolver per evaluation (it caches instance reads)."""
    cached = getattr(view, "_skill_slices_resolver", None)
    if cached is None:
        cached = CachingStaleStatusResolver(view.instance, view.asset_graph, view)
        view._skill_slices_resolver = cached
    return cached


def _had_failed_calls(view, key: AssetKey, partition: str | None) -> bool:
    """The latest materialization recorded LLM calls that never returned: retry them."""
    rec = view.get_inner_queryer_for_back_compat().get_latest_materialization_or_observation_record(
        _akpk(key, partition)
    )
    mat = rec.asset_materialization if rec else None
    entry = mat.metadata.get("failures") if mat else None
    return bool(getattr(entry, "value", 0))


def _akpk(key, partition):
    from dagster._core.definitions.events import AssetKeyPartitionKey

    return AssetKeyPartitionKey(key, partition)


class _PartitionTest(AutomationCondition):
    """True for the candidate partitions where `_test(view, key, partition)` holds."""

    def _test(self, view, key: AssetKey, partition: str | None) -> bool:
        raise NotImplementedError

    def evaluate(self, context) -> AutomationResult:
        view = context.asset_graph_view
        candidates = context.candidate_subset
        if candidates.is_empty:
            return AutomationResult(context, context.get_empty_subset())
        key = context.key
        if candidates.is_partitioned:
            keys = {
                p
                for p in candidates.expensively_compute_partition_keys()
                if self._test(view, key, p)
            }
            subset = view.get_subset_from_partition_keys(key, context.partitions_def, keys)
        else:
            subset = candidates if self._test(view, key, None) else context.get_empty_subset()
        return AutomationResult(context, subset)


class NotFresh(_PartitionTest):
    """Missing or stale in Dagster's own stale status: a new code version, or an input
    whose data version changed since this partition was materialized."""

    @property
    def name(self) -> str:
        return "not_fresh"

    @property
    def description(self) -> str:
        return "Missing or stale (Dagster stale status)"

    def _test(self, view, key, partition) -> bool:
        if _resolver(view).get_status(key, partition) != StaleStatus.FRESH:
            return True
        return _wide_dependency_updated(view, key, partition)


def _latest_storage_id(instance, key: AssetKey, partition: str | None = None) -> int | None:
    from dagster import AssetRecordsFilter

    flt = AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(flt, limit=1).records
    return records[0].storage_id if records else None


def _wide_dependency_updated(view, key: AssetKey, partition: str | None) -> bool:
    """Dagster's stale status skips an edge with at least
    ``SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD`` (100) upstream partitions (an
    aggregate over 10 benchmarks x 10 models). On such an edge, fall back to recency: a
    partition of the dependency materialized after this asset makes it due. Upstream
    partitions are only re-materialized when their own input changed, so this asks for
    no work that data versions would have spared."""
    from dagster._core.definitions import data_version

    threshold = data_version.SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD
    own = None
    for parent in sorted(view.asset_graph.get(key).parent_keys):
        node = view.asset_graph.get(parent)
        if not node.is_partitioned or parent == key:
            continue
        subset = view.asset_graph.get_parent_partition_keys_for_child(
            partition, parent, key
        ).partitions_subset
        if len(subset) < threshold:
            continue  # Dagster compares data versions on this edge itself
        if own is None:
            own = _latest_storage_id(view.instance, key, partition) or 0
        newest = _latest_storage_id(view.instance, parent)
        if newest is not None and newest > own:
            return True
    return False


class HasFailedCalls(_PartitionTest):
    """Its latest materialization recorded LLM calls that never returned."""

    @property
    def name(self) -> str:
        return "has_failed_calls"

    @property
    def description(self) -> str:
        return "Latest materialization has LLM calls that failed"

    def _test(self, view, key, partition) -> bool:
        return _had_failed_calls(view, key, partition)


def not_fresh() -> AutomationCondition:
    return NotFresh()


def sync_condition() -> AutomationCondition:
    """Requested when not fresh, or when an upstream asset of the same run will be
    requested; held while an upstream partition is due in another run or in progress.

    Failed LLM calls are retried once after the materialization that recorded them
    (`newly_true`): a provider that stays down is not asked again every tick.
    """
    will = AutomationCondition.will_be_requested()
    due_elsewhere = (not_fresh() & ~will) | AutomationCondition.in_progress()
    retry = HasFailedCalls().newly_true()
    return (
        (not_fresh() | retry | AutomationCondition.any_deps_match(will))
        & ~AutomationCondition.in_progress()
        & ~AutomationCondition.any_deps_match(due_elsewhere)
    ).with_label("skill_slices_sync")


def check_condition() -> AutomationCondition:
    """An asset check runs in every run that materializes its asset."""
    return AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
