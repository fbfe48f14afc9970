"""`monitor run`: APScheduler ticks, the pipeline works, the database remembers.

Feeds: one APScheduler job ticks every TICK seconds and asks the database which feeds are due
(`next_poll_at` on each feed row, written after every poll by the pure functions of
`feeds.schedule`: interval, jitter, backoff, Retry-After; a 410 is never due). Each due feed
not already being polled gets a poll task, at most `concurrency` at a time; when a poll ends
while others wait, the next tick comes at once. At start every feed that may be polled gets a
time within START_SPREAD (`schedule.start_times`), so a restart polls everything soon without
a burst, and a feed still backing off keeps its time. A restart reads the same rows, so
nothing is forgotten.

Alerts: one sender task per channel drains that channel's outbox, at once when a poll queued
alerts and every few seconds for retries; a slow or dead channel only delays itself. Before
the senders start, and every TAKE_OVER_EVERY, the leases of processes that are gone (a killed
daemon or `monitor poll`) are freed (`Store.take_over_leases`), so their alerts go out now.

Signals: SIGTERM/SIGINT stop cleanly: polls are cancelled at once (nothing of an unfinished
poll is committed, so it is simply polled again next time), senders finish the alert they are
sending and record the outcome (bounded by SEND_GRACE). SIGHUP re-reads config.toml and swaps
it in only if it is valid: a feed whose config changed has its running poll cancelled and is
due at once; fetch settings get a new HTTP client; new channels get a sender. An invalid file
is logged and the old config keeps running. The database URL needs a restart to change.
Saving config.toml does the same as SIGHUP (`[monitor] watch_config`, on by default): each
tick compares the file's inode, mtime and size with those of the file last loaded, and once
a change has held still for one tick, its content's hash; an editor that writes a temporary
file and renames it over config.toml changes the inode and is seen like an in-place write.

systemd (Type=notify): READY=1 once running; RELOADING=1 ... READY=1 around a reload;
STOPPING=1 at SIGTERM; WATCHDOG=1 from the end of each tick, only when systemd asked for it
(WATCHDOG_USEC): a tick that hangs (event loop blocked, database call stuck) stops the pings
and systemd restarts the daemon (WatchdogSec must exceed a few TICKs).

Each tick also writes a heartbeat row at most every HEARTBEAT_EVERY (`monitor health` reads
it), checks that the daemon still holds the database's one-daemon lock (a PostgreSQL session
lost to a server restart or pg_terminate_backend takes its lock with it: it is taken again,
or, if another daemon took it meanwhile, this one exits 1), and starts retention
(`[monitor] retention`) every PRUNE_EVERY, in small batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import pipeline
from monitor.app import App, freeze_startup_heap, make_app
from monitor.errors import ConfigError, StorageError
from monitor.feeds.fetch import Fetcher
from monitor.feeds.schedule import start_times
from monitor.logs import redact_secrets_of
from monitor.metrics import Metrics, outcome_label
from monitor.store.repo import DaemonLock, Store
from monitor.textutil import one_line
from monitor.types import Config, FeedConfig, Heartbeat, PollStatus
from monitor.web import WebServer

log = logging.getLogger("monitor.daemon")

TICK = timedelta(seconds=2)  # how often the database is asked which feeds are due
DELIVERY_EVERY = timedelta(seconds=10)  # retry pass of each channel's outbox
START_SPREAD = timedelta(seconds=10)  # first polls are spread over this long
SEND_GRACE = 20.0  # seconds a sender may take to finish its current alert on SIGTERM
TAKE_OVER_EVERY = timedelta(seconds=30)  # look again for leases of processes that died
HEARTBEAT_EVERY = 10.0  # seconds between heartbeat writes (monitor health allows 60 s)
PRUNE_FIRST = 60.0  # seconds after start of the first retention pass
PRUNE_EVERY = 3600.0  # seconds between retention passes
PRUNE_BATCH = 500  # rows per retention transaction: polls wait at most one batch


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


def secrets_of(*configs: Config) -> list[str]:
    """What the log redactor hides: the channel URLs' secrets and the HTTP token."""
    urls = [u for config in configs for c in config.channels for u in c.urls]
    tokens = [t for config in configs if (t := config.settings.http_token) is not None]
    brokers = [config.cluster.broker for config in configs if config.cluster is not None]
    return [*urls, *tokens, *brokers]  # a token has no "://": the redactor hides all of it


