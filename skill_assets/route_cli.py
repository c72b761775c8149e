"""Route a new question: annotate it, find its slices, apply the saved policy."""

from __future__ import annotations

import json

import polars as pl

from skill_assets.registry import Project, RegistryError
from skill_assets.schemas import INSTANCES, conform


def route_question(project: Project, question: str, options: list[str] | None = None) -> dict:
    """The policy's decision for one free-text question, with the skills behind it."""
    from resources.project import ProjectResource
    from skill_assets.annotate import annotate_instances
    from skill_assets.routing import load_policy, route_skills
    from skill_assets.runner import read_asset

    policy_path = project.state_dir / "routing_policy.json"
    slices = read_asset(project, "skill_slices")
    if not policy_path.exists() or slices is None:
        raise RegistryError(f"{project.root}: no routing policy yet; run `skill-slices run` first")
    policy = load_policy(policy_path)
    inst = conform(
        pl.DataFrame(
            [
                {
                    "uid": "query/0",
                    "benchmark": "query",
                    "instance_id": "0",
                    "question": question,
                    "options": options,
                    "answer": "",
                    "metadata": json.dumps({}),
                }
            ],
            schema_overrides={"options": pl.List(pl.String)},
        ),
        INSTANCES,
    )
    _, mentions, _ = annotate_instances(
        inst,
        project,
        ProjectResource(project_dir=str(project.root)),
        log=lambda m: None,
        batch=False,  # one interactive question: never wait for a provider batch
    )
    members = slices.select("skill_id", "level", "member_names").explode("member_names")
    hit = mentions.join(
        members.rename({"member_names": "skill_name"}), on=["skill_name", "level"], how="inner"
    )
    skill_ids = hit["skill_id"].unique(maintain_order=True).to_list()
    decision = route_skills(skill_ids, policy)
    decision["annotated_skills"] = mentions.select("step", "level", "skill_name").to_dicts()
    return decision
