"""Skill-based routing: the policy, its use outside Dagster, and its held-out evaluation.

Pure functions (numpy / scipy.sparse / polars); no Dagster here.

Slices. The policy routes with the inferred skill slices (optionally only some
``levels``, and only slices with at least ``min_slice_size`` training
instances) and, with ``metadata_slices=[column, ...]``, one slice per value of
each of those registry metadata columns (an instances column such as
``benchmark`` or a key of the metadata JSON such as ``category``), so what a
benchmark's authors labelled sits beside what the annotator inferred.
Metadata slices ignore ``levels``; their ids are ``meta:<column>=<value>``.

Two decision rules (``rule``):

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
  are estimated from the data by the method of moments (:func:`_eb_pseudocounts`;
  ``pseudo_counts=`` overrides); a level whose heterogeneity is not significant
  (Cochran's Q, 5%) adds exactly nothing, so without real skill signal the
  policy is the metadata router, and without metadata the best single model.

Choice: the argmax of the scores; with ``costs`` ({model: cost per call}) and
``cost_lambda`` > 0, the argmax of ``score - cost_lambda * cost`` (accuracy
traded against money, ``cost_lambda`` in accuracy per cost unit). Ties (within
1e-9) go to the model with the higher overall training accuracy, then to the
alphabetically first.

Held-out evaluation never lets an instance see its own result:

* ``loo`` — leave-one-out: every count (slice, parent, base cell, overall,
  expected counts) is what a policy fitted without the instance would hold.
* ``kfold`` — counts come from the other folds only.
* ``lobo`` — leave-one-benchmark-out: counts come from the other benchmarks
  only (only when there is more than one benchmark).

All three are "subtract the held-out group's counts", done on the sparse
instance x slice membership; the engine is tested to equal refitting
:func:`fit_policy` on the training part and calling :func:`route_skills`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from skill_assets.analysis.accuracy import _results_core

WEIGHTINGS = ("inverse_size", "uniform", "sqrt_inverse")
RULES = ("paper", "residual", "hierarchical")
DEFAULT_RULE = "hierarchical"  # the registry's default too (registry.RoutingEntry.rule)
# A pseudo-count this large means "no evidence of between-group differences": the level
# adds nothing beyond its prior. Finite so the policy stays plain JSON.
NO_SIGNAL = 1e9
POLICY_FORMAT = "skill-slices/routing-policy"
POLICY_VERSION = 2
META_PREFIX = "meta:"
TIE_TOL = 1e-9

ROUTING_EVALUATION = {
    "router": pl.String,
    "scheme": pl.String,  # loo | kfold | lobo
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n": pl.Int64,
    "gain_vs_best_single": pl.Float64,
    "gain_ci_low": pl.Float64,
    "gain_ci_high": pl.Float64,
    "mean_cost": pl.Float64,  # mean cost per instance (null without costs)
}


# --------------------------------------------------------------------------- small helpers


def _check(weighting: str, rule: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _weights(n: np.ndarray, weighting: str) -> np.ndarray:
    """Slice weights from training sizes ``n`` (0 where n <= 0)."""
    n = np.asarray(n, dtype=float)
    pos = n > 0
    safe = np.where(pos, n, 1.0)
    if weighting == "inverse_size":
        w = 1.0 / safe
    elif weighting == "uniform":
        w = np.ones_like(safe)
    elif weighting == "sqrt_inverse":
        w = 1.0 / np.sqrt(safe)
    else:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return np.where(pos, w, 0.0)


def _argmax_tiebreak(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``scores``; ties (within TIE_TOL) by larger ``tiebreak``, then lowest index."""
    top = np.max(scores, axis=1, keepdims=True)
    cand = scores >= top - TIE_TOL
    tb = np.max(np.where(cand, tiebreak, -np.inf), axis=1, keepdims=True)
    return np.argmax(cand & (tiebreak >= tb - TIE_TOL), axis=1)


def _cost_vector(models: list[str], costs: dict | None) -> np.ndarray | None:
    """Cost per call for each model (missing or None -> 0); None without costs."""
    if not costs:
        return None
    return np.array([float(costs.get(m) or 0.0) for m in models])


def metadata_slice_id(column: str, value) -> str:
    """The slice id of one metadata value: ``meta:<column>=<value>``."""
    return f"{META_PREFIX}{column}={value}"


def _metadata_values(instances: pl.DataFrame | None, uids: pl.Series, column: str) -> list:
    """Value of ``column`` per uid: an instances column, or a key of its metadata JSON."""
    if instances is None or instances.height == 0:
        return [None] * uids.len()
    if column in instances.columns and column != "metadata":
        vals = instances.select("uid", pl.col(column).cast(pl.String).alias("_v"))
    elif "metadata" in instances.columns:
        parsed = []
        for m in instances["metadata"].to_list():
            v = json.loads(m).get(column) if m else None
            parsed.append(None if v is None else (v if isinstance(v, str) else json.dumps(v)))
        vals = pl.DataFrame({"uid": instances["uid"], "_v": pl.Series(parsed, dtype=pl.String)})
    else:
        return [None] * uids.len()
    vals = vals.unique("uid", keep="first")
    return pl.DataFrame({"uid": uids}).join(vals, on="uid", how="left")["_v"].to_list()


def metadata_slices(instances: pl.DataFrame | None, columns: list[str] | None) -> pl.DataFrame:
    """One slice per (column, value) of ``instances``; missing values make no slice.

    Columns: skill_id (``meta:<column>=<value>``), name (``<column>: <value>``),
    level (null), parent_id (null), uids, meta_column.
    """
    schema = {
        "skill_id": pl.String,
        "name": pl.String,
        "level": pl.Int64,
        "parent_id": pl.String,
        "uids": pl.List(pl.String),
        "meta_column": pl.String,
    }
    if instances is None or instances.height == 0 or not columns:
        return pl.DataFrame(schema=schema)
    uids = instances["uid"].cast(pl.String).unique(maintain_order=True)
    frames = []
    for col in dict.fromkeys(columns):
        vals = _metadata_values(instances, uids, col)
        df = (
            pl.DataFrame({"uid": uids, "v": pl.Series(vals, dtype=pl.String)})
            .drop_nulls("v")
            .group_by("v", maintain_order=True)
            .agg(pl.col("uid").alias("uids"))
            .sort("v")
        )
        frames.append(
            df.select(
                pl.format("{}{}={}", pl.lit(META_PREFIX), pl.lit(col), "v").alias("skill_id"),
                pl.format("{}: {}", pl.lit(col), "v").alias("name"),
                pl.lit(None, dtype=pl.Int64).alias("level"),
                pl.lit(None, dtype=pl.String).alias("parent_id"),
                "uids",
                pl.lit(col, dtype=pl.String).alias("meta_column"),
            )
        )
    return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)


