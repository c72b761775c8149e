"""Lineage of an insight: finding → slice → member skills → instances → spans → LLM call."""

from __future__ import annotations

import json

import polars as pl

from skill_assets.core.registry import Project, RegistryError
from skill_assets.core.store import read_asset


def _read_partitions(project: Project, asset: str) -> pl.DataFrame:
    df = read_asset(project, asset)
    if df is None:
        raise RegistryError(f"{project.root}: asset {asset!r} not materialized; run first")
    return df


FINDING_KEYS = (
    "insight_id",
    "level_of_finding",
    "kind",
    "model",
    "other_model",
    "effect",
    "effect_ci_low",
    "effect_ci_high",
    "n",
    "accuracy",
    "other_accuracy",
    "ci_low",
    "ci_high",
    "unparsed_share",
    "other_unparsed_share",
    "unparsed_flag",
    "test",
    "p",
    "q",
    "significant",
    "conditional_test",
    "rest_effect",
    "rest_n",
    "conditional_odds_ratio",
    "p_conditional",
    "q_conditional",
    "levels",
    "merged_names",
)


def _answers(results: pl.DataFrame, uids: list[str]) -> dict[str, dict[str, dict]]:
    """uid -> model -> {"outcome": right|wrong|unparsed, "parsed_answer": ...}."""
    cols = [c for c in ("uid", "model", "correct", "parsed_answer") if c in results.columns]
    rows = results.filter(pl.col("uid").is_in(uids)).select(cols)
    # a model that records no parsed answer at all gives no parse information
    parsed_known = (
        set(rows.filter(pl.col("parsed_answer").is_not_null())["model"].to_list())
        if "parsed_answer" in rows.columns
        else set()
    )
    out: dict[str, dict[str, dict]] = {}
    for r in rows.iter_rows(named=True):
        parsed = r.get("parsed_answer")
        if r["model"] in parsed_known and (parsed is None or not str(parsed).strip()):
            outcome = "unparsed"
        else:
            outcome = "right" if (r["correct"] or 0) >= 0.5 else "wrong"
        out.setdefault(r["uid"], {})[r["model"]] = {"outcome": outcome, "parsed_answer": parsed}
    return out


def _disagree(answers: dict[str, dict], model: str, other: str | None) -> bool:
    """Does the listed instance separate the finding's model from its comparison?"""
    mine = answers.get(model, {}).get("outcome") == "right"
    if other:
        return other in answers and (answers[other]["outcome"] == "right") != mine
    rest = [a["outcome"] == "right" for m, a in answers.items() if m != model]
    return bool(rest) and sum(rest) / len(rest) != float(mine)


def _sample_uids(
    all_uids: list[str], answers: dict[str, dict[str, dict]], finding: dict, sample: int
) -> tuple[list[str], list[str]]:
    """(the disagreeing uids, the ``sample`` uids to list: disagreeing ones first)."""
    split = [
        u
        for u in all_uids
        if _disagree(answers.get(u, {}), finding["model"], finding.get("other_model"))
    ]
    chosen = set(split[:sample])
    uids = split[:sample] + [u for u in all_uids if u not in chosen][: max(0, sample - len(chosen))]
    return split, uids


def _call_record(rat: dict, cache) -> dict | None:
    """The cached LLM call behind a rationale, when the cache still holds it."""
    if not (rat.get("call_id") and cache is not None):
        return None
    rec = cache.get(rat["call_id"])
    if rec is None:
        return None
    return {
        "call_id": rec.call_id,
        "provider": rec.provider,
        "model": rec.model,
        "prompt_hash": rec.prompt_hash,
        "time": rec.created_at,
        "cost_usd": rec.cost_usd,
    }


