"""Lineage of an insight: finding → slice → member skills → instances → spans → LLM call."""

from __future__ import annotations

import json

import polars as pl

from skill_assets.registry import Project, RegistryError


def _read_partitions(project: Project, asset: str) -> pl.DataFrame:
    folder = project.assets_dir / asset
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        raise RegistryError(f"{project.root}: asset {asset!r} not materialized; run first")
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def explain(project: Project, insight_id: str, sample: int = 5) -> dict:
    """The evidence chain behind one row of `skill_insights`, as one JSON-able dict."""
    from skill_assets.runner import read_asset

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
    members = set(sl["member_names"])
    uids = sl["uids"][:sample]
    hits = mentions.filter(
        pl.col("uid").is_in(uids)
        & (pl.col("level") == sl["level"])
        & pl.col("skill_name").is_in(list(members))
    ).sort("uid", "step")
    cache = _cache(project)
    chain = []
    for uid in uids:
        inst = instances.filter(pl.col("uid") == uid).row(0, named=True)
        rat = rationales.filter(pl.col("uid") == uid).row(0, named=True)
        steps = hits.filter(pl.col("uid") == uid)
        call = None
        if rat.get("call_id") and cache is not None:
            rec = cache.get(rat["call_id"])
            if rec is not None:
                call = {
                    "call_id": rec.call_id,
                    "provider": rec.provider,
                    "model": rec.model,
                    "prompt_hash": rec.prompt_hash,
                    "time": rec.created_at,
                    "cost_usd": rec.cost_usd,
                }
        chain.append(
            {
                "uid": uid,
                "question": inst["question"][:300],
                "steps": [
                    {"step": s["step"], "skill_name": s["skill_name"], "span": s["span"]}
                    for s in steps.iter_rows(named=True)
                ],
                "provenance": rat["provenance"],
                "annotator_model": rat["annotator_model"],
                "prompt_version": rat["prompt_version"],
                "call": call,
            }
        )
    return {
        "finding": {
            k: finding.get(k)
            for k in (
                "insight_id",
                "kind",
                "model",
                "other_model",
                "effect",
                "n",
                "accuracy",
                "other_accuracy",
                "ci_low",
                "ci_high",
                "p",
                "q",
                "significant",
            )
        },
        "slice": {
            "skill_id": sl["skill_id"],
            "name": sl["name"],
            "level": sl["level"],
            "parent_id": sl["parent_id"],
            "n": sl["n"],
            "member_names": sl["member_names"],
        },
        "instances": chain,
    }


def _cache(project: Project):
    if not project.call_cache_path.exists():
        return None
    from resources.call_cache import CallCache

    return CallCache(project.call_cache_path)


def format_explanation(ex: dict) -> str:
    """A readable rendering of `explain`'s chain."""
    f, s = ex["finding"], ex["slice"]
    other = f.get("other_model") or "the other models"

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    lines = [
        f"finding {f['insight_id']} ({f['kind']}): {f['model']} vs {other}",
        f"  effect {num(f['effect'], '+.3f')}  n={f['n']}  accuracy {num(f['accuracy'], '.3f')} "
        f"[{num(f['ci_low'], '.3f')}, {num(f['ci_high'], '.3f')}]  p={num(f['p'], '.3g')}  "
        f"q={num(f['q'], '.3g')}",
        f"slice {s['skill_id']}: {s['name']!r} (level {s['level']}, n={s['n']}, parent {s['parent_id']})",
        "  member skill names: " + "; ".join(s["member_names"][:20]),
        "instances:",
    ]
    for inst in ex["instances"]:
        lines.append(f"  {inst['uid']}: {inst['question'][:100]!r}")
        for st in inst["steps"]:
            span = (st["span"] or "(no span: imported skill)")[:120]  # imported: no span
            lines.append(f"    step {st['step']}: {st['skill_name']} ← {span!r}")
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
    rows = insights.sort(["significant", "q"], descending=[True, False], nulls_last=True).head(top)
    out = []
    for f in rows.iter_rows(named=True):
        sl = slices.filter(pl.col("skill_id") == f["skill_id"])
        if sl.height == 0:
            continue
        s = sl.row(0, named=True)
        other = f.get("other_model") or "the other models"
        q = "n/a" if f["q"] is None else f"{f['q']:.3g}"
        out.append(
            f"**{f['insight_id']}** — {f['kind']}: `{f['model']}` vs `{other}` on "
            f"*{s['name']}* (level {s['level']}): effect {f['effect']:+.3f}, n={f['n']}, q={q}  "
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
