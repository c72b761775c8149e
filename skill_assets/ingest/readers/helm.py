"""HELM run output.

``per_instance_stats.json`` (+ ``scenario_state.json`` for the questions and the
completions), a run folder holding them, or a suite folder of run folders. A run feeds the
benchmark named by its run name (e.g. ``mmlu:subject=anatomy,model=x``), its scenario part
before ``:`` or its folder name, or the one ``options.task`` maps to it.

Metric: ``options.metric``, else the first of ``exact_match``, ``quasi_exact_match``,
``prefix_exact_match``, ``quasi_prefix_exact_match``, ``final_number_exact_match``,
``math_equiv_chain_of_thought``, ``math_equiv`` present; split ``options.split``, else
``test``, else ``valid``. Perturbed instances and perturbed stats are ignored; train trials
are averaged. Instance ids are HELM's own, so ``options.id_field`` does not apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    as_list,
    as_object,
    fail,
    finite,
    guard,
    kind_of,
    load_json_quietly,
    no_source,
    not_present,
    option_letters,
    read_json_file,
    scalar_id,
    score01,
    short,
    subkey,
    task_matches,
)

HELM_METRICS = (
    "exact_match",
    "quasi_exact_match",
    "prefix_exact_match",
    "quasi_prefix_exact_match",
    "final_number_exact_match",
    "math_equiv_chain_of_thought",
    "math_equiv",
)
_RUN_FILES = ("per_instance_stats.json", "scenario_state.json")


@dataclass
class _HelmRun:
    folder: Path
    name: str

    @property
    def aliases(self) -> tuple[str, ...]:
        return (self.name.split(":", 1)[0], self.folder.name)


def _helm_runs(path: Path) -> list[_HelmRun]:
    if path.is_file():
        if path.name not in _RUN_FILES:
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
    matches = [r for r in _helm_runs(path) if task_matches(r.name, benchmark, opts, r.aliases)]
    if len(matches) > 1:
        raise RegistryError(
            f"{path}: several HELM runs match benchmark {benchmark!r}: "
            f"{[r.name for r in matches]}; name one with options.task"
        )
    return matches[0] if matches else None


def _helm_states(run: _HelmRun) -> tuple[dict, list[tuple[str, dict]]]:
    """(adapter_spec, [(where, request_state)]) of a run's scenario_state.json."""
    path = run.folder / "scenario_state.json"
    state = as_object(
        read_json_file(path), str(path), "a ScenarioState object (adapter_spec, request_states)"
    )
    spec = state.get("adapter_spec")
    spec = spec if isinstance(spec, dict) else {}
    raw = as_list(state.get("request_states"), f"{path}: key 'request_states'")
    return spec, [
        (f"{path}: key 'request_states[{i}]'", as_object(rs, f"{path}: key 'request_states[{i}]'"))
        for i, rs in enumerate(raw)
    ]


def _helm_instance(rs: dict, where: str) -> dict:
    return as_object(rs.get("instance"), subkey(where, "instance"), "an Instance object")


def _helm_completion(rs: dict) -> tuple[str | None, float | None]:
    res = rs.get("result")
    if not isinstance(res, dict):
        return None, None
    comps = res.get("completions")
    text = None
    if isinstance(comps, list) and comps and isinstance(comps[0], dict):
        t = comps[0].get("text")
        text = t if isinstance(t, str) else None
    return text, finite(res.get("request_time"))


# (where, instance_id, {(metric, split): (where of the stat, value)}) per unperturbed entry
_Stats = tuple[str, str, dict[tuple[str, str | None], tuple[str, Any]]]


def _stat_values(e: dict, where: str) -> dict[tuple[str, str | None], tuple[str, Any]]:
    """(metric, split) → (where, per-instance value) of one PerInstanceStats entry."""
    values: dict[tuple[str, str | None], tuple[str, Any]] = {}
    for j, st in enumerate(as_list(e.get("stats"), subkey(where, "stats"))):
        sw = subkey(where, f"stats[{j}]")
        st = as_object(st, sw, "a Stat object (name, count, sum, mean…)")
        name = as_object(st.get("name"), subkey(sw, "name"), "a MetricName object (name, split…)")
        if name.get("perturbation") is not None:
            continue
        if not isinstance(name.get("name"), str):
            fail(
                subkey(sw, "name.name"),
                f"expected a metric name, got {short(name.get('name'))}",
            )
        if "mean" in st and st["mean"] is not None:
            v = st["mean"]
        elif finite(st.get("sum")) is not None and finite(st.get("count")):
            v = st["sum"] / st["count"]
        else:
            v = None
        split = name.get("split") if isinstance(name.get("split"), str) else None
        values.setdefault((name["name"], split), (sw, v))
    return values


