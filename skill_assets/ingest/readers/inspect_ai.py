"""Inspect AI logs.

``.eval`` (a zip of ``header.json``, ``samples/<id>_epoch_<n>.json``, …) or ``.json`` (one
``EvalLog`` object with ``eval`` and ``samples``), or a folder of them (the newest log per
task wins, by ``eval.created``). A log feeds the benchmark named ``eval.task`` (or its last
``/`` part), or the one ``options.task`` maps to it.

Scores: ``options.scorer``, else the first scorer listed in the log's ``results.scores``,
else the first key of the samples' ``scores``. Values map as Inspect's own
``value_to_float`` does: ``C`` → 1, ``P`` → 0.5, ``I``/``N`` → 0, yes/true → 1, no/false →
0, numbers as numbers; a dict value needs ``options.value_key``. NaN (Inspect's "unscored")
and samples that errored without a score are skipped. Epochs are reduced as Inspect reduced
them: the log's own reduced per-sample scores (``reductions``), else its recorded reducer
(``mean``, ``median``, ``mode``, ``max``, ``at_least_k``), so the imported accuracy is the
tool's; the response and the scorer's extracted ``answer`` come from the first epoch.
``.eval`` members compressed with zstd (what Inspect writes) are read with ``zstandard``.
A log whose ``status`` is not ``success`` (an aborted or cancelled run) is refused unless
``options.allow_partial``; in a folder, the newest complete log per task wins.
"""

from __future__ import annotations

import json
import logging
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from skill_assets.core.options import ImportOptions
from skill_assets.core.registry import RegistryError
from skill_assets.ingest.readers.base import (
    BY_CONTENT,
    NOT_MINE,
    InstanceRow,
    ResultRow,
    ResultRows,
)
from skill_assets.ingest.readers.common import (
    answer_letter,
    as_list,
    as_object,
    choices_list,
    decode,
    fail,
    finite,
    guard,
    json_text,
    kind_of,
    load_json_quietly,
    no_source,
    peek,
    scalar_id,
    score01,
    short,
    subkey,
    task_matches,
)

_log = logging.getLogger(__name__)


