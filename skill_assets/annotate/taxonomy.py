"""The offline taxonomy annotator.

When no LLM is configured, every benchmark instance is mapped onto a hierarchical skill
taxonomy that ships with the package (``skill_assets/annotate/data/taxonomy.yaml``). The result has
the same shapes as the LLM rationale annotator's (``schemas.RATIONALES`` and
``schemas.MENTIONS``), with ``provenance = "taxonomy"``.

Method, per instance:

1. Every node is embedded once from its name, description and first keywords (cached on
   disk per taxonomy version and embedder, see `skill_assets.resources.question_vectors`).
2. The instance text (question and options, cut to a head and a tail of about 256
   characters: enough to see the subject of a long MMLU-Pro scenario, short enough for
   MiniLM to stay fast) is embedded once per embedder and kept in the project's
   question-vector cache; cosine similarity to every node is its semantic score.
3. Keyword cues of a node found in the full instance text add evidence (a cue shared by
   many nodes counts less; cues made only of common words are ignored).
4. A node's *path score* is a depth-weighted mean of the node scores along its root-to-node
   path, so a specific skill is chosen only when its general ancestors agree.
5. A per-benchmark *domain prior*: up to 512 of the benchmark's questions vote with their
   own best path; a path earns a bonus proportional to the share of votes of its level-1
   domain (GSM8K is arithmetic, so "petals" are counted rather than plant biology). It is
   inferred from the questions, never from metadata.
6. Metadata hints (fields such as ``subject``, ``category`` or ``task``) are read only when
   asked for (``use_metadata_hints``, registry ``annotator.metadata_hints``): embedded one
   value at a time, mixed into the general levels of a path; their keyword cues count too.
7. The best ``max_paths`` paths that are not prefixes of one another and score within a
   relative threshold of the best one become the rationale's steps (a further step in
   another top-level domain needs its own keyword cue); every node of a path is one
   mention, level 0 being the top-level skill. Nodes marked ``modality: image`` are
   penalised when the instance has no image; when it has one, the first step is the best
   visual path (reading the figure; only the general visual skill when nothing in the text
   names the kind of figure) and the other steps are the best non-visual paths that score
   at least ``visual_floor`` of the visual step and have a keyword cue of their own.

Instances are processed in chunks (bounded memory; vectors stored per chunk, so an
interrupted run resumes without embedding again).

Everything is deterministic: nodes and instances are processed in a fixed order, ties are
broken by node order, and scores are rounded before ranking.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml
from scipy.sparse import csr_matrix

from skill_assets.core.schemas import MENTIONS, RATIONALES, conform, empty
from skill_assets.core.text import MAX_INSTANCE_CHARS, instance_text
from skill_assets.core.text import clean_text as _clean

DEFAULT_TAXONOMY_PATH = Path(__file__).resolve().parent / "data" / "taxonomy.yaml"

# Bump when the scoring below changes in a way that changes annotations.
ANNOTATOR_VERSION = "4"

# Metadata fields whose values describe the instance's subject (matched case-insensitively).
DEFAULT_HINT_KEYS: tuple[str, ...] = (
    "subject",
    "category",
    "skill",
    "skills",
    "topic",
    "subtopic",
    "domain",
    "field",
    "discipline",
    "subfield",
    "task",
    "context",
    "type",
)
# Hint values that say nothing about the subject.
_UNINFORMATIVE_HINTS = {
    "",
    "other",
    "others",
    "misc",
    "miscellaneous",
    "general",
    "none",
    "null",
    "n/a",
    "na",
    "unknown",
    "not applicable",
}

# Keywords made only of these tokens are too common to be cues.
_STOPWORDS = frozenset(
    """a an the of to in on at by for from with as is are was were be been being if then
    else and or not no all some any each every which what who whom how when where why this
    that these those it its than more less most least first last next after before had has
    have do does did would will can could should may might use used given find value one
    two none there their they he she his her him we you i me my our your many much same
    other only also into out up down over under about so such very just""".split()
)

_DEPTH_POWER = 1.0  # path score = mean of node scores weighted by (1 + level) ** power
MAX_KEYWORD_CHARS = 4000  # keyword cues are searched in this much of the full text
# Bonus per unit of vote share for a path in its benchmark's domain (`annotate_with_taxonomy`).
DOMAIN_PRIOR_WEIGHT = 0.5
CHUNK_SIZE = 4096  # questions per annotation chunk (memory bound, unit of saved progress)


class TaxonomyError(ValueError):
    """A malformed taxonomy; the message names the file and the node path."""


@dataclass(frozen=True)
class TaxonomyNode:
    node_id: str
    name: str
    description: str
    keywords: tuple[str, ...]
    level: int
    parent_id: str | None
    path: tuple[str, ...]  # names from the top-level skill down to this node
    modality: str | None  # inherited from ancestors when not set on the node
    is_leaf: bool


@dataclass
class Taxonomy:
    """A validated skill tree; `nodes` are in pre-order (parents before children)."""

    name: str
    version: str  # first 12 hex chars of the SHA-256 of the source content
    source: str
    nodes: list[TaxonomyNode]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n.node_id: i for i, n in enumerate(self.nodes)}

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def depth(self) -> int:
        """Number of levels (a tree with only top-level skills has depth 1)."""
        return 1 + max((n.level for n in self.nodes), default=-1)

    def index(self, node_id: str) -> int:
        return self._index[node_id]

    def node(self, node_id: str) -> TaxonomyNode:
        return self.nodes[self._index[node_id]]

    def lineage(self, node_id: str) -> list[TaxonomyNode]:
        """The nodes from the top-level skill down to `node_id`."""
        out = []
        cur: str | None = node_id
        while cur is not None:
            n = self.node(cur)
            out.append(n)
            cur = n.parent_id
        return out[::-1]

    def frame(self) -> pl.DataFrame:
        """One row per node: node_id, name, description, level, parent_id, path, ..."""
        return pl.DataFrame(
            {
                "node_id": [n.node_id for n in self.nodes],
                "name": [n.name for n in self.nodes],
                "description": [n.description for n in self.nodes],
                "level": [n.level for n in self.nodes],
                "parent_id": [n.parent_id for n in self.nodes],
                "path": [" > ".join(n.path) for n in self.nodes],
                "keywords": [list(n.keywords) for n in self.nodes],
                "modality": [n.modality for n in self.nodes],
                "is_leaf": [n.is_leaf for n in self.nodes],
            },
            schema={
                "node_id": pl.String,
                "name": pl.String,
                "description": pl.String,
                "level": pl.Int64,
                "parent_id": pl.String,
                "path": pl.String,
                "keywords": pl.List(pl.String),
                "modality": pl.String,
                "is_leaf": pl.Boolean,
            },
        )


# ---------------------------------------------------------------------------------------
# Loading and validation


def _slug(name: str) -> str:
    s = re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")
    return s or "node"


def _content_version(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]


def parse_taxonomy(
    data: Any, *, source: str = "<taxonomy>", version: str | None = None
) -> Taxonomy:
    """Validate a taxonomy given as parsed YAML (a mapping with `skills`, or a list of nodes).

    Raises `TaxonomyError` naming `source` and the path of the offending node.
    """
    # One validation walk: each check names the node path it is at, which the walk holds.
    if version is None:
        version = _content_version(
            json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        )
    if isinstance(data, list):
        data = {"skills": data}
    if not isinstance(data, dict):
        raise TaxonomyError(
            f"{source}: expected a mapping with a 'skills' list, got {type(data).__name__}"
        )
    unknown = set(data) - {"version", "name", "description", "skills"}
    if unknown:
        raise TaxonomyError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'skills'"
        )
    skills = data.get("skills")
    if not isinstance(skills, list) or not skills:
        raise TaxonomyError(f"{source}: 'skills' must be a non-empty list of nodes")

    nodes: list[TaxonomyNode] = []
    allowed = {"name", "description", "keywords", "children", "modality"}

    def where(path: Sequence[str], pos: str) -> str:
        shown = " > ".join(path) if path else pos
        return f"{source}: node {shown!r} ({pos})"

    def visit(raw: Any, pos: str, parent: TaxonomyNode | None) -> None:
        ppath = parent.path if parent else ()
        if not isinstance(raw, dict):
            raise TaxonomyError(
                f"{where(ppath, pos)}: a node must be a mapping, got {type(raw).__name__}"
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TaxonomyError(f"{where(ppath, pos)}: missing or empty 'name'")
        name = " ".join(name.split())
        path = (*ppath, name)
        bad = set(raw) - allowed
        if bad:
            raise TaxonomyError(
                f"{where(path, pos)}: unknown key(s) {sorted(bad)}; allowed {sorted(allowed)}"
            )
        desc = raw.get("description")
        if not isinstance(desc, str) or not desc.strip():
            raise TaxonomyError(f"{where(path, pos)}: missing or empty 'description'")
        kws = raw.get("keywords") or []
        if not isinstance(kws, list) or not all(isinstance(k, str | int | float) for k in kws):
            raise TaxonomyError(f"{where(path, pos)}: 'keywords' must be a list of strings")
        kws = tuple(dict.fromkeys(str(k).strip() for k in kws if str(k).strip()))
        modality = raw.get("modality")
        if modality is not None and modality != "image":
            raise TaxonomyError(
                f"{where(path, pos)}: 'modality' must be 'image' when given, got {modality!r}"
            )
        modality = modality or (parent.modality if parent else None)
        children = raw.get("children") or []
        if not isinstance(children, list):
            raise TaxonomyError(f"{where(path, pos)}: 'children' must be a list of nodes")
        node_id = (parent.node_id + "/" if parent else "") + _slug(name)
        node = TaxonomyNode(
            node_id=node_id,
            name=name,
            description=" ".join(desc.split()),
            keywords=kws,
            level=len(path) - 1,
            parent_id=parent.node_id if parent else None,
            path=path,
            modality=modality,
            is_leaf=not children,
        )
        nodes.append(node)
        seen: dict[str, int] = {}
        for i, child in enumerate(children):
            cpos = f"{pos}.children[{i}]"
            cname = child.get("name") if isinstance(child, dict) else None
            if isinstance(cname, str):
                key = _slug(cname)
                if key in seen:
                    raise TaxonomyError(
                        f"{where((*path, cname), cpos)}: duplicate sibling name "
                        f"(same id as children[{seen[key]}])"
                    )
                seen[key] = i
            visit(child, cpos, node)

    seen_top: dict[str, int] = {}
    for i, raw in enumerate(skills):
        tname = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(tname, str):
            key = _slug(tname)
            if key in seen_top:
                raise TaxonomyError(f"{where((tname,), f'skills[{i}]')}: duplicate top-level name")
            seen_top[key] = i
        visit(raw, f"skills[{i}]", None)
    return Taxonomy(
        name=str(data.get("name") or Path(source).stem),
        version=version,
        source=source,
        nodes=nodes,
    )


_cache_lock = threading.Lock()
_taxonomy_cache: dict[str, Taxonomy] = {}


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy YAML file (the packaged one by default)."""
    p = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    try:
        content = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TaxonomyError(f"{p}: cannot read taxonomy file: {e}") from e
    version = _content_version(content)
    key = f"{p.resolve()}:{version}"
    with _cache_lock:
        if key in _taxonomy_cache:
            return _taxonomy_cache[key]
    try:
        # libyaml's loader when PyYAML has it: the pure-Python one takes ~1 s on the
        # packaged taxonomy, most of a cold `route`
        data = yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{p}: invalid YAML: {e}") from e
    tax = parse_taxonomy(data, source=str(p), version=version)
    with _cache_lock:
        _taxonomy_cache[key] = tax
    return tax


