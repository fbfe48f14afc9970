"""The fast path of `parse.parse_feed`: well-formed RSS/Atom read with lxml (libxml2) instead of
feedparser, about 10x cheaper per entry (benchmarks/bench_parse.py). Pure: no network, no files.

`read_feed` returns the few fields `parse.py` reads from feedparser, in feedparser's own shape
(`{"feed": {"title"}, "entries": [{"id", "guidislink", "link", "title", "summary", "content",
"tags", "author", "published_parsed", "updated_parsed"}], "version"}`), so both paths go through the
same normalisation (`parse._entry_item`). It returns None, and feedparser takes over, for any
document it is not sure to read as feedparser would:

- not well-formed XML (lxml's strict parser fails): feedparser's loose parser and the
  item-by-item recovery in parse.py report what was lost;
- a charset problem: bytes not valid in the encoding parse.py chose (HTTP/XML declaration/BOM
  rules of `parse._charset`), an encoding Python does not know, or U+FFFD in the decoded text;
- a DOCTYPE (entities are feedparser's business, through parse.py's DTD rebuilding);
- a root that is not `<rss>`, `<rdf:RDF>` or an Atom `<feed>`, an `<item>`/`<entry>` nested
  in another one, Atom 0.3 base64 content.

The caller also falls back when the number of entries differs from a count of `<item>`/
`<entry>` tags in the bytes. Security: the parser never resolves entities, loads no DTD, uses
no network and keeps libxml2's size limits (`huge_tree=False`); documents with a DOCTYPE never
reach it (see above).

Field mapping follows feedparser 6 (namespaces/_base.py, dc.py, itunes.py, mediarss.py):
element names are matched after mapping known namespace URIs to feedparser's prefixes (others
keep the prefix written in the document), lower-cased; the first title of an entry wins, the
guid is the link when `isPermaLink` is not "false" and no link came before it, Atom links are
`rel="alternate"` of an HTML type (the last one wins), resolved against `xml:base`, a second
summary-like element counts as content, categories come from `category`, `dc:subject`,
`media:category`, `itunes:category` and the comma-separated `itunes:keywords` /
`media:keywords`, dates are parsed by feedparser's own date parser. Text values get
feedparser's two repairs: double-encoded UTF-8 is decoded once more in UTF-8 documents, and
C1 controls are read as windows-1252.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from typing import Any
from urllib.parse import urljoin

from feedparser.datetimes import _parse_date
from lxml import etree

__all__ = ["read_feed"]

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    dtd_validation=False,
    recover=False,
    remove_comments=True,
    remove_pis=True,
    strip_cdata=True,
    collect_ids=False,
)

# feedparser's prefixes for the namespaces whose elements we read (feedparser lower-cases URIs)
_PLAIN = ""
_NAMESPACES: dict[str, str] = {
    "": _PLAIN,
    "http://backend.userland.com/rss": _PLAIN,
    "http://blogs.law.harvard.edu/tech/rss": _PLAIN,
    "http://purl.org/rss/1.0/": _PLAIN,
    "http://my.netscape.com/rdf/simple/0.9/": _PLAIN,
    "http://purl.org/atom/ns#": _PLAIN,
    "http://www.w3.org/2005/atom": _PLAIN,
    "http://purl.org/rss/1.0/modules/rss091#": _PLAIN,
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://example.com/dtds/podcast-1.0.dtd": "itunes",
    "http://search.yahoo.com/mrss": "media",
    "http://search.yahoo.com/mrss/": "media",
    "http://www.w3.org/1999/xhtml": "xhtml",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://purl.org/rss/1.0/modules/syndication/": "sy",
}
# feed-level elements that hint at how often the feed changes (schedule.effective_interval)
_HINTS = frozenset({"ttl", "sy_updateperiod", "sy_updatefrequency"})
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_XML_DECL = re.compile(r"^<\?xml[^>]*\?>")
_XML_DECL_BYTES = re.compile(rb"^<\?xml[^>]*\?>")
_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.I)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# feedparser: "address common error where people take data that is already utf-8, presume
# that it is iso-8859-1, and re-encode it", then C1 controls mapped as windows-1252
_CP1252 = {c: bytes([c]).decode("cp1252", "replace") for c in range(0x80, 0xA0)}
_CP1252 = {c: v for c, v in _CP1252.items() if v != "\ufffd"}
_C1 = re.compile("[\x80-\x9f]")

_TITLES = frozenset({"title", "dc_title", "media_title"})
_SUMMARIES = frozenset(
    {"description", "summary", "dc_description", "itunes_summary", "media_description", "abstract"}
)
_CONTENTS = frozenset({"content", "content_encoded", "fullitem", "body", "xhtml_body"})
_PUBLISHED = frozenset({"published", "pubdate", "issued", "dcterms_issued"})
_UPDATED = frozenset({"updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"})
_CATEGORIES = frozenset({"category", "dc_subject", "media_category", "keywords"})
_AUTHORS = frozenset({"author", "dc_creator", "itunes_author"})
_KEYWORDS = frozenset({"itunes_keywords", "media_keywords"})
# elements whose children are not the entry's (feedparser's insource/inimage/textinput)
_OPAQUE = frozenset({"source", "image", "textinput", "author", "contributor"})


_URI_FIXER = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_ENTITY_LIKE = re.compile("&([A-Za-z0-9_]+);")


def _urljoin(base: str, uri: str) -> str:
    """feedparser's `urls._urljoin`."""
    try:
        return urljoin(base, _URI_FIXER.sub(r"\1\3", uri))
    except ValueError:
        return ""


