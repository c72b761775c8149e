"""Benchmark instances: load, validate, normalise to the INSTANCES schema."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from skill_assets.core.registry import RegistryError, image_media_type, inside_project
from skill_assets.core.schemas import INSTANCES, conform
from skill_assets.ingest.tabular import read_rows, row_label, table_format

CORE = ("instance_id", "question", "answer", "options", "image")


def _options(value, where: str) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RegistryError(f"{where}: 'options' must be a list (or a JSON list)") from None
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise RegistryError(f"{where}: 'options' must be a list of strings")
    return [str(v) for v in value]


def load_instances(path: Path, benchmark: str, fmt: str | None = None) -> pl.DataFrame:
    """Read an instances file into the INSTANCES schema.

    Required: `instance_id`, `question`, `answer`; optional `options` (list) and
    `image` (path relative to the file); every other column is kept in `metadata`.
    """
    fmt = table_format(path, fmt)
    rows = read_rows(path, fmt)
    seen: dict[str, int] = {}
    out = []
    for i, row in enumerate(rows):
        where = row_label(path, fmt, i)
        for key in ("instance_id", "question", "answer"):
            if row.get(key) is None or str(row.get(key)).strip() == "":
                raise RegistryError(f"{where}: missing '{key}'")
        iid = str(row["instance_id"])
        if iid in seen:
            raise RegistryError(
                f"{where}: duplicate instance_id {iid!r} (first at {row_label(path, fmt, seen[iid])})"
            )
        seen[iid] = i
        image = row.get("image")  # relative to the file; load_benchmark checks it
        if image:
            image = str((path.parent / str(image)).resolve())
        meta = {k: v for k, v in row.items() if k not in CORE}
        out.append(
            {
                "uid": f"{benchmark}/{iid}",
                "benchmark": benchmark,
                "instance_id": iid,
                "question": str(row["question"]),
                "options": _options(row.get("options"), where),
                "answer": str(row["answer"]),
                "image": image or None,
                "metadata": json.dumps(meta, sort_keys=True, default=str),
            }
        )
    return conform(pl.DataFrame(out, schema=INSTANCES), INSTANCES)


def metadata_column(instances: pl.DataFrame, column: str) -> pl.Series:
    """One metadata field as a string column (null where absent)."""
    values = [json.loads(m).get(column) for m in instances["metadata"].to_list()]
    return pl.Series(column, [None if v is None else str(v) for v in values], dtype=pl.String)


def check_images(df: pl.DataFrame, root: Path, source: Path, fmt: str | None) -> pl.DataFrame:
    """Every `image` must be a PNG/JPEG/GIF/WebP file inside the project (symlinks resolved).

    Anything else is one error naming the file, the row and the field: a row must never
    make the annotator or a live model upload an arbitrary local file.
    """
    if "image" not in df.columns or df["image"].null_count() == df.height:
        return df
    base = source.parent if source.is_file() else source
    out: list[str | None] = []
    for i, (iid, image) in enumerate(zip(df["instance_id"], df["image"], strict=True)):
        if not image:
            out.append(None)
            continue
        row = row_label(source, fmt, i) if fmt in ("jsonl", "csv", "parquet") else f"{source}"
        where = f"{row} (instance_id {iid!r}): field 'image'"
        path = inside_project(root, base, image, where)
        with path.open("rb") as fh:
            if image_media_type(fh.read(16)) is None:
                raise RegistryError(f"{where}: {image!r} is not a PNG, JPEG, GIF or WebP image")
        out.append(str(path))
    return df.with_columns(pl.Series("image", out, dtype=pl.String))


def load_benchmark(project, name: str) -> pl.DataFrame:
    """A registered benchmark's instances, from an instances file or a harness output."""
    from skill_assets.ingest.importers import format_key, get_reader, load_instances_from_results

    entry = project.benchmark(name)
    path = project.benchmark_path(name)
    key = format_key(project, "benchmarks", name)
    if get_reader(entry.format, key) is not None:  # a harness output carrying the questions
        df = load_instances_from_results(path, name, entry.format, entry.options, key)
        if df is not None:
            return check_images(df, project.root, path, entry.format)
    fmt = table_format(path, entry.format)
    return check_images(load_instances(path, name, entry.format), project.root, path, fmt)
