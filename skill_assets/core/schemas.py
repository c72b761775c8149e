"""Column contracts of the tabular assets.

Every stage is a pure function over polars DataFrames; these schemas are the
contract between stages. `uid` is the project-wide instance key,
``f"{benchmark}/{instance_id}"``, so instance ids only need to be unique within
their benchmark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

INSTANCES: dict[str, PolarsDataType] = {
    "uid": pl.String,
    "benchmark": pl.String,
    "instance_id": pl.String,
    "question": pl.String,
    "options": pl.List(pl.String),  # null when the question is free-form
    "answer": pl.String,
    "image": pl.String,  # optional path, null when absent
    "metadata": pl.String,  # JSON object of every other column of the input file
}

RESULTS = {
    "uid": pl.String,
    "benchmark": pl.String,
    "instance_id": pl.String,
    "model": pl.String,
    "response": pl.String,
    "parsed_answer": pl.String,
    "correct": pl.Float64,  # 0/1, or a score in [0, 1]
    "cost_usd": pl.Float64,
    "latency_s": pl.Float64,
    "call_id": pl.String,  # null for imported results
}

RATIONALES = {
    "uid": pl.String,
    "benchmark": pl.String,
    "provenance": pl.String,  # taxonomy | llm | imported
    "annotator_model": pl.String,
    "prompt_version": pl.String,
    "call_id": pl.String,  # key of the LLM call cache row; null for taxonomy/imported
    "rationale": pl.String,  # full text (LLM) or a readable summary (taxonomy)
    "extracted_answer": pl.String,
    "n_steps": pl.Int64,
    "error": pl.String,  # null when annotation succeeded
}

MENTIONS = {
    "uid": pl.String,
    "benchmark": pl.String,
    "step": pl.Int64,  # 0-based step of the rationale
    "level": pl.Int64,  # 0 = most general; increases toward specific
    "skill_name": pl.String,
    "span": pl.String,  # rationale text that supports the skill
    "provenance": pl.String,
}

SLICES = {
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "parent_id": pl.String,  # null at the top level
    "member_names": pl.List(pl.String),
    "uids": pl.List(pl.String),
    "n": pl.Int64,
}

SLICE_ACCURACY = {
    "skill_id": pl.String,
    "name": pl.String,
    "level": pl.Int64,
    "model": pl.String,
    "n": pl.Int64,
    "n_correct": pl.Float64,
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "small": pl.Boolean,  # n below the configured minimum slice size
    "unparsed_share": pl.Float64,  # results without a parsed answer; null = not recorded
}


def empty(schema: dict) -> pl.DataFrame:
    """An empty frame with the given schema."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """Select and cast the schema's columns, adding missing ones as nulls."""
    cols = []
    for name, dtype in schema.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols)
