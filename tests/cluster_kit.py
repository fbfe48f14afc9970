"""What the cluster tests share: a private redis-server, monitor processes, configs, RSS.

Each test gets its own redis-server (a free port, nothing saved), so a test may restart its
broker, and clusters of several tests never share a queue. `Procs` starts `monitor`
subprocesses with their output in files and kills whatever is left when the test ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.servers import free_port
from tests.test_daemon import wait_until
from tests.test_promises import rss as rss  # the same feed documents as the promise tests

ROOT = Path(__file__).resolve().parent.parent


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server): no broker")
    return found


class RedisServer:
    """A private redis-server on 127.0.0.1 (or `bind`), in memory only; restartable."""

    def __init__(
        self,
        folder: Path,
        bind: str = "127.0.0.1",
        port: int | None = None,
        password: str = "broker-s3cret",
    ) -> None:
        self.binary = redis_binary()
        self.folder = folder
        self.bind = bind
        self.port = port or free_port()
        self.password = password  # the logs must never show it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.bind}:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                self.bind,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--requirepass",
                self.password,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self.ping, 10, "redis-server to answer")

    def ping(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.bind, self.port), timeout=0.5) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                time.sleep(0.05)
                return b"+PONG" in s.recv(64)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Procs:
    """`monitor` subprocesses of one test, each logging to <name>.log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, args: Sequence[str], prefix: Sequence[str] = (), **env: str
    ) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("ab")
        environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "monitor", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            env=environ,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, name: str, text: str, timeout: float) -> None:
        wait_until(lambda: text in self.log(name), timeout, f"{text!r} in {name}'s log")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].send_signal(sig)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def dump(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)[-4000:]}" for n in self.procs)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    group = Procs(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def cluster_config(
    path: Path,
    database: str,
    broker: str,
    body: str = "",
    *,
    queue: str = "monitor",
    redispatch_after: str = "5m",
) -> Path:
    """A config.toml of a cluster: the database, the broker, then `body` (channels, ...)."""
    path.write_text(
        f'[monitor]\ndatabase = "{database}"\nwatch_config = true\n'
        f'[cluster]\nbroker = "{broker}"\nqueue = "{queue}"\n'
        f'redispatch_after = "{redispatch_after}"\n{body}',
        encoding="utf-8",
    )
    return path
