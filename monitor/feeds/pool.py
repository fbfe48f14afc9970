"""Parsing in worker processes, with a hard deadline per document.

feedparser is pure Python and CPU-bound: in the event loop it would stall every other feed,
and in a thread it cannot be stopped (some documents make it quadratic: 20,000 categories in
one item take seconds). `ParsePool` runs `parse_feed` in a small process pool instead, so
parsing uses every core, and a parse that overruns its deadline is ended by restarting the
pool: that feed gets a FeedError (and is retried on its next poll) while the monitor goes on.
A worker that dies (out of memory, a crash in C code) is handled the same way.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Self

from monitor.errors import FeedError
from monitor.feeds.parse import parse_feed
from monitor.types import ParsedFeed

log = logging.getLogger(__name__)


class ParsePool:
    """`await pool.parse(body, headers, url)`; use as `with ParsePool() as pool`."""

    def __init__(self, workers: int | None = None, deadline: float = 60.0) -> None:
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.deadline = deadline
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # forkserver: workers are not forked from a process that runs threads (aiohttp's
            # resolver, APScheduler, SQLite), which fork would copy in a broken state.
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._executor

    async def parse(self, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
        executor = self._pool()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, parse_feed, body, dict(headers), url)
        try:
            return await asyncio.wait_for(future, self.deadline)
        except TimeoutError:
            self._restart(executor, "a parse overran its deadline")
            raise FeedError(
                f"parsing took longer than {self.deadline:.0f} s and was stopped"
            ) from None
        except BrokenProcessPool:
            self._restart(executor, "a parser process died")
            raise FeedError("the parser process died on this document") from None

    def _restart(self, executor: ProcessPoolExecutor, why: str) -> None:
        """Kill the pool's processes (the only way to stop a running parse) and start afresh."""
        if self._executor is not executor:
            return  # another task restarted it already
        log.warning("restarting the parser processes: %s", why)
        self._executor = None
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