def _all_slices(
    slices: pl.DataFrame, instances: pl.DataFrame | None, columns: list[str] | None
) -> pl.DataFrame:
    """Skill slices (meta_column null) followed by the metadata slices; one row per id."""
    skill = (
        slices.select(
            pl.col("skill_id").cast(pl.String),
            pl.col("name").cast(pl.String),
            pl.col("level").cast(pl.Int64),
            pl.col("parent_id").cast(pl.String),
            pl.col("uids").cast(pl.List(pl.String)),
            pl.lit(None, dtype=pl.String).alias("meta_column"),
        )
        if slices.height
        else metadata_slices(None, None)
    )
    out = pl.concat([skill, metadata_slices(instances, columns)])
    return out.unique("skill_id", keep="first", maintain_order=True)


# --------------------------------------------------------------------------- policy


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
) -> dict:
    """Fit the routing policy on all results: a JSON-serialisable dict.

    With the hierarchical rule, ``shrink`` is replaced by the empirical-Bayes
    pseudo-counts (``pseudo_counts`` = (cell, skill) when given; stored as
    ``shrink`` and ``skill_shrink``).

    Keys: ``format``, ``version``, ``models`` (sorted), ``default_model`` (best
    overall accuracy), ``rule``, ``weighting``, ``shrink``, ``levels``,
    ``min_slice_size``, ``metadata_slices``, ``costs``, ``cost_lambda``,
    ``overall`` ({model: {n, n_correct, accuracy}}), ``base`` ({column,
    cells: {value: {model: {n, n_correct}}}}; column null without metadata
    slices) and ``skills`` ({skill_id: {name, level, parent_id, n, kind
    ("skill" | "metadata"), [column, value,] models: {model: {n, n_correct,
    accuracy, expected}}}}), where ``expected`` is the sum over the slice's
    members of their base accuracy (see the module docstring). Every slice
    with at least one result is stored (parents are needed as priors);
    ``levels`` and ``min_slice_size`` are applied by :func:`route_skills`.
    ``instances`` (uid + the metadata columns) is needed for metadata slices.
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
    core = _results_core(results)
    models = sorted(core["model"].unique().to_list())
    overall = {}
    for row in (
        core.group_by("model")
        .agg(pl.len().alias("n"), pl.col("correct").sum().alias("k"))
        .iter_rows(named=True)
    ):
        overall[row["model"]] = {
            "n": int(row["n"]),
            "n_correct": float(row["k"]),
            "accuracy": float(row["k"] / row["n"]),
        }
    default_model = (
        sorted(models, key=lambda m: (-overall[m]["accuracy"], m))[0] if models else None
    )
    base_col = meta_cols[0] if meta_cols else None
    cells: dict[str, dict] = {}
    ov = pl.DataFrame(
        {"model": models, "ov": [overall[m]["accuracy"] for m in models]},
        schema={"model": pl.String, "ov": pl.Float64},
    )
    if base_col is not None and core.height:
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
    else:
        core = core.join(ov, on="model").rename({"ov": "p"})
    skills: dict[str, dict] = {}
    table = _all_slices(slices, instances, meta_cols)
    if table.height and core.height:
        members = (
            table.select("skill_id", "uids")
            .filter(pl.col("uids").list.len() > 0)
            .explode("uids")
            .rename({"uids": "uid"})
            .drop_nulls()
        ).unique()
        counts = (
            members.join(core, on="uid", how="inner")
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
    return {
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


def save_policy(policy: dict, path: str | Path) -> Path:
    """Write the policy as JSON (UTF-8); returns the path."""
    from skill_assets.core.atomic import write_text

    return write_text(path, json.dumps(policy, indent=1, allow_nan=False))


def load_policy(path: str | Path) -> dict:
    """Read a policy written by :func:`save_policy` (version 1 files load as the paper rule)."""
    policy = json.loads(Path(path).read_text(encoding="utf-8"))
    if policy.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path}: not a skill-slices routing policy (format key missing)")
    policy.setdefault("rule", "paper")
    policy.setdefault("metadata_slices", None)
    policy.setdefault("costs", None)
    policy.setdefault("cost_lambda", 0.0)
    policy.setdefault("base", {"column": None, "cells": {}})
    return policy


def route_skills(
    skill_ids: list[str],
    policy: dict,
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
    models = policy["models"]
    overall = policy["overall"]
    skills = policy["skills"]
    levels = policy.get("levels")
    shrink = float(policy.get("shrink", 0.0))
    min_n = int(policy.get("min_slice_size", 1))
    rule = policy.get("rule", "paper")
    meta_cols = policy.get("metadata_slices") or []
    residual = rule in ("residual", "hierarchical")
    base_col = meta_cols[0] if (residual and meta_cols) else None
    a_skill = shrink if policy.get("skill_shrink") is None else float(policy["skill_shrink"])
    lam = float(policy.get("cost_lambda", 0.0) if cost_lambda is None else cost_lambda)
    cost = _cost_vector(models, policy.get("costs"))
    metadata = metadata or {}
    ids = list(skill_ids) + [
        metadata_slice_id(c, metadata[c]) for c in meta_cols if metadata.get(c) is not None
    ]
    used, ignored = [], []
    for sid in dict.fromkeys(ids):
        s = skills.get(sid)
        if s is None:
            if not sid.startswith(META_PREFIX):
                ignored.append(sid)
            continue
        if s.get("kind") == "metadata":
            if s.get("column") == base_col:
                continue  # the base, not a deviation
            ok = s["n"] >= min_n
        else:
            ok = (levels is None or s["level"] in levels) and s["n"] >= min_n
        (used if ok else ignored).append(sid)
    overall_acc = np.array([overall[m]["accuracy"] for m in models])

    def _cell(s: dict | None, m: str) -> dict:
        return (s or {}).get("models", {}).get(m) or {"n": 0, "n_correct": 0.0, "expected": 0.0}

    base = overall_acc.copy()
    if residual and base_col is not None and metadata.get(base_col) is not None:
        cell = policy.get("base", {}).get("cells", {}).get(str(metadata[base_col]), {})
        for j, m in enumerate(models):
            c = cell.get(m)
            if c and c["n"] + shrink > 0 and shrink < NO_SIGNAL:
                base[j] = (c["n_correct"] + shrink * overall_acc[j]) / (c["n"] + shrink)
    num = np.zeros(len(models))
    den = 0.0
    details = []
    for sid in used:
        s = skills[sid]
        parent = skills.get(s["parent_id"]) if s.get("parent_id") else None
        w = float(_weights(np.array([s["n"]]), policy["weighting"])[0])
        raw, val = {}, {}
        for j, m in enumerate(models):
            c = _cell(s, m)
            pc = _cell(parent, m)
            raw[m] = c["n_correct"] / c["n"] if c["n"] > 0 else None
            if rule == "hierarchical":
                denom = c["n"] + a_skill
                ok = denom > 0 and a_skill < NO_SIGNAL
                v = (c["n_correct"] - c["expected"]) / denom if ok else 0.0
            elif rule == "residual":
                pdev = (pc["n_correct"] - pc["expected"]) / pc["n"] if pc["n"] > 0 else 0.0
                denom = c["n"] + shrink
                v = (c["n_correct"] - c["expected"] + shrink * pdev) / denom if denom > 0 else 0.0
            else:
                prior = pc["n_correct"] / pc["n"] if pc["n"] > 0 else overall_acc[j]
                denom = c["n"] + shrink
                v = (c["n_correct"] + shrink * prior) / denom if denom > 0 else prior
            val[m] = float(v)
            num[j] += w * v
        den += w
        details.append(
            {
                "skill_id": sid,
                "name": s["name"],
                "level": s["level"],
                "n": s["n"],
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


# --------------------------------------------------------------------------- evaluation engine


def _heldout_overall(C: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Per instance and model, the overall accuracy without the instance's held-out group."""
    n = C.shape[0]
    k_tot = C.sum(axis=0)
    if groups is None:
        ov_k = k_tot[None, :] - C
        ov_n = np.full(n, n - 1.0)
    else:
        n_groups = int(groups.max()) + 1
        gk = np.zeros((n_groups, C.shape[1]))
        np.add.at(gk, groups, C)
        gn = np.bincount(groups, minlength=n_groups).astype(float)
        ov_k = k_tot[None, :] - gk[groups]
        ov_n = n - gn[groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ov_n[:, None] > 0, ov_k / np.maximum(ov_n, 1e-300)[:, None], 0.0)


