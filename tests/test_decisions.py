"""The pure decisions, table-driven with a fixed clock: may a feed be polled, when next, what a
poll's plan stores and alerts (max_age, channels = [], future dates, cross-feed claims,
catching up), and the outbox content's round trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.decide import (
    Failed,
    Fetched,
    Gone,
    decide_item,
    plan_poll,
)
from monitor.alerts.outbox import content_from_json, content_to_json
from monitor.alerts.render import render
from monitor.feeds.schedule import Permission, after_failure, after_success, may_poll, start_times
from monitor.snapshot import Snapshot
from monitor.types import (
    AlertContent,
    ChannelConfig,
    Config,
    FeedConfig,
    FeedState,
    FetchResult,
    FetchStatus,
    Item,
    Match,
    Message,
    ParsedFeed,
    RuleConfig,
    Settings,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FEED = FeedConfig("news", "http://127.0.0.1:9/f.xml", timedelta(minutes=15))


def state(**values: object) -> FeedState:
    return replace(FeedState.unpolled("news", FEED.url), **values)  # type: ignore[arg-type]


def snapshot(**rule_channels: tuple[str, ...] | None) -> Snapshot:
    rules = tuple(
        RuleConfig(name=name, any=("Kursk",), channels=channels)
        for name, channels in (rule_channels or {"kursk": None}).items()
    )
    config = Config(
        path=Path("config.toml"),
        settings=Settings(max_age=timedelta(hours=24)),
        channels=(ChannelConfig("desk", ("console://",)), ChannelConfig("osint", ("console://",))),
        feeds=(FEED,),
        rules=rules,
    )
    return Snapshot.of(config, 1)


def item(key: str = "a", published: datetime | None = NOW, link: str | None = None) -> Item:
    return Item(key, key, link, link, f"Titel {key}", "Kursk", published)


def match(rule: str = "kursk") -> Match:
    return Match(rule, ("Kursk",), "… Kursk …")


# --- may we poll, and when next ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "forced", "expected"),
    [
        ({}, False, Permission.DUE),  # never polled
        ({"next_poll_at": NOW - HOUR}, False, Permission.DUE),
        ({"next_poll_at": NOW + HOUR}, False, Permission.NOT_YET),
        ({"next_poll_at": NOW + HOUR}, True, Permission.DUE),  # `monitor poll`
        ({"next_poll_at": NOW + HOUR, "consecutive_failures": 2}, False, Permission.BACKING_OFF),
        ({"next_poll_at": NOW + HOUR, "consecutive_failures": 2}, True, Permission.DUE),
        ({"retry_until": NOW + HOUR}, True, Permission.WAITING),  # never forced past it
        ({"retry_until": NOW - HOUR}, False, Permission.DUE),
        ({"gone": True}, True, Permission.GONE),
    ],
)
def test_may_poll(values: dict[str, object], forced: bool, expected: Permission) -> None:
    assert may_poll(state(**values), NOW, forced=forced) is expected


def test_next_poll_times() -> None:
    interval = timedelta(minutes=15)
    assert after_success(NOW, interval, 0.0) == NOW + interval
    # jitter only lengthens, at most 5 % and a minute
    assert after_success(NOW, interval, 1.0) == NOW + interval + timedelta(seconds=45)
    assert after_success(NOW, timedelta(hours=6), 1.0) == NOW + timedelta(hours=6, minutes=1)
    assert after_failure(NOW, interval, 1, None, 0.0) == NOW + interval
    assert after_failure(NOW, interval, 3, None, 0.0) == NOW + 4 * interval  # doubling
    assert after_failure(NOW, interval, 1, 2 * HOUR, 0.0) == NOW + 2 * HOUR  # Retry-After floor
    assert after_failure(NOW, interval, 1, None, 1.0) > NOW + interval


def test_start_times_spread_ready_feeds_and_keep_waiting_ones() -> None:
    states = [
        state(name="a"),
        state(name="b", next_poll_at=NOW + HOUR),  # healthy: polled at start anyway
        state(name="c", consecutive_failures=2, next_poll_at=NOW + HOUR),  # backing off
        state(name="d", retry_until=NOW + HOUR),  # the server asked to wait
        state(name="e", gone=True),
    ]
    times = start_times(states, NOW, timedelta(seconds=10))
    assert times == {"a": NOW, "b": NOW + timedelta(seconds=5)}


# --- what an item's matches do -------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "alerts"),
    [
        (NOW - timedelta(hours=2), True),
        (NOW - timedelta(hours=25), False),  # older than max_age: stored, not alerted
        (None, True),  # undated: first seen now
        (NOW + timedelta(days=30), True),  # a date in the future counts as missing
        (NOW + timedelta(minutes=5), True),  # within the clock skew
    ],
)
def test_max_age(published: datetime | None, alerts: bool) -> None:
    plan = decide_item("news", item(published=published), [match()], snapshot(), NOW)
    assert [p.wants_alert for p in plan.matches] == [alerts]
    assert len(plan.alerts) == (2 if alerts else 0)


def test_channels_empty_stores_without_alerting() -> None:
    plan = decide_item(
        "news", item(), [match("quiet"), match("loud")], snapshot(quiet=(), loud=("osint",)), NOW
    )
    assert [(p.match.rule, p.wants_alert) for p in plan.matches] == [
        ("quiet", False),
        ("loud", True),
    ]
    assert [a.channel for a in plan.alerts] == ["osint"]


def test_one_alert_per_channel_lists_its_rules_and_shares_the_item_id() -> None:
    snap = snapshot(a=None, b=("desk",))
    plan = decide_item("news", item(), [match("a"), match("b")], snap, NOW)
    by_channel = {a.channel: a.content for a in plan.alerts}
    assert [m.rule for m in by_channel["desk"].matches] == ["a", "b"]
    assert [m.rule for m in by_channel["osint"].matches] == ["a"]
    assert by_channel["desk"].alert_id != by_channel["osint"].alert_id
    assert by_channel["desk"].item_id == by_channel["osint"].item_id


def test_catching_up_stores_and_alerts_nothing() -> None:
    plan = decide_item("news", item(), [match()], snapshot(), NOW, quiet=True)
    assert [p.wants_alert for p in plan.matches] == [False]
    assert plan.alerts == ()


@pytest.mark.parametrize(
    ("won", "stored", "desk_rules"),
    [
        ({"a", "b"}, [("a", True), ("b", True)], ["a", "b"]),
        ({"b"}, [("a", False), ("b", True)], ["b"]),  # another feed's item alerted rule a
        (set(), [("a", False), ("b", False)], None),  # both: nothing to send
    ],
)
def test_cross_feed_claims_settle_what_is_sent(
    won: set[str], stored: list[tuple[str, bool]], desk_rules: list[str] | None
) -> None:
    plan = decide_item(
        "news",
        item(link="https://n.example/1"),
        [match("a"), match("b")],
        snapshot(a=("desk",), b=("desk",)),
        NOW,
    )
    assert plan.link_key == "https://n.example/1"
    matches, queued = plan.settle(won)
    assert [(m.rule, alerted) for m, alerted in matches] == stored
    if desk_rules is None:
        assert queued == []
    else:
        [alert] = queued
        assert [m.rule for m in alert.content.matches] == desk_rules


# --- the feed row after a poll -------------------------------------------------------------


def result(status: FetchStatus, **values: object) -> FetchResult:
    return FetchResult(status, FEED.url, **values)  # type: ignore[arg-type]


def test_plan_of_each_kind_of_poll() -> None:
    snap = snapshot()
    parsed = ParsedFeed("News", (item(),), problem="not well-formed XML")
    ok = plan_poll(
        FEED, state(), result(FetchStatus.OK, etag='"1"'), parsed, [(item(), [match()])], None,
        snap, NOW,
    )  # fmt: skip
    assert isinstance(ok.update, Fetched)
    assert ok.update.etag == '"1"' and ok.update.document is not None
    assert ok.update.document.problem == "not well-formed XML"
    assert len(ok.items) == 1

    unchanged = plan_poll(
        FEED, state(), result(FetchStatus.NOT_MODIFIED), None, [], None, snap, NOW
    )
    assert isinstance(unchanged.update, Fetched) and unchanged.update.document is None

    moved = plan_poll(
        FEED, state(), result(FetchStatus.NOT_MODIFIED, permanent_url="http://127.0.0.1:9/new"),
        None, [], None, snap, NOW,
    )  # fmt: skip
    assert isinstance(moved.update, Fetched) and moved.update.moved_to == "http://127.0.0.1:9/new"

    failed = plan_poll(
        FEED, state(consecutive_failures=2), result(FetchStatus.ERROR, retry_after=HOUR),
        None, [], "HTTP 503", snap, NOW,
    )  # fmt: skip
    assert isinstance(failed.update, Failed)
    assert failed.update.consecutive_failures == 3
    assert failed.update.retry_until == NOW + HOUR
    assert failed.update.next_poll_at >= NOW + HOUR

    gone = plan_poll(FEED, state(), result(FetchStatus.GONE), None, [], "410 Gone", snap, NOW)
    assert gone.update == Gone(NOW, "410 Gone")


# --- the outbox holds content, rendered at delivery ----------------------------------------


def test_outbox_content_round_trip_renders_the_same_text() -> None:
    content = AlertContent(
        title="Truppen bei Kursk <b>",
        link="https://n.example/a?x=1",
        feed="news",
        published=NOW - HOUR,
        matches=(Match("kursk", ("Kursk", "Курск"), "… bei Kursk …"), match("b")),
        alert_id="nm-1",
        item_id="nmi-1",
    )
    back = content_from_json(content_to_json(content))
    assert back == content
    assert render(back) == render(content)  # byte for byte
    undated = replace(content, published=None, link=None)
    assert content_from_json(content_to_json(undated)) == undated


def test_rows_queued_before_contents_are_sent_as_rendered() -> None:
    legacy = content_from_json('{"v": 0, "title": "T", "body": "B\\nalert-id: x"}')
    assert legacy == Message("T", "B\nalert-id: x")
