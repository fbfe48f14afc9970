"""When an alert goes out: at once, or held for a digest (issue 9). Pure: `now` is passed in.

    hold_until(timing, tz, now)  -> None (send at once) or the time its digest is sent
    fold_until(timing, tz, now)  -> where an alert over `max_per_hour` goes: the next digest
    digest_key(channel, due)     -> the outbox rows sent together as one message

Every time is computed in UTC from local wall-clock times of `[monitor] timezone` (zoneinfo):

- a period digest (`digest = "1h"`) collects windows counted from local midnight (00:00,
  01:00, ... for 1h; the last window of a day ends at the next midnight when the period does
  not divide the day); its message goes out at the end of the window;
- a daily digest (`digest = "08:00"`) goes out at the next 08:00 local time: across a DST
  change it stays at 08:00 on the wall clock (its UTC time moves by the offset); a time the
  clocks skip (02:30 on the spring-forward night) is read with the offset before the change
  (so 03:30 summer time), a time they repeat is its first occurrence;
- quiet hours (`"22:00-07:00"`, may wrap midnight) hold every alert due inside them until
  their end, where they go out as one digest; a digest due inside quiet hours is moved to
  their end too;
- `max_per_hour` caps the immediate alerts of a rule on a channel over the last 60 minutes;
  an alert over the cap folds into the rule's next digest window, or, when the rule has no
  digest, into an hourly digest at the next full local hour (still after quiet hours).

An item's alert to one channel lists every rule of that channel it matched; it goes out at
once when one of those rules says so (and is under its cap), else with the earliest digest
of its rules. All alerts of one channel due at the same moment share one digest key and one
message, whatever rules brought them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.types import AlertTiming

CAP_WINDOW = timedelta(hours=1)  # `max_per_hour` counts immediate alerts in this window
_DAY = timedelta(days=1)


def local_at(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day` at wall-clock `at` in `tz`, as UTC (a skipped time: the offset before the gap)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_daily(at: time, tz: ZoneInfo, now: datetime) -> datetime:
    """The first moment strictly after `now` whose wall-clock time in `tz` is `at`."""
    day = now.astimezone(tz).date()
    for offset in range(-1, 3):
        candidate = local_at(day + timedelta(days=offset), at, tz)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: one of four days has the time after now")


def next_period_end(period: timedelta, tz: ZoneInfo, now: datetime) -> datetime:
    """The end of the `period` window holding `now`, windows counted from local midnight."""
    day = now.astimezone(tz).date()
    midnight = local_at(day, time(0), tz)
    if midnight > now:  # cannot happen with real zones, but stay total
        midnight = local_at(day - _DAY, time(0), tz)
    following = local_at(day + _DAY, time(0), tz)
    steps = (now - midnight) // period + 1
    return min(midnight + period * steps, following)


def in_quiet(quiet: tuple[time, time], tz: ZoneInfo, moment: datetime) -> bool:
    start, end = quiet
    local = moment.astimezone(tz).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def after_quiet(quiet: tuple[time, time] | None, tz: ZoneInfo, moment: datetime) -> datetime:
    """`moment`, or the end of the quiet hours it falls in."""
    if quiet is None or not in_quiet(quiet, tz, moment):
        return moment
    return next_daily(quiet[1], tz, moment)


def hold_until(timing: AlertTiming, tz: ZoneInfo, now: datetime) -> datetime | None:
    """None: the alert goes out at once; else the moment its digest is sent."""
    if isinstance(timing.digest, timedelta):
        return after_quiet(timing.quiet_hours, tz, next_period_end(timing.digest, tz, now))
    if isinstance(timing.digest, time):
        return after_quiet(timing.quiet_hours, tz, next_daily(timing.digest, tz, now))
    held = after_quiet(timing.quiet_hours, tz, now)
    return None if held == now else held


def fold_until(timing: AlertTiming, tz: ZoneInfo, now: datetime) -> datetime:
    """Where an alert over `max_per_hour` goes: the rule's next digest, else the next full
    local hour (an hourly digest), after quiet hours."""
    held = hold_until(timing, tz, now)
    if held is not None:
        return held
    return after_quiet(timing.quiet_hours, tz, next_period_end(CAP_WINDOW, tz, now))


def digest_key(channel: str, due: datetime) -> str:
    """The key shared by the outbox rows of one channel's digest due at `due`."""
    return f"{channel[:200]}@{due.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def digest_alert_id(key: str) -> str:
    """A stable id for one digest message (the same on every retry)."""
    return "nmd-" + hashlib.sha256(key.encode()).hexdigest()[:20]
