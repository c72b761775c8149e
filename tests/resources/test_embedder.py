"""The embedder's ONNX Runtime backend reproduces sentence-transformers (real MiniLM).

The export is made by a real process into a temporary cache folder; a second process
embeds through it without importing torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skill_assets.resources.embedder import BACKEND_ENV, CACHE_ENV

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "What is 17 × 23?",
    "Which organelle produces ATP in eukaryotic cells?",
    "x = [1, 2, 3]\nprint(sum(v * v for v in x))",
    "Calculate the molar mass of calcium carbonate (CaCO3).",
    "¿Cuál es la derivada de sin(x) · e^x?",
    " ".join(["The court held that the statute did not apply retroactively."] * 50),
    "",
]

_SCRIPT = """
import json, sys
import numpy as np
from skill_assets.resources.embedder import Embedder, _load_encoder
texts = json.loads(sys.argv[1])
emb = Embedder()
vecs = emb.encode(texts)
np.save(sys.argv[2], vecs)
print(json.dumps({
    "encoder": type(_load_encoder(emb.model)).__name__,
    "torch": "torch" in sys.modules,
    "dim": emb.dim,
}))
"""


def _embed(tmp_path: Path, name: str, env: dict) -> tuple[dict, np.ndarray]:
    out_file = tmp_path / f"{name}.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(TEXTS), str(out_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out_file)


def test_onnx_export_matches_sentence_transformers_and_skips_torch(tmp_path):
    cache = {CACHE_ENV: str(tmp_path / "cache")}
    ref, want = _embed(tmp_path, "torch", {**cache, BACKEND_ENV: "torch"})
    assert ref["encoder"] == "SentenceTransformer" and ref["dim"] == 384
    assert not (tmp_path / "cache").exists()  # the torch backend exports nothing

    first, got_first = _embed(tmp_path, "first", cache)  # exports, checks, then uses it
    assert first["encoder"] == "OnnxEncoder"
    exports = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(exports) == 1 and not list((tmp_path / "cache" / "onnx").glob("*.tmp"))

    second, got = _embed(tmp_path, "second", cache)  # reuses the export: no torch at all
    assert second == {"encoder": "OnnxEncoder", "torch": False, "dim": 384}
    np.testing.assert_array_equal(got, got_first)
    assert got.shape == want.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float((got * want).sum(axis=1).min()) > 0.99999


def test_unknown_backend_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(["x"]), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), BACKEND_ENV: "gpu"},
        timeout=600,
    )
    assert proc.returncode != 0
    assert f"{BACKEND_ENV}='gpu'" in proc.stderr


@pytest.mark.parametrize("backend", ["onnx"])
def test_forced_onnx_backend_fails_loudly_when_the_cache_is_unwritable(tmp_path, backend):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(["x"]), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            BACKEND_ENV: backend,
            CACHE_ENV: str(blocker / "sub"),
        },
        timeout=600,
    )
    assert proc.returncode != 0
    assert "not-a-folder" in proc.stderr
