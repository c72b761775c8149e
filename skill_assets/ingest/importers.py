"""Import per-instance results (and questions) from the files evaluation harnesses write.

One entry point per direction, dispatching on ``fmt``:

``load_results(path, model, benchmark, instances, fmt, options)``
    → a RESULTS frame for one benchmark.
``load_instances_from_results(path, benchmark, fmt, options)``
    → an INSTANCES frame, for formats that carry the questions (else ``None``).
``export_results(results, instances, fmt, out)``
    → writes a model's results in any of the formats (used by the round-trip tests).

Formats (``fmt``; ``None`` = detect where unambiguous, see :func:`detect_format`):

``generic``   JSONL/CSV/Parquet with instance_id, [model], correct (see ``results.py``);
              ``jsonl``/``csv``/``parquet`` name the container explicitly.
``lm-eval``   lm-evaluation-harness ``--log_samples`` output: ``samples_<task>_<date>.jsonl``
              (one JSON object per line: ``doc_id``, ``doc``, ``target``, ``arguments``,
              ``resps``, ``filtered_resps``, ``filter``, ``metrics``, ``doc_hash``,
              ``prompt_hash``, ``target_hash`` and one top-level key per metric). The
              path is one samples file or the harness output folder (``--output_path``,
              or the ``<model>`` folder inside it); each ``samples_<task>_*.jsonl`` feeds
              the benchmark named after its task, the newest file per task (by the
              timestamp in its name) wins.
``inspect``   Inspect AI logs: ``.eval`` (a zip of ``header.json``, ``samples/<id>_epoch_<n>.json``,
              …) or ``.json`` (one ``EvalLog`` object with ``eval`` and ``samples``), or a
              folder of them (the newest log per task wins, by ``eval.created``).
``helm``      HELM run output: ``per_instance_stats.json`` (+ ``scenario_state.json`` for
              the questions and the completions), a run folder holding them, or a suite
              folder of run folders.

Choices made (all overridable through ``options``, see :class:`ImportOptions`):

- **Which benchmark a harness file feeds.** Its task name (lm-eval: from the file name;
  inspect: ``eval.task`` or its last ``/`` part; helm: the run name, e.g.
  ``mmlu:subject=anatomy,model=x``, or its scenario part before ``:``) must equal the
  benchmark name, or ``options.task`` (a string, or a ``{benchmark: task}`` mapping).
  A samples file whose name does not follow the harness pattern feeds any benchmark.
  A results path with no matching task gives an empty frame for that benchmark
  (:func:`check_results` turns "matches no benchmark at all" into an error).
- **lm-eval filter.** The harness logs every document once per filter pipeline
  (``none`` for most multiple-choice tasks; e.g. ``strict-match`` and
  ``flexible-extract`` for GSM8K). Rows are de-duplicated on (doc_id, filter) and one
  filter is kept: ``options.filter``, else ``none`` when present, else the first filter
  in the file (the harness writes filters in the task's configured order, so this is
  the task's primary filter). Files from harness versions without a ``filter`` key
  keep the first row per doc_id.
- **lm-eval metric.** ``options.metric``, else the first of ``acc``, ``exact_match``,
  ``em``, ``pass@1``, ``acc_norm`` … that the sample carries (``acc`` for
  multiple-choice loglikelihood tasks, ``exact_match`` for generative ones), else the
  first metric in the sample's ``metrics`` list with a per-sample value in [0, 1].
  Metrics whose per-sample value is a list (f1, bleu, mcc: aggregated per task) cannot
  be a per-instance score and are rejected with a message naming the alternatives.
- **lm-eval ids.** ``instance_id`` is ``str(doc_id)`` unless ``options.id_field`` names
  a field of ``doc`` (doc_id is the row's position in the task's split, so a doc field
  such as ``id`` is the stable choice when one exists). Positional ids are checked: each
  doc must hold the benchmark's question at its id; if not (a ``process_docs`` that drops
  or reorders documents renumbers doc_id), rows are matched by their doc's text when
  that is unambiguous, else the first mismatching row is an error.
- **lm-eval gold.** Multiple-choice (loglikelihood) targets are option indices and become
  letters; a ``generate_until`` target is kept as written even when the doc lists options.
- **inspect scores.** ``options.scorer``, else the first scorer listed in the log's
  ``results.scores``, else the first key of the samples' ``scores``. Values map as
  Inspect's own ``value_to_float`` does: ``C`` → 1, ``P`` → 0.5, ``I``/``N`` → 0,
  yes/true → 1, no/false → 0, numbers as numbers; a dict value needs
  ``options.value_key``. NaN (Inspect's "unscored") and samples that errored without
  a score are skipped. Epochs are reduced as Inspect reduced them: the log's own
  reduced per-sample scores (``reductions``), else its recorded reducer (``mean``,
  ``median``, ``mode``, ``max``, ``at_least_k``), so the imported accuracy is the
  tool's; the response and the scorer's extracted ``answer`` come from the first epoch.
  ``.eval`` members compressed with zstd (what Inspect writes) are read with
  ``zstandard``. A log whose ``status`` is not ``success`` (an aborted or cancelled
  run) is refused unless ``options.allow_partial``; in a folder, the newest complete
  log per task wins.
- **helm metric.** ``options.metric``, else the first of ``exact_match``,
  ``quasi_exact_match``, ``prefix_exact_match``, ``quasi_prefix_exact_match``,
  ``final_number_exact_match``, ``math_equiv_chain_of_thought``, ``math_equiv`` present;
  split ``options.split``, else ``test``, else ``valid``. Perturbed instances and
  perturbed stats are ignored; train trials are averaged.

Every error is a :class:`~skill_assets.core.registry.RegistryError` naming the file, the
line (JSONL) or key path (JSON, zip member) and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.core.atomic import atomic_path, write_text
from skill_assets.core.options import ImportOptions, parse_options
from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import INSTANCES, RESULTS, conform
from skill_assets.ingest.results import load_generic_results

FORMATS = ("generic", "lm-eval", "inspect", "helm")
GENERIC_CONTAINERS = ("jsonl", "csv", "parquet")
HARNESS_FORMATS = ("lm-eval", "inspect", "helm")

LM_EVAL_METRICS = ("acc", "exact_match", "em", "pass@1", "pass_at_1", "acc_norm", "accuracy")
HELM_METRICS = (
    "exact_match",
    "quasi_exact_match",
    "prefix_exact_match",
    "quasi_prefix_exact_match",
    "final_number_exact_match",
    "math_equiv_chain_of_thought",
    "math_equiv",
)
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


# --------------------------------------------------------------------------- helpers


def _fail(where: str, msg: str):
    raise RegistryError(f"{where}: {msg}")


def _k(where: str, suffix: str) -> str:
    """Extend the key path in a location label: ``f: key 'a'`` + ``b`` → ``f: key 'a.b'``."""
    sep = "" if suffix.startswith("[") else "."
    if where.endswith("'"):
        return f"{where[:-1]}{sep}{suffix}'"
    return f"{where}: key '{suffix}'"


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RegistryError(f"{where}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _json_text(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RegistryError(
            f"{where}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    except RecursionError:
        raise RegistryError(f"{where}: JSON nested too deeply") from None


def _read_json_file(path: Path) -> Any:
    if not path.exists():
        raise RegistryError(f"{path}: file not found")
    data = path.read_bytes()
    if not data.strip():
        raise RegistryError(f"{path}: file is empty")
    return _json_text(_decode(data, str(path)), str(path))


def _obj(v: Any, where: str, what: str = "a JSON object") -> dict:
    if not isinstance(v, dict):
        _fail(where, f"expected {what}, got {_kind(v)}")
    return v


def _list(v: Any, where: str, what: str = "a list") -> list:
    if not isinstance(v, list):
        _fail(where, f"expected {what}, got {_kind(v)}")
    return v


def _scalar_id(v: Any, where: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)) or str(v).strip() == "":
        _fail(where, f"expected a non-empty string or integer id, got {_short(v)}")
    if isinstance(v, float):
        if not math.isfinite(v):
            _fail(where, f"expected a string or integer id, got {v!r}")
        if v.is_integer():
            v = int(v)
    return str(v)


def _finite(v: Any) -> float | None:
    """A finite float from a JSON number (not a bool), else None (huge ints included)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _score01(v: Any, where: str, hint: str = "") -> float:
    """A per-sample score in [0, 1] from a bool or a number."""
    if isinstance(v, bool):
        return float(v)
    f = _finite(v)
    if f is not None and 0.0 <= f <= 1.0:
        return f
    if isinstance(v, (list, dict)):
        _fail(where, f"expected a per-sample score in [0, 1], got {_kind(v)}{hint}")
    _fail(where, f"expected a per-sample score in [0, 1], got {_short(v)}{hint}")


