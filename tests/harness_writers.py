"""Writers of harness-shaped result files, for the round-trip tests only.

``export_results`` writes a model's RESULTS (with the benchmark's INSTANCES) as the files
lm-evaluation-harness, Inspect AI or HELM write, or as a generic table; the importers in
``skill_assets.ingest`` must read them back unchanged (tests/ingest/test_importers.py). The package
itself never writes these formats.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.core.atomic import atomic_path, write_text
from skill_assets.core.schemas import RESULTS, conform
from skill_assets.ingest.readers.common import answer_letter, option_letters
from skill_assets.ingest.readers.lm_eval import LM_EVAL_INVALID

FORMATS = ("generic", "lm-eval", "inspect", "helm")


def _hash(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def _prompt(question: str, options: list[str] | None) -> str:
    lines = [f"Question: {question}"]
    if options:
        lines += [f"{L}. {o}" for L, o in zip(option_letters(len(options)), options, strict=True)]
    lines.append("Answer:")
    return "\n".join(lines)


def _joined(results: pl.DataFrame, instances: pl.DataFrame) -> list[dict]:
    inst = instances.select("uid", "question", "options", "answer", "metadata")
    df = results.join(inst, on="uid", how="left")
    missing = df.filter(pl.col("question").is_null())
    if missing.height:
        raise ValueError(f"results for uids not in `instances`: {missing['uid'].head(3).to_list()}")
    return df.to_dicts()


def _safe(name: str) -> str:
    return re.sub(r"[\"<>:/\|\\?\*\[\]]+", "__", name)


def export_results(
    results: pl.DataFrame,
    instances: pl.DataFrame,
    fmt: str,
    out: Path,
    created: datetime | None = None,
) -> Path:
    """Write a model's results in ``fmt``; returns the path to give ``load_results``.

    ``generic``: ``out`` is a .jsonl/.csv/.parquet file (a folder gets ``<model>.jsonl``).
    ``lm-eval``: ``out`` is the harness ``--output_path`` folder
    (``<out>/<model>/samples_<benchmark>_<date>.jsonl`` + ``results_<date>.json``; returns
    ``<out>/<model>``) or one ``.jsonl`` file. Samples are written as a generative task:
    ``doc`` = {id, question, choices, answer, <metadata>}, ``doc_id`` = position, metric
    ``exact_match`` = correct, filter ``none``; import back with ``id_field: id``.
    ``inspect``: ``out`` is a ``.eval`` or ``.json`` file, or a folder (one ``.eval`` per
    benchmark). Scores use scorer ``match`` with ``C``/``I`` for 0/1, numbers otherwise.
    ``helm``: ``out`` is a folder; one run folder per benchmark with ``run_spec.json``,
    ``scenario_state.json`` and ``per_instance_stats.json`` (stat ``exact_match``,
    split ``test``). Returns the run folder for one benchmark, else ``out``.
    ``created`` (default: now) dates the files (lm-eval names, Inspect ``eval.created``).
    """
    out = Path(out)
    results = conform(results, RESULTS)
    models = results["model"].unique().to_list()
    if fmt != "generic" and len(models) != 1:
        raise ValueError(f"export {fmt!r} writes one model's results; got models {models}")
    model = models[0] if models else "model"
    stamp = created or datetime.now(timezone.utc)
    if fmt == "generic":
        if out.suffix.lower() not in (".jsonl", ".csv", ".parquet"):
            out.mkdir(parents=True, exist_ok=True)
            out = out / f"{_safe(model)}.jsonl"
        df = results.drop("uid")
        with atomic_path(out) as tmp:
            if out.suffix.lower() == ".csv":
                df.write_csv(tmp)
            elif out.suffix.lower() == ".parquet":
                df.write_parquet(tmp)
            else:
                df.write_ndjson(tmp)
        return out
    rows = _joined(results, instances)
    by_bench: dict[str, list[dict]] = {}
    for r in rows:
        by_bench.setdefault(r["benchmark"], []).append(r)
    if fmt == "lm-eval":
        return _export_lm_eval(by_bench, instances, model, out, stamp)
    if fmt == "inspect":
        return _export_inspect(by_bench, instances, model, out, stamp)
    if fmt == "helm":
        return _export_helm(by_bench, instances, model, out)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")


def _lm_eval_doc(r: dict) -> dict:
    doc = {"id": r["instance_id"], "question": r["question"]}
    if r["options"] is not None:
        doc["choices"] = list(r["options"])
    doc["answer"] = r["answer"]
    for k, v in json.loads(r["metadata"] or "{}").items():
        doc.setdefault(k, v)
    return doc


def _export_lm_eval(by_bench, instances, model, out: Path, stamp: datetime) -> Path:
    date_id = stamp.strftime("%Y-%m-%dT%H-%M-%S.%f")
    single = out.suffix.lower() == ".jsonl"
    if single and len(by_bench) > 1:
        raise ValueError("one .jsonl file holds one task; give a folder for several benchmarks")
    folder = out.parent if single else out / _safe(model)
    folder.mkdir(parents=True, exist_ok=True)
    positions = {}
    for bench in by_bench:
        ids = instances.filter(pl.col("benchmark") == bench)["instance_id"].to_list()
        positions[bench] = {iid: i for i, iid in enumerate(ids)}
    summary: dict[str, dict] = {}
    for bench, rows in by_bench.items():
        path = out if single else folder / f"samples_{bench}_{date_id}.jsonl"
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for r in sorted(rows, key=lambda r: positions[bench][r["instance_id"]]):
                prompt = _prompt(r["question"], r["options"])
                target = str(r["answer"])
                doc = _lm_eval_doc(r)
                sample = {
                    "doc_id": positions[bench][r["instance_id"]],
                    "doc": doc,
                    "target": target,
                    "arguments": {
                        "gen_args_0": {
                            "arg_0": prompt,
                            "arg_1": {"until": ["\n\n"], "do_sample": False},
                        }
                    },
                    "resps": [[r["response"] if r["response"] is not None else ""]],
                    "filtered_resps": [
                        r["parsed_answer"] if r["parsed_answer"] is not None else LM_EVAL_INVALID
                    ],
                    "filter": "none",
                    "metrics": ["exact_match"],
                    "doc_hash": _hash(json.dumps(doc, indent=2, ensure_ascii=False)),
                    "prompt_hash": _hash(prompt),
                    "target_hash": _hash(target),
                    "exact_match": float(r["correct"]),
                }
                fh.write(json.dumps(sample, ensure_ascii=False) + "\n")
        acc = sum(float(r["correct"]) for r in rows) / len(rows)
        summary[bench] = {"alias": bench, "exact_match,none": acc, "exact_match_stderr,none": "N/A"}
    if not single:
        results_json = {
            "results": summary,
            "configs": {b: {"task": b, "output_type": "generate_until"} for b in by_bench},
            "versions": {b: 1.0 for b in by_bench},
            "n-samples": {
                b: {"original": len(r), "effective": len(r)} for b, r in by_bench.items()
            },
            "config": {"model": "skill-slices-export", "model_args": f"pretrained={model}"},
            "model_name": model,
            "model_name_sanitized": _safe(model),
            "date": stamp.timestamp(),
        }
        write_text(folder / f"results_{date_id}.json", json.dumps(results_json, indent=2))
    return out if single else folder


def _inspect_score(correct: float) -> Any:
    return {1.0: "C", 0.0: "I"}.get(float(correct), float(correct))


def _inspect_sample(r: dict, model: str) -> dict[str, Any]:
    """One Inspect sample as the log stores it."""
    msg = {"role": "user", "content": r["question"], "source": "input"}
    completion = r["response"] if r["response"] is not None else ""
    score: dict[str, Any] = {"value": _inspect_score(r["correct"])}
    if r["parsed_answer"] is not None:
        score["answer"] = r["parsed_answer"]
    sample: dict[str, Any] = {
        "id": r["instance_id"],
        "epoch": 1,
        "input": r["question"],
        "target": r["answer"],
        "messages": [
            msg,
            {"role": "assistant", "content": completion, "source": "generate", "model": model},
        ],
        "output": {
            "model": model,
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": completion,
                        "source": "generate",
                    },
                    "stop_reason": "stop",
                }
            ],
            "completion": completion,
        },
        "scores": {"match": score},
        "metadata": json.loads(r["metadata"] or "{}"),
        "store": {},
        "events": [],
        "model_usage": {},
        "attachments": {},
    }
    if r["options"] is not None:
        sample["choices"] = list(r["options"])
    if r["cost_usd"] is not None:
        sample["model_usage"] = {
            model: {
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "total_cost": r["cost_usd"],
            }
        }
    if r["latency_s"] is not None:
        sample["total_time"] = r["latency_s"]
    return sample


def _inspect_log(
    bench: str, rows: list[dict], model: str, stamp: datetime
) -> tuple[dict, list[dict]]:
    created = stamp.isoformat()
    samples = [_inspect_sample(r, model) for r in rows]
    acc = sum(float(r["correct"]) for r in rows) / len(rows)
    header = {
        "version": 2,
        "status": "success",
        "eval": {
            "run_id": _hash(f"{bench}/{model}")[:22],
            "created": created,
            "task": bench,
            "task_id": _hash(bench)[:22],
            "task_version": 0,
            "dataset": {
                "name": bench,
                "samples": len(rows),
                "sample_ids": [r["instance_id"] for r in rows],
            },
            "model": model,
            "config": {},
            "packages": {"inspect_ai": "0.3"},
        },
        "plan": {"name": "plan", "steps": [{"solver": "generate", "params": {}}], "config": {}},
        "results": {
            "total_samples": len(rows),
            "completed_samples": len(rows),
            "scores": [
                {
                    "name": "match",
                    "scorer": "match",
                    "params": {},
                    "metrics": {"accuracy": {"name": "accuracy", "value": acc, "params": {}}},
                }
            ],
        },
        "stats": {"started_at": created, "completed_at": created, "model_usage": {}},
    }
    return header, samples


def _write_eval_zip(path: Path, header: dict, samples: list[dict]) -> None:
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        start = {k: header[k] for k in ("version", "eval", "plan")}
        zf.writestr("_journal/start.json", json.dumps(start, indent=2))
        for s in samples:
            zf.writestr(f"samples/{s['id']}_epoch_{s['epoch']}.json", json.dumps(s, indent=2))
        summaries = [
            {k: s[k] for k in ("id", "epoch", "input", "target", "scores")} for s in samples
        ]
        zf.writestr("summaries.json", json.dumps(summaries, indent=2))
        zf.writestr("header.json", json.dumps(header, indent=2))


def _export_inspect(by_bench, instances, model, out: Path, stamp: datetime) -> Path:
    single = out.suffix.lower() in (".eval", ".json")
    if single and len(by_bench) > 1:
        raise ValueError("one Inspect log holds one task; give a folder for several benchmarks")
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    for bench, rows in by_bench.items():
        header, samples = _inspect_log(bench, rows, model, stamp)
        if single:
            path = out
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path = (
                out
                / f"{stamp.strftime('%Y-%m-%dT%H-%M-%S')}_{_safe(bench)}_{header['eval']['task_id']}.eval"
            )
        if path.suffix.lower() == ".json":
            write_text(path, json.dumps({**header, "samples": samples}, indent=2))
        else:
            _write_eval_zip(path, header, samples)
    return out


def _helm_state(r: dict, model: str) -> dict[str, Any]:
    """One request state (instance, request, completion) of a HELM run."""
    options = list(r["options"]) if r["options"] is not None else None
    if options:
        letters = option_letters(len(options))
        gold = answer_letter(str(r["answer"]), options, index_first=False)
        refs = [
            {"output": {"text": o}, "tags": ["correct"] if L == gold else []}
            for L, o in zip(letters, options, strict=True)
        ]
        mapping = dict(zip(letters, options, strict=True))
    else:
        refs = [{"output": {"text": r["answer"]}, "tags": ["correct"]}]
        mapping = None
    instance = {
        "input": {"text": r["question"]},
        "references": refs,
        "split": "test",
        "id": r["instance_id"],
    }
    completion = r["response"] if r["response"] is not None else ""
    state: dict[str, Any] = {
        "instance": instance,
        "train_trial_index": 0,
        "request": {
            "model": model,
            "model_deployment": model,
            "prompt": _prompt(r["question"], options),
            "temperature": 0.0,
            "num_completions": 1,
            "max_tokens": 1 if options else 100,
            "stop_sequences": ["\n"],
        },
        "result": {
            "success": True,
            "embedding": [],
            "completions": [{"text": completion, "logprob": 0.0, "tokens": []}],
            "cached": False,
        },
        "num_train_instances": 0,
        "prompt_truncated": False,
    }
    if mapping is not None:
        state["output_mapping"] = mapping
    if r["latency_s"] is not None:
        state["result"]["request_time"] = r["latency_s"]
    return state


def _helm_stats_entry(r: dict) -> dict[str, Any]:
    """One PerInstanceStats entry: the result's exact_match on the test split."""
    c = float(r["correct"])
    return {
        "instance_id": r["instance_id"],
        "train_trial_index": 0,
        "stats": [
            {
                "name": {"name": "exact_match", "split": "test"},
                "count": 1,
                "sum": c,
                "sum_squared": c * c,
                "min": c,
                "max": c,
                "mean": c,
                "variance": 0.0,
                "stddev": 0.0,
            },
            {
                "name": {"name": "num_prompt_tokens", "split": "test"},
                "count": 1,
                "sum": 0,
                "sum_squared": 0,
                "min": 0,
                "max": 0,
                "mean": 0,
                "variance": 0.0,
                "stddev": 0.0,
            },
        ],
    }