def _resolve(taxonomy: Taxonomy | str | Path | None) -> Taxonomy:
    if isinstance(taxonomy, Taxonomy):
        return taxonomy
    return load_taxonomy(taxonomy)


def taxonomy_version(taxonomy: Taxonomy | str | Path | None = None) -> str:
    """Version of a taxonomy: the first 12 hex chars of the SHA-256 of its file content."""
    return _resolve(taxonomy).version


def taxonomy_frame(taxonomy: Taxonomy | str | Path | None = None) -> pl.DataFrame:
    """The taxonomy flattened to one row per node (see `Taxonomy.frame`)."""
    return _resolve(taxonomy).frame()


# ---------------------------------------------------------------------------------------
# Text preparation and keyword cues

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_WS = re.compile(r"\s+")


def _norm_token(t: str) -> str:
    # crude plural folding, applied identically to keywords and texts
    if len(t) > 3 and t[-1] == "s" and t[-2] != "s" and t.isalpha():
        return t[:-1]
    return t


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return [_norm_token(t) for t in _TOKEN.findall(text)]


_LATEX_DOLLAR = re.compile(r"\$(?!\s?\d)")  # "$" that is not a price: TeX math delimiters


def _lower_same_length(text: str) -> str:
    low = text.lower()
    if len(low) != len(text):  # a few characters lower-case to two; keep offsets aligned
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return low


