"""The project registry: one YAML file naming annotator, embedder, benchmarks and models.

Paths in the registry are relative to the registry file and may not escape the
project folder. Validation errors name the file, the key and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from skill_assets.core import atomic
from skill_assets.core.errors import RegistryError
from skill_assets.core.options import parse_options

REGISTRY_FILE = "skill-slices.yaml"
STATE_DIR = ".skill-slices"

Provider = Literal["openai", "anthropic", "openai-compatible", "local"]
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class _Strict(BaseModel):
    # Validation errors never echo the offending value: a pasted key or a URL with
    # credentials must not reach a traceback or a log.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `format:` is a generic table's container, a registered harness reader's name (lm-eval,
# inspect, helm, …) or a reader's import path `package.module:ReaderClass`. Only the shape is
# checked here: the readers live in the ingest layer, which resolves the value (and names
# this key when it does not resolve) before any results are read.
_READER_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _check_format(value: str | None, generic: bool) -> str | None:
    if value is None or _IMPORT_PATH.match(value):
        return value
    if value == "generic" and not generic:
        raise ValueError("an instances file is jsonl, csv or parquet ('generic' names results)")
    if not _READER_NAME.match(value):
        raise ValueError(
            "expected jsonl, csv, parquet, a harness format (lm-eval, inspect, helm) or a"
            " reader's import path 'package.module:ReaderClass'"
        )
    return value


def redact_url(url: str | None) -> str | None:
    """A URL safe to print or store: user-info, query and fragment replaced by ``***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "***"
    if port:
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    return urlunsplit(
        (
            parts.scheme,
            host,
            parts.path,
            "***" if parts.query else "",
            "***" if parts.fragment else "",
        )
    )


def _check_base_url(url: str | None) -> str | None:
    """Reject base URLs that carry credentials or cannot be parsed, without echoing them."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("not a valid URL (value not shown)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL with a host, got {redact_url(url)!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"must not carry credentials, a query or a fragment ({redact_url(url)}); "
            "put the key in the environment variable named by api_key_env"
        )
    return url


def _check_key_env(name: str | None) -> str | None:
    if name is not None and not _ENV_NAME.match(name):
        raise ValueError(
            "must be the *name* of an environment variable (letters, digits, _); "
            "the value given looks like something else (not shown) - never put a key here"
        )
    return name


class _Secrets(_Strict):
    """Validators shared by every entry that reaches an LLM."""

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, v):
        return _check_base_url(v)

    @field_validator("api_key_env", check_fields=False)
    @classmethod
    def _key_env(cls, v):
        return _check_key_env(v)


class LLMEntry(_Secrets):
    """How to reach an LLM: provider, model and limits. The key never lives here."""

    provider: Provider
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    temperature: float = 0.0
    max_tokens: int = Field(default=1024, ge=1)
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    structured_mode: Literal["tools", "json", "text"] = "tools"
    chat_format: str | None = None
    model_path: str | None = None

    @model_validator(mode="after")
    def _default_key_env(self):
        if self.api_key_env is None:
            self.api_key_env = DEFAULT_KEY_ENV.get(self.provider)
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("provider 'openai-compatible' needs a base_url")
        return self

    def llm_entry(self) -> LLMEntry:
        return self


_LLM_ONLY = {
    "model",
    "base_url",
    "api_key_env",
    "prompt_template",
    "batch",
    "batch_poll_s",
    "chat_format",
    "model_path",
    "structured_mode",
}


class AnnotatorEntry(_Secrets):
    """`taxonomy` is the offline default; any LLM provider runs the paper's rationale prompt."""

    provider: Literal["taxonomy", "openai", "anthropic", "openai-compatible", "local"] = "taxonomy"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    max_tokens: int = Field(default=1500, ge=1)
    structured_mode: Literal["tools", "json", "text"] = "tools"
    prompt_template: str | None = None
    max_paths: int = Field(default=3, ge=1, le=10)
    # Taxonomy annotator only: let benchmark metadata fields (category, subject, source,
    # task, ...) act as a prior. Off by default, so skills come from the question itself
    # rather than from the benchmark's own labels.
    metadata_hints: bool = False
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    chat_format: str | None = None
    model_path: str | None = None
    # Opt-in provider batch API (OpenAI Batch, Anthropic Message Batches) for large runs:
    # cheaper and slower; a submitted batch is resumed after a restart.
    batch: bool = False
    batch_poll_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self):
        # Settings the chosen annotator would ignore are errors, not silent no-ops.
        if self.provider == "taxonomy":
            unused = sorted(self.model_fields_set & _LLM_ONLY)
            if unused:
                raise ValueError(
                    f"'{unused[0]}' does nothing for the offline taxonomy annotator"
                    " (it applies to LLM annotators)"
                )
        elif "max_paths" in self.model_fields_set:
            raise ValueError("'max_paths' applies to the taxonomy annotator only")
        if self.provider != "taxonomy" and not self.model:
            raise ValueError(f"provider {self.provider!r} needs a model")
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("provider 'openai-compatible' needs a base_url")
        if self.metadata_hints and self.provider != "taxonomy":
            raise ValueError(
                "metadata_hints applies only to the taxonomy annotator (provider: taxonomy); "
                "the LLM annotator never reads benchmark metadata"
            )
        if self.api_key_env is None:
            self.api_key_env = DEFAULT_KEY_ENV.get(self.provider)
        return self

    def llm_entry(self) -> LLMEntry:
        data = self.model_dump(
            exclude={"prompt_template", "max_paths", "metadata_hints", "batch", "batch_poll_s"}
        )
        return LLMEntry(**data)


