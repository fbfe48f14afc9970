"""The only place the stages are put in order.

One feed's poll (`poll_feed`), as data flowing:

    1. feed row (db)          state = store.feed_state(feed)
    2. may we poll it now?    schedule.may_poll(state, now)           pure
    3. fetch                  fetcher.fetch(request)                  HTTP edge
    4. parse                  executor.parse(body)                    worker process
    5. unseen items           store.seen_keys(feed, keys)             db read
    6. match                  executor.match(rules, unseen)           worker process
    7. decide                 decide.plan_poll(...) -> PollPlan       pure
    8. record                 app.record(plan) -> store.record_polls  ONE transaction: feed row,
                                                                      items, matches, outbox
and, separately, delivery per channel (`drain_channel`): the channel's due outbox rows, one at
a time, leased -> render for the channel -> send (Apprise, thread) -> mark delivered, or record
the error and a retry time. Delivery never runs inside a poll's transaction, so a slow channel
never holds up polling, and a crash between the two loses nothing: the outbox row is already
committed.

Every function takes the `App` (monitor.app) first and reads `app.snapshot` once, so a reload
never mixes two configs within one poll or one delivery pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from monitor.alerts.decide import Failed, Gone, PollPlan, catching_up, plan_poll
from monitor.alerts.outbox import gives_up, next_attempt
from monitor.alerts.render import render_health
from monitor.app import App
from monitor.errors import FeedError, StorageError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import Permission, may_poll
from monitor.fulltext import read_articles
from monitor.snapshot import Snapshot
from monitor.store.repo import PendingAlert, Recorded
from monitor.types import (
    AlertContent,
    ChannelConfig,
    DigestContent,
    FeedConfig,
    FeedState,
    FetchRequest,
    FetchStatus,
    HealthAlert,
    Item,
    Match,
    Message,
    ParsedFeed,
    PollStatus,
    TemplateConfig,
)

if TYPE_CHECKING:
    from monitor.alerts.deliver import DeliveryOutcome

log = logging.getLogger("monitor.pipeline")

# How long a sender holds the outbox row it is sending before another sender may retry it.
DELIVERY_LEASE = timedelta(minutes=5)
# `monitor poll` tries every pending alert, but gives up on a channel that refused this many
# in a row (it is down: the rest are reported as not tried and stay pending).
POLL_FAILURES_PER_CHANNEL = 3


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one feed's poll did; `error` set when the fetch or parse failed."""

    feed: str
    status: PollStatus
    items: int = 0  # items in the document
    new_items: int = 0
    matches: int = 0
    alerts: int = 0  # outbox rows written
    error: str | None = None
    rules: tuple[str, ...] = ()  # the rule of each match stored


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


def outcome_of(plan: PollPlan, recorded: Recorded, parsed: ParsedFeed | None) -> FeedOutcome:
    """The summary of a recorded poll (pure)."""
    update = plan.update
    if isinstance(update, Gone):
        return FeedOutcome(plan.feed, PollStatus.GONE, error=update.error)
    if isinstance(update, Failed):
        return FeedOutcome(plan.feed, PollStatus.ERROR, error=update.error)
    if parsed is None:  # 304
        return FeedOutcome(plan.feed, PollStatus.UNCHANGED)
    status = PollStatus.EMPTY if not parsed.items else PollStatus.UNCHANGED
    if recorded.new_items:
        status = PollStatus.CAUGHT_UP if plan.quiet else PollStatus.NEW
    return FeedOutcome(
        plan.feed,
        status,
        items=len(parsed.items),
        new_items=recorded.new_items,
        matches=recorded.matches,
        alerts=recorded.alerts,
        error=parsed.problem,
        rules=recorded.rules,
    )


# --- polling -------------------------------------------------------------------------------


def due_feeds(app: App, exclude: Collection[str] = ()) -> list[FeedConfig]:
    """The enabled feeds the database says are due now, most overdue first."""
    snapshot = app.snapshot
    now = app.clock()
    names = [f.name for f in snapshot.enabled_feeds if f.name not in exclude]
    states = app.store.due_feeds(now, names)
    return [snapshot.feeds[s.name] for s in states if may_poll(s, now) is Permission.DUE]


