"""One run per project at a time: a second run waits, or fails fast with a clear error."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from skill_assets.app.runner import ProjectBusy, project_lock, run_project
from skill_assets.core.registry import load_project
from tests.conftest import write_project

# Another run, in its own process: the real lock, held for argv[2] seconds.
HOLD = """
import sys, time
from skill_assets.app.runner import project_lock
from skill_assets.core.registry import load_project
with project_lock(load_project(sys.argv[1]), wait=False):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(root, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_busy_project_fails_fast_naming_the_holder(tmp_path):
    root = write_project(tmp_path / "p", n_per_subject=4)
    project = load_project(root)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    holder = _hold(root, 30)
    try:
        with pytest.raises(ProjectBusy, match=rf"another run is in progress \(pid {holder.pid}\)"):
            run_project(root, progress=False, wait=False)
        assert not (project.state_dir / "assets").exists()  # nothing was written
    finally:
        holder.kill()
        holder.wait()
    # a killed holder releases the lock: the next run proceeds
    with project_lock(project, wait=False):
        pass


def test_second_run_waits_for_the_first(tmp_path):
    root = write_project(tmp_path / "p", n_per_subject=4)
    project = load_project(root)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    holder = _hold(root, 1.5)
    messages: list[str] = []
    t0 = time.monotonic()
    with project_lock(project, wait=True, log=messages.append):
        waited = time.monotonic() - t0
    holder.wait()
    assert waited > 0.5 and any("waiting" in m for m in messages)
