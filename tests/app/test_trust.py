"""Issue 17: input trust boundaries, loud failure and self-healing state, on temporary projects."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skill_assets.core.registry import RegistryError, load_project
from tests.conftest import write_project

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _cli(*args, env=None):
    exe = Path(sys.executable).parent / "skill-slices"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


def _with_image(root: Path, row: int, image: str) -> None:
    path = root / "data" / "bench.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[row]["image"] = image
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


# ------------------------------------------------------------------ 1. paths stay inside
def test_paths_from_data_stay_inside_the_project(tmp_path):
    from skill_assets.ingest.instances import load_benchmark

    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    root = write_project(tmp_path / "p", n_per_subject=4)
    (root / "data" / "pic.png").write_bytes(PNG)
    (root / "data" / "notes.png").write_text("not an image at all")
    (root / "data" / "link.png").symlink_to(outside)

    _with_image(root, 2, "pic.png")
    df = load_benchmark(load_project(root), "bench")
    assert df["image"][2] == str((root / "data" / "pic.png").resolve())

    bad = {
        "../../secret.png": "outside the project",
        "/etc/hostname": "outside the project",
        "link.png": "outside the project",  # a symlink is resolved before the check
        "notes.png": "not a PNG, JPEG, GIF or WebP image",  # the bytes decide, not the name
        "missing.png": "does not exist",
    }
    for image, problem in bad.items():
        _with_image(root, 2, image)
        with pytest.raises(RegistryError) as e:
            load_benchmark(load_project(root), "bench")
        msg = str(e.value)
        assert problem in msg and "row 3" in msg and "field 'image'" in msg, msg
        assert "bench.jsonl" in msg
        if image == "/etc/hostname":  # the same one line from the command, before any call
            out = _cli("run", "--project", str(root), "--quiet")
            assert out.returncode == 2 and problem in out.stderr, out.stderr
            assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1
            assert not (root / ".skill-slices" / "llm_calls.sqlite").exists()

    # results folders: a file inside linking out is rejected, as is a linked folder
    _with_image(root, 2, "pic.png")
    lm = root / "results" / "lm"
    lm.mkdir()
    (tmp_path / "outside.jsonl").write_text("{}\n")
    (lm / "samples_bench_2024-01-01T00-00-00.000000.jsonl").symlink_to(tmp_path / "outside.jsonl")
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text().replace(
            "models:\n", "models:\n  - name: lm\n    results: results/lm\n    format: lm-eval\n"
        )
    )
    with pytest.raises(RegistryError, match="links outside the project folder"):
        load_project(root)
    (lm / "samples_bench_2024-01-01T00-00-00.000000.jsonl").unlink()
    (lm / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(RegistryError, match=r"models\[0\].results.*links outside"):
        load_project(root)
    # a skills file given as a symlink to the outside
    (lm / "sub").unlink()
    reg.write_text(
        reg.read_text().replace("  - name: lm\n    results: results/lm\n    format: lm-eval\n", "")
    )
    (root / "skills.jsonl").symlink_to(tmp_path / "outside.jsonl")
    reg.write_text(
        reg.read_text().replace(
            "path: data/bench.jsonl", "path: data/bench.jsonl\n    skills: skills.jsonl"
        )
    )
    with pytest.raises(RegistryError, match=r"benchmarks\[0\].skills.*escapes the project"):
        load_project(root)


# ------------------------------------------------- a project run once for items 3, 4 and 5
ATTACK = (
    "![pixel](http://evil.example/pixel.png) <img src=http://evil.example/i.png>"
    " [click](http://evil.example/x) <http://evil.example/auto> <b>bold</b> a|b `tick`"
)
SKILLS = {  # bring-your-own skill labels per subject (general > specific)
    "arithmetic": "Mathematics > Arithmetic > Addition",
    "chemistry": "Science > Chemistry > Stoichiometry",
    "geography": "Knowledge > Geography > Capitals",
    "python": "Programming > Python > Strings",
    # an annotator (or a file) may return a remote image as a skill name
    "grammar": "Language > Grammar > ![g](http://evil.example/skill.png)",
}


@pytest.fixture(scope="module")
def byo_project(tmp_path_factory):
    """Plain data with a `skills_column`, a question carrying Markdown/HTML that would fetch
    remote resources, and a model whose results name no known instance (ignore_unknown)."""
    root = write_project(tmp_path_factory.mktemp("byo") / "p", n_per_subject=8)
    path = root / "data" / "bench.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for r in rows:
        r["skills"] = SKILLS[r["subject"]]
    rows[0]["question"] = "What is 2 plus 3? " + ATTACK
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "results" / "ghost.jsonl").write_text(
        json.dumps({"instance_id": "no-such-id", "correct": 1}) + "\n"
    )
    # a second benchmark whose skills come in a separate `skills:` file
    extra = [
        {"instance_id": f"e{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)}
        for i in range(6)
    ]
    (root / "data" / "extra.jsonl").write_text("\n".join(json.dumps(r) for r in extra) + "\n")
    (root / "data" / "extra_skills.jsonl").write_text(
        "\n".join(
            json.dumps({"instance_id": r["instance_id"], "skills": SKILLS["arithmetic"]})
            for r in extra
        )
        + "\n"
    )
    reg = root / "skill-slices.yaml"
    reg.write_text(
        reg.read_text()
        .replace(
            "path: data/bench.jsonl",
            "path: data/bench.jsonl\n    skills_column: skills\n"
            "  - name: extra\n    path: data/extra.jsonl\n    skills: data/extra_skills.jsonl",
        )
        .replace(
            "models:\n",
            "models:\n  - name: ghost\n    results: results/ghost.jsonl\n"
            "    options:\n      ignore_unknown: true\n",
        )
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = _cli("run", "--project", str(root), env=env)
    return root, run, env


def _md_values(root: Path) -> dict[str, str]:
    """Every Markdown metadata value of every asset's latest materialization."""
    from dagster import AssetKey, DagsterInstance, MarkdownMetadataValue

    from skill_assets.app.runner import prepare_dagster_home

    prepare_dagster_home(load_project(root))
    instance = DagsterInstance.get()
    out = {}
    try:
        for key in instance.get_asset_keys():
            for rec in instance.fetch_materializations(AssetKey(key.path), limit=20).records:
                mat = rec.asset_materialization
                for name, value in mat.metadata.items():
                    if isinstance(value, MarkdownMetadataValue):
                        out[f"{key.to_user_string()}[{mat.partition}].{name}"] = value.value
    finally:
        instance.dispose()
    return out


