"""One poll of many feeds through the real pipeline, against the naive loop, same run.

    .venv/bin/python benchmarks/bench_poll.py [--feeds 500] [--items 20] [--latency 50]
        [--concurrency 20] [--per-host N] [--baseline-feeds 100] [--profile] [--strict]

A loopback HTTP server (tests.feedserver.FeedServer, in a child process so that it does not
compete with the monitor for the GIL) serves `--feeds` RSS 2.0 documents of `--items` items
each (news-like German/English text, 1-4 KB per item, guids unique across feeds), with an
ETag (answered 304 when it matches) and `--latency` milliseconds before every answer, 304s
included.

Measured, in this order:
1. baseline, the naive loop: sequential `urllib.request` GET + `feedparser.parse(bytes)` with
   feedparser's defaults, over the first `--baseline-feeds` feeds only, extrapolated linearly
   to all feeds (stated in the output);
2. `monitor.pipeline.Monitor.poll_all` with a real Config (SQLite file in a temporary
   directory, the ten rules of `benchmarks.poll_rules`, no channels, so nothing is delivered)
   and one `Fetcher` kept for both passes, as the daemon does:
   first pass (every item new), then second pass (every feed answers 304).

Printed per run: wall time, feeds/s, items/s, CPU time (this process, all threads, plus any
worker processes it starts, e.g. for parsing; never the server's), the worst event-loop lag
seen by a 10 ms probe, and the ratios; then the CPU cost per item of each stage measured
standalone, to show where the first pass's time goes.

Targets (PASS/FAIL is printed; the exit status is 0 unless `--strict`):
- first pass at least 5x faster than the naive loop (wall);
- second pass (all 304) within 1.5x of the network floor, feeds x latency / concurrency.

All feeds are on one host (127.0.0.1), so the fetcher's per-host limit (default 4 in
production) would be the only limit. `--per-host` defaults to `--concurrency` to model the
real case of feeds on many hosts; pass `--per-host 4` to see the single-host case.

`--profile` adds two profiles. (1) A third run (fresh database, first pass of the first
`--profile-feeds` feeds) under cProfile, with worker-thread calls run inline so one profiler
sees the main process's work: parsing and matching run in the worker processes and are not
seen there. (2) That worker-side work, parse_feed and match_items on the same documents, run
in this process under its own profiler. Each prints the top functions of monitor/ code by
cumulative time and the named stages; a stage that no longer exists stops the script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import pickle
import platform
import pstats
import resource
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import importlib
import inspect

import feedparser

from benchmarks import poll_rules, rss_feed
from monitor.feeds.fetch import Fetcher
from monitor.feeds.parse import parse_feed
from monitor.pipeline import FeedOutcome, Monitor
from monitor.rules.match import Matcher
from monitor.rules.text import tokenize
from monitor.store.repo import Store
from monitor.types import Config, FeedConfig, Settings
from monitor.workers import match_items

REPO = Path(__file__).resolve().parent.parent
FIRST_PASS_TARGET = 5.0  # x faster than the naive loop
NOT_MODIFIED_TARGET = 1.5  # x the network floor at most
# (module, qualified name, label) summarised by --profile; resolved, and so checked, at start.
MAIN_STAGES = [
    ("monitor.store.repo", "Store.feed_state", "Store.feed_state (read the feed's row)"),
    ("monitor.feeds.fetch", "Fetcher.fetch", "Fetcher.fetch (coroutine)"),
    ("monitor.workers", "WorkerPool.parse", "WorkerPool.parse (coroutine: waits on a worker)"),
    ("monitor.workers", "WorkerPool.match", "WorkerPool.match (coroutine: waits on a worker)"),
    ("monitor.store.repo", "Store.seen_keys", "Store.seen_keys"),
    ("monitor.store.repo", "Tx.insert_items", "Tx.insert_items"),
    ("monitor.store.repo", "Tx.insert_match", "Tx.insert_match"),
    ("monitor.store.repo", "Store.transaction", "Store.transaction (begin, flush, commit)"),
]
WORKER_STAGES = [
    ("monitor.feeds.parse", "parse_feed", "parse_feed"),
    ("monitor.feeds.parse", "_feedparser", "  of which feedparser.parse"),
    ("monitor.feeds.parse", "html_to_text", "  of which html_to_text"),
    ("monitor.workers", "match_items", "match_items"),
    ("monitor.rules.match", "Matcher.match", "  Matcher.match"),
    ("monitor.rules.match", "_Field.__init__", "    of which _Field (tokenise + index)"),
    ("monitor.rules.match", "_Field._stem_index", "    of which _Field._stem_index"),
    ("monitor.rules.match", "CompiledRule._result", "    of which rule evaluation"),
    ("monitor.rules.match", "snippet", "      of which snippet"),
]


def resolve(stages: list[tuple[str, str, str]]) -> list[tuple[str, int, str, str]]:
    """(file, first line, function name, label) of each stage, as cProfile keys them."""
    resolved = []
    for module_name, qualname, label in stages:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise SystemExit(f"--profile: {module_name}.{qualname} does not exist any more")
        code = inspect.unwrap(obj).__code__
        resolved.append((code.co_filename, code.co_firstlineno, code.co_name, label))
    return resolved


# --- the server (child process) ------------------------------------------------------------


def serve(conn: Connection, feeds: int, items: int, latency: float, seed: int) -> None:
    """Build the feeds, start the server, report (port, bytes), run until told to stop."""
    from tests.feedserver import FeedServer, Static

    now = datetime.now(UTC)
    server = FeedServer()
    total = 0
    for i in range(feeds):
        body = rss_feed(i, items, seed, now=now)
        total += len(body)
        server.routes[f"/feeds/{i}.xml"] = Static(body, etag=f'"bench-{i}-v1"', delay=latency)
    server.start()
    conn.send((server.port, total))
    with contextlib.suppress(EOFError):  # EOF: the parent is gone
        conn.recv()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    server.stop()
    with contextlib.suppress(OSError):
        conn.send((len(server.requests), usage.ru_utime + usage.ru_stime))


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    feeds: int
    items: int
    wall: float
    cpu: float
    lag_max: float = 0.0  # seconds the event loop was late, worst probe
    statuses: str = ""

    def line(self) -> str:
        fps = self.feeds / self.wall
        ips = self.items / self.wall
        lag = f"{1000 * self.lag_max:8.0f}" if self.lag_max else f"{'-':>8}"
        return (
            f"{self.name:<34} {self.wall:8.2f} {fps:9.1f} {ips:9.0f} {self.cpu:7.2f}"
            f" {100 * self.cpu / self.wall:5.0f}% {lag}"
        )


HEADER = (
    f"{'run':<34} {'wall s':>8} {'feeds/s':>9} {'items/s':>9} {'CPU s':>7} {'CPU%':>6}"
    f" {'lag ms':>8}"
)


def naive_baseline(urls: Sequence[str]) -> tuple[float, float, int]:
    """Sequential urllib + feedparser defaults: wall seconds, CPU seconds, items parsed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    items = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for url in urls:
        with opener.open(url, timeout=30) as resp:
            data = resp.read()
        items += len(feedparser.parse(data).entries)
    return time.perf_counter() - wall0, time.process_time() - cpu0, items


