"""The text of an instance that is embedded: one definition shared by the taxonomy
annotator and the question-vector cache (the kNN routing baseline), so each question is
embedded once per embedder."""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_INSTANCE_CHARS = 256  # embedded instance text: head + tail of question and options
_WS = re.compile(r"\s+")


def clean_text(text: str | None) -> str:
    """`text` with runs of whitespace made one space, stripped (None: empty)."""
    return _WS.sub(" ", text or "").strip()


def instance_text(
    question: str | None, options: Sequence[str] | None, max_chars: int = MAX_INSTANCE_CHARS
) -> str:
    """The text embedded for an instance: question and options, head and tail kept."""
    q = clean_text(question)
    opts = [clean_text(o) for o in (options or []) if o is not None and clean_text(o)]
    text = q
    if opts:
        text += " Options: " + "; ".join(opts)
    if len(text) <= max_chars:
        return text
    # The subject usually shows at the start of a question and the actual ask at the end
    # of the question (before the options); keep both.
    head_n = int(max_chars * 0.6)
    tail_n = max_chars - head_n - 5
    tail_src = q if len(q) > head_n + tail_n else text
    return text[:head_n].rstrip() + " ... " + tail_src[-tail_n:].lstrip()