def _fetching_tokens(markdown: str) -> list[str]:
    """Images (other than our inline data: PNGs), links and raw HTML, as markdown-it sees them."""
    from markdown_it import MarkdownIt

    bad, stack = [], list(MarkdownIt("commonmark").enable("table").parse(markdown))
    while stack:
        t = stack.pop()
        src = str(t.attrs.get("src", ""))
        if t.type == "image" and not src.startswith("data:image/png;base64,"):
            bad.append(src)
        if t.type == "link_open" or t.type.startswith("html"):
            bad.append(t.type)
        stack.extend(t.children or [])
    return bad


# ------------------------------------------------------------- 3. no fetch from metadata
def test_markdown_metadata_never_fetches_and_shows_text_faithfully(byo_project):
    from markdown_it import MarkdownIt

    root, run, _ = byo_project
    values = _md_values(root)
    assert any(k.startswith("benchmark_instances") for k in values), sorted(values)
    assert any(k.startswith("skill_insights") for k in values), sorted(values)
    for name, md in values.items():
        assert _fetching_tokens(md) == [], name
        assert "evil.example" not in "".join(_fetching_tokens(md))
    # the question's text is shown as it is (escaped, not stripped), as far as the preview goes
    html = (
        MarkdownIt("commonmark")
        .enable("table")
        .render(values["benchmark_instances[bench].preview"])
    )
    shown = ATTACK[:40].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown in html.replace("&quot;", '"'), html[:2000]
    # the HTML report neither loads nor links remote resources from data
    report = _cli("report", "--project", str(root), env=byo_project[2])
    assert report.returncode == 0, report.stderr[-2000:]
    page = Path(report.stdout.strip().splitlines()[-1]).read_text()
    assert 'src="http' not in page and 'href="http://evil' not in page


