"""Dagster is the one engine: the UI/daemon path and `skill-slices run` see the same staleness.

The UI path is driven without a browser: the input sensor is evaluated against the project's
real instance (its partition requests and observations recorded as the daemon records
them), then Dagster's automation conditions are evaluated on that instance, and what they
request is executed as the daemon would (the named job, that partition). After each edit
the test asserts exactly which asset partitions were requested, then that `skill-slices
run` finds nothing left to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.partitions.context import partition_loading_context

from skill_assets.app.runner import run_project
from skill_assets.core.registry import load_project
from skill_assets.defs.automation import JOB_OF_ASSET, input_sensor
from skill_assets.defs.definitions import build_definitions
from skill_assets.resources.project import ProjectResource
from tests.conftest import write_project

# Cold runs are slow on a loaded 2-core machine; the module fixture counts toward the first test.
pytestmark = pytest.mark.timeout(2400)

MATERIALIZABLE = set(JOB_OF_ASSET)
RESULTS_DEPENDANTS = {
    "slice_accuracy",
    "skill_insights",
    "routing_policy",
    "routing_evaluation",
    "model_evolution",
    "dataset_view",
    "probe_consistency",
}


def _split_results(root: Path) -> None:
    """One results file per model, so editing one model's file touches only that model."""
    rows = [json.loads(x) for x in (root / "results" / "all.jsonl").read_text().splitlines()]
    reg = root / "skill-slices.yaml"
    text = reg.read_text()
    for m in ("alpha", "beta"):
        mine = [r for r in rows if r["model"] == m]
        (root / "results" / f"{m}.jsonl").write_text("\n".join(json.dumps(r) for r in mine) + "\n")
        text = text.replace(
            f"  - name: {m}\n    results: results/all.jsonl",
            f"  - name: {m}\n    results: results/{m}.jsonl",
        )
    reg.write_text(text)


def _flip_first_answer(path: Path) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["correct"] = 1 - rows[0]["correct"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _add_model(root: Path, name: str, like: str = "alpha") -> None:
    rows = [json.loads(x) for x in (root / "results" / f"{like}.jsonl").read_text().splitlines()]
    out = [dict(r, model=name) for r in rows]
    (root / "results" / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in out) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "slices:", f"  - name: {name}\n    results: results/{name}.jsonl\nslices:"
        )
    )


def _add_benchmark(root: Path, name: str = "bio", n: int = 6) -> None:
    new = [
        {
            "instance_id": f"{name}-{i}",
            "question": f"Which organelle produces most of the ATP in a cell, case {i}?",
            "options": ["nucleus", "mitochondrion", "ribosome", "vacuole"],
            "answer": "B",
            "subject": "biology",
        }
        for i in range(n)
    ]
    (root / "data" / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in new) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "models:", f"  - name: {name}\n    path: data/{name}.jsonl\nmodels:", 1
        )
    )