class _Heldout:
    """Held-out counts for (instance, slice) pairs under one scheme.

    ``groups`` None is leave-one-out (the pair's instance is removed from the
    slice when it is a member, ``inside``); otherwise the instance's whole
    group is removed. With ``cell`` (base partition code per instance, -1 =
    missing) it also gives the held-out expected count ``E`` of a slice: the
    sum over its training members of their training base accuracy.
    """

    def __init__(self, C, member, groups, cell=None, n_cells=0, shrink=0.0):
        self.C, self.member, self.groups = C, member, groups
        n, n_models = C.shape
        self.K = np.asarray(member @ C)
        self.N = np.asarray(member.sum(axis=1)).ravel()
        self.overall = _heldout_overall(C, groups)
        self.tau = float(shrink)
        self.cell = cell
        n_cells = max(int(n_cells), 1)
        n_slices = member.shape[0]
        if groups is not None:
            ng = int(groups.max()) + 1 if groups.size else 0
            self.KG = np.zeros((ng, n_slices, n_models))
            self.NG = np.zeros((ng, n_slices))
            for g in range(ng):
                sel = groups == g
                self.KG[g] = np.asarray(member[:, sel] @ C[sel])
                self.NG[g] = np.asarray(member[:, sel].sum(axis=1)).ravel()
        if cell is None:
            return
        tau = self.tau
        has = cell >= 0
        Kc = np.zeros((n_cells, n_models))
        np.add.at(Kc, cell[has], C[has])
        Nc = np.bincount(cell[has], minlength=n_cells).astype(float)
        self.base = self.overall.copy()
        if groups is None:
            Z = sp.csr_matrix(
                (np.ones(int(has.sum())), (np.flatnonzero(has), cell[has])), shape=(n, n_cells)
            )
            self.nsc = (member @ Z).tocsr()
            self.nmiss = np.asarray(member @ (~has).astype(float)).ravel()
            d1 = Nc + tau
            inv = np.where(d1 > 0, 1.0 / np.where(d1 > 0, d1, 1.0), 0.0)
            self.A = np.asarray(self.nsc @ (Kc * inv[:, None]))
            self.D = np.asarray(self.nsc @ inv).ravel()
            self.Kc, self.Nc = Kc, Nc
            ci = np.where(has, cell, 0)
            d2 = Nc[ci] - 1 + tau
            ok = has & (d2 > 0)
            self.base[ok] = (Kc[ci[ok]] - C[ok] + tau * self.overall[ok]) / d2[ok, None]
        else:
            ng = self.KG.shape[0]
            self.EG = np.zeros((ng, n_slices, n_models))
            for g in range(ng):
                sel = groups == g
                hs = has & sel
                Kg = np.zeros((n_cells, n_models))
                np.add.at(Kg, cell[hs], C[hs])
                Ng = np.bincount(cell[hs], minlength=n_cells).astype(float)
                n_tr = n - sel.sum()
                ov = (C.sum(axis=0) - C[sel].sum(axis=0)) / n_tr if n_tr > 0 else np.zeros(n_models)
                d = Nc - Ng + tau
                p = np.where(
                    d[:, None] > 0, (Kc - Kg + tau * ov) / np.where(d > 0, d, 1.0)[:, None], ov
                )
                b = np.where(has[:, None], p[np.where(has, cell, 0)], ov)
                self.base[sel] = b[sel]
                b[sel] = 0.0
                self.EG[g] = np.asarray(member @ b)

    def counts(self, i, s, inside):
        """Held-out (k: pairs x models, n: pairs) of slice ``s`` for instance ``i``."""
        if self.groups is None:
            return self.K[s] - inside[:, None] * self.C[i], self.N[s] - inside
        g = self.groups[i]
        return self.K[s] - self.KG[g, s], self.N[s] - self.NG[g, s]

    def expected(self, i, s, inside):
        """Held-out expected count of slice ``s`` (pairs x models) for instance ``i``."""
        if self.groups is not None:
            return self.EG[self.groups[i], s]
        tau, C, cell = self.tau, self.C, self.cell
        ci = cell[i]
        has = ci >= 0
        cc = np.where(has, ci, 0)
        ne = np.asarray(self.nsc[s, cc]).ravel() * has if s.size else np.zeros(0)
        d1 = self.Nc[cc] + tau
        d2 = self.Nc[cc] - 1 + tau
        rest = has * (ne - inside)  # training members of s in the instance's own cell
        r2 = np.where(d2 > 0, rest / np.where(d2 > 0, d2, 1.0), 0.0)
        q1 = np.where(d1 > 0, has * ne / np.where(d1 > 0, d1, 1.0), 0.0)
        A = self.A[s] - q1[:, None] * self.Kc[cc] + r2[:, None] * (self.Kc[cc] - C[i])
        D = self.D[s] - q1 + r2
        miss = self.nmiss[s] - inside * (~has)
        ov = self.overall[i]
        return A + tau * ov * D[:, None] + ov * miss[:, None]


