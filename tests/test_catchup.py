"""Adding a feed does not flood: `[[feeds]] catch_up = true`, `poll --catch-up`, `poll --feed`.

End to end through the command line, with a loopback feed server and a webhook receiver:
`monitor poll` delivers before it returns, so "nothing sent" is checked right after it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.alerts.decide import catching_up
from monitor.cli import main
from monitor.store.repo import FeedState
from monitor.types import FeedConfig
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer


def rss(*guids: str) -> bytes:
    date = format_datetime(datetime.now(UTC) - timedelta(hours=1))
    items = "".join(
        f"<item><guid>{g}</guid><title>Truppen bei Kursk ({g})</title>"
        f"<link>https://n.example/{g}</link><description>Bericht {g} aus Kursk.</description>"
        f"<pubDate>{date}</pubDate></item>"
        for g in guids
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    ).encode()


@dataclass
class Setup:
    config: Path
    feeds: FeedServer
    hook: WebhookServer

    def serve(self, path: str, body: bytes, status: int = 200) -> None:
        self.feeds.routes[path] = Static(body, status=status)

    def write(self, feeds: str) -> None:
        self.config.write_text(
            '[monitor]\ndatabase = "sqlite:///m.db"\n'
            f'[channels]\nhook = "{self.hook.apprise_url()}"\n'
            f"{feeds}"
            '[[rules]]\nname = "kursk"\nquery = "Kursk"\n',
            encoding="utf-8",
        )

    def feed(self, name: str, path: str, extra: str = "") -> str:
        return f'[[feeds]]\nname = "{name}"\nurl = "{self.feeds.url(path)}"\n{extra}'


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with FeedServer() as feeds, WebhookServer() as hook:
        yield Setup(tmp_path / "config.toml", feeds, hook)
    root.setLevel(level)  # main() configures logging; leave the next test what it had
    root.handlers[:] = handlers


def run(capsys: pytest.CaptureFixture[str], s: Setup, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(s.config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def stored(capsys: pytest.CaptureFixture[str], s: Setup) -> dict[str, bool]:
    """Stored matches: link -> alerted."""
    code, out, _ = run(capsys, s, "matches", "--format", "json")
    assert code == 0
    return {m["link"]: m["alerted"] for m in json.loads(out)}


def alerted_links(hook: WebhookServer) -> list[str]:
    links = []
    for request in hook.requests:
        body = json.dumps(request.json)
        links += [f"https://n.example/{g}" for g in ("a1", "a2", "a3") if f"n.example/{g}" in body]
    return links


def status_of(out: str, feed: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(feed + " "))
    return re.split(r"\s{2,}", line)[1]  # table columns are two or more spaces apart


def test_a_catch_up_feed_sends_nothing_on_its_first_poll_then_alerts_new_items_once(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    s.serve("/f.xml", rss("a1", "a2"))
    s.write(s.feed("news", "/f.xml", "catch_up = true\n"))
    assert run(capsys, s, "check")[0] == 0

    code, out, _ = run(capsys, s, "poll")
    assert code == 0
    assert s.hook.requests == []  # two matches within max_age, and not one alert
    assert "caught up" in out and "2 new items" in out
    assert stored(capsys, s) == {"https://n.example/a1": False, "https://n.example/a2": False}

    s.serve("/f.xml", rss("a1", "a2", "a3"))
    code, out, _ = run(capsys, s, "poll")
    assert code == 0 and "1 delivered" in out
    assert alerted_links(s.hook) == ["https://n.example/a3"]
    assert stored(capsys, s)["https://n.example/a3"] is True

    code, out, _ = run(capsys, s, "poll")  # nothing new: nothing sent again
    assert code == 0 and len(s.hook.requests) == 1


def test_catch_up_waits_for_the_first_successful_poll(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    s.serve("/f.xml", b"", status=500)
    s.write(s.feed("news", "/f.xml", "catch_up = true\n"))
    code, out, _ = run(capsys, s, "poll")
    assert code == 0 and status_of(out, "news") == "error"
    s.serve("/f.xml", rss("a1"))
    code, out, _ = run(capsys, s, "poll", "--feed", "news")
    assert code == 0
    assert status_of(out, "news") == "caught up" and s.hook.requests == []


def test_a_first_empty_document_is_empty_and_later_items_alert(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """A feed that is empty when added has caught up: its first item is news, and alerts."""
    s = setup
    s.serve("/f.xml", rss())
    s.write(s.feed("news", "/f.xml", "catch_up = true\n"))
    code, out, _ = run(capsys, s, "poll")
    assert code == 0 and status_of(out, "news") == "empty"
    code, out, _ = run(capsys, s, "poll")
    assert status_of(out, "news") == "empty"  # still no items: never "unchanged"
    s.serve("/f.xml", rss("a1"))
    code, out, _ = run(capsys, s, "poll")
    assert status_of(out, "news") == "new" and "1 delivered" in out
    assert alerted_links(s.hook) == ["https://n.example/a1"]


def test_poll_catch_up_stores_and_matches_but_sends_nothing(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    s.serve("/f.xml", rss("a1", "a2"))
    s.write(s.feed("news", "/f.xml"))  # no catch_up in config: the flag asks for it
    code, out, _ = run(capsys, s, "poll", "--catch-up")
    assert code == 0
    assert s.hook.requests == []
    assert "none sent (--catch-up), 0 pending" in out  # no outbox rows written
    assert status_of(out, "news") == "caught up"
    assert stored(capsys, s) == {"https://n.example/a1": False, "https://n.example/a2": False}

    code, out, _ = run(capsys, s, "poll")  # the items are seen: nothing for them, ever
    assert code == 0 and s.hook.requests == [] and status_of(out, "news") == "unchanged"
    s.serve("/f.xml", rss("a1", "a2", "a3"))
    assert run(capsys, s, "poll")[0] == 0
    assert alerted_links(s.hook) == ["https://n.example/a3"]


def test_poll_feed_polls_only_the_named_feed(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    s = setup
    s.serve("/old.xml", rss("a1"))
    s.serve("/new.xml", rss("a2"))
    s.write(s.feed("old", "/old.xml") + s.feed("added", "/new.xml"))
    code, out, _ = run(capsys, s, "poll", "--feed", "added", "--catch-up")
    assert code == 0
    assert s.feeds.hits("/old.xml") == 0 and s.feeds.hits("/new.xml") == 1
    assert "1 feeds polled" in out and s.hook.requests == []
    code, out, _ = run(capsys, s, "poll")  # the old feed alerts as usual, the added one not
    assert code == 0
    assert alerted_links(s.hook) == ["https://n.example/a1"]


@pytest.mark.parametrize(
    ("feeds", "args", "message"),
    [
        ('name = "news"\n', ["--feed", "nope"], "no feed 'nope'"),
        ('name = "news"\n', ["--feed", "news", "--feed", "nope"], "(feeds: news)"),
        ('name = "news"\nenabled = false\n', ["--feed", "news"], "enabled = false"),
    ],
)
def test_poll_feed_of_an_unknown_feed_exits_2_naming_the_feeds(
    setup: Setup,
    capsys: pytest.CaptureFixture[str],
    feeds: str,
    args: list[str],
    message: str,
) -> None:
    s = setup
    s.serve("/f.xml", rss("a1"))
    s.write(f'[[feeds]]\n{feeds}url = "{s.feeds.url("/f.xml")}"\n')
    code, _, err = run(capsys, s, "poll", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert s.feeds.hits("/f.xml") == 0


def _state(last_success: datetime | None = None, items_seen: int = 0) -> FeedState:
    return FeedState(
        name="f",
        url="http://127.0.0.1/f",
        title=None,
        etag=None,
        last_modified=None,
        last_success_at=last_success,
        last_error=None,
        last_error_at=None,
        consecutive_failures=0,
        next_poll_at=None,
        retry_until=None,
        gone=False,
        items_seen=items_seen,
    )


NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("catch_up", "state", "forced", "expected"),
    [
        (False, _state(), False, False),  # a new feed without catch_up alerts
        (True, _state(), False, True),  # a new catch_up feed: quiet first poll
        (True, _state(NOW, 3), False, False),  # after its first success: alerts normally
        (True, _state(NOW, 0), False, False),  # first success was empty: caught up already
        (False, _state(NOW, 3), True, True),  # `poll --catch-up` forces it
        (True, _state(NOW, 3), True, True),
    ],
)
def test_catching_up(catch_up: bool, state: FeedState, forced: bool, expected: bool) -> None:
    feed = FeedConfig("f", "http://127.0.0.1/f", timedelta(minutes=5), catch_up=catch_up)
    assert catching_up(feed, state, forced) is expected
