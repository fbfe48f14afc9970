"""Issue 8 item 5: feed health. A feed failing longer than `dead_after` (or answering 410), or
with no new item for `stale_after`, gets ONE alert to `ops_channels`, and one more when it
recovers; never more than one per feed per state change. Decisions table-driven (pure), then
end to end: a loopback feed fails then recovers, a webhook receives exactly two ops alerts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.alerts.decide import Failed, Fetched, Gone, HealthChange, decide_health, plan_poll
from monitor.alerts.outbox import content_from_json, health_to_json
from monitor.alerts.render import render_health
from monitor.app import make_app
from monitor.snapshot import Snapshot
from monitor.store.repo import Store
from monitor.types import (
    ChannelConfig,
    Config,
    FeedConfig,
    FeedHealth,
    FeedState,
    FetchResult,
    FetchStatus,
    Item,
    ParsedFeed,
    RuleConfig,
    Settings,
)
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
FEED = FeedConfig("news", "https://user:hunter22@n.example/rss?token=abc123", timedelta(minutes=15))
OK, DEAD, STALE = FeedHealth.OK, FeedHealth.DEAD, FeedHealth.STALE


def snapshot(stale_after: timedelta | None = None, ops: tuple[str, ...] = ("ops",)) -> Snapshot:
    config = Config(
        path=Path("config.toml"),
        settings=Settings(dead_after=24 * H, stale_after=stale_after, ops_channels=ops),
        channels=(ChannelConfig("ops", ("console://",)), ChannelConfig("desk", ("console://",))),
        feeds=(FEED,),
        rules=(),
    )
    return Snapshot.of(config, 1)


def state(**values: object) -> FeedState:
    return replace(FeedState.unpolled("news", FEED.url), **values)  # type: ignore[arg-type]


def fetched(last_new: datetime | None = NOW) -> Fetched:
    return Fetched(NOW, NOW + H, None, None, None, None, last_new_item_at=last_new)


def failed(since: datetime) -> Failed:
    return Failed(NOW, "HTTP 500", 3, NOW + H, None, failing_since=since)


# (feed state before, this poll's update, stale_after) -> health after (None: no change)
CASES = [
    ("first failure", state(), failed(NOW), None, None),
    ("failing 23 h", state(health=OK), failed(NOW - 23 * H), None, None),
    ("failing 24 h: dead", state(health=OK), failed(NOW - 24 * H), None, DEAD),
    ("still dead: no second alert", state(health=DEAD), failed(NOW - 48 * H), None, None),
    ("dead, fetched: back", state(health=DEAD), fetched(), None, OK),
    ("ok, fetched: nothing", state(health=OK), fetched(), None, None),
    ("410 Gone: dead at once", state(), Gone(NOW, "410 Gone"), None, DEAD),
    ("gone again: nothing", state(health=DEAD), Gone(NOW, "410 Gone"), None, None),
    ("stale off: never stale", state(), fetched(NOW - 900 * H), None, None),
    ("no new item for 3 d: stale", state(), fetched(NOW - 72 * H), 72 * H, STALE),
    ("2 d: not yet", state(), fetched(NOW - 48 * H), 72 * H, None),
    ("still stale: nothing", state(health=STALE), fetched(NOW - 99 * H), 72 * H, None),
    ("stale, new item: back", state(health=STALE), fetched(NOW), 72 * H, OK),
    ("stale, failing 1 h: stays", state(health=STALE), failed(NOW - H), 72 * H, None),
    ("stale, failing 24 h: dead", state(health=STALE), failed(NOW - 24 * H), 72 * H, DEAD),
    ("dead, back but stale", state(health=DEAD), fetched(NOW - 80 * H), 72 * H, STALE),
]


@pytest.mark.parametrize(
    ("before", "update", "stale_after", "after"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_health_decisions(
    before: FeedState,
    update: Fetched | Failed | Gone,
    stale_after: timedelta | None,
    after: FeedHealth | None,
) -> None:
    change = decide_health(FEED, before, update, snapshot(stale_after), NOW)
    if after is None:
        assert change is None
        return
    assert isinstance(change, HealthChange) and change.state is after and change.at == NOW
    [alert] = change.alerts  # one alert, to the one ops channel
    assert alert.channel == "ops" and alert.content.previous is before.health
    assert "hunter22" not in alert.content.url and "abc123" not in alert.content.url
    # the outbox round trip and the rendering
    assert content_from_json(health_to_json(alert.content)) == alert.content
    message = render_health(alert.content)
    words = {DEAD: "is failing", STALE: "stopped publishing", OK: "is back"}
    assert words[after] in message.title
    assert alert.content.alert_id in message.body


def test_without_ops_channels_the_state_changes_and_nothing_is_queued() -> None:
    change = decide_health(FEED, state(), failed(NOW - 25 * H), snapshot(ops=()), NOW)
    assert change is not None and change.state is DEAD and change.alerts == ()


def test_plan_poll_carries_failing_since_and_new_items() -> None:
    snap = snapshot(72 * H)
    error = FetchResult(FetchStatus.ERROR, FEED.url, 500, error="HTTP 500")
    first = plan_poll(FEED, state(), error, None, [], "HTTP 500", snap, NOW)
    assert isinstance(first.update, Failed) and first.update.failing_since == NOW
    later = state(consecutive_failures=1, failing_since=NOW - 30 * H)
    dead = plan_poll(FEED, later, error, None, [], "HTTP 500", snap, NOW)
    assert isinstance(dead.update, Failed) and dead.update.failing_since == NOW - 30 * H
    assert dead.health is not None and dead.health.state is DEAD
    assert dead.health.alerts[0].content.since == NOW - 30 * H
    ok = FetchResult(FetchStatus.OK, FEED.url, 200, body=b"x")
    item = Item("k", "k", None, None, "t", "", None)
    parsed = ParsedFeed("t", (item,))
    back = plan_poll(FEED, replace(later, health=DEAD), ok, parsed, [(item, [])], None, snap, NOW)
    assert isinstance(back.update, Fetched) and back.update.last_new_item_at == NOW
    assert back.health is not None and back.health.state is OK


def test_a_feed_that_fails_then_recovers_sends_exactly_two_ops_alerts(
    tmp_path: Path, database_url: str
) -> None:
    clock = [NOW]
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f"] = Static(b"busy", status=500, content_type="text/plain")
        config = Config(
            path=tmp_path / "config.toml",
            settings=Settings(
                database=database_url,
                timeout=timedelta(seconds=5),
                dead_after=timedelta(minutes=30),
                ops_channels=("ops",),
            ),
            channels=(ChannelConfig("ops", (hook.apprise_url(),)),),
            feeds=(FeedConfig("f", srv.url("/f"), timedelta(minutes=15)),),
            rules=(RuleConfig(name="any", query="Hafen", channels=()),),
        )
        store = Store.open(database_url)
        app = make_app(config, store=store, clock=lambda: clock[0])

        async def poll_and_deliver() -> None:
            async with app.fetcher() as fetcher:
                await pipeline.poll_all(app, fetcher)
            await pipeline.deliver_all(app)

        try:
            for minutes, body in [
                (0, None),  # fails: failing since now
                (20, None),  # 20 min: not dead yet
                (40, None),  # 40 min: dead -> alert 1
                (60, None),  # still dead: nothing
                (80, b"ok"),  # back -> alert 2
                (100, b"ok"),  # still ok: nothing
            ]:
                clock[0] = NOW + timedelta(minutes=minutes)
                if body is not None:
                    srv.routes["/f"] = Static(
                        b'<rss version="2.0"><channel><title>t</title>'
                        b"<item><guid>a</guid><title>Hafen</title></item></channel></rss>"
                    )
                asyncio.run(poll_and_deliver())
            state_after = store.feed_state("f")
        finally:
            app.close()
            store.close()
        received = hook.wait_for(2)
        assert len(hook.requests) == 2
    failing, back = (r.json for r in received)
    assert "feed f is failing" in failing["title"]
    assert f"failing since {NOW:%Y-%m-%dT%H:%M:%SZ}, last error: HTTP 500" in failing["message"]
    assert "feed f is back" in back["title"]
    assert state_after.health is FeedHealth.OK and state_after.failing_since is None