def make_config(tmp: Path, port: int, feeds: int, concurrency: int) -> Config:
    return Config(
        path=tmp / "config.toml",
        settings=Settings(
            database=f"sqlite:///{tmp / 'bench.db'}",
            interval=timedelta(minutes=15),
            timeout=timedelta(seconds=60),
            concurrency=concurrency,
        ),
        channels=(),
        feeds=tuple(
            FeedConfig(
                f"feed-{i:04d}", f"http://127.0.0.1:{port}/feeds/{i}.xml", timedelta(minutes=15)
            )
            for i in range(feeds)
        ),
        rules=poll_rules(),
    )


async def _lag_probe(stop: asyncio.Event, worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], loop.time() - start - 0.01)


def cpu_seconds(exclude: int) -> float:
    """CPU time of this process and of its descendants (parse workers, if any), without the
    process `exclude` (the feed server) and its own descendants. Linux /proc; elsewhere only
    this process."""
    total = time.process_time()
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return total
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    me = os.getpid()
    for pid in times:
        p = pid
        while p in parents and p not in (me, exclude, 0, 1):
            p = parents[p]
        if p == me and pid != me:
            total += times[pid]
    return total


async def _passes(
    monitor: Monitor, fetcher: Fetcher, names: Sequence[str], server_pid: int
) -> list[tuple[Run, list[FeedOutcome]]]:
    results = []
    async with fetcher:
        for name in names:
            stop, worst = asyncio.Event(), [0.0]
            probe = asyncio.create_task(_lag_probe(stop, worst))
            wall0, cpu0 = time.perf_counter(), cpu_seconds(server_pid)
            outcomes = await monitor.poll_all(fetcher)
            wall, cpu = time.perf_counter() - wall0, cpu_seconds(server_pid) - cpu0
            stop.set()
            await probe
            statuses = Counter(
                "304" if o.status == "unchanged" and o.items == 0 else o.status for o in outcomes
            )
            run = Run(
                name,
                len(outcomes),
                sum(o.new_items for o in outcomes),
                wall,
                cpu,
                worst[0],
                ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
            )
            results.append((run, outcomes))
    return results


