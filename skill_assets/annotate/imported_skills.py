"""Bring-your-own skills: skill labels or rationales that come with a benchmark.

A benchmark entry may name a column of its instance file (``skills_column``) or a
separate file (``skills``) keyed by ``instance_id``. Either replaces the annotator for
that benchmark; the resulting mentions carry provenance ``imported``.

Accepted values, per instance:

- a list of labels, or one string of labels separated by ``;`` / ``|``: each label is a
  step; a label written as a path ``General > Specific`` gives its levels;
- a list of lists: each inner list is one step's names, general → specific;
- (``skills`` file only) ``steps``: the structured rationale format
  (``[{"skills": [...], "evidence": ..., "conclusion": ...}]``), or ``rationale``:
  free text in the annotator's format, parsed by :func:`parse_rationale_text`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.annotate.rationales import (
    Step,
    _coerce_rationale,
    mention_rows,
    normalize_skill_name,
    parse_rationale_text,
    render_rationale,
    split_skills,
)
from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import MENTIONS, RATIONALES, conform
from skill_assets.ingest.tabular import read_rows, row_label, table_format

PROVENANCE = "imported"
SKILL_FIELDS = ("steps", "rationale", "skills")


def _label_steps(value: Any, where: str) -> list[Step]:
    """Steps from labels: a list (of labels or of name lists) or a delimited string."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise RegistryError(f"{where}: skills look like JSON but do not parse") from None
        else:
            value = [p for p in text.replace("|", ";").split(";") if p.strip()]
    if not isinstance(value, list):
        raise RegistryError(
            f"{where}: skills must be a list, a list of lists or a ';'-separated string,"
            f" got {type(value).__name__}"
        )
    steps = []
    for item in value:
        if isinstance(item, list):
            names = [normalize_skill_name(str(x)) for x in item if x is not None]
        elif isinstance(item, (str, int, float)):
            names = (
                split_skills(str(item)) if ">" in str(item) else [normalize_skill_name(str(item))]
            )
        else:
            raise RegistryError(f"{where}: a skill label must be a string or a list of strings")
        names = [n for n in names if n]
        if names:
            steps.append(Step.model_construct(skills=names, evidence="", conclusion=""))
    return steps


def steps_from_record(record: dict[str, Any], where: str) -> tuple[list[Step], str | None]:
    """(steps, answer) from one row of a skills file."""
    if record.get("steps") is not None:
        steps_value = record["steps"]
        if isinstance(steps_value, str):
            try:
                steps_value = json.loads(steps_value)
            except json.JSONDecodeError:
                raise RegistryError(f"{where}: 'steps' is not valid JSON") from None
        rationale = _coerce_rationale({"steps": steps_value, "answer": record.get("answer")})
        if rationale is None:
            raise RegistryError(
                f"{where}: 'steps' holds no step with a skill"
                " (expected [{'skills': [...], 'evidence': ..., 'conclusion': ...}])"
            )
        return list(rationale.steps), rationale.answer or None
    if record.get("rationale") is not None:
        parsed = parse_rationale_text(str(record["rationale"]))
        return parsed.steps, parsed.answer
    return _label_steps(record.get("skills"), where), None


def read_skills_file(
    path: Path, instance_ids: set[str]
) -> dict[str, tuple[list[Step], str | None]]:
    """instance_id → (steps, answer) from a skills file, validated against the benchmark."""
    fmt = table_format(path)
    rows = read_rows(path, fmt)
    out: dict[str, tuple[list[Step], str | None]] = {}
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = row_label(path, fmt, i)
        iid = row.get("instance_id")
        if iid is None or str(iid).strip() == "":
            raise RegistryError(f"{where}: missing 'instance_id'")
        iid = str(iid)
        if iid in first:
            raise RegistryError(
                f"{where}: duplicate instance_id {iid!r} (first at {row_label(path, fmt, first[iid])})"
            )
        first[iid] = i
        if iid not in instance_ids:
            raise RegistryError(f"{where}: instance_id {iid!r} is not in the benchmark")
        if not any(row.get(k) is not None for k in SKILL_FIELDS):
            raise RegistryError(f"{where}: expected one of {list(SKILL_FIELDS)}")
        out[iid] = steps_from_record(row, where)
    return out


def skills_from_column(
    instances: pl.DataFrame, column: str, source: str
) -> dict[str, tuple[list[Step], str | None]]:
    """instance_id → (steps, None) from a metadata column of the instance file."""
    out: dict[str, tuple[list[Step], str | None]] = {}
    present = False
    for iid, meta in instances.select("instance_id", "metadata").iter_rows():
        data = json.loads(meta) if meta else {}
        if column in data:
            present = True
        where = f"{source}: instance {iid!r}: column '{column}'"
        out[iid] = (_label_steps(data.get(column), where), None)
    if instances.height and not present:
        raise RegistryError(f"{source}: key 'skills_column': no instance has a column {column!r}")
    return out


def imported_frames(
    instances: pl.DataFrame, by_id: dict[str, tuple[list[Step], str | None]], source: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rationales, mentions) in the RATIONALES / MENTIONS schemas with provenance ``imported``.

    Instances without skills get a rationale row with ``n_steps = 0`` and no mentions.
    """
    rat_rows, men_rows = [], []
    for row in instances.select("uid", "benchmark", "instance_id").iter_rows(named=True):
        steps, answer = by_id.get(row["instance_id"], ([], None))
        rat_rows.append(
            {
                "uid": row["uid"],
                "benchmark": row["benchmark"],
                "provenance": PROVENANCE,
                "annotator_model": f"imported:{source}",
                "rationale": render_rationale(steps, answer) if steps else None,
                "extracted_answer": answer,
                "n_steps": len(steps),
            }
        )
        men_rows.extend(mention_rows(row["uid"], row["benchmark"], steps, PROVENANCE))
    rationales = conform(pl.DataFrame(rat_rows, schema=RATIONALES), RATIONALES)
    mentions = conform(pl.DataFrame(men_rows, schema=MENTIONS), MENTIONS)
    return rationales, mentions


def import_benchmark_skills(project, benchmark: str, instances: pl.DataFrame):
    """(rationales, mentions) for a benchmark that brings its own skills, else None."""
    entry = project.benchmark(benchmark)
    if entry.skills is not None:
        i = [b.name for b in project.registry.benchmarks].index(benchmark)
        path = project.resolve(entry.skills, f"benchmarks[{i}].skills")
        by_id = read_skills_file(path, set(instances["instance_id"].to_list()))
        return imported_frames(instances, by_id, entry.skills)
    if entry.skills_column is not None:
        source = f"{project.registry_path}: benchmark {benchmark!r}"
        by_id = skills_from_column(instances, entry.skills_column, source)
        return imported_frames(instances, by_id, f"column:{entry.skills_column}")
    return None
