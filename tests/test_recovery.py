"""Prompt recovery after a crash: `monitor run` killed with SIGKILL (the whole process group,
as systemd would) and started again takes over the dead process's outbox leases at once.

(a) killed between the receiver's acceptance and the mark: the alert arrives again within
    10 s of the restart (before leases named their owner it waited out DELIVERY_LEASE, 5 min);
(b) killed many times at random moments while it polls and delivers a few hundred alerts, then
    run once cleanly: every alert arrives, and an alert arrives twice at most as often as a
    kill landed between a receiver's acceptance and the mark.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any

from tests.feedserver import FeedServer, Static
from tests.servers import ReceivedRequest, WebhookServer

ALERT_ID = re.compile(rb"nm-[0-9a-f]{20}")


def rss(count: int) -> bytes:
    date = format_datetime(datetime.now(UTC))
    items = "".join(
        f"<item><guid>r{i}</guid><title>Lage bei Kursk, Nummer {i}</title>"
        f"<link>https://n.example/r{i}</link><description>Bericht {i}.</description>"
        f"<pubDate>{date}</pubDate></item>"
        for i in range(count)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    ).encode()


def write_config(tmp: Path, feed_url: str, hook: WebhookServer) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[monitor]
database = "sqlite:///{tmp / "monitor.db"}"
interval = "1h"
timeout = "5s"
[channels]
hook = "{hook.apprise_url()}"
[[feeds]]
name = "news"
url = "{feed_url}"
[[rules]]
name = "kursk"
query = "Kursk"
""",
        encoding="utf-8",
    )
    return path


def alert_id(request: ReceivedRequest) -> str:
    found = ALERT_ID.search(request.body)
    assert found, request.body
    return found.group().decode()


def start(config: Path, log: IO[Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes its workers too
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill(proc)


def delivered_ids(tmp: Path) -> set[str]:
    with sqlite3.connect(tmp / "monitor.db", timeout=30) as db:
        try:
            rows = db.execute("SELECT alert_id FROM outbox WHERE delivered_at IS NOT NULL")
        except sqlite3.OperationalError:  # killed before its first migration: no tables yet
            return set()
        return {r[0] for r in rows}


def test_an_alert_accepted_but_not_marked_is_sent_again_within_seconds_of_a_restart(
    tmp_path: Path,
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(1))
        config = write_config(tmp_path, srv.url("/f.xml"), hook)
        hook.hold()  # the receiver reads the request, then keeps its answer back
        with (tmp_path / "daemon.log").open("w") as log:
            proc = start(config, log)
            try:
                [first] = hook.wait_for(1, timeout=30)
                kill(proc)  # accepted by the receiver, never marked delivered
                hook.release()
                assert delivered_ids(tmp_path) == set()
                proc = start(config, log)
                restarted = time.monotonic()
                second = hook.wait_for(2, timeout=30)[1]
                took = time.monotonic() - restarted
                assert alert_id(second) == alert_id(first)
                assert took < 10, f"the alert came {took:.1f} s after the restart"
                stop(proc)
            finally:
                kill(proc)
        assert "no longer running" in (tmp_path / "daemon.log").read_text()


def test_random_kills_lose_nothing_and_duplicate_only_in_the_window(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MONITOR_TEST_SEED", "9")))
    total, kills = 300, 12
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(total))
        config = write_config(tmp_path, srv.url("/f.xml"), hook)
        hook.set_delay(0.01)  # a window worth aiming at between acceptance and mark
        windows = 0  # kills that landed after an acceptance and before its mark
        seen = 0  # requests counted at the previous kill
        with (tmp_path / "daemon.log").open("w") as log:
            for _ in range(kills):
                proc = start(config, log)
                try:
                    time.sleep(rng.uniform(0.8, 2.5))
                finally:
                    kill(proc)
                requests = hook.requests
                since = {alert_id(r) for r in requests[seen:]}
                seen = len(requests)
                # accepted since the last kill but not marked: this kill hit the window
                windows += len(since - delivered_ids(tmp_path))
            proc = start(config, log)
            try:
                deadline = time.monotonic() + 60
                while len({alert_id(r) for r in hook.requests}) < total:
                    assert time.monotonic() < deadline, "not every alert arrived"
                    time.sleep(0.1)
                time.sleep(1)  # nothing more should come
            finally:
                stop(proc)
        counts = Counter(alert_id(r) for r in hook.requests)
        assert len(counts) == total
        assert delivered_ids(tmp_path) == set(counts)
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= windows, (duplicates, windows)
        assert windows <= kills