class EmbedderEntry(_Strict):
    provider: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"


class BenchmarkEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: str
    # jsonl/csv/parquet instance files, or a harness output that carries the questions
    format: str | None = None
    options: dict | None = None  # importer options: task, id_field, filter, ...
    # Bring-your-own skills: a column of skill labels in the instance file, or a file of
    # rationales/skills per instance; either replaces the annotator for this benchmark.
    skills_column: str | None = None
    skills: str | None = None

    @field_validator("format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        return _check_format(v, generic=False)

    @property
    def from_harness(self) -> bool:
        """The instances come from a harness output (a reader), not an instances table."""
        return self.format not in (None, "jsonl", "csv", "parquet")


class ModelEntry(_Secrets):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:+-]+$")
    results: str | None = None
    format: str | None = None
    options: dict | None = None  # importer options: task, metric, filter, scorer, split, ...
    provider: Provider | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    prompt_style: Literal["zero_shot", "cot", "few_shot"] = "zero_shot"
    max_concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = 0.0
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    price_output_per_mtok: float = Field(default=0.0, ge=0)
    chat_format: str | None = None
    model_path: str | None = None
    cost_per_call: float | None = Field(default=None, ge=0)
    batch: bool = False  # opt-in provider batch API; see AnnotatorEntry.batch
    batch_poll_s: float = Field(default=30.0, gt=0)

    @field_validator("format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        return _check_format(v, generic=True)

    @model_validator(mode="after")
    def _check(self):
        if self.results is None and self.provider is None:
            raise ValueError("give 'results' (a file) or 'provider' + 'model' (run live), or both")
        if self.provider is not None and not self.model:
            raise ValueError("a live model needs 'model'")
        if self.api_key_env is None and self.provider is not None:
            self.api_key_env = DEFAULT_KEY_ENV.get(self.provider)
        return self

    @property
    def live(self) -> bool:
        """Run through its provider; with a `results` file too, `evaluate` writes that file."""
        return self.provider is not None

    def llm_entry(self) -> LLMEntry:
        return LLMEntry(
            **self.model_dump(
                include={
                    "provider",
                    "model",
                    "base_url",
                    "api_key_env",
                    "max_concurrency",
                    "timeout_s",
                    "max_retries",
                    "max_tokens",
                    "temperature",
                    "price_input_per_mtok",
                    "price_output_per_mtok",
                    "chat_format",
                    "model_path",
                }
            )
        )


class SlicesEntry(_Strict):
    threshold: float | None = Field(default=None, gt=0, le=1)
    min_slice_size: int = Field(default=30, ge=1)


class RoutingEntry(_Strict):
    metadata_column: str | None = None
    weighting: Literal["inverse_size", "uniform", "sqrt_inverse"] = "inverse_size"
    shrink: float = Field(default=10.0, ge=0)
    folds: int = Field(default=5, ge=2)
    knn_k: int = Field(default=10, ge=1)
    levels: list[int] | None = None
    # "hierarchical" (routing.DEFAULT_RULE): per-model accuracy shrunk global -> metadata
    # cell -> skill slices with empirical-Bayes pseudo-counts; "residual": the same with a
    # fixed `shrink`; "paper": Moayeri et al.'s average over slices.
    rule: Literal["paper", "residual", "hierarchical"] = "hierarchical"
    # metadata columns entering the policy; default (residual, hierarchical): [metadata_column]
    metadata_slices: list[str] | None = None
    cost_lambda: float = Field(default=0.0, ge=0)  # maximise accuracy − λ·cost per call
    # extra baselines of routing_evaluation, "package.module:ClassName" (a Router, see
    # skill_assets.routing.routers): imported by path in whichever process runs the asset
    baselines: list[str] = Field(default_factory=list)

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, v: list[str]) -> list[str]:
        for spec in v:
            if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", spec):
                raise ValueError(f"{spec!r} is not 'package.module:ClassName'")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate entries in {v}")
        return v


