"""Feed bytes -> `ParsedFeed` of plain-text `Item`s. Pure: no network, no clock, no files.

RSS 0.9x/1.0/2.0 and Atom are first read by the lxml fast path (`fastparse`, about 5x cheaper
per entry) and go through feedparser whenever it declines a document (not well-formed, charset
problem, DOCTYPE, unusual structure: docs/parsing.md); JSON Feed 1/1.1 goes through `json`.
Both readers feed the same normalisation below, so their Items are comparable
(tests/test_parse_fast.py). feedparser is
only ever handed a byte stream and a synthetic Content-Type header: a `str` or even a `bytes`
argument can make feedparser 6 open a local file or URL, so the body is wrapped in `BytesIO`.
Its HTML sanitizer and URI rewriting are off (3x faster); we turn every field into plain text
ourselves, so no markup reaches the rules or the alerts.

Decisions, each covered by tests/test_parse.py:

- Text: title, summary, every content value and the categories (label, else term), with
  markup removed (`<script>`, `<style>`, `<template>` contents dropped, block elements and
  `<br>` become line breaks), entities decoded, control characters, lone surrogates, soft
  hyphens and zero-width spaces removed, whitespace collapsed, NFC. Every field is read as HTML
  whatever its declared type (so a literal `<word>` in plain text is lost; `a < b` is kept),
  and a field that still looks like markup afterwards (double-escaped HTML, common in RSS) gets
  a second pass. Markup is removed by a small linear-time tokenizer, not `html.parser`, which
  is quadratic on unterminated tags (see `_strip_markup`). `Item.text` joins the parts with
  "\\n", drops parts that repeat or are contained in another part, and is capped at
  `MAX_TEXT` characters; titles at `MAX_TITLE`.
- Identity (`Item.key`): the guid, else the link, else `"sha256:" + sha256(title "\\n" text)`.
  A guid or link longer than `MAX_KEY` becomes `"guid:sha256:<hex>"` / `"link:sha256:<hex>"`.
  Within one document the first item with a key wins. A later item with the same key is
  dropped when its title and text are the same too, and otherwise keyed by the content hash
  (some feeds give every item one guid or link: keeping only the first would lose them all).
  Entries with no guid, link, title or text are dropped as debris of broken markup.
- Links: resolved against the feed URL by `urls.resolve_link` (only http/https survive). The feed
  URL is deliberately NOT given to feedparser as Content-Location: feedparser would then
  "resolve" relative guids too (`<guid>12345</guid>` -> `https://host/feed/12345`), tying every
  item's identity to the feed URL, so a redirect or an http->https change would re-alert them all.
- Encoding: a byte-order mark or a body that is valid UTF-8 with non-ASCII bytes is read as
  UTF-8 whatever the declarations say; otherwise the XML declaration wins over the HTTP charset
  (servers send a default charset far more often than the wrong bytes are declared in the
  document); feedparser falls back (utf-8, windows-1252, ...) when that fails. UTF-16/32 is
  transcoded to UTF-8 first. Encoding fallbacks are not reported as problems.
- DTDs: the internal subset is rebuilt before parsing, keeping only general entities with a
  literal value (no entity references, no SYSTEM/PUBLIC, no parameter entities); the external
  DTD is dropped. Billion-laughs and external-entity documents thus expand nothing and read
  nothing (feedparser's own filter misses declarations that do not start a line).
- Not well-formed XML: `ParsedFeed.problem` = "not well-formed XML: <reason> (line L, column C)".
  Blank lines before the XML declaration are removed first (common, harmless, fatal to expat).
  When feedparser's loose parser recovers fewer items than the document has `<item>`/`<entry>`
  tags, each item is also parsed on its own (up to `_MAX_ONE_BY_ONE` of them) and the better
  result kept; the problem then says "N of M items recovered" when some are still missing, so
  no loss is silent. Encoding fallbacks and a non-XML Content-Type are not problems.
- Not a feed (no entries and no RSS/Atom root, e.g. an HTML or login page, an empty body, other
  JSON): `FeedError("not a feed: ...")`. A valid feed with no items is fine.
- Dates: published, else updated; UTC-aware; None when absent or impossible. Future dates are
  kept as stated (the pipeline decides what to trust).
"""