async def poll_due(app: App, fetcher: Fetcher, exclude: Collection[str] = ()) -> list[FeedOutcome]:
    """Poll every due feed once, concurrently."""
    feeds = await asyncio.to_thread(due_feeds, app, exclude)
    snapshot = app.snapshot
    polls = (poll_feed(app, f, fetcher, snapshot=snapshot, forced=False) for f in feeds)
    return list(await asyncio.gather(*polls))


async def poll_all(
    app: App,
    fetcher: Fetcher,
    feeds: Sequence[FeedConfig] | None = None,
    *,
    catch_up: bool = False,
) -> list[FeedOutcome]:
    """Fetch every enabled feed (or `feeds`) once, whether due or not (`monitor poll`), but
    never one gone or waiting out its server's Retry-After. One feed's failure never stops
    another. At most `concurrency` polls are in flight (fetched bodies waiting for a worker
    would pile up otherwise); the feed rows are read once for the whole pass."""
    snapshot = app.snapshot
    chosen = snapshot.enabled_feeds if feeds is None else feeds
    states = await asyncio.to_thread(app.store.feed_states)
    slots = asyncio.Semaphore(snapshot.config.settings.concurrency)

    async def one(feed: FeedConfig) -> FeedOutcome:
        async with slots:
            return await poll_feed(
                app,
                feed,
                fetcher,
                snapshot=snapshot,
                forced=True,
                catch_up=catch_up,
                state=states.get(feed.name),
            )

    return list(await asyncio.gather(*(one(f) for f in chosen)))


async def poll_feed(
    app: App,
    feed: FeedConfig,
    fetcher: Fetcher,
    *,
    snapshot: Snapshot | None = None,
    forced: bool = True,
    catch_up: bool = False,
    state: FeedState | None = None,
) -> FeedOutcome:
    """Poll one feed. Never raises for the feed's sake: a bug is logged and reported.

    `forced` polls even before the feed's interval or backoff has passed (`monitor poll`);
    the daemon passes False. `catch_up`: store and match, alert nothing. `state`: the feed's
    row, when the caller has just read it (else it is read here)."""
    started = time.perf_counter()
    try:
        outcome = await _poll(
            app, feed, fetcher, snapshot or app.snapshot, forced, catch_up, state, started
        )
    except asyncio.CancelledError:
        raise
    except StorageError as exc:
        log.error("feed %s: not recorded: %s", feed.name, exc, extra=_event(feed.name, started))
        outcome = FeedOutcome(feed.name, PollStatus.ERROR, error=str(exc)[:300])
    except Exception as exc:
        log.exception(
            "internal error while polling feed %s", feed.name, extra=_event(feed.name, started)
        )
        outcome = FeedOutcome(feed.name, PollStatus.ERROR, error=f"internal error: {exc!r}"[:300])
    app.observer.poll(outcome, time.perf_counter() - started)
    return outcome


def _event(feed: str, started: float, outcome: str = "error") -> dict[str, object]:
    """The fields of a poll's log event (MONITOR_LOG_FORMAT=json shows them)."""
    ms = round((time.perf_counter() - started) * 1000, 1)
    return {"event": "poll", "feed": feed, "outcome": outcome, "duration_ms": ms}