# --------------------------------------------------------- 4. bring-your-own skills work
def test_bring_your_own_skills_end_to_end(byo_project):
    import polars as pl

    from skill_assets.core.store import read_asset

    root, run, env = byo_project
    project = load_project(root)
    mentions = read_asset(project, "skill_mentions")
    assert mentions["span"].null_count() == mentions.height  # imported: no spans at all
    assert mentions.filter(pl.col("level") == 0)["skill_name"].n_unique() == len(SKILLS)
    extra = mentions.filter(pl.col("benchmark") == "extra")
    assert extra["uid"].n_unique() == 6 and extra["level"].max() == 2  # from the skills file
    insights = read_asset(project, "skill_insights")
    assert insights is not None and insights.height > 0
    iid = insights["insight_id"][0]
    out = _cli("explain", iid, "--project", str(root), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no span" in out.stdout and iid in out.stdout
    js = _cli("explain", iid, "--json", "--project", str(root), env=env)
    assert js.returncode == 0 and iid in js.stdout
    assert all(st["span"] is None for i in json.loads(js.stdout)["instances"] for st in i["steps"])


# ------------------------------------------------------------------- 5. failure is loud
def test_a_model_without_results_fails_the_run_loudly(byo_project):
    root, run, _ = byo_project
    assert run.returncode == 1, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["models"] == {"ghost": 0, "alpha": 40, "beta": 40}
    errors = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "model 'ghost': no results on any benchmark" in errors[0]


def test_failures_and_silent_options_are_loud(tmp_path):
    from tests.defs.test_graph_llm import responder
    from tests.fake_openai_server import FakeOpenAIServer

    root = write_project(tmp_path / "p", n_per_subject=2)
    reg = root / "skill-slices.yaml"
    base = reg.read_text()

    # a typo'd results path on a model that also has a provider: an error, except for evaluate
    reg.write_text(
        base.replace(
            "models:\n",
            "models:\n  - name: live\n    provider: openai-compatible\n    model: m\n"
            "    base_url: http://127.0.0.1:9/v1\n    results: results/lvie.jsonl\n",
        )
    )
    with pytest.raises(RegistryError, match=r"models\[0\].results.*does not exist.*evaluate"):
        load_project(root)
    assert load_project(root, allow_missing_results=True).results_path("live") is None

    # a key given twice: the last value would silently win
    reg.write_text(base.replace("routing:\n", "routing:\n  shrink: 1\n  shrink: 2\n"))
    with pytest.raises(RegistryError, match=r"line \d+: .*duplicate key 'shrink'"):
        load_project(root)

    # options that would do nothing are rejected; ignore_unknown does what it says
    reg.write_text(
        base.replace(
            "    path: data/bench.jsonl\n",
            "    path: data/bench.jsonl\n    options:\n      task: x\n",
        )
    )
    with pytest.raises(RegistryError, match=r"benchmarks\[0\].options.*harness outputs"):
        load_project(root)
    with_opts = base.replace(
        "  - name: alpha\n    results: results/all.jsonl\n",
        "  - name: alpha\n    results: results/all.jsonl\n    options:\n      metric: acc\n",
    )
    reg.write_text(with_opts)
    from skill_assets.app.runner import preflight

    # Whether a results file is generic is the readers' call (the ingest layer), so this
    # one is refused by the preflight every command runs before it writes anything.
    with pytest.raises(RegistryError, match=r"models\[0\].options.metric.*generic results"):
        preflight(load_project(root))
    reg.write_text(
        base.replace("  provider: taxonomy\n", "  provider: taxonomy\n  model: gpt-4o\n")
    )
    with pytest.raises(RegistryError, match="'model' does nothing for the offline taxonomy"):
        load_project(root)

    with (root / "results" / "all.jsonl").open("a") as fh:
        fh.write(json.dumps({"instance_id": "stray", "model": "alpha", "correct": 1}) + "\n")
    reg.write_text(base)
    with pytest.raises(RegistryError, match="unknown instance_id 'stray'"):
        preflight(load_project(root))
    reg.write_text(with_opts.replace("metric: acc", "ignore_unknown: true"))
    preflight(load_project(root))  # the stray row is skipped, as the option says

    # every annotator call fails: one clear line, non-zero exit, nothing half-built
    lines = (root / "results" / "all.jsonl").read_text().splitlines()
    (root / "results" / "all.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with FakeOpenAIServer(responder=responder, faults=lambda body: "500") as srv:
        reg.write_text(
            base.replace(
                "annotator:\n  provider: taxonomy\n",
                f"annotator:\n  provider: openai-compatible\n  model: a\n"
                f"  base_url: {srv.base_url}\n  max_retries: 0\n",
            )
        )
        out = _cli("run", "--project", str(root), "--quiet")
        assert out.returncode == 2, out.stderr[-3000:]
        assert "ColumnNotFoundError" not in out.stderr and "Traceback" not in out.stderr
        line = out.stderr.strip().splitlines()[-1]
        assert line.startswith("error: rationales [bench]: all 10 LLM calls failed (first error:")
        assert "base_url" in line and "run again" in line
        assert not (root / ".skill-slices" / "assets" / "skill_embeddings.parquet").exists()

        # two benchmarks failing in one run: one line per cause, not just the first
        shutil.copy(root / "data" / "bench.jsonl", root / "data" / "second.jsonl")
        reg.write_text(
            reg.read_text().replace(
                "    path: data/bench.jsonl\n",
                "    path: data/bench.jsonl\n  - name: second\n    path: data/second.jsonl\n",
            )
        )
        out = _cli("run", "--project", str(root), "--quiet")
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 2, out.stderr[-3000:]
    assert errors[0].startswith("error: rationales [bench]: all 10 LLM calls failed")
    assert errors[1].startswith("error: rationales [second]: all 10 LLM calls failed")


# ------------------------------------------------------- 6. damaged state is healed
def test_damaged_state_is_detected_and_healed(byo_project, tmp_path):
    import shutil

    import polars as pl

    from skill_assets.core.store import read_asset

    src, _, env = byo_project
    root = tmp_path / "copy"
    shutil.copytree(src, root, symlinks=True)
    state = root / ".skill-slices"
    assets = state / "assets"
    (assets / "model_results" / "bench" / "beta.parquet").unlink()
    (assets / "rationales" / "bench.parquet").unlink()
    (assets / "skill_insights.parquet").write_bytes(b"PAR1" + b"garbage" * 100 + b"PAR1")
    fragment = next((state / "lancedb").rglob("data/*.lance"))
    fragment.write_bytes(fragment.read_bytes()[:100])

    # reading commands refuse to answer from partial state (2 of 3 models)
    for cmd in (["report"], ["insights"]):
        out = _cli(*cmd, "--project", str(root), env=env)
        assert out.returncode == 2, out.stdout[-2000:]
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert ".parquet: missing" in out.stderr and "skill-slices run" in out.stderr
        assert "(and 2 more)" in out.stderr  # results, insights, vectors (not rationales)
    doctor = _cli("doctor", "--project", str(root), env=env)
    assert doctor.returncode == 1
    found = doctor.stdout
    for what in (
        "beta.parquet: missing",
        "rationales/bench.parquet",
        "skill_insights.parquet",
        "unreadable LanceDB table",
    ):
        assert what in found, found

    run = _cli("run", "--project", str(root), "--quiet", env=env)
    assert "state damaged: model_results [bench|beta]" in run.stderr, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"model_results", "rationales", "skill_embeddings", "skill_insights"} <= set(
        summary["materialized"]
    )
    assert summary["models"] == {"ghost": 0, "alpha": 40, "beta": 40}
    again = _cli("doctor", "--project", str(root), env=env)
    assert again.returncode == 0 and again.stdout.strip() == "state ok", again.stdout
    project = load_project(root)
    assert set(read_asset(project, "model_results")["model"].unique()) == {"alpha", "beta"}
    assert (
        read_asset(project, "skill_insights").height
        == read_asset(load_project(src), "skill_insights").height
    )
    assert read_asset(project, "rationales").filter(pl.col("error").is_null()).height == 46

    # stores nothing rebuilds: one line naming the file and the fix; doctor sets them aside
    (state / "llm_calls.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    index = state / "dagster" / "history" / "runs" / "index.db"
    index.write_bytes(b"this is not a database" * 10)
    for cmd in (["run", "--quiet"], ["doctor"]):
        out = _cli(*cmd, "--project", str(root), env=env)
        assert out.returncode != 0
        text = out.stderr.strip() if cmd[0] == "run" else out.stdout.strip()
        assert "Traceback" not in out.stderr and str(index) in text, (out.stdout, out.stderr)
        assert "llm_calls.sqlite" in text and "doctor --repair" in text
    fixed = _cli("doctor", "--repair", "--project", str(root), env=env)
    assert fixed.returncode == 0 and fixed.stdout.count("repaired:") == 2, fixed.stdout
    rerun = _cli("run", "--quiet", "--project", str(root), env=env)
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["models"]["beta"] == 40
    assert _cli("doctor", "--project", str(root), env=env).stdout.strip() == "state ok"


# ------------------------------------------------------------ 7. metadata stays small
def test_one_huge_question_keeps_the_dagster_instance_small(tmp_path):
    from dagster import AssetKey, DagsterInstance, materialize

    from skill_assets.app.runner import QUIET, prepare_dagster_home, sync_partitions
    from skill_assets.defs.definitions import build_definitions

    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    root = write_project(tmp_path / "p", n_per_subject=2)
    path = root / "data" / "bench.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["question"] = "What is this? " + "lorem ipsum " * (50 * 2**20 // 12)  # 50 MB
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    project = load_project(root)
    prepare_dagster_home(project)
    defs = build_definitions(root)
    instance = DagsterInstance.get()
    try:
        sync_partitions(instance, project)
        before = size(project.dagster_home)
        result = materialize(
            list(defs.assets),
            instance=instance,
            resources=defs.resources,
            partition_key="bench",
            selection=[AssetKey("benchmark_instances")],
            run_config=QUIET,
        )
        assert result.success
        growth = size(project.dagster_home) - before
        mat = result.asset_materializations_for_node("benchmark_instances")[0]
    finally:
        instance.dispose()
    assert growth < 5 * 2**20, f"the instance grew by {growth / 2**20:.1f} MB"
    assert "table" not in mat.metadata and "stats" not in mat.metadata
    assert mat.metadata["dagster/partition_row_count"].value == 10  # the useful parts remain
    assert "lorem ipsum" in mat.metadata["preview"].value  # a bounded preview, not nothing