def option_letters(n: int) -> list[str]:
    """A..Z, then AA, AB, … (the labels the rest of the package uses)."""
    out = []
    for i in range(n):
        label, j = "", i
        while True:
            label = chr(ord("A") + j % 26) + label
            j = j // 26 - 1
            if j < 0:
                break
        out.append(label)
    return out


def _answer_letter(answer: str, options: list[str], index_first: bool) -> str:
    """Map a multiple-choice gold (index, letter or option text) to a letter; else as is."""
    letters = option_letters(len(options))
    a = answer.strip()
    index = int(a) if re.fullmatch(r"[0-9]{1,6}", a) else None
    if index_first and index is not None and index < len(options):
        return letters[index]
    m = re.fullmatch(r"\(?\s*([A-Za-z]{1,2})\s*[.)]?", a)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    for letter, opt in zip(letters, options, strict=True):
        if a == opt.strip():
            return letter
    if index is not None and index < len(options):
        return letters[index]
    return answer


def _wanted_task(opts: ImportOptions, benchmark: str) -> str | None:
    if isinstance(opts.task, dict):
        return opts.task.get(benchmark)
    return opts.task


def _task_matches(task: str | None, benchmark: str, opts: ImportOptions, aliases=()) -> bool:
    """Does a source named `task` (with `aliases`) feed `benchmark`? None = unnamed: yes."""
    if task is None:
        return True
    names = {task, *aliases}
    wanted = _wanted_task(opts, benchmark)
    return (wanted in names) if wanted is not None else (benchmark in names)


@dataclass
class _Row:
    """One imported result before it becomes a RESULTS row."""

    instance_id: str
    correct: float
    where: str
    response: str | None = None
    parsed_answer: str | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    doc: dict | None = None  # lm-eval: the sample's document, to check positional ids


@dataclass
class _Inst:
    instance_id: str
    question: str
    options: list[str] | None
    answer: str
    where: str
    image: str | None = None
    metadata: dict = field(default_factory=dict)


def _results_frame(
    rows: list[_Row],
    model: str,
    benchmark: str,
    instances: pl.DataFrame,
    opts: ImportOptions,
    source: str,
    kind: str = "lm-eval",
) -> pl.DataFrame:
    known = set(instances["instance_id"].to_list()) if "instance_id" in instances.columns else set()
    seen: dict[str, str] = {}
    out = []
    unknown: list[_Row] = []
    for r in rows:
        if r.instance_id in seen:
            _fail(
                r.where,
                f"a second result for instance_id {r.instance_id!r} (first at {seen[r.instance_id]})",
            )
        seen[r.instance_id] = r.where
        if r.instance_id not in known:
            unknown.append(r)
            continue
        out.append(
            {
                "uid": f"{benchmark}/{r.instance_id}",
                "benchmark": benchmark,
                "instance_id": r.instance_id,
                "model": model,
                "response": r.response,
                "parsed_answer": r.parsed_answer,
                "correct": r.correct,
                "cost_usd": r.cost_usd,
                "latency_s": r.latency_s,
                "call_id": None,
            }
        )
    if unknown and not opts.ignore_unknown:
        hint = "options.task" if kind == "helm" else "options.id_field / options.task"
        r = unknown[0]
        sample = sorted(known)[:3]
        _fail(
            r.where,
            f"result for instance_id {r.instance_id!r}, which benchmark {benchmark!r} does not "
            f"have ({len(unknown)} of {len(rows)} rows of {source} are unknown; benchmark ids "
            f"look like {sample}). Check {hint}, or set options.ignore_unknown: true",
        )
    return conform(pl.DataFrame(out, schema=RESULTS), RESULTS)


def _instances_frame(items: list[_Inst], benchmark: str) -> pl.DataFrame:
    seen: dict[str, str] = {}
    out = []
    for it in items:
        if it.instance_id in seen:
            _fail(
                it.where,
                f"duplicate instance_id {it.instance_id!r} (first at {seen[it.instance_id]})",
            )
        seen[it.instance_id] = it.where
        if not it.question.strip():
            _fail(it.where, "empty question")
        if not it.answer.strip():
            _fail(it.where, "empty gold answer (expected a target / correct reference)")
        out.append(
            {
                "uid": f"{benchmark}/{it.instance_id}",
                "benchmark": benchmark,
                "instance_id": it.instance_id,
                "question": it.question,
                "options": it.options,
                "answer": it.answer,
                "image": it.image,
                "metadata": json.dumps(it.metadata, sort_keys=True, default=str),
            }
        )
    return conform(pl.DataFrame(out, schema=INSTANCES), INSTANCES)


@contextmanager
def _guard(path: Path, fmt: str) -> Iterator[None]:
    """Last line of defence: any unexpected failure becomes a RegistryError naming the file."""
    try:
        yield
    except RegistryError:
        raise
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise RegistryError(
            f"{path}: cannot read the {fmt} file ({type(e).__name__}: {e})"
        ) from None
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as e:
        raise RegistryError(
            f"{path}: unexpected structure for a {fmt} file ({type(e).__name__}: {e})"
        ) from None


# --------------------------------------------------------------------------- detection


def _peek(path: Path, n: int = 1 << 16) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def _looks_lm_eval_row(obj: Any) -> bool:
    return isinstance(obj, dict) and "doc_id" in obj and ("filtered_resps" in obj or "resps" in obj)


def _looks_inspect_json(path: Path) -> bool:
    """An Inspect ``.json`` log starts with its version, status and ``eval`` spec."""
    if not path.is_file():
        return False
    head = _peek(path, 4096)
    return head.lstrip().startswith(b"{") and b'"eval"' in head and b'"version"' in head


