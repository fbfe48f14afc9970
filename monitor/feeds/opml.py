"""OPML in and out: feeds from an OPML file appended to config.toml text, and feeds as OPML 2.0.

Pure functions over bytes and text; the CLI reads and writes the files.

Import (`import_opml`):
- the OPML is parsed without entities or external references (defusedxml): a file with a
  DTD entity is refused, never expanded;
- every `<outline>` with an `xmlUrl`, at any depth, is a feed; outlines without one are
  folders and are only walked through;
- a URL must be an absolute http(s) URL with a host; others are skipped with a reason;
- a URL already in config.toml (or earlier in the same file) is skipped. URLs are compared
  without their scheme (http and https of one feed are the same feed), with the host in
  lower case, without a default port and without a fragment;
- the name is the outline's `title`, else its `text`, else the URL's host, cleaned to a
  valid feed name (no control characters, no surrounding blanks, at most 200 characters) and
  made unique against the config's names (case-insensitive) with " (2)", " (3)", ...;
- an outline marked `isComment="true"` (how OPML 2.0 comments one out, and how `export_opml`
  writes a disabled feed) is imported with `enabled = false`;
- the new `[[feeds]]` tables are inserted as text right after the last `[[feeds]]` table (or
  at the end of the file when there is none), so every comment and the layout of the file
  stay as they were; `${` in a name or URL is written as `$${` (config.toml interpolates
  `${VAR}` in every string). The result is checked by parsing it again: the feeds must be the
  old ones followed by the new ones, else `OpmlError`.

Export (`export_opml`): OPML 2.0 with one `<outline type="rss">` per feed, in config order;
a disabled feed gets `isComment="true"`. URLs are written as given: a feed URL that holds a
token (resolved from `${VAR}`) is in the output too.
"""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
import tomlkit
from defusedxml import DefusedXmlException

from monitor.errors import OpmlError
from monitor.types import FeedConfig

__all__ = ["ImportedFeed", "OpmlError", "SkippedOutline", "export_opml", "import_opml"]