def _token_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    low = _lower_same_length(text).replace("\u2019", "'").replace("\u2018", "'")
    low = _LATEX_DOLLAR.sub(" ", low)
    toks, spans = [], []
    for m in _TOKEN.finditer(low):
        toks.append(_norm_token(m.group()))
        spans.append(m.span())
    return toks, spans


@dataclass
class _KeywordIndex:
    """Keyword n-grams -> (node index, weight); matched by token n-gram lookup."""

    grams: dict[tuple[str, ...], list[tuple[int, float]]]
    prefixes: set[tuple[str, ...]]
    max_len: int

    @classmethod
    def build(cls, tax: Taxonomy) -> _KeywordIndex:
        stop = {_norm_token(w) for w in _STOPWORDS}
        owners: dict[tuple[str, ...], list[int]] = {}
        for i, n in enumerate(tax.nodes):
            for kw in n.keywords:
                toks = tuple(_tokens(kw))
                if not toks or len(toks) > 6:
                    continue
                if all(t in stop for t in toks):
                    continue
                if len(toks) == 1 and len(toks[0]) == 1 and toks[0].isascii() and toks[0].isalnum():
                    continue  # single letters such as "x" match everywhere
                lst = owners.setdefault(toks, [])
                if i not in lst:
                    lst.append(i)
        grams: dict[tuple[str, ...], list[tuple[int, float]]] = {}
        prefixes: set[tuple[str, ...]] = set()
        for toks, idx in owners.items():
            # shared cues are weaker; longer phrases are more specific
            w = min(1.0, 0.5 + 0.25 * len(toks)) / float(np.sqrt(len(idx)))
            grams[toks] = [(i, w) for i in idx]
            for k in range(1, len(toks) + 1):
                prefixes.add(toks[:k])
        return cls(grams, prefixes, max((len(g) for g in grams), default=1))

    def match(self, text: str) -> dict[int, list[tuple[float, int, int]]]:
        """node index -> [(weight, char start, char end)] of cues found in `text`."""
        toks, spans = _token_spans(text[:MAX_KEYWORD_CHARS])
        found: dict[int, list[tuple[float, int, int]]] = {}
        seen: set[tuple[str, ...]] = set()
        n = len(toks)
        for i in range(n):
            for k in range(1, self.max_len + 1):
                if i + k > n:
                    break
                g = tuple(toks[i : i + k])
                if g not in self.prefixes:
                    break
                if g in self.grams and g not in seen:
                    seen.add(g)
                    s, e = spans[i][0], spans[i + k - 1][1]
                    for node, w in self.grams[g]:
                        found.setdefault(node, []).append((w, s, e))
        return found


def metadata_hints(
    metadata: str | dict | None, hint_keys: Sequence[str] = DEFAULT_HINT_KEYS
) -> list[str]:
    """Subject-like metadata values (e.g. ``category``, ``task``), in `hint_keys` order."""
    if metadata is None:
        return []
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except json.JSONDecodeError:
            return []
    if not isinstance(metadata, dict):
        return []
    keys = {str(k).lower(): k for k in metadata}
    parts: list[str] = []
    for hk in hint_keys:
        k = keys.get(hk.lower())
        if k is None:
            continue
        v = metadata[k]
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str | int | float) and not isinstance(x, bool):
                h = _clean(str(x).replace("_", " "))[:100]
                if h.lower() not in _UNINFORMATIVE_HINTS and h not in parts:
                    parts.append(h)
    return parts[:8]


# ---------------------------------------------------------------------------------------
# Node embeddings (cached per taxonomy version and embedder)

_node_vec_cache: dict[tuple[str, str], np.ndarray] = {}


def node_text(node: TaxonomyNode) -> str:
    text = f"{node.name}: {node.description}"
    if node.keywords:
        text += " (" + ", ".join(node.keywords[:8]) + ")"
    return text


