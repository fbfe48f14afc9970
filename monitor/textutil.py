"""Small text helpers shared by config, fetch, parse, render and delivery."""

from __future__ import annotations

ELLIPSIS = "…"


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with `…` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with every run of whitespace (line breaks included) made one space, stripped;
    with a `limit`, capped like `cap`."""
    line = " ".join(text.split())
    return line if limit is None else cap(line, limit)