def run_monitor(
    tmp: Path, port: int, args: argparse.Namespace, names: Sequence[str]
) -> list[tuple[Run, list[FeedOutcome]]]:
    config = make_config(tmp, port, args.feeds, args.concurrency)
    store = Store.open(config.settings.database)
    try:
        monitor = Monitor(config, store)
        fetcher = Fetcher(
            timeout=config.settings.timeout.total_seconds(),
            max_bytes=config.settings.max_bytes,
            concurrency=config.settings.concurrency,
            user_agent=config.settings.user_agent,
            per_host=args.per_host or args.concurrency,
        )
        try:
            return asyncio.run(_passes(monitor, fetcher, names, args.server_pid))
        finally:
            close = getattr(monitor, "close", None)  # a Monitor with worker processes has one
            if close is not None:
                close()
    finally:
        store.close()


def stage_costs(tmp: Path, args: argparse.Namespace, feeds: int = 50) -> dict[str, float]:
    """CPU milliseconds per item of each stage, run standalone (one thread, no network) on
    the documents of the first `feeds` feeds: where the first pass's CPU goes."""
    docs = [rss_feed(i, args.items, args.seed) for i in range(min(feeds, args.feeds))]
    headers = {"content-type": "application/rss+xml; charset=utf-8"}
    cost: dict[str, float] = {}

    def timed(label: str, per: int, fn: Any) -> Any:
        start = time.process_time()
        result = fn()
        cost[label] = 1000 * (time.process_time() - start) / max(1, per)
        return result

    n = len(docs) * args.items
    timed("feedparser.parse, defaults (naive)", n, lambda: [feedparser.parse(d) for d in docs])
    parsed = timed(
        "parse_feed", n, lambda: [parse_feed(d, headers, "http://127.0.0.1/") for d in docs]
    )
    items = [item for p in parsed for item in p.items]
    matcher = Matcher(poll_rules())
    matches = timed(
        "Matcher.match (10 rules)", n, lambda: [matcher.match(i.title, i.text) for i in items]
    )

    def tokenise_all() -> None:  # nothing kept: holding every token would bring in the GC
        for item in items:
            tokenize(item.title)
            tokenize(item.text)

    timed("  tokenise title + text", n, tokenise_all)
    store = Store.open(f"sqlite:///{tmp / 'stages.db'}")
    try:
        store.sync_feeds([FeedConfig("stages", "http://127.0.0.1/", timedelta(minutes=15))])
        now = datetime.now(UTC)

        def insert_items() -> list[int | None]:
            with store.transaction() as tx:
                inserted = tx.insert_items(tx.feed_id("stages"), items, now)
            return [inserted.get(item.key) for item in items]

        def insert_matches() -> None:
            with store.transaction() as tx:
                for item_id, found in zip(ids, matches, strict=True):
                    for match in found:
                        tx.insert_match(item_id or 0, match, now, alerted=False)

        ids = timed("Tx.insert_items (one transaction)", n, insert_items)
        timed(f"Tx.insert_match x {sum(map(len, matches)) / n:.1f} per item", n, insert_matches)
    finally:
        store.close()
    return cost