def _node_vectors(tax: Taxonomy, embedder, cache=None) -> np.ndarray:
    """Node vectors, from process memory, else the on-disk cache (`cache.node_vectors`),
    else embedded (782 nodes take ~10 s with MiniLM; `route` in a cold process must not).
    Vectors already in memory are still written to a cache that lacks them."""
    key = (tax.version, embedder.name)
    with _cache_lock:
        vec = _node_vec_cache.get(key)
    texts = [node_text(n) for n in tax.nodes]
    if cache is not None:
        vec = cache.node_vectors(tax.version, texts, embedder, known=vec)
    elif vec is None:
        vec = np.asarray(embedder.encode(texts), dtype=np.float32)
    with _cache_lock:
        _node_vec_cache[key] = vec
    return vec


@dataclass(frozen=True)
class _Structure:
    parent: np.ndarray  # parent index, -1 at the top level
    level: np.ndarray
    path_weights: np.ndarray  # (m, m): row n = weights of n's ancestors-or-self, summing to 1
    ancestors: list[frozenset[int]]  # ancestors-or-self
    image: np.ndarray  # bool: node needs an image
    domain: np.ndarray  # index of the node's level-1 ancestor (itself at levels 0 and 1)
    candidate: np.ndarray  # bool: node may end a chosen path
    everything: np.ndarray  # bool: all True
    path_sparse: Any = None  # path_weights as a scipy CSR matrix (a few ancestors per row)


def _structure(tax: Taxonomy, min_end_level: int) -> _Structure:
    m = len(tax.nodes)
    parent = np.full(m, -1, dtype=np.int64)
    level = np.zeros(m, dtype=np.int64)
    for i, n in enumerate(tax.nodes):
        level[i] = n.level
        if n.parent_id is not None:
            parent[i] = tax.index(n.parent_id)
    weights = np.zeros((m, m), dtype=np.float64)
    ancestors = []
    for i in range(m):
        chain = []
        j = i
        while j >= 0:
            chain.append(j)
            j = parent[j]
        ancestors.append(frozenset(chain))
        # deeper nodes weigh more: weight (1 + level) ** _DEPTH_POWER for each node on the path
        for j in chain:
            weights[i, j] = (1.0 + level[j]) ** _DEPTH_POWER
        weights[i] /= weights[i].sum()
    top = int(level.max()) if m else 0
    end_level = min(min_end_level, top)
    candidate = level >= end_level
    image = np.array([n.modality == "image" for n in tax.nodes], dtype=bool)
    domain = np.arange(m)
    for i in range(m):
        j = i
        while level[j] > 1:
            j = parent[j]
        domain[i] = j
    return _Structure(
        parent,
        level,
        weights,
        ancestors,
        image,
        domain,
        candidate,
        np.ones(m, dtype=bool),
        csr_matrix(weights),
    )


def _general_weights(st: _Structure, max_level: int) -> np.ndarray:
    """(m, m): row n averages over n's ancestors-or-self at level <= `max_level`."""
    m = len(st.level)
    w = np.zeros((m, m), dtype=np.float64)
    for i in range(m):
        anc = [a for a in st.ancestors[i] if st.level[a] <= max_level]
        w[i, anc] = 1.0 / len(anc)
    return w


# ---------------------------------------------------------------------------------------
# The annotator


@dataclass(frozen=True)
class _Choice:
    node: int
    score: float


def _select_paths(
    path_scores: np.ndarray,
    allowed: np.ndarray,
    st: _Structure,
    max_paths: int,
    rel_threshold: float,
    diversity: float,
    chosen: list[_Choice] | None = None,
    min_score: float = -np.inf,
) -> list[_Choice]:
    """Greedy choice of up to `max_paths` paths among `allowed` candidate end nodes.

    The best path is always taken (unless `chosen` already holds paths); runners-up must
    score within `rel_threshold` of the best allowed path, must not be an ancestor or a
    descendant of a chosen path, and lose `diversity` times the share of their path that
    they have in common with a chosen one. No path scoring below `min_score` is taken.
    """
    chosen = list(chosen or [])
    mask = st.candidate & allowed
    if not mask.any() or max_paths <= 0:
        return chosen
    scores = np.where(mask, np.round(path_scores, 5), -np.inf)
    order = np.argsort(-scores, kind="stable")  # ties keep taxonomy order
    best = float(scores[order[0]])
    floor = best - abs(best) * (1.0 - rel_threshold)
    pool = [int(i) for i in order[: 12 * max_paths] if scores[i] >= floor]
    taken = 0
    while pool and taken < max_paths:
        best_i, best_eff = -1, -np.inf
        for i in pool:
            anc = st.ancestors[i]
            if any(c.node in anc or i in st.ancestors[c.node] for c in chosen):
                continue
            overlap = max((len(anc & st.ancestors[c.node]) / len(anc) for c in chosen), default=0.0)
            eff = float(scores[i]) - diversity * overlap
            if eff > best_eff:
                best_i, best_eff = i, eff
        if best_i < 0 or (taken > 0 and best_eff < floor) or scores[best_i] < min_score:
            break
        chosen.append(_Choice(best_i, float(scores[best_i])))
        pool.remove(best_i)
        taken += 1
    return chosen


def _excerpt(text: str, start: int, end: int, width: int = 50) -> str:
    s = max(0, start - width)
    e = min(len(text), end + width)
    out = _clean(text[s:e])
    return ("..." if s > 0 else "") + out + ("..." if e < len(text) else "")


