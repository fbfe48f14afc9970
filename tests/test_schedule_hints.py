"""Interval hints (Cache-Control max-age, RSS <ttl>, sy:updatePeriod) lengthen, never shorten."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.feeds.schedule import (
    MAX_HINTED_INTERVAL,
    cache_control_max_age,
    effective_interval,
    rss_ttl,
    syndication_interval,
)

M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("configured", "max_age", "ttl", "sy", "expected"),
    [
        (15 * M, None, None, None, 15 * M),  # no hints
        (15 * M, 5 * M, 1 * M, 10 * M, 15 * M),  # shorter hints never shorten
        (15 * M, 30 * M, None, None, 30 * M),  # max-age lengthens
        (15 * M, None, 60 * M, None, 60 * M),  # <ttl> lengthens
        (15 * M, None, None, 2 * H, 2 * H),  # sy lengthens
        (15 * M, 30 * M, 60 * M, 2 * H, 2 * H),  # the longest wins
        (15 * M, 30 * timedelta(days=1), None, None, MAX_HINTED_INTERVAL),  # capped at 24 h
        (15 * M, None, None, timedelta(days=365), MAX_HINTED_INTERVAL),
        (48 * H, 72 * H, None, None, 48 * H),  # a configured interval beyond the cap stays
        (48 * H, 1 * H, None, None, 48 * H),
        (15 * M, timedelta(0), None, None, 15 * M),  # max-age=0: nothing
        (15 * M, -H, None, None, 15 * M),
    ],
)
def test_effective_interval(
    configured: timedelta,
    max_age: timedelta | None,
    ttl: timedelta | None,
    sy: timedelta | None,
    expected: timedelta,
) -> None:
    assert effective_interval(configured, max_age, ttl, sy) == expected


def test_effective_interval_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError):
        effective_interval(timedelta(0))


@pytest.mark.parametrize(
    ("cache_control", "age", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("max-age=600", None, 10 * M),
        ("public, max-age=3600, must-revalidate", None, H),
        ("Max-Age=60", None, M),
        ('max-age="120"', None, 2 * M),
        ("max-age=3600", "600", 50 * M),  # already 10 minutes old
        ("max-age=60", "600", timedelta(0)),  # older than its lifetime
        ("max-age=3600", "junk", H),  # an invalid Age is ignored
        ("no-cache, max-age=3600", None, None),
        ("max-age=3600, no-store", None, None),
        ("s-maxage=3600", None, None),  # for shared caches only
        ("max-age=-1", None, None),  # invalid: stale
        ("max-age=abc", None, None),
        ("max-age=60, max-age=3600", None, M),  # the first one counts
        ("max-age=99999999999999999999", None, timedelta(days=3650)),  # no overflow
    ],
)
def test_cache_control_max_age(
    cache_control: str | None, age: str | None, expected: timedelta | None
) -> None:
    assert cache_control_max_age(cache_control, age) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("60", H),
        (" 30 ", 30 * M),
        ("0", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
    ],
)
def test_rss_ttl(text: str | None, expected: timedelta | None) -> None:
    assert rss_ttl(text) == expected


@pytest.mark.parametrize(
    ("period", "frequency", "expected"),
    [
        (None, None, None),
        ("hourly", None, H),
        ("hourly", "2", 30 * M),
        ("Daily", "1", 24 * H),
        ("weekly", None, timedelta(weeks=1)),
        (None, "4", 6 * H),  # period defaults to daily
        ("fortnightly", None, None),
        ("daily", "0", None),
        ("daily", "x", None),
    ],
)
def test_syndication_interval(
    period: str | None, frequency: str | None, expected: timedelta | None
) -> None:
    assert syndication_interval(period, frequency) == expected
