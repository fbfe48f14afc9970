"""The pipeline in-process against loopback servers: failures stay with their feed or channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.daemon import first_run
from monitor.pipeline import Monitor, effective_date
from monitor.store.repo import FeedState, Store
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


def run_pass(monitor: Monitor) -> list[object]:
    async def one() -> list[object]:
        async with monitor.fetcher() as fetcher:
            return list(await monitor.poll_all(fetcher))

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
    monitor = Monitor(config, store)
    try:
        outcomes = {o.feed: o for o in run_pass(monitor)}  # type: ignore[attr-defined]
        assert outcomes["good"].new_items == 1
        report = asyncio.run(monitor.deliver())
    finally:
        monitor.close()
        store.close()
    assert report.sent == 1 and len(hook.wait_for(1)) == 1


def test_a_slow_channel_does_not_delay_another(
    servers: tuple[FeedServer, WebhookServer, WebhookServer], tmp_path: Path
) -> None:
    srv, slow, fast = servers
    srv.routes["/f"] = Static(rss("a", "b", "c"))
    slow.set_delay(1.5)
    channels = [
        ChannelConfig("slow", (slow.apprise_url(),)),
        ChannelConfig("fast", (fast.apprise_url(),)),
    ]
    config = make_config(tmp_path, [FeedConfig("f", srv.url("/f"), timedelta(minutes=5))], channels)
    store = Store.open(config.settings.database)
    monitor = Monitor(config, store)
    try:
        run_pass(monitor)
        started = time.monotonic()

        async def deliver() -> float:
            task = asyncio.ensure_future(monitor.deliver())
            await asyncio.to_thread(fast.wait_for, 3, 10)
            arrived = time.monotonic() - started
            await task
            return arrived

        assert asyncio.run(deliver()) < 1.5  # all three, before the slow one accepted one
    finally:
        monitor.close()
        store.close()
    assert len(slow.requests) == 3


def state(**values: object) -> FeedState:
    base: dict[str, object] = {
        "name": "f", "url": "http://x/", "title": None, "etag": None, "last_modified": None,
        "last_success_at": None, "last_error": None, "last_error_at": None,
        "consecutive_failures": 0, "next_poll_at": None, "retry_until": None, "gone": False,
        "items_seen": 0,
    }  # fmt: skip
    return FeedState(**(base | values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, NOW),  # a healthy feed: at its place in the start-up spread
        ({"next_poll_at": NOW + timedelta(hours=1)}, NOW),  # healthy: polled at start anyway
        (
            {"consecutive_failures": 2, "next_poll_at": NOW + timedelta(hours=1)},
            NOW + timedelta(hours=1),
        ),  # backing off
        ({"retry_until": NOW + timedelta(hours=2)}, NOW + timedelta(hours=2)),  # Retry-After
    ],
)
def test_first_run_after_a_restart(values: dict[str, object], expected: datetime) -> None:
    assert first_run(state(**values), NOW) == expected
    assert first_run(None, NOW) == NOW


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