def _helm_stats(stats_path: Path) -> list[_Stats]:
    """The unperturbed entries of a per_instance_stats.json."""
    entries = as_list(
        read_json_file(stats_path), str(stats_path), "a list of PerInstanceStats objects"
    )
    parsed = []
    for i, e in enumerate(entries):
        where = f"{stats_path}: key '[{i}]'"
        e = as_object(e, where, "a PerInstanceStats object (instance_id, train_trial_index, stats)")
        if e.get("perturbation") is not None:
            continue
        if "instance_id" not in e:
            fail(where, "missing key 'instance_id'")
        iid = scalar_id(e["instance_id"], subkey(where, "instance_id"))
        trial = e.get("train_trial_index", 0)
        if isinstance(trial, bool) or not isinstance(trial, int):
            fail(subkey(where, "train_trial_index"), f"expected an integer, got {short(trial)}")
        parsed.append((where, iid, _stat_values(e, where)))
    if not parsed:
        raise RegistryError(f"{stats_path}: no unperturbed instances")
    return parsed


def _helm_metric(stats_path: Path, parsed: list[_Stats], opts: ImportOptions) -> tuple[str, Any]:
    """(metric, split) to import: the options' or the defaults (see the module docstring)."""
    splits = {k[1] for _, _, vals in parsed for k in vals}
    split: str | None
    if opts.split is not None:
        if opts.split not in splits:
            present = f"splits present: {sorted(s for s in splits if s)}"
            not_present(stats_path, "split", opts.split, "stats for split", present)
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
    for _, _, vals in parsed:
        for n, sp in vals:
            if sp == split and n not in names:
                names.append(n)
    if opts.metric is not None:
        if opts.metric not in names:
            present, after = f"stats present: {names[:30]}", f" for split {split!r}"
            not_present(stats_path, "metric", opts.metric, "stat", present, after)
        return opts.metric, split
    metric = next((m for m in HELM_METRICS if m in names), None)
    if metric is None:
        raise RegistryError(
            f"{stats_path}: none of {list(HELM_METRICS)} among the stats for split "
            f"{split!r}; set options.metric (stats present: {names[:30]})"
        )
    return metric, split


def _helm_completions(run: _HelmRun) -> dict[str, tuple[str | None, str | None, float | None]]:
    """instance id → (completion, parsed answer, request time) from scenario_state.json."""
    completions: dict[str, tuple[str | None, str | None, float | None]] = {}
    if not (run.folder / "scenario_state.json").is_file():
        return completions
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
    return completions


def _helm_rows(
    path: Path, benchmark: str, opts: ImportOptions
) -> tuple[list[ResultRow], str] | None:
    run = _helm_source(path, benchmark, opts)
    if run is None:
        return None
    stats_path = run.folder / "per_instance_stats.json"
    with guard(stats_path, "helm"):
        if not stats_path.is_file():
            raise RegistryError(f"{run.folder}: no per_instance_stats.json in this HELM run folder")
        parsed = _helm_stats(stats_path)
        metric, split = _helm_metric(stats_path, parsed, opts)
        per_id: dict[str, list[tuple[str, float]]] = {}
        for where, iid, vals in parsed:
            if (metric, split) not in vals:
                continue  # this instance has no such stat (e.g. another split)
            sw, v = vals[(metric, split)]
            value = score01(
                v, subkey(sw, "mean"), f" (stat {metric!r}; choose another with options.metric)"
            )
            per_id.setdefault(iid, []).append((where, value))
        completions = _helm_completions(run)
        rows = []
        for iid, scored in per_id.items():  # train trials are averaged
            text, parsed_answer, latency = completions.get(iid, (None, None, None))
            mean = sum(v for _, v in scored) / len(scored)
            rows.append(ResultRow(iid, mean, scored[0][0], text, parsed_answer, None, latency))
        return rows, str(stats_path)


def _trial_of(rs: dict) -> int:
    t = rs.get("train_trial_index", 0)
    return t if isinstance(t, int) and not isinstance(t, bool) else 0


def _letter_key(k: str) -> tuple[int, str]:
    return (len(k), k)


def _helm_references(inst: dict, where: str) -> tuple[list[str], list[str]]:
    """(every reference's text, the texts of those tagged ``correct``) of an instance."""
    refs = as_list(inst.get("references", []), subkey(where, "instance.references"))
    ref_texts, correct = [], []
    for k, ref in enumerate(refs):
        rw = subkey(where, f"instance.references[{k}]")
        ref = as_object(ref, rw, "a Reference object (output, tags)")
        out = as_object(ref.get("output"), subkey(rw, "output"), "an Output object (text)")
        text = out.get("text")
        if not isinstance(text, str):
            fail(subkey(rw, "output.text"), f"expected a string, got {kind_of(text)}")
        tags = ref.get("tags", [])
        ref_texts.append(text)
        if isinstance(tags, list) and "correct" in tags:
            correct.append(text)
    if not correct:
        fail(
            subkey(where, "instance.references"),
            "no reference tagged 'correct' (the gold answer)",
        )
    return ref_texts, correct


