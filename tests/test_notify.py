"""The systemd notify protocol of `monitor run`, against a datagram socket set as NOTIFY_SOCKET
(what systemd does for Type=notify): READY=1 once running, WATCHDOG=1 from every tick when
WATCHDOG_USEC asks for it (and never otherwise), RELOADING=1 ... READY=1 around a reload, and
STOPPING=1 at SIGTERM. deploy/verify-unit.sh runs the same daemon under a real systemd."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Static
from tests.test_daemon import config, rss


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(20)
    yield path, sock
    sock.close()


def next_message(sock: socket.socket) -> tuple[float, str, int]:
    """(arrival time, message, sender pid from SCM_CREDENTIALS)."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = -1
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(payload[:4], sys.byteorder)
    return time.monotonic(), data.decode(), pid


def start(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (tmp_path / "daemon.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(tmp_path / "config.toml"), "run"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )


def test_ready_watchdog_reloading_stopping(
    tmp_path: Path, notify: tuple[str, socket.socket]
) -> None:
    path, sock = notify
    with FeedServer() as srv:
        srv.routes["/one.xml"] = Static(rss("k1", "Nothing", "Nothing here"))
        from tests.servers import WebhookServer

        with WebhookServer() as hook:
            (tmp_path / "config.toml").write_text(config(srv, hook, tmp_path), encoding="utf-8")
            env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "6000000"}
            proc = start(tmp_path, env)
            try:
                _, first, pid = next_message(sock)
                assert first == "READY=1"
                assert pid == proc.pid  # NotifyAccess=main: the main process itself sends
                pings = []
                while len(pings) < 3:
                    at, message, _ = next_message(sock)
                    assert message == "WATCHDOG=1"
                    pings.append(at)
                # one ping per tick (2 s): well inside WatchdogSec/2 = 3 s; no tight bound
                assert all(b - a < 3.0 for a, b in itertools.pairwise(pings)), pings
                proc.send_signal(signal.SIGHUP)
                messages = [next_message(sock)[1] for _ in range(4)]
                reload = [m for m in messages if m != "WATCHDOG=1"]
                assert reload[0].startswith("RELOADING=1\nMONOTONIC_USEC="), messages
                assert reload[1] == "READY=1", messages
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
                rest = []
                sock.settimeout(0.5)
                while True:
                    try:
                        rest.append(next_message(sock)[1])
                    except TimeoutError:
                        break
                assert rest and rest[-1] == "STOPPING=1", rest
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_no_watchdog_pings_unless_systemd_asks(
    tmp_path: Path, notify: tuple[str, socket.socket]
) -> None:
    path, sock = notify
    with FeedServer() as srv:
        srv.routes["/one.xml"] = Static(rss("k1", "Nothing", "Nothing here"))
        from tests.servers import WebhookServer

        with WebhookServer() as hook:
            (tmp_path / "config.toml").write_text(config(srv, hook, tmp_path), encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
            # WATCHDOG_PID names another process: the pings are not ours to send
            env |= {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "6000000", "WATCHDOG_PID": "1"}
            proc = start(tmp_path, env)
            try:
                assert next_message(sock)[1] == "READY=1"
                sock.settimeout(5)  # more than two ticks
                with pytest.raises(TimeoutError):
                    next_message(sock)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
                assert next_message(sock)[1] == "STOPPING=1"
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