def detect_format(path: Path) -> str:
    """Tell the format of a results path where that is unambiguous; else ``generic``."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: results path does not exist")
    if path.is_dir():
        if (path / "per_instance_stats.json").is_file():
            return "helm"
        if any(path.rglob("samples_*.jsonl")):
            return "lm-eval"
        if any(path.rglob("per_instance_stats.json")):
            return "helm"
        if any(path.rglob("*.eval")) or any(_looks_inspect_json(p) for p in path.rglob("*.json")):
            return "inspect"
        raise RegistryError(
            f"{path}: a folder, but it holds no samples_<task>_<date>.jsonl (lm-eval), "
            "per_instance_stats.json (helm) or .eval / .json (inspect) logs; set 'format'"
        )
    name = path.name
    if name in ("per_instance_stats.json", "scenario_state.json"):
        return "helm"
    if name.startswith("samples_") and name.endswith(".jsonl"):
        return "lm-eval"
    head = _peek(path)
    if path.suffix.lower() == ".eval" or head.startswith(b"PK\x03\x04"):
        return "inspect"
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            obj = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "generic"
        if isinstance(obj, dict) and "samples" in obj and "eval" in obj:
            return "inspect"
        if (
            isinstance(obj, list)
            and obj
            and isinstance(obj[0], dict)
            and "instance_id" in obj[0]
            and "stats" in obj[0]
        ):
            return "helm"
        return "generic"
    if suffix in (".jsonl", ".ndjson"):
        try:
            first = next(
                (ln for ln in head.decode("utf-8", "ignore").splitlines() if ln.strip()), ""
            )
            if _looks_lm_eval_row(json.loads(first)):
                return "lm-eval"
        except (json.JSONDecodeError, RecursionError):
            pass
    return "generic"


def _resolve_fmt(path: Path, fmt: str | None) -> tuple[str, str | None]:
    """(importer, generic container or None)."""
    if not path.exists():
        raise RegistryError(f"{path}: results path does not exist")
    if fmt is None:
        found = detect_format(path)
        return found, None
    if fmt in GENERIC_CONTAINERS:
        return "generic", fmt
    if fmt in FORMATS:
        return fmt, None
    raise RegistryError(
        f"{path}: unknown results format {fmt!r}; expected one of "
        f"{', '.join(FORMATS + GENERIC_CONTAINERS)}"
    )


# --------------------------------------------------------------------------- lm-eval


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
    text = _decode(data, str(path))
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        row = _json_text(line, where)
        if not isinstance(row, dict):
            _fail(where, f"expected a JSON object (one logged sample), got {_kind(row)}")
        if "doc_id" not in row:
            _fail(
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
            _fail(_k(where, "filter"), f"expected the filter's name (a string), got {_short(f)}")
        if f not in filters:
            filters.append(f)
    if opts.filter is not None:
        if opts.filter not in filters:
            raise RegistryError(
                f"{path}: no samples with filter {opts.filter!r} (options.filter); "
                f"filters present: {[f for f in filters if f is not None]}"
            )
        chosen = opts.filter
    else:
        chosen = "none" if "none" in filters else filters[0]
    kept: dict[Any, tuple[str, dict]] = {}
    for where, row in rows:
        if row.get("filter") != chosen:
            continue
        doc_id = row["doc_id"]
        if isinstance(doc_id, (dict, list)) or isinstance(doc_id, bool) or doc_id is None:
            _fail(_k(where, "doc_id"), f"expected an integer, got {_short(doc_id)}")
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
            _fail(
                where,
                f"no metric {opts.metric!r} (options.metric) in this sample; "
                f"metrics present: {candidates}",
            )
        return opts.metric
    for m in LM_EVAL_METRICS:
        if m in candidates:
            return m
    for m in candidates:
        v = row[m]
        if isinstance(v, bool) or (_finite(v) is not None and 0 <= v <= 1):
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
        return _scalar_id(row["doc_id"], _k(where, "doc_id"))
    doc = row.get("doc")
    if not isinstance(doc, dict):
        _fail(
            _k(where, "doc"), f"expected an object with field {opts.id_field!r} (options.id_field)"
        )
    if opts.id_field not in doc:
        _fail(
            where,
            f"doc has no field {opts.id_field!r} (options.id_field); doc fields: {sorted(doc)[:12]}",
        )
    return _scalar_id(doc[opts.id_field], _k(where, f"doc.{opts.id_field}"))


def _lm_eval_source(path: Path, benchmark: str, opts: ImportOptions) -> Path | None:
    files = _lm_eval_files(path)
    matches = [f for task, f in files.items() if _task_matches(task, benchmark, opts)]
    return matches[0] if matches else None


def _lm_eval_rows(path: Path, benchmark: str, opts: ImportOptions) -> tuple[list[_Row], str] | None:
    src = _lm_eval_source(path, benchmark, opts)
    if src is None:
        return None
    with _guard(src, "lm-eval"):
        selected, _ = _lm_eval_select(src, _read_lm_eval_rows(src), opts)
        metric = _lm_eval_metric(src, selected[0][0], selected[0][1], opts)
        out = []
        for where, row in selected:
            if metric not in row:
                _fail(
                    where, f"no metric {metric!r} in this sample (the file's first sample has it)"
                )
            correct = _score01(
                row[metric],
                f"{where}: key {metric!r}",
                " (not a per-sample 0/1 score; choose another with options.metric)",
            )
            response, parsed = _lm_eval_response(row)
            doc = row.get("doc") if isinstance(row.get("doc"), dict) else None
            iid = _lm_eval_id(where, row, opts)
            out.append(_Row(iid, correct, where, response, parsed, doc=doc))
        return out, str(src)


def _norm_text(v: str) -> str:
    return " ".join(v.split()).casefold()


def _doc_texts(doc: dict) -> list[str]:
    return [_norm_text(v) for v in doc.values() if isinstance(v, str) and v.strip()]


def _same_question(q: str, texts: list[str]) -> bool:
    """Does a benchmark question (normalised) appear among a doc's texts? Containment either
    way covers a benchmark that stores the question with its options, or a doc that does."""
    return any(q == t or (len(t) >= 12 and t in q) or (len(q) >= 12 and q in t) for t in texts)


def _lm_eval_align(rows: list[_Row], instances: pl.DataFrame, benchmark: str) -> list[_Row]:
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
        remapped.append(_Row(**{**r.__dict__, "instance_id": hits.pop()}))
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
    doc_q = next((v for k, v in r.doc.items() if k in QUESTION_FIELDS and isinstance(v, str)), None)
    doc_q = doc_q or next((v for v in r.doc.values() if isinstance(v, str)), "")
    raise RegistryError(
        f"{r.where}: doc_id {r.instance_id} is not benchmark {benchmark!r}'s instance "
        f"{r.instance_id!r} (doc says {_short(doc_q)}, the benchmark {_short(qmap[r.instance_id])}; "
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


def _choices_list(v: Any, where: str) -> list[str] | None:
    if isinstance(v, dict) and isinstance(
        v.get("text"), list
    ):  # ARC: {"text": [...], "label": [...]}
        v = v["text"]
    if not isinstance(v, list) or not v:
        return None
    if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        _fail(where, "choices must be a list of strings")
    return [str(x) for x in v]


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


def _lm_eval_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[_Inst]:
    src = _lm_eval_source(path, benchmark, opts)
    if src is None:
        tasks = sorted(str(t) for t in _lm_eval_files(path))
        raise RegistryError(
            f"{path}: no samples file for task {_wanted_task(opts, benchmark) or benchmark!r}; "
            f"tasks found: {tasks}; set options.task"
        )
    with _guard(src, "lm-eval"):
        selected, _ = _lm_eval_select(src, _read_lm_eval_rows(src), opts)
        items = []
        for where, row in selected:
            doc = row.get("doc")
            if not isinstance(doc, dict):
                _fail(_k(where, "doc"), f"expected the task's document object, got {_kind(doc)}")
            iid = _lm_eval_id(where, row, opts)
            qkey, question = _doc_field(doc, opts.question_field, QUESTION_FIELDS)
            if question is None and opts.question_field is None:
                question = _lm_eval_prompt(row)
            if not isinstance(question, str):
                if opts.question_field is not None:
                    _fail(
                        where,
                        f"doc has no string field {opts.question_field!r} (options.question_field)",
                    )
                _fail(
                    where,
                    f"cannot find the question in doc (fields: {sorted(doc)[:12]}); "
                    "set options.question_field",
                )
            ckey, raw_choices = _doc_field(doc, opts.choices_field, CHOICE_FIELDS)
            if opts.choices_field is not None and ckey is None:
                _fail(where, f"doc has no field {opts.choices_field!r} (options.choices_field)")
            choices = _choices_list(raw_choices, _k(where, f"doc.{ckey}")) if ckey else None
            if opts.answer_field is not None:
                if opts.answer_field not in doc:
                    _fail(where, f"doc has no field {opts.answer_field!r} (options.answer_field)")
                gold, akey = doc[opts.answer_field], opts.answer_field
            else:
                gold, akey = row.get("target"), None
            if isinstance(gold, list) and gold:
                gold = gold[0]
            if gold is None or isinstance(gold, (dict, list)):
                _fail(_k(where, "target"), f"expected the gold answer, got {_kind(gold)}")
            gold = str(gold)
            fr = row.get("filtered_resps")
            multiple_choice = isinstance(fr, list) and fr and all(_is_loglik_pair(x) for x in fr)
            if choices and multiple_choice:
                # loglikelihood tasks score the options: the target is the index of the gold
                # one. A generate_until task compares text, so its target is the answer as is.
                gold = _answer_letter(gold, choices, index_first=True)
            used = {k for k in (qkey, ckey, akey, opts.id_field) if k}
            if akey is None and "answer" in doc:
                used.add("answer")
            meta = {k: v for k, v in doc.items() if k not in used}
            items.append(_Inst(iid, question, choices, gold, where, metadata=meta))
        return items


# --------------------------------------------------------------------------- inspect


@dataclass
class _InspectLog:
    path: Path
    header: dict
    samples: list[tuple[str, dict]]  # (where, sample)

    @property
    def task(self) -> str | None:
        ev = self.header.get("eval")
        t = ev.get("task") if isinstance(ev, dict) else None
        return t if isinstance(t, str) and t else None

    @property
    def created(self) -> str:
        ev = self.header.get("eval")
        c = ev.get("created") if isinstance(ev, dict) else None
        return c if isinstance(c, str) else ""

    @property
    def status(self) -> str:
        """``success``, ``error``, ``cancelled``, ``started``; logs before the field: success."""
        st = self.header.get("status", "success")
        return st if isinstance(st, str) else repr(st)


ZIP_ZSTD = 93  # the zip method id of Zstandard; Inspect >= 0.3.x compresses every member so
MAX_MEMBER_BYTES = 1 << 31  # refuse to inflate a member beyond 2 GiB (a zip bomb, not a log)


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes; zstd members (which ``zipfile`` before 3.14 cannot read) are
    decompressed with ``zstandard`` from the member's raw data, then CRC-checked."""
    info = zf.getinfo(name)
    if info.compress_type != ZIP_ZSTD:
        return zf.read(name)
    import copy
    import zlib

    import zstandard

    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"member claims {info.file_size} bytes uncompressed")
    raw_info = copy.copy(info)
    raw_info.compress_type = zipfile.ZIP_STORED  # read the compressed bytes as they are
    raw_info.file_size = info.compress_size
    raw_info.CRC = None  # the CRC is of the decompressed bytes: checked below
    with zf.open(raw_info) as fh:
        raw = fh.read()
    with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        data = reader.read(info.file_size + 1)
    if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        raise zipfile.BadZipFile("zstd member does not match its size / CRC-32")
    return data


