"""Reading tabular input files (JSONL, CSV, Parquet) with errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from skill_assets.core.registry import RegistryError


def table_format(path: Path, declared: str | None = None) -> str:
    """The container of a generic table (jsonl, csv, parquet): the declared one, else the suffix's."""
    if declared in ("jsonl", "csv", "parquet"):
        return declared
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise RegistryError(f"{path}: cannot tell the format from the suffix {suffix!r}; set 'format'")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RegistryError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    for lineno, line in enumerate(
        text.split("\n"), start=1
    ):  # not splitlines: U+2028 is valid in JSON strings
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RegistryError(f"{path}: line {lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise RegistryError(f"{path}: line {lineno}: expected a JSON object")
        rows.append(row)
    return rows


def read_rows(path: Path, fmt: str | None = None) -> list[dict]:
    """Read a file as a list of row dicts; raises RegistryError naming file and line."""
    fmt = table_format(path, fmt)
    if path.stat().st_size == 0:
        raise RegistryError(f"{path}: file is empty")
    if fmt == "jsonl":
        rows = _read_jsonl(path)
    elif fmt == "csv":
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise RegistryError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            df = pl.read_csv(path, separator=sep, infer_schema_length=0)
        except pl.exceptions.PolarsError as e:
            first = str(e).strip().splitlines()[0]
            raise RegistryError(f"{path}: malformed CSV ({first})") from None
        rows = df.to_dicts()
    else:
        try:
            rows = pl.read_parquet(path).to_dicts()
        except Exception as e:  # pyarrow/polars raise several types for corrupt files
            raise RegistryError(f"{path}: unreadable Parquet ({type(e).__name__})") from None
    if not rows:
        raise RegistryError(f"{path}: no rows")
    return rows


def row_label(path: Path, fmt: str, index: int) -> str:
    """How to point a person at row `index` (0-based) of a file."""
    if fmt == "jsonl":
        return f"{path}: row {index + 1}"
    if fmt == "csv":
        return f"{path}: line {index + 2}"
    return f"{path}: row {index}"
