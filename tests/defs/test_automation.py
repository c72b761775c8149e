"""Sensor, schedule and live evaluation inside the graph (real instance, local HTTP server)."""

from __future__ import annotations

import datetime as dt

from dagster import (
    DagsterInstance,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
)

from skill_assets.app.runner import prepare_dagster_home, run_project
from skill_assets.core.registry import load_project
from skill_assets.core.store import read_asset
from skill_assets.defs.automation import input_sensor, weekly_live_reevaluation
from skill_assets.defs.definitions import build_definitions
from skill_assets.defs.partitions import multi_key
from skill_assets.resources.project import ProjectResource
from tests.conftest import write_project
from tests.fake_openai_server import FakeOpenAIServer


def _add_live_model(root, base_url):
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "slices:",
            "  - name: live\n    provider: openai-compatible\n    model: served\n"
            f"    base_url: {base_url}\n    max_tokens: 4\nslices:",
        )
    )


def test_input_sensor_adds_partitions_and_observes_inputs(tmp_path):
    root = write_project(tmp_path / "p")
    with DagsterInstance.ephemeral() as instance:
        ctx = build_sensor_context(
            instance=instance, resources={"project": ProjectResource(project_dir=str(root))}
        )
        result = input_sensor(ctx)
        added = {
            r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests
        }
        assert added == {"benchmark": ["bench"], "model": ["alpha", "beta"]}
        observed = {(e.asset_key.to_user_string(), e.partition) for e in result.asset_events}
        assert {
            ("benchmark_file", "bench"),
            ("skills_source", "bench"),
            ("results_file", "alpha"),
            ("results_file", "beta"),
            ("slices_settings", None),
        } <= observed
        # the sensor requests no run itself: the automation conditions decide
        assert not result.run_requests
        for ev in result.asset_events:
            instance.report_runless_asset_event(ev)
        for r in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(r.partitions_def_name, r.partition_keys)
        assert isinstance(input_sensor(ctx), SkipReason)  # nothing changed since


def test_live_model_runs_in_graph_and_weekly_schedule_asks_again(tmp_path):
    answer = {"value": "C"}
    with FakeOpenAIServer(responder=lambda body: answer["value"]) as srv:
        root = write_project(tmp_path / "p")
        _add_live_model(root, srv.base_url)
        summary = run_project(root, progress=False)
        n = 120
        assert (
            summary["llm_calls"]["by_purpose"]["evaluate"]["made"]
            + summary["llm_calls"]["by_purpose"]["evaluate"]["cached"]
            == n
        )
        first = srv.count("/chat/completions")
        assert first > 0
        acc = read_asset(load_project(root), "slice_accuracy")
        live = acc.filter(acc["model"] == "live")
        assert live.height and (live["accuracy"] == 1.0).all()  # every gold answer is C

        # The schedule targets live models only, through the named results job.
        resources = {"project": ProjectResource(project_dir=str(root))}
        when = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
        ctx = build_schedule_context(resources=resources, scheduled_execution_time=when)
        requests = list(weekly_live_reevaluation(ctx))
        assert [r.partition_key for r in requests] == [multi_key("bench", "live")]
        assert weekly_live_reevaluation.job_name == "results_job"

        # Executing that request asks the provider again instead of reading the cache...
        answer["value"] = "A"  # the provider changed the model behind the same name
        project = load_project(root)
        prepare_dagster_home(project)
        defs = build_definitions(root)
        instance = DagsterInstance.get()
        defs.resolve_job_def("results_job").execute_in_process(
            instance=instance, partition_key=requests[0].partition_key, tags=requests[0].tags
        )
        instance.dispose()
        assert srv.count("/chat/completions") == 2 * first
        # ...and, since the answers changed, the CLI refreshes what depends on them,
        # without touching annotation.
        after = run_project(root, progress=False)
        assert "rationales" not in after["materialized"]
        assert "model_results" not in after["materialized"]
        assert "slice_accuracy" in after["materialized"]
        assert srv.count("/chat/completions") == 2 * first
        acc = read_asset(load_project(root), "slice_accuracy")
        assert (acc.filter(acc["model"] == "live")["accuracy"] < 1.0).all()
