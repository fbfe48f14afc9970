"""What one poll means, decided without I/O: a plan the store writes in one transaction.

    plan_poll(feed, state, fetched, matched, snapshot, now, ...) -> PollPlan
        .update   the feed row after this poll: Fetched (200/304), Failed or Gone
        .items    each new item with its matches, which of them want to alert (fresh enough,
                  routed to a channel, not catching up) and the alerts per channel

Only one fact needs the database: whether this item is the first to alert a rule for its
article (the same link reaching the rule through several feeds alerts once) and for its story
(a near-copy from another feed, `alerts.story`). The store claims
each wanting rule inside the transaction and `ItemPlan.settle(won)` gives, purely, what is
stored and queued after the claims. Everything here takes `now` as an argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from monitor.alerts.digest import fold_until, hold_until
from monitor.alerts.story import Story, story_of
from monitor.feeds.schedule import after_failure, after_success, effective_interval
from monitor.feeds.urls import mask_feed_url
from monitor.snapshot import Snapshot
from monitor.types import (
    AlertContent,
    AlertTiming,
    FeedConfig,
    FeedHealth,
    FeedState,
    FetchResult,
    FetchStatus,
    HealthAlert,
    Item,
    Match,
    ParsedFeed,
    Settings,
)

# Feed dates are not trusted: a date further in the future than this counts as missing.
CLOCK_SKEW = timedelta(minutes=10)


# --- the feed row after a poll -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """What a 200 response's document says about the feed."""

    title: str | None
    problem: str | None  # not well-formed, read as far as possible


@dataclass(frozen=True, slots=True)
class Hints:
    """What the last 200 said about how often the feed changes (kept for 304 passes)."""

    cache_max_age: timedelta | None = None  # Cache-Control max-age
    ttl: timedelta | None = None  # RSS <ttl>
    update_interval: timedelta | None = None  # sy:updatePeriod / sy:updateFrequency


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful fetch (200 or 304): the feed is healthy."""

    at: datetime
    next_poll_at: datetime
    etag: str | None
    last_modified: str | None
    moved_to: str | None  # every redirect hop was permanent: fetch this URL from now on
    document: Document | None  # None for a 304 or the same body: stored title, problem stay
    body_hash: str | None = None  # a 200 parsed: its body's hash; None keeps, "" clears it
    hints: Hints | None = None  # a 200: its hints; None (304) keeps the stored ones
    last_new_item_at: datetime | None = None  # when the feed last brought a new item


@dataclass(frozen=True, slots=True)
class Failed:
    at: datetime
    error: str
    consecutive_failures: int
    next_poll_at: datetime
    retry_until: datetime | None  # the server's Retry-After
    failing_since: datetime | None = None  # the first failure of this run of failures


@dataclass(frozen=True, slots=True)
class Gone:
    """410: the feed is disabled for good (until its URL changes in config.toml)."""

    at: datetime
    error: str | None


FeedUpdate = Fetched | Failed | Gone


# --- items, matches, alerts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchPlan:
    match: Match
    wants_alert: bool  # fresh, routed to a channel, not catching up: claim the article


@dataclass(frozen=True, slots=True)
class RuleTiming:
    """When one rule wants its alert on one channel (`alerts.digest`), decided at plan time."""

    rule: str
    due: datetime | None  # None: at once; else its digest's time (digest or quiet hours)
    cap: int | None  # max_per_hour
    fold: datetime  # over the cap: this digest


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """One outbox row: the content of one channel's notification for one item."""

    channel: str
    content: AlertContent
    timing: tuple[RuleTiming, ...] = ()  # one per rule of `content.matches`; () = at once

    def due(self, recent: Mapping[str, int]) -> datetime | None:
        """None: send at once; else when its digest goes out. `recent`: the immediate
        alerts of each capped rule on this channel in the last hour (the store counts them).
        At once when one of its rules is immediate and under its cap; else the earliest of
        the rules' digests (over the cap: the rule's fold digest)."""
        if not self.timing:
            return None
        times = []
        for t in self.timing:
            if t.due is None:
                if t.cap is None or recent.get(t.rule, 0) < t.cap:
                    return None
                times.append(t.fold)
            else:
                times.append(t.due)
        return min(times)


