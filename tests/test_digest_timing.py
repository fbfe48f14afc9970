"""When an alert goes out (alerts.digest): table-driven, with a fake clock (`now` passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.alerts.decide import QueuedAlert, RuleTiming
from monitor.alerts.digest import digest_key, fold_until, hold_until, next_daily
from monitor.types import AlertContent, AlertTiming

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
H = timedelta(hours=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


QUIET = (time(22, 0), time(7, 0))
AT_23 = time(23)

CASES = [
    # (timing, zone, now UTC, expected hold (UTC) or None)
    (AlertTiming(), UTC_ZONE, "2026-03-10 12:34", None),
    (AlertTiming(digest=H), UTC_ZONE, "2026-03-10 12:34", "2026-03-10 13:00"),
    (AlertTiming(digest=H), UTC_ZONE, "2026-03-10 12:00", "2026-03-10 13:00"),
    (AlertTiming(digest=timedelta(minutes=45)), UTC_ZONE, "2026-03-10 23:50", "2026-03-11 00:00"),
    # Berlin is UTC+1 in winter: the 1h windows follow local hours (same as UTC ones here)
    (AlertTiming(digest=H), BERLIN, "2026-01-10 12:34", "2026-01-10 13:00"),
    # daily 08:00 Berlin = 07:00 UTC in winter, 06:00 UTC in summer
    (AlertTiming(digest=time(8)), BERLIN, "2026-01-10 06:59", "2026-01-10 07:00"),
    (AlertTiming(digest=time(8)), BERLIN, "2026-01-10 07:00", "2026-01-11 07:00"),
    (AlertTiming(digest=time(8)), BERLIN, "2026-07-10 05:00", "2026-07-10 06:00"),
    # DST: clocks go forward on 2026-03-29 (02:00 -> 03:00 local)
    (AlertTiming(digest=time(8)), BERLIN, "2026-03-28 12:00", "2026-03-29 06:00"),
    # ... and back on 2026-10-25 (03:00 -> 02:00 local)
    (AlertTiming(digest=time(8)), BERLIN, "2026-10-24 12:00", "2026-10-25 07:00"),
    # a skipped local time is read with the offset before the gap: 02:30 CET = 01:30 UTC
    (AlertTiming(digest=time(2, 30)), BERLIN, "2026-03-28 12:00", "2026-03-29 01:30"),
    # a repeated local time: its first occurrence (02:30 CEST = 00:30 UTC)
    (AlertTiming(digest=time(2, 30)), BERLIN, "2026-10-24 12:00", "2026-10-25 00:30"),
    # 1h windows on the 23-hour day still end at local full hours
    (AlertTiming(digest=H), BERLIN, "2026-03-29 00:30", "2026-03-29 01:00"),
    (AlertTiming(digest=timedelta(hours=5)), BERLIN, "2026-03-29 00:30", "2026-03-29 04:00"),
    # quiet hours 22:00-07:00 local: held until 07:00 local
    (AlertTiming(quiet_hours=QUIET), UTC_ZONE, "2026-03-10 21:59", None),
    (AlertTiming(quiet_hours=QUIET), UTC_ZONE, "2026-03-10 22:00", "2026-03-11 07:00"),
    (AlertTiming(quiet_hours=QUIET), UTC_ZONE, "2026-03-11 03:00", "2026-03-11 07:00"),
    (AlertTiming(quiet_hours=QUIET), UTC_ZONE, "2026-03-11 07:00", None),
    (AlertTiming(quiet_hours=QUIET), BERLIN, "2026-07-10 21:30", "2026-07-11 05:00"),
    # a digest due inside quiet hours goes out when they end
    (AlertTiming(digest=H, quiet_hours=QUIET), UTC_ZONE, "2026-03-10 21:30", "2026-03-11 07:00"),
    (AlertTiming(digest=H, quiet_hours=QUIET), UTC_ZONE, "2026-03-10 20:30", "2026-03-10 21:00"),
    (
        AlertTiming(digest=time(23), quiet_hours=QUIET),
        UTC_ZONE,
        "2026-03-10 12:00",
        "2026-03-11 07:00",
    ),
]


@pytest.mark.parametrize(("timing", "zone", "now", "expected"), CASES)
def test_hold_until(timing: AlertTiming, zone: ZoneInfo, now: str, expected: str | None) -> None:
    assert hold_until(timing, zone, utc(now)) == (utc(expected) if expected else None)


def test_daily_time_keeps_the_wall_clock_across_both_dst_changes() -> None:
    now = utc("2026-03-27 12:00")
    seen = []
    for _ in range(4):
        now = next_daily(time(8), BERLIN, now)
        seen.append(now.astimezone(BERLIN).strftime("%m-%d %H:%M %Z"))
    assert seen == ["03-28 08:00 CET", "03-29 08:00 CEST", "03-30 08:00 CEST", "03-31 08:00 CEST"]


@pytest.mark.parametrize(
    ("timing", "now", "expected"),
    [
        # no digest: the next full local hour (an hourly digest)
        (AlertTiming(max_per_hour=5), "2026-03-10 12:34", "2026-03-10 13:00"),
        # with a digest: that digest
        (AlertTiming(digest=time(8), max_per_hour=5), "2026-03-10 12:34", "2026-03-11 08:00"),
        # after quiet hours
        (AlertTiming(quiet_hours=QUIET, max_per_hour=5), "2026-03-10 21:34", "2026-03-11 07:00"),
    ],
)
def test_fold_over_the_cap(timing: AlertTiming, now: str, expected: str) -> None:
    assert fold_until(timing, UTC_ZONE, utc(now)) == utc(expected)


CONTENT = AlertContent("t", None, "f", None, (), "nm-1")
AT_13 = utc("2026-03-10 13:00")
AT_08 = utc("2026-03-11 08:00")


@pytest.mark.parametrize(
    ("timing", "recent", "expected"),
    [
        ((), {}, None),  # no timing: at once (rows queued before digests existed)
        ((RuleTiming("a", None, None, AT_13),), {}, None),
        ((RuleTiming("a", AT_08, None, AT_08),), {}, AT_08),
        # one immediate rule is enough
        ((RuleTiming("a", AT_08, None, AT_08), RuleTiming("b", None, None, AT_13)), {}, None),
        # under the cap, at the cap
        ((RuleTiming("a", None, 3, AT_13),), {"a": 2}, None),
        ((RuleTiming("a", None, 3, AT_13),), {"a": 3}, AT_13),
        # over the cap with another rule's digest earlier: the earliest
        ((RuleTiming("a", None, 1, AT_08), RuleTiming("b", AT_13, None, AT_13)), {"a": 1}, AT_13),
        # one capped rule over, another under: at once
        ((RuleTiming("a", None, 1, AT_13), RuleTiming("b", None, 9, AT_13)), {"a": 1}, None),
    ],
)
def test_an_alert_goes_out_at_once_or_with_the_earliest_digest(
    timing: tuple[RuleTiming, ...], recent: dict[str, int], expected: datetime | None
) -> None:
    assert QueuedAlert("c", CONTENT, timing).due(recent) == expected


def test_digest_key_names_channel_and_time() -> None:
    assert digest_key("desk", AT_13) == "desk@2026-03-10T13:00:00Z"
