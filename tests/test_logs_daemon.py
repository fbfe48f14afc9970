"""The real `monitor run` on loopback servers: no channel secret ever reaches its stderr or
stdout (successes and failures, Apprise at DEBUG with -vvv), the ordinary words of its log
lines stay readable, and with `MONITOR_LOG_FORMAT=json` every stderr line is a JSON object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Static
from tests.servers import SmtpServer, WebhookServer, closed_port

SMTP_PW = "SmtpCanary4711"
JSON_PW = "JsonCanary0815"
WEBHOOK_TOKEN = "Xq9CanaryTokenZz12345678"  # a Slack-like incoming-webhook token (Mattermost)
BEARER = "BearerCanary2342"
NTFY_TOKEN = "tk_NtfyCanary1234567"
CANARIES = (SMTP_PW, JSON_PW, WEBHOOK_TOKEN, BEARER, NTFY_TOKEN)
FAILING = ("mail", "fail", "bearer", "ntfy")  # channel names: the first two are URL words too


def rss(guid: str, title: str) -> bytes:
    date = format_datetime(datetime.now(UTC))
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://n.example/{guid}</link>"
        f"<description>{title}.</description><pubDate>{date}</pubDate></item></channel></rss>"
    ).encode()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_on_the_daemons_stderr(tmp_path: Path, log_format: str) -> None:
    with (
        FeedServer() as srv,
        WebhookServer() as hook,
        WebhookServer(path="/fail") as failing,
        SmtpServer(user="alerts", password=SMTP_PW) as smtp,
    ):
        failing.always_fail(500)
        srv.routes["/news.xml"] = Static(rss("k1", "Truppen bei Kursk"))
        down = closed_port()
        mail = "from=monitor@example.org&to=desk@example.org"
        bearer = f"json://127.0.0.1:{failing.port}/fail?+Authorization=Bearer%20{BEARER}"
        path = tmp_path / "config.toml"
        path.write_text(
            f"""
[monitor]
database = "sqlite:///{tmp_path / "monitor.db"}"
interval = "1h"
timeout = "5s"
[channels]
hook = "{hook.apprise_url("hookuser", JSON_PW)}"
alerts = "mailto://alerts:{SMTP_PW}@127.0.0.1:{smtp.port}?{mail}"
mail = "mailto://alerts:{SMTP_PW}@127.0.0.1:{down}?{mail}"
fail = "mmost://127.0.0.1:{failing.port}/{WEBHOOK_TOKEN}"
bearer = "{bearer}"
ntfy = "ntfy://127.0.0.1:{down}/topic?token={NTFY_TOKEN}"
[[feeds]]
name = "news"
url = "{srv.url("/news.xml")}"
[[rules]]
name = "kursk"
query = "Kursk"
""",
            encoding="utf-8",
        )
        path.chmod(0o600)
        err_path, out_path = tmp_path / "stderr.log", tmp_path / "stdout.log"
        env = {**os.environ, "MONITOR_LOG_FORMAT": log_format}
        with err_path.open("w") as err, out_path.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "-vvv", "--config", str(path), "run"],
                stdout=out,
                stderr=err,
                env=env,
            )
            try:
                hook.wait_for(1, timeout=30)
                smtp.wait_for(1, timeout=30)

                def all_sends_logged() -> bool:  # whatever the redaction did to the words
                    text = err_path.read_text(encoding="utf-8")
                    failed, sent = text.count(": 0 delivered, 1 "), text.count(": 1 delivered, 0 ")
                    return failed >= len(FAILING) and sent >= 2

                wait_until(all_sends_logged, 60, "a log line for every channel's send")
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    stderr = err_path.read_text(encoding="utf-8")
    stdout = out_path.read_text(encoding="utf-8")
    for canary in CANARIES:
        assert canary not in stderr and canary not in stdout, canary
    assert len(failing.requests) >= 2  # the Mattermost and bearer channels really failed
    # the ordinary words stay: channel names, counts, "failed", the host
    for line in (
        "channel hook: 1 delivered, 0 failed",
        "channel alerts: 1 delivered, 0 failed",
        *(f"channel {name}: 0 delivered, 1 failed" for name in FAILING),
        "finishing alerts being sent",
    ):
        assert line in stderr, line
    assert "127.0.0.1" in stderr and "hookuser" in stderr
    assert "***" in stderr  # Apprise's debug output did carry secrets, masked
    if log_format == "json":
        lines = stderr.splitlines()
        assert lines
        for line in lines:
            event = json.loads(line)
            assert isinstance(event, dict), line
            assert {"time", "level", "logger", "message"} <= set(event), line
            datetime.fromisoformat(event["time"])
        assert {json.loads(line)["logger"] for line in lines} >= {"monitor.daemon", "apprise"}
    else:
        assert not stderr.lstrip().startswith("{")


def test_json_logs_of_a_command(tmp_path: Path) -> None:
    """`monitor -v poll` with a failing feed and a failing channel: stderr is JSON lines."""
    with FeedServer() as srv, WebhookServer() as failing:
        failing.always_fail(500)
        srv.routes["/news.xml"] = Static(rss("k1", "Truppen bei Kursk"))
        srv.routes["/broken.xml"] = Static(b"oops", status=500)
        path = tmp_path / "config.toml"
        path.write_text(
            f"""
[monitor]
database = "sqlite:///{tmp_path / "monitor.db"}"
[channels]
hook = "{failing.apprise_url("hookuser", JSON_PW)}"
[[feeds]]
name = "news"
url = "{srv.url("/news.xml")}"
[[feeds]]
name = "broken"
url = "{srv.url("/broken.xml")}"
[[rules]]
name = "kursk"
query = "Kursk"
""",
            encoding="utf-8",
        )
        path.chmod(0o600)
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "-v", "--config", str(path), "poll"],
            capture_output=True,
            text=True,
            env={**os.environ, "MONITOR_LOG_FORMAT": "json"},
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events and all(isinstance(e, dict) for e in events)
    for event in events:
        assert {"time", "level", "logger", "message"} <= set(event), event
    levels = {e["level"] for e in events}
    assert "warning" in levels, events  # the broken feed, the failed channel
    messages = "\n".join(e["message"] for e in events)
    assert "broken" in messages and "channel hook" in messages
    assert JSON_PW not in result.stderr + result.stdout
