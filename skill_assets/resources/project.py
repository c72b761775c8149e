"""The project resource: where a project lives and the handles on its outside world."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource

from skill_assets.resources.embedder import CountingEmbedder, Embedder
from skill_assets.resources.vector_store import SkillVectorStore


class ProjectResource(ConfigurableResource):
    """A skill-slices project folder (registry + `.skill-slices/` state)."""

    project_dir: str
    # `evaluate` writes a live model's results file, so it may not exist yet.
    allow_missing_results: bool = False

    @cached_property
    def project(self):
        from skill_assets.core.registry import load_project

        return load_project(self.project_dir, self.allow_missing_results)

    def reload(self):
        from skill_assets.core.registry import load_project

        return load_project(self.project_dir)

    def embedder(self) -> Embedder | CountingEmbedder:
        """The registry's embedder (audited when ``SKILL_SLICES_EMBED_AUDIT`` names a file)."""
        from skill_assets.resources.embedder import project_embedder

        return project_embedder(self.project.registry.embedder)

    def question_vectors(self):
        """The project's text -> vector cache (each question embedded once per embedder)."""
        from skill_assets.resources.question_vectors import QuestionVectorCache

        return QuestionVectorCache.for_project(self.project)

    def vector_store(self) -> SkillVectorStore:
        return SkillVectorStore(self.project.lancedb_dir)

    def call_cache(self):
        from skill_assets.resources.call_cache import CallCache

        path: Path = self.project.call_cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return CallCache(path)

    def llm_client(self, entry, cache_epoch: str | None = None):
        """An LLM client for a registry entry (annotator or model); keys come from env vars."""
        from skill_assets.resources.llm import LLMClient, LLMSettings

        settings = LLMSettings(
            **entry.llm_entry().model_dump(exclude_none=True), cache_epoch=cache_epoch
        )
        return LLMClient(settings, self.call_cache())
