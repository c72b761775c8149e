"""Markdown for Dagster metadata that data cannot turn into a fetch.

The Dagster UI renders ``MetadataValue.md`` with GitHub-flavoured Markdown: a question
holding ``![x](http://host/pixel.png)`` (or an annotator returning it as a skill name)
would make the browser fetch that URL when someone opens the asset. Data text is
therefore escaped where it is inserted (:func:`md_text`: every ASCII punctuation mark
backslash-escaped, which CommonMark renders as the character itself, so the text is
shown faithfully), and every Markdown value is checked once more as a whole
(:func:`safe_md`): anything that still parses as a remote image, a link or raw HTML makes
the whole value be shown as plain text in a code block.
"""

from __future__ import annotations

import re
import string
from functools import cache

from dagster import MetadataValue

# A bounded preview: one metadata value never carries more than this many characters
# (the inline PNG plots of the aggregate assets are ~100 kB).
MAX_MARKDOWN_CHARS = 1_000_000
_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")
_OUR_IMAGE = "data:image/png;base64,"


def md_text(value, limit: int | None = None) -> str:
    """Data text as inert inline Markdown: one line, at most `limit` characters, escaped."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    text = " ".join(text.split())
    return _PUNCT.sub(r"\\\1", text)


def md_code(text: str) -> str:
    """Text shown verbatim in a fenced code block (the fence outgrows any backtick run)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


@cache
def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def unsafe_elements(markdown: str) -> list[str]:
    """What in `markdown` would fetch or link anything: remote images, links, raw HTML."""
    found = []
    stack = list(_parser().parse(markdown))
    while stack:
        tok = stack.pop()
        if tok.type == "image" and not str(tok.attrs.get("src", "")).startswith(_OUR_IMAGE):
            found.append(f"image {tok.attrs.get('src')}")
        elif tok.type == "link_open" and not str(tok.attrs.get("href", "")).startswith("#"):
            found.append(f"link {tok.attrs.get('href')}")
        elif tok.type in ("html_inline", "html_block"):
            found.append(f"html {tok.content[:40]}")
        stack.extend(tok.children or [])
    return found


def safe_md(markdown: str) -> MetadataValue:
    """``MetadataValue.md`` that cannot make the viewer fetch anything, of bounded size."""
    if len(markdown) > MAX_MARKDOWN_CHARS:
        markdown = f"*(preview omitted: {len(markdown):,} characters)*"
    if unsafe_elements(markdown):
        return MetadataValue.md(md_code(markdown))
    return MetadataValue.md(markdown)
