"""LanceDB store for skill-name vectors, keyed by embedder so spaces never mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

TABLE = "skill_names"


class SkillVectorStore:
    """One LanceDB table: (embedder, name, vector). Only unseen names are added."""

    def __init__(self, path: Path):
        import lancedb

        path.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(path))

    def _table(self, dim: int):
        names = self.db.table_names() if hasattr(self.db, "table_names") else []
        if TABLE in names:
            return self.db.open_table(TABLE)
        schema = pa.schema(
            [
                ("embedder", pa.string()),
                ("name", pa.string()),
                ("vector", pa.list_(pa.float32(), dim)),
            ]
        )
        return self.db.create_table(TABLE, schema=schema, exist_ok=True)

    def _existing(self, embedder: str, dim: int) -> dict[str, np.ndarray]:
        table = self._table(dim)
        if table.count_rows() == 0:
            return {}
        df = table.to_arrow().to_pydict()
        out = {}
        for emb, name, vec in zip(df["embedder"], df["name"], df["vector"], strict=True):
            if emb == embedder:
                out[name] = vec
        return out

    def vectors_for(
        self, names: list[str], embedder, progress: bool = False
    ) -> tuple[np.ndarray, int]:
        """Vectors for `names` (in order), embedding only names never seen by this embedder.

        Returns (vectors, number newly embedded).
        """
        dim = embedder.dim
        existing = self._existing(embedder.name, dim)
        missing = sorted({n for n in names if n not in existing})
        if missing:
            vecs = embedder.encode(missing, progress=progress)
            self._table(dim).add(
                pa.table(
                    {
                        "embedder": [embedder.name] * len(missing),
                        "name": missing,
                        "vector": pa.array(list(vecs), type=pa.list_(pa.float32(), dim)),
                    }
                )
            )
            existing.update(zip(missing, vecs, strict=True))
        mat = np.asarray([existing[n] for n in names], dtype=np.float32).reshape(len(names), dim)
        return mat, len(missing)

    def search(self, vector: np.ndarray, embedder: str, k: int = 50) -> list[tuple[str, float]]:
        """Nearest skill names to `vector` (cosine), within one embedder's space."""
        table = self.db.open_table(TABLE)
        hits = (
            table.search(vector.astype(np.float32))
            .metric("cosine")
            .where(f"embedder = '{embedder.replace(chr(39), '')}'", prefilter=True)
            .limit(k)
            .to_list()
        )
        return [(h["name"], 1.0 - float(h["_distance"])) for h in hits]