def _zip_json(zf: zipfile.ZipFile, name: str, path: Path) -> Any:
    where = f"{path}: member {name}"
    try:
        data = _read_member(zf, name)
    except (
        zipfile.BadZipFile,
        KeyError,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ) as e:
        raise RegistryError(f"{where}: unreadable zip member ({type(e).__name__})") from None
    except Exception as e:  # zlib.error and friends on corrupt data
        raise RegistryError(f"{where}: unreadable zip member ({type(e).__name__})") from None
    return _json_text(_decode(data, where), where)


def _read_inspect(path: Path, header_only: bool = False) -> _InspectLog:
    if not path.is_file():
        raise RegistryError(f"{path}: file not found")
    if zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise RegistryError(f"{path}: not a readable .eval zip ({type(e).__name__})") from None
        with zf:
            names = zf.namelist()
            if "header.json" in names:
                header = _obj(_zip_json(zf, "header.json", path), f"{path}: member header.json")
            elif "_journal/start.json" in names:  # a log still being written
                header = _obj(
                    _zip_json(zf, "_journal/start.json", path),
                    f"{path}: member _journal/start.json",
                )
            elif "start.json" in names:  # early .eval layout
                header = _obj(_zip_json(zf, "start.json", path), f"{path}: member start.json")
                if "results.json" in names:
                    res = _obj(_zip_json(zf, "results.json", path), f"{path}: member results.json")
                    header = {**header, **res}
            else:
                raise RegistryError(
                    f"{path}: a zip without header.json (expected an Inspect .eval log: "
                    "header.json + samples/<id>_epoch_<n>.json)"
                )
            samples = []
            if "reductions.json" in names and not header_only:
                header = {**header, "reductions": _zip_json(zf, "reductions.json", path)}
            if not header_only:
                for name in sorted(names):
                    if name.startswith("samples/") and name.endswith(".json"):
                        where = f"{path}: member {name}"
                        samples.append((where, _obj(_zip_json(zf, name, path), where)))
        return _InspectLog(path, header, samples)
    data = path.read_bytes()
    if not data.strip():
        raise RegistryError(f"{path}: file is empty")
    if path.suffix.lower() == ".eval":
        raise RegistryError(
            f"{path}: not a zip archive (expected an Inspect .eval log: header.json + "
            "samples/<id>_epoch_<n>.json)"
        )
    log = _obj(
        _json_text(_decode(data, str(path)), str(path)),
        str(path),
        "an Inspect eval log object (keys version, status, eval, samples…)",
    )
    if "eval" not in log:
        _fail(str(path), "missing key 'eval' (expected an Inspect eval log)")
    raw = log.get("samples")
    if raw is None:
        raw = []
    samples = [
        (f"{path}: key 'samples[{i}]'", _obj(s, f"{path}: key 'samples[{i}]'"))
        for i, s in enumerate(_list(raw, f"{path}: key 'samples'"))
    ]
    header = {k: v for k, v in log.items() if k != "samples"}
    return _InspectLog(path, header, samples)


