"""lm-evaluation-harness ``--log_samples`` output.

``samples_<task>_<date>.jsonl``: one JSON object per line (``doc_id``, ``doc``, ``target``,
``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics``, ``doc_hash``,
``prompt_hash``, ``target_hash`` and one top-level key per metric). The path is one samples
file or the harness output folder (``--output_path``, or the ``<model>`` folder inside it);
each ``samples_<task>_*.jsonl`` feeds the benchmark named after its task, the newest file per
task (by the timestamp in its name) wins. A samples file whose name does not follow the
harness pattern feeds any benchmark.

Choices made (all overridable through ``options``):

- **Filter.** The harness logs every document once per filter pipeline (``none`` for most
  multiple-choice tasks; e.g. ``strict-match`` and ``flexible-extract`` for GSM8K). Rows
  are de-duplicated on (doc_id, filter) and one filter is kept: ``options.filter``, else
  ``none`` when present, else the first filter in the file (the harness writes filters in
  the task's configured order, so this is the task's primary filter). Files from harness
  versions without a ``filter`` key keep the first row per doc_id.
- **Metric.** ``options.metric``, else the first of ``acc``, ``exact_match``, ``em``,
  ``pass@1``, ``acc_norm`` … that the sample carries (``acc`` for multiple-choice
  loglikelihood tasks, ``exact_match`` for generative ones), else the first metric in the
  sample's ``metrics`` list with a per-sample value in [0, 1]. Metrics whose per-sample
  value is a list (f1, bleu, mcc: aggregated per task) cannot be a per-instance score and
  are rejected with a message naming the alternatives.
- **Ids.** ``instance_id`` is ``str(doc_id)`` unless ``options.id_field`` names a field of
  ``doc`` (doc_id is the row's position in the task's split, so a doc field such as ``id``
  is the stable choice when one exists). Positional ids are checked: each doc must hold
  the benchmark's question at its id; if not (a ``process_docs`` that drops or reorders
  documents renumbers doc_id), rows are matched by their doc's text when that is
  unambiguous, else the first mismatching row is an error.
- **Gold.** Multiple-choice (loglikelihood) targets are option indices and become letters;
  a ``generate_until`` target is kept as written even when the doc lists options.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.core.options import ImportOptions
from skill_assets.core.registry import RegistryError
from skill_assets.ingest.readers.base import (
    BY_CONTENT,
    BY_NAME,
    EXACT,
    NOT_MINE,
    InstanceRow,
    ResultRow,
    ResultRows,
)
from skill_assets.ingest.readers.common import (
    answer_letter,
    choices_list,
    decode,
    fail,
    finite,
    guard,
    json_text,
    kind_of,
    no_source,
    not_present,
    option_letters,
    peek,
    scalar_id,
    score01,
    short,
    subkey,
    task_matches,
)

LM_EVAL_METRICS = ("acc", "exact_match", "em", "pass@1", "pass_at_1", "acc_norm", "accuracy")
# keys of an lm-eval sample row that are not metrics
LM_EVAL_RESERVED = {
    "doc_id",
    "doc",
    "target",
    "arguments",
    "resps",
    "filtered_resps",
    "filter",
    "metrics",
    "doc_hash",
    "prompt_hash",
    "target_hash",
    "task_name",
}
LM_EVAL_INVALID = "[invalid]"  # the harness's regex-filter fallback: nothing extracted
QUESTION_FIELDS = (
    "question",
    "query",
    "problem",
    "input",
    "prompt",
    "ctx",
    "sentence",
    "goal",
    "premise",
    "text",
)
CHOICE_FIELDS = ("choices", "options", "endings")
_log = logging.getLogger(__name__)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?$")


@dataclass
class _DocRow(ResultRow):
    doc: dict | None = None  # the sample's document, to check positional ids


def _looks_lm_eval_row(obj: Any) -> bool:
    return isinstance(obj, dict) and "doc_id" in obj and ("filtered_resps" in obj or "resps" in obj)


def _lm_eval_name(path: Path) -> tuple[str, datetime] | None:
    """(task, timestamp) from ``samples_<task>_<date>.jsonl``, or None if not so named."""
    name = path.name
    if not (name.startswith("samples_") and name.endswith(".jsonl")):
        return None
    stem = name[len("samples_") : -len(".jsonl")]
    if "_" not in stem:
        return None
    task, date = stem.rsplit("_", 1)
    if not task or not _DATE_RE.match(date):
        return None
    fmt = "%Y-%m-%dT%H-%M-%S.%f" if "." in date else "%Y-%m-%dT%H-%M-%S"
    try:
        return task, datetime.strptime(date, fmt)
    except ValueError:
        return None


def _lm_eval_files(path: Path) -> dict[str | None, Path]:
    """Task → newest samples file; a single unconventionally named file maps from None."""
    if path.is_file():
        parsed = _lm_eval_name(path)
        return {parsed[0] if parsed else None: path}
    if not path.is_dir():
        raise RegistryError(f"{path}: results path does not exist")
    by_task: dict[str, list[tuple[datetime, Path]]] = {}
    for f in sorted(path.rglob("samples_*.jsonl")):
        parsed = _lm_eval_name(f)
        if parsed is None:
            raise RegistryError(
                f"{f}: expected a name samples_<task>_<YYYY-MM-DDTHH-MM-SS.ffffff>.jsonl "
                "as lm-evaluation-harness writes it"
            )
        by_task.setdefault(parsed[0], []).append((parsed[1], f))
    if not by_task:
        raise RegistryError(f"{path}: no samples_<task>_<date>.jsonl files in this folder")
    out: dict[str | None, Path] = {}
    for task, files in by_task.items():
        folders = sorted({str(f.parent) for _, f in files})
        if len(folders) > 1:
            raise RegistryError(
                f"{path}: task {task!r} has samples files in several folders {folders} "
                "(one per model?); point 'results' at one model's folder"
            )
        out[task] = max(files)[1]
    return out


def _read_lm_eval_rows(path: Path) -> list[tuple[str, dict]]:
    data = path.read_bytes()
    if not data.strip():
        raise RegistryError(f"{path}: file is empty")
    text = decode(data, str(path))
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        row = json_text(line, where)
        if not isinstance(row, dict):
            fail(where, f"expected a JSON object (one logged sample), got {kind_of(row)}")
        if "doc_id" not in row:
            fail(
                where,
                "missing 'doc_id' (expected an lm-evaluation-harness --log_samples row: "
                "doc_id, doc, target, resps, filtered_resps, filter, <metric>…)",
            )
        rows.append((where, row))
    if not rows:
        raise RegistryError(f"{path}: no samples")
    return rows


def _lm_eval_select(path: Path, rows: list[tuple[str, dict]], opts: ImportOptions):
    """Keep one filter and one row per doc_id; returns [(where, row)]."""
    filters: list = []
    for where, row in rows:
        f = row.get("filter")
        if f is not None and not isinstance(f, str):
            fail(subkey(where, "filter"), f"expected the filter's name (a string), got {short(f)}")
        if f not in filters:
            filters.append(f)
    if opts.filter is not None:
        if opts.filter not in filters:
            present = f"filters present: {[f for f in filters if f is not None]}"
            not_present(path, "filter", opts.filter, "samples with filter", present)
        chosen = opts.filter
    else:
        chosen = "none" if "none" in filters else filters[0]
    kept: dict[Any, tuple[str, dict]] = {}
    for where, row in rows:
        if row.get("filter") != chosen:
            continue
        doc_id = row["doc_id"]
        if isinstance(doc_id, (dict, list)) or isinstance(doc_id, bool) or doc_id is None:
            fail(subkey(where, "doc_id"), f"expected an integer, got {short(doc_id)}")
        key = str(doc_id)
        if key in kept:
            continue  # de-duplicate on (doc_id, filter): the first row wins
        kept[key] = (where, row)
    return list(kept.values()), chosen


def _lm_eval_metric(path: Path, where: str, row: dict, opts: ImportOptions) -> str:
    listed = row.get("metrics")
    if isinstance(listed, list) and all(isinstance(m, str) for m in listed):
        candidates = [m for m in listed if m in row]
    else:
        candidates = [k for k in row if k not in LM_EVAL_RESERVED]
    if opts.metric is not None:
        if opts.metric not in row:
            present = f"metrics present: {candidates}"
            not_present(where, "metric", opts.metric, "metric", present, " in this sample")
        return opts.metric
    for m in LM_EVAL_METRICS:
        if m in candidates:
            return m
    for m in candidates:
        v = row[m]
        if isinstance(v, bool) or (finite(v) is not None and 0 <= v <= 1):
            return m
    raise RegistryError(
        f"{where}: cannot choose a per-sample metric; metrics present: {candidates}; "
        "set options.metric"
    )


def _is_loglik_pair(v: Any) -> bool:
    if not (isinstance(v, list) and len(v) == 2):
        return False
    try:
        float(v[0])
    except (TypeError, ValueError, OverflowError):
        return False
    return str(v[1]) in ("True", "False")


def _lm_eval_response(row: dict) -> tuple[str | None, str | None]:
    """(response, parsed_answer) from resps / filtered_resps."""
    fr = row.get("filtered_resps")
    rs = row.get("resps")
    response = parsed = None
    if isinstance(fr, list) and fr:
        if all(_is_loglik_pair(x) for x in fr):  # loglikelihood multiple choice
            lls = [float(x[0]) for x in fr]
            if all(math.isfinite(x) for x in lls):
                parsed = option_letters(len(lls))[max(range(len(lls)), key=lls.__getitem__)]
            return None, parsed
        first = fr[0]
        while isinstance(first, list) and first:
            first = first[0]
        if isinstance(first, str):
            parsed = None if first == LM_EVAL_INVALID else first
    if isinstance(rs, list) and rs:
        first = rs[0]
        while isinstance(first, list) and first:
            first = first[0]
        if isinstance(first, str):
            response = first
    return response, parsed


def _lm_eval_id(where: str, row: dict, opts: ImportOptions) -> str:
    if opts.id_field is None:
        return scalar_id(row["doc_id"], subkey(where, "doc_id"))
    doc = row.get("doc")
    if not isinstance(doc, dict):
        fail(
            subkey(where, "doc"),
            f"expected an object with field {opts.id_field!r} (options.id_field)",
        )
    if opts.id_field not in doc:
        fail(
            where,
            f"doc has no field {opts.id_field!r} (options.id_field); doc fields: {sorted(doc)[:12]}",
        )
    return scalar_id(doc[opts.id_field], subkey(where, f"doc.{opts.id_field}"))


def _lm_eval_source(path: Path, benchmark: str, opts: ImportOptions) -> Path | None:
    files = _lm_eval_files(path)
    matches = [f for task, f in files.items() if task_matches(task, benchmark, opts)]
    return matches[0] if matches else None


def _lm_eval_rows(
    path: Path, benchmark: str, opts: ImportOptions
) -> tuple[list[_DocRow], str] | None:
    src = _lm_eval_source(path, benchmark, opts)
    if src is None:
        return None
    with guard(src, "lm-eval"):
        selected, _ = _lm_eval_select(src, _read_lm_eval_rows(src), opts)
        metric = _lm_eval_metric(src, selected[0][0], selected[0][1], opts)
        out = []
        for where, row in selected:
            if metric not in row:
                fail(where, f"no metric {metric!r} in this sample (the file's first sample has it)")
            correct = score01(
                row[metric],
                f"{where}: key {metric!r}",
                " (not a per-sample 0/1 score; choose another with options.metric)",
            )
            response, parsed = _lm_eval_response(row)
            doc = row.get("doc") if isinstance(row.get("doc"), dict) else None
            iid = _lm_eval_id(where, row, opts)
            out.append(_DocRow(iid, correct, where, response, parsed, doc=doc))
        return out, str(src)


def _norm_text(v: str) -> str:
    return " ".join(v.split()).casefold()


def _doc_texts(doc: dict) -> list[str]:
    return [_norm_text(v) for v in doc.values() if isinstance(v, str) and v.strip()]


def _same_question(q: str, texts: list[str]) -> bool:
    """Does a benchmark question (normalised) appear among a doc's texts? Containment either
    way covers a benchmark that stores the question with its options, or a doc that does."""
    return any(q == t or (len(t) >= 12 and t in q) or (len(q) >= 12 and q in t) for t in texts)


def _lm_eval_align(rows: list[_DocRow], instances: pl.DataFrame, benchmark: str) -> list[_DocRow]:
    """Check positional ``doc_id``s against the benchmark's questions.

    ``doc_id`` is the document's position after the task's ``process_docs``, so a task that
    drops or reorders documents shifts every id. When a doc does not hold the benchmark's
    question at its id, the rows are matched by content (each doc's text naming exactly one
    benchmark question); if that is ambiguous, the first mismatching row is an error.
    """
    if "question" not in instances.columns or not any(r.doc for r in rows):
        return rows
    qmap = {
        iid: _norm_text(q)
        for iid, q in zip(instances["instance_id"], instances["question"], strict=True)
        if isinstance(q, str)
    }
    bad = [
        r
        for r in rows
        if r.doc is not None
        and r.instance_id in qmap
        and not _same_question(qmap[r.instance_id], _doc_texts(r.doc))
    ]
    if not bad:
        return rows
    by_text: dict[str, list[str]] = {}
    for iid, q in qmap.items():
        by_text.setdefault(q, []).append(iid)
    remapped = []
    for r in rows:
        hits = {iid for t in _doc_texts(r.doc or {}) for iid in by_text.get(t, [])}
        if len(hits) != 1:
            break
        remapped.append(replace(r, instance_id=hits.pop()))
    else:
        _log.warning(
            "%s: %d of %d doc_ids do not point at the benchmark's question; matched the rows "
            "to benchmark %r by their doc text instead",
            bad[0].where.split(": line")[0],
            len(bad),
            len(rows),
            benchmark,
        )
        return remapped
    r = bad[0]
    doc = r.doc or {}
    doc_q = next((v for k, v in doc.items() if k in QUESTION_FIELDS and isinstance(v, str)), None)
    doc_q = doc_q or next((v for v in doc.values() if isinstance(v, str)), "")
    raise RegistryError(
        f"{r.where}: doc_id {r.instance_id} is not benchmark {benchmark!r}'s instance "
        f"{r.instance_id!r} (doc says {short(doc_q)}, the benchmark {short(qmap[r.instance_id])}; "
        f"{len(bad)} of {len(rows)} rows differ). doc_id is the position after the task's "
        "process_docs, so a filtered or reordered task shifts it; set options.id_field to a doc "
        "field holding the benchmark's ids"
    )


def _doc_field(doc: dict, key: str | None, defaults: tuple[str, ...]) -> tuple[str | None, Any]:
    if key is not None:
        return (key, doc[key]) if key in doc else (None, None)
    for k in defaults:
        if k in doc and doc[k] not in (None, ""):
            return k, doc[k]
    return None, None


def _lm_eval_prompt(row: dict) -> str | None:
    args = row.get("arguments")
    if isinstance(args, dict):  # sanitised: {"gen_args_0": {"arg_0": prompt, "arg_1": …}}
        first = args.get("gen_args_0")
        if isinstance(first, dict) and isinstance(first.get("arg_0"), str):
            return first["arg_0"]
    if isinstance(args, list) and args and isinstance(args[0], list) and args[0]:
        if isinstance(args[0][0], str):
            return args[0][0]
    return None


def _lm_eval_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
    src = _lm_eval_source(path, benchmark, opts)
    if src is None:
        tasks = sorted(str(t) for t in _lm_eval_files(path))
        no_source(path, "samples file for task", benchmark, opts, "tasks", tasks)
    with guard(src, "lm-eval"):
        selected, _ = _lm_eval_select(src, _read_lm_eval_rows(src), opts)
        items = []
        for where, row in selected:
            doc = row.get("doc")
            if not isinstance(doc, dict):
                fail(
                    subkey(where, "doc"), f"expected the task's document object, got {kind_of(doc)}"
                )
            iid = _lm_eval_id(where, row, opts)
            qkey, question = _doc_field(doc, opts.question_field, QUESTION_FIELDS)
            if question is None and opts.question_field is None:
                question = _lm_eval_prompt(row)
            if not isinstance(question, str):
                if opts.question_field is not None:
                    fail(
                        where,
                        f"doc has no string field {opts.question_field!r} (options.question_field)",
                    )
                fail(
                    where,
                    f"cannot find the question in doc (fields: {sorted(doc)[:12]}); "
                    "set options.question_field",
                )
            ckey, raw_choices = _doc_field(doc, opts.choices_field, CHOICE_FIELDS)
            if opts.choices_field is not None and ckey is None:
                fail(where, f"doc has no field {opts.choices_field!r} (options.choices_field)")
            choices = choices_list(raw_choices, subkey(where, f"doc.{ckey}")) if ckey else None
            if opts.answer_field is not None:
                if opts.answer_field not in doc:
                    fail(where, f"doc has no field {opts.answer_field!r} (options.answer_field)")
                gold, akey = doc[opts.answer_field], opts.answer_field
            else:
                gold, akey = row.get("target"), None
            if isinstance(gold, list) and gold:
                gold = gold[0]
            if gold is None or isinstance(gold, (dict, list)):
                fail(subkey(where, "target"), f"expected the gold answer, got {kind_of(gold)}")
            gold = str(gold)
            fr = row.get("filtered_resps")
            multiple_choice = isinstance(fr, list) and fr and all(_is_loglik_pair(x) for x in fr)
            if choices and multiple_choice:
                # loglikelihood tasks score the options: the target is the index of the gold
                # one. A generate_until task compares text, so its target is the answer as is.
                gold = answer_letter(gold, choices, index_first=True)
            used = {k for k in (qkey, ckey, akey, opts.id_field) if k}
            if akey is None and "answer" in doc:
                used.add("answer")
            meta = {k: v for k, v in doc.items() if k not in used}
            items.append(InstanceRow(iid, question, choices, gold, where, metadata=meta))
        return items


class LmEvalReader:
    """lm-evaluation-harness ``--log_samples`` files (see the module docstring)."""

    name = "lm-eval"
    layout = "samples_<task>_<date>.jsonl (lm-eval)"

    def recognise(self, path: Path) -> int:
        """Its samples files by name; a ``.jsonl`` whose first row is a logged sample."""
        if path.is_dir():
            return BY_NAME if any(path.rglob("samples_*.jsonl")) else NOT_MINE
        if path.name.startswith("samples_") and path.name.endswith(".jsonl"):
            return EXACT
        if path.suffix.lower() not in (".jsonl", ".ndjson"):
            return NOT_MINE
        head = peek(path).decode("utf-8", "ignore")
        first = next((ln for ln in head.splitlines() if ln.strip()), "")
        try:
            return BY_CONTENT if _looks_lm_eval_row(json.loads(first)) else NOT_MINE
        except (json.JSONDecodeError, RecursionError):
            return NOT_MINE

    def tasks(self, path: Path) -> list[str]:
        """The tasks named by the samples files."""
        return sorted(t for t in _lm_eval_files(path) if t is not None)

    def read_results(
        self, path: Path, benchmark: str, instances: pl.DataFrame, opts: ImportOptions
    ) -> ResultRows | None:
        """The chosen filter's and metric's per-sample scores; positional ids checked."""
        got = _lm_eval_rows(path, benchmark, opts)
        if got is None:
            return None
        rows, source = got
        if opts.id_field is None:
            rows = _lm_eval_align(rows, instances, benchmark)
        return ResultRows(list(rows), source)

    def read_instances(self, path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
        """Each sample's ``doc`` and ``target``."""
        return _lm_eval_instances(path, benchmark, opts)


READER = LmEvalReader()
