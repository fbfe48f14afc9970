"""The only place the stages are put in order.

One feed's poll, as data flowing:

    feed state (db) -> fetch (HTTP) -> parse (worker process) -> unseen items -> match
    (worker process) -> decide alerts -> ONE transaction: items, matches, outbox rows, feed
    state and HTTP validators

and, separately, delivery per channel: the channel's due outbox rows, one at a time, leased ->
send (Apprise, thread) -> mark delivered, or record the error and a retry time. Delivery never
runs inside a poll's transaction, so a slow channel never holds up polling, and a crash between
the two loses nothing: the outbox row is already committed.

Pure decisions (which items alert, when a feed is next due) are plain functions here or in the
stage modules; the `Monitor` methods only move data between them and the edges. Each poll reads
`self.config` once, so a reload (SIGHUP) never mixes two configs within one poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.alerts.deliver import send
from monitor.alerts.outbox import next_attempt
from monitor.alerts.render import render
from monitor.clock import Clock, utcnow
from monitor.errors import FeedError, StorageError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import jitter, next_poll
from monitor.store.repo import FeedState, Store, Tx
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
# How long a sender holds the outbox row it is sending before another sender may retry it.
DELIVERY_LEASE = timedelta(minutes=5)
# A feed whose parsing (or matching) takes longer is abandoned: its worker process is killed.
WORKER_DEADLINE = timedelta(seconds=60)

Matched = list[tuple[Item, list[Match]]]


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


def item_ref(feed: str, item_key: str) -> str:
    """A stable id for one item, the same in every channel's alert (to correlate them)."""
    digest = hashlib.sha256(f"{feed}\0{item_key}".encode()).hexdigest()
    return f"nmi-{digest[:20]}"


def link_key(feed: str, item: Item) -> str:
    """What makes two items 'the same article' across feeds: the canonical link."""
    return item.canonical_link or f"feed:{feed}:{item.key}"


def catching_up(feed: FeedConfig, state: FeedState, forced: bool) -> bool:
    """Store and match this poll's items without alerting (marked seen, nothing queued): when
    asked (`monitor poll --catch-up`), or on the feed's first successful poll when config.toml
    says `catch_up = true`, so that adding a feed does not flood the channels."""
    first = state.last_success_at is None and state.items_seen == 0
    return forced or (feed.catch_up and first)