@dataclass(frozen=True, slots=True)
class ItemPlan:
    item: Item
    link_key: str  # the article, across feeds
    matches: tuple[MatchPlan, ...]
    alerts: tuple[QueuedAlert, ...]  # as if every wanting rule wins its claim
    story: Story | None = None  # its near-duplicate fingerprint (None: too short to compare)

    def settle(self, won: Collection[str]) -> tuple[list[tuple[Match, bool]], list[QueuedAlert]]:
        """After the claims (`won`: the rules this item was first to alert for its article):
        every match with whether it alerts, and the alerts to queue."""
        stored = [(p.match, p.wants_alert and p.match.rule in won) for p in self.matches]
        queued = []
        for alert in self.alerts:
            mine = tuple(m for m in alert.content.matches if m.rule in won)
            if mine:
                timing = tuple(t for t in alert.timing if t.rule in won)
                content = replace(alert.content, matches=mine)
                queued.append(replace(alert, content=content, timing=timing))
        return stored, queued


@dataclass(frozen=True, slots=True)
class QueuedHealth:
    """One outbox row of a feed-health alert (no item)."""

    channel: str
    content: HealthAlert


@dataclass(frozen=True, slots=True)
class HealthChange:
    """The feed entered another health state: written with the poll, alerted once."""

    state: FeedHealth
    at: datetime
    alerts: tuple[QueuedHealth, ...]  # one per ops channel


@dataclass(frozen=True, slots=True)
class PollPlan:
    feed: str
    update: FeedUpdate
    items: tuple[ItemPlan, ...] = ()  # the items not stored before, matched or not
    quiet: bool = False  # catching up: store and match, alert nothing
    health: HealthChange | None = None  # None: the feed stays in its health state


# --- pure helpers --------------------------------------------------------------------------


def effective_date(published: datetime | None, first_seen: datetime) -> datetime:
    """The date `max_age` is measured from: the feed's date, unless missing or in the future."""
    if published is None or published > first_seen + CLOCK_SKEW:
        return first_seen
    return published


def alert_id(feed: str, item_key: str, channel: str) -> str:
    """A stable id for one notification, the same on every retry (receivers can dedupe)."""
    digest = hashlib.sha256(f"{feed}\0{item_key}\0{channel}".encode()).hexdigest()
    return f"nm-{digest[:20]}"


def item_ref(feed: str, item_key: str) -> str:
    """A stable id for one item, the same in every channel's alert (to correlate them)."""
    digest = hashlib.sha256(f"{feed}\0{item_key}".encode()).hexdigest()
    return f"nmi-{digest[:20]}"


def link_key(feed: str, item: Item) -> str:
    """What makes two items 'the same article' across feeds: the canonical link."""
    return item.canonical_link or f"feed:{feed}:{item.key}"


@cache
def zone(name: str) -> ZoneInfo:
    """The configured time zone (validated by `monitor check`)."""
    return ZoneInfo(name)


def rule_timing(rule: str, timing: AlertTiming | None, tz: ZoneInfo, now: datetime) -> RuleTiming:
    """When `rule` wants an alert found `now` (see `alerts.digest`)."""
    timing = timing or AlertTiming()
    return RuleTiming(
        rule=rule,
        due=hold_until(timing, tz, now),
        cap=timing.max_per_hour,
        fold=fold_until(timing, tz, now),
    )


def catching_up(feed: FeedConfig, state: FeedState, forced: bool) -> bool:
    """Whether this poll stores and matches without alerting: when the user asked
    (`monitor poll --catch-up`), or on the feed's first successful poll when config.toml
    says `catch_up = true`, so that adding a feed does not flood the channels."""
    first = state.last_success_at is None and state.items_seen == 0
    return forced or (feed.catch_up and first)


# --- the decisions -------------------------------------------------------------------------


