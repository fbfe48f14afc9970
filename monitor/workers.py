"""The CPU-bound stages (parsing, matching) in worker processes, with a hard deadline.

feedparser and the matcher are pure Python and CPU-bound: in the event loop they would stall
every other feed, in a thread they hold the GIL and cannot be stopped (some documents make
feedparser quadratic: 20,000 categories in one item take seconds). `WorkerPool` runs them in a
small process pool instead, so they use every core, and a task that overruns its deadline is
ended by restarting the pool: that feed gets a FeedError (and is retried on its next poll)
while the monitor goes on. A worker that dies (out of memory, a crash in C code) is handled
the same way.

Workers never outlive the monitor: each watches the monitor's process (a pidfd on Linux) and
exits when it is gone, even after `kill -9`. Their forkserver and resource tracker then see
their last client go and exit as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import pickle
import select
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, Self

from monitor.errors import FeedError
from monitor.textutil import one_line
from monitor.types import Item, Match, ParsedFeed, RuleConfig

log = logging.getLogger(__name__)

# What the workers run, by name: the main process never imports them (see worker_tasks).
TASKS = "monitor.worker_tasks"
PARSE = f"{TASKS}:parse"
MATCH = f"{TASKS}:match_items"
PARSE_AND_MATCH = f"{TASKS}:parse_and_match"
EXTRACT = f"{TASKS}:extract_article"
_KEEP = 2  # rule-set files kept: the current generation's and the one before


def _watch_parent(pid: int) -> None:
    """Pool initializer: end this worker as soon as the monitor process `pid` is gone.

    Needed because a pool worker holds the write ends of its own queues and of the
    forkserver's 'alive' pipe: after `kill -9` of the monitor nothing would ever tell it.
    """
    thread = threading.Thread(target=_exit_when_gone, args=(pid,), name="watch-parent")
    thread.daemon = True
    thread.start()


def _exit_when_gone(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): look every second
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
    select.select([fd], [], [])  # readable once the process has exited
    os._exit(1)


def _guarded(what: str, target: str, *args: Any) -> Any:
    """Run `target` ("module:function") in the worker; any failure of it becomes this
    feed's FeedError.

    feedparser and the standard library raise all kinds of errors on hostile documents
    (ValueError from a huge character reference, UnicodeDecodeError from a made-up encoding
    name, ...): each must fail one feed, never the pass.
    """
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)(*args)
    except FeedError:
        raise
    except Exception as exc:
        reason = one_line(str(exc))[:200] or type(exc).__name__
        raise FeedError(f"{what} failed: {type(exc).__name__}: {reason}") from None


class WorkerPool:
    """`await pool.parse(...)`, `await pool.match(...)`; use as `with WorkerPool() as pool`."""

    def __init__(self, workers: int | None = None, deadline: float = 60.0) -> None:
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.deadline = deadline
        self._executor: ProcessPoolExecutor | None = None
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._folder: str | None = None  # rule-set files for the workers
        self._rule_files: OrderedDict[str, str] = OrderedDict()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # forkserver: workers are not forked from a process that runs threads (aiohttp's
            # resolver, APScheduler, SQLite), which fork would copy in a broken state.
            context = multiprocessing.get_context("forkserver")
            # the forkserver imports the tasks' modules once; each worker starts with them
            context.set_forkserver_preload([TASKS])
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def parse(self, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
        """The parsed document (FeedError when it is not a feed or overruns the deadline)."""
        parsed: ParsedFeed = await self._run("parsing", PARSE, body, dict(headers), url)
        return parsed

    async def extract(self, body: bytes, headers: Mapping[str, str], url: str) -> str:
        """An article page's main text (FeedError when there is none or it overruns the
        deadline): full-text feeds."""
        text: str = await self._run("extracting the article", EXTRACT, body, dict(headers), url)
        return text

    async def match(
        self,
        matcher_id: str,
        rules: tuple[RuleConfig, ...],
        feed: str,
        items: Sequence[Item],
    ) -> list[tuple[Item, list[Match]]]:
        """Every item of `feed` with the rules it matches. `matcher_id` names the rule set
        (`Snapshot.matcher_id`); the rules are written for the workers once per id."""
        if not items:
            return []
        path = self._rules_file(matcher_id, rules)
        found: list[list[Match]] = await self._run(
            "matching", MATCH, matcher_id, path, feed, list(items)
        )
        return list(zip(items, found, strict=True))

    async def parse_and_match(
        self,
        body: bytes,
        headers: Mapping[str, str],
        url: str,
        matcher_id: str,
        rules: tuple[RuleConfig, ...],
        feed: str,
    ) -> tuple[ParsedFeed, list[tuple[Item, list[Match]]]]:
        """`parse`, then `match` over every item of the document, in one round trip: for a
        feed that has no stored item yet (nothing to leave out before matching)."""
        path = self._rules_file(matcher_id, rules)
        found: tuple[ParsedFeed, list[list[Match]]] = await self._run(
            "parsing",  # the errors users see are the parser's: "parsing failed: ..."
            PARSE_AND_MATCH,
            body,
            dict(headers),
            url,
            matcher_id,
            path,
            feed,
        )
        parsed, matches = found
        return parsed, list(zip(parsed.items, matches, strict=True))

    def _rules_file(self, matcher_id: str, rules: tuple[RuleConfig, ...]) -> str:
        """The file holding this rule set for the workers (written on first use)."""
        path = self._rule_files.get(matcher_id)
        if path is None:
            if self._folder is None:
                self._folder = tempfile.mkdtemp(prefix="monitor-rules-")  # mode 0700
            path = os.path.join(self._folder, f"{len(self._rule_files)}-{matcher_id}.pickle")
            with open(path, "wb") as handle:
                pickle.dump(rules, handle, protocol=pickle.HIGHEST_PROTOCOL)
            self._rule_files[matcher_id] = path
            while len(self._rule_files) > _KEEP + 1:  # a poll may still use the one before
                _, old = self._rule_files.popitem(last=False)
                with contextlib.suppress(OSError):
                    os.unlink(old)
        else:
            self._rule_files.move_to_end(matcher_id)
        return path

    def _semaphore(self) -> asyncio.Semaphore:
        """One slot per worker, so a task's deadline counts its run time, not its queue time."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.workers))
        return self._slots[1]

    async def _run(self, what: str, target: str, *args: Any) -> Any:
        async with self._semaphore():
            for attempt in (1, 2):
                executor = self._pool()
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(executor, _guarded, what, target, *args)
                try:
                    return await asyncio.wait_for(future, self.deadline)
                except TimeoutError:
                    self._restart(executor, f"{what} overran its deadline")
                    message = f"{what} took longer than {self.deadline:.0f} s and was stopped"
                    raise FeedError(message) from None
                except BrokenProcessPool:
                    if self._executor is not executor and attempt == 1:
                        continue  # another task's overrun restarted the pool: try once more
                    self._restart(executor, "a worker process died")
                    raise FeedError(f"the worker process died while {what} this feed") from None
        raise AssertionError("unreachable")

    def _restart(self, executor: ProcessPoolExecutor, why: str) -> None:
        """Kill the pool's processes (the only way to stop a running parse) and start afresh."""
        if self._executor is not executor:
            return  # another task restarted it already
        log.warning("restarting the worker processes: %s", why)
        self._executor = None
        self._kill(executor)

    @staticmethod
    def _kill(executor: ProcessPoolExecutor, wait: bool = False) -> None:
        # No cancel_futures: a task submitted meanwhile then fails with BrokenProcessPool,
        # which `_run` retries, instead of a CancelledError that would look like our own.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=wait)

    def close(self) -> None:
        """Stop the workers now, even mid-parse: an unfinished feed is polled again later.

        Waits (briefly: the workers are dead) for the pool's manager thread to finish, else
        Python 3.11's exit hook may write to the wake-up pipe that thread is closing and print
        a traceback (CPython gh-125451, fixed in 3.12.8 and 3.13.1).
        """
        if self._executor is not None:
            self._kill(self._executor, wait=True)
            self._executor = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
            self._rule_files.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
