"""Import per-instance results (and questions) from the files evaluation harnesses write.

The dispatch over the readers in ``skill_assets.ingest.readers`` (one module per harness
format; see ``readers/base.py`` for the :class:`Reader` contract):

``load_results(path, model, benchmark, instances, fmt, options)``
    → a RESULTS frame for one benchmark.
``load_instances_from_results(path, benchmark, fmt, options)``
    → an INSTANCES frame, for formats that carry the questions (else ``None``).
``list_tasks`` / ``check_results`` / ``detect_format``: what a path holds, a preflight, and
    the format of a path where that is unambiguous.

Formats (``fmt``; ``None`` = detect where unambiguous, see :func:`detect_format`):

``generic``   JSONL/CSV/Parquet with instance_id, [model], correct (see ``results.py``);
              ``jsonl``/``csv``/``parquet`` name the container explicitly.
``lm-eval``   lm-evaluation-harness ``--log_samples`` output (``readers/lm_eval.py``).
``inspect``   Inspect AI ``.eval`` / ``.json`` logs (``readers/inspect_ai.py``).
``helm``      HELM run output (``readers/helm.py``).
``pkg.mod:Reader``  a reader outside the package, by import path (``readers/__init__.py``).

Which benchmark a harness file feeds: its task name (the reader's :meth:`Reader.tasks`)
must equal the benchmark name, or ``options.task`` (a string, or a ``{benchmark: task}``
mapping). A results path with no matching task gives an empty frame for that benchmark
(:func:`check_results` turns "matches no benchmark at all" into an error). Each reader's
module docstring lists the choices it makes (metric, filter, scorer, split, ids), all
overridable through ``options`` (see :class:`~skill_assets.core.options.ImportOptions`).

Every error is a :class:`~skill_assets.core.registry.RegistryError` naming the file, the
line (JSONL) or key path (JSON, zip member) and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.core.options import ImportOptions, parse_options
from skill_assets.core.registry import Project, RegistryError
from skill_assets.core.schemas import INSTANCES, RESULTS, conform
from skill_assets.ingest.readers import GENERIC_CONTAINERS, READERS, detect, get_reader
from skill_assets.ingest.readers.base import InstanceRow, Reader, ResultRow, ResultRows
from skill_assets.ingest.readers.common import fail, guard, option_letters
from skill_assets.ingest.readers.inspect_ai import _read_member
from skill_assets.ingest.results import load_generic_results

__all__ = [
    "FORMATS",
    "GENERIC_CONTAINERS",
    "HARNESS_FORMATS",
    "ImportOptions",
    "Reader",
    "_read_member",
    "check_results",
    "detect_format",
    "format_key",
    "get_reader",
    "list_tasks",
    "load_instances_from_results",
    "load_results",
    "option_letters",
    "parse_options",
]

HARNESS_FORMATS = tuple(READERS)
FORMATS = ("generic", *HARNESS_FORMATS)


def format_key(project: Project, section: str, name: str) -> str:
    """The registry key of an entry's ``format`` (``section``: benchmarks or models), the
    prefix of errors about that value."""
    entries = getattr(project.registry, section)
    i = next(i for i, e in enumerate(entries) if e.name == name)
    return f"{project.registry_path}: key '{section}[{i}].format'"


# --------------------------------------------------------------------------- frames


def _results_frame(
    got: ResultRows, model: str, benchmark: str, instances: pl.DataFrame, opts: ImportOptions
) -> pl.DataFrame:
    """RESULTS rows of the benchmark's instances; a repeated id, or (unless
    ``options.ignore_unknown``) an id the benchmark does not have, is an error."""
    rows, source = got.rows, got.source
    known = set(instances["instance_id"].to_list()) if "instance_id" in instances.columns else set()
    seen: dict[str, str] = {}
    out = []
    unknown: list[ResultRow] = []
    for r in rows:
        if r.instance_id in seen:
            fail(
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
        hint = got.id_hint
        r = unknown[0]
        sample = sorted(known)[:3]
        fail(
            r.where,
            f"result for instance_id {r.instance_id!r}, which benchmark {benchmark!r} does not "
            f"have ({len(unknown)} of {len(rows)} rows of {source} are unknown; benchmark ids "
            f"look like {sample}). Check {hint}, or set options.ignore_unknown: true",
        )
    return conform(pl.DataFrame(out, schema=RESULTS), RESULTS)


def _instances_frame(items: list[InstanceRow], benchmark: str) -> pl.DataFrame:
    """INSTANCES rows; a repeated id, an empty question or gold answer is an error."""
    seen: dict[str, str] = {}
    out = []
    for it in items:
        if it.instance_id in seen:
            fail(
                it.where,
                f"duplicate instance_id {it.instance_id!r} (first at {seen[it.instance_id]})",
            )
        seen[it.instance_id] = it.where
        if not it.question.strip():
            fail(it.where, "empty question")
        if not it.answer.strip():
            fail(it.where, "empty gold answer (expected a target / correct reference)")
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


# --------------------------------------------------------------------------- public API


def detect_format(path: Path) -> str:
    """Tell the format of a results path where that is unambiguous; else ``generic``.

    The registered readers are asked; the one recognising the path most surely wins.
    """
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: results path does not exist")
    reader = detect(path)
    return "generic" if reader is None else reader.name


def _resolve_fmt(
    path: Path, fmt: str | None, where: str | None
) -> tuple[Reader | None, str | None]:
    """(reader, None), or (None, generic container or None) for generic tables."""
    if not path.exists():
        raise RegistryError(f"{path}: results path does not exist")
    if fmt is None:
        return detect(path), None
    if fmt in GENERIC_CONTAINERS:
        return None, fmt
    return get_reader(fmt, where or str(path)), None


def load_results(
    path: Path,
    model: str,
    benchmark: str,
    instances: pl.DataFrame,
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
    where: str | None = None,
) -> pl.DataFrame:
    """One model's results on one benchmark (RESULTS schema) from a results path.

    `instances` is that benchmark's INSTANCES frame. A harness path that holds nothing
    for this benchmark gives an empty frame; ids the benchmark does not have are an
    error unless ``options.ignore_unknown``. ``where`` (e.g. :func:`format_key`) names
    the registry key in errors about ``fmt`` itself.
    """
    path = Path(path)
    opts = parse_options(options)
    reader, container = _resolve_fmt(path, fmt, where)
    empty = conform(pl.DataFrame(schema=RESULTS), RESULTS)
    if reader is None:
        if path.is_dir():
            raise RegistryError(f"{path}: a folder; generic results are one JSONL/CSV/Parquet file")
        if instances.height == 0:
            return empty
        with guard(path, "generic results"):
            return load_generic_results(path, model, instances, container)
    if instances.height == 0:
        return empty
    with guard(path, reader.name):
        got = reader.read_results(path, benchmark, instances, opts)
        if got is None:
            return empty
        return _results_frame(got, model, benchmark, instances, opts)


def load_instances_from_results(
    path: Path,
    benchmark: str,
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
    where: str | None = None,
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
    reader, _ = _resolve_fmt(path, fmt, where)
    if reader is None:
        return None
    with guard(path, reader.name):
        return _instances_frame(reader.read_instances(path, benchmark, opts), benchmark)


def list_tasks(path: Path, fmt: str | None = None, where: str | None = None) -> list[str]:
    """The task / run names a harness results path holds (empty for generic files)."""
    path = Path(path)
    reader, _ = _resolve_fmt(path, fmt, where)
    if reader is None:
        return []
    with guard(path, reader.name):
        return reader.tasks(path)


def check_results(
    path: Path,
    model: str,
    instances: Mapping[str, pl.DataFrame],
    fmt: str | None = None,
    options: Mapping[str, Any] | ImportOptions | None = None,
    where: str | None = None,
) -> dict[str, int]:
    """Preflight for one model: load its results for every benchmark; rows per benchmark.

    Raises when a harness path feeds no registered benchmark at all (naming the tasks it
    holds) and, through :func:`load_results`, on any malformed row or unknown id.
    For generic files use ``results.check_unknown`` (ids across benchmarks).
    """
    path = Path(path)
    reader, _ = _resolve_fmt(path, fmt, where)
    counts = {
        b: load_results(path, model, b, df, fmt, options, where).height
        for b, df in instances.items()
    }
    if reader is not None and instances and not any(counts.values()):
        raise RegistryError(
            f"{path}: {reader.name} results of model {model!r} match no registered benchmark "
            f"(benchmarks: {sorted(instances)}; tasks in the file(s): "
            f"{list_tasks(path, fmt, where)}); name benchmarks after the tasks or set options.task"
        )
    return counts