def _inspect_logs(path: Path) -> list[_InspectLog]:
    if path.is_file():
        return [_read_inspect(path)]
    if not path.is_dir():
        raise RegistryError(f"{path}: results path does not exist")
    files = sorted(p for p in path.rglob("*") if p.suffix in (".eval", ".json") and p.is_file())
    logs = []
    for f in files:
        if f.suffix == ".json":
            try:
                head = json.loads(f.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue
            if not (isinstance(head, dict) and "eval" in head and "samples" in head):
                continue
        logs.append(_read_inspect(f))
    if not logs:
        raise RegistryError(f"{path}: no Inspect logs (.eval or .json with 'eval' and 'samples')")
    return logs


def _inspect_aliases(task: str | None) -> tuple[str, ...]:
    return (task.rsplit("/", 1)[-1],) if task and "/" in task else ()


def _inspect_source(path: Path, benchmark: str, opts: ImportOptions) -> _InspectLog | None:
    matches = [
        lg
        for lg in _inspect_logs(path)
        if _task_matches(lg.task, benchmark, opts, _inspect_aliases(lg.task))
    ]
    if not matches:
        return None
    # An aborted run must not shadow an older complete one: the newest successful log wins.
    done = [lg for lg in matches if lg.status == "success"]
    if done and not opts.allow_partial:
        return max(done, key=lambda lg: (lg.created, str(lg.path)))
    newest = max(matches, key=lambda lg: (lg.created, str(lg.path)))
    if newest.status != "success" and not opts.allow_partial:
        raise RegistryError(
            f"{newest.path}: Inspect run status is {newest.status!r}, not 'success' "
            f"({len(newest.samples)} samples logged); re-run it, or set "
            "options.allow_partial: true to import it as a partial run"
        )
    return newest


def _attachment(v: Any, sample: dict) -> Any:
    if isinstance(v, str) and v.startswith("attachment://"):
        att = sample.get("attachments")
        if isinstance(att, dict) and isinstance(att.get(v[len("attachment://") :]), str):
            return att[v[len("attachment://") :]]
    return v


def _content_text(content: Any, sample: dict) -> str | None:
    content = _attachment(content, sample)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for c in content:
            if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str):
                parts.append(_attachment(c["text"], sample))
        return "\n".join(p for p in parts if isinstance(p, str)) if parts else None
    return None


def _inspect_value(v: Any, where: str, opts: ImportOptions) -> float | None:
    """Inspect's value_to_float; None for NaN (unscored)."""
    if isinstance(v, dict):
        if opts.value_key is None:
            _fail(
                where, f"score value is an object with keys {sorted(v)[:12]}; set options.value_key"
            )
        if opts.value_key not in v:
            _fail(
                where,
                f"score value has no key {opts.value_key!r} (options.value_key); keys: {sorted(v)[:12]}",
            )
        v = v[opts.value_key]
        where = _k(where, f"{opts.value_key}")
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return None
        return _score01(v, where)
    if isinstance(v, str):
        s = v.strip()
        table = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}
        if s in table:
            return table[s]
        low = s.lower()
        if low in ("yes", "true"):
            return 1.0
        if low in ("no", "false"):
            return 0.0
        try:
            f = float(s)
        except ValueError:
            _fail(
                where, f"score value {_short(v)}: expected C/I/P/N, yes/no, true/false or a number"
            )
        if math.isnan(f):
            return None
        return _score01(f, where)
    if v is None:
        return None
    _fail(
        where,
        f"score value is {_kind(v)}; expected C/I/P/N, a number or an object (with options.value_key)",
    )


def _sample_scores(s: dict, where: str) -> dict | None:
    scores = s.get("scores")
    if scores is None and "score" in s:  # pre-0.3.23 logs: one unnamed score
        return {"score": s["score"]} if s["score"] is not None else None
    if scores is None:
        return None
    return _obj(scores, _k(where, "scores"))


def _inspect_scorer(log: _InspectLog, opts: ImportOptions) -> str:
    if opts.scorer is not None:
        return opts.scorer
    results = log.header.get("results")
    if isinstance(results, dict) and isinstance(results.get("scores"), list):
        present = set()
        for where, s in log.samples:
            sc = _sample_scores(s, where)
            if sc:
                present.update(sc)
        for entry in results["scores"]:
            if isinstance(entry, dict) and entry.get("name") in present:
                return entry["name"]
    for where, s in log.samples:
        sc = _sample_scores(s, where)
        if sc:
            return next(iter(sc))
    raise RegistryError(f"{log.path}: no sample carries a score (expected 'scores' per sample)")


def _inspect_id(where: str, s: dict, opts: ImportOptions) -> str:
    if opts.id_field is None:
        if "id" not in s:
            _fail(where, "missing key 'id' (expected an Inspect sample)")
        return _scalar_id(s["id"], _k(where, "id"))
    meta = s.get("metadata")
    if not isinstance(meta, dict) or opts.id_field not in meta:
        keys = sorted(meta)[:12] if isinstance(meta, dict) else []
        _fail(
            where,
            f"sample metadata has no field {opts.id_field!r} (options.id_field); fields: {keys}",
        )
    return _scalar_id(meta[opts.id_field], _k(where, f"metadata.{opts.id_field}"))


def _epoch(s: dict, where: str) -> int:
    e = s.get("epoch", 1)
    if isinstance(e, bool) or not isinstance(e, int):
        _fail(_k(where, "epoch"), f"expected an integer, got {_short(e)}")
    return e


def _inspect_output(s: dict) -> str | None:
    out = s.get("output")
    if not isinstance(out, dict):
        return None
    comp = out.get("completion")
    if isinstance(comp, str) and comp:
        return _attachment(comp, s)
    choices = out.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        msg = choices[0].get("message")
        if isinstance(msg, dict):
            return _content_text(msg.get("content"), s) or None
    return None


def _inspect_reducer(log: _InspectLog, scorer: str) -> str:
    """The epoch reducer Inspect applied to ``scorer``: the one its results name, else the
    task's ``epochs_reducer``, else ``mean`` (Inspect's default)."""
    results = log.header.get("results")
    entries = results.get("scores") if isinstance(results, dict) else None
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and scorer in (e.get("name"), e.get("scorer")):
            if isinstance(e.get("reducer"), str) and e["reducer"]:
                return e["reducer"]
    ev = log.header.get("eval")
    config = ev.get("config") if isinstance(ev, dict) else None
    red = config.get("epochs_reducer") if isinstance(config, dict) else None
    if isinstance(red, list) and red and isinstance(red[0], str):
        return red[0]
    if isinstance(red, str) and red:
        return red
    return "mean"


def _reduce(reducer: str, values: list[float], where: str) -> float:
    """Inspect's built-in epoch reducers over value_to_float'ed scores."""
    import statistics

    if reducer == "mean":
        return sum(values) / len(values)
    if reducer == "median":
        return float(statistics.median(values))
    if reducer == "mode":
        return float(statistics.multimode(values)[0])
    if reducer == "max":
        return max(values)
    m = re.fullmatch(r"at_least_(\d+)", reducer)
    if m:
        return 1.0 if sum(v >= 1.0 for v in values) >= int(m.group(1)) else 0.0
    _fail(
        where,
        f"epoch reducer {reducer!r} is not one this importer can apply and the log has no "
        "reduced scores (reductions); re-run with a built-in reducer (mean, median, mode, max, "
        "at_least_k) or log the reductions",
    )


def _inspect_reductions(log: _InspectLog, scorer: str, reducer: str) -> dict[str, Any] | None:
    """sample id → reduced Score value, from the log's own ``reductions`` (None if absent)."""
    reds = log.header.get("reductions")
    if not isinstance(reds, list):
        return None
    pick = [
        r
        for r in reds
        if isinstance(r, dict) and r.get("scorer") == scorer and isinstance(r.get("samples"), list)
    ]
    pick = [r for r in pick if r.get("reducer") in (reducer, None)] or pick
    if not pick:
        return None
    out = {}
    for s in pick[0]["samples"]:
        if isinstance(s, dict) and "sample_id" in s and "value" in s:
            out[str(s["sample_id"])] = s["value"]
    return out


