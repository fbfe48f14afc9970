"""Private addresses: a feed configured with a public host may not be led (by DNS or by a
redirect) to a loopback, private or link-local address; a feed configured with such an
address, or an intranet name, works. Real loopback servers; names are mapped by a resolver
passed to the Fetcher, and for the redirect tests one loopback address plays a public server."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.feeds.dns import IPAddress, address_kind
from monitor.feeds.fetch import Fetcher, is_private_target
from monitor.types import FetchRequest, FetchResult, FetchStatus
from tests import feedserver
from tests.feedserver import FeedServer, Redirect, Static

feed_server = feedserver.feed_server

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
PLAYS_PUBLIC = ipaddress.IPv4Address("127.0.0.1")  # the test server, seen as a public one


class MapResolver(AbstractResolver):
    """Names to fixed address lists, as a DNS server would answer them."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(None, "Domain name not found")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in self.names[host]
        ]

    async def close(self) -> None:
        pass


def loopback_plays_public(ip: IPAddress) -> str | None:
    return None if ip == PLAYS_PUBLIC else address_kind(ip)


def fetch(url: str, **fetcher_args: Any) -> FetchResult:
    async def main() -> FetchResult:
        async with Fetcher(timeout=5.0, **fetcher_args) as fetcher:
            return await fetcher.fetch(FetchRequest("feed", url))

    return asyncio.run(main())


def assert_refused(result: FetchResult, *fragments: str) -> None:
    assert result.status is FetchStatus.ERROR, result
    assert result.error is not None and "refused" in result.error, result.error
    for fragment in fragments:
        assert fragment in result.error, result.error


# --- DNS answers ---------------------------------------------------------------------------


def test_public_name_resolving_to_loopback_is_refused(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    resolver = MapResolver({"feeds.example.com": ["127.0.0.1"]})
    result = fetch(f"http://feeds.example.com:{feed_server.port}/feed", resolver=resolver)
    assert_refused(result, "feeds.example.com resolves to 127.0.0.1, a loopback address")
    assert feed_server.requests == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.7", "private"),
        ("169.254.169.254", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("fd00::1", "private"),
    ],
)
def test_public_name_resolving_to_non_public_addresses_is_refused(address: str, kind: str) -> None:
    resolver = MapResolver({"feeds.example.com": [address]})
    result = fetch("http://feeds.example.com/feed", resolver=resolver)
    assert_refused(result, f"a {kind} address")


def test_private_answers_are_dropped_and_public_ones_used(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    resolver = MapResolver({"feeds.example.com": ["127.0.0.2", "127.0.0.1"]})
    result = fetch(
        f"http://feeds.example.com:{feed_server.port}/feed",
        resolver=resolver,
        address_kind=loopback_plays_public,
    )
    assert result.status is FetchStatus.OK, result.error
    assert feed_server.hits("/feed") == 1


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://127.0.0.2:{port}/internal", "redirected to 127.0.0.2, a loopback address"),
        ("http://[::1]:{port}/internal", "redirected to ::1, a loopback address"),
        ("http://admin.example.com:{port}/internal", "admin.example.com resolves to 10.1.2.3"),
        ("http://wiki:{port}/internal", "wiki resolves to 127.0.0.2"),
    ],
)
def test_redirect_from_a_public_feed_to_a_private_address_is_refused(
    feed_server: FeedServer, target: str, message: str
) -> None:
    feed_server.routes["/feed"] = Redirect(target.format(port=feed_server.port))
    resolver = MapResolver(
        {
            "feeds.example.com": ["127.0.0.1"],
            "admin.example.com": ["10.1.2.3"],
            "wiki": ["127.0.0.2"],
        }
    )
    result = fetch(
        f"http://feeds.example.com:{feed_server.port}/feed",
        resolver=resolver,
        address_kind=loopback_plays_public,
    )
    assert_refused(result, message)
    assert feed_server.hits("/feed") == 1
    assert feed_server.hits("/internal") == 0


def test_redirect_from_a_public_feed_to_a_public_address_works(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Redirect(f"http://other.example.org:{feed_server.port}/moved")
    feed_server.routes["/moved"] = Static(RSS)
    resolver = MapResolver({"feeds.example.com": ["127.0.0.1"], "other.example.org": ["127.0.0.1"]})
    result = fetch(
        f"http://feeds.example.com:{feed_server.port}/feed",
        resolver=resolver,
        address_kind=loopback_plays_public,
    )
    assert result.status is FetchStatus.OK, result.error


# --- feeds configured as private on purpose ------------------------------------------------


def test_feed_configured_by_loopback_address_works(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    result = fetch(feed_server.url("/feed"))
    assert result.status is FetchStatus.OK, result.error


def test_feed_configured_by_intranet_name_works(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Redirect("/moved", status=301)
    feed_server.routes["/moved"] = Static(RSS)
    resolver = MapResolver({"news.corp": ["127.0.0.1"]})
    result = fetch(f"http://news.corp:{feed_server.port}/feed", resolver=resolver)
    assert result.status is FetchStatus.OK, result.error
    assert result.permanent_url == f"http://news.corp:{feed_server.port}/moved"


def test_feed_configured_as_localhost_works_with_the_default_resolver(
    feed_server: FeedServer,
) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    result = fetch(f"http://localhost:{feed_server.port}/feed")
    assert result.status is FetchStatus.OK, result.error


def test_allow_address_still_applies_to_private_feeds(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    result = fetch(feed_server.url("/feed"), allow_address=lambda ip: False)
    assert result.status is FetchStatus.ERROR
    assert result.error is not None and "address 127.0.0.1 is not allowed" in result.error


# --- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
    ],
)
def test_address_kind(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://127.0.0.1:8080/feed", True),
        ("http://[::1]/feed", True),
        ("http://10.1.2.3/feed", True),
        ("http://localhost/feed", True),
        ("http://wiki/feed", True),
        ("http://news.corp/feed", True),
        ("http://x.home.arpa/feed", True),
        ("http://svc.internal./feed", True),
        ("https://feeds.example.com/rss", False),
        ("https://8.8.8.8/rss", False),
        ("https://local.example.com/rss", False),
    ],
)
def test_is_private_target(url: str, private: bool) -> None:
    assert is_private_target(url) is private
