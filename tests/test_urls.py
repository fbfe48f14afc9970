"""Tests for monitor.feeds.urls: which item links are usable, and which article they name."""

from __future__ import annotations

import pytest

from monitor.feeds.urls import TRACKING_PARAMS, canonical_link, resolve_link

FEED = "https://news.example.org/feeds/main.xml"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # tracking parameters go, the others keep their order and spelling
        (
            "https://ex.org/a?utm_source=rss&id=7&utm_medium=feed&page=2",
            "https://ex.org/a?id=7&page=2",
        ),
        ("https://ex.org/a?b=2&a=1&fbclid=XYZ", "https://ex.org/a?b=2&a=1"),
        ("https://ex.org/a?gclid=1&msclkid=2&yclid=3", "https://ex.org/a"),
        ("https://ex.org/a?mc_cid=1&mc_eid=2&_hsenc=3&_hsmi=4&igshid=5", "https://ex.org/a"),
        ("https://ex.org/a?at_medium=x&at_campaign=y&xtor=RSS-3&ref_src=twsrc", "https://ex.org/a"),
        ("https://ex.org/a?UTM_Source=x&Utm_Campaign=y&q=1", "https://ex.org/a?q=1"),  # any case
        ("https://ex.org/a?utm%5Fsource=x&q=1", "https://ex.org/a?q=1"),  # encoded name
        ("https://ex.org/a?mtm_campaign=x&pk_campaign=y", "https://ex.org/a"),
        (
            "https://ex.org/a?q=caf%C3%A9+au+lait&x=%2F",
            "https://ex.org/a?q=caf%C3%A9+au+lait&x=%2F",
        ),
        ("https://ex.org/a?q=1&&utm_term=x&", "https://ex.org/a?q=1"),  # empty pairs dropped
        ("https://ex.org/a?ref=home", "https://ex.org/a?ref=home"),  # too generic to drop
        ("https://ex.org/a?flag", "https://ex.org/a?flag"),  # value-less parameter kept
        # fragment dropped, except client-side routes
        ("https://ex.org/a#comments", "https://ex.org/a"),
        ("https://ex.org/a?x=1#top", "https://ex.org/a?x=1"),
        ("https://ex.org/#!/story/42", "https://ex.org/#!/story/42"),
        ("https://ex.org/app#/story/42", "https://ex.org/app#/story/42"),
        # scheme and host lower-cased, path untouched, default port dropped
        ("HTTPS://News.Example.ORG/Artikel/A", "https://news.example.org/Artikel/A"),
        ("http://ex.org:80/a", "http://ex.org/a"),
        ("https://ex.org:443/a", "https://ex.org/a"),
        ("https://ex.org:8443/a", "https://ex.org:8443/a"),
        ("http://ex.org:443/a", "http://ex.org:443/a"),  # not the default for http
        ("https://ex.org./a", "https://ex.org/a"),  # trailing dot of a FQDN
        ("https://User:Pw@Ex.org:443/a", "https://User:Pw@ex.org/a"),
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
        ("https://ex.org", "https://ex.org/"),  # empty path is "/"
        ("https://ex.org?utm_source=x", "https://ex.org/"),
        ("https://bücher.example/straße", "https://bücher.example/straße"),
        # not http(s), or not parseable: unchanged
        ("mailto:desk@example.org", "mailto:desk@example.org"),
        ("ftp://ex.org/a#b", "ftp://ex.org/a#b"),
        ("http://[::1/a", "http://[::1/a"),
        ("/relative/only?utm_source=x", "/relative/only?utm_source=x"),
    ],
)
def test_canonical_link(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


def test_canonical_link_is_idempotent() -> None:
    url = "HTTPS://Ex.org:443/a?utm_source=x&b=1#frag"
    assert canonical_link(canonical_link(url)) == canonical_link(url)


def test_tracking_list_is_lower_case() -> None:
    assert all(name == name.lower() for name in TRACKING_PARAMS)


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("https://other.example/x?utm_source=y#f", FEED, "https://other.example/x?utm_source=y#f"),
        ("http://ex.org/a", None, "http://ex.org/a"),
        # relative links resolved against the feed URL
        ("/artikel/1", FEED, "https://news.example.org/artikel/1"),
        ("artikel/1", FEED, "https://news.example.org/feeds/artikel/1"),
        ("../a?b=1", FEED, "https://news.example.org/a?b=1"),
        ("//cdn.example.net/a", FEED, "https://cdn.example.net/a"),
        ("?page=2", FEED, "https://news.example.org/feeds/main.xml?page=2"),
        ("  https://ex.org/a \n", FEED, "https://ex.org/a"),
        # spaces and controls inside are percent-encoded, tabs/newlines removed
        ("https://ex.org/a b", FEED, "https://ex.org/a%20b"),
        ("https://ex.org/a\tb\nc", FEED, "https://ex.org/abc"),
        # everything that is not http(s) is refused
        ("javascript:alert(1)", FEED, None),
        ("JavaScript:alert(1)", FEED, None),
        ("  javascript:alert(1)", FEED, None),
        ("java\tscript:alert(1)", FEED, None),
        ("java\nscript:alert(1)", FEED, None),
        ("\x00javascript:alert(1)", FEED, None),
        ("data:text/html;base64,PHNjcmlwdD4=", FEED, None),
        ("vbscript:msgbox(1)", FEED, None),
        ("file:///etc/passwd", FEED, None),
        ("ftp://ex.org/file", FEED, None),
        ("mailto:a@b.c", FEED, None),
        ("https://", FEED, None),
        ("http:///path-only", FEED, None),
        ("http://[::1", FEED, None),
        ("", FEED, None),
        (None, FEED, None),
        ("   ", FEED, None),
        # a relative link needs an http(s) base
        ("/artikel/1", None, None),
        ("/artikel/1", "", None),
        ("/artikel/1", "file:///srv/feed.xml", None),
    ],
)
def test_safe_link(link: str | None, base: str | None, expected: str | None) -> None:
    assert resolve_link(link, base) == expected
