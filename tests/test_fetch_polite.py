"""Polite, fast concurrency: per-host limits (with per-feed overrides), connection reuse,
DNS answers cached for their TTL, Cache-Control max-age reported. Real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.feeds.dns import Answer, CachingResolver
from monitor.feeds.fetch import Fetcher, _HostGate
from monitor.types import FetchRequest, FetchResult, FetchStatus
from tests import feedserver
from tests.feedserver import FeedServer, RequestRecord, Route, Static

feed_server = feedserver.feed_server

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
T = TypeVar("T")


def run(coro_fn: Callable[[Fetcher], Awaitable[T]], **fetcher_args: Any) -> T:
    async def main() -> T:
        fetcher_args.setdefault("timeout", 10.0)
        async with Fetcher(**fetcher_args) as fetcher:
            return await coro_fn(fetcher)

    return asyncio.run(main())


class PeakCounter:
    """A route wrapper that records the most requests the server handled at once."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, record: RequestRecord) -> Route:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.hold)
        with self.lock:
            self.active -= 1
        return Static(RSS)


def fetch_all(requests: Sequence[FetchRequest], **fetcher_args: Any) -> list[FetchResult]:
    async def all_of(fetcher: Fetcher) -> list[FetchResult]:
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in requests)))

    return run(all_of, **fetcher_args)


def ten_feeds(server: FeedServer, route: Any, per_host: int | None = None) -> list[FetchRequest]:
    for i in range(10):
        server.routes[f"/feed{i}"] = route
    return [FetchRequest(f"f{i}", server.url(f"/feed{i}"), per_host=per_host) for i in range(10)]


# --- per-host limits -----------------------------------------------------------------------


def test_ten_feeds_on_one_host_never_see_more_than_per_host(feed_server: FeedServer) -> None:
    counter = PeakCounter()
    results = fetch_all(ten_feeds(feed_server, counter), per_host=2, concurrency=100)
    assert [r.status for r in results] == [FetchStatus.OK] * 10
    assert 1 <= counter.peak <= 2
    assert feed_server.connections <= 2  # and the two connections were reused


def test_a_feeds_lower_per_host_override_is_kept(feed_server: FeedServer) -> None:
    counter = PeakCounter()
    results = fetch_all(ten_feeds(feed_server, counter, per_host=1), per_host=4)
    assert all(r.status is FetchStatus.OK for r in results)
    assert counter.peak == 1


def test_a_feeds_higher_per_host_override_lets_more_run(feed_server: FeedServer) -> None:
    # Every request waits for five others: only six fetches at once can all succeed.
    barrier = threading.Barrier(6, timeout=5)

    def together(record: RequestRecord) -> Route:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return Static(b"", status=500)
        return Static(RSS)

    for i in range(6):
        feed_server.routes[f"/feed{i}"] = together
    requests = [FetchRequest(f"f{i}", feed_server.url(f"/feed{i}"), per_host=6) for i in range(6)]
    results = fetch_all(requests, per_host=2)
    assert [r.status for r in results] == [FetchStatus.OK] * 6, [r.error for r in results]


def test_hosts_do_not_share_a_limit(feed_server: FeedServer) -> None:
    # Two names of the same server are two hosts: per_host=1 each, both run at once.
    barrier = threading.Barrier(2, timeout=5)

    def together(record: RequestRecord) -> Route:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return Static(b"", status=500)
        return Static(RSS)

    feed_server.routes["/feed"] = together
    port = feed_server.port
    requests = [
        FetchRequest("a", f"http://a.internal:{port}/feed"),
        FetchRequest("b", f"http://b.internal:{port}/feed"),
    ]
    results = fetch_all(requests, per_host=1, resolver=LoopbackResolver())
    assert [r.status for r in results] == [FetchStatus.OK] * 2, [r.error for r in results]


def test_connections_are_reused_across_passes(feed_server: FeedServer) -> None:
    for i in range(10):
        feed_server.routes[f"/feed{i}"] = Static(RSS, etag=f'"v{i}"')

    async def two_passes(fetcher: Fetcher) -> list[FetchResult]:
        first = [FetchRequest(f"f{i}", feed_server.url(f"/feed{i}")) for i in range(10)]
        done = await asyncio.gather(*(fetcher.fetch(r) for r in first))
        again = [FetchRequest(r.feed, r.url, etag=d.etag) for r, d in zip(first, done, strict=True)]
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in again)))

    results = run(two_passes, per_host=2)
    assert [r.status for r in results] == [FetchStatus.NOT_MODIFIED] * 10
    assert len(feed_server.requests) == 20
    assert feed_server.connections <= 2


def test_bad_per_host_override_is_a_programming_error(feed_server: FeedServer) -> None:
    with pytest.raises(ValueError, match="per_host"):
        fetch_all([FetchRequest("x", feed_server.url("/"), per_host=0)])


# --- the host gate -------------------------------------------------------------------------