class _MemoryVectors:
    """A per-call stand-in for `QuestionVectorCache` when the caller gives none."""

    def __init__(self) -> None:
        self._vecs: dict[str, np.ndarray] = {}

    def vectors(self, texts, embedder, *, batch_size: int = 64, on_embedded=None):
        from skill_assets.resources.question_vectors import encode_texts

        missing = [t for t in dict.fromkeys(texts) if t not in self._vecs]
        if missing:
            self._vecs.update(
                zip(missing, encode_texts(embedder, missing, batch_size), strict=True)
            )
        if on_embedded is not None:
            on_embedded(len(missing))
        return np.stack([self._vecs[t] for t in texts]).astype(np.float32, copy=False)

    def node_vectors(self, version, texts, embedder, batch_size: int = 64, known=None):
        from skill_assets.resources.question_vectors import encode_texts

        return known if known is not None else encode_texts(embedder, list(texts), batch_size)


def _stable_rank(uid: str) -> str:
    return hashlib.sha256(str(uid).encode("utf-8")).hexdigest()


def _domain_priors(
    benchmarks: list,
    uids: list,
    texts: list[str],
    vectors_of,
    node_vecs: np.ndarray,
    st: _Structure,
    sample: int,
    min_instances: int,
) -> dict:
    """benchmark -> per node, the share of the benchmark's questions whose own best path
    runs through the node's level-1 skill (its domain).

    Each sampled question votes with the best path its text alone supports; the shares
    say what the benchmark is about (GSM8K: arithmetic), so a path into a domain that
    almost no question of the benchmark belongs to (plant biology) needs much stronger
    evidence. The sample (at most `sample` questions, chosen by a hash of the uid, so it
    does not depend on row order) keeps this bounded for large benchmarks. Benchmarks with
    fewer than `min_instances` questions get no prior (one routed question says nothing
    about its "benchmark")."""
    by_bench: dict = {}
    for i, b in enumerate(benchmarks):
        if texts[i]:
            by_bench.setdefault(b, []).append(i)
    domain = st.domain  # level-1 ancestor (or self) of every node
    priors = {}
    for b, rows in by_bench.items():
        if len(rows) < min_instances:
            continue
        rows = sorted(rows, key=lambda i: _stable_rank(uids[i]))[:sample]
        sims = (vectors_of([texts[i] for i in rows]) @ node_vecs.T).astype(np.float64)
        sims[:, st.image] -= 0.15  # as for a question without an image
        ps = sims @ st.path_weights.T
        ps[:, ~st.candidate] = -np.inf
        votes = np.bincount(domain[ps.argmax(axis=1)], minlength=len(domain))
        priors[b] = (votes / len(rows))[domain]
    return priors