def decide_item(
    feed: str,
    item: Item,
    matches: Sequence[Match],
    snapshot: Snapshot,
    now: datetime,
    *,
    quiet: bool = False,
) -> ItemPlan:
    """Which of an item's matches want to alert, and the notification per channel.

    A match alerts when the item is recent enough (`max_age`, from its date or, when that is
    missing or in the future, from now), its rule is routed to a channel (`channels = []`
    stores only), and the poll is not catching up. One notification per channel lists every
    rule of that channel the item matched, in rule order.
    """
    max_age = snapshot.config.settings.max_age
    fresh = effective_date(item.published, now) >= now - max_age
    plans = tuple(
        MatchPlan(m, wants_alert=not quiet and fresh and bool(snapshot.routing.get(m.rule)))
        for m in matches
    )
    alerts = []
    tz = zone(snapshot.config.settings.timezone)
    timings = snapshot.timings
    for channel in snapshot.channels:
        mine = tuple(
            p.match
            for p in plans
            if p.wants_alert and channel in snapshot.routing.get(p.match.rule, ())
        )
        if mine:
            content = AlertContent(
                title=item.title,
                link=item.link,
                feed=feed,
                published=item.published,
                matches=mine,
                alert_id=alert_id(feed, item.key, channel),
                item_id=item_ref(feed, item.key),
            )
            timing = tuple(rule_timing(m.rule, timings.get(m.rule), tz, now) for m in mine)
            alerts.append(QueuedAlert(channel, content, timing))
    settings = snapshot.config.settings
    # a story matters only for what may alert (its fingerprint costs ~1 ms): an item whose
    # matches cannot alert has nothing to fold
    story = (
        story_of(
            item.title,
            item.text,
            settings.story_similarity,
            settings.story_window,
            sig=item.story_sig,
        )
        if any(p.wants_alert for p in plans)
        else None
    )
    return ItemPlan(item, link_key(feed, item), plans, tuple(alerts), story)


def plan_poll(
    feed: FeedConfig,
    state: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    matched: Sequence[tuple[Item, Sequence[Match]]],
    error: str | None,
    snapshot: Snapshot,
    now: datetime,
    *,
    quiet: bool = False,
    fraction: float = 0.0,
    body_hash: str | None = None,
) -> PollPlan:
    """The whole outcome of one poll. `parsed` is None when the fetch or the parse failed
    (`error` says why), and for a 200 whose body hashes as the last one parsed (`body_hash`
    equal to the stored one: not parsed again, like a 304); `matched` holds the items not
    stored before, with their matches; `fraction` in [0, 1] is the random draw for the next
    poll's jitter.

    The next poll comes after the feed's interval, lengthened (never shortened, at most to
    24 h) by the hints: Cache-Control max-age and the document's `<ttl>` / `sy:update*`; a
    304 or an unchanged body keeps the hints of the last 200 it does not repeat."""
    update = _feed_update(feed, state, result, parsed, matched, error, now, fraction, body_hash)
    items: tuple[ItemPlan, ...] = ()
    if isinstance(update, Fetched) and parsed is not None:
        items = tuple(
            decide_item(feed.name, item, matches, snapshot, now, quiet=quiet)
            for item, matches in matched
        )
    health = decide_health(feed, state, update, snapshot, now)
    return PollPlan(feed.name, update, items, quiet, health)


