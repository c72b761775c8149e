"""A harness format plugged in from outside the package: ``format: "module:ReaderClass"``.

The reader below is written into the test's own folder (not the package), made importable
through ``sys.path`` and ``PYTHONPATH`` (so a Dagster run worker in another process can
import it too), declared in a small project's registry, and the project runs end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from skill_assets.app.runner import run_project
from skill_assets.core.registry import RegistryError, load_project
from skill_assets.core.store import read_asset
from skill_assets.ingest.importers import detect_format, load_results
from skill_assets.ingest.readers.base import Reader
from tests.conftest import write_project

REPO = Path(__file__).resolve().parents[2]

# A made-up harness layout: "<task>\t<instance id>\t<PASS|FAIL>\t<seconds>" lines under a
# "#verdicts" header. No other reader (and no generic table) reads it.
READER_SOURCE = textwrap.dedent(
    """
    from pathlib import Path

    from skill_assets.core.registry import RegistryError
    from skill_assets.ingest.readers.base import EXACT, NOT_MINE, ResultRow, ResultRows


    def _lines(path: Path):
        text = path.read_text(encoding="utf-8").splitlines()
        if not text or text[0] != "#verdicts":
            raise RegistryError(f"{path}: line 1: expected the '#verdicts' header")
        for n, line in enumerate(text[1:], start=2):
            if line.strip():
                parts = line.split("\\t")
                if len(parts) != 4 or parts[2] not in ("PASS", "FAIL"):
                    raise RegistryError(f"{path}: line {n}: expected task, id, PASS|FAIL, s")
                yield n, parts


    class VerdictReader:
        name = "verdicts"
        layout = "*.verdicts files (verdicts)"

        def recognise(self, path: Path) -> int:
            return EXACT if path.suffix == ".verdicts" else NOT_MINE

        def tasks(self, path: Path) -> list[str]:
            return sorted({parts[0] for _, parts in _lines(path)})

        def read_results(self, path, benchmark, instances, opts):
            rows = [
                ResultRow(
                    instance_id=parts[1],
                    correct=1.0 if parts[2] == "PASS" else 0.0,
                    where=f"{path}: line {n}",
                    response=parts[2],
                    latency_s=float(parts[3]),
                )
                for n, parts in _lines(path)
                if parts[0] == (opts.task or benchmark)
            ]
            return ResultRows(rows, str(path)) if rows else None

        def read_instances(self, path, benchmark, opts):
            raise RegistryError(f"{path}: verdict files carry no questions")


    class NotAReader:
        name = "half"

        def recognise(self, path):
            return 0
    """
)


def _plug_in(tmp_path: Path, monkeypatch, module: str) -> None:
    """Write the reader module outside the package and make it importable here and in
    any child process (a Dagster run worker, the subprocess below)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"{module}.py").write_text(READER_SOURCE)
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(plugins), str(REPO), os.environ.get("PYTHONPATH", "")])
    )


def _verdicts_project(tmp_path: Path, fmt: str) -> tuple[Path, dict[str, float]]:
    """The shared small project plus model `gamma` whose results are a verdicts file and
    model `delta` whose generic results hold the same scores."""
    root = write_project(tmp_path / "proj")
    bench = [json.loads(x) for x in (root / "data" / "bench.jsonl").read_text().splitlines()]
    # gamma passes arithmetic and chemistry and every third of the rest
    scores = {
        r["instance_id"]: float(r["subject"] in ("arithmetic", "chemistry") or i % 3 == 0)
        for i, r in enumerate(bench)
    }
    lines = ["#verdicts"] + [
        f"bench\t{iid}\t{'PASS' if c else 'FAIL'}\t{0.5 + c}" for iid, c in scores.items()
    ]
    (root / "results" / "gamma.verdicts").write_text("\n".join(lines) + "\n")
    delta = [{"instance_id": iid, "correct": c} for iid, c in scores.items()]
    (root / "results" / "delta.jsonl").write_text("\n".join(json.dumps(r) for r in delta) + "\n")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "slices:\n",
            f"  - name: gamma\n    results: results/gamma.verdicts\n    format: '{fmt}'\n"
            "  - name: delta\n    results: results/delta.jsonl\nslices:\n",
        )
    )
    return root, scores


