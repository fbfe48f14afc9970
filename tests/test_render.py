"""render(): every field present, feed text inert in every channel, one bounded message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.alerts.render import (
    BODY_MAX,
    TITLE_MAX,
    TRUNCATED,
    ZWSP,
    iso_utc,
    live_link,
    neutralise,
    render,
)
from monitor.types import AlertContent, Match

PUBLISHED = datetime(2024, 10, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))

INJECTIONS = [
    "<!channel>",
    "<!here>",
    "@here",
    "@channel",
    "@everyone",
    "<@U123>",
    "<#C123>",
    "<https://evil.example/x|click>",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "\r\nBcc: x@y.example",
    "[click](https://evil.example/login)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "ftp://evil.example/payload",
    "www.evil.example",
    "evil.example/login",
    "\u202eevil\u202c",
    "\x1b[31mred\x00",
]
HOSTILE = " ".join(INJECTIONS)


def alert(**overrides: object) -> AlertContent:
    values: dict[str, object] = {
        "title": "Nordkoreanische Truppen bei Kursk",
        "link": "https://www.tagesschau.de/ausland/kursk-100.html",
        "feed": "tagesschau",
        "published": PUBLISHED,
        "matches": (
            Match(
                rule="nk-troops",
                terms=("nordkoreanische Truppen", "Kursk"),
                snippet="… dass nordkoreanische Truppen in der Region Kursk eingesetzt …",
            ),
            Match(rule="kursk", terms=("Kursk",), snippet="… Region Kursk …"),
        ),
        "alert_id": "a1b2c3d4e5",
    }
    values.update(overrides)
    return AlertContent(**values)  # type: ignore[arg-type]


def assert_inert(text: str, *, live_link: str | None = None) -> None:
    """No markup, mention, scheme, host or control character a channel could act on."""
    if live_link is not None:
        assert text.count(live_link) == 1
        text = text.replace(live_link, "")
    lowered = text.lower()
    for needle in ("<", ">", "javascript:", "data:", "www.", "evil.example"):
        assert needle not in lowered, (needle, text)
    # the only `x://` left are defanged ones, which no client turns into a link
    assert set(re.findall(r"([a-z0-9+.\-]*)(?<!\[)://", lowered)) <= {"hxxp", "hxxps"}, text
    assert re.search("@(?!" + ZWSP + ")", text) is None, text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)


# --- fields --------------------------------------------------------------------------------


def test_title_names_product_rules_and_item() -> None:
    msg = render(alert())
    assert msg.title == "[news monitor] nk-troops, kursk: Nordkoreanische Truppen bei Kursk"


def test_body_has_every_field_in_plain_text() -> None:
    body = render(alert()).body
    lines = body.splitlines()
    assert "Title: Nordkoreanische Truppen bei Kursk" in lines
    assert "Link: https://www.tagesschau.de/ausland/kursk-100.html" in lines
    assert "Feed: tagesschau" in lines
    assert "Published: 2024-10-01T12:30:05Z" in lines
    assert "Rule: nk-troops" in lines
    assert "Matched: nordkoreanische Truppen, Kursk" in lines
    assert "Snippet: … dass nordkoreanische Truppen in der Region Kursk eingesetzt …" in lines
    assert "Rule: kursk" in lines
    assert lines[-1] == "alert-id: a1b2c3d4e5"
    assert body.index("Rule: nk-troops") < body.index("Rule: kursk")


def test_missing_link_date_and_snippet() -> None:
    msg = render(
        alert(link=None, published=None, matches=(Match(rule="r", terms=("x",), snippet=""),))
    )
    assert "Link: (none)" in msg.body.splitlines()
    assert "Published: unknown" in msg.body.splitlines()
    assert "Snippet:" not in msg.body


def test_empty_title() -> None:
    assert render(alert(title="  \n ")).title.endswith(": (untitled)")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),  # naive is UTC
        (datetime(2024, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=3))), "2024-01-01T21:30:00Z"),
        (None, "unknown"),
    ],
)
def test_iso_utc(moment: datetime | None, expected: str) -> None:
    assert iso_utc(moment) == expected


def test_render_is_deterministic() -> None:
    assert render(alert()) == render(alert())


# --- injection -----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", INJECTIONS)
def test_each_injection_is_inert_in_title_and_body(payload: str) -> None:
    msg = render(
        alert(
            title=f"Kursk {payload} end",
            matches=(Match(rule="r", terms=(payload,), snippet=f"before {payload} after"),),
        )
    )
    assert_inert(msg.title)
    assert_inert(msg.body, live_link="https://www.tagesschau.de/ausland/kursk-100.html")
    assert "\n" not in msg.title and "\r" not in msg.title


def test_hostile_everything() -> None:
    msg = render(
        alert(
            title=HOSTILE,
            feed=f"feed {HOSTILE}",
            alert_id="id",
            matches=(Match(rule=HOSTILE, terms=tuple(INJECTIONS), snippet=HOSTILE),),
        )
    )
    assert_inert(msg.title)
    assert_inert(msg.body, live_link="https://www.tagesschau.de/ausland/kursk-100.html")
    lines = msg.body.splitlines()
    # feed text never starts a line of its own, so it cannot forge headers or our fields
    labels = ("Title: ", "Link: ", "Feed: ", "Published: ", "Rule: ", "Matched: ", "Snippet: ")
    assert all(line == "" or line.startswith((*labels, "alert-id: ")) for line in lines), lines
    assert sum(line.startswith("alert-id: ") for line in lines) == 1
    assert not any(line.startswith("Bcc") for line in lines)


def test_header_injection_in_title_is_flattened() -> None:
    title = render(alert(title="Kursk\r\nBcc: victim@example.org\r\n\r\nbody")).title
    assert "\r" not in title and "\n" not in title
    assert "Bcc: victim@" + ZWSP + "example[.]org body" in title


def test_neutralise_examples() -> None:
    assert neutralise("<!channel> hi") == "‹!channel› hi"
    assert neutralise("@here") == "@" + ZWSP + "here"
    assert neutralise("see https://evil.example/x") == "see hxxps://evil[.]example/x"
    assert neutralise("HTTP://a.example") == "hxxp://a[.]example"
    assert neutralise("sftp://h.example") == "sftp[://]h[.]example"
    assert neutralise("JavaScript:alert(1)") == "JavaScript[:]alert(1)"
    assert neutralise("a\tb\n\nc\u2028d") == "a b c d"


def test_neutralise_keeps_ordinary_news_text() -> None:
    text = "Курской области: 3.5% mehr, U.S. e.g. Kursk-Region (Großbritannien) 10:30 Uhr & more"
    assert neutralise(text) == text


def test_item_link_is_the_one_live_link() -> None:
    assert live_link("https://example.org/a?b=1&c=2#frag") == "https://example.org/a?b=1&c=2#frag"
    assert live_link("https://example.org/<x>|y z") == "https://example.org/%3Cx%3E%7Cyz"
    assert live_link("https://example.org/@everyone") == "https://example.org/%40everyone"
    # user info in a link is a phishing trick (the real host is after the @)
    assert live_link("https://www.bank.example@evil.example/") == "https://evil.example/"
    assert live_link("javascript:alert(1)") == "javascript[:]alert(1)"
    assert live_link("data:text/html,x") == "data[:]text/html,x"
    body = render(alert(link="javascript:alert(document.cookie)")).body
    assert "Link: javascript[:]alert(document[.]cookie)" in body


# --- size ----------------------------------------------------------------------------------


def test_title_is_capped_on_one_line() -> None:
    title = render(alert(title="Kursk " * 200)).title
    assert len(title) <= TITLE_MAX
    assert title.endswith("…")


def test_long_snippets_truncated_once_keeping_the_footer() -> None:
    long = "Kursk " * 20_000  # ~120 KB of summary
    matches = tuple(Match(rule=f"r{i}", terms=("Kursk",), snippet=long) for i in range(3))
    body = render(alert(matches=matches)).body
    assert len(body) <= BODY_MAX
    assert body.count(TRUNCATED) == 1
    assert body.splitlines()[-1] == "alert-id: a1b2c3d4e5"
    assert body.startswith("Title: ")
    assert "Link: https://www.tagesschau.de/ausland/kursk-100.html" in body


def test_long_title_and_link_still_leave_room() -> None:
    body = render(alert(title="T" * 50_000, link="https://example.org/" + "p" * 50_000)).body
    assert len(body) <= BODY_MAX
    assert body.splitlines()[-1] == "alert-id: a1b2c3d4e5"
    assert "Rule: nk-troops" in body


def test_custom_limits() -> None:
    msg = render(alert(), title_max=40, body_max=300)
    assert len(msg.title) <= 40 and len(msg.body) <= 300
    assert msg.body.endswith("alert-id: a1b2c3d4e5")