class UIPath:
    """One project's instance, driven as the daemon drives it."""

    def __init__(self, root: Path):
        self.root = root
        self.project = load_project(root)
        self.instance = DagsterInstance.from_config(str(self.project.dagster_home))
        self.defs = build_definitions(root)

    def close(self):
        self.instance.dispose()

    def sensor_tick(self) -> None:
        """Evaluate the input sensor and record its result as the sensor daemon does."""
        ctx = build_sensor_context(
            instance=self.instance,
            resources={"project": ProjectResource(project_dir=str(self.root))},
        )
        result = input_sensor(ctx)
        for ev in getattr(result, "asset_events", None) or []:
            self.instance.report_runless_asset_event(ev)
        for req in getattr(result, "dynamic_partitions_requests", None) or []:
            if isinstance(req, AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
            else:
                for key in req.partition_keys:
                    self.instance.delete_dynamic_partition(req.partitions_def_name, key)

    def automation_tick(self) -> dict[str, set]:
        """What Dagster's automation conditions request now, by asset."""
        result = evaluate_automation_conditions(self.defs, self.instance)
        out = {}
        for name in MATERIALIZABLE:
            parts = set(result.get_requested_partitions(AssetKey(name)))
            if parts:
                out[name] = parts
        return out

    def launch(self, requested: dict[str, set]) -> None:
        """Execute the requests as the daemon does: one named-job run per partition."""
        runs: dict[tuple, list] = {}
        for name, parts in requested.items():
            for p in parts:
                runs.setdefault((JOB_OF_ASSET[name], p), []).append(AssetKey(name))
        for (job, part), keys in sorted(runs.items(), key=lambda kv: str(kv[0])):
            self.defs.resolve_job_def(job).execute_in_process(
                instance=self.instance, partition_key=part, asset_selection=keys
            )

    def settle(self, max_ticks: int = 6) -> list[dict[str, set]]:
        """Tick until nothing is requested; the requests of every tick."""
        ticks = []
        for _ in range(max_ticks):
            self.sensor_tick()
            req = self.automation_tick()
            if not req:
                return ticks
            ticks.append(req)
            self.launch(req)
        raise AssertionError(f"still requesting after {max_ticks} ticks: {ticks[-1]}")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("engine") / "proj", n_per_subject=10)
    _split_results(root)
    run_project(root, progress=False)
    return root


def test_fresh_project_requests_nothing(synced):
    ui = UIPath(synced)
    try:
        ui.sensor_tick()
        assert ui.automation_tick() == {}
    finally:
        ui.close()


def test_editing_a_results_file_refreshes_that_model_then_its_dependants(synced):
    _flip_first_answer(synced / "results" / "alpha.jsonl")
    ui = UIPath(synced)
    try:
        ticks = ui.settle()
    finally:
        ui.close()
    assert ticks[0] == {"model_results": {"bench|alpha"}}
    assert ticks[1] == {name: {None} for name in RESULTS_DEPENDANTS}
    assert len(ticks) == 2
    assert run_project(synced, progress=False)["materialized"] == []


def test_adding_a_model_requests_its_partitions_and_no_annotation(synced):
    _add_model(synced, "gamma")
    ui = UIPath(synced)
    try:
        ticks = ui.settle()
    finally:
        ui.close()
    assert ticks[0] == {"model_results": {"bench|gamma"}}
    assert ticks[1] == {name: {None} for name in RESULTS_DEPENDANTS}
    requested = set().union(*(t.keys() for t in ticks))
    assert not requested & {"rationales", "skill_mentions", "skill_embeddings", "skill_slices"}
    assert run_project(synced, progress=False)["materialized"] == []


def test_adding_a_benchmark_requests_its_partitions_then_everything_reading_them(synced):
    _add_benchmark(synced)
    ui = UIPath(synced)
    try:
        ticks = ui.settle()
    finally:
        ui.close()
    assert ticks[0] == {n: {"bio"} for n in ("benchmark_instances", "rationales", "skill_mentions")}
    parts = {}
    for t in ticks:
        for name, p in t.items():
            parts.setdefault(name, set()).update(p)
    assert parts["model_results"] == {"bio|alpha", "bio|beta", "bio|gamma"}
    assert parts["benchmark_instances"] == {"bio"}  # the existing benchmark is not redone
    assert {n for n, p in parts.items() if p == {None}} == MATERIALIZABLE - {
        "benchmark_instances",
        "rationales",
        "skill_mentions",
        "model_results",
    }
    assert run_project(synced, progress=False)["materialized"] == []


def test_removing_a_model_refreshes_what_read_it(synced):
    reg = synced / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace("  - name: gamma\n    results: results/gamma.jsonl\n", "")
    )
    ui = UIPath(synced)
    try:
        ticks = ui.settle()
        assert "gamma" not in ui.instance.get_dynamic_partitions("model")
    finally:
        ui.close()
    assert ticks == [{name: {None} for name in RESULTS_DEPENDANTS}]
    assert run_project(synced, progress=False)["materialized"] == []


