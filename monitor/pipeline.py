"""The only place the stages are put in order.

One feed's poll, as data flowing:

    feed state (db) -> fetch (HTTP) -> parse (process) -> unseen items -> match -> decide alerts
    -> ONE transaction: items, matches, outbox rows, feed state and HTTP validators

and, separately, delivery: due outbox rows -> channel (Apprise, thread) -> mark delivered or
retry later. Delivery never runs inside a poll's transaction, so a slow channel never holds up
polling, and a crash between the two loses nothing: the outbox row is already committed.

Pure decisions (which items alert, when a feed is next due) are plain functions here or in the
stage modules; the `Monitor` methods only move data between them and the edges.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.alerts.deliver import send
from monitor.alerts.outbox import next_attempt
from monitor.alerts.render import render
from monitor.clock import Clock, utcnow
from monitor.errors import FeedError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import next_poll
from monitor.store.repo import FeedState, PendingAlert, Store, Tx
from monitor.types import (
    AlertContent,
    Config,
    FeedConfig,
    FetchRequest,
    FetchResult,
    FetchStatus,
    Item,
    Match,
    ParsedFeed,
)
from monitor.workers import WorkerPool

log = logging.getLogger("monitor.pipeline")

# Feed dates are not trusted: a date further in the future than this counts as missing.
CLOCK_SKEW = timedelta(minutes=10)
# How long a sender holds a claimed outbox row before another sender may retry it.
DELIVERY_LEASE = timedelta(minutes=5)
# A feed whose parsing (or matching) takes longer is abandoned: its worker process is killed.
WORKER_DEADLINE = timedelta(seconds=60)


# --- pure decisions ------------------------------------------------------------------------


def effective_date(published: datetime | None, first_seen: datetime) -> datetime:
    """The date `max_age` is measured from: the feed's date, unless missing or in the future."""
    if published is None or published > first_seen + CLOCK_SKEW:
        return first_seen
    return published


def alert_id(feed: str, item_key: str, channel: str) -> str:
    """A stable id for one notification, the same on every retry (receivers can dedupe)."""
    digest = hashlib.sha256(f"{feed}\0{item_key}\0{channel}".encode()).hexdigest()
    return f"nm-{digest[:20]}"


def link_key(feed: str, item: Item) -> str:
    """What makes two items 'the same article' across feeds: the canonical link."""
    return item.canonical_link or f"feed:{feed}:{item.key}"


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one feed's poll did; `error` set when the fetch or parse failed."""

    feed: str
    status: str  # "new", "unchanged", "error", "gone", "disabled"
    items: int = 0  # items in the document
    new_items: int = 0
    matches: int = 0
    alerts: int = 0  # outbox rows written
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    errors: tuple[str, ...] = field(default_factory=tuple)


# --- the monitor ---------------------------------------------------------------------------


