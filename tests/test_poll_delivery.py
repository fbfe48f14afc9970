"""`monitor poll` tries every pending alert, and its summary tells attempts from queued alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.cli import main
from tests.feedserver import FeedServer, Static
from tests.servers import SmtpServer, WebhookServer


def rss(count: int) -> bytes:
    date = format_datetime(datetime.now(UTC) - timedelta(minutes=30))
    items = "".join(
        f"<item><guid>k{i}</guid><title>Lage bei Kursk, Teil {i}</title>"
        f"<link>https://n.example/k{i}</link><description>Bericht {i}.</description>"
        f"<pubDate>{date}</pubDate></item>"
        for i in range(count)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    ).encode()


def write_config(tmp: Path, feed_url: str, channels: str) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
[monitor]
database = "sqlite:///monitor.db"
[channels]
{channels}
[[feeds]]
name = "news"
url = "{feed_url}"
[[rules]]
name = "kursk"
any = ["Kursk"]
""",
        encoding="utf-8",
    )
    return config


def summary(out: str) -> str:
    return next(line for line in out.splitlines() if "feeds polled" in line)


def test_poll_tries_every_pending_alert_of_a_channel_that_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp = SmtpServer()  # not started: the mail server is down for the first pass
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(4))
        config = write_config(
            tmp_path,
            srv.url("/f.xml"),
            f'mail = "{smtp.apprise_url()}"\nhook = "{hook.apprise_url()}"',
        )
        assert main(["--config", str(config), "poll"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"\bqueued\b", out.splitlines()[0])  # the table's column
        line = summary(out)
        assert "8 alerts queued" in line  # 4 items x 2 channels
        # the webhook took its 4; mail refused 3 in a row and the 4th was not tried
        assert "4 delivered, 3 failed" in line
        assert "1 not tried" in line
        smtp.start()
        try:
            assert main(["--config", str(config), "poll"]) == 0
            line = summary(capsys.readouterr().out)
            assert "0 alerts queued" in line
            assert "4 delivered, 0 failed" in line  # every pending alert, backoff or not
            assert len(smtp.received) == 4
        finally:
            smtp.stop()
    assert len(hook.requests) == 4