from __future__ import annotations

import codecs
import hashlib
import html
import io
import json
import re
import unicodedata
import xml.sax
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import FeedError
from monitor.feeds.fastparse import read_feed
from monitor.feeds.schedule import rss_ttl, syndication_interval
from monitor.feeds.urls import canonical_link, resolve_link
from monitor.textutil import one_line
from monitor.types import Item, ParsedFeed

__all__ = ["MAX_KEY", "MAX_TEXT", "MAX_TITLE", "html_to_text", "parse_feed", "parse_feed_fast"]

MAX_TEXT = 100_000  # characters of Item.text
MAX_TITLE = 2_000  # characters of a title
MAX_KEY = 512  # longer guids/links are hashed
_MAX_HTML = 2_000_000  # characters of one field read as HTML
_MAX_ONE_BY_ONE = 2_000  # items re-parsed one by one to recover a broken document
_MAX_PROBLEM = 300  # characters of ParsedFeed.problem
_MAX_ATTRIBUTES = 256  # attributes kept on one element
_MAX_PARTS = 50  # summary/content values read per item (and 4x as many categories)

# --- plain text ----------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "template"})
_CELL_TAGS = frozenset({"td", "th"})
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
# fmt: on
# Removed: control characters that are not whitespace (C0, DEL, C1 but NEL), lone surrogates,
# soft hyphen, zero-width space, word joiner, BOM/ZWNBSP. ZWNJ/ZWJ stay (Persian, Indic, emoji);
# whitespace controls (VT, FF, FS..US, NEL) become spaces like any other whitespace.
# Not shared with `alerts.render` on purpose: this keeps text matchable (bidi marks, which RTL
# text needs, stay; separators stay word breaks); render drops more, for display safety.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff\u00ad\u200b\u2060\ufeff]"
)
_TAG_LIKE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|<!--")
# One piece of markup. Linear on any input: every repetition is possessive, quoted attribute
# values and unquoted attribute text stop at "<", and unterminated comments and CDATA sections
# run to the end. A "<" that starts none of these is text ("a < b").
_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<!\[CDATA\[(?P<cdata>.*?)(?:\]\]>|\Z)"
    r"|<(?P<end>/?)(?P<name>[A-Za-z][A-Za-z0-9:-]*+)(?:[^<>\"']++|\"[^\"<]*+\"|'[^'<]*+')*+>"
    r"|<[!?][^<>]*+>",
    re.S,
)
_SKIP_END = {tag: re.compile(rf"</{tag}\s*>", re.I) for tag in _SKIP_TAGS}


def _strip_markup(value: str) -> str:
    """Character data of an HTML fragment: tags removed, `<script>`, `<style>`, `<template>`
    contents dropped, block elements -> line breaks, table cells -> spaces, entities decoded
    (`html.unescape`, as browsers do), CDATA sections kept literally.

    A small regex tokenizer rather than `html.parser.HTMLParser`: HTMLParser rescans the rest
    of the input for every unterminated tag or comment, so 24 KB of `<a ` took 7 s and 100 KB
    minutes, a denial of service any feed could trigger."""
    if "<" not in value:
        return html.unescape(value)
    out: list[str] = []
    pos = 0
    while markup := _MARKUP.search(value, pos):
        out.append(html.unescape(value[pos : markup.start()]))
        pos = markup.end()
        if (cdata := markup.group("cdata")) is not None:
            out.append(cdata)
        elif name := markup.group("name"):
            tag = name.lower()
            if tag in _SKIP_TAGS and not markup.group("end") and not markup.group().endswith("/>"):
                close = _SKIP_END[tag].search(value, pos)
                pos = close.end() if close else len(value)
            elif tag in _BLOCK_TAGS:
                out.append("\n")
            elif tag in _CELL_TAGS:
                out.append(" ")
    out.append(html.unescape(value[pos:]))
    return "".join(out)


