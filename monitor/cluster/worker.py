"""`monitor worker`: a Celery worker whose task polls one feed with `pipeline.poll_feed`.

Celery's `threads` pool runs the tasks; each task hands its poll to one asyncio event loop
(a thread of its own) that holds the worker's `App`: one HTTP client (aiohttp, with its
per-host limits), group commit of the store, and the `WorkerPool` processes that parse and
match with a deadline, exactly as in the single-process daemon. So a worker fetches up to
`--concurrency` feeds at once (default `[monitor] concurrency`) while parsing uses every core;
a prefork pool would give each task a process of its own, and a 200 ms fetch would hold it.

A task:
1. loads the newest config generation from the database when the task carries a newer one
   than the worker runs (`[cluster]` config changes reach every worker this way);
2. claims its dispatch record (monitor.store.dispatch): a task delivered twice, or stale,
   stops here;
3. polls the feed with `forced=False` (the feed row still says whether it is due: a feed
   polled by a worker that died before marking its task done is not polled again);
4. marks the task done.
The outbox rows are written in the poll's transaction as in one process; the scheduler's
senders deliver them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from monitor import pipeline
from monitor.app import WORKER_DEADLINE, App, make_app
from monitor.config import load_config_text
from monitor.errors import ConfigError, StorageError
from monitor.feeds.fetch import Fetcher
from monitor.store import dispatch
from monitor.store.repo import Store
from monitor.types import Config

log = logging.getLogger("monitor.cluster.worker")

DB_THREADS = 12  # threads for the database calls of a worker's polls


def claim_lease(config: Config) -> timedelta:
    """How long a claim holds while its worker lives: longer than any poll may take."""
    s = config.settings
    return s.timeout * 2 + WORKER_DEADLINE * 2 + s.full_text_wait + timedelta(minutes=1)


class WorkerRuntime:
    """The event loop, App and HTTP client of one worker process; `poll` is thread-safe."""

    def __init__(self, config: Config, store: Store, concurrency: int | None = None) -> None:
        self.store = store
        # polls at once (`monitor worker --concurrency`); the fetcher's own limits also hold
        self.concurrency = concurrency or config.settings.concurrency
        self.app: App = make_app(config, store=store)
        self.generation = 0  # the config generation (database id) this worker runs
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="poll-loop")
        self._thread.daemon = True
        self._fetcher: Fetcher | None = None
        self._retired: list[Fetcher] = []
        self._config_lock: asyncio.Lock | None = None
        self._finish_lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._done: list[dispatch.Task] = []  # polled, not yet marked done

    def start(self) -> None:
        self.store.hold_owner_lock()  # claims name this process: its death frees them
        self._thread.start()
        self._call(self._open())

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    async def _open(self) -> None:
        # the polls' database calls run in these threads (asyncio.to_thread): more than the
        # default (cores + 4), fewer than the engine's pool of 15 connections
        self.loop.set_default_executor(
            ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="db")
        )
        self._config_lock = asyncio.Lock()
        self._finish_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._fetcher = self.app.fetcher()
        await self._fetcher.open()

    def poll(self, feed: str, token: int, generation: int) -> str:
        """One feed's task, from any thread: what happened, as a word."""
        return self.poll_batch([[feed, token]], generation)[0]

    def poll_batch(self, polls: list[list[Any]], generation: int) -> list[str]:
        """The task body (a Celery pool thread): the task's feeds polled concurrently."""
        tasks = [dispatch.Task(str(feed), int(token), generation) for feed, token in polls]
        return list(self._call(self._poll_batch(tasks)))

    async def _poll_batch(self, tasks: list[dispatch.Task]) -> list[str]:
        return list(await asyncio.gather(*(self._poll(t) for t in tasks)))

    async def _poll(self, task: dispatch.Task) -> str:
        try:
            await self._follow(task.generation)
            now = self.app.clock()
            lease = claim_lease(self.app.config)
            state = await asyncio.to_thread(dispatch.claim, self.store, task, now, lease)
            if state is None:
                log.info("feed %s: task %d already taken or done", task.feed, task.token)
                return "skipped"
            feed = self.app.snapshot.feeds.get(task.feed)
            if feed is not None and feed.enabled:
                assert self._fetcher is not None and self._slots is not None
                async with self._slots:  # claimed first: a death here frees the claim
                    outcome = await pipeline.poll_feed(
                        self.app, feed, self._fetcher, forced=False, state=state
                    )
                log.info(
                    "feed %s: %s, %d new items, %d matches, %d alerts queued",
                    outcome.feed,
                    outcome.status,
                    outcome.new_items,
                    outcome.matches,
                    outcome.alerts,
                    extra={"event": "poll", "feed": outcome.feed},
                )
                result = str(outcome.status)
            else:
                result = "unknown feed"
            await self._finish(task)
            return result
        except StorageError as exc:
            # the task is acknowledged; its dispatch record makes the scheduler send it again
            log.error("feed %s: database: %s", task.feed, exc)
            return "error"

    async def _finish(self, task: dispatch.Task) -> None:
        """Mark the task done: tasks ending while a marking runs are marked together after
        it, in one statement (a group commit, as `App.record` does for polls)."""
        assert self._finish_lock is not None
        self._done.append(task)
        async with self._finish_lock:
            if task in self._done:
                batch, self._done = self._done, []
                await asyncio.to_thread(dispatch.finish, self.store, batch, self.app.clock())

    async def _follow(self, generation: int) -> None:
        """Run the newest config generation if the task carries a newer one than ours."""
        if generation <= self.generation:
            return
        assert self._config_lock is not None
        async with self._config_lock:
            if generation <= self.generation:
                return
            newest = await asyncio.to_thread(dispatch.newest_config, self.store)
            if newest is None:
                return
            number, text = newest
            previous = self.app.config
            try:
                config = load_config_text(previous.path, text, os.environ)
            except ConfigError as exc:  # e.g. a ${VAR} this host does not set
                log.error("config generation %d not loaded here, keeping ours: %s", number, exc)
                self.generation = number
                return
            await asyncio.to_thread(self.app.swap, config)
            self.generation = number
            if _fetch_settings(config) != _fetch_settings(previous):
                fetcher = self.app.fetcher()
                await fetcher.open()
                if self._fetcher is not None:
                    self._retired.append(self._fetcher)  # running polls still hold it
                self._fetcher = fetcher
            log.info(
                "config generation %d loaded: %d feeds, %d rules",
                number,
                len(config.feeds),
                len(config.rules),
            )

    def close(self) -> None:
        async def closing() -> None:
            for fetcher in (self._fetcher, *self._retired):
                if fetcher is not None:
                    await fetcher.close()

        if self._thread.is_alive():
            self._call(closing())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
        self.app.close()


