"""The pictures and tables render where people read them: the Dagster UI and the HTML report.

Drives Debian's headless Chromium with Playwright for Python (no browser
download: ``executable_path`` points at the system binary). Skips cleanly when
Chromium or Playwright is absent. Install for CI (Debian, root):

    apt-get update && apt-get install -y chromium
    .venv/bin/pip install playwright        # never `playwright install`

On a copy of the demo project after a run it starts ``skill-slices ui`` on a
free 127.0.0.1 port in its own process group, opens the ``skill_insights``
asset page, checks that the findings table and a strengths/weaknesses plot
render, saves screenshots under ``docs/screenshots/`` (or
``$SKILL_SLICES_SCREENSHOTS``), stops the UI by process group and checks that
every process of the group is gone. Then it opens the HTML report with the
network blocked and checks that every image loads.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = (
    os.environ.get("SKILL_SLICES_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("SKILL_SLICES_SCREENSHOTS", REPO / "docs" / "screenshots"))
DEMO_MODELS = ("smollm2-135m-zero-shot", "smollm2-135m-cot", "gemma3-270m-few-shot")

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install playwright)"
)


def _exe(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _env() -> dict:
    env = os.environ.copy()
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the command name, which is in parentheses and may hold spaces
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A copy of the live example (plus one version pair to compare), after `run`."""
    root = tmp_path_factory.mktemp("browser") / "demo"
    shutil.copytree(
        REPO / "examples" / "live", root, ignore=shutil.ignore_patterns(".skill-slices")
    )
    reg = root / "skill-slices.yaml"
    if "compare:" not in reg.read_text():
        reg.write_text(
            reg.read_text() + "\ncompare:\n  - [smollm2-135m-zero-shot, smollm2-135m-cot]\n"
        )
    out = subprocess.run(
        [_exe("skill-slices"), "run", "--project", str(root), "--quiet"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _start_ui(root: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [_exe("skill-slices"), "ui", "--project", str(root), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,  # its own process group, stopped as one
        )
    deadline = time.monotonic() + 240
    url = f"http://127.0.0.1:{port}/server_info"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster UI exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(1)
    _stop_ui(proc)
    pytest.fail(f"dagster UI did not answer within 240 s:\n{log.read_text()[-3000:]}")


def _stop_ui(proc: subprocess.Popen) -> list[int]:
    """SIGINT the whole group, escalate if needed; returns the group's survivors (none)."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if proc.returncode is not None and not _group_members(pgid):
                return []
            time.sleep(0.5)
    proc.poll()
    return _group_members(pgid)


def test_dagster_ui_shows_findings_and_plots(demo_run, browser, tmp_path):
    port = _free_port()
    proc = _start_ui(demo_run, port, tmp_path / "ui.log")
    pgid = proc.pid
    try:
        page = browser.new_page(viewport={"width": 2400, "height": 1200})
        page.goto(f"http://127.0.0.1:{port}/assets/skill_insights", wait_until="domcontentloaded")
        # the findings table (a table metadata entry) renders inline on the asset page
        row = page.locator("tr", has_text="top_findings").first
        row.wait_for(state="visible", timeout=120_000)
        table = row.locator("table").first
        table.wait_for(state="visible", timeout=30_000)
        headers = [h.strip() for h in table.locator("th").all_inner_texts()]
        for col in ("skill", "kind", "model", "effect_pts", "q", "n", "acc_pct_ci"):
            assert col in headers, headers
        body = table.locator("tbody tr")
        assert body.count() >= 5
        text = table.inner_text()
        assert any(m in text for m in DEMO_MODELS)
        SHOTS.mkdir(parents=True, exist_ok=True)
        row.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SHOTS / "dagster_skill_insights_findings.png"))

        # the strengths/weaknesses dot plots: a Markdown entry with inline PNGs
        plot_row = page.locator("tr", has_text="strengths_weaknesses").first
        plot_row.get_by_text("[Show Markdown]").click()
        dialog = page.locator("[role=dialog]").first
        dialog.wait_for(state="visible", timeout=30_000)
        img = dialog.locator("img").first
        img.wait_for(state="visible", timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[role=dialog] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        images = dialog.locator("img").evaluate_all(
            "els => els.map(e => [e.getAttribute('src').slice(0, 22), e.naturalWidth])"
        )
        assert len(images) == len(DEMO_MODELS)
        assert all(src == "data:image/png;base64," and w > 300 for src, w in images)
        page.screenshot(path=str(SHOTS / "dagster_skill_insights_plot.png"))
        page.close()
    finally:
        survivors = _stop_ui(proc)
    assert proc.returncode is not None, "dagster dev is still running"
    assert survivors == [], f"processes left in group {pgid}: {survivors}"
    assert not _port_open(port), f"port {port} still answers after the UI stopped"


def test_html_report_renders_offline(demo_run, browser):
    out = subprocess.run(
        [_exe("skill-slices"), "report", "--project", str(demo_run)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.exists()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    requested: list[str] = []

    def block(route):
        requested.append(route.request.url)
        route.abort()

    context.route("http://*/**", block)
    context.route("https://*/**", block)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    assert page.locator("h1").inner_text() == "skill-slices report"
    for section in ("Findings", "Model evolution", "Dataset view", "Routing"):
        assert page.locator("h2", has_text=section).count() == 1, section
    findings = page.locator("table.findings tbody tr")
    # The report lists the significant findings (all tested ones when none is), minus
    # effects too small to show: exactly those rows, read back from the asset.
    import polars as pl

    from skill_assets.present import plots

    ins = pl.read_parquet(demo_run / ".skill-slices" / "assets" / "skill_insights.parquet")
    listed = ins.filter(pl.col("significant")) if ins["significant"].any() else ins
    expected = listed.filter(pl.col("effect").abs() >= plots.MIN_SHOWN_EFFECT).height
    assert expected >= 1
    assert findings.count() == expected
    headers = page.locator("table.findings th").all_inner_texts()
    for col in ("n", "ci_low", "ci_high", "p", "q"):
        assert col in headers
    images = page.locator("img").evaluate_all(
        "els => els.map(e => [e.complete, e.naturalWidth, e.src.slice(0, 22)])"
    )
    # a dot plot per model, the heat map, evolution bars, dataset view, routing bars
    assert len(images) == len(DEMO_MODELS) + 4
    assert all(ok and w > 300 and src == "data:image/png;base64," for ok, w, src in images)
    assert requested == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report_top.png"))
    page.locator("figure").first.screenshot(path=str(SHOTS / "report_strengths.png"))
    page.locator("h2", has_text="Model evolution").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "report_evolution.png"))
    context.close()
