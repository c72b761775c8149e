"""Harness importers: fixtures written in each harness's real on-disk format.

Formats followed (field names checked against the harnesses' source):
- lm-evaluation-harness ``--log_samples``: ``<output_path>/<model>/samples_<task>_<date>.jsonl``
  where ``<date>`` is ``datetime.now().isoformat()`` with ``:`` → ``-``; one row per
  (doc, filter) with doc_id, doc, target, arguments ({gen_args_i: {arg_j}}), resps,
  filtered_resps (values stringified), filter, metrics, doc_hash, prompt_hash,
  target_hash and one key per metric (lm_eval/evaluator.py, loggers/evaluation_tracker.py).
- Inspect AI: ``.eval`` zip with header.json, _journal/start.json, summaries.json and
  samples/<id>_epoch_<n>.json; ``.json`` = the EvalLog object with ``samples``
  (inspect_ai/log/_recorders/eval.py, log/_log.py, scorer/_metric.py).
- HELM: run folder with run_spec.json, scenario_state.json (adapter_spec,
  request_states[instance, output_mapping, result.completions]) and
  per_instance_stats.json ([{instance_id, train_trial_index, stats[{name{name, split},
  count, sum, mean…}]}]) (helm/benchmark/runner.py, metrics/metric.py, statistic.py).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import INSTANCES, RESULTS
from skill_assets.ingest.importers import (
    check_results,
    detect_format,
    list_tasks,
    load_instances_from_results,
    load_results,
    parse_options,
)
from skill_assets.ingest.instances import load_instances
from skill_assets.ingest.results import load_generic_results
from tests.harness_writers import export_results

ROOT = Path(__file__).resolve().parents[2]
DEMO_QUESTIONS = ROOT / "examples" / "live" / "benchmark" / "questions.jsonl"
DEMO_RESULTS = ROOT / "examples" / "live" / "results"


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _instances(benchmark: str, ids, options=None, answers=None, questions=None) -> pl.DataFrame:
    rows = []
    for k, i in enumerate(ids):
        rows.append(
            {
                "uid": f"{benchmark}/{i}",
                "benchmark": benchmark,
                "instance_id": str(i),
                "question": questions[k] if questions else f"q{i}",
                "options": options,
                "answer": (answers or ["A"] * len(ids))[k],
                "image": None,
                "metadata": "{}",
            }
        )
    return pl.DataFrame(rows, schema=INSTANCES)


def _by_id(df: pl.DataFrame, col: str) -> dict:
    return dict(zip(df["instance_id"].to_list(), df[col].to_list(), strict=True))


# --------------------------------------------------------------------------- lm-eval fixtures

ARC_DOCS = [
    {
        "id": "Mercury_7175875",
        "question": "An astronomer observes that a planet rotates faster after a meteorite "
        "impact. Which is the most likely effect of this increase in rotation?",
        "choices": {
            "text": [
                "Planetary density will decrease.",
                "Planetary years will become longer.",
                "Planetary days will become shorter.",
                "Planetary gravity will become stronger.",
            ],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "C",
    },
    {
        "id": "Mercury_SC_409171",
        "question": "A group of engineers wanted to know how different building designs would "
        "respond during an earthquake. Which would be best for them?",
        "choices": {
            "text": ["buildings will be built faster", "test models", "ask architects", "read"],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "B",
    },
    {
        "id": "Mercury_SC_408547",
        "question": "The end result in the process of photosynthesis is the production of "
        "sugar and oxygen. Which step signals the beginning of photosynthesis?",
        "choices": {
            "text": ["Chemical energy is absorbed", "Light energy is converted", "CO2", "H2O"],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "A",
    },
]


def _arc_row(doc_id: int, doc: dict, lls: list[float], acc: float, acc_norm: float) -> dict:
    """A multiple-choice (loglikelihood) sample as the harness logs it for arc_easy."""
    ctx = f"Question: {doc['question']}\nAnswer:"
    gold = doc["choices"]["label"].index(doc["answerKey"])
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": str(gold),  # doc_to_target is an index for multiple-choice tasks
        "arguments": {
            f"gen_args_{i}": {"arg_0": ctx, "arg_1": f" {c}"}
            for i, c in enumerate(doc["choices"]["text"])
        },
        "resps": [[[str(ll), "False"]] for ll in lls],
        "filtered_resps": [[str(ll), "False"] for ll in lls],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "doc_hash": _h(json.dumps(doc, indent=2)),
        "prompt_hash": _h(ctx),
        "target_hash": _h(str(gold)),
        "acc": acc,
        "acc_norm": acc_norm,
    }


def _gsm_questions() -> list[str]:
    return [r["doc"]["question"] for r in _gsm_rows()[:2]]


def test_lm_eval_positional_ids_checked_against_questions(tmp_path):
    rows = _gsm_rows()
    qs = _gsm_questions()
    # a task whose process_docs dropped a document: doc_ids renumbered, docs in other order
    swapped = [dict(r, doc_id=1 - r["doc_id"]) for r in rows]
    f = _write_jsonl(tmp_path / "samples_gsm8k_2024-06-01T10-00-00.jsonl", swapped)
    df = load_results(f, "m", "gsm8k", _instances("gsm8k", [0, 1], questions=qs), None)
    # matched by the doc text: strict-match gives doc 0 (Natalia) 1.0 and doc 1 (Weng) 0.0
    assert _by_id(df, "correct") == {"0": 1.0, "1": 0.0}
    # a benchmark that holds other questions: the first bad row is named
    other = _instances("gsm8k", [0, 1], questions=["How far is the moon?", qs[0]])
    with pytest.raises(RegistryError, match=r"line 2: doc_id 0 is not benchmark 'gsm8k'"):
        load_results(f, "m", "gsm8k", other, None)


def _gsm_rows() -> list[dict]:
    """GSM8K: every document once per filter (strict-match first, then flexible-extract)."""
    docs = [
        {
            "question": "Natalia sold clips to 48 friends in April, and half as many in May. "
            "How many clips did she sell altogether?",
            "answer": "48/2 = 24\n48+24 = 72\n#### 72",
        },
        {
            "question": "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes. "
            "How much did she earn?",
            "answer": "12/60 = 0.2\n0.2*50 = 10\n#### 10",
        },
    ]
    gens = ["She sold 48+24 = 72 clips.\n#### 72", "She earned 10 dollars. The answer is 10."]
    strict = ["72", "[invalid]"]
    flexible = ["72", "10"]
    rows = []
    for filt, filtered in (("strict-match", strict), ("flexible-extract", flexible)):
        for i, doc in enumerate(docs):
            prompt = f"Question: {doc['question']}\nAnswer:"
            rows.append(
                {
                    "doc_id": i,
                    "doc": doc,
                    "target": doc["answer"],
                    "arguments": {
                        "gen_args_0": {
                            "arg_0": prompt,
                            "arg_1": {"until": ["Question:", "</s>"], "do_sample": False},
                        }
                    },
                    "resps": [[gens[i]]],
                    "filtered_resps": [filtered[i]],
                    "filter": filt,
                    "metrics": ["exact_match"],
                    "doc_hash": _h(json.dumps(doc, indent=2)),
                    "prompt_hash": _h(prompt),
                    "target_hash": _h(doc["answer"]),
                    "exact_match": 1.0 if filtered[i] == doc["answer"].split("#### ")[1] else 0.0,
                }
            )
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ARC_LLS = [[-9.1, -8.2, -3.3, -7.0], [-2.0, -4.5, -4.4, -6.0], [-5.0, -1.0, -3.0, -2.5]]


@pytest.fixture
def lm_eval_dir(tmp_path):
    """<output_path>/<model>/ with arc_easy (MC) and gsm8k (generative), two gsm8k runs."""
    model_dir = tmp_path / "out" / "EleutherAI__pythia-160m"
    arc = [
        _arc_row(i, d, ARC_LLS[i], acc, accn)
        for i, (d, acc, accn) in enumerate(
            zip(ARC_DOCS, [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], strict=True)
        )
    ]
    _write_jsonl(model_dir / "samples_arc_easy_2024-06-01T10-00-00.123456.jsonl", arc)
    old = [dict(r, exact_match=0.0) for r in _gsm_rows()]
    _write_jsonl(model_dir / "samples_gsm8k_2024-05-31T23-59-59.999999.jsonl", old)
    _write_jsonl(model_dir / "samples_gsm8k_2024-06-01T10-00-00.123456.jsonl", _gsm_rows())
    (model_dir / "results_2024-06-01T10-00-00.123456.json").write_text(
        json.dumps({"results": {"arc_easy": {"acc,none": 1 / 3}}})
    )
    return tmp_path / "out"


def test_lm_eval_multiple_choice_defaults(lm_eval_dir):
    arc_q = [d["question"] for d in ARC_DOCS]
    inst = _instances("arc_easy", [0, 1, 2], options=["a", "b", "c", "d"], questions=arc_q)
    df = load_results(lm_eval_dir, "pythia", "arc_easy", inst, "lm-eval")
    assert df.columns == list(RESULTS)
    assert _by_id(df, "correct") == {"0": 1.0, "1": 0.0, "2": 0.0}  # acc by default
    # the chosen option is the argmax loglikelihood, as a letter
    assert _by_id(df, "parsed_answer") == {"0": "C", "1": "A", "2": "B"}
    assert df["uid"].to_list()[0] == "arc_easy/0" and set(df["model"]) == {"pythia"}
    norm = load_results(lm_eval_dir, "pythia", "arc_easy", inst, "lm-eval", {"metric": "acc_norm"})
    assert _by_id(norm, "correct") == {"0": 1.0, "1": 1.0, "2": 0.0}


def test_lm_eval_filter_dedup_and_newest_file(lm_eval_dir):
    inst = _instances("gsm8k", [0, 1], questions=_gsm_questions())
    # newest file wins (the older one has exact_match 0 everywhere); default filter is the
    # first in the file (strict-match); "[invalid]" is the harness's "nothing extracted"
    df = load_results(lm_eval_dir, "m", "gsm8k", inst, None)
    assert _by_id(df, "correct") == {"0": 1.0, "1": 0.0}
    assert _by_id(df, "parsed_answer") == {"0": "72", "1": None}
    assert _by_id(df, "response")["1"].startswith("She earned 10 dollars")
    flex = load_results(lm_eval_dir, "m", "gsm8k", inst, "lm-eval", {"filter": "flexible-extract"})
    assert _by_id(flex, "correct") == {"0": 1.0, "1": 1.0}
    assert list_tasks(lm_eval_dir) == ["arc_easy", "gsm8k"]


def test_lm_eval_none_filter_preferred_and_first_row_wins(tmp_path):
    rows = _gsm_rows()
    rows = [dict(r, filter="none") if r["filter"] == "flexible-extract" else r for r in rows]
    rows.append(dict(rows[-1], exact_match=0.0))  # a repeated (doc_id, filter) row
    f = _write_jsonl(tmp_path / "samples_gsm8k_2024-06-01T10-00-00.jsonl", rows)
    df = load_results(
        f, "m", "gsm8k", _instances("gsm8k", [0, 1], questions=_gsm_questions()), None
    )
    assert _by_id(df, "correct") == {"0": 1.0, "1": 1.0}


def test_lm_eval_id_field_and_task_mapping(lm_eval_dir):
    ids = [d["id"] for d in ARC_DOCS]
    inst = _instances("arc", ids, options=["a", "b", "c", "d"])
    opts = {"id_field": "id", "task": {"arc": "arc_easy"}}
    df = load_results(lm_eval_dir, "m", "arc", inst, "lm-eval", opts)
    assert _by_id(df, "correct") == dict(zip(ids, [1.0, 0.0, 0.0], strict=True))
    # without the mapping the benchmark "arc" has no samples file: empty, and the
    # preflight says which tasks exist
    assert load_results(lm_eval_dir, "m", "arc", inst, "lm-eval", {"id_field": "id"}).height == 0
    with pytest.raises(RegistryError, match=r"match no registered benchmark.*arc_easy"):
        check_results(lm_eval_dir, "m", {"arc": inst}, "lm-eval", {"id_field": "id"})
    assert check_results(lm_eval_dir, "m", {"arc": inst}, "lm-eval", opts) == {"arc": 3}


def test_lm_eval_instances(lm_eval_dir):
    df = load_instances_from_results(lm_eval_dir, "arc_easy", None, {"id_field": "id"})
    assert df.columns == list(INSTANCES)
    row = df.row(0, named=True)
    assert row["instance_id"] == "Mercury_7175875" and row["uid"] == "arc_easy/Mercury_7175875"
    assert row["question"].startswith("An astronomer observes")
    assert row["options"][2] == "Planetary days will become shorter."
    assert df["answer"].to_list() == ["C", "B", "A"]  # target index → letter
    assert json.loads(row["metadata"]) == {"answerKey": "C"}
    gsm = load_instances_from_results(lm_eval_dir, "gsm8k", "lm-eval")
    assert gsm["instance_id"].to_list() == ["0", "1"]
    assert gsm["options"].to_list() == [None, None]
    assert gsm["answer"][0].endswith("#### 72")


def test_lm_eval_hellaswag_doc_and_old_rows_without_filter(tmp_path):
    """HellaSwag docs (ctx / endings / label); rows from harness versions without 'filter'."""
    doc = {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx": "A man is sitting on a roof. he",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        "label": "3",
    }
    row = {
        "doc_id": 0,
        "doc": doc,
        "target": "3",
        "arguments": [[doc["ctx"], " " + e] for e in doc["endings"]],
        "resps": [
            [["-20.1", "False"]],
            [["-18.0", "False"]],
            [["-25.3", "False"]],
            [["-9.7", "False"]],
        ],
        "filtered_resps": [
            ["-20.1", "False"],
            ["-18.0", "False"],
            ["-25.3", "False"],
            ["-9.7", "False"],
        ],
        "acc": 1.0,
        "acc_norm": 1.0,
    }
    f = _write_jsonl(
        tmp_path / "samples_hellaswag_2024-03-01T08-00-00.000001.jsonl",
        [row, dict(row, acc=0.0)],  # the same doc again: the first row wins
    )
    inst = load_instances_from_results(f, "hellaswag")
    assert inst["question"].to_list() == ["A man is sitting on a roof. he"]
    assert inst["answer"].to_list() == ["D"] and len(inst["options"][0]) == 4
    assert json.loads(inst["metadata"][0]) == {
        "activity_label": "Roof shingle removal",
        "ind": 24,
        "label": "3",
    }
    res = load_results(f, "m", "hellaswag", inst)
    assert _by_id(res, "correct") == {"0": 1.0} and _by_id(res, "parsed_answer") == {"0": "D"}


def test_lm_eval_two_model_folders_is_an_error(lm_eval_dir):
    other = lm_eval_dir / "other-model"
    _write_jsonl(other / "samples_gsm8k_2024-07-01T00-00-00.jsonl", _gsm_rows())
    with pytest.raises(RegistryError, match="several folders"):
        load_results(lm_eval_dir, "m", "gsm8k", _instances("gsm8k", [0, 1]), "lm-eval")


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda rows: rows[:1] + ["{not json"], "line 2: invalid JSON"),
        (lambda rows: [json.dumps({"doc": {}, "resps": []})], "line 1: missing 'doc_id'"),
        (lambda rows: ["[1, 2]"], "line 1: expected a JSON object"),
        (
            lambda rows: [json.dumps(dict(json.loads(r), exact_match=[1, 0])) for r in rows],
            "key 'exact_match': expected a per-sample score in [0, 1], got a list",
        ),
        (
            lambda rows: [json.dumps(dict(json.loads(r), exact_match=23.5)) for r in rows],
            "line 1: key 'exact_match': expected a per-sample score in [0, 1], got 23.5",
        ),
        (
            lambda rows: [
                json.dumps({k: v for k, v in json.loads(r).items() if k != "exact_match"})
                for r in rows
            ],
            "cannot choose a per-sample metric",
        ),
    ],
)
def test_lm_eval_malformed(tmp_path, mutate, needle):
    rows = [json.dumps(r) for r in _gsm_rows()]
    f = tmp_path / "samples_gsm8k_2024-06-01T10-00-00.jsonl"
    f.write_text("\n".join(mutate(rows)) + "\n")
    with pytest.raises(RegistryError) as e:
        load_results(f, "m", "gsm8k", _instances("gsm8k", [0, 1]), "lm-eval")
    assert needle in str(e.value) and str(f) in str(e.value)


def test_lm_eval_option_errors(lm_eval_dir):
    inst = _instances("gsm8k", [0, 1], questions=_gsm_questions())
    with pytest.raises(RegistryError, match=r"no samples with filter 'maj@8'.*strict-match"):
        load_results(lm_eval_dir, "m", "gsm8k", inst, "lm-eval", {"filter": "maj@8"})
    with pytest.raises(RegistryError, match=r"line 1: no metric 'f1' \(options.metric\)"):
        load_results(lm_eval_dir, "m", "gsm8k", inst, "lm-eval", {"metric": "f1"})
    with pytest.raises(RegistryError, match=r"doc has no field 'uuid' \(options.id_field\)"):
        load_results(lm_eval_dir, "m", "gsm8k", inst, "lm-eval", {"id_field": "uuid"})
    with pytest.raises(RegistryError, match=r"instance_id '1', which benchmark 'gsm8k' does not"):
        load_results(
            lm_eval_dir,
            "m",
            "gsm8k",
            _instances("gsm8k", [0], questions=_gsm_questions()),
            "lm-eval",
        )
    part = load_results(
        lm_eval_dir,
        "m",
        "gsm8k",
        _instances("gsm8k", [0], questions=_gsm_questions()),
        "lm-eval",
        {"ignore_unknown": True},
    )
    assert part["instance_id"].to_list() == ["0"]
    with pytest.raises(RegistryError, match=r"key 'metrc': unknown key"):
        parse_options({"metrc": "acc"}, "skill-slices.yaml: models[0].options")


def test_lm_eval_badly_named_file_in_folder(tmp_path):
    _write_jsonl(tmp_path / "samples_gsm8k.jsonl", _gsm_rows())
    with pytest.raises(
        RegistryError, match=r"samples_gsm8k.jsonl: expected a name samples_<task>_"
    ):
        load_results(tmp_path, "m", "gsm8k", _instances("gsm8k", [0, 1]), "lm-eval")


# --------------------------------------------------------------------------- inspect fixtures


def _inspect_sample(sid, epoch, value, *, scorer="choice", answer="B", target="B", extra=None):
    s = {
        "id": sid,
        "epoch": epoch,
        "input": [
            {"role": "system", "content": "Answer with a letter.", "source": "input"},
            {"role": "user", "content": f"Question {sid}: pick one.", "source": "input"},
        ],
        "choices": ["red", "green", "blue"],
        "target": target,
        "messages": [],
        "output": {
            "model": "openai/gpt-4o-mini",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": f"ANSWER: {answer}"}],
                        "source": "generate",
                    },
                    "stop_reason": "stop",
                }
            ],
            "completion": f"ANSWER: {answer}",
            "usage": {"input_tokens": 30, "output_tokens": 3, "total_tokens": 33},
            "time": 0.8,
        },
        "scores": {scorer: {"value": value, "answer": answer, "explanation": "..."}},
        "metadata": {"subject": "colours", "uuid": f"u-{sid}"},
        "store": {},
        "events": [],
        "model_usage": {
            "openai/gpt-4o-mini": {
                "input_tokens": 30,
                "output_tokens": 3,
                "total_tokens": 33,
                "total_cost": 0.001,
            }
        },
        "total_time": 1.25,
        "working_time": 1.0,
        "attachments": {},
    }
    s.update(extra or {})
    return s


def _inspect_header(task="mmlu_colours", scorers=("choice",)):
    return {
        "version": 2,
        "status": "success",
        "eval": {
            "run_id": "Zx8Qx3s6X5xYVbp4QeXVeW",
            "created": "2024-09-12T14:02:11+00:00",
            "task": task,
            "task_id": "ek3hpJ5JTdPc8b6zCpJYPb",
            "task_version": 0,
            "dataset": {"name": "colours", "samples": 4},
            "model": "openai/gpt-4o-mini",
            "config": {"epochs": 2},
            "packages": {"inspect_ai": "0.3.40"},
        },
        "plan": {"name": "plan", "steps": [{"solver": "multiple_choice", "params": {}}]},
        "results": {
            "total_samples": 8,
            "completed_samples": 8,
            "scores": [
                {
                    "name": s,
                    "scorer": s,
                    "params": {},
                    "metrics": {"accuracy": {"name": "accuracy", "value": 0.5}},
                }
                for s in scorers
            ],
        },
        "stats": {
            "started_at": "2024-09-12T14:02:11+00:00",
            "completed_at": "2024-09-12T14:03:00+00:00",
        },
    }


def _inspect_samples():
    return [
        _inspect_sample(1, 1, "C"),
        _inspect_sample(1, 2, "I", answer="A"),
        _inspect_sample(2, 1, "P"),
        _inspect_sample(2, 2, "P"),
        _inspect_sample(3, 1, "N", answer=None),
        _inspect_sample(3, 2, 0.0),
        _inspect_sample(4, 1, 1),
        _inspect_sample(4, 2, True),
        # an errored sample without scores is not a result
        {**_inspect_sample(5, 1, "C"), "scores": None, "error": {"message": "timeout"}},
        # Inspect's "unscored" (NaN → null in its JSON) is skipped too
        _inspect_sample(6, 1, None),
    ]


def _write_eval(path: Path, header: dict, samples: list[dict]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "_journal/start.json", json.dumps({k: header[k] for k in ("version", "eval", "plan")})
        )
        for s in samples:
            zf.writestr(f"samples/{s['id']}_epoch_{s['epoch']}.json", json.dumps(s))
        zf.writestr(
            "summaries.json",
            json.dumps(
                [
                    {k: s.get(k) for k in ("id", "epoch", "input", "target", "scores")}
                    for s in samples
                ]
            ),
        )
        zf.writestr("header.json", json.dumps(header))
    return path


@pytest.fixture(params=["eval", "json"])
def inspect_log(request, tmp_path):
    header, samples = _inspect_header(), _inspect_samples()
    if request.param == "eval":
        return _write_eval(
            tmp_path / "2024-09-12T14-02-11+00-00_mmlu-colours_ek3hp.eval", header, samples
        )
    path = tmp_path / "2024-09-12T14-02-11+00-00_mmlu-colours_ek3hp.json"
    path.write_text(json.dumps({**header, "samples": samples}))
    return path


def test_inspect_scores_and_epochs(inspect_log):
    assert detect_format(inspect_log) == "inspect"
    inst = _instances("mmlu_colours", [1, 2, 3, 4, 5, 6], options=["red", "green", "blue"])
    df = load_results(inspect_log, "gpt-4o-mini", "mmlu_colours", inst, None)
    # C/I mean 0.5, P/P 0.5, N/0 → 0, 1/True → 1; errored (5) and unscored (6) are skipped
    assert _by_id(df, "correct") == {"1": 0.5, "2": 0.5, "3": 0.0, "4": 1.0}
    assert _by_id(df, "parsed_answer")["1"] == "B"  # from the first epoch
    assert _by_id(df, "response")["1"] == "ANSWER: B"
    assert _by_id(df, "cost_usd")["1"] == pytest.approx(0.001)
    assert _by_id(df, "latency_s")["1"] == pytest.approx(1.25)


def test_inspect_instances(inspect_log):
    df = load_instances_from_results(inspect_log, "mmlu_colours", "inspect")
    assert df["instance_id"].to_list() == ["1", "2", "3", "4", "5", "6"]
    row = df.row(0, named=True)
    assert row["question"] == "Question 1: pick one."  # user messages only
    assert row["options"] == ["red", "green", "blue"] and row["answer"] == "B"
    assert json.loads(row["metadata"]) == {"subject": "colours", "uuid": "u-1"}
    by_uuid = load_instances_from_results(
        inspect_log, "mmlu_colours", "inspect", {"id_field": "uuid"}
    )
    assert by_uuid["instance_id"][0] == "u-1"


def test_inspect_scorer_choice_dict_values_and_id_field(tmp_path):
    samples = []
    for sid, (a, b) in enumerate(
        [("C", {"acc": 0.25, "f1": 1}), ("I", {"acc": 1, "f1": 0})], start=1
    ):
        s = _inspect_sample(sid, 1, a, target="A")
        s["scores"]["rubric"] = {"value": b}
        samples.append(s)
    path = _write_eval(
        tmp_path / "log.eval", _inspect_header(scorers=("rubric", "choice")), samples
    )
    inst = _instances("mmlu_colours", ["u-1", "u-2"])
    with pytest.raises(
        RegistryError, match=r"samples/1_epoch_1.json: key 'scores.rubric.value'.*options.value_key"
    ):
        load_results(path, "m", "mmlu_colours", inst, None, {"id_field": "uuid"})
    df = load_results(
        path, "m", "mmlu_colours", inst, None, {"id_field": "uuid", "value_key": "acc"}
    )
    assert _by_id(df, "correct") == {"u-1": 0.25, "u-2": 1.0}
    df = load_results(
        path, "m", "mmlu_colours", inst, None, {"id_field": "uuid", "scorer": "choice"}
    )
    assert _by_id(df, "correct") == {"u-1": 1.0, "u-2": 0.0}
    with pytest.raises(RegistryError, match=r"has no scorer 'model_graded_qa'; scorers present"):
        load_results(
            path, "m", "mmlu_colours", inst, None, {"id_field": "uuid", "scorer": "model_graded_qa"}
        )


def test_inspect_task_matching_and_folder(tmp_path):
    _write_eval(
        tmp_path / "a.eval", _inspect_header(task="inspect_evals/gsm8k"), _inspect_samples()[:2]
    )
    newer = _inspect_header(task="inspect_evals/gsm8k")
    newer["eval"]["created"] = "2024-10-01T00:00:00+00:00"
    _write_eval(tmp_path / "b.eval", newer, [_inspect_sample(1, 1, "I")])
    inst = _instances("gsm8k", [1, 2, 3, 4])
    df = load_results(tmp_path, "m", "gsm8k", inst, "inspect")  # last path part of the task
    assert _by_id(df, "correct") == {"1": 0.0}  # the newest log for the task wins
    assert load_results(tmp_path, "m", "math", inst, "inspect").height == 0


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "not a zip archive"),
        (
            lambda p: zipfile.ZipFile(p, "w").writestr("other.json", "{}"),
            "a zip without header.json",
        ),
        (
            lambda p: _write_eval(p, _inspect_header(), [_inspect_sample(1, 1, "maybe")]),
            "member samples/1_epoch_1.json: key 'scores.choice.value': score value 'maybe'",
        ),
        (
            lambda p: _write_eval(p, _inspect_header(), [_inspect_sample(1, 1, 7)]),
            "key 'scores.choice.value': expected a per-sample score in [0, 1], got 7",
        ),
        (
            lambda p: _write_eval(
                p, _inspect_header(), [{**_inspect_sample(1, 1, "C"), "epoch": "one"}]
            ),
            "key 'epoch': expected an integer",
        ),
        (lambda p: _write_eval(p, _inspect_header(), []), "holds no samples"),
    ],
)
def test_inspect_malformed(tmp_path, make, needle):
    p = tmp_path / "bad.eval"
    make(p)
    with pytest.raises(RegistryError) as e:
        load_results(p, "m", "mmlu_colours", _instances("mmlu_colours", [1]), "inspect")
    assert needle in str(e.value) and str(p) in str(e.value)


def test_inspect_json_errors_name_key(tmp_path):
    p = tmp_path / "log.json"
    p.write_text(json.dumps({**_inspect_header(), "samples": [_inspect_sample(1, 1, "C"), 3]}))
    with pytest.raises(
        RegistryError, match=r"log.json: key 'samples\[1\]': expected a JSON object, got a number"
    ):
        load_results(p, "m", "mmlu_colours", _instances("mmlu_colours", [1]), "inspect")


# --------------------------------------------------------------------------- helm fixtures


def _stat(name, value, split="test", **extra):
    n = {"name": name, "split": split, **extra}
    return {
        "name": n,
        "count": 1,
        "sum": value,
        "sum_squared": value * value,
        "min": value,
        "max": value,
        "mean": value,
        "variance": 0.0,
        "stddev": 0.0,
    }


def _helm_run(
    folder: Path, name="mmlu:subject=anatomy,method=multiple_choice_joint,model=openai_gpt2"
):
    folder.mkdir(parents=True)
    questions = {
        "id147": (
            "A lesion causing compression of the facial nerve at the stylomastoid foramen "
            "will cause ipsilateral",
            ["paralysis of the facial muscles.", "loss of taste.", "hyperacusis.", "dry eye."],
            0,
            " A",
        ),
        "id148": (
            "Which of the following is the body cavity that contains the pituitary gland?",
            ["Abdominal", "Cranial", "Pleural", "Spinal"],
            1,
            " D",
        ),
        "id149": (
            "The pleura",
            [
                "have no sensory innervation.",
                "are separated by a 2 mm space.",
                "extend into the neck.",
                "are derived from mesoderm.",
            ],
            2,
            " C",
        ),
    }
    adapter_spec = {
        "method": "multiple_choice_joint",
        "model": "openai/gpt2",
        "max_train_instances": 5,
    }
    states, stats = [], []
    for trial in (0, 1):
        for iid, (q, opts, gold, completion) in questions.items():
            letters = ["A", "B", "C", "D"]
            states.append(
                {
                    "instance": {
                        "input": {"text": q},
                        "references": [
                            {"output": {"text": o}, "tags": ["correct"] if k == gold else []}
                            for k, o in enumerate(opts)
                        ],
                        "split": "test",
                        "id": iid,
                    },
                    "train_trial_index": trial,
                    "output_mapping": dict(zip(letters, opts, strict=True)),
                    "request": {
                        "model": "openai/gpt2",
                        "prompt": q + "\nAnswer:",
                        "temperature": 0.0,
                        "num_completions": 1,
                        "max_tokens": 1,
                        "stop_sequences": ["\n"],
                    },
                    "result": {
                        "success": True,
                        "embedding": [],
                        "completions": [{"text": completion, "logprob": -0.5, "tokens": []}],
                        "cached": True,
                        "request_time": 0.3,
                    },
                    "num_train_instances": 5,
                    "prompt_truncated": False,
                }
            )
            correct = float(completion.strip() == letters[gold])
            if iid == "id149" and trial == 1:
                correct = 0.0  # trials disagree → mean 0.5
            stats.append(
                {
                    "instance_id": iid,
                    "train_trial_index": trial,
                    "stats": [
                        _stat("num_prompt_tokens", 120.0),
                        _stat("exact_match", correct),
                        _stat("quasi_exact_match", correct),
                        _stat(
                            "exact_match", 0.0, perturbation={"name": "typos", "robustness": True}
                        ),
                    ],
                }
            )
    # a perturbed copy of an instance is its own PerInstanceStats entry: ignored
    stats.append(
        {
            "instance_id": "id147",
            "perturbation": {"name": "typos"},
            "train_trial_index": 0,
            "stats": [_stat("exact_match", 0.0)],
        }
    )
    (folder / "run_spec.json").write_text(json.dumps({"name": name, "adapter_spec": adapter_spec}))
    (folder / "scenario_state.json").write_text(
        json.dumps({"adapter_spec": adapter_spec, "request_states": states})
    )
    (folder / "per_instance_stats.json").write_text(json.dumps(stats))
    return folder


def test_helm_results(tmp_path):
    run = _helm_run(
        tmp_path / "mmlu:subject=anatomy,method=multiple_choice_joint,model=openai_gpt2"
    )
    inst = _instances("mmlu", ["id147", "id148", "id149"])
    for path in (run, run / "per_instance_stats.json"):
        assert detect_format(path) == "helm"
        df = load_results(path, "gpt2", "mmlu", inst, None)  # scenario name matches
        assert _by_id(df, "correct") == {"id147": 1.0, "id148": 0.0, "id149": 0.5}
        assert _by_id(df, "parsed_answer") == {"id147": "A", "id148": "D", "id149": "C"}
        assert _by_id(df, "response")["id148"] == " D"
        assert _by_id(df, "latency_s")["id147"] == pytest.approx(0.3)
    with pytest.raises(RegistryError, match=r"no stat 'f1_score' \(options.metric\)"):
        load_results(run, "gpt2", "mmlu", inst, "helm", {"metric": "f1_score"})
    with pytest.raises(
        RegistryError, match=r"key '\[0\].stats\[0\].mean': expected a per-sample score"
    ):
        load_results(run, "gpt2", "mmlu", inst, "helm", {"metric": "num_prompt_tokens"})
    with pytest.raises(RegistryError, match=r"no stats for split 'valid'"):
        load_results(run, "gpt2", "mmlu", inst, "helm", {"split": "valid"})


def test_helm_instances_and_suite_folder(tmp_path):
    suite = tmp_path / "benchmark_output" / "runs" / "v1"
    _helm_run(suite / "mmlu:subject=anatomy,method=multiple_choice_joint,model=openai_gpt2")
    _helm_run(
        suite / "mmlu:subject=virology,method=multiple_choice_joint,model=openai_gpt2",
        name="mmlu:subject=virology,method=multiple_choice_joint,model=openai_gpt2",
    )
    with pytest.raises(RegistryError, match="several HELM runs match benchmark 'mmlu'"):
        load_instances_from_results(suite, "mmlu", "helm")
    opts = {"task": "mmlu:subject=virology,method=multiple_choice_joint,model=openai_gpt2"}
    df = load_instances_from_results(suite, "virology", None, opts)
    assert df["instance_id"].to_list() == ["id147", "id148", "id149"]
    assert df["answer"].to_list() == ["A", "B", "C"]
    assert df["options"].to_list()[1] == ["Abdominal", "Cranial", "Pleural", "Spinal"]
    assert json.loads(df["metadata"][0]) == {"split": "test"}
    res = load_results(suite, "gpt2", "virology", df, None, opts)
    assert res.height == 3


def test_helm_malformed(tmp_path):
    run = _helm_run(tmp_path / "r")
    (run / "per_instance_stats.json").write_text(
        json.dumps([{"instance_id": "id1", "stats": {"a": 1}}])
    )
    with pytest.raises(
        RegistryError, match=r"per_instance_stats.json: key '\[0\].stats': expected a list"
    ):
        load_results(run, "m", "r", _instances("r", ["id1"]), "helm")
    (run / "per_instance_stats.json").write_text("{]")
    with pytest.raises(
        RegistryError, match=r"per_instance_stats.json: invalid JSON at line 1 column 2"
    ):
        load_results(run, "m", "r", _instances("r", ["id1"]), "helm")
    (run / "scenario_state.json").write_text(
        json.dumps(
            {
                "adapter_spec": {},
                "request_states": [
                    {
                        "instance": {
                            "id": "x",
                            "input": {"text": "q"},
                            "references": [{"output": {"text": "a"}, "tags": []}],
                        }
                    }
                ],
            }
        )
    )
    with pytest.raises(
        RegistryError,
        match=r"request_states\[0\].instance.references': no reference tagged 'correct'",
    ):
        load_instances_from_results(run, "r", "helm")


# --------------------------------------------------------------------------- detection, generic


def test_detection(tmp_path, lm_eval_dir):
    assert detect_format(lm_eval_dir) == "lm-eval"
    row = _gsm_rows()[0]
    assert detect_format(_write_jsonl(tmp_path / "dump.jsonl", [row])) == "lm-eval"
    generic = _write_jsonl(tmp_path / "r.jsonl", [{"instance_id": "1", "correct": 1}])
    assert detect_format(generic) == "generic"
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps([{"instance_id": "id1", "stats": []}]))
    assert detect_format(stats) == "helm"
    with pytest.raises(RegistryError, match="does not exist"):
        detect_format(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="set 'format'"):
        detect_format(tmp_path / "empty")
    with pytest.raises(RegistryError, match="unknown results format 'lm_eval'"):
        load_results(generic, "m", "b", _instances("b", [1]), "lm_eval")
    df = load_results(generic, "m", "b", _instances("b", [1]), None)
    assert _by_id(df, "correct") == {"1": 1.0}
    assert load_instances_from_results(generic, "b", None) is None


# --------------------------------------------------------------------------- round trip


def _demo(model: str):
    inst = load_instances(DEMO_QUESTIONS, "everyday-skills")
    res = load_generic_results(DEMO_RESULTS / f"{model}.jsonl", model, inst)
    return inst, res


EXPORTS = [
    ("generic", "r.jsonl", None),
    ("generic", "r.csv", None),
    ("generic", "r.parquet", None),
    ("lm-eval", "lm_eval_out", {"id_field": "id"}),
    ("lm-eval", "samples_everyday-skills_2025-01-02T03-04-05.678901.jsonl", {"id_field": "id"}),
    ("inspect", "log.eval", None),
    ("inspect", "log.json", None),
    ("inspect", "logs", None),
    ("helm", "helm_runs", None),
]


@pytest.mark.parametrize("model", ["gemma3-270m-few-shot", "smollm2-135m-zero-shot"])
@pytest.mark.parametrize("fmt, name, opts", EXPORTS, ids=[f"{f}:{n}" for f, n, _ in EXPORTS])
def test_round_trip_demo(tmp_path, model, fmt, name, opts):
    inst, res = _demo(model)
    assert res.height > 300
    path = export_results(res, inst, fmt, tmp_path / name)
    assert detect_format(path) == fmt
    back = load_results(path, model, "everyday-skills", inst, None, opts)
    assert back.columns == list(RESULTS)
    assert back.height == res.height
    assert _by_id(back, "correct") == _by_id(res, "correct")
    assert _by_id(back, "response") == _by_id(res, "response")
    if fmt != "helm":  # HELM keeps the completion, not a parsed answer
        assert _by_id(back, "parsed_answer") == _by_id(res, "parsed_answer")
    assert set(back["uid"]) == set(res["uid"]) and set(back["model"]) == {model}
    if fmt == "generic":
        return
    questions = load_instances_from_results(path, "everyday-skills", fmt, opts)
    cols = ["uid", "instance_id", "question", "options", "answer"]
    if fmt != "helm":  # HELM instances have no free-form metadata
        cols.append("metadata")
    assert questions.sort("uid").select(cols).equals(inst.sort("uid").select(cols))


def test_round_trip_scores_and_costs(tmp_path):
    inst = _instances("b", [1, 2, 3, 4])
    res = pl.DataFrame(
        {
            "uid": [f"b/{i}" for i in (1, 2, 3, 4)],
            "benchmark": ["b"] * 4,
            "instance_id": ["1", "2", "3", "4"],
            "model": ["m"] * 4,
            "response": ["A", "B", None, "C"],
            "parsed_answer": ["A", None, None, "C"],
            "correct": [1.0, 0.0, 0.5, 0.25],
            "cost_usd": [0.01, None, 0.0, 0.2],
            "latency_s": [1.5, 2.0, None, 0.1],
            "call_id": [None] * 4,
        },
        schema=RESULTS,
    )
    for fmt, name in (
        ("generic", "g.jsonl"),
        ("lm-eval", "lm"),
        ("inspect", "x.eval"),
        ("helm", "h"),
    ):
        opts = {"id_field": "id"} if fmt == "lm-eval" else None
        path = export_results(res, inst, fmt, tmp_path / name)
        back = load_results(path, "m", "b", inst, None, opts)
        assert _by_id(back, "correct") == _by_id(res, "correct"), fmt
        if fmt in ("generic", "inspect"):
            assert _by_id(back, "cost_usd") == _by_id(res, "cost_usd"), fmt
        if fmt in ("generic", "inspect", "helm"):
            assert _by_id(back, "latency_s") == _by_id(res, "latency_s"), fmt


# --------------------------------------------------------------------------- fuzzing

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=12,
)


def _near(template: dict) -> st.SearchStrategy:
    """The template with each value kept or replaced by random JSON, keys sometimes dropped."""
    return st.fixed_dictionaries(
        {},
        optional={k: st.one_of(st.just(v), _json) for k, v in template.items()},
    )


def _call_all(path: Path, inst: pl.DataFrame, fmt: str | None, opts=None):
    for call in (
        lambda: load_results(path, "m", "t", inst, fmt, opts),
        lambda: load_instances_from_results(path, "t", fmt, opts),
        lambda: detect_format(path),
    ):
        try:
            out = call()
        except RegistryError as e:
            assert str(e)  # a message, naming something
            continue
        if isinstance(out, pl.DataFrame):
            assert out.columns in (list(RESULTS), list(INSTANCES))


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = [
    ("samples_t_2024-01-01T00-00-00.jsonl", "lm-eval"),
    ("log.eval", "inspect"),
    ("log.json", "inspect"),
    ("per_instance_stats.json", "helm"),
    ("r.jsonl", None),
    ("r.csv", None),
    ("r.parquet", None),
]


@FUZZ
@given(data=st.binary(max_size=300), which=st.sampled_from(NAMES))
def test_fuzz_random_bytes(data, which):
    name, fmt = which
    inst = _instances("t", [0, 1, 2])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        for f in (fmt, None):
            _call_all(p, inst, f)


@FUZZ
@given(doc=_json, which=st.sampled_from(NAMES[:4]))
def test_fuzz_random_json(doc, which):
    name, fmt = which
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(json.dumps(doc))
        _call_all(p, _instances("t", [0, 1]), fmt)


@FUZZ
@given(
    rows=st.lists(_near(_arc_row(0, ARC_DOCS[0], ARC_LLS[0], 1.0, 1.0)), min_size=1, max_size=4),
    opts=st.sampled_from([None, {"id_field": "id"}, {"metric": "acc_norm"}, {"filter": "none"}]),
)
def test_fuzz_lm_eval_rows(rows, opts):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "samples_t_2024-01-01T00-00-00.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        _call_all(p, _instances("t", [0, 1]), "lm-eval", opts)


@FUZZ
@given(
    header=_near(_inspect_header(task="t")),
    samples=st.lists(_near(_inspect_sample(0, 1, "C")), max_size=3),
    as_zip=st.booleans(),
    opts=st.sampled_from([None, {"id_field": "uuid"}, {"value_key": "a"}]),
)
def test_fuzz_inspect_logs(header, samples, as_zip, opts):
    with tempfile.TemporaryDirectory() as d:
        if as_zip:
            p = Path(d) / "log.eval"
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("header.json", json.dumps(header))
                for i, s in enumerate(samples):
                    zf.writestr(f"samples/{i}_epoch_1.json", json.dumps(s))
        else:
            p = Path(d) / "log.json"
            p.write_text(
                json.dumps(
                    {**header, "eval": header.get("eval", {"task": "t"}), "samples": samples}
                )
            )
        _call_all(p, _instances("t", [0, 1]), "inspect", opts)


_HELM_STAT = {"instance_id": "id1", "train_trial_index": 0, "stats": [_stat("exact_match", 1.0)]}
_HELM_STATE = {
    "instance": {
        "input": {"text": "q"},
        "references": [{"output": {"text": "a"}, "tags": ["correct"]}],
        "id": "id1",
    },
    "train_trial_index": 0,
    "output_mapping": {"A": "a"},
    "result": {"completions": [{"text": " A"}], "request_time": 0.1},
}


@FUZZ
@given(
    stats=st.lists(_near(_HELM_STAT), max_size=3),
    states=st.lists(_near(_HELM_STATE), max_size=3),
    spec=_json,
)
def test_fuzz_helm_runs(stats, states, spec):
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "t"
        run.mkdir()
        (run / "per_instance_stats.json").write_text(json.dumps(stats))
        (run / "scenario_state.json").write_text(
            json.dumps({"adapter_spec": spec, "request_states": states})
        )
        (run / "run_spec.json").write_text(json.dumps(spec))
        _call_all(run, _instances("t", ["id1"]), "helm")
        _call_all(run, _instances("t", ["id1"]), None)
