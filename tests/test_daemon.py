"""`monitor run` as a real process: first poll at start, alerts within seconds, SIGHUP reload
(an invalid file keeps the old config), systemd notifications, and a clean SIGTERM stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer


def rss(guid: str, title: str, text: str) -> bytes:
    date = format_datetime(datetime.now(UTC))
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://n.example/{guid}</link>"
        f"<description>{text}</description><pubDate>{date}</pubDate></item></channel></rss>"
    ).encode()


def config(srv: FeedServer, hook: WebhookServer, tmp: Path, extra: str = "") -> str:
    return f"""
[monitor]
database = "sqlite:///{tmp / "monitor.db"}"
interval = "1h"
timeout = "5s"
watch_config = false
[channels]
hook = "{hook.apprise_url()}"
[[feeds]]
name = "one"
url = "{srv.url("/one.xml")}"
[[rules]]
name = "kursk"
query = "Kursk"
{extra}"""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            return messages


def test_run_alerts_reloads_and_stops_cleanly(
    tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Lage in Kursk", "Bericht aus Kursk."))
        srv.routes["/two.xml"] = Static(rss("t1", "Sanktionen", "Neue Sanktionen gegen Pjöngjang."))
        path = tmp_path / "config.toml"
        path.write_text(config(srv, hook, tmp_path), encoding="utf-8")
        log = (tmp_path / "daemon.log").open("w")
        env = {**os.environ, "NOTIFY_SOCKET": notify_socket[0]}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            # polls at start and alerts within seconds
            [first] = hook.wait_for(1, timeout=15)
            assert "Lage in Kursk" in str(first.json)

            # an invalid config on SIGHUP is refused; the daemon keeps running
            path.write_text(config(srv, hook, tmp_path, "[[rules]]\nname = 'x'\nquery = '('"))
            proc.send_signal(signal.SIGHUP)
            logs = tmp_path / "daemon.log"
            wait_until(lambda: "not reloaded" in logs.read_text(), 10, "the refused reload")
            assert proc.poll() is None

            # a valid one adds a feed and a rule, polled right away
            extra = (
                f'[[feeds]]\nname = "two"\nurl = "{srv.url("/two.xml")}"\n'
                '[[rules]]\nname = "sanctions"\nquery = "Sanktionen"\n'
            )
            path.write_text(config(srv, hook, tmp_path, extra), encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            hook.wait_for(2, timeout=20)
            assert "Sanktionen" in str(hook.requests[1].json)

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0  # a generous bound: it stops within seconds
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        messages = received(notify_socket[1])
        assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1", messages
        # each SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again
        reloads = messages[1:-1]
        assert [m.split("\n")[0] for m in reloads] == ["RELOADING=1", "READY=1"] * 2, messages
        text = (tmp_path / "daemon.log").read_text()
        assert "Traceback" not in text
        assert len(hook.requests) == 2  # nothing sent twice


def test_sigterm_during_a_slow_fetch_exits_promptly(tmp_path: Path) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        # the server would answer after 30 s, within the 60 s fetch timeout
        srv.routes["/one.xml"] = Static(rss("k1", "Kursk", "Kursk"), delay=30.0)
        path = tmp_path / "config.toml"
        path.write_text(config(srv, hook, tmp_path).replace('"5s"', '"60s"'), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: srv.hits("/one.xml") >= 1, 15, "the first fetch")
            proc.send_signal(signal.SIGTERM)
            # the 5 s grace, then the fetch is dropped: it exits long before the answer
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
            assert "Traceback" not in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sigterm_during_a_send_records_the_delivery(tmp_path: Path) -> None:
    """The alert being sent at SIGTERM is finished and marked: a restart never resends it."""
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Kursk", "Kursk"))
        hook.set_delay(3.0)
        path = tmp_path / "config.toml"
        path.write_text(config(srv, hook, tmp_path), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: len(hook.requests) >= 1, 15, "the send to start")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        hook.set_delay(0)
        again = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(path), "poll"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert "0 delivered" in again.stdout
        assert len(hook.requests) == 1


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_second_daemon_on_the_same_database_refuses_to_start(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Nothing", "Nothing to see"))
        path = tmp_path / "config.toml"
        text = config(srv, hook, tmp_path)
        if backend == "postgres":
            url = request.getfixturevalue("postgres_url")
            text = text.replace(f"sqlite:///{tmp_path / 'monitor.db'}", url)
        path.write_text(text, encoding="utf-8")
        command = [sys.executable, "-m", "monitor", "--config", str(path), "run"]
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: srv.hits("/one.xml") >= 1, 15, "the first daemon to poll")
            second = subprocess.run(command, capture_output=True, text=True, timeout=30)
            assert second.returncode == 1
            assert "another `monitor run` is already using this database" in second.stderr
            assert "Traceback" not in second.stderr
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=20) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            if first.stderr is not None:
                first.stderr.close()


def test_a_feed_fixed_by_reload_is_polled_at_once_even_while_its_old_poll_hangs(
    tmp_path: Path,
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Kursk", "Kursk"), delay=20.0)  # hangs
        srv.routes["/fixed.xml"] = Static(rss("k2", "Kursk fixed", "Kursk"))
        path = tmp_path / "config.toml"
        text = config(srv, hook, tmp_path).replace('"5s"', '"30s"')
        path.write_text(text, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: srv.hits("/one.xml") >= 1, 15, "the hanging fetch")
            fixed = text.replace(srv.url("/one.xml"), srv.url("/fixed.xml"))
            path.write_text(fixed.replace('"30s"', '"10s"'), encoding="utf-8")  # new timeout too
            proc.send_signal(signal.SIGHUP)
            [alert] = hook.wait_for(1, timeout=15)
            assert "Kursk fixed" in str(alert.json)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert "Traceback" not in err and "abandoned: its config changed" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