class InsightsEntry(_Strict):
    q_level: float = Field(default=0.05, gt=0, lt=1)
    # metadata columns whose values (within each benchmark) form the strata of the
    # conditional test; None = routing.metadata_column (if set), [] = benchmark only
    strata: list[str] | None = None
    min_n: int | None = Field(default=None, ge=1)  # None = slices.min_slice_size
    merge_overlap: float = Field(default=0.9, gt=0, le=1)  # Jaccard for merging findings

    @field_validator("strata")
    @classmethod
    def _strata(cls, v):
        if v is not None:
            if any(not c.strip() for c in v):
                raise ValueError("empty column name")
            if len(set(v)) != len(v):
                raise ValueError(f"duplicate column(s) in {v}")
        return v

    def strata_columns(self, routing: RoutingEntry) -> list[str]:
        """The metadata columns of the conditional test's strata."""
        if self.strata is not None:
            return list(self.strata)
        return [routing.metadata_column] if routing.metadata_column else []


class ValidationEntry(_Strict):
    """Skill validation (paper §2 relevance verification, §4 probing questions)."""

    verifier: LLMEntry | None = None  # judges skill relevance and probe consistency
    sample_size: int = Field(default=100, ge=1)  # instances sampled for verification
    # negatives closer than this (cosine) to any listed skill are not sampled
    negative_max_similarity: float = Field(default=0.6, gt=0, le=1)
    min_listed_relevance: float = Field(default=0.7, ge=0, le=1)  # asset check bar
    probe_instances_per_slice: int = Field(default=10, ge=1)
    probe_models: list[str] | None = None  # default: every live model
    seed: int = 0


class Registry(_Strict):
    annotator: AnnotatorEntry = AnnotatorEntry()
    embedder: EmbedderEntry = EmbedderEntry()
    benchmarks: list[BenchmarkEntry] = Field(min_length=1)
    models: list[ModelEntry] = Field(default_factory=list)
    slices: SlicesEntry = SlicesEntry()
    routing: RoutingEntry = RoutingEntry()
    insights: InsightsEntry = InsightsEntry()
    validation: ValidationEntry = ValidationEntry()
    judge: LLMEntry | None = None  # grades free-form answers exact match could not
    compare: list[tuple[str, str]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        for kind, names in (
            ("benchmarks", [b.name for b in self.benchmarks]),
            ("models", [m.name for m in self.models]),
        ):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"{kind}: duplicate name(s) {sorted(dup)}")
        return self


