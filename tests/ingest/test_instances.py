"""Input loaders: clean errors naming file and line."""

import json

import pytest

from skill_assets.core.registry import RegistryError
from skill_assets.ingest.instances import load_instances
from skill_assets.ingest.results import check_unknown, load_generic_results


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_instances_roundtrip(tmp_path):
    p = _write(
        tmp_path / "b.jsonl",
        [{"instance_id": 1, "question": "q?", "answer": "A", "options": ["x", "y"], "topic": "t"}],
    )
    df = load_instances(p, "b")
    assert df["uid"].to_list() == ["b/1"]
    assert df["options"].to_list() == [["x", "y"]]
    assert json.loads(df["metadata"][0]) == {"topic": "t"}


@pytest.mark.parametrize(
    "content, needle",
    [
        (
            '{"instance_id": 1, "question": "q", "answer": "a"}\n{"instance_id": 1, "question": "q", "answer": "a"}\n',
            "row 2: duplicate instance_id '1'",
        ),
        ('{"instance_id": 1, "question": "q"}\n', "row 1: missing 'answer'"),
        ('{"instance_id": 1, "question": "q", "answer": "a"}\n{not json\n', "line 2: invalid JSON"),
        ("", "file is empty"),
    ],
)
def test_instance_errors(tmp_path, content, needle):
    p = tmp_path / "b.jsonl"
    p.write_text(content)
    with pytest.raises(RegistryError) as e:
        load_instances(p, "b")
    assert needle in str(e.value) and str(p) in str(e.value)


def test_wrong_encoding(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes('{"instance_id": 1, "question": "caf\xe9", "answer": "a"}\n'.encode("latin-1"))
    with pytest.raises(RegistryError, match="not UTF-8"):
        load_instances(p, "b")


def test_results_select_model_and_validate(tmp_path):
    inst = load_instances(
        _write(
            tmp_path / "b.jsonl",
            [{"instance_id": i, "question": "q", "answer": "a"} for i in range(3)],
        ),
        "b",
    )
    res = _write(
        tmp_path / "r.jsonl",
        [
            {"instance_id": i, "model": m, "correct": c}
            for i in range(3)
            for m, c in (("m1", 1), ("m2", False))
        ],
    )
    df = load_generic_results(res, "m2", inst)
    assert df["correct"].to_list() == [0.0, 0.0, 0.0]
    bad = _write(tmp_path / "bad.jsonl", [{"instance_id": 0, "correct": 2}])
    with pytest.raises(RegistryError, match=r"row 1: 'correct' is 2"):
        load_generic_results(bad, "m", inst)
    unknown = _write(tmp_path / "u.jsonl", [{"instance_id": 99, "correct": 1}])
    with pytest.raises(RegistryError, match="unknown instance_id '99'"):
        check_unknown(unknown, "m", {"b": {"0", "1", "2"}}, None)


def test_loaders_only_raise_registry_errors_on_random_input(tmp_path_factory):
    """Adversarial bytes and JSON never crash the instance/results loaders."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("fuzz")
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
    rows = st.lists(
        st.dictionaries(
            st.sampled_from(["instance_id", "question", "answer", "options", "correct", "model"]),
            st.one_of(scalars, st.lists(scalars, max_size=3)),
        ),
        max_size=4,
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.binary(max_size=200),
            rows.map(lambda r: "\n".join(json.dumps(x) for x in r).encode()),
        )
    )
    def check(data):
        for suffix in (".jsonl", ".csv"):
            p = folder / f"x{suffix}"
            p.write_bytes(data)
            try:
                inst = load_instances(p, "b")
            except RegistryError:
                inst = None
            if inst is not None:
                try:
                    load_generic_results(p, "m", inst)
                except RegistryError:
                    pass

    check()