def watchdog_enabled() -> bool:
    """Whether systemd asked this process for watchdog pings (WatchdogSec=)."""
    if not os.environ.get("WATCHDOG_USEC"):
        return False
    pid = os.environ.get("WATCHDOG_PID")
    return pid is None or pid == str(os.getpid())


def reloading_message() -> str:
    """RELOADING=1 with the monotonic timestamp systemd (253+, notify-reload) wants."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return f"RELOADING=1\nMONOTONIC_USEC={usec}"


def config_stamp(path: os.PathLike[str] | str) -> tuple[int, int, int] | None:
    """What changes when a file is written in place or replaced by a rename."""
    try:
        st = os.stat(path)
    except OSError:  # between an editor's unlink and rename, or removed
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def config_digest(path: os.PathLike[str] | str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def fetch_settings(config: Config) -> tuple[object, ...]:
    s = config.settings
    return (s.timeout, s.max_bytes, s.concurrency, s.user_agent, s.per_host)


class Daemon:
    def __init__(
        self, app: App, reload: Callable[[], Config], lock: DaemonLock | None = None
    ) -> None:
        self.app = app
        self.reload_config = reload
        self.lock = lock or DaemonLock()
        self.exit_code = 0
        self.watchdog = watchdog_enabled()
        self._reloading = asyncio.Lock()
        self._loaded: tuple[tuple[int, int, int] | None, str | None] = (None, None)
        self._seen_stamp: tuple[int, int, int] | None = None
        self._started = app.clock()
        self._pass_at: datetime | None = None  # the last finished poll
        self._pruned_at: datetime | None = None
        self._beat_due = 0.0
        self._prune_due = time.monotonic() + PRUNE_FIRST
        self._pruning = False
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.stopping = asyncio.Event()
        self.senders: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.fetcher: Fetcher | None = None
        self.retired: set[Fetcher] = set()  # replaced on reload, closed when polls are done
        self.users: dict[Fetcher, int] = {}  # running polls per HTTP client
        # feed name -> its running poll and the feed's config it runs with
        self.running: dict[str, tuple[asyncio.Task[Any], FeedConfig]] = {}
        self.superseded: set[asyncio.Task[Any]] = set()  # polls cancelled by a reload
        self.background: set[asyncio.Task[None]] = set()
        self._ticking = False
        self._backlog = False  # the last tick left due feeds waiting for a free slot
        self.web: WebServer | None = None  # the status/metrics server ([monitor] http)

    # --- feeds ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """Start a poll for every due feed that has none running, up to `concurrency`."""
        if self._ticking or self.stopping.is_set() or self.fetcher is None:
            return
        self._ticking = True
        try:
            try:
                due = await asyncio.to_thread(pipeline.due_feeds, self.app, set(self.running))
                room = self.app.config.settings.concurrency - len(self.running)
                self._backlog = len(due) > room
                for feed in due[: max(room, 0)]:
                    self._start_poll(feed)
                self.app.observer.tick()
            except StorageError as exc:
                log.error("cannot read which feeds are due: %s", exc)
                self.app.observer.tick(one_line(str(exc))[:300])
            await self.after_tick()
        finally:
            self._ticking = False

    async def after_tick(self) -> None:
        """What the tick does besides polling; each part is cheap unless its time has come."""
        if self.stopping.is_set():
            return
        await self.check_lock()
        self.watch_config()
        await self.beat()
        self.start_pruning()
        if self.watchdog:  # the loop did its work: tell systemd it is alive
            sd_notify("WATCHDOG=1")

    async def check_lock(self) -> None:
        """Stop (exit 1) if another daemon took the database's lock while ours was lost."""
        try:
            held = await asyncio.to_thread(self.lock.check)
        except StorageError as exc:
            log.error("cannot check the daemon lock: %s", exc)
            return
        if not held:
            log.error(
                "another `monitor run` took this database's daemon lock while our database "
                "session was lost: stopping, so that only one runs"
            )
            self.exit_code = 1
            self.stopping.set()

    async def beat(self, force: bool = False) -> None:
        """Write the heartbeat `monitor health` reads, at most every HEARTBEAT_EVERY."""
        if not force and time.monotonic() < self._beat_due:
            return
        self._beat_due = time.monotonic() + HEARTBEAT_EVERY
        beat = Heartbeat(
            host=socket.gethostname()[:200],
            pid=os.getpid(),
            started_at=self._started,
            ticked_at=self.app.clock(),
            pass_at=self._pass_at,
            pruned_at=self._pruned_at,
        )
        try:
            async with self.app.write_lock():
                await asyncio.to_thread(self.app.store.beat, beat)
        except StorageError as exc:
            log.error("cannot write the heartbeat: %s", exc)

    def _start_poll(self, feed: FeedConfig) -> None:
        assert self.fetcher is not None
        task = asyncio.create_task(self.poll_one(feed, self.fetcher))
        self.running[feed.name] = (task, feed)

    async def poll_one(self, feed: FeedConfig, fetcher: Fetcher) -> None:
        """One feed's poll as the daemon runs it: logged, alerts woken, slot released."""
        task = asyncio.current_task()
        self.users[fetcher] = self.users.get(fetcher, 0) + 1
        started = time.perf_counter()
        try:
            outcome = await pipeline.poll_feed(self.app, feed, fetcher, forced=False)
            self._pass_at = self.app.clock()
            self.report(outcome, time.perf_counter() - started)
        except asyncio.CancelledError:
            if task in self.superseded:
                log.info("poll of feed %s abandoned: its config changed", feed.name)
            elif self.stopping.is_set():
                # Nothing of an unfinished poll was committed: it is polled again next time.
                log.info("poll of feed %s abandoned at shutdown", feed.name)
            else:
                raise
        finally:
            self.superseded.discard(task)
            if self.running.get(feed.name, (None,))[0] is task:
                del self.running[feed.name]
            self._release(fetcher)
            if self._backlog and not self.stopping.is_set():
                self._backlog = False
                self._background(self.tick())

    def report(self, outcome: pipeline.FeedOutcome, seconds: float = 0.0) -> None:
        """The log line of an ordinary outcome (problems were logged by the pipeline) and
        one line per match; each an event (see monitor.logs.EVENT_FIELDS)."""
        if outcome.status in (
            PollStatus.NEW,
            PollStatus.UNCHANGED,
            PollStatus.EMPTY,
            PollStatus.CAUGHT_UP,
        ):
            log.info(
                "feed %s: %s, %d new items, %d matches, %d alerts queued",
                outcome.feed,
                outcome.status,
                outcome.new_items,
                outcome.matches,
                outcome.alerts,
                extra={
                    "event": "poll",
                    "feed": outcome.feed,
                    "outcome": outcome_label(outcome.status),
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        for rule in outcome.rules:
            extra = {"event": "match", "feed": outcome.feed, "rule": rule}
            log.info("feed %s: rule %s matched", outcome.feed, rule, extra=extra)
        if outcome.alerts:
            for event in self.wake.values():
                event.set()

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

    def spread_start(self) -> None:
        """Every feed that may be polled gets a time within START_SPREAD from now."""
        store = self.app.store
        states = store.feed_states()
        enabled = [states[f.name] for f in self.app.snapshot.enabled_feeds if f.name in states]
        store.set_next_polls(start_times(enabled, self.app.clock(), START_SPREAD))

    def reschedule(self, previous: Config) -> None:
        """After a reload: a feed whose config changed is due at once, and its running poll
        (old URL, old interval) is cancelled, so it neither blocks the new one nor writes
        its outcome over the reset feed row."""
        before = {f.name: f for f in previous.feeds if f.enabled}
        changed = {
            f.name for f in self.app.snapshot.enabled_feeds if before.get(f.name) not in (None, f)
        }
        for name, (task, feed) in list(self.running.items()):
            if name in changed or self.app.snapshot.feeds.get(name) != feed:
                self.superseded.add(task)
                task.cancel()
        now = self.app.clock()
        self.app.store.set_next_polls({name: now for name in changed})
        log.info(
            "%d feeds enabled (%d changed)", len(self.app.snapshot.enabled_feeds), len(changed)
        )

    # --- config file watching ------------------------------------------------------------

    def remember_config(self) -> None:
        """Note the file about to be loaded, so that only a later change reloads it."""
        path = self.app.config.path
        self._loaded = (config_stamp(path), config_digest(path))
        self._seen_stamp = self._loaded[0]

    def watch_config(self) -> None:
        """Reload like SIGHUP when config.toml changed and has held still for one tick."""
        if not self.app.config.settings.watch_config:
            return
        path = self.app.config.path
        stamp = config_stamp(path)
        if stamp is None or stamp == self._loaded[0]:
            self._seen_stamp = stamp
            return
        if stamp != self._seen_stamp:  # still being written, maybe: look again next tick
            self._seen_stamp = stamp
            return
        if config_digest(path) == self._loaded[1]:  # touched, not changed
            self._loaded = (stamp, self._loaded[1])
            return
        log.info("%s changed: reloading it", path)
        self._background(self.reload())

    # --- retention -----------------------------------------------------------------------

    def start_pruning(self) -> None:
        retention = self.app.config.settings.retention
        if retention is None or self._pruning or time.monotonic() < self._prune_due:
            return
        self._prune_due = time.monotonic() + PRUNE_EVERY
        self._background(self.prune(retention))

    async def prune(self, retention: timedelta) -> None:
        """One retention pass, in batches of PRUNE_BATCH rows (each its own transaction,
        under the write lock, so polls wait at most one batch)."""
        self._pruning = True
        store = self.app.store
        items = matches = alerts = 0
        try:
            while not self.stopping.is_set():
                now = self.app.clock()
                async with self.app.write_lock():
                    pruned = await asyncio.to_thread(store.prune, now - retention, now, PRUNE_BATCH)
                items, matches, alerts = (
                    items + pruned.items,
                    matches + pruned.matches,
                    alerts + pruned.alerts,
                )
                if not pruned:
                    break
            if items or matches or alerts:
                async with self.app.write_lock():
                    await asyncio.to_thread(store.reclaim_space)
                log.info(
                    "retention: %d items emptied (their identity kept), %d matches and %d "
                    "delivered alerts deleted",
                    items,
                    matches,
                    alerts,
                )
            self._pruned_at = self.app.clock()
        except StorageError as exc:
            log.error("retention pass stopped: %s", exc)
        finally:
            self._pruning = False

    # --- alerts --------------------------------------------------------------------------

    async def take_over_leases(self) -> None:
        """Free the outbox leases of processes that died (a killed daemon, a killed
        `monitor poll`), so their alerts go out now rather than when the lease runs out.
        Only the daemon does this: it holds the database's daemon lock."""
        try:
            freed = await asyncio.to_thread(self.app.store.take_over_leases, self.app.clock())
        except StorageError as exc:
            log.error("cannot take over the leases of stopped processes: %s", exc)
            return
        for owner, count in freed.items():
            log.warning(
                "took over %d alert(s) leased by %s, which is no longer running", count, owner
            )
        if freed:
            for event in self.wake.values():
                event.set()

    def start_senders(self) -> None:
        """A sender task for every configured channel that has none (a removed channel's
        sender ends by itself; its queued alerts wait in the outbox)."""
        for channel in self.app.config.channels:
            if channel.name not in self.senders:
                self.wake[channel.name] = asyncio.Event()
                task = asyncio.create_task(self.sender(channel.name))
                self.senders[channel.name] = task
        orphaned = pipeline.orphaned_alerts(self.app)
        for name, count in orphaned.items():
            log.warning(
                "%d undelivered alert(s) for channel %s, which is no longer in config.toml: "
                "they are kept and sent if the channel comes back",
                count,
                name,
            )

    def _configured(self, name: str) -> bool:
        return name in self.app.snapshot.channels

    async def sender(self, name: str) -> None:
        wake = self.wake[name]

        def keep_going() -> bool:
            return not self.stopping.is_set() and self._configured(name)

        try:
            while keep_going():
                wake.clear()
                try:
                    report = await pipeline.drain_channel(self.app, name, keep_going=keep_going)
                    if report.sent or report.failed:
                        log.info(
                            "channel %s: %d delivered, %d failed", name, report.sent, report.failed
                        )
                except StorageError as exc:  # the database is away: say so once
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
        """Re-read config.toml (SIGHUP or a saved file); systemd hears RELOADING, READY."""
        async with self._reloading:
            sd_notify(reloading_message())
            try:
                await self._reload()
            finally:
                sd_notify("READY=1")

    async def _reload(self) -> None:
        previous = self.app.config
        self.remember_config()
        try:
            config = await asyncio.to_thread(self.reload_config)
        except ConfigError as exc:
            log.error("config not reloaded, the old one stays in force: %s", exc)
            self.app.observer.reload(one_line(str(exc))[:500])
            return
        if config.settings.database != previous.settings.database:
            log.warning("the database URL changed: restart the monitor to use the new one")
        # the new channels' secrets are hidden from the logs before anything can log them
        redact_secrets_of(secrets_of(config, previous))
        try:
            await asyncio.to_thread(self.app.swap, config)
        except StorageError as exc:
            log.error("config not reloaded, the old one stays in force: %s", exc)
            self.app.observer.reload(one_line(str(exc))[:500])
            return
        self.app.observer.reload()
        if config.settings.http != previous.settings.http:
            log.warning("[monitor] http changed: restart the monitor to move the server")
        if fetch_settings(config) != fetch_settings(previous):
            await self.replace_fetcher()
        self.reschedule(previous)
        self.start_senders()
        self._background(self.tick())
        log.info("config reloaded: %d feeds, %d rules", len(config.feeds), len(config.rules))

    async def replace_fetcher(self) -> None:
        """New HTTP settings: new polls use a new client; the old one is closed as soon as
        no poll holds it any more."""
        fetcher = self.app.fetcher()
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
        address = self.app.config.settings.http
        if address is not None:
            self.web = WebServer(self.app, address)
            await self.web.start()  # before anything else: a port in use stops us here
            log.info("status page, /healthz and /metrics on http://%s/", address)
        self.fetcher = self.app.fetcher()
        await self.fetcher.open()
        try:
            await asyncio.to_thread(self.spread_start)
            self.remember_config()
            await self.beat(force=True)
            self.scheduler.add_job(
                self.tick,
                IntervalTrigger(seconds=TICK.total_seconds()),
                id="tick",
                next_run_time=self.app.clock(),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(TICK.total_seconds() * 5),
            )
            self.scheduler.add_job(
                self.take_over_leases,
                IntervalTrigger(seconds=TAKE_OVER_EVERY.total_seconds()),
                id="take-over",
                coalesce=True,
                max_instances=1,
            )
            await self.take_over_leases()  # before the senders start: nothing waits on a lease
            self.scheduler.start()
            self.start_senders()
            sd_notify("READY=1")
            log.info("monitor running; stop with SIGTERM or Ctrl-C")
            await self.stopping.wait()
            sd_notify("STOPPING=1")
            log.info("stopping: abandoning running polls, finishing alerts being sent")
            self.scheduler.shutdown(wait=False)
            polls = [task for task, _ in self.running.values()]
            for task in polls:
                task.cancel()
            for task in list(self.background):
                task.cancel()
            await asyncio.gather(*polls, *self.background, return_exceptions=True)
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
            if self.web is not None:
                await self.web.stop()
        log.info("stopped")
        return self.exit_code


def daemon_app(config: Config, store: Store) -> App:
    """The App of a long-running process (`run`, a cluster scheduler): with `[monitor] http`,
    its metrics, seeded with every feed's last success and every rule."""
    app = make_app(config, store=store)
    if config.settings.http is not None:
        app.observer = metrics = Metrics()
        states = store.feed_states()
        metrics.seed(
            {name: s.last_success_at for name, s in states.items()},
            (r.name for r in config.rules),
        )
    return app


def run_daemon(config: Config, reload: Callable[[], Config]) -> int:
    store = Store.open(config.settings.database)
    try:
        with store.only_instance() as lock:
            app = daemon_app(config, store)
            freeze_startup_heap()
            try:
                return asyncio.run(Daemon(app, reload, lock).run())
            finally:
                app.close()
    finally:
        store.close()
