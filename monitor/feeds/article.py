"""Reading an item's article page (full-text feeds, issue 12): the HTTP side.

`read_page(fetcher, robots, url, ...)` returns the page (`Page`) or a one-line reason why it
was not read. It goes through the feed `Fetcher`, so an article fetch has every promise a feed
fetch has: the same per-host limits (an article host is a host like any other), the global
concurrency, the total timeout, the size cap after decompression, the redirect rules and the
private-address guard (a public-looking link that resolves or redirects to a private address
is refused). On top of that:

- robots.txt is honoured for the configured user agent (`RobotsCache`, one answer per origin,
  kept `ROBOTS_TTL`, fetched through the same Fetcher). As RFC 9309 says: a robots.txt that
  is missing (4xx) allows everything; one that cannot be read (5xx, network error, too
  large) disallows everything, for `ROBOTS_RETRY`, after which it is asked again;
- only HTML (or plain text) pages are accepted: a binary answer (an image, a PDF, a file with
  NUL bytes in its first kilobyte) is refused before it reaches the extractor.

The text itself is extracted in a worker process (`monitor.feeds.extract`, trafilatura).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.robotparser import RobotFileParser

from yarl import URL

from monitor.clock import Clock, utcnow
from monitor.feeds.fetch import Fetcher, is_private_target
from monitor.textutil import one_line
from monitor.types import FetchRequest, FetchStatus

HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5, */*;q=0.1"
ROBOTS_TTL = timedelta(hours=24)  # RFC 9309: a crawler should not use a copy older than 24 h
ROBOTS_RETRY = timedelta(minutes=10)  # robots.txt could not be read: ask again after this
ROBOTS_HOSTS = 10_000  # origins whose robots.txt answer is kept (least recently used dropped)
ROBOTS_MAX_LINES = 20_000  # lines of a robots.txt read (a huge one is cut)
_TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")


@dataclass(frozen=True, slots=True)
class Page:
    """An article page as fetched: the final URL, the decoded body bytes and the headers."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Robots:
    expires: datetime
    parser: RobotFileParser | None  # None: everything allowed (no robots.txt)
    refusal: str | None = None  # robots.txt unreadable: everything disallowed, this is why


def origin(url: URL) -> str:
    """`scheme://host:port`, the scope of one robots.txt."""
    return f"{url.scheme.lower()}://{(url.host or '').lower()}:{url.explicit_port or url.port}"


class RobotsCache:
    """robots.txt answers per origin, shared by every poll of one App (and so by the daemon's
    whole life). Two polls asking for one origin at once share one fetch."""

    def __init__(
        self,
        clock: Clock = utcnow,
        ttl: timedelta = ROBOTS_TTL,
        retry: timedelta = ROBOTS_RETRY,
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._retry = retry
        self._answers: OrderedDict[str, _Robots] = OrderedDict()
        self._loading: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[_Robots]]] = {}
        self.fetches = 0  # robots.txt requests made (tests, metrics)

    async def refusal(
        self, fetcher: Fetcher, url: URL, user_agent: str, per_host: int | None = None
    ) -> str | None:
        """None when `user_agent` may fetch `url`; else why not (one line)."""
        robots = await self._robots(fetcher, url, per_host)
        if robots.refusal is not None:
            return robots.refusal
        if robots.parser is None:
            return None
        if robots.parser.can_fetch(user_agent, str(url)):
            return None
        return "robots.txt disallows it"

    async def _robots(self, fetcher: Fetcher, url: URL, per_host: int | None) -> _Robots:
        key = origin(url)
        known = self._answers.get(key)
        if known is not None and known.expires > self._clock():
            self._answers.move_to_end(key)
            return known
        loop = asyncio.get_running_loop()
        loading = self._loading.get(key)
        if loading is None or loading[0] is not loop:
            # a task of its own: a poll that gives up waiting does not stop it for the others
            task = loop.create_task(self._load(fetcher, url, per_host))
            loading = self._loading[key] = (loop, task)
            task.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(loading[1])

    def _loaded(self, key: str, task: asyncio.Future[_Robots]) -> None:
        if self._loading.get(key, (None, None))[1] is task:
            del self._loading[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._answers[key] = task.result()
        self._answers.move_to_end(key)
        while len(self._answers) > ROBOTS_HOSTS:
            self._answers.popitem(last=False)

    async def _load(self, fetcher: Fetcher, url: URL, per_host: int | None) -> _Robots:
        robots_url = str(url.with_path("/robots.txt").with_query(None).with_fragment(None))
        self.fetches += 1
        result = await fetcher.fetch(
            FetchRequest("robots.txt", robots_url, per_host=per_host, accept="text/plain, */*")
        )
        now = self._clock()
        if result.status is FetchStatus.OK:
            parser = RobotFileParser(robots_url)
            text = result.body.decode("utf-8", errors="replace")
            parser.parse(text.splitlines()[:ROBOTS_MAX_LINES])
            parser.modified()  # can_fetch answers False until the parser is marked read
            return _Robots(now + self._ttl, parser)
        status = result.http_status
        if status is not None and 400 <= status < 500 and status != 429:
            return _Robots(now + self._ttl, None)  # no robots.txt: everything allowed
        reason = one_line(result.error or f"HTTP {status}", 120)
        return _Robots(now + self._retry, None, f"robots.txt could not be read ({reason})")


async def read_page(
    fetcher: Fetcher,
    robots: RobotsCache,
    link: str,
    user_agent: str,
    *,
    per_host: int | None = None,
    private_ok: bool = False,
) -> Page | str:
    """The article page at `link`, or why it was not read (one line, no credentials).

    A link is written by the feed's publisher, not by the user: one that names a private
    address or an intranet host is refused unless the feed itself is such a target
    (`private_ok`: configured on purpose, its links may point into the same network)."""
    try:
        url = URL(link)
    except ValueError:
        return "invalid link"
    if url.scheme.lower() not in ("http", "https") or not url.host:
        return "link is not an http(s) URL"
    if not private_ok and is_private_target(url, fetcher.address_kind):
        return "link names a private address or an intranet host: refused"
    refusal = await robots.refusal(fetcher, url, user_agent, per_host)
    if refusal is not None:
        return refusal
    result = await fetcher.fetch(
        FetchRequest("article", link, per_host=per_host, accept=HTML_ACCEPT)
    )
    if result.status is not FetchStatus.OK:
        return result.error or f"HTTP {result.http_status}"
    problem = not_a_page(result.body, result.headers)
    if problem is not None:
        return problem
    return Page(result.url, result.body, dict(result.headers))


def not_a_page(body: bytes, headers: dict[str, str] | object) -> str | None:
    """Why `body` is not an article page to extract text from, or None (pure)."""
    content_type = ""
    if isinstance(headers, dict):
        content_type = str(headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    if content_type and not content_type.startswith(_TEXT_TYPES):
        return f"not an HTML page ({one_line(content_type, 60)})"
    if not body.strip():
        return "empty page"
    if b"\x00" in body[:1024]:
        return "not an HTML page (binary content)"
    return None
