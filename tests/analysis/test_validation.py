"""Skill validation (verification, probing) and bring-your-own skills, through real HTTP."""

from __future__ import annotations

import json
import random
import re
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from skill_assets.analysis.validation import (
    ANSWER_SYSTEM,
    JUDGE_SYSTEM,
    PROBE_SYSTEM,
    VERIFY_SYSTEM,
    confusion,
    parse_probes,
    parse_relevant,
    probe_targets,
    relevance_rates,
    sample_negatives,
    yes_no,
)
from skill_assets.annotate.imported_skills import (
    imported_frames,
    read_skills_file,
    skills_from_column,
    steps_from_record,
)
from skill_assets.app.runner import run_project
from skill_assets.core.registry import RegistryError, load_project
from skill_assets.core.store import read_asset
from skill_assets.ingest.instances import load_instances
from tests.conftest import write_project
from tests.fake_openai_server import FakeOpenAIServer, last_user_text

# --------------------------------------------------------------------------- pure pieces


def test_negatives_are_never_close_to_a_listed_skill():
    rng = np.random.default_rng(0)
    corpus = [f"skill {i}" for i in range(200)]
    vectors = {n: rng.normal(size=16).astype(np.float32) for n in corpus}
    listed = corpus[:3]
    # near-copies of listed skills must never be drawn as negatives
    for i, n in enumerate(listed):
        vectors[f"near {i}"] = vectors[n] + 0.01
    corpus += [f"near {i}" for i in range(3)]
    for seed in range(20):
        neg = sample_negatives(listed, corpus, vectors, 3, 0.6, random.Random(seed))
        assert len(neg) == 3 and not set(neg) & set(listed)
        assert not any(n.startswith("near") for n in neg)


def test_parse_relevant_structured_text_and_garbage():
    assert parse_relevant(SimpleNamespace(parsed={"relevant": [1, 3, 9]}, text=None), 4) == {1, 3}
    text = "Let me think.\nRelevant: 2, 4"
    assert parse_relevant(SimpleNamespace(parsed=None, text=text), 4) == {2, 4}
    assert parse_relevant(SimpleNamespace(parsed=None, text="Relevant: none"), 4) == set()
    assert parse_relevant(SimpleNamespace(parsed=None, text="I cannot say"), 4) is None


def test_probe_targets_lowest_median_highest():
    acc = pl.DataFrame(
        {
            "skill_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "name": ["A", "A", "B", "B", "C", "C", "D", "D"],
            "level": [0] * 8,
            "model": ["m", "n"] * 4,
            "accuracy": [0.9, 0.7, 0.1, 0.3, 0.5, 0.5, 0.6, 0.6],
            "small": [False] * 6 + [True] * 2,
        }
    )
    picks = {t["position"]: t["skill_id"] for t in probe_targets(acc)}
    assert picks == {"lowest": "b", "median": "c", "highest": "a"}


def test_parse_probes_from_text_and_yes_no():
    text = (
        "Claim: 7 is prime\nYes question: Is 7 prime?\nContradiction question: Is 7 composite?\n"
        "Open question: What kind of number is 7?\nOpen answer: a prime"
    )
    probes = parse_probes(SimpleNamespace(parsed=None, text=text))
    assert probes is not None and probes.contradiction_question == "Is 7 composite?"
    assert parse_probes(SimpleNamespace(parsed=None, text="Claim: only this")) is None
    assert yes_no("Yes, it is.") == "yes" and yes_no("**No**") == "no"
    assert yes_no("Probably") is None


# --------------------------------------------------------------------------- bring your own


def test_skills_from_every_supported_shape(tmp_path):
    steps, answer = steps_from_record(
        {
            "steps": [
                {"skills": ["Math", "Algebra"], "evidence": "x+1=2", "conclusion": "x=1"},
                {"skills": "Math > Checking", "evidence": "", "conclusion": ""},
            ],
            "answer": "B",
        },
        "here",
    )
    assert [s.skills for s in steps] == [["Math", "Algebra"], ["Math", "Checking"]]
    assert answer == "B"
    steps, _ = steps_from_record({"skills": "Geography > Capitals; Reading"}, "here")
    assert [s.skills for s in steps] == [["Geography", "Capitals"], ["Reading"]]
    steps, _ = steps_from_record({"skills": [["Logic", "Deduction"], "Counting"]}, "here")
    assert [s.skills for s in steps] == [["Logic", "Deduction"], ["Counting"]]
    text = (
        "Step 1: Skills: Math > Arithmetic > Addition\nEvidence: 2 and 3\nConclusion: 5\nAnswer: 5"
    )
    steps, answer = steps_from_record({"rationale": text}, "here")
    assert steps and steps[0].skills[-1] == "Addition" and answer == "5"