async def _inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def print_profile(
    profiler: cProfile.Profile, total: float, stages: list[tuple[str, int, str, str]], top: int
) -> None:
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    entries: list[tuple[float, float, int, str]] = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        if f"{REPO}/monitor/" in filename:
            where = f"{Path(filename).relative_to(REPO)}:{line}({func})"
            entries.append((cumtime, tottime, ncalls, where))
    print(f"\ntop {top} functions of monitor/ by cumulative time (of {total:.2f} s):")
    print(f"{'cumulative s':>12} {'share':>6} {'own s':>7} {'calls':>7}  function")
    for cumtime, tottime, ncalls, where in sorted(entries, reverse=True)[:top]:
        print(
            f"{cumtime:>12.2f} {100 * cumtime / total:>5.0f}% {tottime:>7.2f} {ncalls:>7}  {where}"
        )
    print("\nstages (cumulative; coroutines count each resumption):")
    for key in stages:
        found = raw.get(key[:3])
        if found is None:
            print(f"{'-':>12} {'-':>6} {0:>7}  {key[3]} (not called in this process)")
        else:
            cum, calls = found[3], found[1]
            print(f"{cum:>12.2f} {100 * cum / total:>5.0f}% {calls:>7}  {key[3]}")
    print("\ntop 12 functions anywhere by own time:")
    for (filename, line, func), (_cc, ncalls, tottime, _cum, _callers) in sorted(
        raw.items(), key=lambda kv: kv[1][2], reverse=True
    )[:12]:
        short = filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]
        print(f"{tottime:>12.2f} {ncalls:>8}  {short}:{line}({func})")


def profile_first_pass(tmp: Path, port: int, args: argparse.Namespace, top: int = 12) -> None:
    """A first pass of the first `--profile-feeds` feeds on a fresh database, under cProfile.

    `asyncio.to_thread` runs its function inline for this run, so that the one profiler sees
    the store work too (in worker threads it would miss it, and per-thread wall-clock timers
    would charge GIL waits to whatever a thread was doing). Work done in the worker processes
    (parsing and matching) is not seen here: `profile_worker_side` profiles it in-process.
    """
    stages = resolve(MAIN_STAGES)
    sub = argparse.Namespace(**{**vars(args), "feeds": min(args.feeds, args.profile_feeds)})
    profiler = cProfile.Profile()
    with mock.patch.object(asyncio, "to_thread", _inline):
        profiler.enable()
        try:
            [(run, _)] = run_monitor(tmp, port, sub, [f"first pass, profiled, {sub.feeds} feeds"])
        finally:
            profiler.disable()
    print(f"\n== profile 1: the main process of a first pass ({sub.feeds} feeds)")
    print(f"{HEADER}\n{run.line()}  (worker-thread calls inline; cProfile overhead included)")
    print_profile(profiler, run.wall, stages, top)


def profile_worker_side(args: argparse.Namespace, top: int = 12) -> None:
    """What the worker processes do in a first pass (parse_feed, then match_items with the
    bench's rules), on the documents of the first `--profile-feeds` feeds, run here under
    cProfile (one process, no pool, no network)."""
    stages = resolve(WORKER_STAGES)
    feeds = min(args.feeds, args.profile_feeds)
    docs = [rss_feed(i, args.items, args.seed) for i in range(feeds)]
    headers = {"content-type": "application/rss+xml; charset=utf-8"}
    rules = poll_rules()
    rules_file = str(Path(tempfile.mkdtemp()) / "rules.pickle")
    Path(rules_file).write_bytes(pickle.dumps(rules))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    try:
        for doc in docs:
            items = parse_feed(doc, headers, "http://127.0.0.1/").items
            match_items("bench", rules_file, "feed", items)
    finally:
        profiler.disable()
    total = time.perf_counter() - start
    print(f"\n== profile 2: the worker-side work of the same pass, in-process ({feeds} feeds)")
    print(f"parse_feed + match_items ({len(rules)} rules): {total:.2f} s under cProfile")
    print_profile(profiler, total, stages, top)


# --- main ----------------------------------------------------------------------------------