async def _poll(
    app: App,
    feed: FeedConfig,
    fetcher: Fetcher,
    snapshot: Snapshot,
    forced: bool,
    catch_up: bool,
    state: FeedState | None,
    started: float,
) -> FeedOutcome:
    if state is None:
        state = await asyncio.to_thread(app.store.feed_state, feed.name)
    permission = may_poll(state, app.clock(), forced=forced)
    if permission is Permission.GONE:
        return FeedOutcome(feed.name, PollStatus.DISABLED, error="410 Gone: feed disabled")
    if permission is Permission.WAITING:
        until = f"{state.retry_until:%Y-%m-%d %H:%M} UTC" if state.retry_until else ""
        waiting = f"server asked to wait until {until}"
        return FeedOutcome(feed.name, PollStatus.WAITING, error=waiting)
    if permission is not Permission.DUE:  # another poller was here first
        return FeedOutcome(feed.name, PollStatus.UNCHANGED)
    quiet = catching_up(feed, state, catch_up)
    request = FetchRequest(
        feed.name, state.url, state.etag, state.last_modified, per_host=feed.per_host
    )
    result = await fetcher.fetch(request)
    parsed: ParsedFeed | None = None
    matched: list[tuple[Item, list[Match]]] = []
    error: str | None = result.error
    body_hash = body_digest(result.body) if result.status is FetchStatus.OK else None
    # the same bytes as the last 200 parsed: nothing to parse, match or store (like a 304)
    if result.status is FetchStatus.OK and body_hash != state.body_hash:
        try:
            if state.items_seen == 0 and not feed.full_text:
                # no item of this feed stored yet: none to leave out, parse and match at once
                parsed, matched = await app.executor.parse_and_match(
                    result.body,
                    result.headers,
                    result.url,
                    snapshot.matcher_id,
                    snapshot.rules,
                    feed.name,
                )
            else:
                parsed = await app.executor.parse(result.body, result.headers, result.url)
                keys = [i.key for i in parsed.items]
                seen = await asyncio.to_thread(app.store.seen_keys, feed.name, keys)
                fresh = [item for item in parsed.items if item.key not in seen]
                if feed.full_text and fresh:  # each article read (or given up) before matching
                    settings = snapshot.config.settings
                    fresh = await read_articles(app, feed, fresh, fetcher, settings)
                matched = await app.executor.match(
                    snapshot.matcher_id, snapshot.rules, feed.name, fresh
                )
        except FeedError as exc:
            error, parsed = str(exc), None
    plan = plan_poll(
        feed,
        state,
        result,
        parsed,
        matched,
        error,
        snapshot,
        app.clock(),
        quiet=quiet,
        fraction=app.rng.random(),
        body_hash=body_hash,
    )
    recorded = await app.record(plan)
    _log_poll(plan, parsed, started)
    return outcome_of(plan, recorded, parsed)


def body_digest(body: bytes) -> str:
    """What identifies a response body: its SHA-256, hex (stored on the feed row)."""
    return hashlib.sha256(body).hexdigest()


def _log_poll(plan: PollPlan, parsed: ParsedFeed | None, started: float) -> None:
    """One warning per problem (the daemon logs the ordinary outcomes)."""
    update = plan.update
    if isinstance(update, Gone):
        extra = _event(plan.feed, started, "gone")
        log.warning("feed %s answered 410 Gone and is disabled", plan.feed, extra=extra)
    elif isinstance(update, Failed):
        log.warning(
            "feed %s failed (%d in a row): %s",
            plan.feed,
            update.consecutive_failures,
            update.error,
            extra=_event(plan.feed, started),
        )
    elif parsed is not None and parsed.problem:
        extra = {"event": "feed_problem", "feed": plan.feed, "outcome": "not_well_formed"}
        log.warning("feed %s is not well-formed: %s", plan.feed, parsed.problem, extra=extra)


# --- delivery ------------------------------------------------------------------------------


async def deliver_all(app: App, *, all_pending: bool = False) -> DeliveryReport:
    """One delivery pass over every channel, concurrently (a slow one delays only itself).

    `all_pending` also retries alerts still waiting out their backoff (`monitor poll`).
    """
    names = list(app.snapshot.channels)
    reports = await asyncio.gather(
        *(drain_channel(app, name, all_pending=all_pending) for name in names)
    )
    total = DeliveryReport()
    for report in reports:
        total += report
    return total


