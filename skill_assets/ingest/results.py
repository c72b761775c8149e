"""Per-instance model results: import from files into the RESULTS schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from skill_assets.core.registry import RegistryError
from skill_assets.core.schemas import RESULTS, conform
from skill_assets.ingest.tabular import read_rows, row_label, table_format

_TRUE = {"true", "t", "yes", "y", "c", "correct"}
_FALSE = {"false", "f", "no", "n", "i", "incorrect"}


def _correct(value, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return 1.0
        if s in _FALSE:
            return 0.0
        try:
            value = float(s)
        except ValueError:
            raise RegistryError(
                f"{where}: 'correct' is {value!r}; expected 0/1, true/false or a score in [0, 1]"
            ) from None
    if isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise RegistryError(f"{where}: 'correct' is {value!r}; expected 0/1 or a score in [0, 1]")


def load_generic_results(
    path: Path,
    model: str,
    instances: pl.DataFrame,
    fmt: str | None = None,
) -> pl.DataFrame:
    """Read a generic results file (instance_id, [model], correct, …) for one model.

    Rows whose `model` differs from `model` are ignored; a file without a `model`
    column belongs to this model alone. Only rows of instances in `instances`
    (one benchmark) are returned; ids unknown to every benchmark are an error
    raised by `check_unknown`.
    """
    fmt_ = "generic" if fmt in (None, "generic") else fmt
    fmt = table_format(path, None if fmt_ == "generic" else fmt_)
    rows = read_rows(path, fmt)
    has_model = "model" in rows[0]
    benchmark = instances["benchmark"][0] if instances.height else None
    known = set(instances["instance_id"].to_list())
    seen = set()
    out = []
    for i, row in enumerate(rows):
        if has_model and str(row.get("model")) != model:
            continue
        where = row_label(path, fmt, i)
        if row.get("instance_id") is None:
            raise RegistryError(f"{where}: missing 'instance_id'")
        if "correct" not in row and "score" not in row:
            raise RegistryError(f"{where}: missing 'correct'")
        iid = str(row["instance_id"])
        if (
            "benchmark" in row
            and row["benchmark"] is not None
            and str(row["benchmark"]) != benchmark
        ):
            continue
        if iid not in known:
            continue
        if iid in seen:
            raise RegistryError(f"{where}: duplicate result for instance_id {iid!r}")
        seen.add(iid)
        out.append(
            {
                "uid": f"{benchmark}/{iid}",
                "benchmark": benchmark,
                "instance_id": iid,
                "model": model,
                "response": None if row.get("response") is None else str(row.get("response")),
                "parsed_answer": None
                if row.get("parsed_answer") is None
                else str(row.get("parsed_answer")),
                "correct": _correct(row.get("correct", row.get("score")), where),
                "cost_usd": _float(row.get("cost_usd")),
                "latency_s": _float(row.get("latency_s")),
                "call_id": None if row.get("call_id") is None else str(row.get("call_id")),
            }
        )
    return conform(pl.DataFrame(out, schema=RESULTS), RESULTS)


def _float(v) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def check_unknown(
    path: Path,
    model: str,
    all_ids: dict[str, set[str]],
    fmt: str | None,
    ignore_unknown: bool = False,
) -> None:
    """Raise if a results file names instances that no registered benchmark has (unless
    `ignore_unknown`: those rows are then skipped when results are read)."""
    fmt = table_format(path, None if fmt in (None, "generic") else fmt)
    rows = read_rows(path, fmt)
    has_model = "model" in rows[0]
    union = set().union(*all_ids.values()) if all_ids else set()
    for i, row in enumerate(rows):
        if has_model and str(row.get("model")) != model:
            continue
        iid = row.get("instance_id")
        if iid is None:
            raise RegistryError(f"{row_label(path, fmt, i)}: missing 'instance_id'")
        bench = row.get("benchmark")
        pool = all_ids.get(str(bench), set()) if bench is not None else union
        if str(iid) not in pool and not ignore_unknown:
            raise RegistryError(
                f"{row_label(path, fmt, i)}: result for unknown instance_id {str(iid)!r}"
            )
    if has_model and not any(str(r.get("model")) == model for r in rows):
        raise RegistryError(f"{path}: no rows with model == {model!r}")


def check_generic_options(where: str, options: dict | None) -> None:
    """A generic results file takes `ignore_unknown` only; any other option would do
    nothing, so it is refused (`where` names the registry key of the options)."""
    unused = sorted(set(options or {}) - {"ignore_unknown"})
    if unused:
        raise RegistryError(
            f"{where}.{unused[0]}': not used by a generic results file (only"
            " 'ignore_unknown' applies)"
        )