def annotate_with_taxonomy(
    instances: pl.DataFrame,
    embedder,
    taxonomy: Taxonomy | str | Path | None = None,
    *,
    max_paths: int = 3,
    use_metadata_hints: bool = False,
    hint_keys: Sequence[str] = DEFAULT_HINT_KEYS,
    hint_weight: float = 0.5,
    hint_max_level: int = 1,
    keyword_weight: float = 0.08,
    hint_keyword_weight: float = 0.4,
    prior_weight: float = DOMAIN_PRIOR_WEIGHT,
    prior_sample: int = 512,
    prior_min_instances: int = 30,
    image_penalty: float = 0.15,
    rel_threshold: float = 0.95,
    visual_floor: float = 0.85,
    diversity: float = 0.03,
    cross_domain_cue: bool = True,
    min_end_level: int = 2,
    max_chars: int = MAX_INSTANCE_CHARS,
    batch_size: int = 64,
    chunk_size: int = CHUNK_SIZE,
    cache=None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Map each instance to up to `max_paths` root-to-node paths of the taxonomy.

    Returns (rationales, mentions) conforming to `schemas.RATIONALES` and `schemas.MENTIONS`.
    `instances` follows `schemas.INSTANCES`; `embedder` has `.encode(list[str])` returning
    unit vectors and a `.name`. Scoring (see the module docstring):

    - `use_metadata_hints`: read subject-like metadata fields (`hint_keys`: category,
      subject, task, ...) as a prior. Off by default: skills come from the question, not
      from the benchmark's own labels;
    - `hint_weight`: share in a path's score of the metadata-hint similarity of the path's
      general nodes (levels 0 to `hint_max_level`);
    - `keyword_weight`: bonus for a node whose keyword cues occur in the instance;
    - `hint_keyword_weight`: bonus for a node whose keyword cues occur in a metadata hint
      value (``context: "pie chart"`` names the figure-reading skill);
    - `prior_weight`: bonus for a path, times the share of its benchmark's questions
      whose own best path lies in the same level-1 domain (votes of up to `prior_sample`
      questions, for benchmarks of at least `prior_min_instances`): GSM8K is
      arithmetic, so its petals are counted rather than classified;
    - `image_penalty`: subtracted from ``modality: image`` nodes when there is no image;
    - `rel_threshold`: a further path must score at least this fraction of the best one;
    - `visual_floor`: with an image, the reasoning steps that follow the visual step must
      score at least this fraction of the visual step (a reasoning path's score is the
      larger of its score with and without the metadata hints);
    - `diversity`: penalty for sharing ancestors with an already chosen path;
    - `min_end_level`: chosen paths end at this level or deeper.

    Runs in chunks of `chunk_size` instances: memory is bounded by a chunk, and with a
    `cache` (`skill_assets.resources.question_vectors.QuestionVectorCache`) every chunk's vectors are
    stored as soon as they are computed, so an interrupted run resumes without embedding
    again, and each text is embedded at most once per embedder across runs and callers.
    `log` receives one progress line per chunk (plain lines, readable in any log).
    """
    # Over 80 lines only by its keyword parameters and this docstring; the stages are the
    # helpers _node_vectors, _Columns, _domain_priors and _annotate_chunk.
    if max_paths < 1:
        raise ValueError("max_paths must be at least 1")
    tax = _resolve(taxonomy)
    if instances.height == 0:
        return empty(RATIONALES), empty(MENTIONS)
    if cache is None:
        cache = _MemoryVectors()
    annotator_model = f"taxonomy:{tax.version}:{embedder.name}"
    st = _structure(tax, min_end_level)
    node_vecs = _node_vectors(tax, embedder, cache)
    kw_index = _KeywordIndex.build(tax)
    # at most 4 non-zeros per row: sparse products keep scoring cheap (200k questions)
    hint_weights = csr_matrix(_general_weights(st, hint_max_level))
    c = _Columns.of(instances, use_metadata_hints, max_chars)
    n = instances.height
    vectors_of = _CountingVectors(cache, embedder, batch_size)
    priors: dict = {}
    if prior_weight > 0:
        priors = _domain_priors(
            c.benchmarks,
            c.uids,
            c.texts,
            vectors_of,
            node_vecs,
            st,
            prior_sample,
            prior_min_instances,
        )
    params = _ScoreParams(
        max_paths=max_paths,
        hint_keys=tuple(hint_keys),
        hint_weight=hint_weight,
        keyword_weight=keyword_weight,
        hint_keyword_weight=hint_keyword_weight,
        prior_weight=prior_weight,
        image_penalty=image_penalty,
        rel_threshold=rel_threshold,
        visual_floor=visual_floor,
        diversity=diversity,
        cross_domain_cue=cross_domain_cue,
    )
    scorer = _Scorer(tax, st, kw_index, hint_weights, params, node_vecs, priors)
    rat_parts: list[pl.DataFrame] = []
    men_parts: list[pl.DataFrame] = []
    t0 = time.perf_counter()
    for c0 in range(0, n, chunk_size):
        rows = range(c0, min(n, c0 + chunk_size))
        rat_rows, men_rows = _annotate_chunk(scorer, c, rows, vectors_of, hint_keys)
        rat_parts.append(_rationale_frame(rat_rows, annotator_model, tax.version))
        men_parts.append(_mention_frame(men_rows))
        if log is not None:
            done = rows.stop
            rate = done / max(time.perf_counter() - t0, 1e-9)
            log(
                f"taxonomy annotator: {done}/{n} instances ({100 * done / n:.0f}%), "
                f"{vectors_of.embedded} texts embedded, {rate:.0f} instances/s"
            )
    rationales = pl.concat(rat_parts)
    mentions = pl.concat(men_parts)
    return conform(rationales, RATIONALES), conform(mentions, MENTIONS)


@dataclass(frozen=True)
class _Columns:
    """The instance columns the annotator reads, as lists (None where a column is absent)."""

    uids: list
    benchmarks: list
    questions: list
    options: list
    images: list
    metas: list
    texts: list[str]

    @classmethod
    def of(cls, instances: pl.DataFrame, use_metadata_hints: bool, max_chars: int) -> _Columns:
        n = instances.height
        cols = instances.columns

        def col(name: str) -> list:
            return instances[name].to_list() if name in cols else [None] * n

        uids, benchmarks = col("uid"), col("benchmark")
        questions, options, images = col("question"), col("options"), col("image")
        metas = col("metadata") if use_metadata_hints else [None] * n
        texts = [instance_text(q, o, max_chars) for q, o in zip(questions, options, strict=True)]
        return cls(uids, benchmarks, questions, options, images, metas, texts)


class _CountingVectors:
    """The cache's vectors of texts, counting the texts newly embedded (for the log)."""

    def __init__(self, cache, embedder, batch_size: int) -> None:
        self.cache = cache
        self.embedder = embedder
        self.batch_size = batch_size
        self.embedded = 0

    def _count(self, k: int) -> None:
        self.embedded += k

    def __call__(self, batch: list[str]) -> np.ndarray:
        return self.cache.vectors(
            batch, self.embedder, batch_size=self.batch_size, on_embedded=self._count
        )


@dataclass(frozen=True)
class _Scorer:
    """What scoring an instance needs besides the instance: fixed for the whole call."""

    tax: Taxonomy
    st: _Structure
    kw_index: _KeywordIndex
    hint_weights: Any
    params: _ScoreParams
    node_vecs: np.ndarray
    priors: dict


def _annotate_chunk(
    sc: _Scorer,
    c: _Columns,
    rows: range,
    vectors_of: _CountingVectors,
    hint_keys: Sequence[str],
) -> tuple[list[dict], list[dict]]:
    """(rationale rows, mention rows) of the instances at `rows`: their texts and metadata
    hints are embedded in one batch each."""
    chunk_texts = [c.texts[i] for i in rows]
    present = [t for t in chunk_texts if t]
    vecs = vectors_of(present) if present else np.zeros((0, sc.node_vecs.shape[1]), np.float32)
    t_sims = iter(vecs @ sc.node_vecs.T)
    sims = [next(t_sims) if t else None for t in chunk_texts]
    hints = [metadata_hints(c.metas[i], hint_keys) for i in rows]
    uniq_hints = sorted({h for hs in hints for h in hs})
    h_pos = {h: k for k, h in enumerate(uniq_hints)}
    h_sims = (vectors_of(uniq_hints) @ sc.node_vecs.T) if uniq_hints else None
    rat_rows: list[dict] = []
    men_rows: list[dict] = []
    for j, i in enumerate(rows):
        hint_sim = (
            h_sims[[h_pos[h] for h in hints[j]]].max(axis=0)
            if hints[j] and h_sims is not None
            else None
        )
        _annotate_one(
            sc.tax, sc.st, sc.kw_index, sc.hint_weights, sc.params,
            uid=c.uids[i], bench=c.benchmarks[i], sims=sims[j], question=c.questions[i],
            options=c.options[i], image=c.images[i], hints=hints[j], hint_sim=hint_sim,
            prior=sc.priors.get(c.benchmarks[i]), rat_rows=rat_rows, men_rows=men_rows,
        )  # fmt: skip
    return rat_rows, men_rows


@dataclass(frozen=True)
class _ScoreParams:
    max_paths: int
    hint_keys: tuple[str, ...]
    hint_weight: float
    keyword_weight: float
    hint_keyword_weight: float
    prior_weight: float
    image_penalty: float
    rel_threshold: float
    visual_floor: float
    diversity: float
    cross_domain_cue: bool


def _annotate_one(
    tax: Taxonomy,
    st: _Structure,
    kw_index: _KeywordIndex,
    hint_weights: np.ndarray,
    p: _ScoreParams,
    *,
    uid,
    bench,
    sims: np.ndarray | None,
    question,
    options,
    image,
    hints: list[str],
    hint_sim: np.ndarray | None,
    prior: np.ndarray | None,
    rat_rows: list[dict],
    men_rows: list[dict],
) -> None:
    """Score one instance's paths and append its rationale and mentions."""
    # The scoring steps (image penalty, keywords, hints, domain prior, greedy diverse
    # choice) read and write the same per-node arrays; they stay in order in one place.
    if sims is None:
        rat_rows.append(
            {
                "uid": uid,
                "benchmark": bench,
                "rationale": "",
                "n_steps": 0,
                "error": "instance has no question text",
            }
        )
        return
    sc = sims.astype(np.float64)
    full = _clean(question)
    if options:
        full += " " + " ".join(_clean(o) for o in options if o)
    cues = kw_index.match(full)
    for node, hits in cues.items():
        sc[node] += p.keyword_weight * (1.0 - np.exp(-sum(w for w, _, _ in hits)))
    hint_cue = None
    if hints and p.hint_keyword_weight:
        # cues in metadata values ("context": "pie chart") are evidence too
        hint_cue = np.zeros_like(sc)
        for node, hits in kw_index.match(" ; ".join(hints)).items():
            hint_cue[node] = p.hint_keyword_weight * (1.0 - np.exp(-sum(w for w, _, _ in hits)))
    has_image_nodes = bool(st.image.any())
    if has_image_nodes and not image:
        sc[st.image] -= p.image_penalty
    text_ps = st.path_sparse @ sc
    if prior is not None:
        # The benchmark's domains lift every path below a level-1 skill by the same amount,
        # so the question, not the prior, picks the specific skill within a domain.
        text_ps = text_ps + p.prior_weight * prior
    ps = text_ps if hint_cue is None else text_ps + st.path_sparse @ hint_cue
    if hint_sim is not None:
        # Hints name a domain: like the prior, they steer only the general levels.
        ps = (1.0 - p.hint_weight) * ps + p.hint_weight * (hint_weights @ hint_sim)
    chosen = []
    if has_image_nodes and image:
        # Read the picture first (one visual skill), then reason (the other steps).
        chosen = _select_paths(ps, st.image, st, 1, p.rel_threshold, p.diversity)
        if chosen and not (hint_cue is not None and hint_cue[chosen[0].node] > 0):
            # Without a cue naming the figure ("bar", "pie chart", "angle"), the text cannot
            # tell which kind of figure it is: say only the general visual skill.
            own = [a for a in st.ancestors[chosen[0].node] if st.level[a] >= 2]
            if not any(a in cues for a in own):
                chosen = [_Choice(int(st.domain[chosen[0].node]), chosen[0].score)]
    if chosen:
        # Metadata hints of image benchmarks mostly describe the figure ("bar chart"),
        # not the reasoning: they may lift a reasoning path but never demote it below
        # what the question text alone supports.
        floor = chosen[0].score - abs(chosen[0].score) * (1.0 - p.visual_floor)
        rps = np.maximum(text_ps, ps)
        chosen = _select_paths(
            rps, ~st.image, st, p.max_paths - 1, p.rel_threshold, p.diversity, chosen, floor
        )
        if len(chosen) > 1 and p.cross_domain_cue:
            # The reasoning steps lie in other top-level domains than the figure step: like
            # a further step of a text question, each needs its own cue in the text
            # ("median", "angle", "age gap"); the text of an image question is short and
            # a near-tie in embedding space is mostly a surface match ("Dark Orchid").
            chosen = chosen[:1] + [
                c
                for c in chosen[1:]
                if any(a in cues for a in st.ancestors[c.node] if st.level[a] >= 2)
            ]
    else:
        chosen = _select_paths(ps, st.everything, st, p.max_paths, p.rel_threshold, p.diversity)
        if len(chosen) > 1 and p.cross_domain_cue:
            # A further step in another top-level domain than the first needs its own cue
            # in the text: a near-tie in embedding space alone is mostly a surface match.
            top = st.ancestors[chosen[0].node]
            keep = chosen[:1]
            for c in chosen[1:]:
                same = any(st.level[a] == 0 and a in top for a in st.ancestors[c.node])
                own = [a for a in st.ancestors[c.node] if st.level[a] >= 2]
                if same or any(a in cues for a in own):
                    keep.append(c)
            chosen = keep
    rationale = _emit(tax, chosen, cues, full, hints, uid, bench, men_rows)
    rat_rows.append(
        {
            "uid": uid,
            "benchmark": bench,
            "rationale": rationale,
            "n_steps": len(chosen),
            "error": None,
        }
    )


def _rationale_frame(rows: list[dict], annotator_model: str, version: str) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "uid": pl.String,
            "benchmark": pl.String,
            "rationale": pl.String,
            "n_steps": pl.Int64,
            "error": pl.String,
        },
    ).with_columns(
        provenance=pl.lit("taxonomy"),
        annotator_model=pl.lit(annotator_model),
        prompt_version=pl.lit(version),
        call_id=pl.lit(None, dtype=pl.String),
        extracted_answer=pl.lit(None, dtype=pl.String),
    )