def _export_helm(by_bench, instances, model, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    last = out
    for bench, rows in by_bench.items():
        name = f"{bench}:model={_safe(model)}"
        run = out / name
        run.mkdir(parents=True, exist_ok=True)
        states, stats = [], []
        for r in rows:
            states.append(_helm_state(r, model))
            stats.append(_helm_stats_entry(r))
        method = (
            "multiple_choice_joint" if any(r["options"] is not None for r in rows) else "generation"
        )
        adapter_spec = {
            "method": method,
            "model": model,
            "model_deployment": model,
            "max_train_instances": 0,
        }
        spec = {
            "name": name,
            "scenario_spec": {"class_name": "skill_slices.export", "args": {"benchmark": bench}},
            "adapter_spec": adapter_spec,
            "metric_specs": [
                {
                    "class_name": "helm.benchmark.metrics.basic_metrics.BasicGenerationMetric",
                    "args": {"names": ["exact_match"]},
                }
            ],
            "groups": [bench],
        }
        write_text(run / "run_spec.json", json.dumps(spec, indent=2))
        write_text(
            run / "scenario_state.json",
            json.dumps({"adapter_spec": adapter_spec, "request_states": states}, indent=2),
        )
        write_text(run / "per_instance_stats.json", json.dumps(stats, indent=2))
        last = run
    return last if len(by_bench) == 1 else out
