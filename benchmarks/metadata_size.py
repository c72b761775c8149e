"""How much one huge question adds to the Dagster instance (issue 17 item 7).

Materializes `benchmark_instances` of a small project whose first question is N MB, once
with dagster-polars' stock Parquet IO manager (its `table` and `stats` metadata copy cell
values into the event log) and once with ours (`skill_assets/resources/io_manager.py`), and prints how
much `.skill-slices/dagster` grew each time.

    .venv/bin/python benchmarks/metadata_size.py --mb 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _grow(root: Path, stock: bool) -> tuple[float, float]:
    from dagster import AssetKey, DagsterInstance, materialize
    from dagster_polars import PolarsParquetIOManager

    from skill_assets.app.runner import QUIET, prepare_dagster_home, sync_partitions
    from skill_assets.core.registry import load_project
    from skill_assets.defs.definitions import build_definitions

    project = load_project(root)
    prepare_dagster_home(project)
    defs = build_definitions(root)
    resources = dict(defs.resources)
    if stock:
        resources["io_manager"] = PolarsParquetIOManager(base_dir=str(project.assets_dir))
    instance = DagsterInstance.get()
    try:
        sync_partitions(instance, project)

        def size() -> int:
            return sum(f.stat().st_size for f in project.dagster_home.rglob("*") if f.is_file())

        before, t0 = size(), time.perf_counter()
        materialize(
            list(defs.assets),
            instance=instance,
            resources=resources,
            partition_key="bench",
            selection=[AssetKey("benchmark_instances")],
            run_config=QUIET,
        )
        return (size() - before) / 2**20, time.perf_counter() - t0
    finally:
        instance.dispose()


def main() -> None:
    from tests.conftest import write_project

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50, help="size of the one big question")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for stock in (True, False):
            root = write_project(Path(tmp) / ("stock" if stock else "ours"), n_per_subject=2)
            path = root / "data" / "bench.jsonl"
            rows = [json.loads(x) for x in path.read_text().splitlines()]
            rows[0]["question"] = "What? " + "lorem ipsum " * (args.mb * 2**20 // 12)
            path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
            grew, secs = _grow(root, stock)
            name = "dagster-polars stock IO manager" if stock else "BoundedPolarsParquetIOManager"
            print(f"{name:<34} question {args.mb} MB: instance +{grew:7.2f} MB ({secs:.1f} s)")


if __name__ == "__main__":
    main()