def _helm_options(
    rs: dict, method: str, ref_texts: list[str], correct: list[str]
) -> tuple[list[str] | None, str]:
    """(options, gold) of a request: the multiple-choice ``output_mapping`` (gold as a
    letter), else the references of a multiple-choice adapter, else no options."""
    mapping = rs.get("output_mapping")
    if isinstance(mapping, dict) and mapping and all(isinstance(v, str) for v in mapping.values()):
        keys = sorted((k for k in mapping if isinstance(k, str)), key=_letter_key)
        options = [mapping[k] for k in keys]
        letters = option_letters(len(options))
        answer = next(
            (letters[i] for i, k in enumerate(keys) if mapping[k] == correct[0]), correct[0]
        )
        return options, answer
    if method.startswith("multiple_choice") and len(ref_texts) > 1:
        return ref_texts, option_letters(len(ref_texts))[ref_texts.index(correct[0])]
    return None, correct[0]


def _helm_instances(path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
    run = _helm_source(path, benchmark, opts)
    if run is None:
        names = [r.name for r in _helm_runs(path)]
        no_source(path, "HELM run for benchmark", benchmark, opts, "runs", names)
    state_path = run.folder / "scenario_state.json"
    with guard(state_path, "helm"):
        if not state_path.is_file():
            raise RegistryError(
                f"{run.folder}: no scenario_state.json (HELM writes the questions there)"
            )
        spec, states = _helm_states(run)
        method = spec["method"] if isinstance(spec.get("method"), str) else ""
        items: dict[str, InstanceRow] = {}
        for where, rs in sorted(states, key=lambda t: _trial_of(t[1])):
            inst = _helm_instance(rs, where)
            if inst.get("perturbation") is not None:
                continue
            if "id" not in inst:
                fail(subkey(where, "instance.id"), "missing (HELM gives every instance an id)")
            iid = scalar_id(inst["id"], subkey(where, "instance.id"))
            if iid in items:
                continue
            inp = as_object(
                inst.get("input"), subkey(where, "instance.input"), "an Input object (text)"
            )
            question = inp.get("text")
            if not isinstance(question, str):
                fail(
                    subkey(where, "instance.input.text"),
                    f"expected the question text, got {kind_of(question)}",
                )
            ref_texts, correct = _helm_references(inst, where)
            options, answer = _helm_options(rs, method, ref_texts, correct)
            meta: dict[str, Any] = {}
            for key in ("split", "sub_split"):
                if isinstance(inst.get(key), str):
                    meta[key] = inst[key]
            if options is None and len(correct) > 1:
                meta["references"] = correct
            items[iid] = InstanceRow(iid, question, options, answer, where, metadata=meta)
        if not items:
            raise RegistryError(f"{state_path}: no unperturbed instances in request_states")
        return list(items.values())


class HelmReader:
    """HELM run folders (see the module docstring)."""

    name = "helm"
    layout = "per_instance_stats.json (helm)"

    def recognise(self, path: Path) -> int:
        """A run folder or its files by name; a ``.json`` list of PerInstanceStats."""
        if path.is_dir():
            if (path / "per_instance_stats.json").is_file():
                return EXACT
            return BY_NAME if any(path.rglob("per_instance_stats.json")) else NOT_MINE
        if path.name in _RUN_FILES:
            return EXACT
        if path.suffix.lower() == ".json":
            obj = load_json_quietly(path)
            if (
                isinstance(obj, list)
                and obj
                and isinstance(obj[0], dict)
                and "instance_id" in obj[0]
                and "stats" in obj[0]
            ):
                return BY_CONTENT
        return NOT_MINE

    def tasks(self, path: Path) -> list[str]:
        """The run names."""
        return sorted(r.name for r in _helm_runs(path))

    def read_results(
        self, path: Path, benchmark: str, instances: pl.DataFrame, opts: ImportOptions
    ) -> ResultRows | None:
        """Per-instance means of the chosen stat, train trials averaged."""
        got = _helm_rows(path, benchmark, opts)
        if got is None:
            return None
        rows, source = got
        if opts.id_field is not None:
            raise RegistryError(
                f"{source}: options.id_field does not apply to HELM runs (their instance ids "
                "are HELM's own, e.g. 'id12'); name the benchmark's instances after them"
            )
        return ResultRows(rows, source, id_hint="options.task")

    def read_instances(self, path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
        """Questions, references tagged ``correct`` and the multiple-choice mapping."""
        return _helm_instances(path, benchmark, opts)


READER = HelmReader()