def _mention_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "uid": pl.String,
            "benchmark": pl.String,
            "step": pl.Int64,
            "level": pl.Int64,
            "skill_name": pl.String,
            "span": pl.String,
        },
    ).with_columns(provenance=pl.lit("taxonomy"))


def _quote_cues(found: list[str]) -> str:
    return "cues " + ", ".join(f'"{c}"' for c in found[:4])


def _emit(
    tax: Taxonomy,
    chosen: list[_Choice],
    cues: dict[int, list[tuple[float, int, int]]],
    full_text: str,
    hints: list[str],
    uid: str,
    bench: str | None,
    men_rows: list[dict],
) -> str:
    """Append the mentions of the chosen paths to `men_rows`; return the rationale text."""
    lines = []
    for step, ch in enumerate(chosen):
        lineage = tax.lineage(tax.nodes[ch.node].node_id)
        hits = [h for a in lineage for h in cues.get(tax.index(a.node_id), [])]
        if hits:
            found = list(dict.fromkeys(full_text[s:e] for _w, s, e in hits))
            s0, e0 = min((s, e) for _w, s, e in hits)
            step_span = f'{_quote_cues(found)} in "{_excerpt(full_text, s0, e0)}"'
        else:
            step_span = f'question: "{_excerpt(full_text, 0, 0, 100)}"'
        if hints:
            step_span += "; metadata: " + ", ".join(f'"{h}"' for h in hints)
        for a in lineage:
            own = cues.get(tax.index(a.node_id), [])
            span = (
                _quote_cues(list(dict.fromkeys(full_text[s:e] for _w, s, e in own)))
                if own
                else step_span
            )
            men_rows.append(
                {
                    "uid": uid,
                    "benchmark": bench,
                    "step": step,
                    "level": a.level,
                    "skill_name": a.name,
                    "span": span,
                }
            )
        leaf = lineage[-1]
        lines.append(
            f"Step {step + 1}: {leaf.name} - {leaf.description} "
            f"({' > '.join(leaf.path)}; score {ch.score:.3f}; {step_span})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Evaluation against human skill labels (used by benchmarks/mathvista_quality.py)


def step_paths(mentions: pl.DataFrame) -> dict[str, list[list[str]]]:
    """uid -> the skill paths of its steps (names general -> specific), in step order."""
    out: dict[str, list[list[str]]] = {}
    if mentions.height == 0:
        return out
    rows = mentions.sort("uid", "step", "level").group_by(["uid", "step"], maintain_order=True)
    for (uid, _step), g in rows:
        out.setdefault(str(uid), []).append(g["skill_name"].to_list())
    return out


def labels_from_paths(
    paths: Sequence[Sequence[str]], mapping: dict[str, Sequence[str] | str]
) -> set[str]:
    """Map taxonomy paths onto an external label set.

    `mapping` sends a node name (case-insensitive) to one label or a list of labels (an
    empty list: the node says nothing about the label set). Each path contributes the labels
    of its *deepest* node that appears in `mapping`, so a specific entry overrides a general
    one (``"geometry diagram reasoning"`` over ``"Visual reasoning"``); the result is the
    union over paths.
    """
    low = {k.lower(): ([v] if isinstance(v, str) else list(v)) for k, v in mapping.items()}
    out: set[str] = set()
    for path in paths:
        for name in reversed(list(path)):
            hit = low.get(str(name).lower())
            if hit is not None:
                out.update(hit)
                break
    return out


def multilabel_scores(
    gold: Sequence[set[str] | Sequence[str]],
    pred: Sequence[set[str] | Sequence[str]],
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Micro and macro precision/recall/F1 of multi-label predictions (scikit-learn).

    `gold[i]` and `pred[i]` are the label sets of instance i; labels outside `labels`
    (default: every label in `gold` or `pred`) are ignored. Micro scores pool true/false
    positives over labels; macro scores are the unweighted means of the per-label scores.
    A ratio with a zero denominator counts as 0 (``zero_division=0``).

    Returns ``{"micro": {"p", "r", "f1"}, "macro": {...}, "per_label": {label: {"p", "r",
    "f1", "support", "predicted"}}, "n": instances}``.
    """
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} instances, pred has {len(pred)}")
    if labels is None:
        labels = sorted(set().union(*map(set, gold), *map(set, pred)))
    labels = list(labels)
    zero = {"p": 0.0, "r": 0.0, "f1": 0.0}
    if not labels or not gold:
        return {"micro": zero, "macro": dict(zero), "per_label": {}, "n": len(gold)}
    known = set(labels)
    binarize = MultiLabelBinarizer(classes=labels).fit([labels])
    y_true = binarize.transform([set(g) & known for g in gold])
    y_pred = binarize.transform([set(p) & known for p in pred])

    def prf(average: str | None):
        return precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)[:3]

    per = {
        lab: {"p": float(p), "r": float(r), "f1": float(f), "support": int(n), "predicted": int(k)}
        for lab, p, r, f, n, k in zip(
            labels, *prf(None), y_true.sum(axis=0), y_pred.sum(axis=0), strict=True
        )
    }
    micro, macro = (
        dict(zip(("p", "r", "f1"), map(float, prf(a)), strict=True)) for a in ("micro", "macro")
    )
    return {"micro": micro, "macro": macro, "per_label": per, "n": len(gold)}
