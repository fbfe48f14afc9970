"""When to poll a feed next: interval, exponential backoff, Retry-After, jitter.

Pure functions over plain values; `now` is always an argument (see `monitor.clock`).

Policy:
- after a success the next poll is `now + interval`;
- after `n` consecutive failures it is `now + interval * 2**(n-1)`, capped at `MAX_BACKOFF`
  (24 h) but never shorter than the feed's own interval (a feed polled daily stays daily);
- a server's Retry-After (429/503) is a floor: never poll before `now + retry_after`.
  Retry-After values are capped at `MAX_RETRY_AFTER` (7 days) so a hostile or mistaken header
  cannot silence a feed for months;
- `jitter` lengthens a delay by a random share so feeds that failed together do not all come
  back in the same second. It only ever lengthens, so it never undercuts a Retry-After.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_BACKOFF = timedelta(hours=24)
MAX_RETRY_AFTER = timedelta(days=7)
DEFAULT_JITTER = 0.1  # up to +10 %

_DELTA_SECONDS = re.compile(r"[0-9]+")


def backoff(interval: timedelta, consecutive_failures: int) -> timedelta:
    """The delay before the next poll after `consecutive_failures` failures in a row."""
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    if consecutive_failures <= 0:
        return interval
    ceiling = max(MAX_BACKOFF, interval)
    delay = interval
    for _ in range(consecutive_failures - 1):  # doubling, not 2**n: no overflow for any n
        if delay >= ceiling:
            break
        delay *= 2
    return min(delay, ceiling)


def next_poll(
    now: datetime,
    interval: timedelta,
    consecutive_failures: int = 0,
    retry_after: timedelta | None = None,
) -> datetime:
    """The time of the next poll of a feed.

    `consecutive_failures` counts the failed polls in a row, including the one just finished
    (0 after a success). `retry_after` is the server's Retry-After, if it sent one.
    """
    delay = backoff(interval, consecutive_failures)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


def parse_retry_after(value: str, now: datetime) -> timedelta | None:
    """A Retry-After header value (delta-seconds or HTTP-date) as a delay from `now`.

    None when the value is neither form. A date in the past gives zero; anything longer than
    `MAX_RETRY_AFTER` is cut to it. A date without a zone is read as UTC.
    """
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = int(text)
        if seconds >= MAX_RETRY_AFTER.total_seconds():
            return MAX_RETRY_AFTER
        return timedelta(seconds=seconds)
    if not text or not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = when - now
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def jitter(delay: timedelta, rng: random.Random, spread: float = DEFAULT_JITTER) -> timedelta:
    """`delay` lengthened by a random share in [0, spread) of itself.

    Pass a seeded `random.Random` in tests; the daemon owns one unseeded instance.
    """
    return stretch(delay, rng.random(), spread)


def stretch(delay: timedelta, fraction: float, spread: float = DEFAULT_JITTER) -> timedelta:
    """`delay * (1 + spread * fraction)`: the deterministic half of `jitter`."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    if spread < 0.0:
        raise ValueError(f"spread must not be negative, got {spread}")
    return delay + delay * (spread * fraction)
