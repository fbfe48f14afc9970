"""Worker processes never outlive the monitor: after `kill -9` of `monitor run`, its
forkserver, pool workers and resource tracker go too (Linux parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer
from tests.test_daemon import config, rss, wait_until


def descendants(pid: int) -> set[int]:
    """Every process whose chain of parents leads to `pid` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            left.add(pid)
    return left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_daemon_is_killed(tmp_path: Path) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Lage in Kursk", "Bericht aus Kursk."))
        path = tmp_path / "config.toml"
        path.write_text(config(srv, hook, tmp_path), encoding="utf-8")
        log = (tmp_path / "daemon.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # orphans are re-parented away from pytest
        )
        try:
            wait_until(lambda: len(hook.requests) == 1, 30, "the first alert")
            children = descendants(proc.pid)
            assert len(children) >= 2, "expected a forkserver and its worker processes"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 15
            while alive(children) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = alive(children)
            assert not left, f"processes left behind by the killed daemon: {sorted(left)}"
        finally:
            for pid in alive(descendants(proc.pid)):
                os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
