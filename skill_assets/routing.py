"""Skill-based routing: the policy, its use outside Dagster, and its held-out evaluation.

Pure functions (numpy / scipy.sparse / polars); no Dagster here.

The rule (Moayeri et al. 2024, DESIGN.md §7). For an instance, take the slices
that contain it (optionally only some levels, and only slices with at least
``min_slice_size`` training instances). For every model, average its
accuracies on those slices, weighted by ``1 / n`` (``weighting="inverse_size"``;
also ``"uniform"`` and ``"sqrt_inverse"`` = ``1 / sqrt(n)``), where ``n`` is
the slice's number of training instances. Pick the argmax; when no slice
applies, pick the default model (the best overall on the training data). Ties
go to the model with the higher overall training accuracy, then to the
alphabetically first.

Each slice accuracy is shrunk toward a prior, beta-binomial style:
``(k + shrink * p_prior) / (n + shrink)``, where ``p_prior`` is the model's
(raw) accuracy on the slice's parent slice, or its overall accuracy for a
top-level slice (or when the parent has no training data). ``shrink=0`` gives
the paper's raw rule. ``min_slice_size`` (default 30) keeps tiny slices from
routing: with 1/n weights a 2-instance slice would otherwise outweigh every
large one (the paper routed with slices of >= 100 instances only).

Held-out evaluation never lets an instance see its own result:

* ``loo`` — leave-one-out: every count (slice, parent, overall) has the
  instance's own result subtracted, ``(k - own) / (n - 1)``.
* ``kfold`` — counts come from the other folds only.
* ``lobo`` — leave-one-benchmark-out: counts come from the other benchmarks
  only (only when there is more than one benchmark).

All three are the same computation: "subtract the held-out group's counts",
done on the sparse instance x slice membership, so 12k instances x 2k slices
evaluate in about a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from skill_assets.accuracy import _results_core, slice_membership

WEIGHTINGS = ("inverse_size", "uniform", "sqrt_inverse")
POLICY_FORMAT = "skill-slices/routing-policy"

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
}


# --------------------------------------------------------------------------- weights


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
    """Row-wise argmax of ``scores``; ties by larger ``tiebreak``, then lowest index."""
    top = np.max(scores, axis=1, keepdims=True)
    cand = scores >= top  # exact ties (scores are ratios of the same counts)
    return np.argmax(np.where(cand, tiebreak, -np.inf), axis=1)


# --------------------------------------------------------------------------- policy


def _slice_table(slices: pl.DataFrame) -> pl.DataFrame:
    return slices.select(
        pl.col("skill_id").cast(pl.String),
        pl.col("name").cast(pl.String),
        pl.col("level").cast(pl.Int64),
        pl.col("parent_id").cast(pl.String),
    ).unique("skill_id", keep="first", maintain_order=True)


def fit_policy(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    *,
    levels: list[int] | None = None,
    weighting: str = "inverse_size",
    shrink: float = 10.0,
    min_slice_size: int = 30,
) -> dict:
    """Fit the routing policy on all results: a JSON-serialisable dict.

    Keys: ``format``, ``version``, ``models`` (sorted), ``default_model`` (best
    overall accuracy), ``weighting``, ``shrink``, ``levels``, ``min_slice_size``,
    ``overall`` ({model: {n, n_correct, accuracy}}) and ``skills``
    ({skill_id: {name, level, parent_id, n, models: {model: {n, n_correct,
    accuracy}}}}). Every slice with at least one result is stored (parents are
    needed as shrinkage priors); ``levels`` and ``min_slice_size`` are applied
    by :func:`route_skills`.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
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
    skills: dict[str, dict] = {}
    if slices.height and core.height:
        meta = _slice_table(slices)
        counts = (
            slice_membership(slices)
            .join(core, on="uid", how="inner")
            .group_by("skill_id", "model")
            .agg(pl.len().alias("n"), pl.col("correct").sum().alias("k"))
        )
        sizes = (
            slice_membership(slices)
            .join(core.select("uid").unique(), on="uid", how="inner")
            .group_by("skill_id")
            .agg(pl.len().alias("n_total"))
        )
        per_model: dict[str, dict] = {}
        for sid, m, n, k in counts.select("skill_id", "model", "n", "k").iter_rows():
            per_model.setdefault(sid, {})[m] = {
                "n": int(n),
                "n_correct": float(k),
                "accuracy": float(k / n),
            }
        n_total = dict(sizes.iter_rows())
        for sid, name, level, parent in meta.iter_rows():
            if sid not in per_model:
                continue
            skills[sid] = {
                "name": name,
                "level": None if level is None else int(level),
                "parent_id": parent,
                "n": int(n_total[sid]),
                "models": dict(sorted(per_model[sid].items())),
            }
    return {
        "format": POLICY_FORMAT,
        "version": 1,
        "models": models,
        "default_model": default_model,
        "weighting": weighting,
        "shrink": float(shrink),
        "levels": None if levels is None else [int(x) for x in levels],
        "min_slice_size": int(min_slice_size),
        "overall": overall,
        "skills": skills,
    }


