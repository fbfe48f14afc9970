"""A scriptable loopback HTTP server for fetch and end-to-end tests.

`FeedServer` listens on 127.0.0.1 (ephemeral port) in a background thread and answers each
path from `routes`, a dict tests fill in:

    with FeedServer() as srv:
        srv.routes["/feed.xml"] = Static(RSS, etag='"v1"', last_modified=HTTP_DATE)
        srv.routes["/old"] = Redirect("/feed.xml", status=301)
        srv.routes["/busy"] = Static(b"", status=429, headers={"Retry-After": "120"})
        # a callable decides per request; hits() already counts the current one
        srv.routes["/flaky"] = lambda req: (
            Static(status=500) if srv.hits("/flaky") < 3 else Static(RSS)
        )
        url = srv.url("/feed.xml")
        ...
        assert srv.requests_for("/feed.xml")[-1].headers["if-none-match"] == '"v1"'

Route kinds: `Static` (body, status, headers, validators answered with 304, gzip/deflate
encoding, delay before headers), `Redirect`, `Drip` (slow body), `Endless`, `GzipBomb`,
`Silent` (accepts, never answers), `Raw` (bytes written as they are), or a callable taking
the `RequestRecord` and returning one of these. Unknown paths answer 404.

Every sleep is bounded and interrupted by shutdown; handler threads are daemons, so leaving
the `with` block never hangs. The `feed_server` fixture yields a running server; a test
module makes it visible with `feed_server = feedserver.feed_server` (a `pytest_plugins`
entry in a test module trips pytest's assertion-rewrite warning, an error here).
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest

HOST = "127.0.0.1"
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
MAX_SLEEP = 30.0  # no handler ever sleeps longer in one go


# --- routes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Static:
    """A fixed answer. With `etag`/`last_modified`, matching validators get a 304.

    `encoding` is None, "gzip", "deflate" (zlib-wrapped) or "raw-deflate" (what some servers
    wrongly send as deflate); the body is compressed on the fly. `delay` sleeps before any
    byte of the answer is sent (a slow server).
    """

    body: bytes = b""
    content_type: str | None = RSS_CONTENT_TYPE
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    encoding: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Redirect:
    """A redirect to `location` (absolute, or relative to the request)."""

    location: str
    status: int = 302


@dataclass(frozen=True)
class Drip:
    """`size` bytes sent `chunk` bytes at a time with `interval` seconds between chunks.

    Content-Length announces the full size, so the client waits for all of it.
    """

    size: int = 20
    interval: float = 0.2
    chunk: int = 1
    content_type: str = RSS_CONTENT_TYPE


@dataclass(frozen=True)
class Endless:
    """A chunked body that never ends (bounded by `limit` bytes and `seconds`)."""

    piece: int = 64 * 1024
    limit: int = 1024 * 1024 * 1024
    seconds: float = 20.0
    content_type: str = RSS_CONTENT_TYPE


@dataclass(frozen=True)
class GzipBomb:
    """A small gzip body (Content-Encoding: gzip) that decodes to `size` zero bytes."""

    size: int = 64 * 1024 * 1024
    content_type: str = RSS_CONTENT_TYPE


@dataclass(frozen=True)
class Silent:
    """Reads the request and never answers (for `hold` seconds, then closes)."""

    hold: float = 10.0


@dataclass(frozen=True)
class Raw:
    """Bytes written to the socket as they are (malformed responses); then the socket closes."""

    data: bytes


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server received it. Header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    time: float
    client: str = ""  # the client's address


Route = Static | Redirect | Drip | Endless | GzipBomb | Silent | Raw
Responder = Route | Callable[[RequestRecord], Route]


# --- server --------------------------------------------------------------------------------


class FeedServer:
    """The loopback server. Context manager; `start()`/`stop()` also work directly."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = HOST) -> None:
        self.host = host  # another local address than 127.0.0.1: the cluster's netns test
        self.routes: dict[str, Responder] = {}
        self._ssl_context = ssl_context
        self._requests: list[RequestRecord] = []
        self._connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._bombs: dict[int, bytes] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle

    def start(self) -> Self:
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # addresses and records

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of `path` (which starts with "/")."""
        return self.base_url + path

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == path]

    def hits(self, path: str) -> int:
        return len(self.requests_for(path))

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (several requests may share one: keep-alive)."""
        with self._lock:
            return self._connections

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    # used by the handler

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _route(self, record: RequestRecord) -> Route | None:
        responder = self.routes.get(record.path)
        if responder is None:
            responder = self.routes.get(record.path.split("?", 1)[0])
        if responder is None or isinstance(responder, Route):
            return responder
        return responder(record)

    def _sleep(self, seconds: float) -> bool:
        """Sleep (bounded); False when the server is stopping."""
        return not self._stopping.wait(min(max(seconds, 0.0), MAX_SLEEP))

    def _bomb(self, size: int) -> bytes:
        with self._lock:
            cached = self._bombs.get(size)
        if cached is None:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(1024 * 1024)
            parts = [packer.compress(block) for _ in range(size // len(block))]
            parts.append(packer.compress(bytes(size % len(block))))
            parts.append(packer.flush())
            cached = b"".join(parts)
            with self._lock:
                self._bombs[size] = cached
        return cached


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], owner: FeedServer
    ) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner._connections += 1
        sock: socket.socket = request
        sock.settimeout(MAX_SLEEP)
        context = self.owner._ssl_context
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                return  # the client refused our certificate: nothing to serve
        with self._open_lock:
            self._open.add(sock)
        try:
            super().finish_request(sock, client_address)
        except OSError:
            pass  # client went away mid-answer
        finally:
            with self._open_lock:
                self._open.discard(sock)
            if sock is not request:
                sock.close()

    def close_connections(self) -> None:
        """Unblock every handler thread still reading or writing."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client disconnects are normal here; tests assert on results instead


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1024 * 1024))
        self._serve()

    # dispatch

    def _serve(self) -> None:
        owner = self.server.owner
        record = RequestRecord(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            time=time.monotonic(),
            client=str(self.client_address[0]),
        )
        owner._record(record)
        route = owner._route(record)
        try:
            if route is None:
                self._static(Static(b"not found\n", "text/plain", status=404))
            elif isinstance(route, Static):
                self._static(route)
            elif isinstance(route, Redirect):
                self._send_head(route.status, {"Location": route.location, "Content-Length": "0"})
            elif isinstance(route, Drip):
                self._drip(route)
            elif isinstance(route, Endless):
                self._endless(route)
            elif isinstance(route, GzipBomb):
                body = owner._bomb(route.size)
                self._send_head(
                    200,
                    {
                        "Content-Type": route.content_type,
                        "Content-Encoding": "gzip",
                        "Content-Length": str(len(body)),
                    },
                )
                self._write(body)
            elif isinstance(route, Silent):
                owner._sleep(route.hold)
                self.close_connection = True
            else:
                self.wfile.write(route.data)
                self.wfile.flush()
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _write(self, data: bytes) -> None:
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _static(self, route: Static) -> None:
        if route.delay and not self.server.owner._sleep(route.delay):
            self.close_connection = True
            return
        headers: dict[str, str] = {}
        if route.etag is not None:
            headers["ETag"] = route.etag
        if route.last_modified is not None:
            headers["Last-Modified"] = route.last_modified
        if route.status == 200 and self._not_modified(route):
            self._send_head(304, {**headers, **route.headers})
            return
        body = _encode(route.body, route.encoding)
        if route.content_type is not None:
            headers["Content-Type"] = route.content_type
        if route.encoding is not None:
            headers["Content-Encoding"] = "deflate" if "deflate" in route.encoding else "gzip"
        headers["Content-Length"] = str(len(body))
        self._send_head(route.status, {**headers, **route.headers})
        self._write(body)

    def _not_modified(self, route: Static) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None and route.etag is not None:
            tags = [t.strip() for t in inm.split(",")]
            return "*" in tags or route.etag in tags
        ims = self.headers.get("If-Modified-Since")
        if inm is None and ims is not None and route.last_modified is not None:
            try:
                return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(ims)
            except (TypeError, ValueError):
                return False
        return False

    def _drip(self, route: Drip) -> None:
        self._send_head(
            200, {"Content-Type": route.content_type, "Content-Length": str(route.size)}
        )
        sent = 0
        while sent < route.size:
            n = min(route.chunk, route.size - sent)
            self._write(b"x" * n)
            sent += n
            if sent < route.size and not self.server.owner._sleep(route.interval):
                break
        self.close_connection = True

    def _endless(self, route: Endless) -> None:
        self._send_head(200, {"Content-Type": route.content_type, "Transfer-Encoding": "chunked"})
        piece = b"<item>" + b"x" * max(route.piece - 13, 0) + b"</item>"
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        deadline = time.monotonic() + min(route.seconds, MAX_SLEEP)
        sent = 0
        stopping = self.server.owner._stopping
        while sent < route.limit and time.monotonic() < deadline and not stopping.is_set():
            self.wfile.write(frame)
            sent += len(piece)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


def _encode(body: bytes, encoding: str | None) -> bytes:
    if encoding is None:
        return body
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "raw-deflate":
        packer = zlib.compressobj(wbits=-15)
        return packer.compress(body) + packer.flush()
    raise ValueError(f"unknown encoding {encoding!r}")


# --- fixture and helpers -------------------------------------------------------------------


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running FeedServer with no routes; stopped after the test."""
    with FeedServer() as server:
        yield server


def closed_port() -> int:
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def http_date(epoch: float) -> str:
    """An IMF-fixdate, as in Last-Modified and Retry-After."""
    from email.utils import formatdate

    return formatdate(epoch, usegmt=True)