class _Reject(Exception):
    """The fast path cannot vouch for this document: feedparser reads it."""


def _encoding(data: bytes, charset: str | None) -> str:
    if charset:
        return charset
    declared = _XML_DECL_ENCODING.match(data)
    return declared.group(1).decode("ascii") if declared else "utf-8"


def _name(element: Any) -> str:
    """feedparser's name for an element: prefix_localname, lower-cased."""
    tag = element.tag
    if not isinstance(tag, str):
        return ""  # entity reference (cannot happen without a DOCTYPE)
    if tag[0] != "{":
        return tag.lower()
    uri, _, local = tag[1:].partition("}")
    prefix = _NAMESPACES.get(uri.lower())
    if prefix is None:
        prefix = element.prefix or ""
    return f"{prefix}_{local.lower()}" if prefix else local.lower()


class _Reader:
    def __init__(self, utf8: bool) -> None:
        self.utf8 = utf8

    def fix(self, value: str) -> str:
        if value.isascii():
            return value
        if self.utf8:
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                value = value.encode("iso-8859-1").decode("utf-8")
        return value.translate(_CP1252) if _C1.search(value) else value

    def inner(self, element: Any) -> str:
        """Text of an element, its child elements serialised as markup (feedparser keeps the
        markup of embedded XHTML), stripped."""
        if len(element) == 0:
            return self.fix((element.text or "").strip())
        parts = [element.text or ""]
        parts += [etree.tostring(child, encoding="unicode", with_tail=True) for child in element]
        return self.fix("".join(parts).strip())

    def text(self, element: Any) -> str:
        return self.fix((element.text or "").strip())

    def entry(self, node: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        about = node.get(_RDF_ABOUT)
        if about:
            entry["id"] = about
        self.fields(node, entry, 0, {"title_depth": None, "summary_depth": None})
        return entry

    def fields(self, node: Any, entry: dict[str, Any], depth: int, state: dict[str, Any]) -> None:
        for child in node:
            name = _name(child)
            if not name:
                continue
            if name in _TITLES:
                title_depth = state["title_depth"]
                if title_depth is None or depth < title_depth:
                    value = self.inner(child)
                    if value or "title" not in entry:
                        entry["title"] = value
                    if value:
                        state["title_depth"] = depth
            elif name in ("link",):
                self.link(child, entry)
            elif name in ("guid", "id"):
                value = self.text(child)
                permalink = child.get("isPermaLink", child.get("ispermalink", "true")) == "true"
                if permalink and value and child.base:
                    value = _urljoin(child.base, value)
                entry["id"] = value
                entry["guidislink"] = permalink and "link" not in entry
                if entry["guidislink"]:
                    entry.setdefault("link", value)
            elif name in _SUMMARIES:
                if child.get("mode") == "base64":
                    raise _Reject
                value = self.inner(child)
                if "summary" in entry and not entry.get("_has_content"):
                    entry["_has_content"] = True  # feedparser reads it as content
                    entry.setdefault("content", []).append({"value": value})
                elif state["summary_depth"] is None or depth <= state["summary_depth"]:
                    entry["summary"] = value
                    state["summary_depth"] = depth
            elif name in _CONTENTS:
                if child.get("mode") == "base64":
                    raise _Reject
                value = self.inner(child)
                entry["_has_content"] = True
                entry.setdefault("content", []).append({"value": value})
                entry.setdefault("summary", value)
            elif name in _PUBLISHED:
                entry["published_parsed"] = _parse_date(self.text(child))
            elif name in _UPDATED:
                entry["updated_parsed"] = _parse_date(self.text(child))
            elif name in _CATEGORIES:
                self.category(child, entry)
            elif name == "itunes_category":
                self.tag(entry, child.get("text"), None)
                self.fields(child, entry, depth + 1, state)
            elif name in _KEYWORDS:
                for term in self.text(child).split(","):
                    self.tag(entry, term.strip() or None, None)
            elif name in _AUTHORS:
                self.author(child, entry)
            elif name in ("item", "entry"):
                raise _Reject  # nested entries: feedparser's bookkeeping is not worth copying
            elif name not in _OPAQUE and len(child):
                self.fields(child, entry, depth + 1, state)

    def author(self, element: Any, entry: dict[str, Any]) -> None:
        """feedparser's `author`: an Atom person as "name (email)", else the element's text;
        the last author-like element wins, even an empty one (as in feedparser)."""
        if len(element):
            parts = {_name(c): self.text(c) for c in element}
            name, email = parts.get("name", ""), parts.get("email", "")
            value = f"{name} ({email})" if name and email else name or email
        else:
            value = self.text(element)
        entry["author"] = value

    def link(self, element: Any, entry: dict[str, Any]) -> None:
        href = element.get("href")
        if href is None:  # RSS <link>text</link>
            value = self.inner(element)
            if value and element.base:
                value = _urljoin(element.base, value)
            value = _ENTITY_LIKE.sub(r"&\g<1>", value.replace("&amp;", "&"))
            entry["link"] = value
            return
        rel = element.get("rel", "alternate")
        default_type = "application/atom+xml" if rel == "self" else "text/html"
        kind = (element.get("type") or default_type).lower()
        if kind == "text":
            kind = "text/plain"
        elif kind == "html":
            kind = "text/html"
        elif kind == "xhtml":
            kind = "application/xhtml+xml"
        if rel == "alternate" and kind in _HTML_TYPES:
            entry["link"] = _urljoin(element.base or "", href.strip())

    def category(self, element: Any, entry: dict[str, Any]) -> None:
        term = element.get("term")
        scheme = element.get("scheme", element.get("domain"))
        label = element.get("label")
        tags: list[dict[str, Any]] = entry.setdefault("tags", [])
        self.tag(entry, term, label, scheme)
        value = self.text(element)
        if value:
            if tags and not tags[-1]["term"]:
                tags[-1]["term"] = value
            else:
                self.tag(entry, value, None)

    @staticmethod
    def tag(entry: dict[str, Any], term: str | None, label: str | None, scheme: Any = None) -> None:
        tags: list[dict[str, Any]] = entry.setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)


