"""The HTTP edge: a FetchRequest in, a FetchResult out.

`Fetcher.fetch` never raises for network or HTTP trouble; each failure comes back as a
`FetchResult` with status ERROR (or GONE for 410) and a one-line reason. Only programming
errors (using a Fetcher outside `async with`) raise.

What one fetch promises:
- only http and https URLs, on the first request and on every redirect hop;
- one total deadline (`timeout`) over waiting for the connection, every redirect hop and the
  whole body, so a slow-drip body is cut off; the deadline starts once the fetch holds its
  concurrency slots (global `concurrency`, and `per_host` for the feed's host), so a queue
  of feeds never times out before it has been tried;
- at most `max_bytes` of body AFTER decompression: gzip and deflate are decoded here,
  chunk by chunk with a bounded output, so a gzip bomb stops at the cap;
- at most `MAX_REDIRECTS` redirects, followed here so `permanent_url` can be reported when
  every hop was 301/308;
- conditional GET with the request's validators; `etag`/`last_modified` in every result are
  the validators to keep afterwards (the new ones on 200, the old ones otherwise);
- 429/503 carry `retry_after` from the Retry-After header (see `schedule.parse_retry_after`);
- error messages never contain the URL's credentials (user:password@); they name the host
  at most.
- no cookies are kept between requests (one feed cannot set cookies for another).

Politeness and speed (one Fetcher serves a whole pass, and the daemon keeps one):
- at most `concurrency` fetches at once overall, and at most `per_host` at once for one host
  (the host of the URL asked for; a request's own `per_host` overrides the default, and a
  host never has more fetches running than the smallest limit among them). Queued fetches
  are served in order;
- one aiohttp session per address policy (below), so connections to a host are kept alive and
  reused by the next feed on that host;
- DNS answers cached for their TTL (`monitor.feeds.dns.CachingResolver`).

Private addresses (SSRF guard): a feed whose URL names a public host may only reach public
addresses. Every DNS answer is filtered (`dns.PublicOnlyResolver`) and every address actually
connected to is checked (redirects to IP literals, DNS rebinding), with a clear error when
nothing public is left. A feed configured with a non-public address literal (`127.0.0.1`,
`10.1.2.3`, `[fd00::1]`) or an intranet name (`localhost`, a single label such as `wiki`,
or a name under `.local`, `.internal`, `.lan`, `.corp`, `.home.arpa`, ...) is on purpose:
it goes through a second session without that guard (`is_private_target`).

An optional `allow_address` predicate is checked on every address actually connected to, for
every feed, so a redirect or a DNS answer cannot lead the fetcher to a network it refuses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from monitor.clock import Clock, utcnow
from monitor.errors import PrivateAddressRefused
from monitor.feeds.dns import (
    CachingResolver,
    PublicOnlyResolver,
    address_kind,
    parse_ip,
)
from monitor.feeds.schedule import cache_control_max_age, parse_retry_after
from monitor.textutil import one_line
from monitor.types import FetchRequest, FetchResult, FetchStatus

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_USER_AGENT = "news-monitor/0.1 (+https://github.com/news-monitor)"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_CONCURRENCY = 100
DEFAULT_PER_HOST = 4
MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)

_SCHEMES = frozenset({"http", "https"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_STATUSES = frozenset({301, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_CHUNK = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")
_REASON_MAX = 200  # characters of FetchResult.error
# Names that are never public DNS names (RFC 6761, 6762, 8375 and common intranet suffixes).
_INTRANET_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".corp",
    ".home",
    ".home.arpa",
    ".private",
)


class _Failure(Exception):
    """Internal: ends a fetch with this one-line reason."""


class _AddressRefused(OSError):
    """Internal: raised by the socket factory for an address `allow_address` refuses."""


class _HostGate:
    """The fetches running on one host. A fetch with limit N starts only while fewer than N
    fetches run on the host, and fewer than the limit of each running one: the host never has
    more running than the smallest limit among them.

    Waiters are served first come, first served: a fetch with a low limit at the head of the
    queue is not overtaken by later ones with higher limits. Slots are handed over on release,
    so a release wakes exactly the fetches that can start (no thundering herd).
    """

    __slots__ = ("limits", "waiters")

    def __init__(self) -> None:
        self.limits: dict[int, int] = {}  # limit -> running fetches with that limit
        self.waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, limit: int) -> bool:
        running = sum(self.limits.values())
        return running < limit and (not self.limits or running < min(self.limits))

    def _take(self, limit: int) -> None:
        self.limits[limit] = self.limits.get(limit, 0) + 1

    async def acquire(self, limit: int) -> None:
        if not self.waiters and self._fits(limit):
            self._take(limit)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((limit, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(limit)  # the slot was handed over just as we were cancelled
            else:
                self.waiters.remove((limit, future))
                self._wake()
            raise

    def release(self, limit: int) -> None:
        left = self.limits[limit] - 1
        if left:
            self.limits[limit] = left
        else:
            del self.limits[limit]
        self._wake()

    def _wake(self) -> None:
        while self.waiters and self._fits(self.waiters[0][0]):
            limit, future = self.waiters.popleft()
            if not future.done():
                self._take(limit)
                future.set_result(None)

    @property
    def idle(self) -> bool:
        return not self.limits and not self.waiters


class Fetcher:
    """Fetches feeds over shared aiohttp sessions. Use as `async with Fetcher(...) as f`.

    `resolver` replaces the DNS resolver (default: `dns.CachingResolver`); tests use it to map
    names to loopback addresses. The Fetcher closes only a resolver it made itself.
    `address_kind` says which addresses are not public (default `dns.address_kind`; None means
    public); tests use it to let one loopback address play a public server.
    """

    def __init__(
        self,
        timeout: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        user_agent: str = DEFAULT_USER_AGENT,
        *,
        per_host: int = DEFAULT_PER_HOST,
        clock: Clock = utcnow,
        allow_address: Callable[[IPAddress], bool] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resolver: AbstractResolver | None = None,
        address_kind: Callable[[IPAddress], str | None] = address_kind,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if concurrency < 1 or per_host < 1:
            raise ValueError("concurrency and per_host must be at least 1")
        self._timeout = float(timeout)
        self._max_bytes = max_bytes
        self._concurrency = concurrency
        self._per_host = per_host
        self._user_agent = user_agent
        self._clock = clock
        self._allow_address = allow_address
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._address_kind = address_kind
        self._own_resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None  # public hosts: guarded
        self._private_session: aiohttp.ClientSession | None = None  # configured private
        self._slots: asyncio.Semaphore | None = None
        self._hosts: dict[str, _HostGate] = {}

    @property
    def address_kind(self) -> Callable[[IPAddress], str | None]:
        """Which addresses this Fetcher counts as not public (None: public)."""
        return self._address_kind

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the sessions (done by `async with`)."""
        if self._session is not None:
            return
        resolver = self._resolver
        if resolver is None:
            resolver = self._own_resolver = CachingResolver()
        allow = self._allow_address
        kind_of = self._address_kind
        self._session = self._new_session(
            PublicOnlyResolver(resolver, kind_of), _public_only(allow, kind_of)
        )
        self._private_session = self._new_session(resolver, allow)
        self._slots = asyncio.Semaphore(self._concurrency)

    def _new_session(
        self, resolver: AbstractResolver, allow: Callable[[IPAddress], bool] | None
    ) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            # Our own semaphores bound the fetches (per host with per-feed overrides, which
            # the connector's limit_per_host cannot express); the connector's limit is a
            # backstop, its idle connections are kept alive for the next feed on the host.
            limit=self._concurrency,
            limit_per_host=0,
            resolver=resolver,
            use_dns_cache=False,  # the resolver caches, for each answer's own TTL
            ssl=self._ssl_context if self._ssl_context is not None else True,
            socket_factory=None if allow is None else _guarded_socket(allow),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout, sock_read=self._timeout
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self._user_agent},
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the sessions and their connections."""
        sessions = (self._session, self._private_session)
        self._session = self._private_session = None
        for session in sessions:
            if session is not None:
                await session.close()
        resolver, self._own_resolver = self._own_resolver, None
        if resolver is not None:
            await resolver.close()

    async def fetch(self, req: FetchRequest) -> FetchResult:
        """Fetch one feed. Every network or HTTP failure is a FetchResult, never an exception."""
        session, private_session, slots = self._session, self._private_session, self._slots
        if session is None or private_session is None or slots is None:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        try:
            url = _check_url(URL(req.url))
        except _Failure as failure:
            return _error(req, req.url, str(failure))
        except ValueError:
            return _error(req, req.url, "invalid URL")
        if req.per_host is not None and req.per_host < 1:
            raise ValueError(f"per_host must be at least 1, got {req.per_host}")
        if is_private_target(url, self._address_kind):
            session = private_session

        host = (url.host or "").lower()
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate()
        progress = _Progress(url)
        # Host slot first: feeds queued behind a busy host never hold a global slot.
        limit = req.per_host or self._per_host
        await gate.acquire(limit)
        try:
            async with slots:
                try:
                    async with asyncio.timeout(self._timeout):
                        return await self._fetch(session, req, progress)
                except TimeoutError:
                    reason = f"timed out after {self._timeout:g} s"
                except _Failure as failure:
                    reason = str(failure)
                except aiohttp.ClientError as exc:
                    reason = _describe_client_error(exc)
                except OSError as exc:  # anything the transport raises below aiohttp
                    reason = f"network error: {_os_reason(exc)}"
        finally:
            gate.release(limit)
            if gate.idle:
                del self._hosts[host]
        return _error(req, str(progress.url), reason)

    async def _fetch(
        self, session: aiohttp.ClientSession, req: FetchRequest, progress: _Progress
    ) -> FetchResult:
        headers = {"Accept": req.accept or ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if req.etag is not None and _header_safe(req.etag):
            headers["If-None-Match"] = req.etag
        if req.last_modified is not None and _header_safe(req.last_modified):
            headers["If-Modified-Since"] = req.last_modified
        permanent = True
        for hop in range(MAX_REDIRECTS + 1):
            url = progress.url
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in _REDIRECT_STATUSES:
                    if hop == MAX_REDIRECTS:
                        break
                    location = resp.headers.get("Location")
                    if not location:
                        raise _Failure(f"HTTP {resp.status} redirect without a Location header")
                    progress.url = _resolve_redirect(url, location)
                    permanent = permanent and resp.status in _PERMANENT_STATUSES
                    continue
                redirected_permanently = hop > 0 and permanent
                return await self._result(req, resp, url, redirected_permanently)
        raise _Failure(f"too many redirects (more than {MAX_REDIRECTS})")

    async def _result(
        self,
        req: FetchRequest,
        resp: aiohttp.ClientResponse,
        url: URL,
        redirected_permanently: bool,
    ) -> FetchResult:
        status = resp.status
        final = str(url)
        permanent_url = final if redirected_permanently else None
        if 200 <= status < 300:
            body, decoded = await self._read_body(resp)
            return FetchResult(
                status=FetchStatus.OK,
                url=final,
                http_status=status,
                body=body,
                headers=_plain_headers(resp.headers, decoded=decoded),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                permanent_url=permanent_url,
                max_age=_max_age(resp.headers),
            )
        headers = _plain_headers(resp.headers, decoded=False)
        if status == 304:
            return FetchResult(
                status=FetchStatus.NOT_MODIFIED,
                url=final,
                http_status=status,
                headers=headers,
                etag=resp.headers.get("ETag") or req.etag,
                last_modified=resp.headers.get("Last-Modified") or req.last_modified,
                permanent_url=permanent_url,
                max_age=_max_age(resp.headers),
            )
        reason = _http_reason(status)
        retry_after = None
        if status in _RETRY_AFTER_STATUSES and "Retry-After" in resp.headers:
            retry_after = parse_retry_after(resp.headers["Retry-After"], self._clock())
            if retry_after is not None:
                reason += f" (retry after {int(retry_after.total_seconds())} s)"
        return FetchResult(
            status=FetchStatus.GONE if status == 410 else FetchStatus.ERROR,
            url=final,
            http_status=status,
            headers=headers,
            etag=req.etag,
            last_modified=req.last_modified,
            retry_after=retry_after,
            error=reason,
        )

    async def _read_body(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """The body, decoded, capped at max_bytes; and whether it was content-decoded."""
        cap = self._max_bytes
        encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            if resp.content_length is not None and resp.content_length > cap:
                raise _Failure(_too_large(cap))
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                if len(body) + len(chunk) > cap:
                    raise _Failure(_too_large(cap))
                body += chunk
            return bytes(body), False
        if encoding in ("gzip", "x-gzip", "deflate"):
            inflater = _Inflater(encoding, cap)
            async for chunk in resp.content.iter_chunked(_CHUNK):
                inflater.feed(chunk)
            return inflater.finish(), True
        raise _Failure(f"unsupported Content-Encoding {encoding[:40]!r}")


class _Progress:
    """The URL a fetch has reached, so a timeout can still say where it stopped."""

    __slots__ = ("url",)

    def __init__(self, url: URL) -> None:
        self.url = url


class _Inflater:
    """gzip/zlib/raw-deflate decoder whose output can never exceed `cap` bytes."""

    def __init__(self, encoding: str, cap: int) -> None:
        self._encoding = "deflate" if encoding == "deflate" else "gzip"
        self._cap = cap
        self._out = bytearray()
        self._head = b""  # deflate: bytes held until the zlib/raw choice can be made
        self._ended = False
        # wbits=47 reads a gzip or a zlib header (HTTP "deflate" should be zlib-wrapped);
        # some servers send raw deflate, recognised by its missing zlib header.
        self._obj: Any = zlib.decompressobj(wbits=47) if self._encoding == "gzip" else None

    def feed(self, data: bytes) -> None:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return
            wrapped = _is_zlib_header(self._head) or self._head.startswith(_GZIP_MAGIC)
            self._obj = zlib.decompressobj(wbits=47 if wrapped else -15)
            data, self._head = self._head, b""
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        while data and not self._ended:
            room = self._cap - len(self._out)
            try:
                piece = self._obj.decompress(data, room + 1)
            except zlib.error as exc:
                raise _Failure(f"invalid {self._encoding} body ({exc})") from None
            self._out += piece
            if len(self._out) > self._cap:
                raise _Failure(_too_large(self._cap))
            if self._obj.eof:
                rest: bytes = self._obj.unused_data
                if self._encoding == "gzip" and rest.startswith(_GZIP_MAGIC):
                    self._obj = zlib.decompressobj(wbits=47)  # next gzip member
                    data = rest
                    continue
                self._ended = True  # trailing bytes after the stream are ignored
                return
            data = self._obj.unconsumed_tail

    def finish(self) -> bytes:
        if self._obj is None:
            if self._head:
                raise _Failure(f"invalid {self._encoding} body (truncated)")
            return b""  # empty body
        if not self._ended:
            tail = self._obj.flush()
            if len(self._out) + len(tail) > self._cap:
                raise _Failure(_too_large(self._cap))
            self._out += tail
            if not self._obj.eof:
                raise _Failure(f"invalid {self._encoding} body (truncated)")
        return bytes(self._out)


def _is_zlib_header(head: bytes) -> bool:
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


def is_private_target(
    url: URL | str, kind_of: Callable[[IPAddress], str | None] = address_kind
) -> bool:
    """Whether a feed URL names a non-public host on purpose: a non-public IP literal or an
    intranet name (`localhost`, a single label, a reserved or common intranet suffix)."""
    host = (URL(url).host if isinstance(url, str) else url.host) or ""
    host = host.lower().rstrip(".")
    ip = parse_ip(host)
    if ip is not None:
        return kind_of(ip) is not None
    return host == "localhost" or "." not in host or host.endswith(_INTRANET_SUFFIXES)


def _max_age(headers: CIMultiDictProxy[str]) -> timedelta | None:
    cache_control = ", ".join(headers.getall("Cache-Control", []))
    return cache_control_max_age(cache_control or None, headers.get("Age"))


def _check_url(url: URL) -> URL:
    """The URL if it is an absolute http(s) URL with a host; _Failure otherwise."""
    scheme = url.scheme.lower()
    if scheme not in _SCHEMES:
        shown = f"{scheme!r}" if scheme else "none"
        raise _Failure(f"unsupported URL scheme {shown[:40]} (only http and https)")
    if not url.host:
        raise _Failure("invalid URL (no host)")
    return url.with_fragment(None)


def _resolve_redirect(base: URL, location: str) -> URL:
    try:
        target = base.join(URL(location.strip()))
    except ValueError:
        raise _Failure("redirect to an invalid URL") from None
    try:
        return _check_url(target)
    except _Failure as failure:
        raise _Failure(f"redirect to {failure}") from None


def _header_safe(value: str) -> bool:
    """A stored validator that can be sent back as a header (no CR/LF, Latin-1)."""
    if not value or "\r" in value or "\n" in value:
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _plain_headers(headers: CIMultiDictProxy[str], *, decoded: bool) -> dict[str, str]:
    """Response headers as a plain dict with lower-case keys; repeated headers joined."""
    drop = {"content-encoding", "content-length"} if decoded else {"content-encoding"}
    out: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name in drop:
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _http_reason(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _too_large(cap: int) -> str:
    mib, kib = 1024 * 1024, 1024
    if cap % mib == 0:
        return f"response larger than {cap // mib} MB"
    if cap % kib == 0:
        return f"response larger than {cap // kib} KB"
    return f"response larger than {cap} bytes"


def _os_reason(exc: BaseException | None) -> str:
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, _AddressRefused):
        return os.strerror(exc.errno).lower()
    text = str(exc) if exc is not None else ""
    return text or type(exc).__name__


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    """A one-line reason without URL or credentials (aiohttp's texts may carry the URL)."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, PrivateAddressRefused
    ):
        return str(exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or cert
        return f"TLS certificate of {exc.host} not accepted: {detail}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {exc.host} failed: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup of {exc.host} failed: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        host = f"[{exc.host}]" if ":" in exc.host else exc.host
        return f"cannot connect to {host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response body incomplete (connection closed or malformed transfer)"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP response: {one_line(str(exc.message), 120)}"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"network error: {_os_reason(exc)}"
    return f"HTTP client error: {type(exc).__name__}"


def _error(req: FetchRequest, url: str, reason: str) -> FetchResult:
    return FetchResult(
        status=FetchStatus.ERROR,
        url=url,
        etag=req.etag,
        last_modified=req.last_modified,
        # masked before the cut, which could leave a password without its "@" behind
        error=one_line(mask_credentials(reason, req.url, url), _REASON_MAX),
    )


def mask_credentials(text: str, *urls: str) -> str:
    """`text` with any `user:password@` in it, and the passwords of `urls`, masked as `***`."""
    text = _USERINFO.sub(r"\1***@", text)
    for raw in urls:
        try:
            url = URL(raw)
        except ValueError:
            continue
        for secret in (url.raw_password, url.password):
            if secret and len(secret) >= 4:  # shorter ones would mangle ordinary words
                text = text.replace(secret, "***")
    return text


def _public_only(
    allow: Callable[[IPAddress], bool] | None, kind_of: Callable[[IPAddress], str | None]
) -> Callable[[IPAddress], bool]:
    """`allow` (if any) and: the address is public, else PrivateAddressRefused."""

    def check(ip: IPAddress) -> bool:
        kind = kind_of(ip)
        if kind is not None:
            raise PrivateAddressRefused(ip, kind)
        return allow is None or allow(ip)

    return check


def _guarded_socket(allow: Callable[[IPAddress], bool]) -> Callable[[Any], socket.socket]:
    """A socket factory for aiohttp that refuses addresses `allow` rejects, at connect time."""

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, address = addr_info
        ip: IPAddress = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not allow(ip):
            raise _AddressRefused(f"address {ip} is not allowed")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
