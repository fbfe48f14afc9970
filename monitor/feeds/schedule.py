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

The database decides what is due: each feed row holds `next_poll_at`, written after every poll
by `after_success` / `after_failure` (410 Gone: never again), and `may_poll` is the one answer
to "may this feed be fetched now?" for both `monitor poll` and the daemon's tick.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from monitor.backoff import doubling
from monitor.types import FeedState

MAX_BACKOFF = timedelta(hours=24)
MAX_RETRY_AFTER = timedelta(days=7)
DEFAULT_JITTER = 0.1  # up to +10 % after a failure
SUCCESS_JITTER = 0.05  # up to +5 % (at most MAX_SUCCESS_JITTER) after a success
MAX_SUCCESS_JITTER = timedelta(seconds=60)

_DELTA_SECONDS = re.compile(r"[0-9]+")


def backoff(interval: timedelta, consecutive_failures: int) -> timedelta:
    """The delay before the next poll after `consecutive_failures` failures in a row."""
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    if consecutive_failures <= 0:
        return interval
    return doubling(interval, consecutive_failures, max(MAX_BACKOFF, interval))


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


# --- hints from the server and the feed ------------------------------------------------------
#
# A server may say how long its answer stays fresh (`Cache-Control: max-age`), and a feed may
# say how often it changes (RSS `<ttl>`, minutes; `sy:updatePeriod` / `sy:updateFrequency`).
# These hints may lengthen a feed's configured interval, never shorten it, and never beyond
# `MAX_HINTED_INTERVAL`: a misconfigured header cannot silence a feed for longer than a day.

MAX_HINTED_INTERVAL = timedelta(hours=24)

_SY_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}
_MAX_HINT_SECONDS = 10 * 365 * 24 * 3600  # larger numbers are nonsense, and overflow timedelta


def effective_interval(
    configured: timedelta,
    max_age: timedelta | None = None,
    ttl: timedelta | None = None,
    sy: timedelta | None = None,
) -> timedelta:
    """The interval to poll a feed at, given its configured interval and the hints.

    The longest of the configured interval and the hints, with the hints capped at
    `MAX_HINTED_INTERVAL`; a configured interval longer than that cap stays as it is.
    Missing, zero or negative hints change nothing.
    """
    if configured <= timedelta(0):
        raise ValueError(f"interval must be positive, got {configured}")
    longest = configured
    for hint in (max_age, ttl, sy):
        if hint is not None:
            longest = max(longest, min(hint, MAX_HINTED_INTERVAL))
    return longest


def cache_control_max_age(cache_control: str | None, age: str | None = None) -> timedelta | None:
    """The freshness lifetime left by a `Cache-Control` header (and the `Age` header).

    None when there is no usable `max-age`, or when `no-cache`/`no-store` asks to revalidate
    every time. A response already `Age` seconds old is fresh for `max-age - Age` more.
    `s-maxage` is for shared caches and is ignored.
    """
    if not cache_control:
        return None
    max_age: int | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-cache", "no-store"):
            return None
        if name == "max-age" and max_age is None:
            seconds = _seconds(value.strip().strip('"'))
            if seconds is None:
                return None  # an invalid max-age means "stale" (RFC 9111 4.2.1)
            max_age = seconds
    if max_age is None:
        return None
    used = _seconds(age.strip()) if age else None
    return timedelta(seconds=max(max_age - (used or 0), 0))


def rss_ttl(text: str | None) -> timedelta | None:
    """RSS `<channel><ttl>`: minutes the feed may be cached. None when absent or invalid."""
    minutes = _seconds(text.strip()) if text else None
    if minutes is None or minutes == 0:
        return None
    return timedelta(minutes=min(minutes, _MAX_HINT_SECONDS // 60))


def syndication_interval(period: str | None, frequency: str | None = None) -> timedelta | None:
    """`sy:updatePeriod` (hourly ... yearly, default daily) over `sy:updateFrequency`
    (times per period, default 1). None when neither is given or either is invalid."""
    if not (period and period.strip()) and not (frequency and frequency.strip()):
        return None
    span = _SY_PERIODS.get((period or "daily").strip().lower())
    if span is None:
        return None
    times = 1
    if frequency and frequency.strip():
        parsed = _seconds(frequency.strip())
        if parsed is None or parsed == 0:
            return None
        times = parsed
    return span / times


def _seconds(text: str) -> int | None:
    """A non-negative decimal integer (delta-seconds), capped; None otherwise."""
    if not _DELTA_SECONDS.fullmatch(text):
        return None
    return min(int(text), _MAX_HINT_SECONDS)


# --- the due decision ----------------------------------------------------------------------


class Permission(StrEnum):
    """Whether a feed may be fetched now, and if not, why."""

    DUE = "due"
    NOT_YET = "not yet"  # healthy; its interval has not passed
    BACKING_OFF = "backing off"  # failing; its backoff has not passed
    WAITING = "waiting"  # the server's Retry-After has not passed
    GONE = "gone"  # answered 410: never polled again


def may_poll(state: FeedState, now: datetime, *, forced: bool = False) -> Permission:
    """May this feed be fetched now? `forced` (`monitor poll`, a feed changed by a reload)
    skips the interval and the backoff, never a server's Retry-After nor a 410."""
    if state.gone:
        return Permission.GONE
    if state.retry_until is not None and state.retry_until > now:
        return Permission.WAITING
    if forced or state.next_poll_at is None or state.next_poll_at <= now:
        return Permission.DUE
    return Permission.BACKING_OFF if state.consecutive_failures else Permission.NOT_YET


def after_success(now: datetime, interval: timedelta, fraction: float) -> datetime:
    """`next_poll_at` after a 200 or 304: the interval, lengthened by a little jitter so feeds
    polled together drift apart. `fraction` in [0, 1] is the random draw."""
    extra = min(stretch(interval, fraction, SUCCESS_JITTER) - interval, MAX_SUCCESS_JITTER)
    return now + interval + extra


def after_failure(
    now: datetime,
    interval: timedelta,
    consecutive_failures: int,
    retry_after: timedelta | None,
    fraction: float,
) -> datetime:
    """`next_poll_at` after a failed poll: backoff, Retry-After as a floor, then jitter (which
    only lengthens), so feeds of one host that failed together do not retry together."""
    delay = next_poll(now, interval, consecutive_failures, retry_after) - now
    return now + stretch(delay, fraction)


def start_times(states: list[FeedState], now: datetime, spread: timedelta) -> dict[str, datetime]:
    """At daemon start: every feed that may be polled now gets a time within `spread`, in
    order, so a restart polls everything soon without a burst. A feed backing off or waiting
    for its server keeps its time; a gone feed gets none."""
    ready = [s for s in states if may_poll(s, now, forced=True) is Permission.DUE]
    ready = [
        s for s in ready if not (s.consecutive_failures and s.next_poll_at and s.next_poll_at > now)
    ]
    return {s.name: now + spread * (i / max(1, len(ready))) for i, s in enumerate(ready)}