def _inside(rows: np.ndarray, cols: np.ndarray, i: np.ndarray, s: np.ndarray, n_slices: int):
    """1.0 where instance i is a member of slice s (pairs), else 0.0."""
    keys = np.sort(rows.astype(np.int64) * n_slices + cols)
    q = i.astype(np.int64) * n_slices + s
    if keys.size == 0:
        return np.zeros(q.size)
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return (keys[pos] == q).astype(float)


def _policy_scores(
    C: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    n_slices: int,
    parent: np.ndarray,
    usable: np.ndarray,
    groups: np.ndarray | None,
    weighting: str,
    shrink: float,
    min_slice_size: int,
    rule: str = "paper",
    cell: np.ndarray | None = None,
    n_cells: int = 0,
    skill_shrink: float | None = None,
):
    """Held-out policy scores: ``(scores, has, overall)``, each instance x model.

    ``rows``/``cols`` are the membership entries (instance i is in slice s);
    ``parent[s]`` the parent slice index or -1; ``usable[s]`` whether slice s
    may route; ``groups`` None for leave-one-out or an integer held-out group
    per instance; ``cell`` the base partition code per instance (residual
    rule; -1 missing). ``has`` is False where no slice applied (paper rule:
    the caller falls back to ``overall``).
    """
    n_inst, n_models = C.shape
    member = sp.csr_matrix(
        (np.ones(rows.size), (cols, rows)), shape=(n_slices, n_inst), dtype=np.float64
    )
    residual = rule in ("residual", "hierarchical")
    if residual and cell is None:
        cell, n_cells = np.zeros(n_inst, dtype=np.int64), 0
        cell[:] = -1
    H = _Heldout(C, member, groups, cell if residual else None, n_cells, shrink)
    overall = H.overall
    if rows.size == 0:
        if residual:
            return (overall if H.tau >= NO_SIGNAL else H.base), np.ones(n_inst, bool), overall
        return overall.copy(), np.zeros(n_inst, bool), overall
    ones = np.ones(rows.size)
    k_e, n_e = H.counts(rows, cols, ones)
    w = _weights(n_e, weighting) * usable[cols] * (n_e >= max(min_slice_size, 1))
    live = np.flatnonzero(w > 0)
    r, c, k_e, n_e, w = rows[live], cols[live], k_e[live], n_e[live], w[live]
    par = parent[c]
    e = np.flatnonzero(par >= 0)
    p = par[e]
    ins_p = _inside(rows, cols, r[e], p, n_slices) if groups is None else None
    if residual:
        E = H.expected(r, c, np.ones(r.size))
        pdev = np.zeros_like(k_e)
        if rule == "hierarchical":  # shrunk toward the base (deviation 0), EB pseudo-count
            a = float(shrink if skill_shrink is None else skill_shrink)
            e = e[:0]
        else:
            a = shrink
        if e.size:
            kp, np_ = H.counts(r[e], p, ins_p)
            Ep = H.expected(r[e], p, ins_p)
            ok = np_ > 0
            pdev[e[ok]] = (kp[ok] - Ep[ok]) / np_[ok, None]
        val = (k_e - E + a * pdev) / (n_e + a)[:, None]
        if a >= NO_SIGNAL:  # exactly nothing, so ties stay ties
            val = np.zeros_like(val)
    else:
        prior = overall[r].copy()
        if e.size:
            kp, np_ = H.counts(r[e], p, ins_p)
            ok = np_ > 0
            prior[e[ok]] = kp[ok] / np_[ok, None]
        val = (k_e + shrink * prior) / (n_e + shrink)[:, None]
    den = np.bincount(r, weights=w, minlength=n_inst)
    num = np.stack(
        [np.bincount(r, weights=w * val[:, m], minlength=n_inst) for m in range(n_models)],
        axis=1,
    )
    has = den > 0
    mean = np.where(has[:, None], num / np.where(has, den, 1.0)[:, None], 0.0)
    if residual:
        base = overall if H.tau >= NO_SIGNAL else H.base
        return base + mean, np.ones(n_inst, bool), overall
    return np.where(has[:, None], mean, overall), has, overall


def _choose(scores, has, overall, cost=None, lam: float = 0.0) -> np.ndarray:
    """Model index per instance: argmax of score - lam * cost (overall where no slice)."""
    util = np.where(has[:, None], scores, overall)
    if cost is not None and lam:
        util = util - lam * cost[None, :]
    return _argmax_tiebreak(util, overall)