async def drain_channel(
    app: App,
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
    which a crash could send it twice is one send long. The alert is rendered for the
    channel here, at delivery time, from the content the outbox holds.
    """
    report = DeliveryReport()
    channel = app.snapshot.channels.get(name)
    tried: set[int] = set()  # each alert at most once per pass
    failures_in_a_row = 0
    store = app.store
    while channel is not None and keep_going():
        alert = await asyncio.to_thread(
            store.claim_next_alert,
            name,
            app.clock(),
            DELIVERY_LEASE,
            all_pending=all_pending,
            skip=frozenset(tried),
        )
        if alert is None:
            break
        tried.add(alert.id)
        tried.update(alert.members)
        content = alert.content
        started = time.perf_counter()
        if isinstance(content, AlertContent | DigestContent):  # per URL, in its own format
            template = None
            if isinstance(content, AlertContent):
                rules = tuple(m.rule for m in content.matches)
                template = app.snapshot.config.template_for(name, rules)
            outcome = await asyncio.to_thread(_send_alert, channel, content, template)
        elif isinstance(content, HealthAlert):  # feed health (issue 8): plain text
            outcome = await asyncio.to_thread(_send, channel, render_health(content))
        else:  # a row rendered before revision 0003: sent as it was
            outcome = await asyncio.to_thread(_send, channel, content)
        seconds = time.perf_counter() - started
        app.observer.delivery(name, outcome.ok, seconds)
        event = {
            "event": "delivery",
            "channel": name,
            "outcome": "sent" if outcome.ok else "failed",
            "duration_ms": round(seconds * 1000, 1),
        }
        if outcome.ok:
            log.info("alert %s delivered to channel %s", alert.alert_id, name, extra=event)
            if not await _persist(store.mark_delivered, alert, app.clock()):
                log.warning("alert %s was delivered after its lease ran out", alert.alert_id)
            report += DeliveryReport(sent=1)
            failures_in_a_row = 0
            continue
        error = outcome.error or "not accepted"
        now = app.clock()
        retry_at = next_attempt(now, alert.attempts + 1)
        give_up_after = app.snapshot.config.settings.give_up_after
        given_up = now if gives_up(now, alert.since, give_up_after) else None
        await _persist(store.mark_failed, alert, error, retry_at, given_up_at=given_up)
        if given_up:
            log.error(
                "alert %s to channel %s failed for good after %d attempts: %s "
                "(`monitor alerts retry %s` requeues it)",
                alert.alert_id,
                name,
                alert.attempts + 1,
                error,
                alert.alert_id,
                extra=event,
            )
        else:
            log.warning(
                "alert %s to channel %s not delivered: %s", alert.alert_id, name, error, extra=event
            )
        report += DeliveryReport(failed=1, errors=(f"channel {name}: {error}",))
        failures_in_a_row += 1
        if not all_pending or failures_in_a_row >= POLL_FAILURES_PER_CHANNEL:
            break
    if all_pending and failures_in_a_row:
        left = await asyncio.to_thread(store.pending_count, name, frozenset(tried))
        report += DeliveryReport(untried=left)
    return report


# The Apprise edge is imported on the first send: a `monitor poll` with nothing to send never
# loads Apprise and its plugins (~0.2 s of CPU).


def _send(channel: ChannelConfig, message: Message) -> DeliveryOutcome:
    from monitor.alerts.deliver import send  # deferred on purpose, see above

    return send(channel, message)


def _send_alert(
    channel: ChannelConfig,
    content: AlertContent | DigestContent,
    template: TemplateConfig | None = None,
) -> DeliveryOutcome:
    from monitor.alerts.deliver import send_alert  # deferred on purpose, see above

    return send_alert(channel, content, template=template)


async def _persist(
    mark: Callable[..., bool], alert: PendingAlert, *args: object, **kwargs: object
) -> bool:
    """Record a send's outcome, retrying through a short database outage: giving up would
    leave the row leased, and an alert already delivered would be sent again. Retries stop
    before the lease runs out (stamina: exponential backoff with jitter)."""
    import stamina  # here: a pass with nothing to deliver never loads it (nor tenacity)

    limit = DELIVERY_LEASE - timedelta(seconds=30)
    async for attempt in stamina.retry_context(
        on=StorageError, attempts=None, timeout=limit, wait_initial=1.0, wait_max=30.0
    ):
        with attempt:
            if attempt.num > 1:
                log.warning("recording alert %s: retry %d", alert.alert_id, attempt.num - 1)
            return await asyncio.to_thread(mark, alert, *args, **kwargs)
    raise AssertionError("unreachable: stamina re-raises the last error")


def orphaned_alerts(app: App) -> dict[str, int]:
    """Undelivered alerts of channels no longer in config.toml (kept, not sent)."""
    configured = set(app.snapshot.channels)
    counts = app.store.outbox_counts()
    return {ch: pending for ch, (pending, _) in counts.items() if ch not in configured and pending}