# -- the stale status Dagster reports (the UI's "Unsynced") equals what `run` materializes --


def _not_fresh(root: Path) -> set[tuple[str, str | None]]:
    """Asset partitions Dagster's stale status reports missing or stale (the UI's
    "Unsynced"), after the input sensor's observations are recorded."""
    ui = UIPath(root)
    defs, instance = ui.defs, ui.instance
    try:
        ui.sensor_tick()
        view = AssetGraphView.for_test(defs, instance)
        graph = view.asset_graph
        resolver = CachingStaleStatusResolver(instance, graph, view)
        out = set()
        with partition_loading_context(dynamic_partitions_store=instance):
            for name in MATERIALIZABLE:
                node = graph.get(AssetKey(name))
                parts = (
                    node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
                    if node.partitions_def
                    else [None]
                )
                for p in parts:
                    if resolver.get_status(AssetKey(name), p) != StaleStatus.FRESH:
                        out.add((name, p))
        return out
    finally:
        ui.close()


def _descendants(root: Path, pairs) -> set[tuple[str, str | None]]:
    defs = build_definitions(root)
    instance = DagsterInstance.from_config(str(load_project(root).dagster_home))
    try:
        graph = defs.resolve_asset_graph()
        todo = [AssetKeyPartitionKey(AssetKey(a), p) for a, p in pairs]
        seen = set(todo)
        with partition_loading_context(dynamic_partitions_store=instance):
            while todo:
                k = todo.pop()
                for child in graph.get_children_partitions(k.asset_key, k.partition_key):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
        return {(k.asset_key.to_user_string(), k.partition_key) for k in seen}
    finally:
        instance.dispose()


def _materialized_pairs(root: Path, summary: dict) -> set[tuple[str, str | None]]:
    from dagster import DagsterEventType

    instance = DagsterInstance.from_config(str(load_project(root).dagster_home))
    try:
        out = set()
        for run in summary["runs"]:
            for ev in instance.all_logs(
                run["run_id"], of_type=DagsterEventType.ASSET_MATERIALIZATION
            ):
                out.add(
                    (
                        ev.asset_materialization.asset_key.to_user_string(),
                        ev.dagster_event.partition,
                    )
                )
        return out
    finally:
        instance.dispose()


def _edit_registry(old: str, new: str):
    def edit(root: Path):
        reg = root / "skill-slices.yaml"
        assert old in reg.read_text()
        reg.write_text(reg.read_text().replace(old, new))

    return edit


SCENARIOS = {
    "edit a results file": lambda root: _flip_first_answer(root / "results" / "beta.jsonl"),
    "edit a benchmark file": lambda root: (root / "data" / "bench.jsonl").write_text(
        (root / "data" / "bench.jsonl").read_text().replace("plus", "added to", 1)
    ),
    "change a slices setting": _edit_registry("min_slice_size: 5", "min_slice_size: 6"),
    "change a routing setting": _edit_registry(
        "routing:\n  metadata_column: subject", "routing:\n  metadata_column: subject\n  knn_k: 7"
    ),
    "add a model": lambda root: _add_model(root, "delta", like="beta"),
    "add a benchmark": lambda root: _add_benchmark(root, "chem", 5),
}


def test_stale_status_equals_what_run_materializes(tmp_path):
    """What Dagster shows as not fresh is what `run` materializes: all of it, plus only what
    became stale because of it (a dependant whose input content changed), and afterwards
    Dagster shows nothing stale."""
    root = write_project(tmp_path / "proj", n_per_subject=10)
    _split_results(root)
    run_project(root, progress=False)
    assert _not_fresh(root) == set()
    for label, edit in SCENARIOS.items():
        edit(root)
        stale = _not_fresh(root)
        assert stale, label
        summary = run_project(root, progress=False)
        got = _materialized_pairs(root, summary)
        assert stale <= got, (label, stale - got)
        assert got <= _descendants(root, stale), (label, got - _descendants(root, stale))
        assert _not_fresh(root) == set(), label
        if label == "edit a results file":
            assert got == {("model_results", "bench|beta")} | {
                (a, None) for a in RESULTS_DEPENDANTS
            }
        if label == "add a model":
            assert {p for a, p in got if a == "model_results"} == {"bench|delta"}
            assert not {a for a, _ in got} & {"rationales", "skill_slices", "skill_embeddings"}