def _clean(value: str) -> str:
    """Invisible characters removed; each run of whitespace within a line one space, each run
    of line breaks (with the whitespace around them) one line break; stripped; NFC.

    str.split() rather than regular expressions: the same whitespace (str.isspace, which is
    also what `\\s` means in `re`), half the time, and this runs on every item's text."""
    value = _INVISIBLE.sub("", value.replace("\r", "\n"))
    lines = (" ".join(line.split()) for line in value.split("\n"))
    return unicodedata.normalize("NFC", "\n".join(line for line in lines if line))


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment (or of plain text): see the module docstring."""
    text = _strip_markup(value[:_MAX_HTML])
    if _TAG_LIKE.search(text):  # double-escaped markup: &amp;lt;p&amp;gt;
        text = _strip_markup(text)
    return _clean(text)


def _plain_line(value: str, limit: int) -> str:
    """A title or category: HTML read as text, on one line, cut without a marker (titles are
    part of an item's content key: cutting them differently would re-key stored items)."""
    return one_line(html_to_text(value))[:limit]


def _join_text(bodies: Iterable[str], categories: Iterable[str]) -> str:
    # Identical markup is converted once (feedparser often repeats content as summary).
    unique = [b for b in dict.fromkeys(bodies) if b][:_MAX_PARTS]
    parts = list(dict.fromkeys(t for t in map(html_to_text, unique) if t))
    # A part contained in another one (a summary that is the content's lead) adds nothing.
    parts = [p for p in parts if not any(p != q and p in q for q in parts)]
    seen = set(parts)
    for term in list(categories)[: _MAX_PARTS * 4]:
        text = _plain_line(term, MAX_TITLE)
        if text and text not in seen:
            seen.add(text)
            parts.append(text)
    return "\n".join(parts)[:MAX_TEXT]


# --- identity ------------------------------------------------------------------------------


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _identifier(value: Any) -> str | None:
    """A guid or id as stored: control characters removed, stripped; None when empty."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = _INVISIBLE.sub("", value).strip()
    return value or None


def _key(guid: str | None, link: str | None, title: str, text: str) -> str:
    if guid:
        return guid if len(guid) <= MAX_KEY else f"guid:sha256:{_sha256(guid)}"
    if link:
        return link if len(link) <= MAX_KEY else f"link:sha256:{_sha256(link)}"
    return _content_key(title, text)


def _content_key(title: str, text: str) -> str:
    return f"sha256:{_sha256(title + chr(10) + text)}"


def _item(
    guid: str | None,
    raw_link: str | None,
    base: str,
    title: str,
    text: str,
    published: datetime | None,
    categories: Iterable[str] = (),
    author: str | None = None,
) -> Item | None:
    link = resolve_link(raw_link, base)
    if not (guid or link or title or text):
        return None  # debris of broken markup
    return Item(
        key=_key(guid, link, title, text),
        guid=guid,
        link=link,
        canonical_link=canonical_link(link) if link else None,
        title=title,
        text=text,
        published=published,
        # each category once, in order (feedparser repeats one given as term and label)
        categories=tuple(dict.fromkeys(c for c in categories if c))[: _MAX_PARTS * 4],
        author=author or None,
    )


def _unique(items: Iterable[Item | None]) -> tuple[Item, ...]:
    """One item per key, in document order. A later item repeating an earlier key is dropped
    when it is the same item (same title and text) and otherwise keyed by its content: some
    feeds give every item the same guid or link."""
    kept: dict[str, Item] = {}
    for item in items:
        if item is None:
            continue
        first = kept.setdefault(item.key, item)
        if first is not item and (first.title, first.text) != (item.title, item.text):
            item = replace(item, key=_content_key(item.title, item.text))
            kept.setdefault(item.key, item)
    return tuple(kept.values())


# --- bytes before feedparser ---------------------------------------------------------------

_UTF8_BOM = codecs.BOM_UTF8
_WIDE_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_PROLOG_SKIP = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+([^\s\[>]+)", re.I)
_EXTERNAL_ID = re.compile(rb"""(?:[^\[>"']++|"[^"]*+"|'[^']*+')*+""")
_MAX_SUBSET_TOKENS = 10_000
_SUBSET_TOKEN = re.compile(
    rb"""\s+|<!--.*?-->|<\?.*?\?>|%[^;\s]*;|<!(?:[^>"']|"[^"]*"|'[^']*')*>""", re.S
)
# A general entity with a literal value that feedparser also accepts (no references but a
# single character reference, no markup).
_LITERAL_ENTITY = re.compile(
    rb"""<!ENTITY\s+(\w+)\s+(?:"([^"&%<]*|&\#\w+;)"|'([^'"&%<]*|&\#\w+;)')\s*>"""
)


def _to_ascii_compatible(body: bytes) -> tuple[bytes, bool]:
    """UTF-16/32 documents transcoded to UTF-8; the flag says whether that happened."""
    for marker, encoding in _WIDE_ENCODINGS:
        if body.startswith(marker):
            return body.decode(encoding, "replace").lstrip("\ufeff").encode("utf-8"), True
    return body, False


def _skip_prolog(body: bytes, pos: int) -> int:
    while m := _PROLOG_SKIP.match(body, pos):
        pos = m.end()
    return pos


def _defuse_doctype(body: bytes) -> tuple[bytes, int]:
    """The document with its DOCTYPE reduced to literal general entities (module docstring),
    and the number of lines that added."""
    start = _skip_prolog(body, 0)
    head = _DOCTYPE.match(body, start)
    if head is None:
        return body, 0
    safe: list[bytes] = []
    external = _EXTERNAL_ID.match(body, head.end())  # quoted public/system ids
    pos = external.end() if external else head.end()
    if body[pos : pos + 1] == b"[":
        pos += 1
        for _ in range(_MAX_SUBSET_TOKENS):
            if pos >= len(body) or body[pos : pos + 1] == b"]":
                break
            token = _SUBSET_TOKEN.match(body, pos)
            if token is None:
                return body[:start], 0  # malformed subset: nothing after it can be trusted
            if literal := _LITERAL_ENTITY.fullmatch(token.group()):
                name, double, single = literal.groups()
                safe.append(b'<!ENTITY %s "%s">' % (name, double if single is None else single))
            pos = token.end()
        else:
            return body[:start], 0  # no real feed needs that many declarations
        pos = body.find(b">", pos)
        if pos < 0:
            return body[:start], 0
    elif body[pos : pos + 1] != b">":
        return body[:start], 0
    end = pos + 1
    # feedparser only re-declares entities of a DOCTYPE and ENTITYs that each start a line
    newline = b"\n" if start and body[start - 1 : start] != b"\n" else b""
    subset = b" [\n" + b"\n".join(safe) + b"\n]" if safe else b""
    replacement = newline + b"<!DOCTYPE " + head.group(1) + subset + b">"
    added = replacement.count(b"\n") - body.count(b"\n", start, end)
    return body[:start] + replacement + b"\n" * max(0, -added) + body[end:], max(0, added)


_LONG_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*+)([^<>]{4096,}+)>")
_ATTRIBUTE = re.compile(rb"""\s+[^\s=<>"'/]+\s*=\s*(?:"[^"]*+"|'[^']*+')""")


def _trim_attributes(tag: re.Match[bytes]) -> bytes:
    attributes = _ATTRIBUTE.findall(tag.group(2))
    if len(attributes) <= _MAX_ATTRIBUTES:
        return tag.group()
    end = b"/>" if tag.group(2).rstrip().endswith(b"/") else b">"
    return b"<" + tag.group(1) + b"".join(attributes[:_MAX_ATTRIBUTES]) + end


def _charset(body: bytes, content_type: str, utf8: bool) -> str | None:
    """The charset to tell feedparser, or None to let the XML declaration decide."""
    if utf8:  # there was a UTF-8 BOM, or we transcoded from UTF-16/32
        return "utf-8"
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "utf-8"
    if _XML_DECL_ENCODING.match(body):
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
            try:
                codecs.lookup(charset)
            except LookupError:
                return None
            return charset
    return None


# --- feedparser ----------------------------------------------------------------------------

_ITEM_TAG = {
    "atom": re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?entry[\s/>]"),
    "rss": re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?item[\s/>]"),
    "": re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]"),
}
_OPAQUE = re.compile(rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)", re.S)
_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:rss|feed|RDF|channel)\b[^<>]*+>")
_IGNORED_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def _feedparser(data: bytes, content_type: str) -> Any:
    return feedparser.parse(
        io.BytesIO(data),
        response_headers={"content-type": content_type},
        sanitize_html=False,
        resolve_relative_uris=False,
    )


def _get(mapping: Any, key: str) -> Any:
    """`mapping[key]` or None. Plain dict access: FeedParserDict.get maps some missing keys to
    others (`updated_parsed` -> `published_parsed`) with a DeprecationWarning."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _struct_to_utc(value: Any) -> datetime | None:
    try:
        year, month, day, hour, minute, second = (int(v) for v in value[:6])
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _entry_item(entry: Any, base: str) -> Item | None:
    if not isinstance(entry, dict):
        return None
    bodies = [_text(_get(entry, "summary"))]
    bodies += [_text(_get(c, "value")) for c in _get(entry, "content") or () if isinstance(c, dict)]
    categories: list[str] = []
    for tag in _get(entry, "tags") or ():
        if isinstance(tag, dict):
            categories.append(_text(_get(tag, "label")) or _text(_get(tag, "term")))
    published = _get(entry, "published_parsed") or _get(entry, "updated_parsed")
    return _item(
        guid=_identifier(_get(entry, "id")),
        raw_link=_text(_get(entry, "link")) or None,
        # feedparser copies a permalink guid into a missing link: only an absolute one is a link
        base="" if _get(entry, "guidislink") else base,
        title=_plain_line(_text(_get(entry, "title")), MAX_TITLE),
        text=_join_text(bodies, categories),
        published=_struct_to_utc(published) if published else None,
        categories=[_plain_line(c, MAX_TITLE) for c in categories],
        author=_plain_line(_text(_get(entry, "author")), MAX_TITLE),
    )


def _describe(exc: Any, line_offset: int = 0) -> str:
    """One line about a bozo exception."""
    if isinstance(exc, xml.sax.SAXParseException):
        line = max(1, (exc.getLineNumber() or 1) - line_offset)
        where = f"line {line}, column {exc.getColumnNumber()}"
        text = f"not well-formed XML: {exc.getMessage()} ({where})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return one_line(text)[:_MAX_PROBLEM]


def _count_tags(data: bytes, version: str) -> int:
    pattern = _ITEM_TAG["atom" if version.startswith("atom") else "rss" if version else ""]
    return len(pattern.findall(_OPAQUE.sub(b"", data)))


def _items_one_by_one(
    data: bytes, version: str, content_type: str, base: str
) -> tuple[str, list[Item | None]]:
    """Feed title and items, each <item>/<entry> parsed alone under the root start tag, so that
    broken markup in one item can no longer swallow the items after it."""
    pattern = _ITEM_TAG["atom" if version.startswith("atom") else "rss" if version else ""]
    masked = _OPAQUE.sub(lambda m: b" " * len(m.group()), data)
    starts = [m.start() for m in pattern.finditer(masked)]
    root = _ROOT.search(masked, 0, starts[0]) if starts else None
    if root is None:
        return "", []
    head = _get(_feedparser(data[: starts[0]], content_type), "feed") or {}
    title = _plain_line(_text(_get(head, "title")), MAX_TITLE)
    prefix = data[: root.end()]
    items: list[Item | None] = []
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        result = _feedparser(prefix + data[start:end], content_type)
        items += [_entry_item(e, base) for e in _get(result, "entries") or ()]
    return title, items


def _prepare(body: bytes, content_type: str) -> tuple[bytes, str, int]:
    """Bytes and Content-Type for feedparser, and how many lines that added (or removed)."""
    data, utf8 = _to_ascii_compatible(body)
    if data.startswith(_UTF8_BOM):
        data, utf8 = data[len(_UTF8_BOM) :], True
    # Blank lines before the XML declaration: universal, harmless, rejected by expat.
    content = data.lstrip(b" \t\r\n")
    removed_lines = 0
    if content is not data and content.startswith(b"<?xml"):
        removed_lines = data.count(b"\n", 0, len(data) - len(content))
        data = content
    data, added_lines = _defuse_doctype(data)
    # xml.sax looks attributes up by a linear search: 50,000 on one element took 43 s
    data = _LONG_TAG.sub(_trim_attributes, data)
    charset = _charset(data, content_type, utf8)
    fp_type = f"application/xml; charset={charset}" if charset else "application/xml"
    return data, fp_type, added_lines - removed_lines


def _fast(data: bytes, fp_type: str) -> Any:
    """The lxml fast path's reading of `data` (feedparser-shaped), or None when feedparser
    must read it: see `fastparse`; also when the entries it found differ in number from the
    `<item>`/`<entry>` tags in the bytes."""
    _, _, charset = fp_type.partition("; charset=")
    result = read_feed(data, charset or None)
    if result is None or len(result["entries"]) != _count_tags(data, result["version"]):
        return None
    return result


def _parse_xml(body: bytes, headers: Mapping[str, str], url: str, fast: bool) -> ParsedFeed:
    content_type = headers.get("content-type", "")
    data, fp_type, added_lines = _prepare(body, content_type)
    result = _fast(data, fp_type) if fast else None
    if result is not None:
        feed = result["feed"]
        items = [_entry_item(e, url) for e in result["entries"]]
        return _with_hints(
            ParsedFeed(
                title=_plain_line(_text(_get(feed, "title")), MAX_TITLE), items=_unique(items)
            ),
            feed,
        )
    result = _feedparser(data, fp_type)
    version = _text(_get(result, "version"))
    entries = _get(result, "entries") or []
    exc = _get(result, "bozo_exception") if _get(result, "bozo") else None
    if isinstance(exc, _IGNORED_BOZO):
        exc = None
    if not entries and not version:
        raise FeedError(_not_a_feed(body, content_type, exc))
    feed = _get(result, "feed") or {}
    title = _plain_line(_text(_get(feed, "title")), MAX_TITLE)
    items = [_entry_item(e, url) for e in entries]
    problem = None
    if exc is not None:
        # feedparser prepends a line when the document has no XML declaration of its own
        offset = (0 if data.startswith(b"<?xml") else 1) + added_lines
        problem = _describe(exc, offset)
        found = sum(i is not None for i in items)
        expected = _count_tags(data, version)
        if found < expected <= _MAX_ONE_BY_ONE:
            alone_title, alone = _items_one_by_one(data, version, fp_type, url)
            if sum(i is not None for i in alone) > found:
                items, found = alone, sum(i is not None for i in alone)
                title = alone_title or title
        if found < expected:
            problem += f"; {found} of {expected} items recovered"
    return _with_hints(ParsedFeed(title=title, items=_unique(items), problem=problem), feed)


def _with_hints(parsed: ParsedFeed, feed: Any) -> ParsedFeed:
    """`parsed` with the feed's interval hints: RSS `<ttl>`, `sy:updatePeriod` and
    `sy:updateFrequency` (feedparser's `ttl`, `sy_updateperiod`, `sy_updatefrequency`)."""
    ttl = rss_ttl(_text(_get(feed, "ttl")) or None)
    sy = syndication_interval(
        _text(_get(feed, "sy_updateperiod")) or None,
        _text(_get(feed, "sy_updatefrequency")) or None,
    )
    if ttl is None and sy is None:
        return parsed
    return replace(parsed, ttl=ttl, update_interval=sy)


def _not_a_feed(body: bytes, content_type: str, exc: Any) -> str:
    mime = content_type.split(";")[0].strip().lower()
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if not start:
        return "not a feed: empty response"
    if mime in ("text/html", "application/xhtml+xml") or start.startswith(
        (b"<!doctype html", b"<html")
    ):
        return f"not a feed: got an HTML page (content-type {mime or 'not given'})"
    reason = f"; {_describe(exc)}" if exc is not None else ""
    return f"not a feed: no RSS or Atom document (content-type {mime or 'not given'}){reason}"


# --- JSON Feed -----------------------------------------------------------------------------


def _iso_to_utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().upper())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _json_item(entry: Any, base: str) -> Item | None:
    if not isinstance(entry, dict):
        return None
    tags = _get(entry, "tags")
    return _item(
        guid=_identifier(_get(entry, "id")),
        raw_link=_text(_get(entry, "url")) or _text(_get(entry, "external_url")) or None,
        base=base,
        title=_plain_line(_text(_get(entry, "title")), MAX_TITLE),
        text=_join_text(
            [_text(_get(entry, k)) for k in ("summary", "content_html", "content_text")],
            [_text(t) for t in tags] if isinstance(tags, list) else [],
        ),
        published=_iso_to_utc(_get(entry, "date_published"))
        or _iso_to_utc(_get(entry, "date_modified")),
    )


def _parse_json(body: bytes, url: str) -> ParsedFeed:
    problem = None
    try:
        try:
            document = json.loads(body)
        except UnicodeDecodeError:
            document = json.loads(body.decode("utf-8", "replace"))
            problem = "JSON Feed is not valid UTF-8 (bad bytes replaced)"
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"not a feed: invalid JSON ({str(exc)[:200]})") from None
    if not isinstance(document, dict) or not _text(document.get("version")).startswith(
        ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
    ):
        raise FeedError("not a feed: JSON document without a JSON Feed version")
    entries = document.get("items")
    items = [_json_item(e, url) for e in entries] if isinstance(entries, list) else []
    title = _plain_line(_text(document.get("title")), MAX_TITLE)
    return ParsedFeed(title=title, items=_unique(items), problem=problem)


# --- entry point ---------------------------------------------------------------------------


def parse_feed(
    body: bytes, headers: Mapping[str, str], url: str, *, fast: bool = True
) -> ParsedFeed:
    """Parse one fetched feed document. `headers` are the HTTP response headers (any case),
    `url` the URL that answered (base for relative links). Raises FeedError for a document that
    is not a feed; a feed that is only partly readable comes back with `problem` set.
    `fast=False` skips the lxml fast path (`fastparse`): feedparser reads every document."""
    lower = {k.lower(): v for k, v in headers.items()}
    if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _parse_json(body, url)
    return _parse_xml(body, lower, url, fast)


def parse_feed_fast(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed | None:
    """The fast path alone: what `parse_feed` returns when the lxml reader takes the document,
    None when it would hand it to feedparser (JSON Feed included). For tests and benchmarks."""
    if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    data, fp_type, _ = _prepare(body, lower.get("content-type", ""))
    result = _fast(data, fp_type)
    if result is None:
        return None
    items = [_entry_item(e, url) for e in result["entries"]]
    title = _plain_line(_text(_get(result["feed"], "title")), MAX_TITLE)
    return _with_hints(ParsedFeed(title=title, items=_unique(items)), result["feed"])
