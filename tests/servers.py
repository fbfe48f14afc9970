"""Loopback receivers for delivery tests: a real SMTP server and a JSON webhook.

Both listen on 127.0.0.1 on a free port, run in a background thread, are context managers,
and can be stopped and restarted on the SAME port to simulate an outage:

    with SmtpServer() as smtp:
        url = smtp.apprise_url()        # mailto://user:pass@127.0.0.1:PORT?...
        ...                             # deliver
        smtp.stop()                     # outage: connection refused
        smtp.start()                    # back, same port
        assert smtp.messages[0]["Subject"] == "..."

    with WebhookServer() as hook:
        hook.fail_next(2)               # answer 500 twice, then 200
        url = hook.apprise_url()        # json://127.0.0.1:PORT/hook
        assert hook.requests[0].json["title"] == "..."

Failures are scriptable (`fail_next`, `always_fail`, `delay`) so the same servers serve the
outbox/retry tests. Shutdown is bounded: no request handler or delay can hang a test.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def closed_port() -> int:
    """A port with nothing listening: connections are refused at once."""
    return free_port()


# --- SMTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted SMTP transaction."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class _Handler:
    """aiosmtpd handler: records messages, or answers a scripted failure."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self._owner
        with owner._lock:
            if owner._fail_remaining > 0:
                owner._fail_remaining -= 1
                return owner._fail_reply
            if owner._always_reply is not None:
                return owner._always_reply
            raw = envelope.original_content or b""
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            owner.received.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    message=msg,
                    raw=raw,
                )
            )
            owner._arrived.set()
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that accepts any AUTH login without TLS."""

    def __init__(self, port: int | None = None, *, user: str = "user", password: str = "pass"):
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password
        self.received: list[ReceivedMail] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._fail_remaining = 0
        self._fail_reply = "451 4.3.0 Try again later"
        self._always_reply: str | None = None
        self._controller: Controller | None = None

    # --- lifecycle
    def start(self) -> None:
        """Listen (again) on `self.port`. A stopped server restarts on the same port."""
        if self._controller is not None:
            return
        controller = Controller(
            _Handler(self),
            hostname=HOST,
            port=self.port,
            ready_timeout=5.0,
            auth_require_tls=False,
            authenticator=self._authenticate,
            decode_data=False,
        )
        deadline = time.monotonic() + 5.0
        while True:  # the port may linger briefly after a stop
            try:
                controller.start()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: new connections are refused until `start()`."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting
    def fail_next(self, n: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the DATA of the next `n` transactions with `reply` (4xx or 5xx)."""
        with self._lock:
            self._fail_remaining = n
            self._fail_reply = reply

    def always_fail(self, reply: str | None = "550 5.7.1 Rejected") -> None:
        """Answer every DATA with `reply`; None accepts again."""
        with self._lock:
            self._always_reply = reply

    # --- results
    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received]

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait (bounded) until `count` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.received) >= count:
                    return [r.message for r in self.received]
                self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.received)} of {count} message(s) arrived")
            self._arrived.wait(remaining)

    def apprise_url(self, to: str = "desk@example.org", sender: str = "monitor@example.org") -> str:
        """The Apprise URL for this server: plain SMTP (no TLS, no STARTTLS) with AUTH."""
        return (
            f"mailto://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{HOST}:{self.port}?from={sender}&to={to}"
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = getattr(auth_data, "login", b"")
        with self._lock:
            self.logins.append(login.decode() if isinstance(login, bytes) else str(login))
        return AuthResult(success=True)


# --- webhook -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the webhook received (recorded even when answered with an error)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int  # what we answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Script:
    fail_remaining: int = 0
    fail_status: int = 500
    always_status: int | None = None
    delay: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # never join handler threads on close
    allow_reuse_address = True


class WebhookServer:
    """A threaded stdlib HTTP server on 127.0.0.1 recording POSTs; scriptable failures."""

    MAX_BODY = 1024 * 1024

    def __init__(self, port: int | None = None, *, path: str = "/hook") -> None:
        self.port = port if port is not None else free_port()
        self.path = path
        self._script = _Script()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._gate = threading.Event()  # cleared by hold(): answers wait until release()
        self._gate.set()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reply: bytes | None = None  # the body of a successful answer (default JSON)

    # --- lifecycle
    def start(self) -> None:
        """Listen (again) on `self.port`."""
        if self._server is not None:
            return
        self._stopping.clear()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a stuck client cannot hold a handler thread forever

            def do_POST(self) -> None:
                owner._handle(self)

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        deadline = time.monotonic() + 5.0
        while True:
            try:
                server = _HTTPServer((HOST, self.port), Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening (bounded: pending delays are cut short)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._stopping.set()
        self._gate.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting
    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next `n` requests with `status`."""
        with self._lock:
            self._script.fail_remaining = n
            self._script.fail_status = status

    def always_fail(self, status: int | None = 500) -> None:
        """Answer every request with `status`; None answers 200 again."""
        with self._lock:
            self._script.always_status = status

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering (the request is recorded first)."""
        with self._lock:
            self._script.delay = seconds

    def hold(self) -> None:
        """Keep every answer back until `release()` (requests are recorded first; at most
        30 s, and `stop()` releases them)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    # --- results
    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._script.requests)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait (bounded) until `count` requests arrived; return them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._script.requests) >= count, timeout):
                raise TimeoutError(f"{len(self._script.requests)} of {count} request(s) arrived")
            return list(self._script.requests)

    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def apprise_url(self, user: str | None = None, password: str | None = None) -> str:
        """The Apprise `json://` URL for this server (optionally with credentials)."""
        auth = ""
        if user is not None:
            auth = quote(user, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        return f"json://{auth}{HOST}:{self.port}{self.path}"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = min(int(h.headers.get("Content-Length") or 0), self.MAX_BODY)
        body = h.rfile.read(length) if length > 0 else b""
        with self._lock:
            script = self._script
            if script.fail_remaining > 0:
                script.fail_remaining -= 1
                status = script.fail_status
            elif script.always_status is not None:
                status = script.always_status
            else:
                status = 200
            delay = script.delay
            script.requests.append(
                ReceivedRequest(
                    method=h.command,
                    path=h.path,
                    headers={k: v for k, v in h.headers.items()},
                    body=body,
                    status=status,
                )
            )
            self._arrived.notify_all()
        if delay > 0:
            self._stopping.wait(delay)
        self._gate.wait(30)
        payload = b'{"ok": true}' if status < 400 else b'{"error": "scripted failure"}'
        if status < 400 and self.reply is not None:
            payload = self.reply  # e.g. b"ok", what Slack's webhook answers
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout test): nothing to answer