def waiting_for_server(state: FeedState, now: datetime) -> bool:
    """The server asked us (429/503 Retry-After) not to come back before `retry_until`."""
    return state.retry_until is not None and state.retry_until > now


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one feed's poll did; `error` set when the fetch or parse failed."""

    feed: str
    # "new", "caught up" (new items stored, nothing alerted), "unchanged", "empty" (a document
    # without items), "error", "gone", "disabled", "waiting"
    status: str
    items: int = 0  # items in the document
    new_items: int = 0
    matches: int = 0
    alerts: int = 0  # outbox rows written
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a delivery pass did: `sent` and `failed` count attempts; `untried` counts alerts
    left pending without an attempt because their channel kept failing."""

    sent: int = 0
    failed: int = 0
    errors: tuple[str, ...] = field(default_factory=tuple)
    untried: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        errors = self.errors + tuple(e for e in other.errors if e not in self.errors)
        return DeliveryReport(
            self.sent + other.sent,
            self.failed + other.failed,
            errors,
            self.untried + other.untried,
        )


# `monitor poll` tries every pending alert, but gives up on a channel that refused this many
# in a row (it is down: the rest are reported as not tried and stay pending).
POLL_FAILURES_PER_CHANNEL = 3


# --- the monitor ---------------------------------------------------------------------------


class Monitor:
    """One configured monitor: its config, store and worker processes, wired once."""

    def __init__(self, config: Config, store: Store, clock: Clock = utcnow) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self._write_lock = asyncio.Lock()
        self.rng = random.Random()
        self.workers = WorkerPool(deadline=WORKER_DEADLINE.total_seconds())
        store.sync_feeds(config.feeds)

    def close(self) -> None:
        self.workers.close()

    def reconfigure(self, config: Config) -> None:
        """Swap in a new, already validated config (SIGHUP); running polls keep the old one."""
        self.store.sync_feeds(config.feeds)
        self.config = config

    def fetcher(self) -> Fetcher:
        s = self.config.settings
        return Fetcher(
            timeout=s.timeout.total_seconds(),
            max_bytes=s.max_bytes,
            concurrency=s.concurrency,
            user_agent=s.user_agent,
            per_host=s.per_host,
        )

    # --- polling -------------------------------------------------------------------------

    async def poll_all(self, fetcher: Fetcher, *, catch_up: bool = False) -> list[FeedOutcome]:
        """Fetch every enabled feed once, concurrently; one feed's failure never stops another."""
        feeds = [f for f in self.config.feeds if f.enabled]
        polls = (self.poll_feed(f, fetcher, catch_up=catch_up) for f in feeds)
        return list(await asyncio.gather(*polls))

    async def poll_feed(
        self, feed: FeedConfig, fetcher: Fetcher, *, catch_up: bool = False
    ) -> FeedOutcome:
        """Poll one feed. Never raises for the feed's sake: a bug is logged and reported.
        `catch_up`: store and match, alert nothing (see `catching_up`)."""
        try:
            return await self._poll(feed, fetcher, self.config, catch_up)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("internal error while polling feed %s", feed.name)
            return FeedOutcome(feed.name, "error", error=f"internal error: {exc!r}"[:300])

    async def _poll(
        self, feed: FeedConfig, fetcher: Fetcher, config: Config, catch_up: bool = False
    ) -> FeedOutcome:
        state = await asyncio.to_thread(self.store.feed_state, feed.name)
        quiet = catching_up(feed, state, catch_up)
        if state.gone:
            return FeedOutcome(feed.name, "disabled", error="410 Gone: feed disabled")
        if waiting_for_server(state, self.clock()):
            until = f"{state.retry_until:%Y-%m-%d %H:%M} UTC" if state.retry_until else ""
            return FeedOutcome(feed.name, "waiting", error=f"server asked to wait until {until}")
        request = FetchRequest(
            feed.name, state.url, state.etag, state.last_modified, per_host=feed.per_host
        )
        result = await fetcher.fetch(request)
        parsed: ParsedFeed | None = None
        unseen: Matched = []
        error = result.error
        if result.status is FetchStatus.OK:
            try:
                parsed = await self.workers.parse(result.body, result.headers, result.url)
                keys = [i.key for i in parsed.items]
                seen = await asyncio.to_thread(self.store.seen_keys, feed.name, keys)
                fresh = [item for item in parsed.items if item.key not in seen]
                unseen = await self.workers.match(config.rules, fresh)
            except FeedError as exc:
                error, parsed = str(exc), None
        async with self._write_lock:  # one writer at a time: SQLite has a single write lock
            return await asyncio.to_thread(
                self._record, config, feed, state, result, parsed, unseen, error, quiet
            )

    def _record(
        self,
        config: Config,
        feed: FeedConfig,
        state: FeedState,
        result: FetchResult,
        parsed: ParsedFeed | None,
        unseen: Matched,
        error: str | None,
        quiet: bool = False,
    ) -> FeedOutcome:
        now = self.clock()
        if result.status is FetchStatus.GONE:
            with self.store.transaction() as tx:
                tx.update_feed(feed.name, gone=True, last_error=error, last_error_at=now)
            log.warning("feed %s answered 410 Gone and is disabled", feed.name)
            return FeedOutcome(feed.name, "gone", error=error)
        if result.status is FetchStatus.NOT_MODIFIED:
            with self.store.transaction() as tx:
                tx.update_feed(feed.name, **self._success(feed, result, now))
            return FeedOutcome(feed.name, "unchanged")
        if parsed is None:
            failures = state.consecutive_failures + 1
            retry = result.retry_after
            with self.store.transaction() as tx:
                tx.update_feed(
                    feed.name,
                    consecutive_failures=failures,
                    last_error=error,
                    last_error_at=now,
                    # jitter: feeds of one host that failed together do not retry together
                    next_poll_at=now
                    + jitter(next_poll(now, feed.interval, failures, retry) - now, self.rng),
                    retry_until=now + retry if retry else None,
                )
            log.warning("feed %s failed (%d in a row): %s", feed.name, failures, error)
            return FeedOutcome(feed.name, "error", error=error)
        return self._record_items(config, feed, result, parsed, unseen, now, quiet)

    @staticmethod
    def _success(feed: FeedConfig, result: FetchResult, now: datetime) -> dict[str, object]:
        """The feed-row values after any successful fetch (200 or 304)."""
        values: dict[str, object] = {
            "last_success_at": now,
            "consecutive_failures": 0,
            "last_error": None,
            "retry_until": None,
            "next_poll_at": next_poll(now, feed.interval, 0, None),
            "etag": result.etag,
            "last_modified": result.last_modified,
        }
        if result.permanent_url:  # every hop was 301/308
            values["url"] = result.permanent_url
        return values

    def _record_items(
        self,
        config: Config,
        feed: FeedConfig,
        result: FetchResult,
        parsed: ParsedFeed,
        unseen: Matched,
        now: datetime,
        quiet: bool = False,
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
                n_alerts += self._record_matches(
                    tx, config, feed, item, item_id, matches, now, alert=not quiet
                )
            tx.add_items_seen(feed.name, len(ids))
            tx.update_feed(
                feed.name,
                **self._success(feed, result, now),
                title=parsed.title or None,
                # read as far as possible, but say so in `monitor feeds` until it changes
                problem=parsed.problem,
            )
        if parsed.problem:
            log.warning("feed %s is not well-formed: %s", feed.name, parsed.problem)
        status = "empty" if not parsed.items else "unchanged"
        if ids:
            status = "caught up" if quiet else "new"
        return FeedOutcome(
            feed.name,
            status,
            items=len(parsed.items),
            new_items=len(ids),
            matches=n_matches,
            alerts=n_alerts,
            error=parsed.problem,
        )

    @staticmethod
    def _record_matches(
        tx: Tx,
        config: Config,
        feed: FeedConfig,
        item: Item,
        item_id: int,
        matches: Sequence[Match],
        now: datetime,
        alert: bool = True,
    ) -> int:
        """Store every match; queue one alert per channel for the rules that should alert
        (none when not `alert`: catching up)."""
        rules = {r.name: r for r in config.rules}
        fresh = alert and effective_date(item.published, now) >= now - config.settings.max_age
        alerting: list[tuple[Match, tuple[str, ...]]] = []
        for match in matches:
            channels = config.rule_channels(rules[match.rule])
            alerts = (
                fresh
                and bool(channels)
                and tx.claim_link(match.rule, link_key(feed.name, item), item_id)
            )
            tx.insert_match(item_id, match, now, alerted=alerts)
            if alerts:
                alerting.append((match, channels))
        queued = 0
        for channel in config.channels:
            mine = tuple(m for m, channels in alerting if channel.name in channels)
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
                item_id=item_ref(feed.name, item.key),
            )
            tx.enqueue(item_id, channel.name, aid, render(content), now)
            queued += 1
        return queued

    # --- delivery ------------------------------------------------------------------------

    async def deliver(self, all_pending: bool = False) -> DeliveryReport:
        """One delivery pass over every channel, concurrently (a slow one delays only itself).

        `all_pending` also retries alerts still waiting out their backoff (`monitor poll`).
        """
        names = [c.name for c in self.config.channels]
        reports = await asyncio.gather(
            *(self.deliver_channel(name, all_pending=all_pending) for name in names)
        )
        total = DeliveryReport()
        for report in reports:
            total += report
        return total

    async def deliver_channel(
        self,
        name: str,
        *,
        all_pending: bool = False,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> DeliveryReport:
        """Send the channel's due alerts, oldest first, one at a time, until none is left or
        `keep_going()` says stop.

        The daemon's senders stop at the channel's first failure (the rest wait for the next
        pass and its backoff). `all_pending` (`monitor poll`) tries every pending alert once,
        also those waiting out a backoff, until the channel has refused
        POLL_FAILURES_PER_CHANNEL in a row; the alerts left are counted as `untried`.

        Each alert is leased just before it is sent and marked right after, so the window in
        which a crash could send it twice is one send long.
        """
        report = DeliveryReport()
        channel = self.config.channel(name)
        tried: set[int] = set()  # each alert at most once per pass
        failures_in_a_row = 0
        while channel is not None and keep_going():
            alert = await asyncio.to_thread(
                self.store.claim_next_alert,
                name,
                self.clock(),
                DELIVERY_LEASE,
                all_pending=all_pending,
                skip=frozenset(tried),
            )
            if alert is None:
                break
            tried.add(alert.id)
            outcome = await asyncio.to_thread(send, channel, alert.message)
            if outcome.ok:
                if not await self._persist(self.store.mark_delivered, alert, self.clock()):
                    log.warning("alert %s was delivered after its lease ran out", alert.alert_id)
                report += DeliveryReport(sent=1)
                failures_in_a_row = 0
                continue
            error = outcome.error or "not accepted"
            retry_at = next_attempt(self.clock(), alert.attempts + 1)
            await self._persist(self.store.mark_failed, alert, error, retry_at)
            log.warning("alert %s to channel %s not delivered: %s", alert.alert_id, name, error)
            report += DeliveryReport(failed=1, errors=(f"channel {name}: {error}",))
            failures_in_a_row += 1
            if not all_pending or failures_in_a_row >= POLL_FAILURES_PER_CHANNEL:
                break
        if all_pending and failures_in_a_row:
            left = await asyncio.to_thread(self.store.pending_count, name, frozenset(tried))
            report += DeliveryReport(untried=left)
        return report

    async def _persist(self, mark: Callable[..., bool], *args: object) -> bool:
        """Record a send's outcome, retrying through a short database outage: giving up
        would leave the row leased, and an alert already delivered would be sent again."""
        delay, waited = 1.0, 0.0
        limit = DELIVERY_LEASE.total_seconds() - 30
        while True:
            try:
                return await asyncio.to_thread(mark, *args)
            except StorageError as exc:
                if waited + delay > limit:
                    raise
                log.warning("%s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 30.0)

    def orphaned_alerts(self) -> dict[str, int]:
        """Undelivered alerts of channels no longer in config.toml (kept, not sent)."""
        configured = {c.name for c in self.config.channels}
        counts = self.store.outbox_counts()
        return {
            ch: pending for ch, (pending, _) in counts.items() if ch not in configured and pending
        }
