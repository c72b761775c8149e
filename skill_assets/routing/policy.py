"""Skill-based routing: the policy (a typed :class:`RoutingPolicy`), its JSON file and its
use outside Dagster.

Pure functions (numpy / polars / pydantic); no Dagster here.

Slices. The policy routes with the inferred skill slices (optionally only some
``levels``, and only slices with at least ``min_slice_size`` training
instances) and, with ``metadata_slices=[column, ...]``, one slice per value of
each of those registry metadata columns (an instances column such as
``benchmark`` or a key of the metadata JSON such as ``category``), so what a
benchmark's authors labelled sits beside what the annotator inferred.
Metadata slices ignore ``levels``; their ids are ``meta:<column>=<value>``.

Three decision rules (``rule``):

* ``"paper"`` — Moayeri et al. 2024, DESIGN.md §7. For every model, average
  its accuracies on the instance's slices, weighted by ``1 / n``
  (``weighting="inverse_size"``; also ``"uniform"`` and ``"sqrt_inverse"`` =
  ``1 / sqrt(n)``), ``n`` being the slice's number of training instances.
  Each slice accuracy is shrunk toward a prior, beta-binomial style:
  ``(k + shrink * p_prior) / (n + shrink)``, where ``p_prior`` is the model's
  raw accuracy on the slice's parent slice, or its overall accuracy for a
  top-level slice. ``shrink=0`` is the paper's raw rule. With no usable
  slice, the default model (best overall) is chosen.
* ``"residual"`` — base plus shrunk deviations. The *base* of an instance is
  the model's accuracy on the instance's cell of the first metadata column
  (``metadata_slices[0]``, e.g. its category; shrunk toward the overall
  accuracy by ``shrink``), or the overall accuracy without metadata. Every
  other usable slice contributes its *deviation* from what the base predicts
  for its own members: ``dev = (k - E + shrink * dev_parent) / (n + shrink)``
  where ``E`` is the sum of the members' base accuracies and ``dev_parent =
  (k_p - E_p) / n_p`` is the parent's raw deviation (0 for a top-level
  slice), so a small, specific slice is shrunk toward its broader parent and
  a slice that merely restates the category adds nothing. The score is the
  base plus the weighted mean of the deviations. A skill slice pooled across
  categories is judged against the mix of categories it actually contains.

* ``"hierarchical"`` (the default, here and in the registry) — the residual
  rule as one empirical-Bayes hierarchy: a model's accuracy is shrunk from its
  overall accuracy to the instance's metadata cell (pseudo-count ``a_cell``), and
  each skill slice's deviation from what those cells predict for its members is
  shrunk toward 0 (pseudo-count ``a_skill``, no parent prior). Both pseudo-counts
  are estimated from the data by the method of moments (:func:`skill_assets.routing.engine._eb_pseudocounts`;
  ``pseudo_counts=`` overrides); a level whose heterogeneity is not significant
  (Cochran's Q, 5%) adds exactly nothing, so without real skill signal the
  policy is the metadata router, and without metadata the best single model.

Choice: the argmax of the scores; with ``costs`` ({model: cost per call}) and
``cost_lambda`` > 0, the argmax of ``score - cost_lambda * cost`` (accuracy
traded against money, ``cost_lambda`` in accuracy per cost unit). Ties (within
1e-9) go to the model with the higher overall training accuracy, then to the
alphabetically first.

The held-out evaluation of the policy and of the baselines is in
:mod:`skill_assets.routing.evaluation` (routers: :mod:`skill_assets.routing.routers`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, model_serializer

from skill_assets.analysis.accuracy import _results_core
from skill_assets.routing.common import (
    DEFAULT_RULE,
    META_PREFIX,
    NO_SIGNAL,
    _all_slices,
    _argmax_tiebreak,
    _check,
    _cost_vector,
    _metadata_values,
    _weights,
    metadata_slice_id,
)
from skill_assets.routing.engine import _eb_pseudocounts, _prepare

POLICY_FORMAT = "skill-slices/routing-policy"
POLICY_VERSION = 2


# --------------------------------------------------------------------------- the typed policy
# Field order is the order of the keys in routing_policy.json: keep it, the file is compared
# byte for byte.


class ModelTotals(BaseModel):
    """A model's results overall: count, correct count (scores summed), accuracy."""

    n: int
    n_correct: float
    accuracy: float