MAX_NAME = 200  # as monitor.config.MAX_NAME
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_BLANKS = re.compile(r"\s+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADER = re.compile(r"\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?")
_ARRAY_HEADER = re.compile(r"\s*\[\[\s*feeds\s*\]\]\s*(?:#.*)?")


@dataclass(frozen=True, slots=True)
class ImportedFeed:
    name: str
    url: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SkippedOutline:
    label: str  # the URL, or the outline's title when the URL is missing
    reason: str


def import_opml(
    opml: bytes, config_text: str
) -> tuple[str, list[ImportedFeed], list[SkippedOutline]]:
    """`config_text` with a `[[feeds]]` table appended for each new feed of `opml`.

    Returns (new text, feeds added, outlines skipped). OpmlError when the OPML is not a
    well-formed, entity-free OPML document, or config_text is not TOML whose `feeds` can be
    extended with `[[feeds]]` tables.
    """
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as exc:
        raise OpmlError(f"config.toml is not valid TOML: {exc}") from None
    existing = config.get("feeds", [])
    if not isinstance(existing, list) or not all(isinstance(f, dict) for f in existing):
        raise OpmlError("config.toml: feeds is not a list of [[feeds]] tables")
    # "$${" in config.toml is a literal "${" (see _toml_string)
    seen = {_url_key(_literal(u)) for f in existing if isinstance(u := f.get("url"), str)}
    names = {_literal(n).casefold() for f in existing if isinstance(n := f.get("name"), str)}

    added: list[ImportedFeed] = []
    skipped: list[SkippedOutline] = []
    for outline in _outlines(_parse(opml)):
        raw_url = (outline.get("xmlUrl") or "").strip()
        title = _clean(outline.get("title") or outline.get("text") or "")
        if not raw_url:
            if (outline.get("type") or "").lower() in ("rss", "atom"):
                skipped.append(SkippedOutline(title or "(untitled)", "no xmlUrl"))
            continue  # a folder
        problem = _url_problem(raw_url)
        if problem is not None:
            skipped.append(SkippedOutline(raw_url, problem))
            continue
        key = _url_key(raw_url)
        if key in seen:
            skipped.append(SkippedOutline(raw_url, "already in config.toml"))
            continue
        seen.add(key)
        name = _unique(title or _host_name(raw_url), names)
        names.add(name.casefold())
        enabled = (outline.get("isComment") or "").strip().lower() != "true"
        added.append(ImportedFeed(name, raw_url, enabled))

    if not added:
        return config_text, added, skipped
    new_text = _insert(config_text, added)
    _check(new_text, existing, added)
    return new_text, added, skipped


def export_opml(
    feeds: Iterable[FeedConfig], title: str = "news monitor feeds", now: datetime | None = None
) -> bytes:
    """The feeds as an OPML 2.0 document (UTF-8). `now`, if given, becomes `dateCreated`."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    if now is not None:
        ET.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if not feed.enabled:
            attrs["isComment"] = "true"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


# --- reading -------------------------------------------------------------------------------


def _parse(opml: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(opml)
    except DefusedXmlException:
        raise OpmlError("the OPML file declares XML entities or external references") from None
    except ET.ParseError as exc:
        raise OpmlError(f"the OPML file is not well-formed XML ({exc})") from None
    if _local(root.tag) != "opml":
        raise OpmlError(f"not an OPML file (the root element is <{_local(root.tag)}>)")
    return root


def _outlines(root: ET.Element) -> Iterable[ET.Element]:
    for body in root:
        if _local(body.tag) == "body":
            for element in body.iter():
                if _local(element.tag) == "outline":
                    yield element


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _url_problem(url: str) -> str | None:
    if _CONTROL.search(url) or " " in url:
        return "not a valid URL (blanks or control characters)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on an invalid port)
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http(s) URL"
    if not host:
        return "the URL has no host"
    return None


def _url_key(url: str) -> tuple[str, str, str, str]:
    """What makes two feed URLs the same feed (see the module doc)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return ("", url.strip(), "", "")
    if port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        port = None
    return (host, "" if port is None else str(port), parts.path or "/", parts.query)


def _literal(value: str) -> str:
    return value.replace("$${", "${")


def _clean(text: str) -> str:
    return _BLANKS.sub(" ", _CONTROL.sub(" ", text)).strip()


def _host_name(url: str) -> str:
    return urlsplit(url).hostname or "feed"


def _unique(name: str, taken: set[str]) -> str:
    base = name[:MAX_NAME].strip()
    candidate, n = base, 1
    while candidate.casefold() in taken:
        n += 1
        suffix = f" ({n})"
        candidate = base[: MAX_NAME - len(suffix)].rstrip() + suffix
    return candidate


# --- writing -------------------------------------------------------------------------------


def _insert(text: str, feeds: list[ImportedFeed]) -> str:
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    tables = [_table(f, newline) for f in feeds]
    after = _end_of_last_feed(lines)
    if after is None:  # no [[feeds]] yet: at the end of the file
        head = text if not text or text.endswith(("\n", "\r")) else text + newline
        sep = newline if head.strip() else ""
        return head + sep + newline.join(tables)
    before, rest = lines[:after], lines[after:]
    if before and not before[-1].endswith(("\n", "\r")):
        before[-1] += newline
    block = newline + newline.join(tables)
    if rest and rest[0].strip():
        block += newline  # keep a blank line before what follows
    return "".join(before) + block + "".join(rest)


def _table(feed: ImportedFeed, newline: str) -> str:
    lines = ["[[feeds]]", f"name = {_toml_string(feed.name)}", f"url = {_toml_string(feed.url)}"]
    if not feed.enabled:
        lines.append("enabled = false")
    return newline.join(lines) + newline


def _toml_string(value: str) -> str:
    return tomlkit.string(value.replace("${", "$${")).as_string()


def _end_of_last_feed(lines: list[str]) -> int | None:
    """The index of the line after the last content line of the last [[feeds]] table."""
    start: int | None = None
    in_string: str | None = None
    headers: list[int] = []
    for i, line in enumerate(lines):
        if in_string is None and _HEADER.fullmatch(line.rstrip("\r\n")):
            headers.append(i)
            if _ARRAY_HEADER.fullmatch(line.rstrip("\r\n")):
                start = i
        for quote in ('"""', "'''"):
            if (in_string is None or in_string == quote) and line.count(quote) % 2 == 1:
                in_string = None if in_string == quote else quote
    if start is None:
        return None
    end = next((h for h in headers if h > start), len(lines))
    last = start
    for i in range(start, end):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            last = i
    return last + 1


def _check(new_text: str, existing: list[object], added: list[ImportedFeed]) -> None:
    try:
        feeds = tomllib.loads(new_text).get("feeds", [])
    except tomllib.TOMLDecodeError as exc:
        raise OpmlError(f"cannot add [[feeds]] tables to this config.toml ({exc})") from None
    expected = [
        {"name": f.name.replace("${", "$${"), "url": f.url.replace("${", "$${")}
        | ({} if f.enabled else {"enabled": False})
        for f in added
    ]
    if feeds != [*existing, *expected]:
        raise OpmlError("cannot add [[feeds]] tables to this config.toml (its layout is unusual)")
