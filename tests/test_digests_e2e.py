"""Digests end to end: matches held in the outbox, sent as one message after their window,
through a real webhook receiver on loopback; a restart in between loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.app import App, make_app
from monitor.store.repo import Store
from monitor.types import AlertTiming, ChannelConfig, Config, FeedConfig, RuleConfig, Settings
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

REAL_NOW = datetime.now(UTC).replace(microsecond=0)


def rss(*guids: str) -> bytes:
    date = format_datetime(REAL_NOW)
    items = "".join(
        f"<item><guid>{g}</guid><title>Kursk report {g}</title>"
        f"<link>https://n.example/{g}</link><description>Fighting near Kursk, part {g}."
        f"</description><pubDate>{date}</pubDate></item>"
        for g in guids
    )
    return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, WebhookServer]]:
    with FeedServer() as srv, WebhookServer() as hook:
        yield srv, hook


def config(tmp: Path, db: str, feed_url: str, hook: str, timing: AlertTiming) -> Config:
    return Config(
        path=tmp / "config.toml",
        settings=Settings(database=db, timeout=timedelta(seconds=5)),
        channels=(ChannelConfig("hook", (hook,)),),
        feeds=(FeedConfig("f", feed_url, timedelta(minutes=5)),),
        rules=(RuleConfig(name="kursk", query="Kursk", timing=timing),),
    )


def poll(app: App) -> None:
    async def one() -> None:
        async with app.fetcher() as fetcher:
            await pipeline.poll_all(app, fetcher)

    asyncio.run(one())


def deliver(app: App) -> pipeline.DeliveryReport:
    return asyncio.run(pipeline.deliver_all(app))


def run(cfg: Config, clock: Clock, step: str) -> pipeline.DeliveryReport:
    """One process's life: open the store, poll or deliver, close (a restart between)."""
    store = Store.open(cfg.settings.database)
    app = make_app(cfg, store=store, clock=clock)
    try:
        if step == "poll":
            poll(app)
        return deliver(app)
    finally:
        app.close()
        store.close()


def test_three_matches_in_one_window_arrive_as_one_message_after_it(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path, database_url: str
) -> None:
    srv, hook = servers
    srv.routes["/f"] = Static(rss("a", "b"))
    clock = Clock(REAL_NOW.replace(minute=10, second=0))
    cfg = config(
        tmp_path,
        database_url,
        srv.url("/f"),
        hook.apprise_url(),
        AlertTiming(digest=timedelta(hours=1)),
    )
    report = run(cfg, clock, "poll")
    assert report.sent == 0 and hook.requests == []
    # a third match in the same window, by another process (restart in between)
    srv.routes["/f"] = Static(rss("a", "b", "c"))
    clock.now += timedelta(minutes=20)
    report = run(cfg, clock, "poll")
    assert report.sent == 0 and hook.requests == []
    # `monitor poll` sends everything pending, but never a digest before its time
    clock.now += timedelta(minutes=29)
    assert run(cfg, clock, "deliver").sent == 0
    # the window ends at the full hour: one message, three items, after a restart
    clock.now = clock.now.replace(minute=0) + timedelta(hours=1, seconds=1)
    report = run(cfg, clock, "deliver")
    assert report.sent == 1
    (request,) = hook.wait_for(1)
    alert = request.json["alert"]
    assert alert["kind"] == "digest" and alert["count"] == 3
    assert [i["title"] for i in alert["items"]] == [
        "Kursk report a",
        "Kursk report b",
        "Kursk report c",
    ]
    assert all("Kursk" in i["matches"][0]["snippet"] for i in alert["items"])
    assert "Kursk report c" in request.json["message"]
    # delivered once: nothing left, nothing sent again
    assert run(cfg, clock, "deliver").sent == 0
    store = Store.open(database_url)
    try:
        assert store.outbox_counts() == {"hook": (0, 3)}
    finally:
        store.close()


def test_a_failed_digest_is_retried_whole(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path
) -> None:
    srv, hook = servers
    srv.routes["/f"] = Static(rss("a", "b"))
    clock = Clock(REAL_NOW.replace(minute=10, second=0))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = config(
        tmp_path, db, srv.url("/f"), hook.apprise_url(), AlertTiming(digest=timedelta(hours=1))
    )
    run(cfg, clock, "poll")
    clock.now += timedelta(hours=1)
    hook.fail_next(1)
    report = run(cfg, clock, "deliver")
    assert (report.sent, report.failed) == (0, 1)
    clock.now += timedelta(minutes=1)
    assert run(cfg, clock, "deliver").sent == 1
    requests = hook.wait_for(2)
    assert [r.json["alert"]["count"] for r in requests] == [2, 2]
    assert requests[0].json["alert"]["alert_id"] == requests[1].json["alert"]["alert_id"]


def test_quiet_hours_hold_alerts_until_they_end(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path
) -> None:
    srv, hook = servers
    srv.routes["/f"] = Static(rss("a", "b"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    timing = AlertTiming(quiet_hours=(time(22), time(7)))
    cfg = config(tmp_path, db, srv.url("/f"), hook.apprise_url(), timing)
    clock = Clock(REAL_NOW.replace(hour=23, minute=0))
    assert run(cfg, clock, "poll").sent == 0
    clock.now = clock.now.replace(hour=6, minute=59) + timedelta(days=1)
    assert run(cfg, clock, "deliver").sent == 0
    clock.now += timedelta(minutes=1)
    assert run(cfg, clock, "deliver").sent == 1
    (request,) = hook.wait_for(1)
    assert request.json["alert"]["count"] == 2


def test_max_per_hour_folds_the_rest_into_the_next_hourly_digest(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path, database_url: str
) -> None:
    srv, hook = servers
    srv.routes["/f"] = Static(rss("a", "b", "c", "d"))
    cfg = config(
        tmp_path, database_url, srv.url("/f"), hook.apprise_url(), AlertTiming(max_per_hour=2)
    )
    clock = Clock(REAL_NOW.replace(minute=10, second=0))
    assert run(cfg, clock, "poll").sent == 2
    # a new item later in the hour: still over the cap (2 immediate in the last 60 min)
    srv.routes["/f"] = Static(rss("a", "b", "c", "d", "e"))
    clock.now += timedelta(minutes=30)
    assert run(cfg, clock, "poll").sent == 0
    clock.now = clock.now.replace(minute=0) + timedelta(hours=1)
    assert run(cfg, clock, "deliver").sent == 1
    requests = hook.wait_for(3)
    assert [r.json["alert"].get("kind") for r in requests] == [None, None, "digest"]
    assert requests[2].json["alert"]["count"] == 3
    # an hour after the immediate ones, the cap has room again
    srv.routes["/f"] = Static(rss("a", "b", "c", "d", "e", "f"))
    clock.now += timedelta(minutes=15)
    assert run(cfg, clock, "poll").sent == 1


def test_a_rule_without_timing_alerts_at_once(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path
) -> None:
    srv, hook = servers
    srv.routes["/f"] = Static(rss("a"))
    db = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = config(tmp_path, db, srv.url("/f"), hook.apprise_url(), AlertTiming())
    cfg = replace(cfg)
    assert run(cfg, Clock(REAL_NOW), "poll").sent == 1
