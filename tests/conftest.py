"""Shared fixtures: small real projects in temporary folders."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Written out, not derived from the code, so a missing or renamed asset fails the tests.
EXPECTED_ASSETS = {
    "benchmark_instances",
    "model_results",
    "rationales",
    "skill_mentions",
    "skill_embeddings",
    "skill_slices",
    "slice_accuracy",
    "skill_insights",
    "routing_policy",
    "routing_evaluation",
    "model_evolution",
    "dataset_view",
    "skill_verification",
    "probe_consistency",
}

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Question templates per subject; each subject should land in a different skill.
SUBJECTS = {
    "arithmetic": ("What is {a} plus {b}?", lambda a, b: str(a + b)),
    "chemistry": (
        "How many grams are in {a} moles of a compound whose molar mass is {b} g/mol?",
        lambda a, b: str(a * b),
    ),
    "geography": ("Which country has the capital city number {a}{b} on the atlas list?", None),
    "python": ("What does the Python expression len('{a}' * {b}) evaluate to?", None),
    "grammar": ("Choose the correct verb tense for sentence {a}-{b} about yesterday's trip.", None),
}


def write_project(
    root: Path,
    n_per_subject: int = 24,
    models: dict[str, dict[str, float]] | None = None,
    seed: int = 0,
    extra_registry: str = "",
) -> Path:
    """A small project: one benchmark over five subjects, generic results per model.

    `models` maps a model name to its per-subject probability of being correct;
    the fixture draws correctness with a fixed seed (test data, not model output).
    """
    rng = random.Random(seed)
    models = models or {
        "alpha": {
            "arithmetic": 0.9,
            "chemistry": 0.2,
            "geography": 0.6,
            "python": 0.5,
            "grammar": 0.5,
        },
        "beta": {
            "arithmetic": 0.3,
            "chemistry": 0.9,
            "geography": 0.6,
            "python": 0.5,
            "grammar": 0.5,
        },
    }
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    for subject, (template, _) in SUBJECTS.items():
        for i in range(n_per_subject):
            a, b = rng.randint(2, 40), rng.randint(2, 9)
            rows.append(
                {
                    "instance_id": f"{subject}-{i}",
                    "question": template.format(a=a, b=b),
                    "options": [str(a), str(b), str(a + b), str(a * b)],
                    "answer": "C",
                    "subject": subject,
                }
            )
    (root / "data" / "bench.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = []
    for m, probs in models.items():
        for r in rows:
            res.append(
                {
                    "instance_id": r["instance_id"],
                    "model": m,
                    "correct": int(rng.random() < probs[r["subject"]]),
                }
            )
    (root / "results").mkdir(exist_ok=True)
    (root / "results" / "all.jsonl").write_text("\n".join(json.dumps(r) for r in res) + "\n")
    model_lines = "\n".join(f"  - name: {m}\n    results: results/all.jsonl" for m in models)
    (root / "skill-slices.yaml").write_text(
        f"""annotator:
  provider: taxonomy
benchmarks:
  - name: bench
    path: data/bench.jsonl
models:
{model_lines}
slices:
  min_slice_size: 5
routing:
  metadata_column: subject
{extra_registry}"""
    )
    return root


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")