def test_run_leaves_a_partition_to_a_run_launched_after_it_decided(tmp_path):
    """The evaluation that requested a wave can be minutes old when the wave's last run
    starts; a run the daemon or the UI started on that partition meanwhile keeps it: the CLI
    does not run the same partition side by side, and takes it again once that run ended."""
    from dagster import DagsterRunStatus

    from skill_assets.app.runner import _execute_wave, due_runs, prepare_dagster_home

    root = write_project(tmp_path / "proj", n_per_subject=6)
    _split_results(root)
    run_project(root, progress=False)
    _flip_first_answer(root / "results" / "alpha.jsonl")
    _flip_first_answer(root / "results" / "beta.jsonl")
    project = load_project(root)
    prepare_dagster_home(project)
    ui = UIPath(root)
    try:
        ui.sensor_tick()
        wave = [r for r in due_runs(ui.defs, ui.instance) if r[0] == "results_job"]
        assert [(job, part) for job, part, _ in wave] == [
            ("results_job", "bench|alpha"),
            ("results_job", "bench|beta"),
        ]
        key = AssetKey("model_results")
        before = {p: ui.instance.get_latest_materialization_event(key) for p in ("bench|alpha",)}
        # the daemon starts bench|alpha after `run` decided, before `run` launches it
        held = ui.instance.create_run_for_job(
            ui.defs.resolve_job_def("results_job"),
            tags={"dagster/partition": "bench|alpha"},
            asset_selection=frozenset({key}),
            status=DagsterRunStatus.STARTED,
        )
        left: list[dict] = []
        ids = _execute_wave(ui.defs, ui.instance, project, wave, "in_process", None, left)
        assert len(ids) == 1  # bench|beta only
        # the summary names what was left, and to which run
        assert left == [{"job": "results_job", "partition": "bench|alpha", "run_id": held.run_id}]
        launched = ui.instance.get_run_by_id(ids[0])
        assert launched.tags["dagster/partition"] == "bench|beta"
        latest = ui.instance.get_latest_materialization_event(key)
        assert latest.dagster_event.partition == "bench|beta"
        assert before["bench|alpha"].run_id != held.run_id
        ui.instance.report_run_failed(held)
    finally:
        ui.close()
    # the held run ended without materializing: the next `run` takes the partition
    summary = run_project(root, progress=False)
    assert ("model_results", "bench|alpha") in _materialized_pairs(root, summary)


def test_an_aggregate_over_very_many_partitions_is_refreshed_too(tmp_path, monkeypatch):
    """Dagster skips the data-version check of an edge with 100 or more upstream partitions
    (an aggregate over 10 benchmarks x 10 models). The threshold is lowered to 2 here (this
    project's two model_results partitions) instead of building 100 partitions: editing one
    results file must still refresh that partition and then everything reading it."""
    from dagster._core.definitions import data_version
    from dagster._core.execution.context import data_version_cache

    for module in (data_version, data_version_cache):
        monkeypatch.setattr(module, "SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD", 2)
    root = write_project(tmp_path / "proj", n_per_subject=6)
    _split_results(root)
    run_project(root, progress=False)
    assert run_project(root, progress=False)["materialized"] == []
    _flip_first_answer(root / "results" / "alpha.jsonl")
    summary = run_project(root, progress=False)
    assert _materialized_pairs(root, summary) == {("model_results", "bench|alpha")} | {
        (a, None) for a in RESULTS_DEPENDANTS
    }
    assert run_project(root, progress=False)["materialized"] == []
