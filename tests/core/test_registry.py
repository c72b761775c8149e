"""Registry validation: every error names the file, the key and the problem."""

from pathlib import Path

import pytest

from skill_assets.core.registry import RegistryError, load_project
from tests.conftest import write_project


def _reg(tmp_path: Path, text: str) -> Path:
    write_project(tmp_path)
    (tmp_path / "skill-slices.yaml").write_text(text)
    return tmp_path


def test_valid_project_loads(small_project):
    p = load_project(small_project)
    assert [b.name for b in p.registry.benchmarks] == ["bench"]
    assert p.registry.annotator.provider == "taxonomy"
    assert p.state_dir == small_project.resolve() / ".skill-slices"


@pytest.mark.parametrize(
    "body, needle",
    [
        (
            "benchmarks:\n  - name: b\n    path: data/bench.jsonl\n    colour: red\n",
            "benchmarks[0].colour': unknown key",
        ),
        (
            "benchmarks:\n  - name: b\n    path: data/missing.jsonl\n",
            "benchmarks[0].path': path 'data/missing.jsonl' does not exist",
        ),
        ("benchmarks:\n  - name: b\n    path: ../outside.jsonl\n", "escapes the project folder"),
        ("benchmarks: []\n", "key 'benchmarks'"),
        (
            "benchmarks:\n  - name: b\n    path: data/bench.jsonl\nmodels:\n  - name: m\n",
            "models[0]",
        ),
        (
            "annotator:\n  provider: openai\nbenchmarks:\n  - name: b\n    path: data/bench.jsonl\n",
            "needs a model",
        ),
        ("benchmarks: [\n", "invalid YAML"),
    ],
)
def test_registry_errors_name_file_and_key(tmp_path, body, needle):
    (tmp_path / "outside.jsonl").write_text("{}\n")
    root = _reg(tmp_path / "p", body)
    with pytest.raises(RegistryError) as e:
        load_project(root)
    msg = str(e.value)
    assert "skill-slices.yaml" in msg
    assert needle in msg
    assert "\n" not in msg


def test_default_key_env_is_providers_usual(tmp_path):
    root = _reg(
        tmp_path,
        "annotator:\n  provider: anthropic\n  model: claude\nbenchmarks:\n  - name: b\n    path: data/bench.jsonl\n",
    )
    assert load_project(root).registry.annotator.api_key_env == "ANTHROPIC_API_KEY"