def _feed_update(
    feed: FeedConfig,
    state: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    matched: Sequence[tuple[Item, Sequence[Match]]],
    error: str | None,
    now: datetime,
    fraction: float,
    body_hash: str | None,
) -> FeedUpdate:
    if result.status is FetchStatus.GONE:
        return Gone(now, error)
    same_body = (
        result.status is FetchStatus.OK
        and parsed is None
        and error is None
        and body_hash is not None
        and body_hash == state.body_hash
    )
    if result.status is FetchStatus.NOT_MODIFIED or parsed is not None or same_body:
        hints: Hints | None = None
        if parsed is not None:
            hints = Hints(result.max_age, parsed.ttl, parsed.update_interval)
        elif same_body:  # the document's hints are the stored ones; the header is new
            hints = Hints(result.max_age, state.feed_ttl, state.feed_update_interval)
        # a 304's own Cache-Control counts, else the last 200's
        known = hints or Hints(
            result.max_age or state.cache_max_age, state.feed_ttl, state.feed_update_interval
        )
        interval = effective_interval(
            feed.interval, known.cache_max_age, known.ttl, known.update_interval
        )
        document = None if parsed is None else Document(parsed.title or None, parsed.problem)
        stored_hash: str | None = None  # None keeps the stored hash
        if parsed is not None:
            # an empty or broken document is parsed every time, so `monitor poll` keeps
            # saying "empty" or showing the problem; "" clears the stored hash
            whole = bool(parsed.items) and parsed.problem is None
            stored_hash = (body_hash or "") if whole else ""
        return Fetched(
            at=now,
            next_poll_at=after_success(now, interval, fraction),
            etag=result.etag,
            last_modified=result.last_modified,
            moved_to=result.permanent_url,
            document=document,
            body_hash=stored_hash,
            hints=hints,
            # a feed that never brought an item is watched from its first successful poll
            last_new_item_at=now
            if parsed is not None and matched
            else state.last_new_item_at or now,
        )
    failures = state.consecutive_failures + 1
    retry = result.retry_after
    return Failed(
        at=now,
        error=error or "unknown error",
        consecutive_failures=failures,
        next_poll_at=after_failure(now, feed.interval, failures, retry, fraction),
        retry_until=now + retry if retry else None,
        failing_since=state.failing_since or now,
    )


# --- feed health ---------------------------------------------------------------------------


def health_after(
    state: FeedState, update: FeedUpdate, settings: Settings, now: datetime
) -> FeedHealth:
    """The feed's health after this poll (pure).

    - dead: failing for `dead_after` or longer (measured from the first failure of the run),
      or answered 410 (never polled again, so it would otherwise never count as dead);
    - stale: fetched, but no new item for `stale_after` or longer (when set); a feed that
      never brought an item counts from its first successful poll;
    - ok: fetched and not stale. A failing feed not dead yet keeps the state it had.
    """
    if isinstance(update, Gone):
        return FeedHealth.DEAD
    if isinstance(update, Failed):
        since = update.failing_since or now
        return FeedHealth.DEAD if now - since >= settings.dead_after else state.health
    last_new = update.last_new_item_at or now
    stale = settings.stale_after is not None and now - last_new >= settings.stale_after
    return FeedHealth.STALE if stale else FeedHealth.OK


def decide_health(
    feed: FeedConfig, state: FeedState, update: FeedUpdate, snapshot: Snapshot, now: datetime
) -> HealthChange | None:
    """The health change this poll makes, with its alert to every `ops_channels` channel, or
    None when the feed stays in its state: one alert per feed per state change, never more
    (the state is written in the same transaction as the poll that decides it)."""
    settings = snapshot.config.settings
    target = health_after(state, update, settings, now)
    if target is state.health:
        return None
    since: datetime | None = None
    error: str | None = None
    if target is FeedHealth.DEAD:
        since = update.failing_since if isinstance(update, Failed) else state.failing_since
        since = since or now
        error = update.error if isinstance(update, Failed | Gone) else None
    elif target is FeedHealth.STALE and isinstance(update, Fetched):
        since = update.last_new_item_at
    alerts = tuple(
        QueuedHealth(
            channel,
            HealthAlert(
                feed=feed.name,
                url=mask_feed_url(state.url),
                state=target,
                previous=state.health,
                at=now,
                since=since,
                error=error,
                alert_id=health_alert_id(feed.name, target, now),
            ),
        )
        for channel in settings.ops_channels
        if channel in snapshot.channels
    )
    return HealthChange(target, now, alerts)


def health_alert_id(feed: str, state: FeedHealth, at: datetime) -> str:
    """A stable id for one health alert (the same on every retry)."""
    digest = hashlib.sha256(f"{feed}\0{state}\0{at.isoformat()}".encode()).hexdigest()
    return f"nmh-{digest[:20]}"