def check(label: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {label}: {detail}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=20, help="items per feed")
    parser.add_argument("--latency", type=float, default=50.0, help="ms before each answer")
    parser.add_argument("--concurrency", type=int, default=20, help="Settings.concurrency")
    parser.add_argument("--per-host", type=int, default=0, help="default: --concurrency")
    parser.add_argument("--baseline-feeds", type=int, default=100, help="naive loop sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="also profile a first pass")
    parser.add_argument("--profile-feeds", type=int, default=100, help="feeds profiled")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)
    if args.profile:  # a stage renamed or removed stops the script here, not after the runs
        resolve(MAIN_STAGES), resolve(WORKER_STAGES)
    latency = args.latency / 1000
    per_host = args.per_host or args.concurrency
    effective = min(args.concurrency, per_host)  # every feed is on 127.0.0.1

    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    server = ctx.Process(
        target=serve, args=(child_conn, args.feeds, args.items, latency, args.seed), daemon=True
    )
    server.start()
    args.server_pid = server.pid
    if not conn.poll(120):
        raise SystemExit("the feed server did not start within 120 s")
    port, total_bytes = conn.recv()
    urls = [f"http://127.0.0.1:{port}/feeds/{i}.xml" for i in range(args.feeds)]
    n_items = args.feeds * args.items

    print(
        f"bench_poll  python {platform.python_version()}  {platform.machine()}"
        f"  load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.feeds} feeds x {args.items} items = {n_items} items,"
        f" {total_bytes / 1e6:.1f} MB ({total_bytes / n_items / 1000:.1f} KB/item),"
        f" latency {args.latency:g} ms, concurrency {args.concurrency}, per host {per_host}"
    )
    failed = False
    try:
        sample = urls[: args.baseline_feeds]
        b_wall, b_cpu, b_items = naive_baseline(sample)
        scale = args.feeds / len(sample)
        baseline = Run(f"naive loop, {len(sample)} feeds", len(sample), b_items, b_wall, b_cpu, 0.0)
        extrapolated = Run(
            f"naive loop, x{scale:g} to {args.feeds} feeds",
            args.feeds,
            round(b_items * scale),
            b_wall * scale,
            b_cpu * scale,
        )
        with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
            (first, out1), (second, out2) = run_monitor(
                Path(tmp), port, args, ["monitor first pass (all new)", "monitor second pass (304)"]
            )
        floor = args.feeds * latency / effective

        print(f"\n{HEADER}")
        for run in (baseline, extrapolated, first, second):
            print(run.line())
        print(f"{'network floor (feeds x latency / concurrency)':<34} {floor:8.2f}")
        print(f"\nfirst pass outcomes: {first.statuses}; second pass: {second.statuses}")
        errors = [o for o in out1 + out2 if o.error]
        for o in errors[:5]:
            print(f"  error: {o.feed}: {o.error}")
        matches = sum(o.matches for o in out1)
        print(
            f"matches stored in the first pass: {matches} ({matches / max(1, first.items):.2f}"
            " per item)"
        )

        ratio1 = extrapolated.wall / first.wall
        ratio2 = extrapolated.wall / second.wall
        print(
            f"\nratios vs the naive loop (wall): first pass {ratio1:.1f}x, second pass"
            f" {ratio2:.1f}x; CPU: first pass {extrapolated.cpu / first.cpu:.1f}x less,"
            f" second pass {extrapolated.cpu / second.cpu:.1f}x less"
        )
        print(f"second pass / network floor: {second.wall / floor:.2f}x")
        budget = extrapolated.wall / FIRST_PASS_TARGET / n_items
        print(
            f"\nfirst pass CPU per item: {1000 * first.cpu / n_items:.2f} ms; the"
            f" {FIRST_PASS_TARGET:g}x target allows {1000 * budget:.2f} ms per item of wall time"
        )
        with tempfile.TemporaryDirectory(prefix="bench-poll-stages-") as tmp:
            costs = stage_costs(Path(tmp), args)
        print("CPU ms per item by stage, standalone (50 feeds, one thread):")
        for label, ms in costs.items():
            print(f"  {ms:6.2f}  {label}")
        print()
        complete = first.items == n_items and not errors and second.statuses == f"304 {args.feeds}"
        failed |= not check(
            "correctness", complete, f"{first.items}/{n_items} items stored, second pass all 304"
        )
        failed |= not check(
            f"first pass >= {FIRST_PASS_TARGET:g}x faster than the naive loop",
            ratio1 >= FIRST_PASS_TARGET,
            f"{ratio1:.1f}x ({first.wall:.2f} s vs {extrapolated.wall:.2f} s extrapolated)",
        )
        failed |= not check(
            f"304 pass within {NOT_MODIFIED_TARGET:g}x of the network floor",
            second.wall <= NOT_MODIFIED_TARGET * floor,
            f"{second.wall / floor:.2f}x ({second.wall:.2f} s vs floor {floor:.2f} s)",
        )
        if args.profile:
            with tempfile.TemporaryDirectory(prefix="bench-poll-profile-") as tmp:
                profile_first_pass(Path(tmp), port, args)
            profile_worker_side(args)
    finally:
        conn.send("stop")
        if conn.poll(10):
            requests, server_cpu = conn.recv()
            print(f"\nserver: {requests} requests, {server_cpu:.2f} s CPU (its own process)")
        server.join(timeout=10)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
