"""The `Router` protocol and one class per baseline of the held-out routing evaluation.

A router turns the held-out evaluation data (:class:`HeldoutContext`) into, for every
instance, the score of what it routed the instance to (:class:`Routed`), one held-out
scheme at a time. :func:`skill_assets.routing.evaluation.evaluate_routing` evaluates
every registered router (``ROUTERS``, in registration order) and the extra ones named by
the registry key ``routing.baselines`` (``"package.module:ClassName"``, imported by path,
so a baseline reaches a run in any process). A new baseline is a class with a ``name``
and a ``route(ctx, scheme)`` method, plus ``@register_router`` (or a registry entry).

A router must never let an instance see its own result: anything it learns comes from
the instances outside the instance's held-out group (``ctx.groups[scheme]``; None is
leave-one-out). Routers are created anew (no arguments) for each evaluation, so they may
cache work shared by the schemes on ``self``.

Pure functions (numpy / polars); no Dagster here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np
import polars as pl

from skill_assets.core.errors import RegistryError
from skill_assets.routing.common import (
    DEFAULT_RULE,
    _argmax_tiebreak,
    _cost_vector,
    _metadata_values,
)
from skill_assets.routing.engine import (
    _best_single,
    _choose,
    _Data,
    _heldout_overall,
    _policy_scores,
    _resolve,
    _scores_for,
    value_codes,
)


@dataclass(frozen=True)
class RoutingOptions:
    """The evaluation's settings, as the keyword arguments of ``evaluate_routing``."""

    rule: str = DEFAULT_RULE
    weighting: str = "inverse_size"
    shrink: float = 10.0
    levels: list[int] | None = None
    min_slice_size: int = 30
    metadata_slices: list[str] | None = None
    metadata_column: str | None = None
    knn_k: int = 10
    costs: dict[str, float] | None = None
    cost_lambda: float = 0.0
    pseudo_counts: tuple[float, float] | None = None


@dataclass(frozen=True)
class Routed:
    """What a router achieved on every instance (rows of ``ctx.C``).

    ``correct``: the score of the routed answer (an expected value for a randomised
    router); ``cost``: the cost per instance, None when the evaluation has no costs.
    """

    correct: np.ndarray
    cost: np.ndarray | None = None


class HeldoutContext:
    """The held-out evaluation data every router sees.

    ``models`` (sorted), ``uids``, ``C`` (instance x model scores, instances every model
    answered), ``cost`` (per model, or None), ``groups`` ({scheme: held-out group per
    instance, None for leave-one-out}), ``instances`` (the registry's instances, for
    metadata), ``options`` (:class:`RoutingOptions`), ``question_vectors`` with
    ``uid_order`` (the kNN baseline's embeddings, or None), and ``data`` (the engine's
    arrays, including the slice membership).
    """

    def __init__(
        self,
        data: _Data,
        instances: pl.DataFrame | None,
        options: RoutingOptions,
        groups: dict[str, np.ndarray | None],
        question_vectors: np.ndarray | None = None,
        uid_order: list[str] | None = None,
    ) -> None:
        if question_vectors is not None and (
            uid_order is None or len(uid_order) != len(question_vectors)
        ):
            raise ValueError("question_vectors needs uid_order of the same length")
        self.data, self.instances, self.options, self.groups = data, instances, options, groups
        self.question_vectors, self.uid_order = question_vectors, uid_order
        self.models: list[str] = data.models
        self.uids: pl.Series = data.uids
        self.C: np.ndarray = data.C
        self.n: int = data.uids.len()
        self.cost = _cost_vector(data.models, options.costs)
        self._best: dict[str, np.ndarray] = {}

    def best_single(self, scheme: str) -> np.ndarray:
        """Index of the held-out best overall model per instance under ``scheme``."""
        if scheme not in self._best:
            self._best[scheme] = _best_single(self.C, self.groups[scheme])
        return self._best[scheme]

    def picked(self, choice: np.ndarray) -> Routed:
        """The outcome of routing instance i to model ``choice[i]`` (an index into models)."""
        rows = np.arange(self.n)
        return Routed(self.C[rows, choice], None if self.cost is None else self.cost[choice])


class Router(Protocol):
    """A routing rule under held-out evaluation; ``name`` labels its rows."""

    name: ClassVar[str]

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        """The outcome on every instance under ``scheme``; None when the router does not
        apply to this evaluation (e.g. no metadata column, no question vectors)."""
        ...


ROUTERS: dict[str, type[Router]] = {}
R = TypeVar("R", bound=type[Router])


def register_router(cls: R) -> R:
    """Add a router class to ``ROUTERS`` (evaluated in registration order); a decorator."""
    if cls.name in ROUTERS and ROUTERS[cls.name] is not cls:
        raise ValueError(f"a router named {cls.name!r} is already registered")
    ROUTERS[cls.name] = cls
    return cls


def resolve_router(spec: str | type[Router], key: str = "routing.baselines") -> type[Router]:
    """The router class named by ``"package.module:ClassName"`` (or the class itself);
    errors are RegistryErrors naming the registry ``key``."""
    if isinstance(spec, str):
        mod, sep, attr = spec.partition(":")
        if not sep or not mod or not attr:
            raise RegistryError(f"key '{key}': {spec!r} is not 'package.module:ClassName'")
        try:
            obj: object = importlib.import_module(mod)
        except ImportError as e:
            raise RegistryError(
                f"key '{key}': cannot import module {mod!r} ({e}); is it on PYTHONPATH?"
            ) from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise RegistryError(f"key '{key}': module {mod!r} has no {attr!r}")
            obj = getattr(obj, part)
    else:
        obj = spec
    if not (
        isinstance(obj, type)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "route", None))
    ):
        raise RegistryError(
            f"key '{key}': {spec!r} is not a Router class (a class with a `name` string and"
            " a `route(ctx, scheme)` method)"
        )
    return obj


