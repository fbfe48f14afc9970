"""When to try a failed delivery again: pure backoff math, `now` always passed in.

After the n-th failed attempt of an outbox row (per channel) the next try is due
`retry_delay(n)` later: 30 s, 1 min, 2 min, 4 min, ... doubling, capped at 1 h (reached after
the 8th failure). The cap keeps a channel that was down for a day from waiting another day
once it is back. Giving up is a separate, explicit decision (`gives_up`): an alert still failing
`give_up_after` (default 3 days) after it was queued is *failed*: kept, listed by `monitor
alerts --failed`, and sent again only when requeued (`monitor alerts retry`).

Optional jitter spreads the retries of many rows that failed together (a channel outage) so
they do not all hit the channel in the same second when it returns: with `jitter=j` the
delay is drawn from `[d * (1 - j), d]`, never above the cap. Pass `sample` (0 <= sample < 1)
for a deterministic result; otherwise `random.random()` is used.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from monitor.backoff import doubling
from monitor.types import AlertContent, FeedHealth, HealthAlert, Match, Message

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)


def retry_delay(attempts: int, *, jitter: float = 0.0, sample: float | None = None) -> timedelta:
    """The wait after `attempts` failed attempts (0 or less: none, the row is due now)."""
    if attempts <= 0:
        return timedelta(0)
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be between 0 and 1")
    delay = doubling(BASE_DELAY, attempts, MAX_DELAY)
    if jitter:
        u = random.random() if sample is None else min(max(sample, 0.0), 1.0)
        delay = delay * (1.0 - jitter * u)
    return delay


def next_attempt(
    now: datetime, attempts: int, *, jitter: float = 0.0, sample: float | None = None
) -> datetime:
    """When a row that has failed `attempts` times is due again."""
    return now + retry_delay(attempts, jitter=jitter, sample=sample)


def gives_up(now: datetime, since: datetime | None, give_up_after: timedelta) -> bool:
    """Whether an alert queued (or requeued) at `since` that just failed is failed for good."""
    return since is not None and now - since >= give_up_after


# --- what an outbox row holds ---------------------------------------------------------------
#
# The alert's content, not its text: rendered per channel when it is sent, so formats can differ
# by channel and change without touching queued rows. Version 1 is an AlertContent; version 0
# is a message rendered before the content was stored (rows migrated by revision 0003).

CONTENT_VERSION = 1


def content_to_json(content: AlertContent) -> str:
    """The outbox form of an alert's content (a JSON object, stable key order)."""
    return json.dumps(
        {
            "v": CONTENT_VERSION,
            "title": content.title,
            "link": content.link,
            "feed": content.feed,
            "published": content.published.isoformat() if content.published else None,
            "matches": [
                {"rule": m.rule, "terms": list(m.terms), "snippet": m.snippet}
                for m in content.matches
            ],
            "alert_id": content.alert_id,
            "item_id": content.item_id,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def health_to_json(content: HealthAlert) -> str:
    """The outbox form of a feed-health alert (`"kind": "health"`; item alerts have no kind)."""
    return json.dumps(
        {
            "v": CONTENT_VERSION,
            "kind": "health",
            "feed": content.feed,
            "url": content.url,
            "state": content.state.value,
            "previous": content.previous.value,
            "at": content.at.isoformat(),
            "since": content.since.isoformat() if content.since else None,
            "error": content.error,
            "alert_id": content.alert_id,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _health_from(data: dict[str, object]) -> HealthAlert:
    since = data.get("since")
    error = data.get("error")
    return HealthAlert(
        feed=str(data["feed"]),
        url=str(data["url"]),
        state=FeedHealth(str(data["state"])),
        previous=FeedHealth(str(data["previous"])),
        at=datetime.fromisoformat(str(data["at"])),
        since=datetime.fromisoformat(since) if isinstance(since, str) else None,
        error=error if isinstance(error, str) else None,
        alert_id=str(data["alert_id"]),
    )


def content_from_json(text: str) -> AlertContent | HealthAlert | Message:
    """An outbox row's content; a Message for rows rendered before contents were stored, a
    HealthAlert for feed-health alerts."""
    data = json.loads(text)
    if data.get("v") == 0:
        return Message(title=data["title"], body=data["body"])
    if data.get("kind") == "health":
        return _health_from(data)
    published = data["published"]
    return AlertContent(
        title=data["title"],
        link=data["link"],
        feed=data["feed"],
        published=datetime.fromisoformat(published) if published else None,
        matches=tuple(
            Match(rule=m["rule"], terms=tuple(m["terms"]), snippet=m["snippet"])
            for m in data["matches"]
        ),
        alert_id=data["alert_id"],
        item_id=data.get("item_id", ""),
    )
