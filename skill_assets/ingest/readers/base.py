"""The contract between the ingest layer and one harness format: :class:`Reader`.

A reader turns one harness's on-disk output into rows; everything shared (resolving the
format, checking ids against the benchmark, building the RESULTS / INSTANCES frames,
turning unexpected failures into errors naming the file) is done once by the dispatch in
``skill_assets.ingest.importers``. Readers raise
:class:`~skill_assets.core.registry.RegistryError` naming the file and the line or key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from skill_assets.core.options import ImportOptions

# How specific the evidence is that a path is a reader's (the highest wins; a tie goes to
# the reader registered first). Name evidence beats extension or content evidence.
NOT_MINE = 0
BY_CONTENT = 1  # an extension or the first bytes / keys look like this format
BY_NAME = 2  # files named as the harness names them, somewhere inside a folder
EXACT = 3  # the path is (or directly holds) the harness's own file


@dataclass
class ResultRow:
    """One imported result before it becomes a RESULTS row."""

    instance_id: str
    correct: float  # the per-instance score in [0, 1]
    where: str  # file and line / key, for messages
    response: str | None = None
    parsed_answer: str | None = None
    cost_usd: float | None = None
    latency_s: float | None = None


@dataclass
class InstanceRow:
    """One question read from a harness output, before it becomes an INSTANCES row."""

    instance_id: str
    question: str
    options: list[str] | None
    answer: str  # a letter when there are options
    where: str
    image: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class ResultRows:
    """What :meth:`Reader.read_results` found for one benchmark."""

    rows: list[ResultRow]
    source: str  # the file the rows came from, for messages
    # what to check when ids are not the benchmark's (in the "unknown instance_id" error)
    id_hint: str = "options.id_field / options.task"


READER_MEMBERS = ("name", "layout", "recognise", "tasks", "read_results", "read_instances")


@runtime_checkable
class Reader(Protocol):
    """One harness format. Register it in ``readers/__init__.py`` or name it in the
    registry as ``format: "package.module:ReaderClass"`` (a class taking no arguments, or
    an instance)."""

    name: str  # the registry's ``format:`` value
    layout: str  # what a results folder of this format holds (for "cannot tell" errors)

    def recognise(self, path: Path) -> int:
        """How surely ``path`` (an existing file or folder) is this format: ``NOT_MINE``,
        ``BY_CONTENT``, ``BY_NAME`` or ``EXACT``. Must not raise on other formats' files."""
        ...

    def tasks(self, path: Path) -> list[str]:
        """The task / run names the path holds (each can feed the benchmark of that name)."""
        ...

    def read_results(
        self, path: Path, benchmark: str, instances: pl.DataFrame, opts: ImportOptions
    ) -> ResultRows | None:
        """One model's rows for ``benchmark`` (``instances`` is its INSTANCES frame), or
        None when the path holds nothing for it."""
        ...

    def read_instances(self, path: Path, benchmark: str, opts: ImportOptions) -> list[InstanceRow]:
        """The questions of ``benchmark``; an error when the format or the path has none."""
        ...