def _inspect_rows(path: Path, benchmark: str, opts: ImportOptions) -> tuple[list[_Row], str] | None:
    log = _inspect_source(path, benchmark, opts)
    if log is None:
        return None
    with _guard(log.path, "inspect"):
        if not log.samples:
            raise RegistryError(
                f"{log.path}: the log holds no samples (was it run with --no-log-samples?)"
            )
        if log.status != "success":
            _log.warning(
                "%s: importing a partial Inspect run (status %r, %d samples; options.allow_partial)",
                log.path,
                log.status,
                len(log.samples),
            )
        scorer = _inspect_scorer(log, opts)
        reducer = _inspect_reducer(log, scorer)
        reduced = _inspect_reductions(log, scorer, reducer)
        groups: dict[str, list[tuple[int, str, dict, float]]] = {}
        order: list[str] = []
        sample_ids: dict[str, str] = {}
        for where, s in log.samples:
            scores = _sample_scores(s, where)
            if not scores or scorer not in scores:
                if s.get("error") is not None or not scores:
                    continue  # errored / unscored sample: no result
                _fail(
                    _k(where, "scores"),
                    f"has no scorer {scorer!r}; scorers present: {sorted(scores)}",
                )
            score = _obj(scores[scorer], _k(where, f"scores.{scorer}"), "a Score object")
            if "value" not in score:
                _fail(_k(where, f"scores.{scorer}"), "missing 'value'")
            value = _inspect_value(score["value"], _k(where, f"scores.{scorer}.value"), opts)
            if value is None:
                continue
            iid = _inspect_id(where, s, opts)
            if iid not in groups:
                groups[iid] = []
                order.append(iid)
            groups[iid].append((_epoch(s, where), where, s, value))
            sample_ids[iid] = str(s.get("id"))
        rows = []
        for iid in order:
            eps = sorted(groups[iid], key=lambda t: t[0])
            seen_epochs: dict[int, str] = {}
            for ep, where, _, _ in eps:
                if ep in seen_epochs:
                    _fail(
                        where,
                        f"sample {iid!r} epoch {ep} appears twice (first at {seen_epochs[ep]})",
                    )
                seen_epochs[ep] = where
            _, where, first, _ = eps[0]
            if reduced is not None and sample_ids[iid] in reduced:
                # the tool's own reduced score, so the imported accuracy is the tool's
                correct = _inspect_value(
                    reduced[sample_ids[iid]], f"{log.path}: reductions[{sample_ids[iid]}]", opts
                )
                if correct is None:
                    continue
            else:
                correct = _reduce(reducer, [t[3] for t in eps], where)
            sc = _sample_scores(first, where)[scorer]
            answer = sc.get("answer") if isinstance(sc, dict) else None
            usage = first.get("model_usage")
            cost = None
            if isinstance(usage, dict):
                costs = [
                    _finite(u.get("total_cost")) for u in usage.values() if isinstance(u, dict)
                ]
                costs = [c for c in costs if c is not None]
                cost = sum(costs) if costs else None
            rows.append(
                _Row(
                    iid,
                    correct,
                    where,
                    _inspect_output(first),
                    answer if isinstance(answer, str) else None,
                    cost,
                    _finite(first.get("total_time")),
                )
            )
        return rows, str(log.path)


def _inspect_input(s: dict, where: str) -> tuple[str, str | None]:
    """(question text, image path) of a sample's input."""
    inp = _attachment(s.get("input"), s)
    if isinstance(inp, str):
        return inp, None
    if not isinstance(inp, list):
        _fail(_k(where, "input"), f"expected a string or a list of chat messages, got {_kind(inp)}")
    texts, image = [], None
    for m in inp:
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        t = _content_text(m.get("content"), s)
        if t:
            texts.append(t)
        content = m.get("content")
        if isinstance(content, list) and image is None:
            for c in content:
                if isinstance(c, dict) and c.get("type") == "image":
                    img = _attachment(c.get("image"), s)
                    if isinstance(img, str) and not img.startswith("data:"):
                        image = img
                        break
    if not texts:
        _fail(_k(where, "input"), "no user message with text")
    return "\n\n".join(texts), image


def _inspect_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[_Inst]:
    log = _inspect_source(path, benchmark, opts)
    if log is None:
        tasks = sorted(str(lg.task) for lg in _inspect_logs(path))
        raise RegistryError(
            f"{path}: no Inspect log for task {_wanted_task(opts, benchmark) or benchmark!r}; "
            f"tasks found: {tasks}; set options.task"
        )
    with _guard(log.path, "inspect"):
        if not log.samples:
            raise RegistryError(f"{log.path}: the log holds no samples")
        items: dict[str, _Inst] = {}
        for where, s in sorted(log.samples, key=lambda t: _epoch(t[1], t[0])):
            iid = _inspect_id(where, s, opts)
            if iid in items:
                continue  # later epochs repeat the same sample
            question, image = _inspect_input(s, where)
            choices = s.get("choices")
            options = _choices_list(choices, _k(where, "choices")) if choices is not None else None
            target = s.get("target")
            meta = s.get("metadata")
            meta = dict(meta) if isinstance(meta, dict) else {}
            if opts.id_field:
                meta.pop(opts.id_field, None)
            if isinstance(target, list):
                if not target or not all(isinstance(t, str) for t in target):
                    _fail(_k(where, "target"), "expected a string or a non-empty list of strings")
                if len(target) > 1:
                    meta["targets"] = target
                target = target[0]
            if not isinstance(target, str):
                _fail(_k(where, "target"), f"expected a string, got {_kind(target)}")
            if options:
                target = _answer_letter(target, options, index_first=False)
            items[iid] = _Inst(iid, question, options, target, where, image, meta)
        return list(items.values())


# --------------------------------------------------------------------------- helm


@dataclass
class _HelmRun:
    folder: Path
    name: str

    @property
    def aliases(self) -> tuple[str, ...]:
        return (self.name.split(":", 1)[0], self.folder.name)


def _helm_runs(path: Path) -> list[_HelmRun]:
    if path.is_file():
        if path.name not in ("per_instance_stats.json", "scenario_state.json"):
            raise RegistryError(
                f"{path}: expected a HELM per_instance_stats.json (or scenario_state.json, "
                "or the run folder holding them)"
            )
        folders = [path.parent]
    elif path.is_dir():
        if (path / "per_instance_stats.json").is_file() or (path / "scenario_state.json").is_file():
            folders = [path]
        else:
            folders = sorted(
                {p.parent for p in path.rglob("per_instance_stats.json")}
                | {p.parent for p in path.rglob("scenario_state.json")}
            )
            if not folders:
                raise RegistryError(f"{path}: no HELM run folder (per_instance_stats.json) inside")
    else:
        raise RegistryError(f"{path}: results path does not exist")
    runs = []
    for f in folders:
        name = f.name
        spec = f / "run_spec.json"
        if spec.is_file():
            try:
                obj = json.loads(spec.read_bytes().decode("utf-8"))
                if isinstance(obj, dict) and isinstance(obj.get("name"), str) and obj["name"]:
                    name = obj["name"]
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                pass
        runs.append(_HelmRun(f, name))
    return runs


def _helm_source(path: Path, benchmark: str, opts: ImportOptions) -> _HelmRun | None:
    matches = [r for r in _helm_runs(path) if _task_matches(r.name, benchmark, opts, r.aliases)]
    if len(matches) > 1:
        raise RegistryError(
            f"{path}: several HELM runs match benchmark {benchmark!r}: "
            f"{[r.name for r in matches]}; name one with options.task"
        )
    return matches[0] if matches else None


