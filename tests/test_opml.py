"""OPML import into config.toml text (comments and layout kept) and OPML 2.0 export."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.feeds.opml import ImportedFeed, OpmlError, SkippedOutline, export_opml, import_opml
from monitor.types import FeedConfig

CONFIG = """\
# The desk's monitor.
[monitor]
interval = "15m"  # every quarter hour

# --- feeds ---
[[feeds]]
name = "Agency wire"   # the main one
url = "https://wire.example.com/rss"

[[feeds]]
name = "Ministry"
url = "https://ministry.example.org/feed.xml"
interval = "1h"

# --- rules ---
[[rules]]
name = "troops"
any = ["troops"]
"""

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="News">
      <outline text="Wire again" xmlUrl="http://WIRE.example.com:80/rss" type="rss"/>
      <outline text="Regional">
        <outline type="rss" title="Harbour Times" text="ignored" xmlUrl="https://harbour.example.net/feed"/>
        <outline type="rss" xmlUrl="https://untitled.example.net/atom.xml"/>
      </outline>
    </outline>
    <outline type="rss" text="Agency wire" xmlUrl="https://other-wire.example.com/rss"/>
    <outline type="rss" text="  Spaced\tout \n name " xmlUrl="https://spaced.example.com/rss"/>
    <outline type="rss" text="Harbour duplicate" xmlUrl="https://harbour.example.net/feed#top"/>
    <outline type="rss" text="Gopher" xmlUrl="gopher://old.example.com/rss"/>
    <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
    <outline type="rss" text="No host" xmlUrl="https:///rss"/>
    <outline type="rss" text="Lost its URL"/>
    <outline type="rss" text="Paused" xmlUrl="https://paused.example.com/rss" isComment="true"/>
    <outline type="rss" text="Templated ${HOME}" xmlUrl="https://t.example.com/rss?k=${KEY}"/>
  </body>
</opml>
"""


def test_import_appends_feeds_and_keeps_the_file_as_it_was() -> None:
    text, added, skipped = import_opml(OPML, CONFIG)
    assert added == [
        ImportedFeed("Harbour Times", "https://harbour.example.net/feed"),
        ImportedFeed("untitled.example.net", "https://untitled.example.net/atom.xml"),
        ImportedFeed("Agency wire (2)", "https://other-wire.example.com/rss"),
        ImportedFeed("Spaced out name", "https://spaced.example.com/rss"),
        ImportedFeed("Paused", "https://paused.example.com/rss", enabled=False),
        ImportedFeed("Templated ${HOME}", "https://t.example.com/rss?k=${KEY}"),
    ]
    assert skipped == [
        SkippedOutline("http://WIRE.example.com:80/rss", "already in config.toml"),
        SkippedOutline("https://harbour.example.net/feed#top", "already in config.toml"),
        SkippedOutline("gopher://old.example.com/rss", "not an http(s) URL"),
        SkippedOutline("file:///etc/passwd", "not an http(s) URL"),
        SkippedOutline("https:///rss", "the URL has no host"),
        SkippedOutline("Lost its URL", "no xmlUrl"),
    ]
    # Everything that was there is still there, byte for byte, in the same order.
    # The new tables come right after the last feed, before the rules' comment.
    head = CONFIG[: CONFIG.index("# --- rules ---")]
    tail = CONFIG[len(head) :]
    assert text.startswith(head + '[[feeds]]\nname = "Harbour Times"\n')
    assert text.endswith(
        'enabled = false\n\n[[feeds]]\nname = "Templated $${HOME}"\n'
        'url = "https://t.example.com/rss?k=$${KEY}"\n\n' + tail
    )
    data = tomllib.loads(text)
    assert [f["name"] for f in data["feeds"]][:2] == ["Agency wire", "Ministry"]
    assert data["feeds"][1]["interval"] == "1h"
    assert data["feeds"][-1] == {
        "name": "Templated $${HOME}",  # escaped: config.toml interpolates ${VAR}
        "url": "https://t.example.com/rss?k=$${KEY}",
    }
    assert data["rules"] == [{"name": "troops", "any": ["troops"]}]


