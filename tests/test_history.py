"""`monitor test-rule NAME --history [--since D]`: what a rule would have caught, per feed and
per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.testrule import history_counts
from tests.feedserver import FeedServer, Static


def test_history_counts_per_feed_and_day() -> None:
    day = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    hits = [("b", day), ("a", day), ("a", day + timedelta(hours=1)), ("a", day - timedelta(days=2))]
    per_feed, per_day = history_counts(hits)
    assert per_feed == [("a", 3), ("b", 1)]
    assert per_day == [("2026-11-28", 1), ("2026-11-30", 2), ("2026-12-01", 1)]


def rss(*items: tuple[str, str, datetime]) -> bytes:
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://n.example/{g}</link>"
        f"<pubDate>{format_datetime(d)}</pubDate></item>"
        for g, t, d in items
    )
    return f'<rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


def test_history_prints_counts_and_honours_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    with FeedServer() as srv:
        srv.routes["/a.xml"] = Static(
            rss(("a1", "Kursk heute", now), ("a2", "Kursk gestern", now - timedelta(days=1)))
        )
        srv.routes["/b.xml"] = Static(rss(("b1", "Lage in Kursk", now), ("b2", "Paris", now)))
        config = tmp_path / "config.toml"
        config.write_text(
            f'[monitor]\ndatabase = "sqlite:///m.db"\n[channels]\n'
            f'[[feeds]]\nname = "a"\nurl = "{srv.url("/a.xml")}"\n'
            f'[[feeds]]\nname = "b"\nurl = "{srv.url("/b.xml")}"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\nchannels = []\n'
            '[[rules]]\nname = "kursk-b"\nany = ["Kursk"]\nfeeds = ["b"]\nchannels = []\n',
            encoding="utf-8",
        )
        assert main(["--config", str(config), "poll"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "test-rule", "kursk", "--history", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "3 of 4 stored items first seen since" in out
    per_feed = out[out.index("per feed:") : out.index("per day")]
    assert per_feed.split() == ["per", "feed:", "2", "a", "1", "b"]
    assert now.strftime("%Y-%m-%d") in out.split("per day")[1]
    # the rule's own feeds = [...] applies to the backtest too
    assert main(["--config", str(config), "test-rule", "kursk-b", "--history"]) == 0
    assert "1 of 4 stored items match" in capsys.readouterr().out
    # nothing was first seen in the future: --since in the past excludes nothing, and a
    # typo is a usage error
    assert main(["--config", str(config), "test-rule", "kursk", "--history", "--since", "7x"]) == 2
    assert (
        main(["--config", str(config), "test-rule", "kursk", "--text", "x", "--since", "1d"]) == 2
    )
