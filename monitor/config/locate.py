"""Where a problem is: key paths as the user reads them, and their line in config.toml.

`Locator` finds the line of a key path by scanning the text for table headers and `key =`
lines (tomllib keeps no positions); `key_path` writes the path itself, array entries counted
from 1 and named as in the file: `rules[3] "nk-troops".query`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from monitor.textutil import cap

Loc = tuple[str | int, ...]
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?")


class Locator:
    """Line numbers for key paths, by scanning the text for table headers and `key =` lines.

    Cheap and conservative: array entries get a line only when the number of `[[name]]` headers
    equals the number of entries (not for inline arrays), and a key not found in its table's
    lines falls back to the table's header.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str, bool]] = []  # (0-based line, name, is array)
        for n, line in enumerate(self.lines):
            m = _HEADER.fullmatch(line)
            if m is not None:
                name = re.sub(r"\s*\.\s*", ".", m.group(2)).replace('"', "")
                self.headers.append((n, name, m.group(1) == "[["))

    def line(self, loc: Loc, raw: Mapping[str, Any]) -> int | None:
        if not loc or not isinstance(loc[0], str):
            return None
        table = loc[0]
        if len(loc) >= 2 and isinstance(loc[1], int):
            arrays = [h for h in self.headers if h[1] == table and h[2]]
            entries = raw.get(table)
            if not isinstance(entries, list) or len(arrays) != len(entries):
                return None
            start = arrays[loc[1]][0]
            key = loc[2] if len(loc) >= 3 else None
        else:
            tables = [h for h in self.headers if h[1] == table and not h[2]]
            if len(loc) == 1:  # a top-level key: its first header, or a `key =` line before any
                tables = [h for h in self.headers if h[1].split(".")[0] == table]
            if tables:
                start = tables[0][0]
                key = loc[1] if len(loc) >= 2 else None
            else:
                start, key = -1, table
        if isinstance(key, str):
            found = self.key_line(start, key)
            if found is not None:
                return found + 1
            if not isinstance(loc[1], int):  # `[channels.more]` rather than `more = ...`
                sub = [h for h in self.headers if h[1] == f"{table}.{key}"]
                if sub:
                    return sub[0][0] + 1
        return start + 1 if start >= 0 else None

    def key_line(self, start: int, key: str) -> int | None:
        later = [h[0] for h in self.headers if h[0] > start]
        end = later[0] if later else len(self.lines)
        pattern = re.compile(
            rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*="""
        )
        for n in range(start + 1, end):
            if pattern.match(self.lines[n]):
                return n
        return None


def key_path(loc: Loc, raw: Mapping[str, Any]) -> str:
    """`rules[3] "nk-troops".query`: entries counted from 1, with the name written in the file."""
    out = ""
    for i, key in enumerate(loc):
        if isinstance(key, int):
            out += f"[{key + 1}]"
            if i == 1 and loc[0] in ("feeds", "rules"):
                name = entry_name(raw, str(loc[0]), key)
                out += f" {quote(cut(CONTROL.sub('?', name)))}" if name is not None else ""
        else:
            plain = re.fullmatch(r"[A-Za-z0-9_-]+", key) and len(key) <= _SHOWN_MAX
            shown = key if plain else quote(cut(key))
            out += f".{shown}" if out else shown
    return out


def entry_name(raw: Mapping[str, Any], table: str, index: int) -> str | None:
    """The name of feeds[i] / rules[i] as written in the file (never an interpolated value)."""
    entries = raw.get(table)
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        name = entries[index].get("name")
        if isinstance(name, str) and name:
            return name
    return None


def suggest(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, [str(k) for k in known], n=1, cutoff=0.6)
    return f' (did you mean "{cut(close[0])}"?)' if close else ""


_SHOWN_MAX = 60  # characters of a name shown in a problem


def cut(text: str) -> str:
    """A name or key short enough to show in a problem (a long one ends in `…`)."""
    return cap(text, _SHOWN_MAX)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