def test_imported_config_loads(tmp_path: Path) -> None:
    text, added, _ = import_opml(OPML, CONFIG)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, {})
    assert [f.name for f in config.feeds][2:] == [f.name for f in added]
    assert config.feeds[-1].url == "https://t.example.com/rss?k=${KEY}"  # literal, as imported
    assert config.feeds[-1].name == "Templated ${HOME}"
    assert [f.enabled for f in config.feeds].count(False) == 1


def test_import_into_a_config_without_feeds_appends_at_the_end() -> None:
    config = '[monitor]\ninterval = "15m"  # keep me'
    text, added, _ = import_opml(OPML, config)
    assert text.startswith('[monitor]\ninterval = "15m"  # keep me\n\n[[feeds]]\n')
    assert len(tomllib.loads(text)["feeds"]) == len(added) == 7
    assert import_opml(OPML, "")[0].startswith("[[feeds]]\n")


def test_import_keeps_crlf_line_ends() -> None:
    text, _, _ = import_opml(OPML, CONFIG.replace("\n", "\r\n"))
    assert "\n" not in text.replace("\r\n", "")
    assert len(tomllib.loads(text)["feeds"]) == 8


def test_import_twice_adds_nothing_the_second_time() -> None:
    once, added, _ = import_opml(OPML, CONFIG)
    twice, again, skipped = import_opml(OPML, once)
    assert added and again == [] and twice == once
    assert {s.reason for s in skipped} >= {"already in config.toml"}


def test_names_are_cut_to_the_limit_and_kept_unique() -> None:
    long = "x" * 300
    opml = (
        '<opml version="2.0"><body>'
        f'<outline text="{long}" xmlUrl="https://a.example.com/1"/>'
        f'<outline text="{long}" xmlUrl="https://a.example.com/2"/>'
        '<outline text="agency WIRE" xmlUrl="https://a.example.com/3"/>'
        "</body></opml>"
    ).encode()
    _, added, _ = import_opml(opml, CONFIG)
    assert [len(f.name) for f in added[:2]] == [200, 200]
    assert added[1].name.endswith(" (2)")
    assert added[2].name == "agency WIRE (2)"  # names compare case-insensitively


@pytest.mark.parametrize(
    ("opml", "message"),
    [
        (b"<opml><body>", "not well-formed"),
        (b"<rss version='2.0'/>", "not an OPML file"),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x "y">]>'
            b'<opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.example/"/>'
            b"</body></opml>",
            "entities",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.example/"/>'
            b"</body></opml>",
            "entities",
        ),
    ],
)
def test_bad_opml_is_refused(opml: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        import_opml(opml, CONFIG)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[monitor\n", "not valid TOML"),
        ('feeds = "x"\n', "not a list"),
        ('feeds = []\n[monitor]\ninterval = "15m"\n', "cannot add"),
    ],
)
def test_unusable_config_text_is_refused(config: str, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        import_opml(OPML, config)


def test_export_writes_opml_2() -> None:
    feeds = [
        FeedConfig("Agency wire", "https://wire.example.com/rss?a=1&b=2", timedelta(minutes=15)),
        FeedConfig("Ministry <press>", "https://m.example.org/feed", timedelta(hours=1), False),
    ]
    data = export_opml(feeds, now=datetime(2025, 3, 1, 12, tzinfo=UTC))
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "news monitor feeds"
    assert root.findtext("head/dateCreated") == "Sat, 01 Mar 2025 12:00:00 GMT"
    outlines = root.findall("body/outline")
    assert [(o.get("text"), o.get("xmlUrl"), o.get("type")) for o in outlines] == [
        ("Agency wire", "https://wire.example.com/rss?a=1&b=2", "rss"),
        ("Ministry <press>", "https://m.example.org/feed", "rss"),
    ]
    assert [o.get("isComment") for o in outlines] == [None, "true"]


def test_export_then_import_round_trips() -> None:
    feeds = [
        FeedConfig("One", "https://one.example.com/rss", timedelta(minutes=15)),
        FeedConfig("Two", "https://two.example.com/rss", timedelta(minutes=15), False),
    ]
    text, added, skipped = import_opml(export_opml(feeds), "")
    assert skipped == []
    assert added == [
        ImportedFeed("One", "https://one.example.com/rss"),
        ImportedFeed("Two", "https://two.example.com/rss", enabled=False),
    ]
    assert import_opml(export_opml(feeds), text)[1] == []