def _helm_states(run: _HelmRun) -> tuple[dict, list[tuple[str, dict]]]:
    """(adapter_spec, [(where, request_state)]) of a run's scenario_state.json."""
    path = run.folder / "scenario_state.json"
    state = _obj(
        _read_json_file(path), str(path), "a ScenarioState object (adapter_spec, request_states)"
    )
    spec = state.get("adapter_spec")
    spec = spec if isinstance(spec, dict) else {}
    raw = _list(state.get("request_states"), f"{path}: key 'request_states'")
    return spec, [
        (f"{path}: key 'request_states[{i}]'", _obj(rs, f"{path}: key 'request_states[{i}]'"))
        for i, rs in enumerate(raw)
    ]


def _helm_instance(rs: dict, where: str) -> dict:
    return _obj(rs.get("instance"), _k(where, "instance"), "an Instance object")


def _helm_completion(rs: dict) -> tuple[str | None, float | None]:
    res = rs.get("result")
    if not isinstance(res, dict):
        return None, None
    comps = res.get("completions")
    text = None
    if isinstance(comps, list) and comps and isinstance(comps[0], dict):
        t = comps[0].get("text")
        text = t if isinstance(t, str) else None
    return text, _finite(res.get("request_time"))


def _helm_rows(path: Path, benchmark: str, opts: ImportOptions) -> tuple[list[_Row], str] | None:
    run = _helm_source(path, benchmark, opts)
    if run is None:
        return None
    stats_path = run.folder / "per_instance_stats.json"
    with _guard(stats_path, "helm"):
        if not stats_path.is_file():
            raise RegistryError(f"{run.folder}: no per_instance_stats.json in this HELM run folder")
        entries = _list(
            _read_json_file(stats_path), str(stats_path), "a list of PerInstanceStats objects"
        )
        parsed = []  # (where, instance_id, trial, {(metric, split): value})
        for i, e in enumerate(entries):
            where = f"{stats_path}: key '[{i}]'"
            e = _obj(e, where, "a PerInstanceStats object (instance_id, train_trial_index, stats)")
            if e.get("perturbation") is not None:
                continue
            if "instance_id" not in e:
                _fail(where, "missing key 'instance_id'")
            iid = _scalar_id(e["instance_id"], _k(where, "instance_id"))
            trial = e.get("train_trial_index", 0)
            if isinstance(trial, bool) or not isinstance(trial, int):
                _fail(_k(where, "train_trial_index"), f"expected an integer, got {_short(trial)}")
            values: dict[tuple[str, str | None], tuple[str, Any]] = {}
            for j, st in enumerate(_list(e.get("stats"), _k(where, "stats"))):
                sw = _k(where, f"stats[{j}]")
                st = _obj(st, sw, "a Stat object (name, count, sum, mean…)")
                name = _obj(st.get("name"), _k(sw, "name"), "a MetricName object (name, split…)")
                if name.get("perturbation") is not None:
                    continue
                if not isinstance(name.get("name"), str):
                    _fail(
                        _k(sw, "name.name"),
                        f"expected a metric name, got {_short(name.get('name'))}",
                    )
                if "mean" in st and st["mean"] is not None:
                    v = st["mean"]
                elif _finite(st.get("sum")) is not None and _finite(st.get("count")):
                    v = st["sum"] / st["count"]
                else:
                    v = None
                split = name.get("split") if isinstance(name.get("split"), str) else None
                values.setdefault((name["name"], split), (sw, v))
            parsed.append((where, iid, trial, values))
        if not parsed:
            raise RegistryError(f"{stats_path}: no unperturbed instances")
        splits = {k[1] for _, _, _, vals in parsed for k in vals}
        if opts.split is not None:
            if opts.split not in splits:
                raise RegistryError(
                    f"{stats_path}: no stats for split {opts.split!r} (options.split); "
                    f"splits present: {sorted(s for s in splits if s)}"
                )
            split = opts.split
        else:
            split = (
                "test"
                if "test" in splits
                else "valid"
                if "valid" in splits
                else next(iter(sorted(splits, key=str)), None)
            )
        names = []
        for _, _, _, vals in parsed:
            for n, sp in vals:
                if sp == split and n not in names:
                    names.append(n)
        if opts.metric is not None:
            if opts.metric not in names:
                raise RegistryError(
                    f"{stats_path}: no stat {opts.metric!r} (options.metric) for split {split!r}; "
                    f"stats present: {names[:30]}"
                )
            metric = opts.metric
        else:
            metric = next((m for m in HELM_METRICS if m in names), None)
            if metric is None:
                raise RegistryError(
                    f"{stats_path}: none of {list(HELM_METRICS)} among the stats for split "
                    f"{split!r}; set options.metric (stats present: {names[:30]})"
                )
        per_id: dict[str, list[tuple[str, float]]] = {}
        order = []
        for where, iid, _trial, vals in parsed:
            if (metric, split) not in vals:
                continue  # this instance has no such stat (e.g. another split)
            sw, v = vals[(metric, split)]
            value = _score01(
                v, _k(sw, "mean"), f" (stat {metric!r}; choose another with options.metric)"
            )
            if iid not in per_id:
                per_id[iid] = []
                order.append(iid)
            per_id[iid].append((where, value))
        completions: dict[str, tuple[str | None, str | None, float | None]] = {}
        state_path = run.folder / "scenario_state.json"
        if state_path.is_file():
            _, states = _helm_states(run)
            for _where, rs in sorted(states, key=lambda t: _trial_of(t[1])):
                inst = rs.get("instance")
                if not isinstance(inst, dict) or inst.get("perturbation") is not None:
                    continue
                if rs.get("reference_index") is not None:
                    continue  # multiple_choice_separate: one request per option, no single answer
                iid = inst.get("id")
                if not isinstance(iid, (str, int)) or str(iid) in completions:
                    continue
                text, latency = _helm_completion(rs)
                mapping = rs.get("output_mapping")
                parsed_answer = None
                if text is not None:
                    stripped = text.strip()
                    if isinstance(mapping, dict):
                        parsed_answer = stripped if stripped in mapping else None
                    else:
                        parsed_answer = stripped or None
                completions[str(iid)] = (text, parsed_answer, latency)
        rows = []
        for iid in order:
            vals = per_id[iid]
            text, parsed_answer, latency = completions.get(iid, (None, None, None))
            rows.append(
                _Row(
                    iid,
                    sum(v for _, v in vals) / len(vals),
                    vals[0][0],
                    text,
                    parsed_answer,
                    None,
                    latency,
                )
            )
        return rows, str(stats_path)


def _trial_of(rs: dict) -> int:
    t = rs.get("train_trial_index", 0)
    return t if isinstance(t, int) and not isinstance(t, bool) else 0


def _letter_key(k: str) -> tuple[int, str]:
    return (len(k), k)


