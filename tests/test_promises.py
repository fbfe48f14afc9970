"""Promises of README that no other test exercised end to end: the daemon's own retry backoff,
410 disabling a feed, a permanent redirect updating the stored URL, one notification per item
and channel listing every rule it matched, and a clean stop on SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.app import make_app
from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.store.repo import Store
from tests.feedserver import FeedServer, Redirect, Static
from tests.servers import WebhookServer
from tests.test_daemon import wait_until


def rss(*items: tuple[str, str]) -> bytes:
    date = format_datetime(datetime.now(UTC) - timedelta(minutes=10))
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://n.example/{guid}</link>"
        f"<description>{title}</description><pubDate>{date}</pubDate></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{body}</channel></rss>"
    ).encode()


def write(tmp: Path, body: str) -> Path:
    path = tmp / "config.toml"
    path.write_text(f'[monitor]\ndatabase = "sqlite:///monitor.db"\n{body}', encoding="utf-8")
    return path


def feeds_table(capsys: pytest.CaptureFixture[str], config: Path) -> str:
    assert main(["--config", str(config), "feeds"]) == 0
    return capsys.readouterr().out


def test_410_disables_the_feed_for_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(b"", status=410)
        config = write(
            tmp_path,
            f'[channels]\n[[feeds]]\nname = "old"\nurl = "{srv.url("/f.xml")}"\n'
            '[[rules]]\nname = "r"\nany = ["Kursk"]\nchannels = []\n',
        )
        assert main(["--config", str(config), "poll"]) == 0
        assert main(["--config", str(config), "poll"]) == 0
        assert srv.hits("/f.xml") == 1  # never asked again
        capsys.readouterr()
        assert "gone (410)" in feeds_table(capsys, config)


def test_a_permanent_redirect_moves_the_stored_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as srv:
        srv.routes["/old.xml"] = Redirect("/new.xml", status=301)
        srv.routes["/new.xml"] = Static(rss(("a1", "Nachrichten")), etag='"n1"')
        config = write(
            tmp_path,
            f'[channels]\n[[feeds]]\nname = "moved"\nurl = "{srv.url("/old.xml")}"\n'
            '[[rules]]\nname = "r"\nany = ["Kursk"]\nchannels = []\n',
        )
        assert main(["--config", str(config), "poll"]) == 0
        assert main(["--config", str(config), "poll"]) == 0
        assert srv.hits("/old.xml") == 1  # the second poll went straight to the new URL
        assert srv.hits("/new.xml") == 2
        assert srv.requests_for("/new.xml")[-1].headers.get("if-none-match") == '"n1"'
    store = Store.open(load_config(config, os.environ).settings.database)
    try:
        assert store.feed_state("moved").url.endswith("/new.xml")
    finally:
        store.close()


def test_one_notification_per_item_and_channel_lists_every_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as srv, WebhookServer() as desk, WebhookServer() as osint:
        srv.routes["/f.xml"] = Static(rss(("k1", "Nordkoreanische Truppen bei Kursk")))
        config = write(
            tmp_path,
            f'[channels]\ndesk = "{desk.apprise_url()}"\nosint = "{osint.apprise_url()}"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n'
            '[[rules]]\nname = "troops"\nany = ["nordkoreanische Truppen"]\n'
            '[[rules]]\nname = "desk-only"\nany = ["Truppen"]\nchannels = ["desk"]\n',
        )
        assert main(["--config", str(config), "poll"]) == 0
        assert len(desk.requests) == 1
        assert len(osint.requests) == 1
    desk_text = desk.requests[0].json["message"]
    osint_text = osint.requests[0].json["message"]
    for rule in ("kursk", "troops", "desk-only"):
        assert f"Rule: {rule}" in desk_text
    assert "Rule: kursk" in osint_text and "Rule: troops" in osint_text
    assert "desk-only" not in osint_text

    def footer(text: str, key: str) -> str:
        return next(line for line in text.splitlines() if line.startswith(key))

    assert footer(desk_text, "alert-id:") != footer(osint_text, "alert-id:")
    assert footer(desk_text, "item-id:") == footer(osint_text, "item-id:")


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_daemon_retries_a_failed_alert_after_its_backoff(tmp_path: Path) -> None:
    """The daemon's sender, on its own (no `poll` forcing): a refused alert waits out its
    backoff (30 s) and is sent by the next pass after it, once."""
    clock = FakeClock()
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage bei Kursk")))
        path = write(
            tmp_path,
            f'[channels]\nhook = "{hook.apprise_url()}"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
        )
        config = load_config(path, os.environ)
        store = Store.open(config.settings.database)
        app = make_app(config, store=store, clock=clock)
        daemon = Daemon(app, lambda: config)
        hook.fail_next(1)

        async def scenario() -> None:
            async with app.fetcher() as fetcher:
                outcome = await pipeline.poll_feed(app, config.feeds[0], fetcher)
            assert outcome.alerts == 1
            daemon.wake["hook"] = asyncio.Event()
            sender = asyncio.create_task(daemon.sender("hook"))
            await asyncio.to_thread(wait_until, lambda: len(hook.requests) == 1, 10, "1st try")
            clock.now += timedelta(seconds=20)  # still inside the backoff
            daemon.wake["hook"].set()
            await asyncio.sleep(0.5)
            assert len(hook.requests) == 1
            clock.now += timedelta(seconds=15)  # past it
            daemon.wake["hook"].set()
            await asyncio.to_thread(wait_until, lambda: len(hook.requests) == 2, 10, "the retry")
            daemon.wake["hook"].set()
            await asyncio.sleep(0.5)
            daemon.stopping.set()
            await asyncio.wait_for(sender, 10)

        try:
            asyncio.run(scenario())
        finally:
            app.close()
            store.close()
        assert len(hook.requests) == 2  # delivered once, never again
        assert store.outbox_counts()["hook"] == (0, 1)


def test_sigint_stops_the_daemon_cleanly(tmp_path: Path) -> None:
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage")))
        path = write(
            tmp_path,
            f'[channels]\n[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\n'
            '[[rules]]\nname = "r"\nany = ["Kursk"]\nchannels = []\n',
        )
        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(path), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until(lambda: srv.hits("/f.xml") >= 1, 30, "the first poll")
                proc.send_signal(signal.SIGINT)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        text = log.read_text()
        assert "stopped" in text
        assert "Traceback" not in text