def save_policy(policy: dict, path: str | Path) -> Path:
    """Write the policy as JSON (UTF-8, sorted keys kept stable); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(policy, indent=1, allow_nan=False), encoding="utf-8")
    return path


def load_policy(path: str | Path) -> dict:
    """Read a policy written by :func:`save_policy`."""
    policy = json.loads(Path(path).read_text(encoding="utf-8"))
    if policy.get("format") != POLICY_FORMAT:
        raise ValueError(f"{path}: not a skill-slices routing policy (format key missing)")
    return policy


def route_skills(skill_ids: list[str], policy: dict) -> dict:
    """Choose a model for an instance whose skills (slice ids) are ``skill_ids``.

    Returns ``{"model", "default_used", "scores": {model: score}, "skills":
    [{skill_id, name, level, n, weight, accuracy: {model: raw},
    score: {model: shrunk}}] (heaviest first), "ignored_skills": [...]}``.
    Skills unknown to the policy, outside its levels or below its minimum
    size are ignored; with none left the default model is chosen and the
    scores are the overall accuracies.
    """
    models = policy["models"]
    overall = policy["overall"]
    skills = policy["skills"]
    levels = policy.get("levels")
    shrink = float(policy.get("shrink", 0.0))
    min_n = int(policy.get("min_slice_size", 1))
    used, ignored = [], []
    for sid in dict.fromkeys(skill_ids):
        s = skills.get(sid)
        if s is None or (levels is not None and s["level"] not in levels) or s["n"] < min_n:
            ignored.append(sid)
        else:
            used.append(sid)
    overall_acc = np.array([overall[m]["accuracy"] for m in models])
    if not used:
        return {
            "model": policy["default_model"],
            "default_used": True,
            "scores": {m: float(a) for m, a in zip(models, overall_acc, strict=True)},
            "skills": [],
            "ignored_skills": ignored,
        }
    num = np.zeros(len(models))
    den = 0.0
    details = []
    for sid in used:
        s = skills[sid]
        parent = skills.get(s["parent_id"]) if s.get("parent_id") else None
        w = float(_weights(np.array([s["n"]]), policy["weighting"])[0])
        raw, shrunk = {}, {}
        for j, m in enumerate(models):
            cell = s["models"].get(m, {"n": 0, "n_correct": 0.0})
            pcell = (parent or {}).get("models", {}).get(m) if parent else None
            prior = (
                pcell["n_correct"] / pcell["n"]
                if pcell and pcell["n"] > 0
                else overall[m]["accuracy"]
            )
            denom = cell["n"] + shrink
            acc = (cell["n_correct"] + shrink * prior) / denom if denom > 0 else prior
            raw[m] = cell["n_correct"] / cell["n"] if cell["n"] > 0 else None
            shrunk[m] = acc
            num[j] += w * acc
        den += w
        details.append(
            {
                "skill_id": sid,
                "name": s["name"],
                "level": s["level"],
                "n": s["n"],
                "weight": w,
                "accuracy": raw,
                "score": shrunk,
            }
        )
    scores = num / den
    choice = int(_argmax_tiebreak(scores[None, :], overall_acc[None, :])[0])
    details.sort(key=lambda d: -d["weight"])
    return {
        "model": models[choice],
        "default_used": False,
        "scores": {m: float(x) for m, x in zip(models, scores, strict=True)},
        "skills": details,
        "ignored_skills": ignored,
    }


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
        return np.where(ov_n[:, None] > 0, ov_k / ov_n[:, None], 0.0)


def _entry_scores(
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
) -> np.ndarray:
    """Held-out routing choices for every instance (index into the model axis).

    ``C`` (instances x models) are the scores; ``rows``/``cols`` the membership
    entries (instance i is in slice s); ``parent[s]`` the parent slice index or
    -1; ``usable[s]`` whether slice s may route; ``groups`` None for
    leave-one-out or an integer held-out group per instance.
    """
    n_inst, n_models = C.shape
    member = sp.csr_matrix(
        (np.ones(rows.size), (cols, rows)), shape=(n_slices, n_inst), dtype=np.float64
    )
    K = np.asarray(member @ C)  # slice x model
    N = np.asarray(member.sum(axis=1)).ravel()  # slice
    if groups is None:
        own_k = C[rows]  # entry x model
        own_n = np.ones(rows.size)
    else:
        n_groups = int(groups.max()) + 1 if groups.size else 0
        KG = np.zeros((n_groups, n_slices, n_models))
        NG = np.zeros((n_groups, n_slices))
        for g in range(n_groups):
            sel = groups == g
            KG[g] = np.asarray(member[:, sel] @ C[sel])
            NG[g] = np.asarray(member[:, sel].sum(axis=1)).ravel()
        g_e = groups[rows]
        own_k = KG[g_e, cols]
        own_n = NG[g_e, cols]
    overall = _heldout_overall(C, groups)  # instance x model
    default = _argmax_tiebreak(overall, np.zeros_like(overall))
    if rows.size == 0:
        return default
    k_e = K[cols] - own_k
    n_e = N[cols] - own_n
    # prior: parent's held-out accuracy, else the instance's held-out overall accuracy
    prior = overall[rows].copy()
    par = parent[cols]
    has_par = par >= 0
    if has_par.any():
        e = np.flatnonzero(has_par)
        p = par[e]
        if groups is None:
            keys = np.sort(rows.astype(np.int64) * n_slices + cols)
            q = rows[e].astype(np.int64) * n_slices + p
            pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
            inside = (keys[pos] == q).astype(float)
            pk = K[p] - inside[:, None] * C[rows[e]]
            pn = N[p] - inside
        else:
            pk = K[p] - KG[groups[rows[e]], p]
            pn = N[p] - NG[groups[rows[e]], p]
        ok = pn > 0
        prior[e[ok]] = pk[ok] / pn[ok, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (k_e + shrink * prior) / (n_e + shrink)[:, None]
    w = _weights(n_e, weighting) * usable[cols] * (n_e >= max(min_slice_size, 1))
    acc = np.where(w[:, None] > 0, acc, 0.0)
    den = np.bincount(rows, weights=w, minlength=n_inst)
    num = np.stack(
        [np.bincount(rows, weights=w * acc[:, m], minlength=n_inst) for m in range(n_models)],
        axis=1,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = num / den[:, None]
    routed = _argmax_tiebreak(np.where(den[:, None] > 0, scores, 0.0), overall)
    return np.where(den > 0, routed, default)


def _best_single(C: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Held-out best overall model per instance."""
    empty = np.zeros(0, dtype=np.int64)
    return _entry_scores(
        C, empty, empty, 0, np.zeros(0, np.int64), np.zeros(0), groups, "uniform", 0.0, 1
    )


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


