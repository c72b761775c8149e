"""Sensor, schedule and live evaluation inside the graph (real instance, local HTTP server)."""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from definitions import build_definitions
from resources.project import ProjectResource
from skill_assets.automation import registry_sensor, weekly_live_reevaluation
from skill_assets.partitions import multi_key
from skill_assets.registry import load_project
from skill_assets.runner import prepare_dagster_home, read_asset, run_project
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


def test_registry_sensor_adds_partitions_and_requests_runs(tmp_path):
    root = write_project(tmp_path / "p")
    with DagsterInstance.ephemeral() as instance:
        ctx = build_sensor_context(
            instance=instance, resources={"project": ProjectResource(project_dir=str(root))}
        )
        result = registry_sensor(ctx)
        added = {
            r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests
        }
        assert added == {"benchmark": ["bench"], "model": ["alpha", "beta"]}
        keys = sorted(r.partition_key for r in result.run_requests)
        assert keys == ["bench", multi_key("bench", "alpha"), multi_key("bench", "beta")]


def test_live_model_runs_in_graph_and_weekly_schedule_asks_again(tmp_path):
    with FakeOpenAIServer(responder=lambda body: "C") as srv:
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

        # The schedule targets live models only.
        resources = {"project": ProjectResource(project_dir=str(root))}
        when = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
        ctx = build_schedule_context(resources=resources, scheduled_execution_time=when)
        requests = list(weekly_live_reevaluation(ctx))
        assert [r.partition_key for r in requests] == [multi_key("bench", "live")]

        # Executing that request asks the provider again instead of reading the cache...
        project = load_project(root)
        prepare_dagster_home(project)
        defs = build_definitions(root)
        instance = DagsterInstance.get()
        materialize(
            list(defs.assets),
            instance=instance,
            resources=defs.resources,
            partition_key=requests[0].partition_key,
            selection=[AssetKey("model_results")],
            tags=requests[0].tags,
        )
        instance.dispose()
        assert srv.count("/chat/completions") == 2 * first
        # ...and the CLI then refreshes what depends on it, without touching annotation.
        after = run_project(root, progress=False)
        assert "rationales" not in after["materialized"]
        assert "slice_accuracy" in after["materialized"]
        assert srv.count("/chat/completions") == 2 * first
