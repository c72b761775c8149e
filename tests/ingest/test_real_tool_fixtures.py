"""Importers on files written by the real tools (tests/fixtures/make_fixtures.py made them).

Each test compares the imported per-instance scores with the tool's own figures: the
reduced per-sample scores and accuracy Inspect's log reader returned (expected.json),
the per-sample metrics and aggregated results lm-eval wrote, HELM's own stats.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from skill_assets.core.registry import RegistryError
from skill_assets.ingest.importers import (
    _read_member,
    detect_format,
    load_instances_from_results,
    load_results,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures"
INSPECT = FIX / "inspect"
LM_EVAL = FIX / "lm_eval" / "out"
EXPECTED = json.loads((INSPECT / "expected.json").read_text())


def _scores(df: pl.DataFrame) -> dict[str, float]:
    return dict(zip(df["instance_id"], df["correct"], strict=True))


def _inspect_import(path: Path, options=None) -> pl.DataFrame:
    inst = load_instances_from_results(path, "arith", options=options)
    return load_results(path, "mock", "arith", inst, options=options)


# --------------------------------------------------------------------------- Inspect


@pytest.mark.parametrize("name", ["match.eval", "epochs_at_least_1.eval", "errored.eval"])
def test_inspect_eval_logs_match_the_tools_scores(name):
    path = INSPECT / name
    with zipfile.ZipFile(path) as zf:  # what current Inspect writes: zstd members
        assert {i.compress_type for i in zf.infolist()} == {93}
    assert detect_format(path) == "inspect"
    exp = EXPECTED[name]
    df = _inspect_import(path)
    assert _scores(df) == {k: float(v) for k, v in exp["reduced"].items()}
    assert df.height == exp["scored_samples"]
    assert df["correct"].mean() == pytest.approx(exp["accuracy"], abs=1e-12)


def test_inspect_epoch_reducer_applied_without_the_logs_reductions(tmp_path):
    """A log without reduced scores: the importer applies the recorded reducer itself."""
    src = INSPECT / "epochs_at_least_1.eval"
    dst = tmp_path / "no_reductions.eval"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "reductions.json":
                zout.writestr(info.filename, _read_member(zin, info.filename))
    exp = EXPECTED["epochs_at_least_1.eval"]
    assert exp["reducer"] == "at_least_1"
    df = _inspect_import(dst)
    assert _scores(df) == {k: float(v) for k, v in exp["reduced"].items()}
    assert df["correct"].mean() == pytest.approx(exp["accuracy"])  # 0.75; the mean gives less


def test_inspect_aborted_run_is_refused_unless_partial_allowed():
    path = INSPECT / "aborted.eval"
    assert EXPECTED["aborted.eval"]["status"] == "error"
    with pytest.raises(RegistryError, match=r"aborted\.eval: Inspect run status is 'error'"):
        _inspect_import(path)
    df = _inspect_import(path, {"allow_partial": True})
    exp = EXPECTED["aborted.eval"]
    # the samples that finished before the run stopped (the errored ones carry no score)
    assert df.height == exp["samples_logged"] - len(exp["errored"])
    assert not set(df["instance_id"]) & set(exp["errored"])


def test_inspect_folder_prefers_the_newest_complete_run(tmp_path):
    shutil.copy(INSPECT / "match.eval", tmp_path / "match.eval")
    shutil.copy(INSPECT / "aborted.eval", tmp_path / "aborted.eval")  # newer, but aborted
    inst = load_instances_from_results(INSPECT / "match.eval", "arith")
    df = load_results(tmp_path, "mock", "arith", inst)
    assert _scores(df) == {k: float(v) for k, v in EXPECTED["match.eval"]["reduced"].items()}


def test_inspect_two_json_runs_in_one_folder_newest_wins():
    folder = INSPECT / "two_runs"
    assert detect_format(folder) == "inspect"  # a folder of .json logs, no 'format' needed
    df = _inspect_import(folder)
    exp = EXPECTED["two_runs/newer.json"]
    assert _scores(df) == {k: float(v) for k, v in exp["reduced"].items()}
    assert df["correct"].mean() == pytest.approx(exp["accuracy"])


# --------------------------------------------------------------------------- lm-eval


def _lm_eval_results() -> dict:
    [f] = LM_EVAL.glob("*/results_*.json")
    return json.loads(f.read_text())["results"]


def _lm_eval_samples(task: str) -> list[dict]:
    [f] = LM_EVAL.glob(f"*/samples_{task}_*.jsonl")
    return [json.loads(ln) for ln in f.read_text().splitlines()]


@pytest.mark.parametrize(("task", "metric"), [("arith_mc", "acc"), ("arith_gen", "exact_match")])
def test_lm_eval_tasks_match_the_tools_scores(task, metric):
    assert detect_format(LM_EVAL) == "lm-eval"
    inst = load_instances_from_results(LM_EVAL, task)
    df = load_results(LM_EVAL, "dummy", task, inst)
    own = {str(s["doc_id"]): s[metric] for s in _lm_eval_samples(task)}
    assert _scores(df) == own
    assert df["correct"].mean() == pytest.approx(_lm_eval_results()[task][f"{metric},none"])


def test_lm_eval_generation_task_keeps_its_gold_answer():
    inst = load_instances_from_results(LM_EVAL, "arith_gen")
    targets = {str(s["doc_id"]): s["target"] for s in _lm_eval_samples("arith_gen")}
    assert dict(zip(inst["instance_id"], inst["answer"], strict=True)) == targets
    assert "-3" in targets.values()  # the gold that used to become "D"


def test_lm_eval_filtered_task_lands_on_the_right_questions():
    """process_docs dropped every other document and renumbered doc_id; the benchmark is
    numbered by position in the full dataset (the arith_mc task)."""
    bench = load_instances_from_results(LM_EVAL, "arith_mc")
    df = load_results(LM_EVAL, "dummy", "arith_mc", bench, options={"task": "arith_filtered"})
    samples = _lm_eval_samples("arith_filtered")
    question = dict(zip(bench["instance_id"], bench["question"], strict=True))
    own = {s["doc"]["question"]: s["acc"] for s in samples}
    got = {question[i]: c for i, c in _scores(df).items()}
    assert got == own
    assert df["correct"].mean() == pytest.approx(_lm_eval_results()["arith_filtered"]["acc,none"])
    assert sorted(df["instance_id"], key=int) == ["0", "2", "4", "6", "8", "10"]


def test_lm_eval_positional_mismatch_names_the_first_bad_row(tmp_path):
    bench = load_instances_from_results(LM_EVAL, "arith_mc")
    # a benchmark whose questions at those positions are not the docs', and not unique
    bench = bench.with_columns(pl.lit("What is the capital of France?").alias("question"))
    with pytest.raises(RegistryError, match=r"samples_arith_filtered_.*line 1: doc_id 0 is not"):
        load_results(LM_EVAL, "dummy", "arith_mc", bench, options={"task": "arith_filtered"})


# --------------------------------------------------------------------------- HELM

HELM = FIX / "helm"


def test_helm_run_matches_the_tools_scores():
    assert detect_format(HELM) == "helm"
    inst = load_instances_from_results(HELM, "arith")
    df = load_results(HELM, "simple/model1", "arith", inst)
    [run] = HELM.glob("*/per_instance_stats.json")
    own = {}
    for e in json.loads(run.read_text()):
        for st in e["stats"]:
            name = st["name"]
            if name["name"] == "exact_match" and "perturbation" not in name:
                own[e["instance_id"]] = st["mean"]
    assert _scores(df) == own
    stats = json.loads((run.parent / "stats.json").read_text())
    [overall] = [s["mean"] for s in stats if s["name"] == {"name": "exact_match", "split": "test"}]
    assert df["correct"].mean() == pytest.approx(overall)
    assert 0 < overall < 1


def test_helm_id_field_is_refused_not_ignored():
    inst = load_instances_from_results(HELM, "arith")
    with pytest.raises(RegistryError, match=r"options.id_field does not apply to HELM"):
        load_results(HELM, "simple/model1", "arith", inst, options={"id_field": "id"})
