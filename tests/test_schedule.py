"""Next-poll arithmetic: interval, exponential backoff, Retry-After floor and cap, jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.feeds.schedule import (
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    backoff,
    jitter,
    next_poll,
    parse_retry_after,
    stretch,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, 15 * MIN),
        (1, 15 * MIN),
        (2, 30 * MIN),
        (3, 60 * MIN),
        (4, 120 * MIN),
        (7, 960 * MIN),
        (8, MAX_BACKOFF),  # 1920 min capped at 24 h
        (50, MAX_BACKOFF),
        (10**6, MAX_BACKOFF),  # no overflow for absurd counts
        (-3, 15 * MIN),
    ],
)
def test_backoff_doubles_from_the_interval_up_to_the_cap(
    failures: int, expected: timedelta
) -> None:
    assert backoff(15 * MIN, failures) == expected
    assert next_poll(NOW, 15 * MIN, failures) == NOW + expected


def test_success_polls_after_the_interval() -> None:
    assert next_poll(NOW, timedelta(hours=2), 0) == NOW + timedelta(hours=2)


def test_an_interval_longer_than_the_cap_is_never_shortened() -> None:
    weekly = timedelta(days=7)
    assert backoff(weekly, 1) == weekly
    assert backoff(weekly, 5) == weekly


def test_backoff_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        backoff(timedelta(0), 1)


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, timedelta(hours=3), timedelta(hours=3)),  # Retry-After beyond the backoff wins
        (1, timedelta(minutes=5), 15 * MIN),  # backoff beyond Retry-After wins
        (3, timedelta(minutes=30), 60 * MIN),
        (1, timedelta(0), 15 * MIN),
        (1, timedelta(days=30), MAX_RETRY_AFTER),  # capped even if a caller forgot to
        (0, timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_retry_after_is_a_floor(failures: int, retry_after: timedelta, expected: timedelta) -> None:
    assert next_poll(NOW, 15 * MIN, failures, retry_after) == NOW + expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("  0 ", timedelta(0)),
        ("86400", timedelta(days=1)),
        ("999999999999999999999", MAX_RETRY_AFTER),
        ("Sat, 01 Mar 2025 12:10:00 GMT", timedelta(minutes=10)),  # IMF-fixdate
        ("Saturday, 01-Mar-25 12:10:00 GMT", timedelta(minutes=10)),  # RFC 850
        ("Sat Mar  1 12:10:00 2025", timedelta(minutes=10)),  # asctime, no zone: UTC
        ("Sat, 01 Mar 2025 13:10:00 +0100", timedelta(minutes=10)),
        ("Fri, 28 Feb 2025 12:00:00 GMT", timedelta(0)),  # in the past
        ("Fri, 01 Mar 2030 12:00:00 GMT", MAX_RETRY_AFTER),  # years ahead: capped
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("soon", None),
        ("Sat, 99 Foo 2025 12:10:00 GMT", None),
        ("١٢٠", None),  # non-ASCII digits
    ],
)
def test_parse_retry_after(value: str, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_jitter_only_lengthens_and_stays_within_the_spread() -> None:
    rng = random.Random(42)
    delay = timedelta(minutes=10)
    values = [jitter(delay, rng, spread=0.2) for _ in range(500)]
    assert all(delay <= v < delay * 1.2 for v in values)
    assert len(set(values)) > 400  # actually random


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    delay = timedelta(minutes=10)
    a = [jitter(delay, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize(
    ("fraction", "spread", "expected"),
    [
        (0.0, 0.1, timedelta(minutes=10)),
        (0.5, 0.1, timedelta(minutes=10, seconds=30)),
        (1.0, 0.1, timedelta(minutes=11)),
        (1.0, 0.0, timedelta(minutes=10)),
    ],
)
def test_stretch(fraction: float, spread: float, expected: timedelta) -> None:
    assert stretch(timedelta(minutes=10), fraction, spread) == expected


@pytest.mark.parametrize(("fraction", "spread"), [(-0.1, 0.1), (1.1, 0.1), (0.5, -1.0)])
def test_stretch_rejects_bad_arguments(fraction: float, spread: float) -> None:
    with pytest.raises(ValueError):
        stretch(timedelta(minutes=10), fraction, spread)
