"""`monitor run`: APScheduler ticks, the pipeline works, the database remembers.

Feeds: one APScheduler interval job per feed (jitter, `coalesce`, `max_instances=1`, a generous
`misfire_grace_time`), first runs spread over the first seconds after start. The database
decides when a feed may really be fetched: after a failure its row holds the backoff time
(`next_poll_at`) and any Retry-After (`retry_until`), and the job's next run is moved there, so
a failing feed is retried after its backoff, not on the next grid tick. A restart reads the
same rows, so nothing is forgotten.

Alerts: one sender task per channel drains that channel's outbox, at once when a poll queued
alerts and every few seconds for retries; a slow or dead channel only delays itself.

Signals: SIGTERM/SIGINT stop cleanly: polls are cancelled at once (nothing of an unfinished
poll is committed, so it is simply polled again next time), senders finish the alert they are
sending and record the outcome (bounded by SEND_GRACE). SIGHUP re-reads config.toml and swaps
it in only if it is valid: feed jobs are added, removed or rescheduled only where the feed
changed, fetch settings get a new HTTP client, new channels get a sender. An invalid file is
logged and the old config keeps running. The database URL needs a restart to change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import utcnow
from monitor.errors import ConfigError, StorageError
from monitor.feeds.fetch import Fetcher
from monitor.logs import redact_secrets_of
from monitor.pipeline import Monitor, waiting_for_server
from monitor.store.repo import FeedState, Store
from monitor.textutil import one_line
from monitor.types import Config, FeedConfig

log = logging.getLogger("monitor.daemon")

DELIVERY_EVERY = timedelta(seconds=10)  # retry pass of each channel's outbox
START_SPREAD = timedelta(seconds=10)  # first polls are spread over this long
SEND_GRACE = 20.0  # seconds a sender may take to finish its current alert on SIGTERM


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("could not notify systemd: %s", exc)


def first_run(state: FeedState | None, spread: datetime) -> datetime:
    """When a feed's job should first run: at its place in the start-up spread, unless the
    feed is backing off after failures or the server asked us to wait."""
    if state is None:
        return spread
    waits = [spread]
    if state.retry_until is not None:
        waits.append(state.retry_until)
    if state.consecutive_failures and state.next_poll_at is not None:
        waits.append(state.next_poll_at)
    return max(waits)


def fetch_settings(config: Config) -> tuple[object, ...]:
    s = config.settings
    return (s.timeout, s.max_bytes, s.concurrency, s.user_agent, s.per_host)


class Daemon:
    def __init__(self, monitor: Monitor, reload: Callable[[], Config]) -> None:
        self.monitor = monitor
        self.reload_config = reload
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.stopping = asyncio.Event()
        self.polls: set[asyncio.Task[Any]] = set()
        self.senders: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.fetcher: Fetcher | None = None
        self.retired: set[Fetcher] = set()  # replaced on reload, closed when polls are done
        self.users: dict[Fetcher, int] = {}  # running polls per HTTP client
        self.running: dict[str, asyncio.Task[Any]] = {}  # feed name -> its running poll
        self.superseded: set[asyncio.Task[Any]] = set()  # polls cancelled by a reload
        self.job_ids: dict[str, str] = {}  # feed name -> its current APScheduler job id
        self.generation = 0
        self.background: set[asyncio.Task[None]] = set()

    # --- feeds ---------------------------------------------------------------------------

    def schedule_feeds(self, previous: Config | None = None) -> None:
        """Add a job for every new or changed feed, remove those of feeds no longer polled.

        A changed feed's running poll (old URL, old interval) is cancelled, and its new job
        gets a new id, so the old poll neither blocks the new one (`max_instances`) nor writes
        its outcome over the reset feed row.
        """
        feeds = {f.name: f for f in self.monitor.config.feeds if f.enabled}
        before = {f.name: f for f in previous.feeds if f.enabled} if previous else {}
        for name in [n for n in self.job_ids if feeds.get(n) != before.get(n)]:
            job = self.scheduler.get_job(self.job_ids.pop(name))
            if job is not None:
                job.remove()
            running = self.running.get(name)
            if running is not None:
                self.superseded.add(running)
                running.cancel()
        fresh = [f for name, f in feeds.items() if before.get(name) != f]
        states = self.monitor.store.feed_states()
        now = utcnow()
        self.generation += 1
        for index, feed in enumerate(fresh):
            spread = now + START_SPREAD * (index / max(1, len(fresh)))
            seconds = feed.interval.total_seconds()
            job_id = self.job_ids[feed.name] = f"feed:{feed.name}:{self.generation}"
            self.scheduler.add_job(
                self.poll_job,
                IntervalTrigger(seconds=seconds, jitter=min(60.0, seconds * 0.05)),
                args=[feed.name],
                id=job_id,
                next_run_time=first_run(states.get(feed.name), spread),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(max(60.0, seconds / 2)),
            )
        log.info("%d feeds scheduled (%d new or changed)", len(feeds), len(fresh))

    def postpone(self, name: str, when: datetime | None) -> None:
        """Move a feed's next run to `when` if that is later than the job's own next run."""
        job_id = self.job_ids.get(name)
        job = self.scheduler.get_job(job_id) if job_id else None
        if job is None or when is None or job.next_run_time is None:
            return
        if when > job.next_run_time:
            job.modify(next_run_time=when)

    async def poll_job(self, name: str) -> None:
        feed = next((f for f in self.monitor.config.feeds if f.name == name), None)
        fetcher = self.fetcher
        task = asyncio.current_task()
        if feed is None or self.stopping.is_set() or fetcher is None or task is None:
            return
        self.polls.add(task)
        self.running[name] = task
        self.users[fetcher] = self.users.get(fetcher, 0) + 1
        try:
            await self._poll(feed, fetcher)
        except asyncio.CancelledError:
            if task in self.superseded:
                log.info("poll of feed %s abandoned: its config changed", name)
            elif self.stopping.is_set():
                # Nothing of an unfinished poll was committed: it is polled again next time.
                log.info("poll of feed %s abandoned at shutdown", name)
            else:
                raise
        finally:
            self.polls.discard(task)
            self.superseded.discard(task)
            if self.running.get(name) is task:
                del self.running[name]
            self._release(fetcher)

    def _release(self, fetcher: Fetcher) -> None:
        """One poll less on `fetcher`; a replaced client is closed when its last poll ends."""
        self.users[fetcher] -= 1
        if self.users[fetcher] == 0:
            del self.users[fetcher]
            if fetcher in self.retired:
                self.retired.discard(fetcher)
                self._background(fetcher.close())

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _poll(self, feed: FeedConfig, fetcher: Fetcher) -> None:
        store = self.monitor.store
        state = await asyncio.to_thread(store.feed_state, feed.name)
        now = utcnow()
        backing_off = state.consecutive_failures and state.next_poll_at and state.next_poll_at > now
        if waiting_for_server(state, now) or backing_off:
            self.postpone(feed.name, max(t for t in (state.retry_until, state.next_poll_at) if t))
            return
        outcome = await self.monitor.poll_feed(feed, fetcher)
        if outcome.status in ("new", "unchanged"):
            log.info(
                "feed %s: %s, %d new items, %d matches, %d alerts queued",
                feed.name,
                outcome.status,
                outcome.new_items,
                outcome.matches,
                outcome.alerts,
            )
        elif outcome.status == "gone":  # the pipeline said so once; never poll it again
            job_id = self.job_ids.pop(feed.name, None)
            job = self.scheduler.get_job(job_id) if job_id else None
            if job is not None:
                job.remove()
        # "error" was logged by the pipeline (one line per failure); "disabled" and "waiting"
        # are states, not news
        if outcome.alerts:
            for event in self.wake.values():
                event.set()
        if outcome.status == "error":
            state = await asyncio.to_thread(store.feed_state, feed.name)
            self.postpone(feed.name, state.next_poll_at)

    # --- alerts --------------------------------------------------------------------------

    def start_senders(self) -> None:
        """A sender task for every configured channel that has none (a removed channel's
        sender ends by itself; its queued alerts wait in the outbox)."""
        for channel in self.monitor.config.channels:
            if channel.name not in self.senders:
                self.wake[channel.name] = asyncio.Event()
                task = asyncio.create_task(self.sender(channel.name))
                self.senders[channel.name] = task
        orphaned = self.monitor.orphaned_alerts()
        for name, count in orphaned.items():
            log.warning(
                "%d undelivered alert(s) for channel %s, which is no longer in config.toml: "
                "they are kept and sent if the channel comes back",
                count,
                name,
            )

    def _configured(self, name: str) -> bool:
        return self.monitor.config.channel(name) is not None

    async def sender(self, name: str) -> None:
        wake = self.wake[name]

        def keep_going() -> bool:
            return not self.stopping.is_set() and self._configured(name)

        try:
            while keep_going():
                wake.clear()
                try:
                    report = await self.monitor.deliver_channel(name, keep_going=keep_going)
                    if report.sent or report.failed:
                        log.info(
                            "channel %s: %d delivered, %d failed", name, report.sent, report.failed
                        )
                except (StorageError, SQLAlchemyError) as exc:  # the database is away: say so once
                    log.error(
                        "delivery to channel %s paused: database: %s", name, one_line(str(exc))
                    )
                except Exception:
                    log.exception("delivery to channel %s failed; retrying later", name)
                waits = {
                    asyncio.ensure_future(wake.wait()),
                    asyncio.ensure_future(self.stopping.wait()),
                }
                _, pending = await asyncio.wait(
                    waits,
                    timeout=DELIVERY_EVERY.total_seconds(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in pending:
                    waiter.cancel()
        finally:
            self.senders.pop(name, None)

    # --- signals -------------------------------------------------------------------------

    async def reload(self) -> None:
        previous = self.monitor.config
        try:
            config = await asyncio.to_thread(self.reload_config)
        except ConfigError as exc:
            log.error("config not reloaded, the old one stays in force: %s", exc)
            return
        if config.settings.database != previous.settings.database:
            log.warning("the database URL changed: restart the monitor to use the new one")
        # the new channels' secrets are hidden from the logs before anything can log them
        redact_secrets_of([u for c in (*config.channels, *previous.channels) for u in c.urls])
        await asyncio.to_thread(self.monitor.reconfigure, config)
        if fetch_settings(config) != fetch_settings(previous):
            await self.replace_fetcher()
        self.schedule_feeds(previous)
        self.start_senders()
        log.info("config reloaded: %d feeds, %d rules", len(config.feeds), len(config.rules))

    async def replace_fetcher(self) -> None:
        """New HTTP settings: new polls use a new client; the old one is closed as soon as
        no poll holds it any more."""
        fetcher = self.monitor.fetcher()
        await fetcher.open()
        old, self.fetcher = self.fetcher, fetcher
        if old is None:
            return
        if self.users.get(old):
            self.retired.add(old)
        else:
            await old.close()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)

        def on_hup() -> None:
            self._background(self.reload())

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        self.fetcher = self.monitor.fetcher()
        await self.fetcher.open()
        try:
            self.scheduler.start()
            self.schedule_feeds()
            self.start_senders()
            sd_notify("READY=1")
            log.info("monitor running; stop with SIGTERM or Ctrl-C")
            await self.stopping.wait()
            sd_notify("STOPPING=1")
            log.info("stopping: abandoning running polls, finishing alerts being sent")
            self.scheduler.shutdown(wait=False)
            for task in list(self.polls):
                task.cancel()
            for task in list(self.background):
                task.cancel()
            await asyncio.gather(*self.polls, *self.background, return_exceptions=True)
            # closing a replaced client, started as its last poll ended: let it finish
            await asyncio.gather(*self.background, return_exceptions=True)
            senders = list(self.senders.values())
            if senders:
                _, late = await asyncio.wait(senders, timeout=SEND_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*senders, return_exceptions=True)
        finally:
            for fetcher in (self.fetcher, *self.retired):
                await fetcher.close()
        log.info("stopped")
        return 0


def run_daemon(config: Config, reload: Callable[[], Config]) -> int:
    store = Store.open(config.settings.database)
    try:
        with store.only_instance():
            monitor = Monitor(config, store)
            try:
                return asyncio.run(Daemon(monitor, reload).run())
            finally:
                monitor.close()
    finally:
        store.close()