class CellCounts(BaseModel):
    """A model's results on one metadata cell of the base column."""

    n: int
    n_correct: float


class SliceModelStats(BaseModel):
    """A model's results on one slice; ``expected`` sums the members' base accuracies."""

    n: int
    n_correct: float
    accuracy: float
    expected: float = 0.0  # absent from version-1 files (paper rule, where it is unused)


class PolicySlice(BaseModel):
    """One slice of the policy: a skill slice, or (``kind`` metadata) one value of a column."""

    name: str
    level: int | None = None
    parent_id: str | None = None
    n: int
    kind: Literal["skill", "metadata"] = "skill"
    column: str | None = None  # metadata slices only
    value: str | None = None  # metadata slices only
    models: dict[str, SliceModelStats]

    @model_serializer(mode="wrap")
    def _skill_without_column(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if self.kind != "metadata":
            out.pop("column", None)
            out.pop("value", None)
        return out


class BaseCells(BaseModel):
    """The base column of the residual rules and each model's counts per value of it."""

    column: str | None = None
    cells: dict[str, dict[str, CellCounts]] = {}


class RoutingPolicy(BaseModel):
    """The fitted routing policy: what :func:`fit_policy` returns, :func:`save_policy`
    writes as ``routing_policy.json`` and :func:`load_policy` reads."""

    format: str = POLICY_FORMAT
    version: int = POLICY_VERSION
    models: list[str]
    default_model: str | None
    rule: Literal["paper", "residual", "hierarchical"] = "paper"  # version 1: the paper rule
    weighting: Literal["inverse_size", "uniform", "sqrt_inverse"]
    shrink: float = 0.0
    skill_shrink: float | None = None
    levels: list[int] | None = None
    min_slice_size: int = 1
    metadata_slices: list[str] | None = None
    costs: dict[str, float] | None = None
    cost_lambda: float = 0.0
    overall: dict[str, ModelTotals]
    base: BaseCells = BaseCells()
    skills: dict[str, PolicySlice]

    def to_json(self) -> str:
        """The JSON text of ``routing_policy.json``."""
        return json.dumps(self.model_dump(), indent=1, allow_nan=False)


# --------------------------------------------------------------------------- fitting


def fit_policy(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    levels: list[int] | None = None,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    min_slice_size: int = 30,
    rule: str = DEFAULT_RULE,
    metadata_slices: list[str] | None = None,
    costs: dict[str, float] | None = None,
    cost_lambda: float = 0.0,
    pseudo_counts: tuple[float, float] | None = None,
) -> RoutingPolicy:
    """Fit the routing policy on all results (:class:`RoutingPolicy`).

    With the hierarchical rule, ``shrink`` is replaced by the empirical-Bayes
    pseudo-counts (``pseudo_counts`` = (cell, skill) when given; stored as
    ``shrink`` and ``skill_shrink``).

    ``default_model`` is the best overall; ``overall`` holds every model's counts;
    ``base`` the counts per value of the first metadata column (column null without
    metadata slices); ``skills`` every slice with at least one result (parents are
    needed as priors), each with per-model counts and ``expected``, the sum over the
    slice's members of their base accuracy (see the module docstring). ``levels`` and
    ``min_slice_size`` are applied by :func:`route_skills`. ``instances`` (uid + the
    metadata columns) is needed for metadata slices.
    """
    _check(weighting, rule)
    meta_cols = list(dict.fromkeys(metadata_slices or []))
    skill_shrink = None
    if rule == "hierarchical":
        data = _prepare(results, slices, levels, instances, meta_cols)
        if pseudo_counts is not None:
            shrink, skill_shrink = (float(x) for x in pseudo_counts)
        elif data is not None:
            shrink, skill_shrink = _eb_pseudocounts(data, min_slice_size)
        else:
            shrink, skill_shrink = NO_SIGNAL, NO_SIGNAL
    core = _results_core(results).sort("model", "uid")
    models = sorted(core["model"].unique().to_list())
    overall = _overall(core)
    default_model = (
        sorted(models, key=lambda m: (-overall[m]["accuracy"], m))[0] if models else None
    )
    base_col = meta_cols[0] if meta_cols else None
    cells, core = _base(core, instances, base_col, models, overall, shrink)
    skills = _slice_entries(_all_slices(slices, instances, meta_cols), core)
    return RoutingPolicy.model_validate(
        {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION,
            "models": models,
            "default_model": default_model,
            "rule": rule,
            "weighting": weighting,
            "shrink": float(shrink),
            "skill_shrink": None if skill_shrink is None else float(skill_shrink),
            "levels": None if levels is None else [int(x) for x in levels],
            "min_slice_size": int(min_slice_size),
            "metadata_slices": meta_cols or None,
            "costs": None if not costs else {m: float(costs.get(m) or 0.0) for m in models},
            "cost_lambda": float(cost_lambda),
            "overall": overall,
            "base": {"column": base_col, "cells": cells},
            "skills": skills,
        }
    )


def _overall(core: pl.DataFrame) -> dict[str, dict]:
    """{model: {n, n_correct, accuracy}} over all results, models sorted: a group_by's
    order varies between runs, and the JSON file must be the same on every run."""
    overall = {}
    for row in (
        core.group_by("model")
        .agg(pl.len().alias("n"), pl.col("correct").sum().alias("k"))
        .sort("model")
        .iter_rows(named=True)
    ):
        overall[row["model"]] = {
            "n": int(row["n"]),
            "n_correct": float(row["k"]),
            "accuracy": float(row["k"] / row["n"]),
        }
    return overall


def _base(
    core: pl.DataFrame,
    instances: pl.DataFrame | None,
    base_col: str | None,
    models: list[str],
    overall: dict[str, dict],
    shrink: float,
) -> tuple[dict[str, dict], pl.DataFrame]:
    """The base column's counts ({value: {model: {n, n_correct}}}) and ``core`` with ``p``,
    each result's base accuracy (its cell's, shrunk toward the overall; else the overall)."""
    cells: dict[str, dict] = {}
    ov = pl.DataFrame(
        {"model": models, "ov": [overall[m]["accuracy"] for m in models]},
        schema={"model": pl.String, "ov": pl.Float64},
    )
    if base_col is None or not core.height:
        return cells, core.join(ov, on="model").rename({"ov": "p"})
    uids = core["uid"].unique()
    cell_of = pl.DataFrame(
        {
            "uid": uids,
            "cell": pl.Series(_metadata_values(instances, uids, base_col), dtype=pl.String),
        }
    )
    core = core.join(cell_of, on="uid", how="left")
    stats = (
        core.drop_nulls("cell")
        .group_by("cell", "model")
        .agg(pl.len().alias("n"), pl.col("correct").sum().alias("k"))
    )
    for c, m, n, k in stats.select("cell", "model", "n", "k").sort("cell", "model").iter_rows():
        cells.setdefault(c, {})[m] = {"n": int(n), "n_correct": float(k)}
    p = (
        stats.join(ov, on="model")
        .with_columns(
            pl.when(pl.col("n") + shrink > 0)
            .then((pl.col("k") + shrink * pl.col("ov")) / (pl.col("n") + shrink))
            .otherwise(pl.col("ov"))
            .alias("p")
        )
        .select("cell", "model", "p")
    )
    core = (
        core.join(p, on=["cell", "model"], how="left")
        .join(ov, on="model")
        .with_columns(pl.col("p").fill_null(pl.col("ov")))
        .drop("ov", "cell")
    )
    return cells, core


def _slice_entries(table: pl.DataFrame, core: pl.DataFrame) -> dict[str, dict]:
    """{skill_id: slice entry} for every slice of ``table`` with at least one result;
    ``core`` carries each result's base accuracy ``p``."""
    skills: dict[str, dict] = {}
    if not (table.height and core.height):
        return skills
    members = (
        table.select("skill_id", "uids")
        .filter(pl.col("uids").list.len() > 0)
        .explode("uids")
        .rename({"uids": "uid"})
        .drop_nulls()
    ).unique()
    # Sums in a fixed order, so the file is the same on every run (a join's row order
    # varies, and float sums follow it in the last digit).
    counts = (
        members.join(core, on="uid", how="inner")
        .sort("skill_id", "model", "uid")
        .group_by("skill_id", "model")
        .agg(
            pl.len().alias("n"),
            pl.col("correct").sum().alias("k"),
            pl.col("p").sum().alias("e"),
        )
    )
    sizes = (
        members.join(core.select("uid").unique(), on="uid", how="inner")
        .group_by("skill_id")
        .agg(pl.len().alias("n_total"))
    )
    per_model: dict[str, dict] = {}
    for sid, m, n, k, e in counts.select("skill_id", "model", "n", "k", "e").iter_rows():
        per_model.setdefault(sid, {})[m] = {
            "n": int(n),
            "n_correct": float(k),
            "accuracy": float(k / n),
            "expected": float(e),
        }
    n_total = dict(sizes.iter_rows())
    for sid, name, level, parent, mcol in table.select(
        "skill_id", "name", "level", "parent_id", "meta_column"
    ).iter_rows():
        if sid not in per_model:
            continue
        entry = {
            "name": name,
            "level": None if level is None else int(level),
            "parent_id": parent,
            "n": int(n_total[sid]),
            "kind": "skill" if mcol is None else "metadata",
        }
        if mcol is not None:
            entry["column"] = mcol
            entry["value"] = sid[len(META_PREFIX) + len(mcol) + 1 :]
        entry["models"] = dict(sorted(per_model[sid].items()))
        skills[sid] = entry
    return skills


# --------------------------------------------------------------------------- file


def save_policy(policy: RoutingPolicy, path: str | Path) -> Path:
    """Write the policy as JSON (UTF-8); returns the path."""
    from skill_assets.core.atomic import write_text

    return write_text(path, policy.to_json())


def load_policy(path: str | Path) -> RoutingPolicy:
    """Read a policy written by :func:`save_policy` (version 1 files load as the paper rule)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path}: not a skill-slices routing policy (format key missing)")
    return RoutingPolicy.model_validate(raw)


# --------------------------------------------------------------------------- routing one instance


def route_skills(
    skill_ids: list[str],
    policy: RoutingPolicy,
    metadata: dict | None = None,
    *,
    cost_lambda: float | None = None,
) -> dict:
    """Choose a model for an instance whose skills (slice ids) are ``skill_ids``.

    ``metadata`` ({column: value}) supplies the instance's values of the
    policy's ``metadata_slices`` columns (absent values are simply unknown).
    ``cost_lambda`` overrides the policy's.

    Returns ``{"model", "default_used", "scores": {model: score}, "utility":
    {model: score - lambda * cost}, "base": {model: base} (residual rule),
    "skills": [{skill_id, name, level, n, weight, accuracy: {model: raw},
    score: {model: shrunk accuracy (paper) or deviation (residual)}}]
    (heaviest first), "ignored_skills": [...]}``. Skills unknown to the
    policy, outside its levels or below its minimum size are ignored; with
    none left the default is the base (residual) or the overall accuracy.
    """
    models = policy.models
    residual = policy.rule in ("residual", "hierarchical")
    meta_cols = policy.metadata_slices or []
    base_col = meta_cols[0] if (residual and meta_cols) else None
    lam = float(policy.cost_lambda if cost_lambda is None else cost_lambda)
    cost = _cost_vector(models, policy.costs)
    metadata = metadata or {}
    ids = list(skill_ids) + [
        metadata_slice_id(c, metadata[c]) for c in meta_cols if metadata.get(c) is not None
    ]
    used, ignored = _usable(ids, policy, base_col)
    overall_acc = np.array([policy.overall[m].accuracy for m in models])
    base = overall_acc.copy()
    if residual and base_col is not None and metadata.get(base_col) is not None:
        cell = policy.base.cells.get(str(metadata[base_col]), {})
        shrink = policy.shrink
        for j, m in enumerate(models):
            c = cell.get(m)
            if c is not None and c.n + shrink > 0 and shrink < NO_SIGNAL:
                base[j] = (c.n_correct + shrink * overall_acc[j]) / (c.n + shrink)
    num = np.zeros(len(models))
    den = 0.0
    details: list[dict[str, Any]] = []
    for sid in used:
        s = policy.skills[sid]
        w = float(_weights(np.array([s.n]), policy.weighting)[0])
        raw, val = _slice_scores(policy, s, overall_acc)
        num += w * np.array([val[m] for m in models])
        den += w
        details.append(
            {
                "skill_id": sid,
                "name": s.name,
                "level": s.level,
                "n": s.n,
                "weight": w,
                "accuracy": raw,
                "score": val,
            }
        )
    if residual:
        scores = base + (num / den if den > 0 else 0.0)
    else:
        scores = num / den if den > 0 else overall_acc
    utility = scores - lam * cost if (cost is not None and lam) else scores
    choice = int(_argmax_tiebreak(utility[None, :], overall_acc[None, :])[0])
    details.sort(key=lambda d: -d["weight"])
    out = {
        "model": models[choice],
        "default_used": not used,
        "scores": {m: float(x) for m, x in zip(models, scores, strict=True)},
        "utility": {m: float(x) for m, x in zip(models, utility, strict=True)},
        "skills": details,
        "ignored_skills": ignored,
    }
    if residual:
        out["base"] = {m: float(x) for m, x in zip(models, base, strict=True)}
    return out


def _usable(
    ids: list[str], policy: RoutingPolicy, base_col: str | None
) -> tuple[list[str], list[str]]:
    """(slices that route, ignored skill ids): unknown, outside the levels, or too small.
    Unknown metadata values and the base column's slices are neither."""
    used: list[str] = []
    ignored: list[str] = []
    for sid in dict.fromkeys(ids):
        s = policy.skills.get(sid)
        if s is None:
            if not sid.startswith(META_PREFIX):
                ignored.append(sid)
            continue
        if s.kind == "metadata":
            if s.column == base_col:
                continue  # the base, not a deviation
            ok = s.n >= policy.min_slice_size
        else:
            levels = policy.levels
            ok = (levels is None or s.level in levels) and s.n >= policy.min_slice_size
        (used if ok else ignored).append(sid)
    return used, ignored


_EMPTY = SliceModelStats(n=0, n_correct=0.0, accuracy=0.0, expected=0.0)


def _slice_scores(
    policy: RoutingPolicy, s: PolicySlice, overall_acc: np.ndarray
) -> tuple[dict[str, float | None], dict[str, float]]:
    """({model: raw accuracy}, {model: value}) of one slice: the shrunk accuracy (paper
    rule) or the shrunk deviation from the base (residual rules)."""
    parent = policy.skills.get(s.parent_id) if s.parent_id else None
    shrink = policy.shrink
    a_skill = shrink if policy.skill_shrink is None else policy.skill_shrink
    raw: dict[str, float | None] = {}
    val: dict[str, float] = {}
    for j, m in enumerate(policy.models):
        c = s.models.get(m, _EMPTY)
        pc = _EMPTY if parent is None else parent.models.get(m, _EMPTY)
        raw[m] = c.n_correct / c.n if c.n > 0 else None
        if policy.rule == "hierarchical":
            denom = c.n + a_skill
            ok = denom > 0 and a_skill < NO_SIGNAL
            v = (c.n_correct - c.expected) / denom if ok else 0.0
        elif policy.rule == "residual":
            pdev = (pc.n_correct - pc.expected) / pc.n if pc.n > 0 else 0.0
            denom = c.n + shrink
            v = (c.n_correct - c.expected + shrink * pdev) / denom if denom > 0 else 0.0
        else:
            prior = pc.n_correct / pc.n if pc.n > 0 else overall_acc[j]
            denom = c.n + shrink
            v = (c.n_correct + shrink * prior) / denom if denom > 0 else prior
        val[m] = float(v)
    return raw, val