def routers_for(baselines: list[str | type[Router]] | tuple = ()) -> list[Router]:
    """Fresh instances of the registered routers, then of ``baselines`` (registry key
    ``routing.baselines``), with distinct names."""
    classes = list(ROUTERS.values())
    for i, spec in enumerate(baselines):
        cls = resolve_router(spec, f"routing.baselines[{i}]")
        if any(c.name == cls.name for c in classes):
            raise RegistryError(
                f"key 'routing.baselines[{i}]': a router named {cls.name!r} already exists"
            )
        classes.append(cls)
    return [cls() for cls in classes]


# --------------------------------------------------------------------------- the routers


@register_router
class SkillPolicyRouter:
    """The skill policy (rule, metadata slices, costs and λ as in ``fit_policy``), its
    counts taken without the held-out group."""

    name: ClassVar[str] = "skill_policy"

    def __init__(self) -> None:
        self._shrink: tuple[float, float | None] | None = None

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        o = ctx.options
        if self._shrink is None:
            self._shrink = _resolve(ctx.data, o.rule, o.shrink, o.min_slice_size, o.pseudo_counts)
        a, a_skill = self._shrink
        scores, has, overall = _scores_for(
            ctx.data, ctx.groups[scheme], o.rule, o.weighting, a, o.min_slice_size, a_skill
        )
        return ctx.picked(_choose(scores, has, overall, ctx.cost, o.cost_lambda))


@register_router
class BestSingleRouter:
    """Every instance to the model best overall on the held-out training data."""

    name: ClassVar[str] = "best_single"

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        return ctx.picked(ctx.best_single(scheme))


@register_router
class MetadataRouter:
    """The paper rule with one slice per value of ``routing.metadata_column`` (an
    instances column such as ``benchmark``, or a key of the metadata JSON such as
    ``category``); only with that column."""

    name: ClassVar[str] = "metadata_router"

    def __init__(self) -> None:
        self._codes: tuple[np.ndarray, int] | None = None

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        o = ctx.options
        if not o.metadata_column:
            return None
        if self._codes is None:
            self._codes = value_codes(_metadata_values(ctx.instances, ctx.uids, o.metadata_column))
        codes, n_meta = self._codes
        rows = np.flatnonzero(codes >= 0).astype(np.int64)
        scores, has, overall = _policy_scores(
            ctx.C,
            rows,
            codes[rows],
            n_meta,
            np.full(n_meta, -1, np.int64),
            np.ones(n_meta),
            ctx.groups[scheme],
            o.weighting,
            o.shrink,
            1,
            "paper",  # one level of metadata values: the paper's rule, no base to shrink to
        )
        return ctx.picked(_choose(scores, has, overall))


@register_router
class KnnRouter:
    """The model most accurate on the ``routing.knn_k`` nearest training questions by
    cosine of their embeddings (never the question itself or its held-out group); only
    with question vectors."""

    name: ClassVar[str] = "knn_router"

    def __init__(self) -> None:
        self._choices: dict[str, np.ndarray] | None = None

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        if ctx.question_vectors is None or ctx.uid_order is None:
            return None
        if self._choices is None:  # one similarity pass serves every scheme
            vectors = np.asarray(ctx.question_vectors)
            pos = pl.DataFrame(
                {"uid": list(ctx.uid_order), "r": np.arange(len(ctx.uid_order))}
            ).unique("uid", keep="first")
            r = pl.DataFrame({"uid": ctx.uids}).join(pos, on="uid", how="left")["r"]
            has_vec = r.is_not_null().to_numpy()
            vecs = np.zeros((ctx.n, vectors.shape[1]), dtype=np.float32)
            vecs[has_vec] = vectors[r.drop_nulls().to_numpy()]
            best = {s: ctx.best_single(s) for s in ctx.groups}
            self._choices = _knn_choices(ctx.C, vecs, has_vec, ctx.groups, ctx.options.knn_k, best)
        return ctx.picked(self._choices[scheme])


@register_router
class RandomRouter:
    """The expected outcome of a uniformly random model; fits nothing."""

    name: ClassVar[str] = "random"

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        cost = None if ctx.cost is None else np.full(ctx.n, ctx.cost.mean())
        return Routed(ctx.C.mean(axis=1), cost)


@register_router
class MajorityVoteRouter:
    """Every model answers and the plurality answer wins (see :func:`_majority_vote`);
    costs every model's call; fits nothing."""

    name: ClassVar[str] = "majority_vote"

    def __init__(self) -> None:
        self._value: np.ndarray | None = None

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        if self._value is None:
            self._value = _majority_vote(ctx.data.core, ctx.uids, ctx.C)
        cost = None if ctx.cost is None else np.full(ctx.n, ctx.cost.sum())
        return Routed(self._value, cost)


@register_router
class OracleRouter:
    """Correct whenever any model is; costs the cheapest correct model (else the
    cheapest); fits nothing."""

    name: ClassVar[str] = "oracle"

    def route(self, ctx: HeldoutContext, scheme: str) -> Routed | None:
        cost = None
        if ctx.cost is not None:
            cheapest_right = np.where(ctx.C >= 0.5, ctx.cost[None, :], np.inf).min(axis=1)
            cost = np.where(np.isfinite(cheapest_right), cheapest_right, ctx.cost.min())
        return Routed(ctx.C.max(axis=1), cost)


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
