"""`monitor run`: APScheduler ticks, the pipeline works, the database remembers.

The scheduler only decides *when* to look at a feed: one interval job per feed (with jitter,
`coalesce`, `max_instances=1`), first run spread over the first seconds after start. Whether a
feed is really due (backoff after failures, Retry-After) is decided from its row in the
database, so a restart loses nothing. A delivery job drains the outbox every few seconds and
right after a poll queued alerts. SIGTERM/SIGINT stop cleanly: no new polls start, running
ones get a grace period, and anything unfinished is simply polled again next time (items and
alerts are committed before they count). SIGHUP re-reads config.toml and swaps it in only if it
is valid; otherwise the old config keeps running and the problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, timedelta
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.clock import utcnow
from monitor.errors import ConfigError
from monitor.feeds.fetch import Fetcher
from monitor.pipeline import Monitor
from monitor.store.repo import Store
from monitor.types import Config, FeedConfig

log = logging.getLogger("monitor.daemon")
T = TypeVar("T")

DELIVERY_EVERY = timedelta(seconds=10)
START_SPREAD = timedelta(seconds=10)  # first polls are spread over this long
STOP_GRACE = 5.0  # seconds running polls and sends get to finish on SIGTERM (docker: 10 s)


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


class Daemon:
    def __init__(self, monitor: Monitor, reload: Callable[[], Config]) -> None:
        self.monitor = monitor
        self.reload_config = reload
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.stopping = asyncio.Event()
        self.deliver_now = asyncio.Event()
        self.running: set[asyncio.Future[Any]] = set()
        self.fetcher: Fetcher | None = None

    # --- jobs ----------------------------------------------------------------------------

    def schedule_feeds(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("feed:"):
                job.remove()
        now = utcnow()
        feeds = [f for f in self.monitor.config.feeds if f.enabled]
        for index, feed in enumerate(feeds):
            seconds = feed.interval.total_seconds()
            first = now + START_SPREAD * (index / max(1, len(feeds)))
            self.scheduler.add_job(
                self.poll_job,
                IntervalTrigger(seconds=seconds, jitter=min(60.0, seconds * 0.05)),
                args=[feed.name],
                id=f"feed:{feed.name}",
                next_run_time=first,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(max(60.0, seconds / 2)),
            )
        log.info("scheduled %d feeds", len(feeds))

    async def poll_job(self, name: str) -> None:
        feed = next((f for f in self.monitor.config.feeds if f.name == name), None)
        if feed is None or self.stopping.is_set() or self.fetcher is None:
            return
        try:
            await self._tracked(self._poll(feed, self.fetcher))
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise
            # Nothing of an unfinished poll was committed: it is simply polled again next time.
            log.info("poll of feed %s abandoned at shutdown", name)

    async def _poll(self, feed: FeedConfig, fetcher: Fetcher) -> None:
        state = await asyncio.to_thread(self.monitor.store.feed_state, feed.name)
        if state.consecutive_failures and state.next_poll_at and state.next_poll_at > utcnow():
            return  # backing off after failures, or told to wait by Retry-After
        outcome = await self.monitor.poll_feed(feed, fetcher)
        log.info(
            "feed %s: %s, %d new items, %d matches, %d alerts queued",
            feed.name,
            outcome.status,
            outcome.new_items,
            outcome.matches,
            outcome.alerts,
        )
        if outcome.alerts:
            self.deliver_now.set()

    async def delivery_loop(self) -> None:
        """Drain the outbox every DELIVERY_EVERY, and at once when a poll queued alerts."""
        while not self.stopping.is_set():
            try:
                report = await self._tracked(self.monitor.deliver())
                if report.sent or report.failed:
                    log.info("alerts: %d delivered, %d failed", report.sent, report.failed)
            except Exception:
                log.exception("delivery pass failed; retrying later")
            self.deliver_now.clear()
            waits = {
                asyncio.ensure_future(self.deliver_now.wait()),
                asyncio.ensure_future(self.stopping.wait()),
            }
            _, pending = await asyncio.wait(
                waits, timeout=DELIVERY_EVERY.total_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` as a task that a shutdown waits for (and that job cancellation spares)."""
        task = asyncio.ensure_future(coro)
        self.running.add(task)
        try:
            return await asyncio.shield(task)
        finally:
            self.running.discard(task)

    # --- signals -------------------------------------------------------------------------

    def reload(self) -> None:
        try:
            config = self.reload_config()
        except ConfigError as exc:
            log.error("config not reloaded, the old one stays in force: %s", exc)
            return
        self.monitor.reconfigure(config)
        self.schedule_feeds()
        log.info("config reloaded: %d feeds, %d rules", len(config.feeds), len(config.rules))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        async with self.monitor.fetcher() as fetcher:
            self.fetcher = fetcher
            self.scheduler.start()
            self.schedule_feeds()
            delivery = asyncio.create_task(self.delivery_loop())
            sd_notify("READY=1")
            log.info("monitor running; stop with SIGTERM or Ctrl-C")
            await self.stopping.wait()
            sd_notify("STOPPING=1")
            log.info("stopping: waiting up to %.0fs for running polls", STOP_GRACE)
            self.scheduler.shutdown(wait=False)
            if self.running:
                await asyncio.wait(set(self.running), timeout=STOP_GRACE)
            delivery.cancel()
            for task in self.running:
                task.cancel()
            await asyncio.gather(delivery, *self.running, return_exceptions=True)
        log.info("stopped")
        return 0


def run_daemon(config: Config, reload: Callable[[], Config]) -> int:
    store = Store.open(config.settings.database)
    try:
        monitor = Monitor(config, store)
        try:
            return asyncio.run(Daemon(monitor, reload).run())
        finally:
            monitor.close()
    finally:
        store.close()
