"""The project's outside I/O as Dagster resources, where the design card puts them.

Top-level entry point beside ``definitions.py`` (both for ``dagster dev`` from the root).
The code lives in the package's ``skill_assets.resources`` layer so that the import
contract covers it: one resource per service, re-exported here.
"""

from skill_assets.resources.call_cache import CallCache
from skill_assets.resources.embedder import Embedder, project_embedder
from skill_assets.resources.io_manager import BoundedPolarsParquetIOManager
from skill_assets.resources.llm import LLMClient, LLMSettings
from skill_assets.resources.project import ProjectResource
from skill_assets.resources.question_vectors import QuestionVectorCache
from skill_assets.resources.vector_store import SkillVectorStore

__all__ = [
    "BoundedPolarsParquetIOManager",
    "CallCache",
    "Embedder",
    "LLMClient",
    "LLMSettings",
    "ProjectResource",
    "QuestionVectorCache",
    "SkillVectorStore",
    "project_embedder",
]
