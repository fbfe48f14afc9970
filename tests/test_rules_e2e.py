"""Rule features that need the item's fields and its feed, through a real poll: per-rule
`feeds`/`exclude_feeds`, `tag:`, `author:` and `url:`, matched in the worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from tests.feedserver import FeedServer, Static


def rss(guid: str, title: str, category: str, author: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://n.example/politik/{guid}</link><category>{category}</category>"
        f"<author>{author}</author><description>Bericht.</description></item>"
        "</channel></rss>"
    ).encode()


def test_feed_filters_and_fields_work_in_a_real_poll(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as srv:
        srv.routes["/one.xml"] = Static(rss("a1", "Lage bei Kursk", "Politik", "Anna"))
        srv.routes["/two.xml"] = Static(rss("b1", "Kursk heute", "Sport", "Boris"))
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[monitor]
database = "sqlite:///m.db"
[channels]
[[feeds]]
name = "one"
url = "{srv.url("/one.xml")}"
[[feeds]]
name = "two"
url = "{srv.url("/two.xml")}"
[[rules]]
name = "only-one"
any = ["Kursk"]
feeds = ["one"]
channels = []
[[rules]]
name = "not-one"
any = ["Kursk"]
exclude_feeds = ["one"]
channels = []
[[rules]]
name = "politics"
query = 'tag:Politik'
channels = []
[[rules]]
name = "boris"
query = 'author:Boris'
channels = []
[[rules]]
name = "by-url"
query = 'url:politik AND Kursk'
channels = []
""",
            encoding="utf-8",
        )
        assert main(["--config", str(config), "poll"]) == 0
        capsys.readouterr()
        assert main(["--config", str(config), "matches", "--format", "json"]) == 0
    found = {(m["rule"], m["feed"]) for m in json.loads(capsys.readouterr().out)}
    assert found == {
        ("only-one", "one"),
        ("not-one", "two"),
        ("politics", "one"),
        ("boris", "two"),
        ("by-url", "one"),
        ("by-url", "two"),
    }