def test_a_plugged_in_reader_feeds_the_graph(tmp_path, monkeypatch):
    _plug_in(tmp_path, monkeypatch, "verdicts_reader_e2e")
    root, scores = _verdicts_project(tmp_path, "verdicts_reader_e2e:VerdictReader")
    # not a registered format: detection does not know it, so only the declared reader reads it
    assert detect_format(root / "results" / "gamma.verdicts") == "generic"

    summary = run_project(root, progress=False)
    assert {"model_results", "slice_accuracy"} <= set(summary["materialized"])

    project = load_project(root)
    res = read_asset(project, "model_results")
    gamma = res.filter(pl.col("model") == "gamma")
    got = dict(zip(gamma["instance_id"].to_list(), gamma["correct"].to_list(), strict=True))
    assert got == scores
    assert set(gamma["response"].to_list()) == {"PASS", "FAIL"}  # only the reader sets these
    assert gamma["latency_s"].to_list() == [0.5 + c for c in gamma["correct"].to_list()]

    # downstream, the plugged-in results count exactly as the same scores from a plain table
    acc = read_asset(project, "slice_accuracy")
    cols = ["skill_id", "n", "n_correct", "accuracy"]
    g = acc.filter(pl.col("model") == "gamma").select(cols).sort("skill_id")
    d = acc.filter(pl.col("model") == "delta").select(cols).sort("skill_id")
    assert g.height > 0 and g.equals(d)
    assert g["accuracy"].n_unique() > 1  # gamma's planted strengths show in its slices


def test_the_reader_resolves_in_another_process(tmp_path, monkeypatch):
    """A Dagster run worker imports the reader by its path in its own process."""
    _plug_in(tmp_path, monkeypatch, "verdicts_reader_proc")
    root, scores = _verdicts_project(tmp_path, "verdicts_reader_proc:VerdictReader")
    code = textwrap.dedent(
        f"""
        from skill_assets.core.registry import load_project
        from skill_assets.ingest.importers import format_key, load_results
        from skill_assets.ingest.instances import load_benchmark
        p = load_project({str(root)!r})
        m = p.model("gamma")
        df = load_results(p.results_path("gamma"), "gamma", "bench", load_benchmark(p, "bench"),
                          m.format, m.options, format_key(p, "models", "gamma"))
        print(int(df["correct"].sum()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert int(out.stdout.strip()) == int(sum(scores.values()))


@pytest.mark.parametrize(
    "fmt, message",
    [
        ("no_such_reader_module:VerdictReader", "cannot import module 'no_such_reader_module'"),
        ("verdicts_reader_bad:Missing", "has no attribute 'Missing'"),
        ("verdicts_reader_bad:NotAReader", "is not a Reader (missing layout, read_instances"),
        ("tsv_scores", "unknown results format 'tsv_scores'"),
    ],
)
def test_a_reader_that_does_not_resolve_names_the_registry_key(tmp_path, monkeypatch, fmt, message):
    _plug_in(tmp_path, monkeypatch, "verdicts_reader_bad")
    root, _ = _verdicts_project(tmp_path, fmt)
    with pytest.raises(RegistryError) as e:
        run_project(root, progress=False)  # the preflight, before Dagster starts
    assert "skill-slices.yaml: key 'models[2].format'" in str(e.value)
    assert message in str(e.value)
    assert not (root / ".skill-slices" / "assets").exists()


def test_the_registry_checks_the_shape_of_format(tmp_path):
    root = write_project(tmp_path / "proj")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "results/all.jsonl\n", "results/all.jsonl\n    format: 'not a format'\n", 1
        )
    )
    with pytest.raises(RegistryError, match=r"key 'models\[0\].format': expected jsonl, csv"):
        load_project(root)


def test_built_in_readers_satisfy_the_protocol(tmp_path):
    from skill_assets.ingest.readers import READERS

    assert list(READERS) == ["lm-eval", "inspect", "helm"]
    assert all(isinstance(r, Reader) for r in READERS.values())
    with pytest.raises(RegistryError, match="unknown results format 'lm_eval'"):
        load_results(tmp_path, "m", "b", pl.DataFrame(), "lm_eval")