def test_gate_keeps_the_smallest_limit_serves_in_order_and_survives_cancellation() -> None:
    async def main() -> list[str]:
        gate = _HostGate()
        order: list[str] = []
        await gate.acquire(2)
        await gate.acquire(2)

        async def wait(name: str, limit: int) -> None:
            await gate.acquire(limit)
            order.append(name)

        strict = asyncio.create_task(wait("strict", 1))  # needs the host to itself
        loose = asyncio.create_task(wait("loose", 4))  # queued behind it: must not overtake
        cancelled = asyncio.create_task(wait("cancelled", 4))
        await asyncio.sleep(0)
        cancelled.cancel()
        gate.release(2)
        await asyncio.sleep(0)
        assert order == []  # one still running: "strict" waits, "loose" waits behind it
        gate.release(2)
        await strict
        await asyncio.sleep(0)
        assert order == ["strict"]  # "loose" may not join while "strict" (limit 1) runs
        gate.release(1)
        await loose
        gate.release(4)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert gate.idle
        return order

    assert asyncio.run(main()) == ["strict", "loose"]


# --- Cache-Control max-age -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "public, max-age=3600"}, timedelta(hours=1)),
        ({"Cache-Control": "max-age=3600", "Age": "600"}, timedelta(minutes=50)),
        ({"Cache-Control": "no-cache, max-age=3600"}, None),
        ({}, None),
    ],
)
def test_max_age_is_reported(
    feed_server: FeedServer, headers: dict[str, str], expected: timedelta | None
) -> None:
    feed_server.routes["/feed"] = Static(RSS, etag='"v1"', headers=headers)
    url = feed_server.url("/feed")

    async def both(fetcher: Fetcher) -> tuple[FetchResult, FetchResult]:
        fresh = await fetcher.fetch(FetchRequest("x", url))
        same = await fetcher.fetch(FetchRequest("x", url, etag='"v1"'))
        return fresh, same

    fresh, same = run(both)
    assert (fresh.status, same.status) == (FetchStatus.OK, FetchStatus.NOT_MODIFIED)
    assert fresh.max_age == expected and same.max_age == expected


# --- DNS cache -----------------------------------------------------------------------------


class LoopbackResolver(AbstractResolver):
    """Every name is 127.0.0.1. Counts lookups."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        return [loopback(host, port)]

    async def close(self) -> None:
        pass


def loopback(host: str, port: int, ip: str = "127.0.0.1") -> ResolveResult:
    return ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=0)


class FakeDNS:
    """A lookup function with a TTL per answer, a fake clock and a count of queries."""

    def __init__(self, ttl: float | None) -> None:
        self.ttl = ttl
        self.now = 1000.0
        self.queries: list[str] = []
        self.fail = False

    async def __call__(self, host: str, port: int, family: socket.AddressFamily) -> Answer:
        self.queries.append(host)
        await asyncio.sleep(0.01)  # lets concurrent callers pile up on one query
        if self.fail:
            raise OSError(None, "DNS lookup failed")
        return [loopback(host, port)], self.ttl

    def clock(self) -> float:
        return self.now


def resolve_times(resolver: CachingResolver, steps: Sequence[Callable[[], None]]) -> None:
    async def main() -> None:
        for step in steps:
            step()
            await resolver.resolve("feeds.example.com", 80)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("ttl", "advance", "queries"),
    [
        (300.0, 299.0, 1),  # within the TTL: the cached answer
        (300.0, 301.0, 2),  # past it: asked again
        (0.0, 0.0, 2),  # TTL 0: never kept
        (None, 59.0, 1),  # no TTL known (system resolver): kept FALLBACK_TTL (60 s)
        (None, 61.0, 2),
        (86400.0, 3599.0, 1),  # a day's TTL: kept at most MAX_TTL (1 h)
        (86400.0, 3601.0, 2),
    ],
)
def test_answers_are_cached_for_their_ttl(ttl: float | None, advance: float, queries: int) -> None:
    dns = FakeDNS(ttl)
    resolver = CachingResolver(dns, monotonic=dns.clock)

    def later() -> None:
        dns.now += advance

    resolve_times(resolver, [lambda: None, later])
    assert len(dns.queries) == queries


def test_failures_are_not_cached_and_concurrent_lookups_share_one_query() -> None:
    dns = FakeDNS(300.0)
    resolver = CachingResolver(dns, monotonic=dns.clock)

    async def main() -> None:
        dns.fail = True
        for _ in range(2):
            with pytest.raises(OSError):
                await resolver.resolve("feeds.example.com", 80)
        dns.fail = False
        answers = await asyncio.gather(
            *(resolver.resolve("Feeds.Example.com", 80) for _ in range(20))
        )
        assert all(a[0]["host"] == "127.0.0.1" for a in answers)

    asyncio.run(main())
    assert len(dns.queries) == 3


def test_a_pass_over_one_host_asks_dns_once(feed_server: FeedServer) -> None:
    dns = FakeDNS(300.0)
    resolver = CachingResolver(dns)
    for i in range(10):
        feed_server.routes[f"/feed{i}"] = PeakCounter(hold=0.02)
    requests = [
        FetchRequest(f"f{i}", f"http://feeds.internal:{feed_server.port}/feed{i}")
        for i in range(10)
    ]
    results = fetch_all(requests, per_host=4, resolver=resolver)
    assert all(r.status is FetchStatus.OK for r in results), [r.error for r in results]
    assert dns.queries == ["feeds.internal"]


def test_default_resolver_answers_from_the_hosts_file() -> None:
    # c-ares reads /etc/hosts: no network traffic.
    async def main() -> list[ResolveResult]:
        resolver = CachingResolver()
        try:
            return await resolver.resolve("localhost", 80, socket.AF_INET)
        finally:
            await resolver.close()

    answers = asyncio.run(main())
    assert answers and all(a["host"].startswith("127.") for a in answers)
