"""Persistent text -> vector cache: each text is embedded at most once per embedder.

The taxonomy annotator and the kNN routing baseline embed the same question texts; both
read them from here, so a cold run embeds each question once and a re-run (or a resumed,
interrupted run) embeds nothing it has seen. Layout, under the project's state folder::

    question_vectors/<embedder slug>/part-<time>-<pid>-<rand>.parquet   key, vector
    question_vectors/<embedder slug>/nodes-<taxonomy version>-<hash>.npy

A part file holds the vectors one `put` call added (one annotation chunk), written to a
temporary name and renamed, so a killed process leaves either a whole part or none.
Several processes may add parts at once (benchmark partitions run in parallel): names are
unique and a key stored twice is harmless (the first copy wins on read). Keys are the
SHA-256 of the text (the text itself is never stored). Reads load the small key column of
every part once and then only the parts that hold wanted keys, so memory stays bounded by
what a caller asks for, not by the size of the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from skill_assets.core.atomic import atomic_path
from skill_assets.core.text import instance_text

PART_GLOB = "part-*.parquet"
# Merge the parts into one once there are this many (keeps the key scan cheap).
COMPACT_AT = 64


def text_key(text: str) -> str:
    """Cache key of a text: hex SHA-256 of its UTF-8 bytes (first 32 chars)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _slug(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z._-]+", "_", name).strip("_")
    return (s or "embedder")[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def encode_texts(embedder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """`embedder.encode` as float32, for embedders with or without a `batch_size` argument."""
    try:
        vec = embedder.encode(texts, batch_size=batch_size)
    except TypeError:  # embedders with the minimal encode(texts) signature
        vec = embedder.encode(texts)
    return np.asarray(vec, dtype=np.float32)


class QuestionVectorCache:
    """Text vectors on disk, one folder per embedder (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = threading.Lock()
        # key -> part file, per embedder folder; refreshed when new parts appear
        self._index: dict[Path, dict[str, str]] = {}
        self._seen_parts: dict[Path, set[str]] = {}

    @classmethod
    def for_project(cls, project) -> QuestionVectorCache:
        """The cache of one project, under its state folder."""
        return cls(project.state_dir / "question_vectors")

    def folder(self, embedder_name: str) -> Path:
        return self.root / _slug(embedder_name)

    # -- questions ------------------------------------------------------------------------

    def _refresh(self, folder: Path) -> dict[str, str]:
        index = self._index.setdefault(folder, {})
        seen = self._seen_parts.setdefault(folder, set())
        if not folder.exists():
            return index
        parts = sorted(p.name for p in folder.glob(PART_GLOB))
        gone = seen - set(parts)
        if gone:  # compacted by another process: rebuild from scratch
            index.clear()
            seen.clear()
        for name in parts:
            if name in seen:
                continue
            try:
                keys = pl.read_parquet(folder / name, columns=["key"])["key"].to_list()
            except FileNotFoundError:  # compacted away between glob and read
                continue
            for k in keys:
                index.setdefault(k, name)
            seen.add(name)
        return index

    def missing(self, texts: Sequence[str], embedder_name: str) -> list[str]:
        """The distinct texts of `texts` with no stored vector, in first-seen order."""
        with self._lock:
            index = self._refresh(self.folder(embedder_name))
        return [t for t in dict.fromkeys(texts) if text_key(t) not in index]

    def get(self, texts: Sequence[str], embedder_name: str) -> dict[str, np.ndarray]:
        """text -> stored vector, for the texts of `texts` that are stored."""
        folder = self.folder(embedder_name)
        with self._lock:
            index = self._refresh(folder)
        by_part: dict[str, dict[str, str]] = {}
        for t in dict.fromkeys(texts):
            k = text_key(t)
            part = index.get(k)
            if part is not None:
                by_part.setdefault(part, {})[k] = t
        out: dict[str, np.ndarray] = {}
        for part, wanted in by_part.items():
            try:
                df = pl.read_parquet(folder / part).filter(pl.col("key").is_in(list(wanted)))
            except FileNotFoundError:  # compacted by another process: look again
                with self._lock:
                    self._index.pop(folder, None)
                    self._seen_parts.pop(folder, None)
                return self.get(texts, embedder_name)
            df = df.unique("key", keep="first", maintain_order=True)
            vecs = _to_numpy(df["vector"])
            for k, v in zip(df["key"].to_list(), vecs, strict=True):
                out[wanted[k]] = v
        return out

    def put(self, texts: Sequence[str], vectors: np.ndarray, embedder_name: str) -> None:
        """Store the vectors of `texts` (one new part file, written atomically)."""
        if not len(texts):
            return
        folder = self.folder(embedder_name)
        folder.mkdir(parents=True, exist_ok=True)
        vectors = np.asarray(vectors, dtype=np.float32)
        df = pl.DataFrame(
            {
                "key": [text_key(t) for t in texts],
                "vector": pl.Series(vectors).cast(pl.Array(pl.Float32, vectors.shape[1])),
            }
        )
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(folder / name) as tmp:
            df.write_parquet(tmp)
        with self._lock:
            index = self._index.setdefault(folder, {})
            for k in df["key"].to_list():
                index.setdefault(k, name)
            self._seen_parts.setdefault(folder, set()).add(name)
        if len(self._seen_parts[folder]) >= COMPACT_AT:
            self.compact(embedder_name)

    def compact(self, embedder_name: str) -> None:
        """Merge the parts of one embedder into one file (readers retry on a vanished part)."""
        folder = self.folder(embedder_name)
        from skill_assets.resources.vector_store import _folder_lock

        with _folder_lock(folder):
            parts = sorted(folder.glob(PART_GLOB))
            if len(parts) < 2:
                return
            merged = (
                pl.scan_parquet(parts)
                .unique("key", keep="first", maintain_order=True)
                .collect(engine="streaming")
            )
            name = f"part-{time.time_ns():020d}-{os.getpid()}-merged.parquet"
            with atomic_path(folder / name) as tmp:
                merged.write_parquet(tmp)
            for p in parts:
                p.unlink(missing_ok=True)
        with self._lock:
            self._index.pop(folder, None)
            self._seen_parts.pop(folder, None)

    def vectors(
        self,
        texts: Sequence[str],
        embedder,
        *,
        batch_size: int = 64,
        on_embedded: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(len(texts), dim) vectors of `texts`, embedding (and storing) only unseen ones.

        `on_embedded(n)` is called with the number of texts this call had to embed."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        name = embedder.name
        found = self.get(texts, name)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            new = encode_texts(embedder, missing, batch_size)
            self.put(missing, new, name)
            found.update(zip(missing, new, strict=True))
        if on_embedded is not None:
            on_embedded(len(missing))
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    # -- taxonomy nodes -------------------------------------------------------------------

    def node_vectors(
        self,
        version: str,
        texts: Sequence[str],
        embedder,
        batch_size: int = 64,
        known: np.ndarray | None = None,
    ) -> np.ndarray:
        """Vectors of a taxonomy's node texts, stored as one .npy per taxonomy version,
        node texts and embedder (a changed description gives a new file). `known`: the
        vectors if the caller already has them (stored instead of embedding again)."""
        texts = list(texts)
        digest = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()[:12]
        folder = self.folder(embedder.name)
        path = folder / f"nodes-{re.sub(r'[^0-9A-Za-z]+', '_', version)}-{digest}.npy"
        if path.exists():
            try:
                vec = np.load(path, allow_pickle=False)
                if vec.shape[0] == len(texts):
                    return vec
            except (OSError, ValueError):  # damaged file: embed again and replace it
                pass
        if known is not None and len(known) == len(texts):
            vec = np.asarray(known, dtype=np.float32)
        else:
            vec = encode_texts(embedder, texts, batch_size)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, vec, allow_pickle=False)
        return vec


def _to_numpy(col: pl.Series) -> np.ndarray:
    if col.len() == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(col.to_numpy(), dtype=np.float32).reshape(col.len(), -1)


def question_vectors(
    instances: pl.DataFrame, embedder, cache: QuestionVectorCache
) -> tuple[np.ndarray, list[str]]:
    """One vector per instance (rows aligned with the returned uids), from the same text
    the taxonomy annotator embeds, so questions the annotator saw are not embedded again.
    Used by the kNN routing baseline."""
    n = instances.height
    opts = instances["options"].to_list() if "options" in instances.columns else [None] * n
    texts = [
        instance_text(q, o) or " "
        for q, o in zip(instances["question"].to_list(), opts, strict=True)
    ]
    return cache.vectors(texts, embedder), instances["uid"].to_list()
