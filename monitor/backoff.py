"""The one backoff function: a delay that doubles with each failure, up to a cap.

Used for a failing feed (feeds.schedule: first delay its interval, cap 24 h) and a failing
delivery (alerts.outbox: first 30 s, cap 1 h). Pure; loops by doubling, so no overflow for any
number of failures.
"""

from __future__ import annotations

from datetime import timedelta


def doubling(first: timedelta, failures: int, cap: timedelta) -> timedelta:
    """`first` after 1 failure, doubled for each one more, never above `cap` (none: zero)."""
    if failures <= 0:
        return timedelta(0)
    delay = first
    for _ in range(failures - 1):
        if delay >= cap:
            break
        delay *= 2
    return min(delay, cap)