class Project:
    """A loaded, validated project: its folder, registry and state paths."""

    def __init__(
        self,
        root: Path,
        registry: Registry,
        registry_path: Path,
        allow_missing_results: bool = False,
    ):
        self.root = root
        self.registry = registry
        self.registry_path = registry_path
        # Only `evaluate` (which writes a live model's results file) may find it missing.
        self.allow_missing_results = allow_missing_results

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def assets_dir(self) -> Path:
        return self.state_dir / "assets"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster"

    @property
    def lancedb_dir(self) -> Path:
        return self.state_dir / "lancedb"

    @property
    def call_cache_path(self) -> Path:
        return self.state_dir / "llm_calls.sqlite"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def live_epochs_path(self) -> Path:
        return self.state_dir / "live_epochs.json"

    def live_epoch(self, model: str) -> str | None:
        """The epoch of a live model's latest scheduled re-evaluation (None: never)."""
        if not self.live_epochs_path.exists():
            return None
        return json.loads(self.live_epochs_path.read_text()).get(model)

    def set_live_epoch(self, model: str, epoch: str) -> None:
        data = {}
        if self.live_epochs_path.exists():
            data = json.loads(self.live_epochs_path.read_text())
        data[model] = epoch
        atomic.write_text(self.live_epochs_path, json.dumps(data, sort_keys=True))

    def resolve(self, rel: str, key: str) -> Path:
        """Resolve a registry path; it must exist and stay inside the project folder.

        Symlinks are followed, and a folder's files (symlinks included) must stay inside
        the project too: a results folder is read file by file by the importers.
        """
        path = (self.root / rel).resolve()
        root = self.root.resolve()
        if not is_inside(path, root):
            raise RegistryError(
                f"{self.registry_path}: key '{key}': path {rel!r} escapes the project folder"
            )
        if not path.exists():
            raise RegistryError(f"{self.registry_path}: key '{key}': path {rel!r} does not exist")
        if path.is_dir():
            check_tree(path, root, f"{self.registry_path}: key '{key}'")
        return path

    def benchmark(self, name: str) -> BenchmarkEntry:
        for b in self.registry.benchmarks:
            if b.name == name:
                return b
        raise RegistryError(f"{self.registry_path}: no benchmark named {name!r}")

    def model(self, name: str) -> ModelEntry:
        for m in self.registry.models:
            if m.name == name:
                return m
        raise RegistryError(f"{self.registry_path}: no model named {name!r}")

    def benchmark_path(self, name: str) -> Path:
        i = [b.name for b in self.registry.benchmarks].index(name)
        return self.resolve(self.registry.benchmarks[i].path, f"benchmarks[{i}].path")

    def results_path(self, name: str) -> Path | None:
        i = [m.name for m in self.registry.models].index(name)
        entry = self.registry.models[i]
        if entry.results is None:
            return None
        if self.allow_missing_results and not (self.root / entry.results).exists():
            return None  # `evaluate` is about to write it
        return self.resolve(entry.results, f"models[{i}].results")

    def results_target(self, name: str) -> Path:
        """Where `evaluate` writes a model's results (its `results` path, or a default)."""
        entry = self.model(name)
        rel = entry.results or f"results/{name}.jsonl"
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise RegistryError(
                f"{self.registry_path}: results path {rel!r} escapes the project folder"
            )
        return path


def is_inside(path: Path, root: Path) -> bool:
    """Whether an already resolved path is `root` or below it."""
    return path == root or root in path.parents


def check_tree(folder: Path, root: Path, where: str) -> None:
    """Every file and folder under `folder`, symlinks resolved, stays inside `root`."""
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath).resolve()
        if here in seen:  # a symlink loop: walked already
            dirnames[:] = []
            continue
        seen.add(here)
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if not is_inside(entry.resolve(), root):
                raise RegistryError(
                    f"{where}: {entry} links outside the project folder; copy the file into"
                    " the project instead of linking it"
                )


def inside_project(root: Path, base: Path, value: str, where: str) -> Path:
    """Resolve `value` (relative to `base`), symlinks included; it must exist inside `root`.

    `where` names the file, row and field for the error.
    """
    root = root.resolve()
    try:
        path = (base / value).resolve()
    except (OSError, ValueError):
        raise RegistryError(f"{where}: not a usable path") from None
    if not is_inside(path, root):
        raise RegistryError(
            f"{where}: path {value!r} is outside the project folder {root}; only files inside"
            " the project are read"
        )
    if not path.is_file():
        raise RegistryError(f"{where}: file {value!r} does not exist")
    return path