def _helm_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[_Inst]:
    run = _helm_source(path, benchmark, opts)
    if run is None:
        names = [r.name for r in _helm_runs(path)]
        raise RegistryError(
            f"{path}: no HELM run for benchmark {_wanted_task(opts, benchmark) or benchmark!r}; "
            f"runs found: {names}; set options.task"
        )
    state_path = run.folder / "scenario_state.json"
    with _guard(state_path, "helm"):
        if not state_path.is_file():
            raise RegistryError(
                f"{run.folder}: no scenario_state.json (HELM writes the questions there)"
            )
        spec, states = _helm_states(run)
        method = spec.get("method") if isinstance(spec.get("method"), str) else ""
        items: dict[str, _Inst] = {}
        for where, rs in sorted(states, key=lambda t: _trial_of(t[1])):
            inst = _helm_instance(rs, where)
            if inst.get("perturbation") is not None:
                continue
            if "id" not in inst:
                _fail(_k(where, "instance.id"), "missing (HELM gives every instance an id)")
            iid = _scalar_id(inst["id"], _k(where, "instance.id"))
            if iid in items:
                continue
            inp = _obj(inst.get("input"), _k(where, "instance.input"), "an Input object (text)")
            question = inp.get("text")
            if not isinstance(question, str):
                _fail(
                    _k(where, "instance.input.text"),
                    f"expected the question text, got {_kind(question)}",
                )
            refs = _list(inst.get("references", []), _k(where, "instance.references"))
            ref_texts, correct = [], []
            for k, ref in enumerate(refs):
                rw = _k(where, f"instance.references[{k}]")
                ref = _obj(ref, rw, "a Reference object (output, tags)")
                out = _obj(ref.get("output"), _k(rw, "output"), "an Output object (text)")
                text = out.get("text")
                if not isinstance(text, str):
                    _fail(_k(rw, "output.text"), f"expected a string, got {_kind(text)}")
                tags = ref.get("tags", [])
                ref_texts.append(text)
                if isinstance(tags, list) and "correct" in tags:
                    correct.append(text)
            if not correct:
                _fail(
                    _k(where, "instance.references"),
                    "no reference tagged 'correct' (the gold answer)",
                )
            mapping = rs.get("output_mapping")
            options = None
            answer = correct[0]
            if (
                isinstance(mapping, dict)
                and mapping
                and all(isinstance(v, str) for v in mapping.values())
            ):
                keys = sorted((k for k in mapping if isinstance(k, str)), key=_letter_key)
                options = [mapping[k] for k in keys]
                letters = option_letters(len(options))
                answer = next(
                    (letters[i] for i, k in enumerate(keys) if mapping[k] == correct[0]), correct[0]
                )
            elif method.startswith("multiple_choice") and len(ref_texts) > 1:
                options = ref_texts
                answer = option_letters(len(options))[ref_texts.index(correct[0])]
            meta: dict[str, Any] = {}
            for key in ("split", "sub_split"):
                if isinstance(inst.get(key), str):
                    meta[key] = inst[key]
            if options is None and len(correct) > 1:
                meta["references"] = correct
            items[iid] = _Inst(iid, question, options, answer, where, metadata=meta)
        if not items:
            raise RegistryError(f"{state_path}: no unperturbed instances in request_states")
        return list(items.values())


# --------------------------------------------------------------------------- public API


def load_results(
    path: Path,
    model: str,
    benchmark: str,
    instances: pl.DataFrame,
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
) -> pl.DataFrame:
    """One model's results on one benchmark (RESULTS schema) from a results path.

    `instances` is that benchmark's INSTANCES frame. A harness path that holds nothing
    for this benchmark gives an empty frame; ids the benchmark does not have are an
    error unless ``options.ignore_unknown``.
    """
    path = Path(path)
    opts = parse_options(options)
    kind, container = _resolve_fmt(path, fmt)
    if kind == "generic":
        if path.is_dir():
            raise RegistryError(f"{path}: a folder; generic results are one JSONL/CSV/Parquet file")
        if instances.height == 0:
            return conform(pl.DataFrame(schema=RESULTS), RESULTS)
        with _guard(path, "generic results"):
            return load_generic_results(path, model, instances, container)
    if instances.height == 0:
        return conform(pl.DataFrame(schema=RESULTS), RESULTS)
    reader = {"lm-eval": _lm_eval_rows, "inspect": _inspect_rows, "helm": _helm_rows}[kind]
    with _guard(path, kind):
        got = reader(path, benchmark, opts)
        if got is None:
            return conform(pl.DataFrame(schema=RESULTS), RESULTS)
        rows, source = got
        if kind == "lm-eval" and opts.id_field is None:
            rows = _lm_eval_align(rows, instances, benchmark)
        if kind == "helm" and opts.id_field is not None:
            raise RegistryError(
                f"{source}: options.id_field does not apply to HELM runs (their instance ids "
                "are HELM's own, e.g. 'id12'); name the benchmark's instances after them"
            )
        return _results_frame(rows, model, benchmark, instances, opts, source, kind)


def load_instances_from_results(
    path: Path,
    benchmark: str,
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
) -> pl.DataFrame | None:
    """A benchmark's INSTANCES from a harness output that carries the questions.

    lm-eval: each sample's ``doc`` (question / choices / id fields, see ImportOptions)
    and ``target``; inspect: sample ``input``, ``choices``, ``target``, ``metadata``;
    helm: ``scenario_state.json`` (input text, references tagged ``correct``, the
    multiple-choice ``output_mapping``). Returns None for generic files (they do not
    carry questions; use ``instances.load_instances``).
    """
    path = Path(path)
    opts = parse_options(options)
    kind, _ = _resolve_fmt(path, fmt)
    if kind == "generic":
        return None
    reader = {
        "lm-eval": _lm_eval_instances,
        "inspect": _inspect_instances,
        "helm": _helm_instances,
    }[kind]
    with _guard(path, kind):
        return _instances_frame(reader(path, benchmark, opts), benchmark)


def list_tasks(path: Path, fmt: str | None = None) -> list[str]:
    """The task / run names a harness results path holds (empty for generic files)."""
    path = Path(path)
    kind, _ = _resolve_fmt(path, fmt)
    with _guard(path, kind):
        if kind == "lm-eval":
            return sorted(t for t in _lm_eval_files(path) if t is not None)
        if kind == "inspect":
            return sorted(lg.task for lg in _inspect_logs(path) if lg.task)
        if kind == "helm":
            return sorted(r.name for r in _helm_runs(path))
    return []


def check_results(
    path: Path,
    model: str,
    instances: Mapping[str, pl.DataFrame],
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
) -> dict[str, int]:
    """Preflight for one model: load its results for every benchmark; rows per benchmark.

    Raises when a harness path feeds no registered benchmark at all (naming the tasks it
    holds) and, through :func:`load_results`, on any malformed row or unknown id.
    For generic files use ``results.check_unknown`` (ids across benchmarks).
    """
    path = Path(path)
    counts = {
        b: load_results(path, model, b, df, fmt, options).height for b, df in instances.items()
    }
    kind, _ = _resolve_fmt(path, fmt)
    if kind in HARNESS_FORMATS and instances and not any(counts.values()):
        raise RegistryError(
            f"{path}: {kind} results of model {model!r} match no registered benchmark "
            f"(benchmarks: {sorted(instances)}; tasks in the file(s): {list_tasks(path, kind)}); "
            "name benchmarks after the tasks or set options.task"
        )
    return counts


# --------------------------------------------------------------------------- export


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


def _inspect_log(
    bench: str, rows: list[dict], model: str, stamp: datetime
) -> tuple[dict, list[dict]]:
    created = stamp.isoformat()
    samples = []
    for r in rows:
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
        samples.append(sample)
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


def _export_helm(by_bench, instances, model, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    last = out
    for bench, rows in by_bench.items():
        name = f"{bench}:model={_safe(model)}"
        run = out / name
        run.mkdir(parents=True, exist_ok=True)
        states, stats = [], []
        for r in rows:
            options = list(r["options"]) if r["options"] is not None else None
            if options:
                letters = option_letters(len(options))
                gold = _answer_letter(str(r["answer"]), options, index_first=False)
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
            state = {
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
            states.append(state)
            c = float(r["correct"])
            stats.append(
                {
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
            )
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
