"""LanceDB store for skill-name vectors, keyed by embedder so spaces never mix.

Several processes may use one folder at once (two runs, a run and the UI, a notebook).
Reads need no coordination (LanceDB readers see whole versions), but "add the names that
are missing" is a read-then-write: two processes that both find a name missing would
both append it. So creating the table and adding rows happen under an OS file lock on
``<folder>/.skill_names.lock`` (``filelock``: an OS lock, released by the kernel even
when the holder is SIGKILLed), the missing names are computed again once the lock is held, and
each name is embedded and stored exactly once. Appends are retried if LanceDB reports a
commit conflict with a writer that does not take the lock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from filelock import FileLock
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

TABLE = "skill_names"
LOCK_FILE = ".skill_names.lock"
COMMIT_ATTEMPTS = 6


def _folder_lock(path: Path) -> FileLock:
    """Exclusive lock between processes and threads (each call is its own lock object, so
    threads of one process exclude each other too)."""
    return FileLock(str(path / LOCK_FILE), thread_local=False)


def _is_commit_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "retryable" in text


class SkillVectorStore:
    """One LanceDB table: (embedder, name, vector). Only unseen names are added."""

    def __init__(self, path: Path):
        import lancedb

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = lancedb.connect(str(path))

    def _open(self):
        """The table, or None if no process has created it yet."""
        try:
            return self.db.open_table(TABLE)
        except (ValueError, FileNotFoundError):
            return None

    def _table(self, dim: int):
        """Open or create the table; call with the folder lock held when it may not exist."""
        table = self._open()
        if table is not None:
            return table
        schema = pa.schema(
            [
                ("embedder", pa.string()),
                ("name", pa.string()),
                ("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        return self.db.create_table(TABLE, schema=schema, exist_ok=True)

    def _existing(self, embedder: str, dim: int) -> dict[str, np.ndarray]:
        """name -> vector of every name stored for `embedder`."""
        table = self._open()
        if table is None or table.count_rows() == 0:
            return {}
        import pyarrow.compute as pc

        data = table.to_arrow()
        data = data.filter(pc.equal(data["embedder"], embedder))
        # One (n, dim) array from the fixed-size lists, not n Python lists of floats.
        vectors = data["vector"].combine_chunks().flatten().to_numpy().reshape(-1, dim)
        return dict(zip(data["name"].to_pylist(), vectors, strict=True))

    @retry(
        retry=retry_if_exception(_is_commit_conflict),
        stop=stop_after_attempt(COMMIT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    def _append(self, data: pa.Table, dim: int) -> None:
        self._table(dim).add(data)

    def vectors_for(
        self, names: list[str], embedder, progress: bool = False
    ) -> tuple[np.ndarray, int]:
        """Vectors for `names` (in order), embedding only names never seen by this embedder.

        Returns (vectors, number newly embedded by this call).
        """
        dim = embedder.dim
        existing = self._existing(embedder.name, dim)
        missing = sorted({n for n in names if n not in existing})
        if missing:
            with _folder_lock(self.path):
                self._table(dim)  # created once, by whichever process comes first
                # Another process may have added some of them while we waited.
                existing = self._existing(embedder.name, dim)
                missing = sorted({n for n in names if n not in existing})
                if missing:
                    vecs = embedder.encode(missing, progress=progress)
                    self._append(
                        pa.table(
                            {
                                "embedder": [embedder.name] * len(missing),
                                "name": missing,
                                "vector": pa.array(list(vecs), type=pa.list_(pa.float32(), dim)),
                            }
                        ),
                        dim,
                    )
                    existing.update(zip(missing, vecs, strict=True))
        mat = np.asarray([existing[n] for n in names], dtype=np.float32).reshape(len(names), dim)
        return mat, len(missing)

    def search(self, vector: np.ndarray, embedder: str, k: int = 50) -> list[tuple[str, float]]:
        """Nearest skill names to `vector` (cosine), within one embedder's space."""
        table = self._open()
        if table is None:  # nothing embedded yet
            return []
        hits = (
            table.search(vector.astype(np.float32))
            .metric("cosine")
            .where(f"embedder = '{embedder.replace(chr(39), '')}'", prefilter=True)
            .limit(k)
            .to_list()
        )
        return [(h["name"], 1.0 - float(h["_distance"])) for h in hits]