def _chain_entry(
    uid: str,
    instances: pl.DataFrame,
    rationales: pl.DataFrame,
    hits: pl.DataFrame,
    answers: dict[str, dict],
    cache,
) -> dict:
    """One listed instance: question, every model's answer, the skill steps, provenance."""
    inst = instances.filter(pl.col("uid") == uid).row(0, named=True)
    rat_rows = rationales.filter(pl.col("uid") == uid)
    rat = rat_rows.row(0, named=True) if rat_rows.height else {}
    steps = hits.filter(pl.col("uid") == uid)
    call = _call_record(rat, cache)
    return {
        "uid": uid,
        "question": inst["question"][:300],
        "gold_answer": inst.get("answer"),
        "answers": dict(sorted(answers.items())),
        "steps": [
            # imported skills carry no span (None): kept as None, never indexed
            {"step": s["step"], "skill_name": s["skill_name"], "span": s["span"]}
            for s in steps.iter_rows(named=True)
        ],
        "provenance": rat.get("provenance"),
        "annotator_model": rat.get("annotator_model"),
        "prompt_version": rat.get("prompt_version"),
        "call": call,
    }


def explain(project: Project, insight_id: str, sample: int = 5) -> dict:
    """The evidence chain behind one row of `skill_insights`, as one JSON-able dict.

    Lists up to ``sample`` of the slice's instances, those on which the
    finding's models disagree first, each with every model's answer
    (right / wrong / unparsed); ``instances_left_out`` counts the rest.
    """
    insights = read_asset(project, "skill_insights")
    slices = read_asset(project, "skill_slices")
    if insights is None or slices is None:
        raise RegistryError(f"{project.root}: no insights yet; run `skill-slices run` first")
    row = insights.filter(pl.col("insight_id") == insight_id)
    if row.height == 0:
        raise RegistryError(f"{project.root}: no insight with id {insight_id!r}")
    finding = row.row(0, named=True)
    sl = slices.filter(pl.col("skill_id") == finding["skill_id"]).row(0, named=True)
    mentions = _read_partitions(project, "skill_mentions")
    rationales = _read_partitions(project, "rationales")
    instances = _read_partitions(project, "benchmark_instances")
    results = _read_partitions(project, "model_results")
    members = set(sl["member_names"])
    all_uids = list(dict.fromkeys(sl["uids"]))
    answers = _answers(results, all_uids)
    split, uids = _sample_uids(all_uids, answers, finding, sample)
    hits = mentions.filter(
        pl.col("uid").is_in(uids)
        & (pl.col("level") == sl["level"])
        & pl.col("skill_name").is_in(list(members))
    ).sort("uid", "step")
    cache = _cache(project)
    chain = [
        _chain_entry(uid, instances, rationales, hits, answers.get(uid, {}), cache) for uid in uids
    ]
    return {
        "finding": {k: finding.get(k) for k in FINDING_KEYS},
        "slice": {
            "skill_id": sl["skill_id"],
            "name": sl["name"],
            "level": sl["level"],
            "parent_id": sl["parent_id"],
            "n": sl["n"],
            "member_names": sl["member_names"],
        },
        "instances": chain,
        "instances_disagreeing": len(split),
        "instances_left_out": len(all_uids) - len(uids),
    }


def _cache(project: Project):
    if not project.call_cache_path.exists():
        return None
    from skill_assets.resources.call_cache import CallCache

    return CallCache(project.call_cache_path)