def _metadata_values(instances: pl.DataFrame | None, uids: pl.Series, column: str) -> list:
    """Value of ``column`` per uid: an instances column, or a key of its metadata JSON."""
    if instances is None or instances.height == 0:
        return [None] * uids.len()
    if column in instances.columns and column != "metadata":
        vals = instances.select("uid", pl.col(column).cast(pl.String).alias("_v"))
    else:
        parsed = []
        for m in instances["metadata"].to_list():
            v = json.loads(m).get(column) if m else None
            parsed.append(None if v is None else (v if isinstance(v, str) else json.dumps(v)))
        vals = pl.DataFrame({"uid": instances["uid"], "_v": pl.Series(parsed, dtype=pl.String)})
    vals = vals.unique("uid", keep="first")
    return pl.DataFrame({"uid": uids}).join(vals, on="uid", how="left")["_v"].to_list()


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
    usable: np.ndarray  # 1.0 for slices allowed to route (levels)


def _prepare(results: pl.DataFrame, slices: pl.DataFrame, levels: list[int] | None) -> _Data | None:
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
    meta = _slice_table(slices)
    s_idx = meta.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("s"))
    mem = (
        slice_membership(slices)
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
    usable = (
        np.ones(meta.height)
        if levels is None
        else meta["level"].is_in([int(x) for x in levels]).fill_null(False).to_numpy()
    ).astype(float)
    return _Data(
        models=models,
        uids=uids,
        core=core,
        C=C,
        n_slices=meta.height,
        rows=mem["i"].to_numpy().astype(np.int64),
        cols=mem["s"].to_numpy().astype(np.int64),
        parent=parent,
        usable=usable,
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
            out["lobo"] = g.astype(np.int64)
    return out


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
) -> pl.DataFrame:
    """Per-instance held-out decisions of the skill policy.

    Columns: uid, fold (held-out group; the instance's own index for ``loo``),
    model (chosen), best_single (the held-out best overall model, which is
    also the fallback when no slice applies), correct (score of the chosen
    model). Same rule and parameters as :func:`evaluate_routing`.
    """
    schema = {
        "uid": pl.String,
        "fold": pl.Int64,
        "model": pl.String,
        "best_single": pl.String,
        "correct": pl.Float64,
    }
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    data = _prepare(results, slices, levels)
    if data is None:
        return pl.DataFrame(schema=schema)
    groups = _scheme_groups(data, instances, (scheme,), folds, seed)
    if scheme not in groups:
        return pl.DataFrame(schema=schema)
    g = groups[scheme]
    n = data.uids.len()
    routed = _entry_scores(
        data.C,
        data.rows,
        data.cols,
        data.n_slices,
        data.parent,
        data.usable,
        g,
        weighting,
        shrink,
        min_slice_size,
    )
    best = _best_single(data.C, g)
    names = np.asarray(data.models, dtype=object)
    return pl.DataFrame(
        {
            "uid": data.uids,
            "fold": np.arange(n) if g is None else g,
            "model": names[routed].tolist(),
            "best_single": names[best].tolist(),
            "correct": data.C[np.arange(n), routed],
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
) -> pl.DataFrame:
    """Held-out accuracy of the skill policy and of every baseline.

    Only instances that every model answered are evaluated. One block of rows
    per scheme (``loo`` always; ``kfold`` when ``folds >= 2``; ``lobo`` when
    the evaluated instances span more than one benchmark), each with routers:

    * ``skill_policy`` — the paper's rule with held-out slice accuracies;
    * ``best_single`` — the model best overall on the held-out training data;
    * ``metadata_router`` — (when ``metadata_column``) the same rule with one
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
    scheme's ``best_single``. Columns: ``ROUTING_EVALUATION``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    data = _prepare(results, slices, levels)
    if data is None:
        return pl.DataFrame(schema=ROUTING_EVALUATION)
    C, uids = data.C, data.uids
    n = uids.len()

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
    columns: list[tuple[str, str, np.ndarray]] = []
    arange = np.arange(n)
    best = {s: _best_single(C, g) for s, g in scheme_groups.items()}
    knn = _knn_choices(C, vecs, has_vec, scheme_groups, knn_k, best) if vecs is not None else None
    for scheme, groups in scheme_groups.items():
        routed = _entry_scores(
            C,
            data.rows,
            data.cols,
            data.n_slices,
            data.parent,
            data.usable,
            groups,
            weighting,
            shrink,
            min_slice_size,
        )
        columns.append(("skill_policy", scheme, C[arange, routed]))
        columns.append(("best_single", scheme, C[arange, best[scheme]]))
        if meta_rows is not None:
            chosen = _entry_scores(
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
            columns.append(("metadata_router", scheme, C[arange, chosen]))
        if knn is not None:
            columns.append(("knn_router", scheme, C[arange, knn[scheme]]))
        for name, value in fixed.items():
            columns.append((name, scheme, value))
    if not columns:
        return pl.DataFrame(schema=ROUTING_EVALUATION)

    R = np.column_stack([c[2] for c in columns]).astype(np.float32)
    best_col = {s: j for j, (r_, s, _) in enumerate(columns) if r_ == "best_single"}
    ref = np.array([best_col[s] for _, s, _ in columns])
    boots = np.concatenate([W @ R / n for W in _bootstrap_counts(n, n_boot, seed)], axis=0)
    gains = boots - boots[:, ref]
    acc = R.mean(axis=0, dtype=np.float64)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    glo, ghi = np.percentile(gains, [2.5, 97.5], axis=0)
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
