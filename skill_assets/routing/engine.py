"""The held-out engine: the evaluation data as arrays and the skill policy's scores with
every count computed as if the held-out instances had never been seen.

Held-out schemes never let an instance see its own result:

* ``loo`` — leave-one-out: every count (slice, parent, base cell, overall,
  expected counts) is what a policy fitted without the instance would hold.
* ``kfold`` — counts come from the other folds only.
* ``lobo`` — leave-one-benchmark-out: counts come from the other benchmarks
  only (only when there is more than one benchmark).

All three are "subtract the held-out group's counts", done on the sparse
instance x slice membership; the engine is tested to equal refitting
:func:`skill_assets.routing.policy.fit_policy` on the training part and calling
:func:`skill_assets.routing.policy.route_skills`.

Pure functions (numpy / scipy.sparse / polars); no Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from skill_assets.routing.common import (
    NO_SIGNAL,
    _all_slices,
    _argmax_tiebreak,
    _metadata_values,
    _weights,
)


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
    rule: str,
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
    # Over 80 lines: one vectorised pass over the (instance, slice) pairs serves the three
    # rules, which share the held-out counts, weights and parent lookups.
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


def _correctness(results: pl.DataFrame):
    """(models, uids, core, C) on the instances that every model answered; None below two."""
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
    return models, uids, core, C


def value_codes(values: list) -> tuple[np.ndarray, int]:
    """Integer code per value (sorted order; -1 for None) and the number of codes."""
    ok = np.array([v is not None for v in values], dtype=bool)
    codes = np.full(len(values), -1, dtype=np.int64)
    if not ok.any():
        return codes, 0
    _, inv = np.unique(
        np.asarray([v for v in values if v is not None], dtype=str), return_inverse=True
    )
    codes[ok] = inv.ravel()
    return codes, int(inv.max()) + 1


def _prepare(
    results: pl.DataFrame,
    slices: pl.DataFrame,
    levels: list[int] | None,
    instances: pl.DataFrame | None = None,
    metadata_slices: list[str] | None = None,
) -> _Data | None:
    """The evaluation inputs (:class:`_Data`); None with fewer than two common instances."""
    got = _correctness(results)
    if got is None:
        return None
    models, uids, core, C = got
    uid_idx = pl.DataFrame({"uid": uids, "i": np.arange(uids.len(), dtype=np.int64)})
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
    cell, n_cells = (
        value_codes(_metadata_values(instances, uids, base_col))
        if base_col is not None
        else (np.full(uids.len(), -1, dtype=np.int64), 0)
    )
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


def _benchmarks(core: pl.DataFrame, instances: pl.DataFrame | None, uids: pl.Series):
    if instances is not None and instances.height and "benchmark" in instances.columns:
        b = instances.select("uid", pl.col("benchmark").cast(pl.String)).unique("uid")
    elif "benchmark" in core.columns:
        b = core.select("uid", "benchmark").unique("uid")
    else:
        return None
    out = pl.DataFrame({"uid": uids}).join(b, on="uid", how="left")["benchmark"]
    return out.fill_null("?").to_list()
