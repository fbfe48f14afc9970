"""The factory: everything one monitor needs, wired once.

    app = make_app(config, store=Store.open(url), clock=utcnow, executor=WorkerPool())

`App` holds the store, the clock, the worker processes and the current `Snapshot` (one config
generation: rule map, routing, channels, matcher id). A reload calls `app.swap(config)`, which
syncs the feed rows and replaces the snapshot atomically; code that runs a poll or a delivery
reads `app.snapshot` once and keeps it. The CLI, the daemon and (later) the HTTP server and
cluster workers all take an `App`; the pipeline's functions take it as their first argument.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from monitor.clock import Clock, utcnow
from monitor.feeds.fetch import Fetcher
from monitor.metrics import Observer
from monitor.snapshot import Snapshot
from monitor.store.repo import Store
from monitor.types import Config
from monitor.workers import WorkerPool

# A feed whose parsing (or matching) takes longer is abandoned: its worker process is killed.
WORKER_DEADLINE = timedelta(seconds=60)


class App:
    """One configured monitor. Construction does no I/O; `make_app` also syncs the feeds."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        clock: Clock = utcnow,
        executor: WorkerPool,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.executor = executor
        self.rng = rng or random.Random()
        # told about every poll, delivery, tick and reload (monitor.metrics; `monitor run`
        # with [monitor] http puts a Metrics here)
        self.observer = Observer()
        self._snapshot = Snapshot.of(config, 1)
        self._write_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def config(self) -> Config:
        return self._snapshot.config

    def swap(self, config: Config) -> Snapshot:
        """Make `config` (already validated) the current generation; returns the new one.
        Running polls and deliveries keep the snapshot they started with."""
        self.store.sync_feeds(config.feeds)
        self._snapshot = Snapshot.of(config, self._snapshot.generation + 1)
        return self._snapshot

    def fetcher(self) -> Fetcher:
        """An HTTP client with the current settings (open it with `async with`)."""
        s = self.config.settings
        return Fetcher(
            timeout=s.timeout.total_seconds(),
            max_bytes=s.max_bytes,
            concurrency=s.concurrency,
            user_agent=s.user_agent,
            per_host=s.per_host,
        )

    def write_lock(self) -> asyncio.Lock:
        """One writer at a time within this process (SQLite has a single write lock)."""
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_lock[0] is not loop:
            self._write_lock = (loop, asyncio.Lock())
        return self._write_lock[1]

    def close(self) -> None:
        self.executor.close()


def make_app(
    config: Config,
    *,
    store: Store,
    clock: Clock = utcnow,
    executor: WorkerPool | None = None,
) -> App:
    """Wire a monitor and make sure the database has a row for every configured feed."""
    app = App(
        config,
        store=store,
        clock=clock,
        executor=executor or WorkerPool(deadline=WORKER_DEADLINE.total_seconds()),
    )
    store.sync_feeds(config.feeds)
    return app
