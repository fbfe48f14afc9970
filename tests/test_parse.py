"""Tests for monitor.feeds.parse: feed bytes -> plain-text items, on hand-written fixtures
(tests/fixtures/feeds/) and, when present, the real-world corpus in ../shared/feeds-corpus/."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import FeedError
from monitor.feeds.parse import MAX_KEY, MAX_TEXT, html_to_text, parse_feed
from monitor.types import Item, ParsedFeed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "feeds-corpus"
URL = "https://news.example.org/feeds/main.xml"
# Hostile inputs parse in milliseconds here; the blow-ups they guard against took seconds to
# minutes. The bound is generous on purpose (a loaded 2-core CI machine): it catches the
# blow-up, not slowness. Speed itself is measured in benchmarks/.
BLOW_UP = 10.0


def parse(name: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed((FIXTURES / name).read_bytes(), headers or {}, URL)


def by_key(feed: ParsedFeed) -> dict[str, Item]:
    return {item.key: item for item in feed.items}


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- RSS 2.0 -------------------------------------------------------------------------------


def test_rss20_feed() -> None:
    feed = parse("rss20.xml")
    assert feed.title == "Beispiel & Nachrichten"
    assert feed.problem is None
    assert len(feed.items) == 8


def test_rss20_html_removed_from_summary_and_content() -> None:
    item = by_key(parse("rss20.xml"))["beispiel-0001"]
    assert item.title == "Nordkoreanische Truppen nahe Kursk gesichtet"
    # content:encoded holds the description and more: the description adds nothing
    assert item.text == (
        "Nach Angaben des Ministeriums wurden nordkoreanische Truppen in der Region Kursk "
        "beobachtet.\nDie Lage bleibt unübersichtlich.\nWeitere Gespräche in Großbritannien "
        "sind geplant.\nPolitik\nRussland"
    )
    assert "alert" not in item.text and "color" not in item.text
    assert item.guid == "beispiel-0001"
    assert item.link == (
        "https://news.example.org/artikel/1?utm_source=rss&utm_medium=feed&id=7#kommentare"
    )
    assert item.canonical_link == "https://news.example.org/artikel/1?id=7"
    assert item.published == datetime(2024, 11, 5, 13, 30, tzinfo=UTC)


def test_rss20_escaped_markup_and_entities() -> None:
    item = by_key(parse("rss20.xml"))["https://news.example.org/ru/statja/2"]
    assert item.title == "Курская область: “новые” сообщения"
    assert item.text == "В Курской области продолжаются бои.\nЖители эвакуированы."
    assert item.link == "https://news.example.org/ru/statja/2"  # relative, resolved
    assert item.published == datetime(2024, 11, 6, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "guid", "link", "title", "text"),
    [
        (  # no guid: the link identifies the item
            "https://news.example.org/artikel/3",
            None,
            "https://news.example.org/artikel/3",
            "Eintrag ohne GUID",
            'AT&T und die Bahn: "Verspätung" – wieder einmal.',
        ),
        (  # neither guid nor link: a hash of title and text
            "sha256:" + sha("Eintrag ohne GUID und Link\nNur Text, keine Adresse."),
            None,
            None,
            "Eintrag ohne GUID und Link",
            "Nur Text, keine Adresse.",
        ),
        (  # a javascript: link is never used
            "beispiel-0005",
            "beispiel-0005",
            None,
            "Gefährlicher Link",
            "Der Link darf nie verwendet werden.",
        ),
        (  # NBSP, soft hyphen, tab and newline in a title; <br> and <div> in the text
            "beispiel-0008",
            "beispiel-0008",
            "https://news.example.org/artikel/8",
            "Nur Truppen und Leerraum",
            "Zeile eins\nZeile zwei\nBlock\nEnde",
        ),
    ],
)
def test_rss20_identity_and_text(
    key: str, guid: str | None, link: str | None, title: str, text: str
) -> None:
    item = by_key(parse("rss20.xml"))[key]
    assert (item.guid, item.link, item.title, item.text) == (guid, link, title, text)
    assert item.canonical_link == link


def test_dates_future_kept_and_garbage_is_none() -> None:
    items = by_key(parse("rss20.xml"))
    assert items["beispiel-0006"].published == datetime(2999, 1, 1, tzinfo=UTC)
    assert items["beispiel-0007"].published is None
    assert items["https://news.example.org/artikel/3"].published is None


def test_hash_identity_is_deterministic() -> None:
    assert [i.key for i in parse("rss20.xml").items] == [i.key for i in parse("rss20.xml").items]


# --- Atom, RSS 1.0, JSON Feed --------------------------------------------------------------


def test_atom10() -> None:
    feed = parse("atom10.xml")
    assert (feed.title, feed.problem, len(feed.items)) == ("Atom Beispiel", None, 3)
    first, second, third = feed.items
    assert first.key == first.guid == "tag:atom.example.org,2024:entry-1"
    assert first.link == "https://atom.example.org/2024/11/gespraeche"  # alternate, not enclosure
    assert first.title == "Gespräche über Kursk"
    # xhtml content contains the html summary: once; category label preferred over its term
    assert first.text == (
        "Die Gespräche über Kursk gehen weiter.\nEin zweiter Absatz mit mehr Details.\n"
        "Politik\nausland"
    )
    assert first.published == datetime(2024, 11, 5, 8, 15, tzinfo=UTC)  # published over updated
    assert second.link is None
    assert second.title == "Nur aktualisiert & ohne Link"
    assert second.text == "Klartext: a < b && c > d, ganz ohne Markup."
    assert second.published == datetime(2024, 11, 5, 0, 30, tzinfo=UTC)  # updated, -01:00
    assert third.link == "https://cdn.example.net/base/beitrag-3.html"  # xml:base honoured


def test_rss10_rdf() -> None:
    feed = parse("rss10.rdf")
    assert (feed.title, feed.problem) == ("RDF Beispiel", None)
    assert [(i.key, i.title) for i in feed.items] == [
        ("https://rdf.example.org/a", "Erster RDF-Eintrag"),
        ("https://rdf.example.org/b", "Zweiter RDF-Eintrag"),
    ]
    assert feed.items[0].text == "Beschreibung A über Charkiw.\nUkraine"
    assert feed.items[0].published == datetime(2024, 11, 1, 8, 0, tzinfo=UTC)


def test_json_feed() -> None:
    feed = parse("feed.json", {"Content-Type": "application/feed+json"})
    assert (feed.title, feed.problem) == ("JSON & Feed", None)
    first, second, third = feed.items
    assert first.key == "json-1"
    assert first.title == "Nordkoreanische Truppen an der Front"
    assert first.text == "Berichte über nordkoreanische Truppen.\nKrieg\nAsien"
    assert first.canonical_link == "https://json.example.org/posts/1?page=2"
    assert first.published == datetime(2024, 11, 5, 13, 30, tzinfo=UTC)
    assert (second.key, second.guid) == ("42", "42")  # numeric id
    assert second.link == "https://news.example.org/posts/2"  # relative to the fetched URL
    assert second.text == "Reiner Text: 3 < 4 & 5 > 2."
    assert second.published == datetime(2024, 11, 6, 8, 0, tzinfo=UTC)  # date_modified
    assert (third.link, third.title, third.published) == (None, "", None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"title": "no version"}', "without a JSON Feed version"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not a feed"),  # recursion bomb (starts with "[")
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "invalid JSON"),
    ],
)
def test_json_not_a_feed(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse_feed(body, {}, URL)


def test_json_feed_bad_utf8_is_read_with_a_problem() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"title": "K\xf6ln"}]}'
    feed = parse_feed(body, {}, URL)
    assert feed.items[0].title == "K\ufffdln"
    assert feed.problem is not None and "UTF-8" in feed.problem


# --- encodings -----------------------------------------------------------------------------

LATIN_TITLES = ["Größere Straßenschäden in Köln", "Äpfel, Öl und Übermut"]


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("latin1.xml", {}),  # declared ISO-8859-1
        ("latin1.xml", {"Content-Type": "text/xml"}),  # text/xml without charset
        ("latin1.xml", {"Content-Type": "application/rss+xml; charset=utf-8"}),  # header lies
        ("latin1-declared-utf8.xml", {}),  # Latin-1 bytes declared UTF-8: detected
        ("latin1-declared-utf8.xml", {"content-type": "text/html; charset=UTF-8"}),
        ("utf16.xml", {}),  # UTF-16 with BOM
        ("utf16.xml", {"Content-Type": "application/xml; charset=iso-8859-1"}),
    ],
)
def test_encodings(name: str, headers: dict[str, str]) -> None:
    feed = parse(name, headers)
    assert feed.title == "Übersicht für Bürger"
    assert [i.title for i in feed.items] == LATIN_TITLES
    assert "Fußgänger" in feed.items[0].text
    assert feed.problem is None  # an encoding fallback is not a problem


def test_utf8_body_wins_over_a_default_latin1_charset_header() -> None:
    body = (FIXTURES / "rss20.xml").read_bytes()
    feed = parse_feed(body, {"Content-Type": "text/xml; charset=ISO-8859-1"}, URL)
    assert by_key(feed)["beispiel-0001"].text.endswith(
        "Großbritannien sind geplant.\nPolitik\nRussland"
    )


def test_windows_1251() -> None:
    feed = parse("cp1251.xml", {"Content-Type": "application/rss+xml"})
    assert feed.title == "Новости региона"
    (item,) = feed.items
    assert item.title == "В Курской области объявлена эвакуация"
    assert item.text == "Жители приграничных сёл получили предупреждение утром.\nПроисшествия"


def test_bom_and_blank_lines_before_the_declaration() -> None:
    body = b"\xef\xbb\xbf\n\n  " + (FIXTURES / "rss10.rdf").read_bytes()
    feed = parse_feed(body, {}, URL)
    assert feed.problem is None
    assert len(feed.items) == 2


def test_control_characters_never_reach_items() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>A\x00B\x07C</title><guid>g\x00\x01</guid>"
        b"<description>x&#1;y &#x7f;z \xc2\x85w</description></item></channel></rss>"
    )
    feed = parse_feed(body, {}, URL)
    for item in feed.items:
        for value in (item.title, item.text, item.key, item.guid or ""):
            assert not re.search("[\x00-\x08\x0e-\x1f\x7f-\x9f]", value), value


# --- broken documents ----------------------------------------------------------------------


def test_not_well_formed_recovers_and_reports_what_is_lost() -> None:
    # 20 items, one defect in each item but every fifth. feedparser's loose parser alone keeps
    # 12 items with content (an unclosed <title> swallows the next item); parsing the items
    # one by one recovers 16. Items 2, 7, 12, 17 (unclosed <title> before the guid) are lost,
    # and the problem says so.
    feed = parse("not-well-formed.xml")
    assert feed.title == "Kaputt"
    lost = {2, 7, 12, 17}
    assert [i.key for i in feed.items] == [f"broken-{n}" for n in range(1, 21) if n not in lost]
    assert feed.problem == (
        "not well-formed XML: mismatched tag (line 3, column 140); 16 of 20 items recovered"
    )
    assert feed.items[0].title == "Meldung 1: Grüße aus München"
    assert feed.items[0].text == "Text 1 fett"
    assert feed.items[1].title == "Meldung 3 & mehr"
    assert feed.items[1].link == "https://broken.example.org/3?a=1&b=2"


def test_truncated_document_keeps_every_started_item() -> None:
    feed = parse("truncated.xml")
    assert [i.key for i in feed.items] == [f"truncated-{n}" for n in range(1, 5)]
    assert feed.problem is not None
    assert feed.problem.startswith("not well-formed XML: no element found (line 27")
    assert "recovered" not in feed.problem  # all 4 started items came back


def test_duplicate_guids() -> None:
    # same guid + same item: dropped; same guid + different item: kept, keyed by content
    feed = parse("duplicate-guids.xml")
    assert [(i.key, i.title) for i in feed.items] == [
        ("same-guid", "Erste Meldung"),
        (
            "sha256:" + sha("Zweite Meldung, gleiche GUID\nText zwei."),
            "Zweite Meldung, gleiche GUID",
        ),
        (
            "sha256:" + sha("Dritte Meldung, gleiche GUID\nText drei."),
            "Dritte Meldung, gleiche GUID",
        ),
        ("other-guid", "Vierte Meldung"),
    ]
    assert all(i.guid == "same-guid" for i in feed.items[:3])


def test_long_guid_and_link_are_hashed() -> None:
    guid_item, link_item = parse("long-guid.xml").items
    assert guid_item.guid is not None and len(guid_item.guid) > 1000
    assert guid_item.key == "guid:sha256:" + sha(guid_item.guid)
    assert link_item.link is not None and len(link_item.link) > 1000
    assert link_item.key == "link:sha256:" + sha(link_item.link)
    assert max(len(guid_item.key), len(link_item.key)) <= MAX_KEY


def test_relative_guid_is_not_rewritten_into_a_link() -> None:
    # feedparser would resolve <guid>12345</guid> against a Content-Location; identity must not
    # depend on the feed URL, and an opaque guid is no link.
    body = (
        b'<rss version="2.0"><channel><item><title>t</title><guid>12345</guid></item>'
        b"</channel></rss>"
    )
    (item,) = parse_feed(body, {}, URL).items
    assert (item.key, item.guid, item.link) == ("12345", "12345", None)
    body = body.replace(b"12345", b"https://news.example.org/a/1")
    (item,) = parse_feed(body, {}, URL).items
    assert item.link == "https://news.example.org/a/1"  # a permalink guid is the link


def test_empty_feeds_are_not_errors() -> None:
    rss = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Leer</title></channel></rss>'
    atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Leer</title></feed>'
    json_feed = b'{"version": "https://jsonfeed.org/version/1.1", "title": "Leer", "items": []}'
    for body in (rss, atom, json_feed):
        assert parse_feed(body, {}, URL) == ParsedFeed(title="Leer", items=(), problem=None)


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        ((FIXTURES / "html-page.html").read_bytes(), {"Content-Type": "text/html"}, "HTML page"),
        ((FIXTURES / "html-page.html").read_bytes(), {}, "HTML page"),
        (b"", {}, "empty response"),
        (b"  \r\n ", {"Content-Type": "application/rss+xml"}, "empty response"),
        (b"<note><to>x</to></note>", {"Content-Type": "application/xml"}, "no RSS or Atom"),
        (b"Service Unavailable", {"Content-Type": "text/plain"}, "no RSS or Atom"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", {"Content-Type": "image/png"}, "no RSS or Atom"),
    ],
)
def test_not_a_feed(body: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(FeedError, match=rf"^not a feed: .*{reason}"):
        parse_feed(body, headers, URL)


def test_body_naming_a_local_file_is_not_read(tmp_path: Path) -> None:
    # feedparser 6 opens a bytes/str argument as a path; we only ever hand it a stream
    canary = tmp_path / "canary.xml"
    canary.write_text('<rss version="2.0"><channel><title>CANARY-7f3a</title></channel></rss>')
    with pytest.raises(FeedError) as error:
        parse_feed(str(canary).encode(), {}, URL)
    assert "CANARY" not in str(error.value)


# --- hostile XML ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["billion-laughs.xml", "billion-laughs-lines.xml"])
def test_billion_laughs_expands_nothing(name: str) -> None:
    start = time.perf_counter()
    feed = parse(name)
    assert time.perf_counter() - start < BLOW_UP
    assert feed.items[0].key == "laugh-1"
    assert feed.items[0].title == "Boom &lol10;"  # left literal, never expanded
    for item in feed.items:
        assert len(item.title) + len(item.text) < 100
    assert feed.problem is not None and "undefined entity" in feed.problem


def test_literal_internal_entities_still_work() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY ort "Kursk"><!ENTITY q "&#8222;">]>'
        b'<rss version="2.0"><channel><title>&ort;</title>'
        b"<item><title>Lage in &ort;</title><guid>e1</guid></item></channel></rss>"
    )
    feed = parse_feed(body, {}, URL)
    assert (feed.title, feed.items[0].title, feed.problem) == ("Kursk", "Lage in Kursk", None)


class _CountingHandler(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'<!ENTITY leak "CANARY-FROM-HTTP">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    hits: list[str] = []
    _CountingHandler.hits = hits
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_external_entities_read_no_file_and_fetch_nothing(
    tmp_path: Path, loopback: tuple[str, list[str]]
) -> None:
    base, hits = loopback
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-SECRET-7f3a")
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "file://{canary}">')
    item = (
        b'<rss version="2.0"><channel><title>X &leak;</title>'
        b"<item><title>a &leak; b</title><guid>x1</guid><description>&leak;</description>"
        b"</item></channel></rss>"
    )
    doctypes = [
        f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "file://{canary}">]>',
        f'<!DOCTYPE rss [\n<!ENTITY leak SYSTEM "file://{canary}">\n]>',
        f'<!DOCTYPE rss [<!ENTITY leak PUBLIC "-//X//EN" "file://{canary}">]>',
        f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file://{dtd}"> %p;]>',
        f'<!DOCTYPE rss SYSTEM "file://{dtd}">',
        f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "{base}/entity">]>',
        f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{base}/param.dtd"> %p;]>',
        f'<!DOCTYPE rss SYSTEM "{base}/external.dtd">',
    ]
    for doctype in doctypes:
        body = b'<?xml version="1.0"?>\n' + doctype.encode() + b"\n" + item
        feed = parse_feed(body, {}, URL)
        assert [i.key for i in feed.items] == ["x1"], doctype
        dump = repr(feed)
        assert "CANARY" not in dump, doctype
    assert hits == []


def test_attribute_bomb_is_trimmed() -> None:
    # xml.sax's attribute lookup is linear: 50,000 attributes on one element took 43 s
    attributes = b" ".join(b'a%d="x"' % i for i in range(50_000))
    body = b'<rss version="2.0"><channel><item ' + attributes + b"><guid>b1</guid></item>"
    start = time.perf_counter()
    feed = parse_feed(body + b"</channel></rss>", {}, URL)
    assert time.perf_counter() - start < BLOW_UP
    assert [i.key for i in feed.items] == ["b1"]


# --- HTML to text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("plain text", "plain text"),
        ("<p>a</p><p>b</p>", "a\nb"),
        ("Kursk<br>Region<br/>Sumy", "Kursk\nRegion\nSumy"),
        ("<b>Kur</b><i>sk</i>", "Kursk"),  # inline elements do not split words
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<li>eins</li><li>zwei</li>", "eins\nzwei"),
        ("a<script>var x = '<p>hi</p>';</script>b", "ab"),
        ("a <SCRIPT type='text/javascript'>evil()</SCRIPT> b", "a b"),
        ("a <style>p{}</style> b <template><p>t</p></template> c", "a b c"),
        ("a <script>never closed <p>rest", "a"),
        ("a <!-- comment --> b", "a b"),
        ("a <![CDATA[x < y]]> b", "a x < y b"),
        ("&amp; &lt; &gt; &quot; &#39; &#8220;x&#8221; &#x2013;", "& < > \" ' “x” –"),
        ("a&nbsp;b &nbsp; c", "a b c"),
        ("&lt;p&gt;escaped &lt;b&gt;html&lt;/b&gt;&lt;/p&gt;", "escaped html"),
        ("AT&T, Q&A, R&D", "AT&T, Q&A, R&D"),
        ("a < b > c", "a < b > c"),
        ("Trup\u00adpen, Zero\u200bwidth", "Truppen, Zerowidth"),
        ("Gespra\u0308che", "Gespräche"),  # NFC
        ("a\x00b\x08c\x1bd\x7fe\x9ff", "abcdef"),
        ("a\x0bb\x0cc\x85d", "a b c d"),  # whitespace controls are spaces
        ("  lots \t of\r\n\r\n   space  ", "lots of\nspace"),
        ("x <![ broken", "x <![ broken"),  # no markup: text
        ("<![foo[bar]]>a<script>x</script>b", "ab"),
        ("a <!-- never closed <p>b</p>", "a"),
        ("<a title='x > y' href=\"/\">link</a>", "link"),
        ("<p\nclass=x>a</p\n>", "a"),
        ("<a href=\"javascript:alert(1)\" onclick='x()'>link</a>", "link"),
        ("<img src=x onerror=alert(1)>", ""),
        ("\ud800lone surrogate", "lone surrogate"),
        ("x <Spitzklammern> y", "x y"),  # every field is read as HTML (documented)
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "unit", ["<a ", "<a b='", '<a b="', "<!--", "<![CDATA[", "<p>", "x<y", "<!x", "&lt;a ", "</"]
)
def test_html_to_text_is_linear_on_unterminated_markup(unit: str) -> None:
    # html.parser rescans the rest for every unterminated tag: 24 KB of "<a " took 7 s there
    start = time.perf_counter()
    html_to_text(unit * 100_000)
    assert time.perf_counter() - start < BLOW_UP


def test_text_is_capped() -> None:
    paragraph = "<p>" + "Wort " * 2000 + "</p>"
    body = (
        b'<rss version="2.0"><channel><item><guid>big</guid><description><![CDATA['
        + (paragraph * 30).encode()
        + b"]]></description></item></channel></rss>"
    )
    (item,) = parse_feed(body, {}, URL).items
    assert len(item.text) == MAX_TEXT


# --- real-world corpus ---------------------------------------------------------------------

# Items per file that differ from feedparser's entry count in MANIFEST.md, and why.
CORPUS_COUNT_EXCEPTIONS = {
    "SlyMarbo__rss/rss_0.92": 21,  # two entries without guid/link/title, identical text
    "arminreiter__FeedReader/Rss20LeFigaro.xml": 49,  # one item repeated verbatim
    "danmactough__node-feedparser/illegally-nested.xml": 10,  # 10 empty entries from nesting
    "miniflux__v2/no_encoding_ISO-8859-1.xml": 9,  # one empty <item>
    "php-feed-io__feed-io/feed.json": 1,  # 4 items with one id, title and text
}

# Documents parse_feed rejects (FeedError), with the start of the error. None at present:
# every real-world document yields its entries; a new failure must be listed here, with why.
CORPUS_FAILURES: dict[str, str] = {}

# Documents that are not well-formed XML: parsed leniently (entries kept), with this problem.
CORPUS_NOT_WELL_FORMED = {
    "feedjira__feedjira/PaulDixExplainsNothingWFW.xml": "unbound prefix",
    "kagisearch__fastfeedparser/osm-pl.xml": "unclosed CDATA section",
    "nicolus__picoFeed/lincoln_loop.xml": "not well-formed (invalid token)",
    "nicolus__picoFeed/next_inpact_full.xml": "reference to invalid character number",
    "rometools__rome/test3.xml": "syntax error",
    "spacecowboy__Feeder/rss_myanimelist.xml": "undefined entity",
    "spacecowboy__Feeder/rss_theguardian.xml": "not well-formed (invalid token)",
}


def _corpus_files() -> list[object]:
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no feed corpus at {CORPUS}"))]
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.md")
    return [pytest.param(p, id=str(p.relative_to(CORPUS))) for p in files]


def _manifest_counts() -> dict[str, int]:
    """feedparser's entry count per file (fastfeedparser's for JSON Feed), from MANIFEST.md."""
    counts: dict[str, int] = {}
    manifest = CORPUS / "MANIFEST.md"
    if not manifest.is_file():
        return counts
    folder = None
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"### .*`([^`]+)/`", line):
            folder = heading.group(1)
        elif (row := re.match(r"\| `([^`/]+)` \|", line)) and folder:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 8 and (n := re.fullmatch(r"(\d+)/(\d+)", cells[5])):
                fp, ffp = int(n.group(1)), int(n.group(2))
                counts[f"{folder}/{row.group(1)}"] = ffp if cells[2].startswith("JSON") else fp
    return counts


@pytest.fixture(scope="module")
def manifest_counts() -> dict[str, int]:
    return _manifest_counts()


@pytest.mark.parametrize("path", _corpus_files())
def test_corpus(path: Path, manifest_counts: dict[str, int]) -> None:
    rel = path.relative_to(CORPUS).as_posix()
    body = path.read_bytes()
    if rel in CORPUS_FAILURES:
        with pytest.raises(FeedError) as error:
            parse_feed(body, {}, "https://corpus.example.org/feed")
        assert str(error.value).startswith(CORPUS_FAILURES[rel])
        return
    feed = parse_feed(body, {}, "https://corpus.example.org/feed")  # any FeedError fails
    keys = [i.key for i in feed.items]
    assert all(keys) and len(keys) == len(set(keys))
    for item in feed.items:
        assert len(item.key) <= MAX_KEY
        assert "<script" not in item.text and "<script" not in item.title
        assert len(item.text) <= MAX_TEXT
        assert item.link is None or item.link.startswith(("http://", "https://"))
        assert item.published is None or item.published.tzinfo is UTC
    if rel in CORPUS_NOT_WELL_FORMED:
        assert feed.problem is not None
        assert feed.problem.startswith(f"not well-formed XML: {CORPUS_NOT_WELL_FORMED[rel]}")
    else:
        assert feed.problem is None
    expected = CORPUS_COUNT_EXCEPTIONS.get(rel, manifest_counts.get(rel))
    assert expected is not None, f"no entry count for {rel} in {CORPUS / 'MANIFEST.md'}"
    assert expected > 0
    assert len(feed.items) == expected


def test_corpus_lists_name_existing_documents() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no feed corpus at {CORPUS}")
    listed = set(CORPUS_COUNT_EXCEPTIONS) | set(CORPUS_FAILURES) | set(CORPUS_NOT_WELL_FORMED)
    assert {rel for rel in listed if not (CORPUS / rel).is_file()} == set()


# --- issue 7: categories and author for tag: and author: -----------------------------------


def test_categories_and_author_are_kept_apart() -> None:
    rss = by_key(parse("rss20.xml"))["beispiel-0001"]
    assert rss.categories == ("Politik", "Russland")
    atom = parse("atom10.xml").items[0]
    assert atom.categories == ("Politik", "ausland")
    assert atom.author is None
    doc = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>x</title><guid>g1</guid><author>anna@example.org (Anna M\xc3\xbcller)</author>"
        b"</item><item><title>y</title><guid>g2</guid>"
        b'<dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">Boris</dc:creator>'
        b"</item></channel></rss>"
    )
    first, second = parse_feed(doc, {}, URL).items
    assert first.author is not None and "Anna Müller" in first.author
    assert second.author == "Boris"


# The whitespace rule of `_clean` as first written, with regular expressions: the oracle of the
# str.split() version (the same result, half the time).
_HSPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_SPACES = " \n\t\x0b\x0c\r\x1c\x1f\x85\u00a0\u1680\u2000\u2028\u2029\u202f\u3000"


@given(st.text(alphabet=st.sampled_from([*_SPACES, "a", "é", "\u200b", "\x00"]), max_size=40))
@settings(max_examples=3000, deadline=None)
def test_whitespace_is_collapsed_as_the_regular_expressions_did(value: str) -> None:
    from monitor.feeds.parse import _INVISIBLE, _clean

    stripped = _INVISIBLE.sub("", value.replace("\r", "\n"))
    expected = unicodedata.normalize("NFC", _NEWLINES.sub("\n", _HSPACE.sub(" ", stripped)).strip())
    assert _clean(value) == expected
