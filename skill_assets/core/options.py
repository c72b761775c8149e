"""Importer options, one typed model for every harness reader (registry:
``models[].options`` / ``benchmarks[].options``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from skill_assets.core.errors import RegistryError


class ImportOptions(BaseModel):
    """Per-entry importer options (registry: ``models[].options`` / ``benchmarks[].options``)."""

    model_config = ConfigDict(extra="forbid")

    task: str | dict[str, str] | None = None
    """Harness task (lm-eval), ``eval.task`` (inspect) or run name (helm) feeding a
    benchmark; a mapping gives one per benchmark. Default: the benchmark's name."""
    metric: str | None = None
    """lm-eval per-sample metric key / HELM stat name (default: see module docs)."""
    filter: str | None = None
    """lm-eval filter pipeline to keep (default ``none``, else the file's first)."""
    scorer: str | None = None
    """Inspect scorer name in ``scores`` (default: the log's first scorer)."""
    value_key: str | None = None
    """Inspect: key to read when a score value is a dict."""
    split: str | None = None
    """HELM split of the stats (default ``test``, else ``valid``)."""
    id_field: str | None = None
    """lm-eval: a ``doc`` field; inspect: a sample ``metadata`` field, used as instance_id."""
    question_field: str | None = None
    """lm-eval ``doc`` field holding the question (instances only)."""
    choices_field: str | None = None
    """lm-eval ``doc`` field holding the options (instances only)."""
    answer_field: str | None = None
    """lm-eval ``doc`` field holding the gold answer (default: the sample's ``target``)."""
    ignore_unknown: bool = False
    """Skip result rows whose id is not in the benchmark (default: error)."""
    allow_partial: bool = False
    """Inspect: import a log whose status is not ``success`` (an aborted or cancelled run);
    its rows are imported with a warning that the run is partial (default: error)."""


def parse_options(options: Mapping[str, Any] | ImportOptions | None, where: str = "options"):
    """Validate an options mapping; errors name ``where`` and the offending key."""
    if options is None:
        return ImportOptions()
    if isinstance(options, ImportOptions):
        return options
    if not isinstance(options, Mapping):
        raise RegistryError(f"{where}: expected a mapping of importer options")
    try:
        return ImportOptions.model_validate(dict(options))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        known = ", ".join(ImportOptions.model_fields)
        raise RegistryError(f"{where}: key '{key}': {msg} (known keys: {known})") from None