def format_explanation(ex: dict) -> str:
    """A readable rendering of `explain`'s chain."""
    f, s = ex["finding"], ex["slice"]
    other = f.get("other_model") or "the mean of the other models"

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    levels = "/".join(f"L{x}" for x in (f.get("levels") or [s["level"]]))
    lines = [
        f"finding {f['insight_id']} ({f['kind']}, {f.get('level_of_finding') or 'n/a'}-level): "
        f"{f['model']} vs {other}",
        f"  effect {num(f['effect'], '+.3f')} [{num(f.get('effect_ci_low'), '+.3f')}, "
        f"{num(f.get('effect_ci_high'), '+.3f')}]  n={f['n']}  accuracy "
        f"{num(f['accuracy'], '.3f')} [{num(f['ci_low'], '.3f')}, {num(f['ci_high'], '.3f')}] "
        f"vs {num(f['other_accuracy'], '.3f')}",
        f"  marginal test: {f.get('test') or 'n/a'}: p={num(f['p'], '.3g')}  q={num(f['q'], '.3g')}",
        f"  conditional test: {f.get('conditional_test') or 'n/a'}: "
        f"p={num(f.get('p_conditional'), '.3g')}  q={num(f.get('q_conditional'), '.3g')}  "
        f"(same comparison on the rest of its strata: {num(f.get('rest_effect'), '+.3f')}, "
        f"n={f.get('rest_n')}; pooled odds ratio {num(f.get('conditional_odds_ratio'), '.3g')})",
        f"  unparsed answers: {num(f.get('unparsed_share'), '.1%')} vs "
        f"{num(f.get('other_unparsed_share'), '.1%')}"
        + ("  <- at least half the gap is unparsed answers" if f.get("unparsed_flag") else ""),
        f"slice {s['skill_id']}: {s['name']!r} (level {s['level']}, n={s['n']}, parent "
        f"{s['parent_id']}; merged levels {levels})",
    ]
    if f.get("merged_names"):
        lines.append("  merged near-duplicate slices: " + "; ".join(f["merged_names"]))
    lines += [
        "  member skill names: " + "; ".join(s["member_names"][:20]),
        f"instances ({len(ex['instances'])} listed, {ex.get('instances_disagreeing', 0)} where "
        f"the compared models disagree; {ex.get('instances_left_out', 0)} not listed):",
    ]
    for inst in ex["instances"]:
        lines.append(
            f"  {inst['uid']}: {inst['question'][:100]!r} (gold {inst.get('gold_answer')!r})"
        )
        answers = inst.get("answers") or {}
        if answers:
            lines.append(
                "    answers: "
                + ", ".join(
                    f"{m}={a['outcome']}"
                    + (f" ({a['parsed_answer']!s:.20})" if a.get("parsed_answer") else "")
                    for m, a in answers.items()
                )
            )
        for st in inst["steps"]:
            span = st.get("span")
            where = f" ← {span[:120]!r}" if span else " (no span recorded)"
            lines.append(f"    step {st['step']}: {st['skill_name']}{where}")
        if inst["call"]:
            c = inst["call"]
            lines.append(
                f"    call {c['call_id'][:12]} {c['provider']}:{c['model']} prompt {c['prompt_hash'][:12]} "
                f"at {c['time']} cost ${c['cost_usd']:.5f}"
            )
        else:
            lines.append(
                f"    provenance: {inst['provenance']} ({inst['annotator_model']}, {inst['prompt_version']})"
            )
    return "\n".join(lines)


def to_json(ex: dict) -> str:
    return json.dumps(ex, default=str)


def lineage_markdown(
    insights: pl.DataFrame,
    slices: pl.DataFrame,
    mentions: pl.DataFrame,
    rationales: pl.DataFrame,
    top: int = 5,
    sample: int = 2,
) -> str:
    """The evidence chain of the top findings, as Markdown for the Dagster UI."""
    if insights.height == 0:
        return "*(no findings)*"
    from skill_assets.analysis.insights import ranked_findings

    rows = ranked_findings(insights).head(top)
    out = []
    for f in rows.iter_rows(named=True):
        sl = slices.filter(pl.col("skill_id") == f["skill_id"])
        if sl.height == 0:
            continue
        s = sl.row(0, named=True)
        other = f.get("other_model") or "the other models"
        q = "n/a" if f["q"] is None else f"{f['q']:.3g}"
        qc = f.get("q_conditional")
        qc = "n/a" if qc is None else f"{qc:.3g}"
        out.append(
            f"**{f['insight_id']}** — {f['kind']} ({f.get('level_of_finding')}-level): "
            f"`{f['model']}` vs `{other}` on *{s['name']}* (level {s['level']}): effect "
            f"{f['effect']:+.3f}, n={f['n']}, q={q} ({f.get('test')}), q vs rest of strata={qc}  "
        )
        out.append(f"members: {'; '.join(s['member_names'][:8])}  ")
        for uid in s["uids"][:sample]:
            m = mentions.filter(
                (pl.col("uid") == uid)
                & (pl.col("level") == s["level"])
                & pl.col("skill_name").is_in(s["member_names"])
            )
            r = rationales.filter(pl.col("uid") == uid)
            span = (m["span"][0] or "")[:120] if m.height else ""  # imported skills: no span
            prov = (
                f"call `{r['call_id'][0][:12]}`"
                if r.height and r["call_id"][0]
                else (r["annotator_model"][0] if r.height else "")
            )
            out.append(f"- `{uid}`: “{span}” ({prov})  ")
        out.append(f"`skill-slices explain {f['insight_id']}` prints the full chain.\n")
    return "\n".join(out)
