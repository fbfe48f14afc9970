"""What the daemon's log says about feeds: one line per failure, a feed gone (410) said once
and never polled again, and no Alembic chatter at start."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.app import make_app
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.store.repo import Store
from tests.feedserver import FeedServer, Static
from tests.test_daemon import wait_until

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp: Path, url: str) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[monitor]
database = "sqlite:///monitor.db"
[channels]
[[feeds]]
name = "flaky"
url = "{url}"
[[rules]]
name = "kursk"
any = ["Kursk"]
channels = []
""",
        encoding="utf-8",
    )
    return path


def polls_of(
    caplog: pytest.LogCaptureFixture, times: int, path: Path, *, with_poll: bool = False
) -> list[str]:
    """Run the daemon's poll of the one feed `times` times (`with_poll`: and a `monitor poll`
    pass after each); the log lines naming it."""
    config = load_config(path, os.environ)
    store = Store.open(config.settings.database)
    app = make_app(config, store=store)
    daemon = Daemon(app, lambda: config)

    async def run() -> None:
        async with app.fetcher() as fetcher:
            daemon.fetcher = fetcher
            for _ in range(times):
                # what the daemon's tick does: poll what the database says is due
                for feed in await asyncio.to_thread(pipeline.due_feeds, app):
                    await daemon.poll_one(feed, fetcher)
                if with_poll:  # `monitor poll` beside it polls whatever is not gone
                    await pipeline.poll_all(app, fetcher)

    try:
        with caplog.at_level(logging.INFO):
            asyncio.run(run())
    finally:
        app.close()
        store.close()
    return [r.getMessage() for r in caplog.records if "flaky" in r.getMessage()]


def test_one_log_line_per_feed_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(b"oops", status=500)
        lines = polls_of(caplog, 1, write_config(tmp_path, srv.url("/f.xml")))
    assert len(lines) == 1, lines
    assert "500" in lines[0]


def test_a_gone_feed_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(b"", status=410)
        lines = polls_of(caplog, 3, write_config(tmp_path, srv.url("/f.xml")), with_poll=True)
        assert srv.hits("/f.xml") == 1
    assert len(lines) == 1, lines
    assert "410" in lines[0]


def test_no_alembic_chatter_at_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/f.xml")
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            wait_until(lambda: "monitor running" in log.read_text(), 30, "the daemon to start")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = log.read_text()
    assert "INFO" in text  # the daemon logs its progress...
    assert "Context impl" not in text  # ...but not Alembic's
    assert "alembic" not in text