def test_skills_file_errors_name_file_and_row(tmp_path):
    path = tmp_path / "skills.jsonl"
    path.write_text(
        '{"instance_id": "1", "skills": ["A"]}\n{"instance_id": "9", "skills": ["B"]}\n'
    )
    with pytest.raises(RegistryError, match=r"skills.jsonl: row 2: instance_id '9' is not in"):
        read_skills_file(path, {"1", "2"})
    path.write_text('{"instance_id": "1", "skills": ["A"]}\n{"instance_id": "1", "skills": []}\n')
    with pytest.raises(RegistryError, match=r"row 2: duplicate instance_id '1'"):
        read_skills_file(path, {"1"})
    path.write_text('{"instance_id": "1", "labels": ["A"]}\n')
    with pytest.raises(RegistryError, match=r"row 1: expected one of"):
        read_skills_file(path, {"1"})
    path.write_text('{"instance_id": "1", "skills": 5}\n')
    with pytest.raises(RegistryError, match=r"row 1: skills must be a list"):
        read_skills_file(path, {"1"})


def test_skills_column_becomes_imported_mentions(tmp_path):
    path = tmp_path / "bench.jsonl"
    rows = [
        {"instance_id": "a", "question": "q1", "answer": "1", "labels": ["Math > Addition"]},
        {"instance_id": "b", "question": "q2", "answer": "2", "labels": "Reading; Math"},
        {"instance_id": "c", "question": "q3", "answer": "3"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    inst = load_instances(path, "b1")
    rat, men = imported_frames(inst, skills_from_column(inst, "labels", "reg"), "column:labels")
    assert set(men["provenance"].to_list()) == {"imported"}
    assert men.filter(pl.col("uid") == "b1/a")["skill_name"].to_list() == ["Math", "Addition"]
    assert men.filter(pl.col("uid") == "b1/b").sort("step")["skill_name"].to_list() == [
        "Reading",
        "Math",
    ]
    assert rat.filter(pl.col("uid") == "b1/c")["n_steps"].item() == 0
    with pytest.raises(RegistryError, match="no instance has a column 'nope'"):
        skills_from_column(inst, "nope", "reg")


# --------------------------------------------------------------------------- end to end

CLAIM = "Adding two whole numbers gives their sum"


def _candidates(text: str) -> list[str]:
    block = text.split("Candidate skills:\n", 1)[1].split("\n\n", 1)[0]
    return [re.sub(r"^\d+\.\s*", "", line) for line in block.splitlines()]


def responder(body: dict):
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    text = last_user_text(body)
    if system == VERIFY_SYSTEM:
        # deterministic verdict the test can recompute: odd-numbered candidates are relevant
        n = len(_candidates(text))
        return {"relevant": [i for i in range(1, n + 1) if i % 2 == 1]}
    if system == PROBE_SYSTEM:
        return {
            "claim": CLAIM,
            "yes_question": "Does adding 2 and 3 give 5?",
            "contradiction_question": "Does adding 2 and 3 give 7?",
            "open_question": "What do you get when you add 2 and 3?",
            "open_answer": "5",
        }
    if system == ANSWER_SYSTEM:
        # a model that says yes to everything: the contradiction probe catches it
        return "Yes." if "give" in text else "5"
    if system == JUDGE_SYSTEM:
        return {"consistent": "5" in text.split("<<<ANSWER>>>")[1]}
    return "The answer is C."  # live evaluation of the probed model


def _project(tmp_path, base_url: str):
    root = write_project(tmp_path / "proj", models={"alpha": _P(0.9), "gamma": _P(0.5)})
    rows = [json.loads(x) for x in (root / "data" / "bench.jsonl").read_text().splitlines()]
    skills = [
        {
            "instance_id": r["instance_id"],
            "steps": [
                {
                    "skills": ["School subjects", r["subject"].title(), f"{r['subject']} facts"],
                    "evidence": f"the question is about {r['subject']}",
                    "conclusion": "the option follows",
                }
            ],
            "answer": "C" if i % 2 == 0 else "A",
        }
        for i, r in enumerate(rows)
    ]
    (root / "data" / "skills.jsonl").write_text("\n".join(json.dumps(s) for s in skills) + "\n")
    reg = root / "skill-slices.yaml"
    text = reg.read_text()
    text = text.replace(
        "    path: data/bench.jsonl\n",
        "    path: data/bench.jsonl\n    skills: data/skills.jsonl\n",
    )
    text = text.replace(
        "  - name: gamma\n    results: results/all.jsonl\n",
        "  - name: gamma\n    results: results/all.jsonl\n    provider: openai-compatible\n"
        f"    model: gamma-live\n    base_url: {base_url}\n    max_retries: 1\n",
    )
    text += (
        "validation:\n  verifier:\n    provider: openai-compatible\n    model: verifier\n"
        f"    base_url: {base_url}\n    max_retries: 1\n  sample_size: 12\n"
        "  probe_instances_per_slice: 2\n"
    )
    reg.write_text(text)
    return root


def _P(p: float) -> dict[str, float]:
    return dict.fromkeys(("arithmetic", "chemistry", "geography", "python", "grammar"), p)


def test_verification_and_probing_through_http(tmp_path):
    with FakeOpenAIServer(responder=responder) as srv:
        root = _project(tmp_path, srv.base_url)
        summary = run_project(root, progress=False)
        project = load_project(root)
        assert {"skill_verification", "probe_consistency"} <= set(summary["materialized"])

        mentions = read_asset(project, "skill_mentions")
        assert set(mentions["provenance"].to_list()) == {"imported"}
        assert "School subjects" in mentions["skill_name"].to_list()

        ver = read_asset(project, "skill_verification")
        assert ver["uid"].n_unique() == 12 and ver["error"].null_count() == ver.height
        listed_by_uid = mentions.group_by("uid").agg(pl.col("skill_name").unique())
        listed = {u: set(n) for u, n in listed_by_uid.iter_rows()}
        for uid, part in ver.group_by("uid"):
            uid = uid[0]
            # as many negatives as listed names; none of them listed for the instance
            assert part["listed"].sum() == (~part["listed"]).sum() == len(listed[uid])
            assert not set(part.filter(~pl.col("listed"))["skill_name"]) & listed[uid]
        # rows follow the verifier's numbering exactly (odd positions relevant)
        verify_reqs = [r for r in srv.requests if r.body["messages"][0]["content"] == VERIFY_SYSTEM]
        assert len(verify_reqs) == 12
        asked = [_candidates(last_user_text(r.body)) for r in verify_reqs]
        assert all("<<<QUESTION>>>" in last_user_text(r.body) for r in verify_reqs)
        for _, part in ver.group_by("uid", maintain_order=True):
            # each instance's rows are the candidates one request showed, in its order
            assert part["skill_name"].to_list() in asked
            n = part.height
            assert part["judged_relevant"].to_list() == [i % 2 == 0 for i in range(n)]
        counts = confusion(ver)
        assert sum(counts.values()) == ver.height
        listed_rate, _ = relevance_rates(counts)
        assert 0 < listed_rate < 1
        # about half the listed skills judged relevant: below the 0.7 bar, the check warns
        warned = summary["checks_failed"]["skill_verification:listed_skills_relevant"]
        assert warned["severity"] == "WARN" and warned["listed_relevance"] == listed_rate
        # split by whether the annotation's own answer was right (even rows answered "C")
        assert set(ver["annotator_correct"].drop_nulls().to_list()) == {True, False}

        probes = read_asset(project, "probe_consistency")
        assert set(probes["model"].to_list()) == {"gamma"}
        assert set(probes["position"].to_list()) <= {"lowest", "median", "highest"}
        assert probes["error"].null_count() == probes.height
        by_kind = dict(probes.group_by("probe_kind").agg(pl.col("consistent").all()).iter_rows())
        assert by_kind == {"yes": True, "contradiction": False, "open": True}
        assert set(probes["claim"].to_list()) == {CLAIM}
        judge_reqs = [r for r in srv.requests if r.body["messages"][0]["content"] == JUDGE_SYSTEM]
        assert judge_reqs and all(CLAIM in last_user_text(r.body) for r in judge_reqs)

        # nothing changed: nothing re-runs and no call is made again
        before = len(srv.requests)
        again = run_project(root, progress=False)
        assert again["materialized"] == [] and len(srv.requests) == before


def test_probe_models_must_be_live(tmp_path):
    root = write_project(tmp_path / "p", extra_registry="validation:\n  probe_models: [alpha]\n")
    with pytest.raises(RegistryError, match="'validation.probe_models': model 'alpha' has no"):
        load_project(root)


def test_skills_file_loader_only_raises_registry_errors(tmp_path_factory):
    """Adversarial bytes and JSON never crash the bring-your-own skills loader."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("fuzz")
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )
    rows = st.lists(
        st.dictionaries(
            st.sampled_from(["instance_id", "skills", "steps", "rationale", "answer"]), values
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
            p = folder / f"s{suffix}"
            p.write_bytes(data)
            try:
                out = read_skills_file(p, {"1", "2", "True", "0", ""})
            except RegistryError:
                continue
            for steps, _answer in out.values():
                assert all(
                    s.skills and all(isinstance(n, str) and n for n in s.skills) for s in steps
                )

    check()