def _best_single(C: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Held-out best overall model per instance."""
    ov = _heldout_overall(C, groups)
    return _argmax_tiebreak(ov, np.zeros_like(ov))


def _knn_choices(
    C: np.ndarray,
    vecs: np.ndarray,
    has_vec: np.ndarray,
    scheme_groups: dict[str, np.ndarray | None],
    k: int,
    fallbacks: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per scheme, pick per instance the model most accurate on its k nearest questions.

    Cosine similarity; neighbours never include the question itself (``loo``,
    groups None) or its held-out group. One similarity block per chunk of
    queries serves every scheme: the top ``4k + 32`` candidates are taken once
    and filtered per scheme; rows left with fewer than k allowed candidates
    (e.g. when the held-out group is a whole benchmark) fall back to an exact
    masked search. Instances without a vector keep the scheme's fallback.
    """
    n, n_models = C.shape
    choices = {s: fallbacks[s].copy() for s in scheme_groups}
    idx = np.flatnonzero(has_vec)
    if idx.size < 2 or not scheme_groups:
        return choices
    X = vecs[idx].astype(np.float32)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    Cv = C[idx]
    m = idx.size
    kk = min(k, m - 1)
    n_cand = min(m, 4 * kk + 32)
    labels = {
        s: (np.arange(m) if g is None else g[idx]) for s, g in scheme_groups.items()
    }  # a neighbour is allowed when its label differs from the query's
    overall = {s: _heldout_overall(C, g)[idx] for s, g in scheme_groups.items()}
    chunk = max(1, min(2048, int(2e8 // max(m * 4, 1))))
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        local = np.arange(start, stop)
        sims = X[start:stop] @ X.T
        cand = np.argpartition(sims, m - n_cand, axis=1)[:, m - n_cand :]
        cs = np.take_along_axis(sims, cand, axis=1)
        cand = np.take_along_axis(cand, np.argsort(-cs, axis=1, kind="stable"), axis=1)
        for s, lab in labels.items():
            allowed = lab[cand] != lab[local][:, None]
            take = allowed & (np.cumsum(allowed, axis=1) <= kk)
            cnt = take.sum(axis=1)
            acc = (Cv[cand] * take[:, :, None]).sum(axis=1) / np.maximum(cnt, 1)[:, None]
            short = np.flatnonzero(cnt < kk)
            if short.size:  # exact masked search for these rows
                sub = sims[short].copy()
                sub[lab[local[short]][:, None] == lab[None, :]] = -np.inf
                nb = np.argpartition(sub, m - kk, axis=1)[:, m - kk :]
                valid = np.isfinite(np.take_along_axis(sub, nb, axis=1))
                cnt[short] = valid.sum(axis=1)
                acc[short] = (Cv[nb] * valid[:, :, None]).sum(axis=1) / np.maximum(cnt[short], 1)[
                    :, None
                ]
            pick = _argmax_tiebreak(acc, overall[s][local])
            rows = idx[local]
            choices[s][rows] = np.where(cnt > 0, pick, fallbacks[s][rows])
    return choices


def _majority_vote(core: pl.DataFrame, uids: pl.Series, C: np.ndarray) -> np.ndarray:
    """Per-instance correctness of a majority vote.

    With ``parsed_answer`` for every result (null counts as an abstention of a
    wrong result): plurality over the parsed answers; an answer counts as correct
    when some model giving it was correct; ties among the top answers count
    as the expected value of a random tie-break. Without parsed answers (only
    ``correct`` known): correct iff more than half of the models are correct
    — the plurality outcome when wrong answers all differ (ties count 0.5).
    Scores are binarised at >= 0.5.
    """
    n_models = C.shape[1]
    right = (C >= 0.5).sum(axis=1)
    fallback = np.where(2 * right > n_models, 1.0, np.where(2 * right == n_models, 0.5, 0.0))
    if "parsed_answer" not in core.columns:
        return fallback
    bad = core.filter(pl.col("parsed_answer").is_null() & (pl.col("correct") >= 0.5)).height
    if bad or core["parsed_answer"].null_count() == core.height:
        return fallback
    votes = (
        core.drop_nulls("parsed_answer")
        .with_columns(pl.col("parsed_answer").str.strip_chars())
        .group_by("uid", "parsed_answer")
        .agg(pl.len().alias("votes"), (pl.col("correct") >= 0.5).any().alias("ok"))
        .with_columns(pl.col("votes").max().over("uid").alias("top"))
        .filter(pl.col("votes") == pl.col("top"))
        .group_by("uid")
        .agg(pl.col("ok").mean().alias("value"))
    )
    value = pl.DataFrame({"uid": uids}).join(votes, on="uid", how="left")["value"]
    return value.fill_null(0.0).to_numpy().astype(float)


def _bootstrap_counts(n: int, n_boot: int, seed: int, chunk: int = 200):
    """Yield (b x n) resampling count matrices, ``n_boot`` resamples in total."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float32)
        done += b


@dataclass
class _Data:
    """Evaluation inputs as arrays: instances that every model answered."""

    models: list[str]
    uids: pl.Series
    core: pl.DataFrame  # uid, model, correct[, parsed_answer, benchmark] on those instances
    C: np.ndarray  # instance x model scores
    n_slices: int
    rows: np.ndarray  # membership entries: instance index ...
    cols: np.ndarray  # ... and slice index
    parent: np.ndarray  # parent slice index per slice, -1 if none
    usable: np.ndarray  # 1.0 for slices allowed to route (levels; metadata slices)
    usable_residual: np.ndarray  # same, without the base column's metadata slices
    cell: np.ndarray  # base partition code per instance (-1 = no value)
    n_cells: int


def _prepare(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    levels: list[int] | None,
    instances: pl.DataFrame | None = None,
    metadata_slices: list[str] | None = None,
) -> _Data | None:
    keep = [c for c in ("parsed_answer", "benchmark") if c in results.columns]
    core = (
        results.select(
            pl.col("uid").cast(pl.String),
            pl.col("model").cast(pl.String),
            pl.col("correct").cast(pl.Float64),
            *[pl.col(c).cast(pl.String) for c in keep],
        )
        .filter(pl.col("correct").is_not_null())
        .unique(["uid", "model"], keep="first")
    )
    models = sorted(core["model"].unique().to_list())
    if not models:
        return None
    common = (
        core.group_by("uid")
        .agg(pl.col("model").n_unique().alias("k"))
        .filter(pl.col("k") == len(models))
    )
    core = core.join(common.select("uid"), on="uid", how="semi")
    uids = common["uid"].sort()
    n = uids.len()
    if n < 2:
        return None
    uid_idx = pl.DataFrame({"uid": uids, "i": np.arange(n, dtype=np.int64)})
    m_idx = pl.DataFrame({"model": models, "m": np.arange(len(models), dtype=np.int64)})
    cm = core.join(uid_idx, on="uid").join(m_idx, on="model")
    C = np.zeros((n, len(models)))
    C[cm["i"].to_numpy(), cm["m"].to_numpy()] = cm["correct"].to_numpy()
    meta_cols = list(dict.fromkeys(metadata_slices or []))
    table = _all_slices(slices, instances, meta_cols)
    s_idx = table.select("skill_id", "parent_id", "level", "meta_column").with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("s")
    )
    mem = (
        table.select("skill_id", "uids")
        .filter(pl.col("uids").list.len() > 0)
        .explode("uids")
        .rename({"uids": "uid"})
        .drop_nulls("uid")
        .unique()
        .join(s_idx.select("skill_id", "s"), on="skill_id")
        .join(uid_idx, on="uid")
    )
    parent = (
        s_idx.join(
            s_idx.select(pl.col("skill_id").alias("parent_id"), pl.col("s").alias("ps")),
            on="parent_id",
            how="left",
        )
        .sort("s")["ps"]
        .fill_null(-1)
        .to_numpy()
        .astype(np.int64)
    )
    is_meta = s_idx["meta_column"].is_not_null().to_numpy()
    level_ok = (
        np.ones(table.height, bool)
        if levels is None
        else s_idx["level"].is_in([int(x) for x in levels]).fill_null(False).to_numpy()
    )
    usable = np.where(is_meta, True, level_ok).astype(float)
    base_col = meta_cols[0] if meta_cols else None
    is_base = (s_idx["meta_column"] == base_col).fill_null(False).to_numpy() if base_col else None
    usable_residual = usable * (~is_base) if is_base is not None else usable.copy()
    cell = np.full(n, -1, dtype=np.int64)
    n_cells = 0
    if base_col is not None:
        vals = _metadata_values(instances, uids, base_col)
        ok = np.array([v is not None for v in vals], dtype=bool)
        if ok.any():
            _, codes = np.unique(
                np.asarray([v for v in vals if v is not None], dtype=str), return_inverse=True
            )
            cell[ok] = codes.ravel()
            n_cells = int(codes.max()) + 1
    return _Data(
        models=models,
        uids=uids,
        core=core,
        C=C,
        n_slices=table.height,
        rows=mem["i"].to_numpy().astype(np.int64),
        cols=mem["s"].to_numpy().astype(np.int64),
        parent=parent,
        usable=usable,
        usable_residual=usable_residual,
        cell=cell,
        n_cells=n_cells,
    )


def _moment_tau2(d: np.ndarray, n: np.ndarray, s2: np.ndarray, dof: int) -> float:
    """Between-group variance of true deviations, by the method of moments; 0 without evidence.

    ``d``: groups x models observed deviations, ``n``: group sizes, ``s2``: the
    per-instance variance per model, ``dof``: degrees of freedom of the heterogeneity
    statistic. Each group's ``d**2`` exceeds its sampling variance ``s2 / n`` by the
    true variance on average (groups weighted by size). Unless Cochran's Q
    (``sum d**2 / (s2 / n)``) shows heterogeneity at the 5% level (scipy's chi-square),
    the level is taken to carry nothing: a chance excess of noise must not move routes.
    """
    from scipy.stats import chi2

    ok = n > 0
    if not ok.any() or dof < 1:
        return 0.0
    d, n = d[ok], n[ok]
    v = np.maximum(s2[None, :], 1e-12) / n[:, None]
    if chi2.sf(float(np.sum(d**2 / v)), dof) >= 0.05:
        return 0.0
    excess = (d**2 - v).mean(axis=1)
    return max(float(np.sum(n * excess) / np.sum(n)), 0.0)


def _eb_pseudocounts(data: _Data, min_slice_size: int) -> tuple[float, float]:
    """Empirical-Bayes pseudo-counts (metadata cell, skill slice) of the hierarchical rule.

    Beta-binomial style, by the method of moments: a model's accuracy on a metadata cell
    varies around its overall accuracy with true variance ``tau2`` (what the cells'
    spread exceeds binomial noise by), so the cell accuracy is shrunk toward the overall
    one with pseudo-count ``a = p(1-p) / tau2``; likewise a skill slice's deviation from
    its members' cell accuracies is shrunk toward 0. A level whose groups differ no more
    than sampling noise gets ``NO_SIGNAL`` and adds nothing: the policy is then the
    metadata router (or the best single model). Both are scalars (pooled over models)
    estimated once on all the results given.
    """
    C = data.C
    n, n_models = C.shape
    ov = C.mean(axis=0)
    s2 = ov * (1 - ov)
    s2m = float(s2.mean())
    if s2m <= 0:
        return NO_SIGNAL, NO_SIGNAL
    p = np.broadcast_to(ov, C.shape).copy()
    a_cell = NO_SIGNAL
    has = data.cell >= 0
    if data.n_cells and has.any():
        Kc = np.zeros((data.n_cells, n_models))
        np.add.at(Kc, data.cell[has], C[has])
        Nc = np.bincount(data.cell[has], minlength=data.n_cells).astype(float)
        d = Kc / np.maximum(Nc, 1.0)[:, None] - ov[None, :]
        tau2 = _moment_tau2(d, Nc, s2, (int((Nc > 0).sum()) - 1) * n_models)
        a_cell = min(s2m / tau2, NO_SIGNAL) if tau2 > 0 else NO_SIGNAL
        pc = (Kc + a_cell * ov[None, :]) / (Nc + a_cell)[:, None]
        p[has] = pc[data.cell[has]]
    member = sp.csr_matrix(
        (np.ones(data.rows.size), (data.cols, data.rows)), shape=(data.n_slices, n)
    )
    N = np.asarray(member.sum(axis=1)).ravel()
    keep = (N >= max(min_slice_size, 1)) & (data.usable_residual > 0)
    if not keep.any():
        return a_cell, NO_SIGNAL
    # Slices differ in difficulty for every model alike, which never changes a route:
    # the skill level's variance is that of the deviations centred across models, and
    # its noise that of a result centred across models.
    dev = (np.asarray(member[keep] @ C) - np.asarray(member[keep] @ p)) / N[keep, None]
    R = C - C.mean(axis=1, keepdims=True)
    r2 = R.var(axis=0)
    tau2 = _moment_tau2(
        dev - dev.mean(axis=1, keepdims=True), N[keep], r2, int(keep.sum()) * (n_models - 1)
    )
    a_skill = min(float(r2.mean()) / tau2, NO_SIGNAL) if tau2 > 0 else NO_SIGNAL
    return float(a_cell), float(a_skill)


def _resolve(data: _Data, rule: str, shrink: float, min_slice_size: int, pseudo_counts):
    """(base shrink, skill shrink) for the rule: the hierarchical rule's EB pair or given ones."""
    if rule != "hierarchical":
        return shrink, None
    if pseudo_counts is not None:
        return float(pseudo_counts[0]), float(pseudo_counts[1])
    return _eb_pseudocounts(data, min_slice_size)


def _scores_for(data: _Data, groups, rule, weighting, shrink, min_slice_size, skill_shrink=None):
    return _policy_scores(
        data.C,
        data.rows,
        data.cols,
        data.n_slices,
        data.parent,
        data.usable if rule == "paper" else data.usable_residual,
        groups,
        weighting,
        shrink,
        min_slice_size,
        rule,
        data.cell,
        data.n_cells,
        skill_shrink,
    )


def _scheme_groups(
    data: _Data, instances: pl.DataFrame | None, schemes, folds: int, seed: int
) -> dict[str, np.ndarray | None]:
    n = data.uids.len()
    out: dict[str, np.ndarray | None] = {}
    for scheme in schemes:
        if scheme not in ("loo", "kfold", "lobo"):
            raise ValueError(f"unknown scheme {scheme!r}; use loo, kfold or lobo")
    if "loo" in schemes:
        out["loo"] = None
    if "kfold" in schemes and folds >= 2:
        rng = np.random.default_rng(seed)
        out["kfold"] = (rng.permutation(n) % min(folds, n)).astype(np.int64)
    if "lobo" in schemes:
        bench = _benchmarks(data.core, instances, data.uids)
        if bench is not None and len(set(bench)) > 1:
            _, g = np.unique(np.asarray(bench, dtype=str), return_inverse=True)
            out["lobo"] = g.astype(np.int64).ravel()
    return out


@dataclass
class HeldoutScores:
    """Held-out policy scores of one scheme, for choosing under any cost trade-off.

    ``scores``/``overall``: instance x model; ``has``: a slice applied (paper
    rule); ``C``: the instance x model correctness; ``groups``: the held-out
    group per instance (None for leave-one-out).
    """

    models: list[str]
    uids: pl.Series
    C: np.ndarray
    scores: np.ndarray
    has: np.ndarray
    overall: np.ndarray
    groups: np.ndarray | None

    def choose(self, costs: dict[str, float] | None = None, cost_lambda: float = 0.0) -> np.ndarray:
        """Chosen model index per instance for ``score - cost_lambda * cost``."""
        return _choose(
            self.scores, self.has, self.overall, _cost_vector(self.models, costs), cost_lambda
        )


def heldout_policy_scores(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    scheme: str = "loo",
    folds: int = 5,
    seed: int = 0,
    rule: str = DEFAULT_RULE,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    metadata_slices: list[str] | None = None,
    pseudo_counts: tuple[float, float] | None = None,
) -> HeldoutScores | None:
    """The skill policy's held-out scores under ``scheme`` (None when it does not apply)."""
    _check(weighting, rule)
    data = _prepare(results, slices, levels, instances, metadata_slices)
    if data is None:
        return None
    groups = _scheme_groups(data, instances, (scheme,), folds, seed)
    if scheme not in groups:
        return None
    g = groups[scheme]
    a, a_skill = _resolve(data, rule, shrink, min_slice_size, pseudo_counts)
    scores, has, overall = _scores_for(data, g, rule, weighting, a, min_slice_size, a_skill)
    return HeldoutScores(data.models, data.uids, data.C, scores, has, overall, g)


def heldout_routes(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    scheme: str = "loo",
    folds: int = 5,
    seed: int = 0,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    rule: str = DEFAULT_RULE,
    metadata_slices: list[str] | None = None,
    costs: dict[str, float] | None = None,
    cost_lambda: float = 0.0,
    pseudo_counts: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Per-instance held-out decisions of the skill policy.

    Columns: uid, fold (held-out group; the instance's own index for ``loo``),
    model (chosen), best_single (the held-out best overall model), correct
    (score of the chosen model). Same rule and parameters as
    :func:`evaluate_routing`.
    """
    schema = {
        "uid": pl.String,
        "fold": pl.Int64,
        "model": pl.String,
        "best_single": pl.String,
        "correct": pl.Float64,
    }
    hs = heldout_policy_scores(
        results,
        slices,
        instances,
        scheme=scheme,
        folds=folds,
        seed=seed,
        rule=rule,
        weighting=weighting,
        shrink=shrink,
        levels=levels,
        min_slice_size=min_slice_size,
        metadata_slices=metadata_slices,
        pseudo_counts=pseudo_counts,
    )
    if hs is None:
        return pl.DataFrame(schema=schema)
    n = hs.uids.len()
    routed = hs.choose(costs, cost_lambda)
    best = _best_single(hs.C, hs.groups)
    names = np.asarray(hs.models, dtype=object)
    return pl.DataFrame(
        {
            "uid": hs.uids,
            "fold": np.arange(n) if hs.groups is None else hs.groups,
            "model": names[routed].tolist(),
            "best_single": names[best].tolist(),
            "correct": hs.C[np.arange(n), routed],
        },
        schema=schema,
    )


def evaluate_routing(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    instances: pl.DataFrame | None = None,
    *,
    metadata_column: str | None = None,
    folds: int = 5,
    seed: int = 0,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    levels: list[int] | None = None,
    min_slice_size: int = 30,
    question_vectors: np.ndarray | None = None,
    uid_order: list[str] | None = None,
    knn_k: int = 10,
    schemes: tuple[str, ...] = ("loo", "kfold", "lobo"),
    n_boot: int = 1000,
    rule: str = DEFAULT_RULE,
    metadata_slices: list[str] | None = None,
    costs: dict[str, float] | None = None,
    cost_lambda: float = 0.0,
    pseudo_counts: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Held-out accuracy of the skill policy and of every baseline.

    Only instances that every model answered are evaluated. One block of rows
    per scheme (``loo`` always; ``kfold`` when ``folds >= 2``; ``lobo`` when
    the evaluated instances span more than one benchmark), each with routers:

    * ``skill_policy`` — the policy (``rule``, ``metadata_slices``, ``costs``
      and ``cost_lambda`` as in :func:`fit_policy`) with held-out counts;
    * ``best_single`` — the model best overall on the held-out training data;
    * ``metadata_router`` — (when ``metadata_column``) the paper rule with one
      slice per value of that column (an instances column such as
      ``benchmark``, or a key of the metadata JSON such as ``category``);
    * ``knn_router`` — (when ``question_vectors``, rows aligned with
      ``uid_order``) the model most accurate on the ``knn_k`` nearest training
      questions by cosine (never the question itself or its held-out group);
    * ``random`` — expected accuracy of a uniformly random model;
    * ``majority_vote`` — see :func:`_majority_vote`;
    * ``oracle`` — correct when any model is.

    ``random``, ``majority_vote`` and ``oracle`` fit nothing; they are repeated
    in every scheme's block so each block is self-contained.
    ``ci_low``/``ci_high``: 95% percentile bootstrap over instances
    (``n_boot`` resamples, fixed ``seed``, shared by all rows so gains are
    paired); ``gain_vs_best_single`` and its CI compare with the same
    scheme's ``best_single``. ``mean_cost`` (with ``costs``): mean cost per
    instance — the chosen model's; every model's for ``majority_vote``; the
    cheapest correct model's (else the cheapest) for ``oracle``.
    Columns: ``ROUTING_EVALUATION``.
    """
    _check(weighting, rule)
    data = _prepare(results, slices, levels, instances, metadata_slices)
    if data is None:
        return pl.DataFrame(schema=ROUTING_EVALUATION)
    C, uids = data.C, data.uids
    n = uids.len()
    cost = _cost_vector(data.models, costs)
    a, a_skill = _resolve(data, rule, shrink, min_slice_size, pseudo_counts)

    # metadata router: one slice per metadata value
    meta_rows = meta_cols = None
    if metadata_column:
        vals = _metadata_values(instances, uids, metadata_column)
        ok = np.array([v is not None for v in vals], dtype=bool)
        meta_rows = np.flatnonzero(ok).astype(np.int64)
        _, meta_cols = np.unique(
            np.asarray([v for v in vals if v is not None], dtype=str), return_inverse=True
        )
        meta_cols = meta_cols.astype(np.int64).ravel()
    n_meta = int(meta_cols.max()) + 1 if meta_cols is not None and meta_cols.size else 0

    # kNN inputs
    vecs = has_vec = None
    if question_vectors is not None:
        if uid_order is None or len(uid_order) != len(question_vectors):
            raise ValueError("question_vectors needs uid_order of the same length")
        pos = pl.DataFrame({"uid": list(uid_order), "r": np.arange(len(uid_order))}).unique(
            "uid", keep="first"
        )
        r = pl.DataFrame({"uid": uids}).join(pos, on="uid", how="left")["r"]
        has_vec = r.is_not_null().to_numpy()
        vecs = np.zeros((n, question_vectors.shape[1]), dtype=np.float32)
        vecs[has_vec] = np.asarray(question_vectors)[r.drop_nulls().to_numpy()]

    scheme_groups = _scheme_groups(data, instances, schemes, folds, seed)
    fixed = {
        "random": C.mean(axis=1),
        "majority_vote": _majority_vote(data.core, uids, C),
        "oracle": C.max(axis=1),
    }
    fixed_cost = {}
    if cost is not None:
        right = C >= 0.5
        cheapest_right = np.where(right, cost[None, :], np.inf).min(axis=1)
        fixed_cost = {
            "random": np.full(n, cost.mean()),
            "majority_vote": np.full(n, cost.sum()),
            "oracle": np.where(np.isfinite(cheapest_right), cheapest_right, cost.min()),
        }
    columns: list[tuple[str, str, np.ndarray, np.ndarray | None]] = []
    arange = np.arange(n)

    def picked(name, scheme, idx):
        columns.append((name, scheme, C[arange, idx], None if cost is None else cost[idx]))

    best = {s: _best_single(C, g) for s, g in scheme_groups.items()}
    knn = _knn_choices(C, vecs, has_vec, scheme_groups, knn_k, best) if vecs is not None else None
    for scheme, groups in scheme_groups.items():
        scores, has, overall = _scores_for(
            data, groups, rule, weighting, a, min_slice_size, a_skill
        )
        picked("skill_policy", scheme, _choose(scores, has, overall, cost, cost_lambda))
        picked("best_single", scheme, best[scheme])
        if meta_rows is not None:
            ms, mh, mo = _policy_scores(
                C,
                meta_rows,
                meta_cols,
                n_meta,
                np.full(n_meta, -1, np.int64),
                np.ones(n_meta),
                groups,
                weighting,
                shrink,
                1,
            )
            picked("metadata_router", scheme, _choose(ms, mh, mo))
        if knn is not None:
            picked("knn_router", scheme, knn[scheme])
        for name, value in fixed.items():
            columns.append((name, scheme, value, fixed_cost.get(name)))
    if not columns:
        return pl.DataFrame(schema=ROUTING_EVALUATION)

    R = np.column_stack([c[2] for c in columns]).astype(np.float32)
    best_col = {s: j for j, (r_, s, _, _) in enumerate(columns) if r_ == "best_single"}
    ref = np.array([best_col[s] for _, s, _, _ in columns])
    boots = np.concatenate([W @ R / n for W in _bootstrap_counts(n, n_boot, seed)], axis=0)
    gains = boots - boots[:, ref]
    acc = R.mean(axis=0, dtype=np.float64)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    glo, ghi = np.percentile(gains, [2.5, 97.5], axis=0)
    mean_cost = [None if c[3] is None else float(np.mean(c[3])) for c in columns]
    return pl.DataFrame(
        {
            "router": [c[0] for c in columns],
            "scheme": [c[1] for c in columns],
            "accuracy": acc,
            "ci_low": lo.astype(float),
            "ci_high": hi.astype(float),
            "n": np.full(len(columns), n, dtype=np.int64),
            "gain_vs_best_single": acc - acc[ref],
            "gain_ci_low": glo.astype(float),
            "gain_ci_high": ghi.astype(float),
            "mean_cost": pl.Series(mean_cost, dtype=pl.Float64),
        },
        schema=ROUTING_EVALUATION,
    )


def _benchmarks(core: pl.DataFrame, instances: pl.DataFrame | None, uids: pl.Series):
    if instances is not None and instances.height and "benchmark" in instances.columns:
        b = instances.select("uid", pl.col("benchmark").cast(pl.String)).unique("uid")
    elif "benchmark" in core.columns:
        b = core.select("uid", "benchmark").unique("uid")
    else:
        return None
    out = pl.DataFrame({"uid": uids}).join(b, on="uid", how="left")["benchmark"]
    return out.fill_null("?").to_list()


def leave_one_benchmark_out(
    results: pl.DataFrame, slices: pl.DataFrame, instances: pl.DataFrame | None = None, **kw
) -> pl.DataFrame:
    """:func:`evaluate_routing` with only the leave-one-benchmark-out scheme."""
    kw["schemes"] = ("lobo",)
    return evaluate_routing(results, slices, instances, **kw)