_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_media_type(head: bytes) -> str | None:
    """The media type of PNG, JPEG, GIF or WebP bytes (by magic bytes); None otherwise."""
    for magic, media in _IMAGE_MAGIC:
        if head.startswith(magic):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key given twice in one mapping (the last would win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: let the base class report it
                first = None
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first + 1})",
                    key_node.start_mark,
                )
            try:
                seen[key] = key_node.start_mark.line
            except TypeError:
                pass
        return super().construct_mapping(node, deep=deep)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_project(project_dir: str | Path, allow_missing_results: bool = False) -> Project:
    """Load and validate `<project_dir>/skill-slices.yaml` (or a registry file path).

    A model's `results` path must exist, even when the model also has a provider (a typo
    would otherwise silently evaluate it live), unless `allow_missing_results` (`evaluate`).
    """
    p = Path(project_dir)
    registry_path = p if p.is_file() else p / REGISTRY_FILE
    if not registry_path.exists():
        raise RegistryError(f"{registry_path}: registry file not found")
    registry = _read_registry(registry_path)
    project = Project(
        registry_path.parent.resolve(), registry, registry_path, allow_missing_results
    )
    _check_benchmarks(project, registry, registry_path)
    _check_models(project, registry, registry_path, allow_missing_results)
    _check_references(registry, registry_path)
    return project


def _read_registry(registry_path: Path) -> Registry:
    """The registry file parsed and validated; the first problem as a RegistryError."""
    try:
        raw = yaml.load(registry_path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except UnicodeDecodeError as e:
        raise RegistryError(f"{registry_path}: not UTF-8 text ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(e, "problem", None) or "syntax error"
        raise RegistryError(f"{registry_path}: {where}: invalid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{registry_path}: expected a mapping at the top level")
    try:
        registry = Registry.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise RegistryError(f"{registry_path}: key '{_loc(err['loc'])}': {msg}") from None
    return registry


def _check_benchmarks(project: Project, registry: Registry, registry_path: Path) -> None:
    """Benchmark paths exist; skills and importer options are consistent."""
    for i, b in enumerate(registry.benchmarks):
        project.resolve(b.path, f"benchmarks[{i}].path")
    for i, b in enumerate(registry.benchmarks):
        if b.skills is not None:
            if b.skills_column is not None:
                raise RegistryError(
                    f"{registry_path}: key 'benchmarks[{i}]': give 'skills' or 'skills_column',"
                    " not both"
                )
            project.resolve(b.skills, f"benchmarks[{i}].skills")
        if b.options is not None:
            parse_options(b.options, f"{registry_path}: key 'benchmarks[{i}].options'")
            if not b.from_harness and b.options:
                raise RegistryError(
                    f"{registry_path}: key 'benchmarks[{i}].options': importer options apply"
                    " to harness outputs (format lm-eval, inspect, helm or a reader's import"
                    " path) only; an instances file takes none"
                )


def _check_models(
    project: Project, registry: Registry, registry_path: Path, allow_missing_results: bool
) -> None:
    """Results paths exist (see load_project); model options parse."""
    for i, m in enumerate(registry.models):
        if m.results is not None:
            if m.provider is not None and not (project.root / m.results).exists():
                if allow_missing_results:
                    continue
                raise RegistryError(
                    f"{registry_path}: key 'models[{i}].results': path {m.results!r} does not"
                    f" exist; create it with `skill-slices evaluate --model {m.name}`, or"
                    " remove 'results' to evaluate the model live during `run`"
                )
            project.resolve(m.results, f"models[{i}].results")
        if m.options is not None:
            parse_options(m.options, f"{registry_path}: key 'models[{i}].options'")


def _check_references(registry: Registry, registry_path: Path) -> None:
    """Models named by `compare` and `validation.probe_models` are registered (probe models
    live); `routing.metadata_column` is not empty."""
    for i, pair in enumerate(registry.compare):
        for name in pair:
            if name not in {m.name for m in registry.models}:
                raise RegistryError(f"{registry_path}: key 'compare[{i}]': unknown model {name!r}")
    live = {m.name: m.live for m in registry.models}
    for name in registry.validation.probe_models or []:
        if name not in live:
            raise RegistryError(
                f"{registry_path}: key 'validation.probe_models': unknown model {name!r}"
            )
        if not live[name]:
            raise RegistryError(
                f"{registry_path}: key 'validation.probe_models': model {name!r} has no"
                " provider to ask (probes need a live model)"
            )
    if registry.routing.metadata_column is not None and not registry.routing.metadata_column:
        raise RegistryError(f"{registry_path}: key 'routing.metadata_column': empty")


def stable_hash(*parts) -> str:
    """A short, stable sha256 of JSON-serialisable parts."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, or of every file under a folder."""
    h = hashlib.sha256()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]
