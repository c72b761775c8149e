"""Issue 17: input trust boundaries, loud failure and self-healing state, on temporary projects."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from skill_assets.registry import RegistryError, load_project
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
    from skill_assets.instances import load_benchmark

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
