"""Route new questions: annotate them, find their slices, apply the saved policy.

Outside Dagster on purpose: a cold ``skill-slices route`` reads the policy JSON and the
slices' Parquet, annotates with the project's annotator and never imports Dagster, so
its start-up is the embedder's. A JSONL file of questions is annotated in one batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from skill_assets.core.registry import Project, RegistryError
from skill_assets.core.schemas import INSTANCES, conform
from skill_assets.core.store import read_asset

# Fields of a question row that are not metadata.
_CORE = ("id", "instance_id", "question", "options", "answer")


class _Resource:
    """What annotation needs from the project, without Dagster's ProjectResource."""

    def __init__(self, project: Project):
        self.project = project
        self._full = None

    def embedder(self):
        from skill_assets.resources.embedder import project_embedder

        return project_embedder(self.project.registry.embedder)

    def question_vectors(self):
        from skill_assets.resources.question_vectors import QuestionVectorCache

        return QuestionVectorCache.for_project(self.project)

    def __getattr__(self, name):  # LLM annotator: the full resource (imports Dagster)
        if self._full is None:
            from skill_assets.resources.project import ProjectResource

            self._full = ProjectResource(project_dir=str(self.project.root))
        return getattr(self._full, name)


def _load(project: Project):
    from skill_assets.routing.policy import load_policy

    policy_path = project.state_dir / "routing_policy.json"
    slices = read_asset(project, "skill_slices", ["skill_id", "level", "member_names"])
    if not policy_path.exists() or slices is None:
        raise RegistryError(f"{project.root}: no routing policy yet; run `skill-slices run` first")
    policy = load_policy(policy_path)
    members = (
        slices.explode("member_names")
        .rename({"member_names": "skill_name"})
        .drop_nulls("skill_name")
    )
    return policy, members


def read_questions(path: str | Path) -> list[dict]:
    """Question rows of a JSONL file: ``question`` required; ``id``, ``options`` and any
    metadata keys (e.g. ``category``) optional. Errors name the file and line."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RegistryError(f"{path}, line {i}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict) or not str(row.get("question") or "").strip():
                raise RegistryError(f"{path}, line {i}: missing 'question'")
            opts = row.get("options")
            if opts is not None and not isinstance(opts, list):
                raise RegistryError(f"{path}, line {i}: 'options' must be a list")
            row.setdefault("id", str(i))
            rows.append(row)
    if not rows:
        raise RegistryError(f"{path}: no questions")
    return rows


def route_questions(project: Project, rows: list[dict]) -> list[dict]:
    """The policy's decision for each question row, in order, with the skills behind it.

    A row: ``question``, optional ``id``, ``options`` and metadata keys; the policy's
    metadata columns (e.g. ``category``) are read from the row when present.
    """
    from skill_assets.annotate.dispatch import annotate_instances
    from skill_assets.routing.policy import route_skills

    policy, members = _load(project)
    ids = [str(r.get("id", r.get("instance_id", i))) for i, r in enumerate(rows)]
    metas = [{k: v for k, v in r.items() if k not in _CORE and v is not None} for r in rows]
    inst = conform(
        pl.DataFrame(
            {
                "uid": [f"query/{i}" for i in range(len(rows))],
                "benchmark": ["query"] * len(rows),
                "instance_id": ids,
                "question": [str(r["question"]) for r in rows],
                "options": [r.get("options") for r in rows],
                "answer": [""] * len(rows),
                "metadata": [json.dumps(m, default=str) for m in metas],
            },
            schema_overrides={"options": pl.List(pl.String)},
        ),
        INSTANCES,
    )
    _, mentions, _ = annotate_instances(
        inst,
        project,
        _Resource(project),
        log=lambda m: None,
        batch=False,  # interactive: never wait for a provider batch
    )
    hits = (
        mentions.select("uid", "step", "level", "skill_name")
        .join(members, on=["skill_name", "level"], how="left")
        .group_by("uid", maintain_order=True)
        .agg(
            pl.col("skill_id").drop_nulls().unique(maintain_order=True).alias("skill_ids"),
            pl.struct("step", "level", "skill_name").alias("annotated"),
        )
    )
    by_uid = {r["uid"]: r for r in hits.iter_rows(named=True)}
    out = []
    for i in range(len(rows)):
        hit = by_uid.get(f"query/{i}", {"skill_ids": [], "annotated": []})
        decision = route_skills(hit["skill_ids"], policy, metas[i])
        decision["annotated_skills"] = hit["annotated"]
        decision["id"] = ids[i]
        out.append(decision)
    return out


def route_question(
    project: Project,
    question: str,
    options: list[str] | None = None,
    metadata: dict | None = None,
) -> dict:
    """The policy's decision for one free-text question, with the skills behind it."""
    row = {"question": question, "options": options, **(metadata or {})}
    decision = route_questions(project, [row])[0]
    decision.pop("id", None)
    return decision


def write_routes(decisions: list[dict], path: str | Path) -> Path:
    """Write one compact JSON row per decision (id, model, default_used, skills, scores);
    the file is replaced only once every row is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for d in decisions:
            f.write(json.dumps(compact(d), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def compact(decision: dict) -> dict:
    """The fields of a decision worth a row: id, model, default_used, skills, scores."""
    return {
        "id": decision.get("id"),
        "model": decision["model"],
        "default_used": decision["default_used"],
        "skills": [s["name"] for s in decision.get("skills", [])],
        "scores": {m: round(v, 4) for m, v in decision.get("scores", {}).items()},
    }
