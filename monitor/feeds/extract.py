"""An article page's main text (full-text feeds, issue 12): pure, run in a worker process.

trafilatura finds the main text and drops navigation, cookie banners, related-article boxes,
comments and footers (docs/design.md says why trafilatura). It is imported here only, and this
module only by `monitor.worker_tasks`: the main process never loads it.

The body is decoded by the charset the HTTP header names, else trafilatura's own detection
(the page's <meta charset>, then a guess). The text is cut at `ARTICLE_MAX_CHARS`.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping

import trafilatura

from monitor.errors import FeedError

ARTICLE_MAX_CHARS = 100_000  # of text kept, matched and stored per article


def _charset(headers: Mapping[str, str]) -> str | None:
    content_type = headers.get("content-type", "")
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
            try:
                return codecs.lookup(charset).name
            except LookupError:
                return None
    return None


def extract_text(body: bytes, headers: Mapping[str, str], url: str) -> str:
    """The page's main text, paragraphs on lines of their own (FeedError when none)."""
    charset = _charset(headers)
    document: bytes | str = body.decode(charset, errors="replace") if charset else body
    if headers.get("content-type", "").lower().startswith("text/plain"):
        text = document if isinstance(document, str) else body.decode("utf-8", "replace")
    else:
        text = (
            trafilatura.extract(
                document,
                url=url,
                include_comments=False,
                include_tables=True,
                include_images=False,
                include_links=False,
                deduplicate=False,
                with_metadata=False,
            )
            or ""
        )
    text = text.strip()
    if not text:
        raise FeedError("no article text found on the page")
    return text[:ARTICLE_MAX_CHARS]
