"""`monitor run --role scheduler`: one active scheduler per cluster, others on standby.

Election: the active scheduler holds a PostgreSQL session advisory lock (SCHEDULER_LOCK,
two-key, schema-scoped). A standby tries to take it every STANDBY_RETRY; a scheduler that
dies (killed, host down) loses its session and the lock at once, so a standby takes over
within seconds. A hung one (SIGSTOP, a partition) stops using its lock session, which the
server ends after LOCK_SESSION_IDLE (idle_session_timeout, TCP keepalives): the standby takes
over; when the old one wakes up, its lock check finds the lock held by another and it exits 1.

The active scheduler is the single-process daemon (monitor.daemon.Daemon) with one thing
changed: its tick does not poll the due feeds, it sends them to the workers as Celery tasks
(`dispatch`), with the dispatch record in the database (monitor.store.dispatch). Everything
else is the daemon's: heartbeat, retention, config watching and SIGHUP, lease takeover, and
the senders, one per channel, each guarded cluster-wide by an advisory lock of its channel.
A start (or a takeover) keeps the schedule the database holds: the cluster did not restart.
Each config it loads is published as a new generation; tasks carry its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from monitor import pipeline
from monitor.app import App
from monitor.cluster.broker import BATCH, POLL_TASK, make_celery
from monitor.daemon import DELIVERY_EVERY, Daemon, daemon_app
from monitor.errors import StorageError
from monitor.store import dispatch
from monitor.store.repo import CHANNEL_LOCK, SCHEDULER_LOCK, PostgresLock, Store
from monitor.textutil import one_line
from monitor.types import Config

log = logging.getLogger("monitor.cluster.scheduler")

STANDBY_RETRY = 2.0  # seconds between a standby's attempts at the scheduler lock


class Scheduler(Daemon):
    """The daemon, dispatching instead of polling (see the module docstring)."""

    def __init__(self, app: App, reload: Callable[[], Config], lock: PostgresLock) -> None:
        super().__init__(app, reload, lock)
        cluster = app.config.cluster
        assert cluster is not None
        self.cluster = cluster
        self.celery = make_celery(cluster)
        self.generation = 0
        self._published: Config | None = None
        self.sent = 0  # tasks sent since start
        self._last_done: datetime | None = None

    async def check_lock(self) -> None:
        """Stop (exit 1) if another scheduler took the lock while this one was silent."""
        try:
            held = await asyncio.to_thread(self.lock.check)
        except StorageError as exc:
            log.error("cannot check the scheduler lock: %s", exc)
            return
        if not held:
            log.error(
                "another scheduler took over while this one was cut off from the database "
                "(or hung): stepping down"
            )
            self.exit_code = 1
            self.stopping.set()

    def spread_start(self) -> None:
        """Keep the schedule the database holds (a takeover is not a restart)."""

    async def tick(self) -> None:
        if self._ticking or self.stopping.is_set():
            return
        self._ticking = True
        try:
            await self.check_lock()  # a deposed scheduler must not dispatch
            if self.stopping.is_set():
                return
            try:
                await self.publish()
                await self.dispatch_due()
                await self.wake_senders()
                self.app.observer.tick()
            except StorageError as exc:
                log.error("cannot dispatch the due feeds: %s", exc)
                self.app.observer.tick(one_line(str(exc))[:300])
            await self.after_tick()
        finally:
            self._ticking = False

    async def publish(self) -> None:
        """Publish the config in force as a generation, once per loaded config."""
        config = self.app.config
        if self._published is config:
            return
        text = await asyncio.to_thread(config.path.read_text, encoding="utf-8-sig")
        self.generation = await asyncio.to_thread(
            dispatch.publish_config, self.app.store, text, self.app.clock()
        )
        self._published = config
        log.info("config generation %d published", self.generation)

    async def wake_senders(self) -> None:
        """Workers queue the alerts: when a task finished since the last tick, the senders
        look at their outbox now rather than at their next retry pass."""
        done = await asyncio.to_thread(dispatch.last_done, self.app.store)
        if done != self._last_done:
            self._last_done = done
            for event in self.wake.values():
                event.set()

    async def dispatch_due(self) -> None:
        due = await asyncio.to_thread(pipeline.due_feeds, self.app)
        if not due:
            return
        tasks = await asyncio.to_thread(
            dispatch.dispatch,
            self.app.store,
            [f.name for f in due],
            self.generation,
            self.app.clock(),
            self.cluster.redispatch_after,
        )
        if tasks:
            await asyncio.to_thread(self.send, tasks)

    def send(self, tasks: list[dispatch.Task]) -> None:
        """Publish the tasks; a broker that is down loses none of them: their dispatch
        records are sent again after `redispatch_after`."""
        try:
            for start in range(0, len(tasks), BATCH):
                batch = tasks[start : start + BATCH]
                self.celery.send_task(
                    POLL_TASK,
                    args=[[[t.feed, t.token] for t in batch], batch[0].generation],
                    queue=self.cluster.queue,
                )
                self.sent += len(batch)
        except Exception as exc:  # kombu's OperationalError and friends: broker unreachable
            log.error(
                "broker unreachable, %d poll task(s) wait to be sent again: %s",
                len(tasks),
                one_line(str(exc))[:300],
            )
            return
        log.info("%d poll task(s) sent", len(tasks))

    async def sender(self, name: str) -> None:
        """The daemon's sender, once this process holds the channel's cluster-wide lock."""
        lock = PostgresLock(self.app.store.engine, CHANNEL_LOCK, name=name)
        try:
            while not self.stopping.is_set():
                try:
                    if await asyncio.to_thread(lock.take):
                        break
                except Exception as exc:
                    log.error("channel %s: cannot take its lock: %s", name, one_line(str(exc)))
                log.info("channel %s: another scheduler's sender holds it: waiting", name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), DELIVERY_EVERY.total_seconds())
            else:
                self.senders.pop(name, None)
                return
            await super().sender(name)
        finally:
            await asyncio.to_thread(lock.release)


def wait_for_election(lock: PostgresLock, stop: threading.Event) -> bool:
    """Take the scheduler lock, waiting as a standby; False if told to stop first."""
    said = False
    while not stop.is_set():
        try:
            if lock.take():
                return True
        except Exception as exc:  # the database is away: keep trying
            log.error("cannot reach the database for the scheduler lock: %s", one_line(str(exc)))
        if not said:
            log.info("another scheduler is active: standing by")
            said = True
        stop.wait(STANDBY_RETRY)
    return False


def run_scheduler(config: Config, reload: Callable[[], Config]) -> int:
    store = Store.open(config.settings.database)
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        lock = PostgresLock(store.engine, SCHEDULER_LOCK, watched=True)
        started = time.monotonic()
        if not wait_for_election(lock, stop):
            log.info("stopped while standing by")
            return 0
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("elected active scheduler after %.1f s", time.monotonic() - started)
        try:
            app = daemon_app(config, store)
            try:
                return asyncio.run(Scheduler(app, reload, lock).run())
            finally:
                app.close()
        finally:
            lock.release()
    finally:
        store.close()