def _looks_inspect_json(path: Path) -> bool:
    """An Inspect ``.json`` log starts with its version, status and ``eval`` spec."""
    if not path.is_file():
        return False
    head = peek(path, 4096)
    return head.lstrip().startswith(b"{") and b'"eval"' in head and b'"version"' in head


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
    # the CRC is of the decompressed bytes: checked below (None skips zipfile's check; the
    # stubs type the attribute int only)
    raw_info.CRC = None  # type: ignore[assignment]
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
    return json_text(decode(data, where), where)


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
                header = as_object(
                    _zip_json(zf, "header.json", path), f"{path}: member header.json"
                )
            elif "_journal/start.json" in names:  # a log still being written
                header = as_object(
                    _zip_json(zf, "_journal/start.json", path),
                    f"{path}: member _journal/start.json",
                )
            elif "start.json" in names:  # early .eval layout
                header = as_object(_zip_json(zf, "start.json", path), f"{path}: member start.json")
                if "results.json" in names:
                    res = as_object(
                        _zip_json(zf, "results.json", path), f"{path}: member results.json"
                    )
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
                        samples.append((where, as_object(_zip_json(zf, name, path), where)))
        return _InspectLog(path, header, samples)
    data = path.read_bytes()
    if not data.strip():
        raise RegistryError(f"{path}: file is empty")
    if path.suffix.lower() == ".eval":
        raise RegistryError(
            f"{path}: not a zip archive (expected an Inspect .eval log: header.json + "
            "samples/<id>_epoch_<n>.json)"
        )
    log = as_object(
        json_text(decode(data, str(path)), str(path)),
        str(path),
        "an Inspect eval log object (keys version, status, eval, samples…)",
    )
    if "eval" not in log:
        fail(str(path), "missing key 'eval' (expected an Inspect eval log)")
    raw = log.get("samples")
    if raw is None:
        raw = []
    samples = [
        (f"{path}: key 'samples[{i}]'", as_object(s, f"{path}: key 'samples[{i}]'"))
        for i, s in enumerate(as_list(raw, f"{path}: key 'samples'"))
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
        if task_matches(lg.task, benchmark, opts, _inspect_aliases(lg.task))
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
            fail(
                where, f"score value is an object with keys {sorted(v)[:12]}; set options.value_key"
            )
        if opts.value_key not in v:
            fail(
                where,
                f"score value has no key {opts.value_key!r} (options.value_key); keys: {sorted(v)[:12]}",
            )
        v = v[opts.value_key]
        where = subkey(where, f"{opts.value_key}")
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return None
        return score01(v, where)
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
            fail(where, f"score value {short(v)}: expected C/I/P/N, yes/no, true/false or a number")
        if math.isnan(f):
            return None
        return score01(f, where)
    if v is None:
        return None
    fail(
        where,
        f"score value is {kind_of(v)}; expected C/I/P/N, a number or an object (with options.value_key)",
    )


def _sample_scores(s: dict, where: str) -> dict | None:
    scores = s.get("scores")
    if scores is None and "score" in s:  # pre-0.3.23 logs: one unnamed score
        return {"score": s["score"]} if s["score"] is not None else None
    if scores is None:
        return None
    return as_object(scores, subkey(where, "scores"))


def _inspect_scorer(log: _InspectLog, opts: ImportOptions) -> str:
    if opts.scorer is not None:
        return opts.scorer
    results = log.header.get("results")
    if isinstance(results, dict) and isinstance(results.get("scores"), list):
        present: set[str] = set()
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
            fail(where, "missing key 'id' (expected an Inspect sample)")
        return scalar_id(s["id"], subkey(where, "id"))
    meta = s.get("metadata")
    if not isinstance(meta, dict) or opts.id_field not in meta:
        keys = sorted(meta)[:12] if isinstance(meta, dict) else []
        fail(
            where,
            f"sample metadata has no field {opts.id_field!r} (options.id_field); fields: {keys}",
        )
    return scalar_id(meta[opts.id_field], subkey(where, f"metadata.{opts.id_field}"))


def _epoch(s: dict, where: str) -> int:
    e = s.get("epoch", 1)
    if isinstance(e, bool) or not isinstance(e, int):
        fail(subkey(where, "epoch"), f"expected an integer, got {short(e)}")
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
    fail(
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


_Scored = tuple[int, str, dict, float]  # (epoch, where, sample, value)


def _scored_samples(
    log: _InspectLog, scorer: str, opts: ImportOptions
) -> tuple[dict[str, list[_Scored]], dict[str, str]]:
    """instance_id → its scored epochs (in log order), and instance_id → the sample's id."""
    groups: dict[str, list[_Scored]] = {}
    sample_ids: dict[str, str] = {}
    for where, s in log.samples:
        scores = _sample_scores(s, where)
        if not scores or scorer not in scores:
            if s.get("error") is not None or not scores:
                continue  # errored / unscored sample: no result
            fail(
                subkey(where, "scores"),
                f"has no scorer {scorer!r}; scorers present: {sorted(scores)}",
            )
        score = as_object(scores[scorer], subkey(where, f"scores.{scorer}"), "a Score object")
        if "value" not in score:
            fail(subkey(where, f"scores.{scorer}"), "missing 'value'")
        value = _inspect_value(score["value"], subkey(where, f"scores.{scorer}.value"), opts)
        if value is None:
            continue
        iid = _inspect_id(where, s, opts)
        groups.setdefault(iid, []).append((_epoch(s, where), where, s, value))
        sample_ids[iid] = str(s.get("id"))
    return groups, sample_ids


def _sample_row(iid: str, first: dict, where: str, scorer: str, correct: float) -> ResultRow:
    """A result from a sample's first epoch (response, answer, cost, time) and its score."""
    sc = (_sample_scores(first, where) or {})[scorer]
    answer = sc.get("answer") if isinstance(sc, dict) else None
    usage = first.get("model_usage")
    cost = None
    if isinstance(usage, dict):
        costs = [finite(u.get("total_cost")) for u in usage.values() if isinstance(u, dict)]
        known = [c for c in costs if c is not None]
        cost = sum(known) if known else None
    return ResultRow(
        iid,
        correct,
        where,
        _inspect_output(first),
        answer if isinstance(answer, str) else None,
        cost,
        finite(first.get("total_time")),
    )


def _inspect_rows(
    path: Path, benchmark: str, opts: ImportOptions
) -> tuple[list[ResultRow], str] | None:
    log = _inspect_source(path, benchmark, opts)
    if log is None:
        return None
    with guard(log.path, "inspect"):
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
        groups, sample_ids = _scored_samples(log, scorer, opts)
        rows = []
        for iid, group in groups.items():
            eps = sorted(group, key=lambda t: t[0])
            seen_epochs: dict[int, str] = {}
            for ep, where, _, _ in eps:
                if ep in seen_epochs:
                    fail(
                        where,
                        f"sample {iid!r} epoch {ep} appears twice (first at {seen_epochs[ep]})",
                    )
                seen_epochs[ep] = where
            _, where, first, _ = eps[0]
            correct: float | None
            if reduced is not None and sample_ids[iid] in reduced:
                # the tool's own reduced score, so the imported accuracy is the tool's
                correct = _inspect_value(
                    reduced[sample_ids[iid]], f"{log.path}: reductions[{sample_ids[iid]}]", opts
                )
                if correct is None:
                    continue
            else:
                correct = _reduce(reducer, [t[3] for t in eps], where)
            rows.append(_sample_row(iid, first, where, scorer, correct))
        return rows, str(log.path)


def _inspect_input(s: dict, where: str) -> tuple[str, str | None]:
    """(question text, image path) of a sample's input."""
    inp = _attachment(s.get("input"), s)
    if isinstance(inp, str):
        return inp, None
    if not isinstance(inp, list):
        fail(
            subkey(where, "input"),
            f"expected a string or a list of chat messages, got {kind_of(inp)}",
        )
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
        fail(subkey(where, "input"), "no user message with text")
    return "\n\n".join(texts), image


def _inspect_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
    log = _inspect_source(path, benchmark, opts)
    if log is None:
        tasks = sorted(str(lg.task) for lg in _inspect_logs(path))
        no_source(path, "Inspect log for task", benchmark, opts, "tasks", tasks)
    with guard(log.path, "inspect"):
        if not log.samples:
            raise RegistryError(f"{log.path}: the log holds no samples")
        items: dict[str, InstanceRow] = {}
        for where, s in sorted(log.samples, key=lambda t: _epoch(t[1], t[0])):
            iid = _inspect_id(where, s, opts)
            if iid in items:
                continue  # later epochs repeat the same sample
            question, image = _inspect_input(s, where)
            choices = s.get("choices")
            options = (
                choices_list(choices, subkey(where, "choices")) if choices is not None else None
            )
            target = s.get("target")
            meta = s.get("metadata")
            meta = dict(meta) if isinstance(meta, dict) else {}
            if opts.id_field:
                meta.pop(opts.id_field, None)
            if isinstance(target, list):
                if not target or not all(isinstance(t, str) for t in target):
                    fail(
                        subkey(where, "target"), "expected a string or a non-empty list of strings"
                    )
                if len(target) > 1:
                    meta["targets"] = target
                target = target[0]
            if not isinstance(target, str):
                fail(subkey(where, "target"), f"expected a string, got {kind_of(target)}")
            if options:
                target = answer_letter(target, options, index_first=False)
            items[iid] = InstanceRow(iid, question, options, target, where, image, meta)
        return list(items.values())


class InspectReader:
    """Inspect AI ``.eval`` / ``.json`` logs (see the module docstring)."""

    name = "inspect"
    layout = ".eval / .json (inspect) logs"

    def recognise(self, path: Path) -> int:
        """``.eval`` files, zips, and ``.json`` files holding an ``EvalLog``."""
        if path.is_dir():
            found = any(path.rglob("*.eval")) or any(
                _looks_inspect_json(p) for p in path.rglob("*.json")
            )
            return BY_CONTENT if found else NOT_MINE
        if path.suffix.lower() == ".eval" or peek(path, 4).startswith(b"PK\x03\x04"):
            return BY_CONTENT
        if path.suffix.lower() == ".json":
            obj = load_json_quietly(path)
            if isinstance(obj, dict) and "samples" in obj and "eval" in obj:
                return BY_CONTENT
        return NOT_MINE

    def tasks(self, path: Path) -> list[str]:
        """The ``eval.task`` of every log."""
        return sorted(lg.task for lg in _inspect_logs(path) if lg.task)

    def read_results(
        self, path: Path, benchmark: str, instances: pl.DataFrame, opts: ImportOptions
    ) -> ResultRows | None:
        """Per-sample scores of the chosen scorer, epochs reduced as Inspect reduced them."""
        got = _inspect_rows(path, benchmark, opts)
        return None if got is None else ResultRows(*got)

    def read_instances(self, path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
        """Each sample's ``input``, ``choices``, ``target`` and ``metadata``."""
        return _inspect_instances(path, benchmark, opts)


READER = InspectReader()
