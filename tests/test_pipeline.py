"""The pipeline in-process against loopback servers: failures stay with their feed or channel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.alerts.decide import effective_date
from monitor.app import App, make_app
from monitor.store.repo import Store
from monitor.types import ChannelConfig, Config, FeedConfig, RuleConfig, Settings
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

NOW = datetime.now(UTC)


def rss(*guids: str, text: str = "Neues aus Kursk") -> bytes:
    date = format_datetime(NOW)
    items = "".join(
        f"<item><guid>{g}</guid><title>{text} {g}</title><link>https://n.example/{g}</link>"
        f"<pubDate>{date}</pubDate></item>"
        for g in guids
    )
    return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def make_config(tmp: Path, feeds: list[FeedConfig], channels: list[ChannelConfig]) -> Config:
    return Config(
        path=tmp / "config.toml",
        settings=Settings(database=f"sqlite:///{tmp / 'm.db'}", timeout=timedelta(seconds=5)),
        channels=tuple(channels),
        feeds=tuple(feeds),
        rules=(RuleConfig(name="kursk", query="Kursk"),),
    )


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, WebhookServer, WebhookServer]]:
    with FeedServer() as srv, WebhookServer() as slow, WebhookServer() as fast:
        yield srv, slow, fast


def run_pass(app: App) -> list[object]:
    async def one() -> list[object]:
        async with app.fetcher() as fetcher:
            return list(await pipeline.poll_all(app, fetcher))

    return asyncio.run(one())


def test_a_hostile_feed_fails_alone(
    servers: tuple[FeedServer, WebhookServer, WebhookServer], tmp_path: Path
) -> None:
    srv, _, hook = servers
    srv.routes["/good"] = Static(rss("g1"))
    srv.routes["/bad"] = Static(
        b'<rss version="2.0"><channel><item><title>Kursk &#99999999; y</title></item>'
        b"</channel></rss>"
    )
    srv.routes["/worse"] = Static(b'<?xml version="1.0" encoding="utf\xff-8"?><rss></rss>')
    feeds = [
        FeedConfig(name, srv.url(f"/{name}"), timedelta(minutes=5))
        for name in ("good", "bad", "worse")
    ]
    config = make_config(tmp_path, feeds, [ChannelConfig("hook", (hook.apprise_url(),))])
    store = Store.open(config.settings.database)
    app = make_app(config, store=store)
    try:
        outcomes = {o.feed: o for o in run_pass(app)}  # type: ignore[attr-defined]
        assert outcomes["good"].new_items == 1
        # each broken document fails its own feed, with the parser's error, and stores nothing
        errors = {
            "bad": "parsing failed: ValueError: chr() arg not in range(0x110000)",
            "worse": "parsing failed: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff",
        }
        for name, error in errors.items():
            outcome = outcomes[name]
            assert (outcome.status, outcome.new_items, outcome.alerts) == ("error", 0, 0)
            assert outcome.error is not None and outcome.error.startswith(error)
            state = store.feed_state(name)
            assert state.last_error == outcome.error and state.consecutive_failures == 1
            assert state.last_success_at is None and state.items_seen == 0
        assert [i.title for i in store.items()] == ["Neues aus Kursk g1"]
        report = asyncio.run(pipeline.deliver_all(app))
    finally:
        app.close()
        store.close()
    assert report.sent == 1 and len(hook.wait_for(1)) == 1
    assert "g1" in str(hook.requests[0].json)


def test_a_slow_channel_does_not_delay_another(
    servers: tuple[FeedServer, WebhookServer, WebhookServer], tmp_path: Path
) -> None:
    srv, slow, fast = servers
    srv.routes["/f"] = Static(rss("a", "b", "c"))
    slow.hold()  # the slow channel answers nothing until the fast one has all three
    channels = [
        # rto: Apprise's read timeout (4 s by default) must outlast the hold
        ChannelConfig("slow", (slow.apprise_url() + "?rto=60",)),
        ChannelConfig("fast", (fast.apprise_url(),)),
    ]
    config = make_config(tmp_path, [FeedConfig("f", srv.url("/f"), timedelta(minutes=5))], channels)
    store = Store.open(config.settings.database)
    app = make_app(config, store=store)
    try:
        run_pass(app)

        async def deliver() -> int:
            task = asyncio.ensure_future(pipeline.deliver_all(app))
            try:
                await asyncio.to_thread(fast.wait_for, 3, 20)
                await asyncio.to_thread(slow.wait_for, 1, 20)
                return len(slow.requests)  # ...whose first is still unanswered
            finally:
                slow.release()
                await task

        assert asyncio.run(deliver()) == 1
    finally:
        slow.release()
        app.close()
        store.close()
    assert len(slow.requests) == 3 and len(fast.requests) == 3


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (None, NOW),  # undated: first seen
        (NOW - timedelta(days=3), NOW - timedelta(days=3)),
        (NOW + timedelta(minutes=5), NOW + timedelta(minutes=5)),  # within the clock skew
        (NOW + timedelta(days=365 * 900), NOW),  # year 2900: not trusted
    ],
)
def test_effective_date(published: datetime | None, expected: datetime) -> None:
    assert effective_date(published, NOW) == expected