def _fetch_settings(config: Config) -> tuple[object, ...]:
    s = config.settings
    return (s.timeout, s.max_bytes, s.concurrency, s.user_agent, s.per_host)


def newest_or(store: Store, config: Config) -> tuple[int, Config]:
    """(generation, config) of the newest published generation, else (0, `config`)."""
    newest = dispatch.newest_config(store)
    if newest is None:
        return 0, config
    number, text = newest
    try:
        loaded = load_config_text(config.path, text, os.environ)
        log.info(
            "config generation %d loaded: %d feeds, %d rules",
            number,
            len(loaded.feeds),
            len(loaded.rules),
        )
        return number, loaded
    except ConfigError as exc:
        log.error("config generation %d not loaded here, using %s: %s", number, config.path, exc)
        return 0, config


def run_worker(config: Config, concurrency: int | None = None) -> int:
    """Start a Celery worker (in this process) until SIGTERM/SIGINT; returns its exit code."""
    from monitor.cluster.broker import BATCH, make_celery, register_poll

    cluster = config.cluster  # this host's broker and queue, whatever the generation says
    assert cluster is not None
    store = Store.open(config.settings.database)
    # start on the cluster's newest generation: this host's config.toml may be older (its
    # feeds would otherwise be written over the scheduler's until the first task came)
    generation, config = newest_or(store, config)
    runtime = WorkerRuntime(config, store, concurrency)
    runtime.generation = generation
    try:
        runtime.start()
        celery = make_celery(cluster)
        register_poll(celery, runtime.poll_batch)
        # a thread per task in progress: enough tasks of BATCH feeds to keep the slots busy
        threads = -(-runtime.concurrency // BATCH)
        name = f"monitor-{os.getpid()}@{socket.gethostname()}"
        argv = [
            "worker",
            "--pool=threads",
            f"--concurrency={threads}",
            f"--queues={cluster.queue}",
            f"--hostname={name}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        log.info(
            "worker %s: %d polls at once (%d tasks of up to %d feeds), queue %s",
            name,
            runtime.concurrency,
            threads,
            BATCH,
            cluster.queue,
        )
        for chatty in ("celery.worker.strategy", "celery.app.trace"):  # a line per task
            logging.getLogger(chatty).setLevel(logging.WARNING)
        try:
            celery.worker_main(argv=argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
    finally:
        runtime.close()
        store.close()
