"""The HTTP server of a real `monitor run` subprocess on 127.0.0.1: /healthz turns 503 when a
reload fails and 200 again when it succeeds, `monitor health` asks it, /metrics parses as
Prometheus text with the promised series, the token guards every endpoint and never reaches
the log, and with MONITOR_LOG_FORMAT=json each poll, match and delivery is one event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer, free_port
from tests.test_daemon import wait_until
from tests.test_e2e import rss

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-5e1c0a7b9d2f4e68"
ITEMS = [
    ("w-1", "Troops seen near Kursk", "https://news.example/1", "Reports from Kursk today."),
    ("w-2", "Weather", "https://news.example/2", "Rain in the north."),
]


def write_config(tmp: Path, feed_url: str, hook: str, port: int, *, token: bool) -> Path:
    path = tmp / "config.toml"
    secret = f'http_token = "{TOKEN}"\n' if token else ""
    path.write_text(
        f"""
[monitor]
database = "sqlite:///monitor.db"
http = "127.0.0.1:{port}"
{secret}
[channels]
hook = "{hook}"
[[feeds]]
name = "world"
url = "{feed_url}"
[[rules]]
name = "kursk"
any = ["Kursk"]
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    config: Path
    log: Path
    port: int

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def health(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(self.config), "health"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def events(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def start(tmp: Path, *, token: bool) -> Iterator[tuple[Daemon, WebhookServer]]:
    port = free_port()
    with FeedServer() as feeds, WebhookServer() as hook:
        feeds.routes["/world.xml"] = Static(rss(ITEMS))
        config = write_config(tmp, feeds.url("/world.xml"), hook.apprise_url(), port, token=token)
        log = tmp / "daemon.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": str(ROOT), "MONITOR_LOG_FORMAT": "json"},
            )
            daemon = Daemon(proc, config, log, port)
            try:
                yield daemon, hook
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, WebhookServer]]:
    yield from start(tmp_path, token=False)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Daemon, WebhookServer]]:
    yield from start(tmp_path, token=True)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz_metrics_events_and_a_failed_reload(
    daemon: tuple[Daemon, WebhookServer],
) -> None:
    d, hook = daemon
    wait_until(lambda: d.get("/healthz")[0] == 200, 60, "/healthz to answer 200")
    hook.wait_for(1, timeout=60)  # the match was alerted
    body = json.loads(d.get("/healthz")[1])
    assert body["status"] == "ok" and body["reasons"] == []
    assert d.health().returncode == 0

    # /metrics: Prometheus text with the promised series
    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = d.get("/metrics")
        assert status == 200
        return samples(text.decode())

    wait_until(
        lambda: (
            scraped().get(("monitor_alerts_total", (("channel", "hook"), ("outcome", "sent"))))
            == 1.0
        ),
        30,
        "the delivery to be counted",
    )
    m = scraped()
    assert m[("monitor_feed_polls_total", (("feed", "world"), ("outcome", "new")))] == 1.0
    assert m[("monitor_feed_items_new_total", (("feed", "world"),))] == 2.0
    assert m[("monitor_matches_total", (("rule", "kursk"),))] == 1.0
    assert m[("monitor_feed_last_success_timestamp_seconds", (("feed", "world"),))] > 1e9
    assert m[("monitor_outbox_pending", (("channel", "hook"),))] == 0.0
    assert m[("monitor_poll_duration_seconds_count", ())] >= 1.0
    assert m[("monitor_delivery_duration_seconds_count", ())] == 1.0
    assert m[("monitor_config_reloads_total", (("outcome", "error"),))] == 0.0
    names = {name for name, _ in m}
    assert all(n.startswith("monitor_") for n in names), names

    # each poll, match and delivery is one JSON event with its fields
    events = d.events()
    polls = [e for e in events if e.get("event") == "poll"]
    assert polls and polls[0]["feed"] == "world" and polls[0]["outcome"] == "new"
    assert isinstance(polls[0]["duration_ms"], float)
    matches = [e for e in events if e.get("event") == "match"]
    assert [(e["feed"], e["rule"]) for e in matches] == [("world", "kursk")]
    deliveries = [e for e in events if e.get("event") == "delivery"]
    assert [(e["channel"], e["outcome"]) for e in deliveries] == [("hook", "sent")]
    assert isinstance(deliveries[0]["duration_ms"], float)

    # an invalid config on SIGHUP: 503 with the reason, `monitor health` exits 1
    good = d.config.read_text()
    d.config.write_text(good.replace('any = ["Kursk"]', 'any = ["Kursk"]\nbogus = 1'))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: d.get("/healthz")[0] == 503, 30, "/healthz to answer 503")
    reasons = json.loads(d.get("/healthz")[1])["reasons"]
    assert any("config" in r and "bogus" in r for r in reasons), reasons
    result = d.health()
    assert result.returncode == 1 and "config" in result.stdout, result.stdout
    m = scraped()
    assert m[("monitor_config_reloads_total", (("outcome", "error"),))] == 1.0

    # fixed: healthy again
    d.config.write_text(good)
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: d.get("/healthz")[0] == 200, 30, "/healthz to answer 200 again")
    assert scraped()[("monitor_config_reloads_total", (("outcome", "ok"),))] == 1.0

    # the status page is served, as HTML
    status, page = d.get("/")
    assert status == 200 and b"<mark>Kursk</mark>" in page


def test_the_token_guards_every_endpoint_and_stays_out_of_the_log(
    guarded: tuple[Daemon, WebhookServer],
) -> None:
    d, _ = guarded
    wait_until(lambda: d.get("/healthz", TOKEN)[0] == 200, 60, "/healthz to answer 200")
    for path in ("/", "/healthz", "/metrics"):
        assert d.get(path)[0] == 401
        assert d.get(path, "wrong-token-0123456789")[0] == 401
        assert d.get(path, TOKEN)[0] == 200
    assert d.health().returncode == 0  # `monitor health` sends the token
    # the redactor knows the token: whatever logs it shows ***
    d.config.write_text(d.config.read_text().replace("[channels]", f"[channels]\n{TOKEN} = 1"))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: d.get("/healthz", TOKEN)[0] == 503, 30, "the failed reload")
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(timeout=60)
    assert TOKEN not in d.log.read_text()


def test_health_without_the_server_reads_the_database(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[monitor]\ndatabase = "sqlite:///monitor.db"\n[channels]\n'
        '[[feeds]]\nname = "f"\nurl = "http://127.0.0.1:9/f.xml"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "health"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1, result
    assert "no `monitor run` has ever written a heartbeat" in result.stdout


def test_health_says_when_the_server_does_not_answer(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[monitor]\ndatabase = "sqlite:///monitor.db"\nhttp = "127.0.0.1:{free_port()}"\n'
        "[channels]\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "health"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1 and "no answer from" in result.stdout, result
