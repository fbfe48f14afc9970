"""The HTTP edge against a real loopback server: every failure comes back as a value."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor.feeds.fetch import Fetcher, mask_credentials
from monitor.textutil import one_line
from monitor.types import FetchRequest, FetchResult, FetchStatus
from tests import feedserver
from tests.feedserver import (
    Drip,
    Endless,
    FeedServer,
    GzipBomb,
    Raw,
    Redirect,
    RequestRecord,
    Route,
    Silent,
    Static,
    closed_port,
)

feed_server = feedserver.feed_server  # the shared fixture, made visible to this module

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
LAST_MODIFIED = "Sat, 01 Mar 2025 10:00:00 GMT"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
MB = 1024 * 1024
T = TypeVar("T")


def run(coro_fn: Callable[[Fetcher], Awaitable[T]], **fetcher_args: Any) -> T:
    async def main() -> T:
        fetcher_args.setdefault("timeout", 3.0)
        async with Fetcher(**fetcher_args) as fetcher:
            return await coro_fn(fetcher)

    return asyncio.run(main())


def fetch(
    url: str, etag: str | None = None, last_modified: str | None = None, **fetcher_args: Any
) -> FetchResult:
    request = FetchRequest("test feed", url, etag, last_modified)
    return run(lambda f: f.fetch(request), **fetcher_args)


def timed_fetch(url: str, **fetcher_args: Any) -> tuple[FetchResult, float]:
    start = time.monotonic()
    result = fetch(url, **fetcher_args)
    return result, time.monotonic() - start


def assert_error(result: FetchResult, *fragments: str) -> None:
    assert result.status is FetchStatus.ERROR, result
    assert result.error is not None
    assert "\n" not in result.error
    for fragment in fragments:
        assert fragment in result.error, result.error


# --- success and conditional GET -----------------------------------------------------------


def test_200_returns_body_headers_and_validators(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(
        RSS, etag='"v1"', last_modified=LAST_MODIFIED, headers={"X-Thing": "yes"}
    )
    result = fetch(feed_server.url("/feed"))
    assert result.status is FetchStatus.OK
    assert result.http_status == 200
    assert result.body == RSS
    assert result.url == feed_server.url("/feed")
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-thing"] == "yes"
    assert all(k == k.lower() for k in result.headers)
    assert type(result.headers) is dict
    assert result.permanent_url is None and result.error is None
    sent = feed_server.requests_for("/feed")[0].headers
    assert sent["accept-encoding"] == "gzip, deflate"
    assert sent["user-agent"].startswith("news-monitor/")
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_etag_round_trip_answers_304_and_keeps_validators(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS, etag='"v1"', last_modified=LAST_MODIFIED)
    first = fetch(feed_server.url("/feed"))
    second = fetch(feed_server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert second.status is FetchStatus.NOT_MODIFIED
    assert second.http_status == 304
    assert second.body == b""
    assert (second.etag, second.last_modified) == ('"v1"', LAST_MODIFIED)
    sent = feed_server.requests_for("/feed")[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_last_modified_alone_answers_304(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS, last_modified=LAST_MODIFIED)
    result = fetch(feed_server.url("/feed"), last_modified=LAST_MODIFIED)
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.last_modified == LAST_MODIFIED and result.etag is None
    assert feed_server.requests_for("/feed")[0].headers["if-modified-since"] == LAST_MODIFIED


def test_bare_304_keeps_the_request_validators(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(status=304, content_type=None)
    result = fetch(feed_server.url("/feed"), etag='"old"', last_modified=LAST_MODIFIED)
    assert result.status is FetchStatus.NOT_MODIFIED
    assert (result.etag, result.last_modified) == ('"old"', LAST_MODIFIED)


def test_changed_feed_returns_200_with_new_etag(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS, etag='"v2"')
    result = fetch(feed_server.url("/feed"), etag='"v1"')
    assert result.status is FetchStatus.OK
    assert result.etag == '"v2"'


def test_validators_with_line_breaks_are_not_sent(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    result = fetch(feed_server.url("/feed"), etag='"a"\r\nX-Evil: 1', last_modified="ü\n")
    assert result.status is FetchStatus.OK
    sent = feed_server.requests_for("/feed")[0].headers
    assert "if-none-match" not in sent and "x-evil" not in sent
    assert "if-modified-since" not in sent


# --- content encoding and size caps --------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_bodies_are_decoded(feed_server: FeedServer, encoding: str) -> None:
    body = RSS * 500
    feed_server.routes["/feed"] = Static(body, encoding=encoding)
    result = fetch(feed_server.url("/feed"))
    assert result.status is FetchStatus.OK, result.error
    assert result.body == body
    assert "content-encoding" not in result.headers
    assert "content-length" not in result.headers  # it described the compressed body


def test_multi_member_gzip_is_decoded_whole(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Raw(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n"
        % len(gzip.compress(b"ab") + gzip.compress(b"cd"))
        + gzip.compress(b"ab")
        + gzip.compress(b"cd")
    )
    result = fetch(feed_server.url("/feed"))
    assert result.status is FetchStatus.OK, result.error
    assert result.body == b"abcd"


def test_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    feed_server.routes["/bomb"] = GzipBomb(size=64 * MB)
    tracemalloc.start()
    try:
        result = fetch(feed_server.url("/bomb"), max_bytes=1 * MB, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_error(result, "response larger than 1 MB")
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MB while decoding a 64 MB bomb"


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_body_exactly_at_the_cap_is_accepted(feed_server: FeedServer, encoding: str) -> None:
    body = b"x" * (256 * 1024)
    feed_server.routes["/feed"] = Static(body, encoding=encoding)
    result = fetch(feed_server.url("/feed"), max_bytes=len(body))
    assert result.status is FetchStatus.OK, result.error
    assert result.body == body
    result = fetch(feed_server.url("/feed"), max_bytes=len(body) - 1)
    assert_error(result, "response larger than 262143 bytes")


def test_oversized_plain_body_is_rejected_by_content_length(feed_server: FeedServer) -> None:
    feed_server.routes["/big"] = Static(b"x" * (2 * MB))
    result = fetch(feed_server.url("/big"), max_bytes=1 * MB)
    assert_error(result, "response larger than 1 MB")


def test_endless_body_is_cut_at_the_cap(feed_server: FeedServer) -> None:
    feed_server.routes["/endless"] = Endless()
    # the server sends for 20 s: only the cap, not the 30 s deadline, can end this in time
    result = fetch(feed_server.url("/endless"), max_bytes=1 * MB, timeout=30)
    assert_error(result, "response larger than 1 MB")


def test_default_cap_is_10_mb(feed_server: FeedServer) -> None:
    feed_server.routes["/bomb"] = GzipBomb(size=11 * MB)
    assert_error(fetch(feed_server.url("/bomb")), "response larger than 10 MB")


def test_truncated_gzip_is_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(
        gzip.compress(RSS * 100)[:-30], headers={"Content-Encoding": "gzip"}
    )
    assert_error(fetch(feed_server.url("/feed")), "invalid gzip body")


def test_unsupported_content_encoding_is_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS, headers={"Content-Encoding": "br"})
    assert_error(fetch(feed_server.url("/feed")), "unsupported Content-Encoding 'br'")


# --- redirects -----------------------------------------------------------------------------


def chain(server: FeedServer, statuses: list[int], final: Route) -> str:
    """/r0 -> /r1 -> ... -> /final with the given redirect statuses; the first URL."""
    for i, status in enumerate(statuses):
        target = f"/r{i + 1}" if i + 1 < len(statuses) else "/final"
        server.routes[f"/r{i}"] = Redirect(target, status=status)
    server.routes["/final"] = final
    return server.url("/r0")


def test_five_redirects_are_followed(feed_server: FeedServer) -> None:
    start = chain(feed_server, [302] * 5, Static(RSS))
    result = fetch(start)
    assert result.status is FetchStatus.OK
    assert result.url == feed_server.url("/final")
    assert result.body == RSS


def test_six_redirects_are_too_many(feed_server: FeedServer) -> None:
    start = chain(feed_server, [301] * 6, Static(RSS))
    result = fetch(start)
    assert_error(result, "too many redirects")
    assert feed_server.hits("/final") == 0


def test_redirect_loop_ends_as_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/a"] = Redirect("/b", status=301)
    feed_server.routes["/b"] = Redirect(feed_server.url("/a"), status=302)
    result = fetch(feed_server.url("/a"))
    assert_error(result, "too many redirects")
    assert feed_server.hits("/a") + feed_server.hits("/b") == 6


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [
        ([301], True),
        ([308], True),
        ([308, 301], True),
        ([301, 308, 301], True),
        ([302], False),
        ([307], False),
        ([301, 302], False),
        ([302, 301], False),
        ([308, 303], False),
    ],
)
def test_permanent_url_only_when_every_hop_is_permanent(
    feed_server: FeedServer, statuses: list[int], permanent: bool
) -> None:
    start = chain(feed_server, statuses, Static(RSS))
    result = fetch(start)
    assert result.status is FetchStatus.OK
    assert result.url == feed_server.url("/final")
    assert result.permanent_url == (feed_server.url("/final") if permanent else None)


def test_permanent_redirect_to_not_modified(feed_server: FeedServer) -> None:
    start = chain(feed_server, [301], Static(RSS, etag='"v1"'))
    result = fetch(start, etag='"v1"')
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.permanent_url == feed_server.url("/final")
    assert feed_server.requests_for("/final")[0].headers["if-none-match"] == '"v1"'


def test_relative_locations_are_resolved(feed_server: FeedServer) -> None:
    feed_server.routes["/a/b/start"] = Redirect("../next?x=1", status=301)
    feed_server.routes["/a/next?x=1"] = Redirect("final", status=301)
    feed_server.routes["/a/final"] = Static(RSS)
    result = fetch(feed_server.url("/a/b/start"))
    assert result.status is FetchStatus.OK, result.error
    assert result.url == feed_server.url("/a/final")


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/feed", "gopher://x/", "javascript:alert(1)"]
)
def test_redirect_to_other_schemes_is_rejected(feed_server: FeedServer, target: str) -> None:
    feed_server.routes["/feed"] = Redirect(target, status=301)
    result = fetch(feed_server.url("/feed"))
    assert_error(result, "redirect to unsupported URL scheme")
    assert result.permanent_url is None


def test_redirect_without_location_is_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(status=302)
    assert_error(fetch(feed_server.url("/feed")), "HTTP 302 redirect without a Location")


# --- HTTP errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (500, "HTTP 500 Internal Server Error"),
        (404, "HTTP 404 Not Found"),
        (403, "HTTP 403 Forbidden"),
        (502, "HTTP 502 Bad Gateway"),
        (599, "HTTP 599"),
        (300, "HTTP 300 Multiple Choices"),
    ],
)
def test_http_errors(feed_server: FeedServer, status: int, text: str) -> None:
    feed_server.routes["/feed"] = Static(b"<html>oops</html>", "text/html", status=status)
    result = fetch(feed_server.url("/feed"), etag='"keep"')
    assert_error(result, text)
    assert result.http_status == status
    assert result.body == b""
    assert result.etag == '"keep"'  # validators survive a failed poll
    assert result.retry_after is None


def test_410_is_gone(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(b"gone", "text/plain", status=410)
    result = fetch(feed_server.url("/feed"))
    assert result.status is FetchStatus.GONE
    assert result.http_status == 410
    assert result.error == "HTTP 410 Gone"


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", timedelta(seconds=120)),
        (503, "120", timedelta(seconds=120)),
        (429, "Sat, 01 Mar 2025 12:10:00 GMT", timedelta(minutes=10)),
        (503, "Sat, 01 Mar 2025 12:10:00 GMT", timedelta(minutes=10)),
        (429, "31536000", timedelta(days=7)),  # a year: capped
        (429, "whenever", None),
    ],
)
def test_retry_after(
    feed_server: FeedServer, status: int, header: str, expected: timedelta | None
) -> None:
    feed_server.routes["/feed"] = Static(
        b"slow down", "text/plain", status, {"Retry-After": header}
    )
    result = fetch(feed_server.url("/feed"), clock=lambda: NOW)
    assert_error(result, f"HTTP {status}")
    assert result.retry_after == expected
    if expected is not None:
        assert f"retry after {int(expected.total_seconds())} s" in (result.error or "")


def test_429_without_retry_after(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(status=429)
    result = fetch(feed_server.url("/feed"))
    assert_error(result, "HTTP 429 Too Many Requests")
    assert result.retry_after is None


# --- bad URLs and broken networks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("file:///etc/passwd", "unsupported URL scheme 'file'"),
        ("ftp://127.0.0.1/feed.xml", "unsupported URL scheme 'ftp'"),
        ("/etc/passwd", "unsupported URL scheme none"),
        ("feed.xml", "unsupported URL scheme none"),
        ("http://", "invalid URL"),
        ("http://[::1/feed", "invalid URL"),
    ],
)
def test_only_http_urls_are_fetched(url: str, text: str) -> None:
    result = fetch(url)
    assert_error(result, text)
    assert result.url == url


def test_connection_refused() -> None:
    port = closed_port()
    result, elapsed = timed_fetch(f"http://127.0.0.1:{port}/feed", timeout=60)
    assert_error(result, f"cannot connect to 127.0.0.1:{port}", "refused")
    assert elapsed < 20  # at once, never waiting for the 60 s deadline


def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    result = fetch("http://feeds.example.invalid/rss")
    assert_error(result, "DNS lookup of feeds.example.invalid failed")


def test_hanging_dns_is_cut_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo
    entered, release, resolved = threading.Event(), threading.Event(), threading.Event()

    def hanging_dns(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)  # blocking, in the resolver's worker thread, until the test is done
        resolved.set()
        return real_getaddrinfo("127.0.0.1", *args[1:], **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_dns)

    async def fetch_while_dns_hangs(fetcher: Fetcher) -> tuple[FetchResult, bool]:
        try:
            result = await fetcher.fetch(FetchRequest("x", "http://feeds.example.invalid/rss"))
            return result, entered.is_set() and not resolved.is_set()
        finally:
            release.set()  # let the resolver thread end (asyncio.run waits for it)

    result, returned_while_hanging = run(fetch_while_dns_hangs, timeout=0.5)
    assert_error(result, "timed out after 0.5 s")
    assert returned_while_hanging  # the deadline did not wait for the lookup


def test_malformed_response_is_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Raw(b"SURPRISE\r\n\r\n")
    assert_error(fetch(feed_server.url("/feed")), "invalid HTTP response")


def test_long_malformed_response_is_one_short_line(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Raw(b"SURPRISE " + b"word\t" * 500 + b"\r\n\r\n")
    result = fetch(feed_server.url("/feed"))
    assert_error(result, "invalid HTTP response: ")
    assert result.error is not None and result.error.endswith("…")
    assert len(result.error) <= len("invalid HTTP response: ") + 120
    assert "\t" not in result.error and "  " not in result.error


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("  a\r\n b\tc\u2028d  ", None, "a b c d"),
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
        ("a  b  c  d", 5, "a b…"),  # no blank before the marker
        ("", 3, ""),
    ],
)
def test_one_line(text: str, limit: int | None, expected: str) -> None:
    assert one_line(text, limit) == expected


def test_body_shorter_than_content_length_is_an_error(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<rss>")
    assert_error(fetch(feed_server.url("/feed")), "response body incomplete")


def test_connection_closed_without_answer(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Raw(b"")
    assert_error(fetch(feed_server.url("/feed")), "server closed the connection")


def test_credentials_never_appear_in_errors(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(status=500)
    port = closed_port()
    for url in (
        feed_server.url("/feed").replace("http://", "http://alice:s3cret-pw@"),
        f"http://alice:s3cret-pw@127.0.0.1:{port}/feed",
        "ftp://alice:s3cret-pw@127.0.0.1/feed",
    ):
        result = fetch(url)
        assert result.error is not None
        assert "s3cret-pw" not in result.error and "alice" not in result.error, result.error
    assert feed_server.requests_for("/feed")[0].headers["authorization"].startswith("Basic ")
    assert mask_credentials("at http://bob:hunter22@host/x", "http://bob:hunter22@host/x") == (
        "at http://***@host/x"
    )


# --- deadlines and concurrency -------------------------------------------------------------


# The deadline is asserted by its error ("timed out after N s") and by what it cut short: each
# server below would answer, or keep the fetch busy, far longer than the bounds checked here.


def test_silent_server_times_out_at_the_deadline(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Silent(hold=30)
    result, elapsed = timed_fetch(feed_server.url("/feed"), timeout=1.0)
    assert_error(result, "timed out after 1 s")
    assert 0.9 < elapsed < 15  # never early; long before the server's 30 s


def test_slow_headers_time_out(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS, delay=30)
    result, elapsed = timed_fetch(feed_server.url("/feed"), timeout=0.5)
    assert_error(result, "timed out after 0.5 s")
    assert elapsed < 15


def test_slow_drip_body_is_aborted_at_the_total_deadline(feed_server: FeedServer) -> None:
    # 150 bytes, one every 0.2 s: every read succeeds quickly, only the total deadline stops it.
    feed_server.routes["/feed"] = Drip(size=150, interval=0.2)
    result, elapsed = timed_fetch(feed_server.url("/feed"), timeout=1.0)
    assert_error(result, "timed out after 1 s")
    assert result.url == feed_server.url("/feed")
    assert 0.9 < elapsed < 15  # the body would take 30 s


def test_deadline_covers_redirect_hops(feed_server: FeedServer) -> None:
    # Each hop alone answers within the 3 s deadline, both together cannot: a deadline per hop
    # would let this fetch succeed after 3.5 s.
    def slow_redirect(record: RequestRecord) -> Route:
        time.sleep(1.0)
        return Redirect("/b", status=301)

    feed_server.routes["/a"] = slow_redirect
    feed_server.routes["/b"] = Static(RSS, delay=2.5)
    result = fetch(feed_server.url("/a"), timeout=3.0)
    assert_error(result, "timed out after 3 s")
    assert result.url == feed_server.url("/b")
    assert feed_server.hits("/b") == 1


def test_one_slow_feed_does_not_delay_thirty_others(feed_server: FeedServer) -> None:
    feed_server.routes["/slow"] = Silent(hold=30)
    for i in range(30):
        feed_server.routes[f"/f{i}"] = Static(RSS + str(i).encode())
    finished: list[str] = []

    async def all_feeds(fetcher: Fetcher) -> list[FetchResult]:
        async def one(path: str) -> FetchResult:
            result = await fetcher.fetch(FetchRequest(path, feed_server.url(path)))
            finished.append(path)
            return result

        paths = ["/slow"] + [f"/f{i}" for i in range(30)]
        return await asyncio.gather(*(one(p) for p in paths))

    results = run(all_feeds, timeout=8.0)
    assert_error(results[0], "timed out after 8 s")
    assert all(r.status is FetchStatus.OK for r in results[1:])
    assert [r.body for r in results[1:]] == [RSS + str(i).encode() for i in range(30)]
    # all thirty completed while the slow one, asked first, was still waiting for its answer
    assert feed_server.hits("/slow") == 1
    assert finished[-1] == "/slow" and len(finished) == 31


def test_connections_per_host_are_bounded(feed_server: FeedServer) -> None:
    lock = threading.Lock()
    active = 0
    peak = 0

    def slowish(record: RequestRecord) -> Route:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return Static(RSS)

    feed_server.routes["/feed"] = slowish

    async def many(fetcher: Fetcher) -> list[FetchResult]:
        req = FetchRequest("x", feed_server.url("/feed"))
        return await asyncio.gather(*(fetcher.fetch(req) for _ in range(12)))

    results = run(many, per_host=2)
    assert all(r.status is FetchStatus.OK for r in results)
    assert peak <= 2


# --- address policy and TLS ----------------------------------------------------------------


def only_127_0_0_1(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip == ipaddress.IPv4Address("127.0.0.1")


def test_address_policy_is_checked_on_every_hop(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Redirect(f"http://127.0.0.2:{feed_server.port}/x", 302)
    result = fetch(feed_server.url("/feed"), allow_address=only_127_0_0_1)
    assert_error(result, "address 127.0.0.2 is not allowed")
    assert feed_server.hits("/feed") == 1


@pytest.mark.parametrize("host", ["127.0.0.2", "[::ffff:127.0.0.2]"])
def test_address_policy_refuses_before_connecting(host: str) -> None:
    result = fetch(f"http://{host}:{closed_port()}/feed", allow_address=only_127_0_0_1)
    assert_error(result, "address 127.0.0.2 is not allowed")


def test_address_policy_allows_what_it_allows(feed_server: FeedServer) -> None:
    feed_server.routes["/feed"] = Static(RSS)
    result = fetch(feed_server.url("/feed"), allow_address=only_127_0_0_1)
    assert result.status is FetchStatus.OK


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not found: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    return cert, key


def tls_server(cert: Path, key: Path) -> FeedServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return FeedServer(ssl_context=context)


def test_untrusted_certificate_fails_closed(self_signed: tuple[Path, Path]) -> None:
    with tls_server(*self_signed) as server:
        server.routes["/feed"] = Static(RSS)
        result = fetch(server.url("/feed"))
    assert_error(result, "TLS certificate of 127.0.0.1 not accepted")
    assert server.hits("/feed") == 0


def test_trusted_certificate_is_accepted(self_signed: tuple[Path, Path]) -> None:
    client = ssl.create_default_context(cafile=str(self_signed[0]))
    with tls_server(*self_signed) as server:
        server.routes["/feed"] = Static(RSS, encoding="gzip")
        result = fetch(server.url("/feed"), ssl_context=client)
    assert result.status is FetchStatus.OK, result.error
    assert result.body == RSS


# --- programming errors --------------------------------------------------------------------


def test_fetch_outside_the_context_manager_raises() -> None:
    async def main() -> None:
        await Fetcher(1.0).fetch(FetchRequest("x", "http://127.0.0.1/"))

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(main())


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"timeout": 1, "max_bytes": 0}, {"timeout": 1, "concurrency": 0}]
)
def test_bad_settings_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fetcher(**kwargs)