def read_feed(data: bytes, charset: str | None) -> dict[str, Any] | None:
    """feedparser-shaped fields of a well-formed RSS/Atom document, or None (module docstring).
    `data` and `charset` are what parse.py would hand feedparser (after `_prepare`)."""
    try:
        return _read(data, charset)
    except (_Reject, etree.XMLSyntaxError, LookupError, UnicodeError, ValueError):
        return None


def _read(data: bytes, charset: str | None) -> dict[str, Any] | None:
    encoding = _encoding(data, charset)
    codec = codecs.lookup(encoding).name
    head = data[:4096]
    if _DOCTYPE.search(head) or b"<!ENTITY" in head:
        return None
    text = data.decode(codec)  # strict: invalid bytes mean a charset problem
    if "\ufffd" in text:
        return None
    if codec == "utf-8":  # parse.py dropped any BOM already
        declared = _XML_DECL_ENCODING.match(data)
        if declared and codecs.lookup(declared.group(1).decode("ascii")).name != "utf-8":
            data = _XML_DECL_BYTES.sub(b"", data, count=1)  # UTF-8 whatever it says
        root = etree.fromstring(data, _PARSER)
    else:
        root = etree.fromstring(_XML_DECL.sub("", text, count=1).encode("utf-8"), _PARSER)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        return None
    reader = _Reader(utf8=codec == "utf-8")
    kind = _name(root)
    channel: Any
    if kind == "feed":
        version, channel = "atom", root
        nodes = [c for c in root if _name(c) == "entry"]
    elif kind in ("rss", "rdf_rdf"):
        version = "rss"
        channel = next((c for c in root if _name(c) == "channel"), None)
        nodes = [c for c in root if _name(c) == "item"]
        if channel is not None:
            nodes += [c for c in channel if _name(c) == "item"]
    else:
        return None
    feed: dict[str, Any] = {"title": ""}
    if channel is not None:
        first = next((c for c in channel if _name(c) in ("title", "dc_title")), None)
        feed["title"] = reader.inner(first) if first is not None else ""
        for child in channel:  # the first of each, as feedparser keeps it
            name = _name(child)
            if name in _HINTS and name not in feed:
                feed[name] = reader.text(child)
    entries = [reader.entry(node) for node in nodes]
    for entry in entries:
        entry.pop("_has_content", None)
    return {"feed": feed, "entries": entries, "version": version}