class Monitor:
    """One configured monitor: its store, matcher and channels, wired once."""

    def __init__(self, config: Config, store: Store, clock: Clock = utcnow) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.rules = {r.name: r for r in config.rules}
        self._write_lock = asyncio.Lock()
        self.workers = WorkerPool(deadline=WORKER_DEADLINE.total_seconds())
        store.sync_feeds(config.feeds)

    def close(self) -> None:
        self.workers.close()

    def reconfigure(self, config: Config) -> None:
        """Swap in a new, already validated config (SIGHUP)."""
        self.store.sync_feeds(config.feeds)
        self.config = config
        self.rules = {r.name: r for r in config.rules}

    def fetcher(self) -> Fetcher:
        s = self.config.settings
        return Fetcher(
            timeout=s.timeout.total_seconds(),
            max_bytes=s.max_bytes,
            concurrency=s.concurrency,
            user_agent=s.user_agent,
        )

    # --- polling -------------------------------------------------------------------------

    async def poll_all(self, fetcher: Fetcher) -> list[FeedOutcome]:
        """Fetch every enabled feed once, concurrently; one feed's failure never stops another."""
        feeds = [f for f in self.config.feeds if f.enabled]
        return list(await asyncio.gather(*(self.poll_feed(f, fetcher) for f in feeds)))

    async def poll_feed(self, feed: FeedConfig, fetcher: Fetcher) -> FeedOutcome:
        state = await asyncio.to_thread(self.store.feed_state, feed.name)
        if state.gone:
            return FeedOutcome(feed.name, "disabled", error="410 Gone: feed disabled")
        request = FetchRequest(feed.name, state.url, state.etag, state.last_modified)
        result = await fetcher.fetch(request)
        parsed: ParsedFeed | None = None
        unseen: list[tuple[Item, list[Match]]] = []
        error = result.error
        if result.status is FetchStatus.OK:
            try:
                parsed = await self.workers.parse(result.body, result.headers, result.url)
                seen = await asyncio.to_thread(
                    self.store.seen_keys, feed.name, [i.key for i in parsed.items]
                )
                fresh = [item for item in parsed.items if item.key not in seen]
                unseen = await self.workers.match(self.config.rules, fresh)
            except FeedError as exc:
                error = str(exc)
                parsed = None
        async with self._write_lock:  # one writer at a time: SQLite has a single write lock
            return await asyncio.to_thread(self._record, feed, state, result, parsed, unseen, error)

    def _record(
        self,
        feed: FeedConfig,
        state: FeedState,
        result: FetchResult,
        parsed: ParsedFeed | None,
        unseen: list[tuple[Item, list[Match]]],
        error: str | None,
    ) -> FeedOutcome:
        now = self.clock()
        if result.status is FetchStatus.GONE:
            with self.store.transaction() as tx:
                tx.update_feed(feed.name, gone=True, last_error=error, last_error_at=now)
            log.warning("feed %s answered 410 Gone and is disabled", feed.name)
            return FeedOutcome(feed.name, "gone", error=error)
        if result.status is FetchStatus.NOT_MODIFIED:
            with self.store.transaction() as tx:
                tx.update_feed(
                    feed.name,
                    last_success_at=now,
                    consecutive_failures=0,
                    last_error=None,
                    next_poll_at=next_poll(now, feed.interval, 0, None),
                )
            return FeedOutcome(feed.name, "unchanged")
        if parsed is None:
            failures = state.consecutive_failures + 1
            with self.store.transaction() as tx:
                tx.update_feed(
                    feed.name,
                    consecutive_failures=failures,
                    last_error=error,
                    last_error_at=now,
                    next_poll_at=next_poll(now, feed.interval, failures, result.retry_after),
                )
            log.warning("feed %s failed (%d in a row): %s", feed.name, failures, error)
            return FeedOutcome(feed.name, "error", error=error)
        return self._record_items(feed, result, parsed, unseen, now)

    def _record_items(
        self,
        feed: FeedConfig,
        result: FetchResult,
        parsed: ParsedFeed,
        unseen: list[tuple[Item, list[Match]]],
        now: datetime,
    ) -> FeedOutcome:
        n_matches = n_alerts = 0
        with self.store.transaction() as tx:
            feed_id = tx.feed_id(feed.name)
            # insert-or-ignore: an item another poller stored meanwhile gets no id here
            ids = tx.insert_items(feed_id, [item for item, _ in unseen], now)
            for item, matches in unseen:
                item_id = ids.get(item.key)
                if item_id is None or not matches:
                    continue
                n_matches += len(matches)
                n_alerts += self._record_matches(tx, feed, item, item_id, matches, now)
            new_items = len(ids)
            tx.add_items_seen(feed.name, new_items)
            if result.permanent_url:  # every hop was 301/308 and the result parsed
                tx.update_feed(feed.name, url=result.permanent_url)
            tx.update_feed(
                feed.name,
                title=parsed.title or None,
                etag=result.etag,
                last_modified=result.last_modified,
                last_success_at=now,
                consecutive_failures=0,
                last_error=parsed.problem,
                last_error_at=now if parsed.problem else None,
                next_poll_at=next_poll(now, feed.interval, 0, None),
            )
        if parsed.problem:
            log.warning("feed %s is not well-formed: %s", feed.name, parsed.problem)
        return FeedOutcome(
            feed.name,
            "new" if new_items else "unchanged",
            items=len(parsed.items),
            new_items=new_items,
            matches=n_matches,
            alerts=n_alerts,
            error=parsed.problem,
        )

    def _record_matches(
        self,
        tx: Tx,
        feed: FeedConfig,
        item: Item,
        item_id: int,
        matches: Sequence[Match],
        now: datetime,
    ) -> int:
        """Store every match; queue one alert per channel for the rules that should alert."""
        fresh = effective_date(item.published, now) >= now - self.config.settings.max_age
        alerting: list[Match] = []
        for match in matches:
            rule = self.rules[match.rule]
            alerts = (
                fresh
                and bool(self.config.rule_channels(rule))
                and tx.claim_link(match.rule, link_key(feed.name, item), item_id)
            )
            tx.insert_match(item_id, match, now, alerted=alerts)
            if alerts:
                alerting.append(match)
        queued = 0
        for channel in self.config.channels:
            mine = tuple(
                m for m in alerting if channel.name in self.config.rule_channels(self.rules[m.rule])
            )
            if not mine:
                continue
            aid = alert_id(feed.name, item.key, channel.name)
            content = AlertContent(
                title=item.title,
                link=item.link,
                feed=feed.name,
                published=item.published,
                matches=mine,
                alert_id=aid,
            )
            tx.enqueue(item_id, channel.name, aid, render(content), now)
            queued += 1
        return queued

    # --- delivery ------------------------------------------------------------------------

    async def deliver(self, all_pending: bool = False) -> DeliveryReport:
        """Try every due alert once; failures stay pending with a later retry time.

        `all_pending` also retries alerts still waiting out their backoff (`monitor poll`).

        Channels are served concurrently, each in its own order, so one that is slow or down
        never delays another's alerts.
        """
        due = await asyncio.to_thread(
            self.store.claim_due_alerts, self.clock(), DELIVERY_LEASE, all_pending=all_pending
        )
        by_channel: dict[str, list[PendingAlert]] = {}
        for alert in due:
            by_channel.setdefault(alert.channel, []).append(alert)
        reports = await asyncio.gather(
            *(self._deliver_channel(name, alerts) for name, alerts in by_channel.items())
        )
        errors: list[str] = []
        for report in reports:
            errors.extend(e for e in report.errors if e not in errors)
        return DeliveryReport(
            sent=sum(r.sent for r in reports),
            failed=sum(r.failed for r in reports),
            errors=tuple(errors),
        )

    async def _deliver_channel(self, name: str, alerts: list[PendingAlert]) -> DeliveryReport:
        channel = self.config.channel(name)
        sent = failed = 0
        errors: list[str] = []
        for alert in alerts:
            if channel is None:
                ok, error = False, "the channel is no longer in config.toml"
            else:
                outcome = await asyncio.to_thread(send, channel, alert.message)
                ok, error = outcome.ok, outcome.error or "not accepted"
            if ok:
                sent += 1
                await asyncio.to_thread(self.store.mark_delivered, alert.id, self.clock())
                continue
            failed += 1
            retry_at = next_attempt(self.clock(), alert.attempts + 1)
            await asyncio.to_thread(self.store.mark_failed, alert.id, error, retry_at)
            if f"channel {name}: {error}" not in errors:
                errors.append(f"channel {name}: {error}")
            log.warning("alert %s to channel %s not delivered: %s", alert.alert_id, name, error)
        return DeliveryReport(sent=sent, failed=failed, errors=tuple(errors))
